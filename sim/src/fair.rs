//! A node's uplink or downlink, shared fairly among its flows (links) by processor sharing:
//! every flow with something to send gets an equal share of the rate at every instant, as
//! per-flow fair queueing (Linux `fq`, `fq_codel`) gives TCP flows packet by packet. A flow
//! with little to send (a request, a have) is through in the time its own bytes take at its
//! share, never behind another flow's backlog. Within a flow, units go one at a time, in
//! order.
//!
//! The share is kept as virtual time: the bytes each busy flow has been given since the
//! start, which grows at rate / busy flows. A unit entering service finishes when virtual
//! time reaches its start plus its length, so the next unit to finish is the one with the
//! least finish tag, and its real finish time follows from the current number of busy flows.
//! Integer arithmetic throughout, so runs are exact and repeatable.

use std::collections::VecDeque;
use std::time::Duration;

use pollen_core::{Instant, swarm::LinkId};

/// Virtual time is in bytes times this (micro-bytes), so that a microsecond of any rate
/// advances it by a whole number.
const SCALE: u128 = 1_000_000;

/// A unit in service: what it carries, its length, its finish tag, and when it entered
/// service.
#[derive(Debug)]
struct Head<T> {
    unit: T,
    len: u64,
    finish: u128,
    started: Instant,
}

/// A flow with something in service, queued or held.
#[derive(Debug)]
struct Flow<T> {
    id: LinkId,
    /// Its unit in service.
    head: Option<Head<T>>,
    /// Units queued behind it (or behind a hold).
    waiting: VecDeque<(T, u64)>,
    /// Whether it may not start its next unit until resumed.
    held: bool,
}

/// A link of `rate` bytes per second shared among flows carrying units of type `T`.
///
/// A node has a few flows at a time, so they are kept in a small vector (only those with
/// something in service, queued or held) and searched in place: cheaper than maps for the
/// millions of pushes and finishes of a large run.
#[derive(Debug)]
pub struct SharedLink<T> {
    rate: u64,
    /// Virtual time: micro-bytes given to each busy flow so far.
    vtime: u128,
    /// When `vtime` was last brought up to date.
    last: Instant,
    /// Flows that are not idle, in no particular order.
    flows: Vec<Flow<T>>,
    /// How many flows have a unit in service.
    busy: usize,
    /// The least (finish tag, flow) in service, once known (`None` inside: nothing in
    /// service); kept so that the frequent `next_done` need not look at every flow.
    first: Option<Option<(u128, LinkId)>>,
    /// Time with at least one busy flow.
    busy_time: Duration,
    /// The earliest wake-up the driver was asked for and has not had yet.
    wake: Option<Instant>,
}

/// A unit that went through.
#[derive(Debug, PartialEq, Eq)]
pub struct Done<T> {
    /// Its flow.
    pub flow: LinkId,
    /// The unit.
    pub unit: T,
    /// Its length, bytes.
    pub len: u64,
    /// When it entered service.
    pub started: Instant,
}

impl<T> SharedLink<T> {
    /// An idle link of `rate` bytes per second.
    pub fn new(rate: u64, now: Instant) -> Self {
        Self {
            rate: rate.max(1),
            vtime: 0,
            last: now,
            flows: Vec::new(),
            busy: 0,
            first: Some(None),
            busy_time: Duration::ZERO,
            wake: None,
        }
    }

    fn find(&self, flow: LinkId) -> Option<usize> {
        self.flows.iter().position(|f| f.id == flow)
    }

    /// Queues a unit of `len` bytes on `flow`; it enters service at once unless the flow is
    /// busy or held.
    pub fn push(&mut self, now: Instant, flow: LinkId, len: u64, unit: T) {
        self.advance(now);
        let i = match self.find(flow) {
            Some(i) => i,
            None => {
                self.flows.push(Flow {
                    id: flow,
                    head: None,
                    waiting: VecDeque::new(),
                    held: false,
                });
                self.flows.len() - 1
            }
        };
        let f = &mut self.flows[i];
        if f.head.is_some() || f.held {
            f.waiting.push_back((unit, len));
        } else {
            self.start(now, i, unit, len);
        }
    }

    /// The last unit `flow` has queued or in service, if `accept` takes it, grown by `len`
    /// bytes for the caller to add to; `None` if the flow is idle, held with nothing queued,
    /// or its last unit is refused. The bytes go with that unit, as they would right behind
    /// it on a stream (a unit in service finishes that much later).
    pub fn append(
        &mut self,
        now: Instant,
        flow: LinkId,
        len: u64,
        accept: impl FnOnce(&T) -> bool,
    ) -> Option<&mut T> {
        self.advance(now);
        let i = self.find(flow)?;
        let f = &mut self.flows[i];
        if let Some((unit, l)) = f.waiting.back_mut() {
            if !accept(unit) {
                return None;
            }
            *l += len;
            return Some(unit);
        }
        let head = f.head.as_mut()?;
        if !accept(&head.unit) {
            return None;
        }
        if self.first == Some(Some((head.finish, f.id))) {
            self.first = None;
        }
        head.len += len;
        head.finish += u128::from(len) * SCALE;
        Some(&mut head.unit)
    }

    /// Whether `flow` has nothing in service, queued or held.
    pub fn is_idle(&self, flow: LinkId) -> bool {
        self.find(flow).is_none()
    }

    /// The unit in service that finishes first: least finish tag, then least flow.
    fn first(&mut self) -> Option<(u128, LinkId)> {
        let walk = |flows: &[Flow<T>]| {
            flows
                .iter()
                .filter_map(|f| f.head.as_ref().map(|h| (h.finish, f.id)))
                .min()
        };
        if let Some(first) = self.first {
            debug_assert_eq!(first, walk(&self.flows), "the cached first unit is stale");
            return first;
        }
        let first = walk(&self.flows);
        self.first = Some(first);
        first
    }

    /// When the next unit finishes, if any is in service.
    pub fn next_done(&mut self) -> Option<Instant> {
        let (finish, _) = self.first()?;
        let left = finish.saturating_sub(self.vtime);
        let flows = self.busy as u128;
        let rate = u128::from(self.rate);
        let micros = (left * flows).div_ceil(rate);
        Some(self.last + Duration::from_micros(u64::try_from(micros).unwrap_or(u64::MAX)))
    }

    /// When the driver must wake the link next, if that is sooner than the wake-up it was
    /// already asked for (which is then superseded). A finish that moved later is left to the
    /// earlier wake-up, which asks again.
    pub fn wake(&mut self) -> Option<Instant> {
        let at = self.next_done()?;
        if self.wake.is_some_and(|w| w <= at) {
            return None;
        }
        self.wake = Some(at);
        Some(at)
    }

    /// Whether a wake-up at `at` is the one that counts (it is then spent); others were
    /// superseded.
    pub fn woken(&mut self, at: Instant) -> bool {
        let current = self.wake == Some(at);
        if current {
            self.wake = None;
        }
        current
    }

    /// Finishes the unit due next (call at [`SharedLink::next_done`]). Its flow is held until
    /// [`SharedLink::resume`]d.
    pub fn complete(&mut self, now: Instant) -> Option<Done<T>> {
        self.advance(now);
        let (_, flow) = self.first()?;
        self.first = None;
        let i = self.find(flow)?;
        let f = &mut self.flows[i];
        let head = f.head.take()?;
        self.busy -= 1;
        f.held = true;
        // Rounding of the real time may leave virtual time a hair short of the tag.
        self.vtime = self.vtime.max(head.finish);
        Some(Done {
            flow: f.id,
            unit: head.unit,
            len: head.len,
            started: head.started,
        })
    }

    /// Lets a held flow start its next unit.
    pub fn resume(&mut self, now: Instant, flow: LinkId) {
        self.advance(now);
        let Some(i) = self.find(flow) else {
            return;
        };
        let f = &mut self.flows[i];
        if !f.held || f.head.is_some() {
            return;
        }
        f.held = false;
        match f.waiting.pop_front() {
            Some((unit, len)) => self.start(now, i, unit, len),
            None => {
                self.flows.swap_remove(i);
            }
        }
    }

    /// Drops everything `flow` has queued or in service.
    pub fn remove(&mut self, now: Instant, flow: LinkId) {
        self.advance(now);
        if let Some(i) = self.find(flow) {
            if self.flows[i].head.is_some() {
                self.busy -= 1;
                self.first = None;
            }
            self.flows.swap_remove(i);
        }
    }

    /// Drops everything.
    pub fn clear(&mut self, now: Instant) {
        self.advance(now);
        self.flows.clear();
        self.busy = 0;
        self.first = Some(None);
        self.wake = None;
    }

    /// Time with at least one unit in service, up to `now`.
    pub fn busy_time(&self, now: Instant) -> Duration {
        if self.busy == 0 {
            self.busy_time
        } else {
            self.busy_time + now.saturating_since(self.last)
        }
    }

    fn start(&mut self, now: Instant, i: usize, unit: T, len: u64) {
        let finish = self.vtime + u128::from(len) * SCALE;
        if let Some(first) = self.first {
            let tag = (finish, self.flows[i].id);
            self.first = Some(Some(first.map_or(tag, |f| f.min(tag))));
        }
        self.flows[i].head = Some(Head {
            unit,
            len,
            finish,
            started: now,
        });
        self.busy += 1;
    }

    /// Brings virtual time up to `now`.
    fn advance(&mut self, now: Instant) {
        let elapsed = now.saturating_since(self.last);
        self.last = self.last.max(now);
        let flows = self.busy as u128;
        if flows == 0 || elapsed.is_zero() {
            return;
        }
        self.busy_time += elapsed;
        // bytes/s × µs = micro-bytes.
        self.vtime += elapsed.as_micros() * u128::from(self.rate) / flows;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1_000_000;

    fn at(ms: u64) -> Instant {
        Instant::ZERO + Duration::from_millis(ms)
    }

    /// Runs the link until idle, resuming every flow at once; (flow, unit, finish ms).
    fn run(link: &mut SharedLink<u32>) -> Vec<(u64, u32, u64)> {
        let mut out = Vec::new();
        while let Some(t) = link.next_done() {
            let done = link.complete(t).expect("a unit is due");
            link.resume(t, done.flow);
            out.push((
                done.flow.0,
                done.unit,
                t.saturating_since(Instant::ZERO).as_millis() as u64,
            ));
        }
        out
    }

    #[test]
    fn one_flow_gets_the_whole_rate() {
        let mut link = SharedLink::new(MB, at(0));
        link.push(at(0), LinkId(1), 100_000, 1);
        link.push(at(0), LinkId(1), 100_000, 2);
        assert_eq!(run(&mut link), [(1, 1, 100), (1, 2, 200)]);
        assert_eq!(link.busy_time(at(300)), Duration::from_millis(200));
    }

    #[test]
    fn two_busy_flows_share_the_rate_equally() {
        let mut link = SharedLink::new(MB, at(0));
        link.push(at(0), LinkId(1), 100_000, 1);
        link.push(at(0), LinkId(2), 100_000, 2);
        // Each at half the rate: both finish after 200 ms.
        assert_eq!(run(&mut link), [(1, 1, 200), (2, 2, 200)]);
    }

    #[test]
    fn a_small_unit_is_not_stuck_behind_a_backlog() {
        let mut link = SharedLink::new(MB, at(0));
        for unit in 0..10 {
            link.push(at(0), LinkId(1), 100_000, unit);
        }
        link.push(at(50), LinkId(2), 1_000, 100);
        let order = run(&mut link);
        // 1 kB at half of 1 MB/s: 2 ms after it arrived.
        assert_eq!(order[0], (2, 100, 52));
        // The backlog lost only what the small unit took.
        assert_eq!(order.last(), Some(&(1, 9, 1001)));
    }

    #[test]
    fn a_late_flow_slows_the_busy_one() {
        let mut link = SharedLink::new(MB, at(0));
        link.push(at(0), LinkId(1), 100_000, 1);
        link.push(at(50), LinkId(2), 100_000, 2);
        // Flow 1: 50 kB alone by 50 ms, the other 50 kB at half rate: 150 ms. Flow 2: 50 kB
        // by then, the rest alone: 200 ms.
        assert_eq!(run(&mut link), [(1, 1, 150), (2, 2, 200)]);
    }

    #[test]
    fn a_held_flow_waits_for_resume() {
        let mut link = SharedLink::new(MB, at(0));
        link.push(at(0), LinkId(1), 100_000, 1);
        link.push(at(0), LinkId(1), 100_000, 2);
        let t = link.next_done().expect("busy");
        let done = link.complete(t).expect("due");
        assert_eq!((done.flow, done.unit, done.len), (LinkId(1), 1, 100_000));
        assert_eq!(done.started, at(0));
        assert_eq!(link.next_done(), None);
        link.push(at(150), LinkId(1), 100_000, 3);
        assert_eq!(link.next_done(), None);
        link.resume(at(200), LinkId(1));
        assert_eq!(run(&mut link), [(1, 2, 300), (1, 3, 400)]);
    }

    #[test]
    fn only_the_earliest_wake_up_counts() {
        let mut link = SharedLink::new(MB, at(0));
        link.push(at(0), LinkId(1), 100_000, 1);
        assert_eq!(link.wake(), Some(at(100)));
        // A second flow moves the finish later: the earlier wake-up stands.
        link.push(at(0), LinkId(2), 100_000, 2);
        assert_eq!(link.wake(), None);
        assert!(link.woken(at(100)));
        assert!(!link.woken(at(100)), "spent");
        // Now the link asks for the later finish, and a small unit brings it sooner.
        assert_eq!(link.wake(), Some(at(200)));
        link.push(at(100), LinkId(3), 1_000, 3);
        let sooner = link.wake().expect("sooner");
        assert!(sooner < at(200));
        assert!(!link.woken(at(200)), "superseded");
        assert!(link.woken(sooner));
        link.clear(at(150));
        assert_eq!(link.wake(), None);
    }

    #[test]
    fn appended_bytes_go_with_the_flows_last_unit() {
        let mut link = SharedLink::new(MB, at(0));
        let any = |_: &u32| true;
        assert!(
            link.append(at(0), LinkId(1), 1_000, any).is_none(),
            "idle flow"
        );
        link.push(at(0), LinkId(1), 100_000, 1);
        // Into the unit in service: it finishes 50 ms later.
        *link
            .append(at(0), LinkId(1), 50_000, any)
            .expect("in service") += 10;
        assert_eq!(link.next_done(), Some(at(150)));
        link.push(at(0), LinkId(1), 100_000, 2);
        // Into the queued unit, not the one in service; unless refused.
        assert!(link.append(at(0), LinkId(1), 1, |&u| u == 11).is_none());
        *link.append(at(0), LinkId(1), 100_000, any).expect("queued") += 20;
        assert_eq!(run(&mut link), [(1, 11, 150), (1, 22, 350)]);
    }

    #[test]
    fn a_removed_flow_frees_its_share() {
        let mut link = SharedLink::new(MB, at(0));
        link.push(at(0), LinkId(1), 100_000, 1);
        link.push(at(0), LinkId(2), 100_000, 2);
        link.push(at(0), LinkId(2), 100_000, 3);
        link.remove(at(100), LinkId(2));
        // 50 kB left for flow 1, alone from 100 ms.
        assert_eq!(run(&mut link), [(1, 1, 150)]);
        link.clear(at(200));
        assert_eq!(link.next_done(), None);
    }
}
