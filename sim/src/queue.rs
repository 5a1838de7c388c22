//! The simulator's event queue: events come out by time, ties in the order they were put in.
//!
//! A calendar queue: time is cut into buckets of [`BUCKET_MICROS`], and a ring of
//! [`BUCKETS`] buckets covers the near future. Pushing into the ring appends to a bucket's
//! vector; the bucket being drained is a small binary heap, so a pop works on a few hundred
//! events that sit in cache instead of sifting through a heap of every pending event. Events
//! beyond the ring wait in a heap of their own until the ring reaches them. The order out is
//! exactly that of one heap keyed by (time, push order), so results do not depend on the
//! bucket sizes.

use std::{cmp::Ordering, collections::BinaryHeap, mem};

use pollen_core::Instant;

/// Width of a bucket, microseconds.
const BUCKET_MICROS: u64 = 128;
/// Buckets in the ring (a power of two): about half a second ahead.
const BUCKETS: u64 = 4096;

/// An event and its place in the order.
#[derive(Debug)]
struct Entry<E> {
    at: Instant,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl<E> Eq for Entry<E> {}

impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<E> Ord for Entry<E> {
    /// Reversed, so that the max-heap gives the earliest first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Events of type `E` ordered by time, then by push order.
#[derive(Debug)]
pub struct EventQueue<E> {
    /// The bucket being drained, plus anything pushed earlier than the ring's start.
    current: BinaryHeap<Entry<E>>,
    /// The number of the bucket `current` holds; the ring holds the `BUCKETS - 1` after it.
    cursor: u64,
    /// Buckets by number modulo `BUCKETS`, unordered.
    ring: Vec<Vec<Entry<E>>>,
    /// Events in `ring`.
    in_ring: usize,
    /// Events beyond the ring.
    far: BinaryHeap<Entry<E>>,
    /// Events pushed so far.
    seq: u64,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> EventQueue<E> {
    /// An empty queue starting at time zero.
    pub fn new() -> Self {
        Self {
            current: BinaryHeap::new(),
            cursor: 0,
            ring: (0..BUCKETS).map(|_| Vec::new()).collect(),
            in_ring: 0,
            far: BinaryHeap::new(),
            seq: 0,
        }
    }

    /// Number of events waiting.
    pub fn len(&self) -> usize {
        self.current.len() + self.in_ring + self.far.len()
    }

    /// Whether no event is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds an event to happen at `at`, after every event already queued for that time.
    pub fn push(&mut self, at: Instant, event: E) {
        self.seq += 1;
        let entry = Entry {
            at,
            seq: self.seq,
            event,
        };
        let bucket = bucket_of(at);
        if bucket <= self.cursor {
            self.current.push(entry);
        } else if bucket - self.cursor < BUCKETS {
            self.ring[(bucket % BUCKETS) as usize].push(entry);
            self.in_ring += 1;
        } else {
            self.far.push(entry);
        }
    }

    /// When the next event happens, if any is waiting.
    pub fn peek_time(&mut self) -> Option<Instant> {
        self.fill_current();
        self.current.peek().map(|e| e.at)
    }

    /// Takes the next event and its time.
    pub fn pop(&mut self) -> Option<(Instant, E)> {
        self.fill_current();
        self.current.pop().map(|e| (e.at, e.event))
    }

    /// Moves on through the buckets until `current` holds the next events, if any are left.
    fn fill_current(&mut self) {
        while self.current.is_empty() {
            if self.in_ring == 0 {
                // Nothing near: jump to the first far event's bucket.
                let Some(first) = self.far.peek() else {
                    return;
                };
                self.cursor = self.cursor.max(bucket_of(first.at));
            } else {
                self.cursor += 1;
            }
            let slot = (self.cursor % BUCKETS) as usize;
            let spare = mem::take(&mut self.current).into_vec();
            let bucket = mem::replace(&mut self.ring[slot], spare);
            self.in_ring -= bucket.len();
            self.current = BinaryHeap::from(bucket);
            // The far events the ring now reaches, into their buckets (or `current`).
            while let Some(first) = self.far.peek() {
                let bucket = bucket_of(first.at);
                if bucket - self.cursor.min(bucket) >= BUCKETS {
                    break;
                }
                let Some(entry) = self.far.pop() else {
                    break;
                };
                if bucket <= self.cursor {
                    self.current.push(entry);
                } else {
                    self.ring[(bucket % BUCKETS) as usize].push(entry);
                    self.in_ring += 1;
                }
            }
        }
    }
}

/// The number of the bucket holding time `at`.
fn bucket_of(at: Instant) -> u64 {
    at.as_micros() / BUCKET_MICROS
}

/// `micros` after time zero.
#[cfg(test)]
fn at_micros(micros: u64) -> Instant {
    Instant::ZERO + std::time::Duration::from_micros(micros)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Reverse;

    use proptest::prelude::*;

    /// Pushes and pops as the simulator does (never earlier than the last pop, except where
    /// `past` allows) and checks the order against one heap keyed by (time, push order).
    fn same_order_as_a_heap(ops: &[(bool, u64)]) {
        let mut queue = EventQueue::new();
        let mut heap = BinaryHeap::new();
        let mut seq = 0u64;
        let mut now = 0u64;
        for &(pop, delay) in ops {
            if pop {
                let got = queue.pop().map(|(at, e)| (at.as_micros(), e));
                let want = heap.pop().map(|Reverse((at, seq))| (at, seq));
                assert_eq!(got, want);
                if let Some((at, _)) = got {
                    now = at;
                }
            } else {
                seq += 1;
                let at = now + delay;
                queue.push(at_micros(at), seq);
                heap.push(Reverse((at, seq)));
            }
        }
        while let Some(Reverse((at, seq))) = heap.pop() {
            assert_eq!(
                queue.pop().map(|(t, e)| (t.as_micros(), e)),
                Some((at, seq))
            );
        }
        assert!(queue.pop().is_none());
        assert!(queue.is_empty());
    }

    /// Delays from the same microsecond to far beyond the ring.
    fn delay() -> impl Strategy<Value = u64> {
        prop_oneof![
            0..BUCKET_MICROS * 2,
            0..BUCKET_MICROS * BUCKETS * 2,
            0..60_000_000u64,
        ]
    }

    proptest! {
        #[test]
        fn events_come_out_by_time_then_push_order(
            ops in proptest::collection::vec((any::<bool>(), delay()), 0..400)
        ) {
            same_order_as_a_heap(&ops);
        }
    }

    #[test]
    fn ties_come_out_in_push_order_across_the_ring_and_beyond() {
        let mut queue = EventQueue::new();
        let far = BUCKET_MICROS * BUCKETS * 3;
        for (i, at) in [far, 5, far, 5, 0, far + 1].into_iter().enumerate() {
            queue.push(at_micros(at), i);
        }
        let order: Vec<_> = std::iter::from_fn(|| queue.pop())
            .map(|(at, i)| (at.as_micros(), i))
            .collect();
        assert_eq!(
            order,
            [(0, 4), (5, 1), (5, 3), (far, 0), (far, 2), (far + 1, 5)]
        );
    }

    #[test]
    fn an_event_pushed_before_the_ring_reached_comes_out_first() {
        let mut queue = EventQueue::new();
        queue.push(at_micros(10_000), "later");
        // Peeking moves the ring on to the event's bucket.
        assert_eq!(queue.peek_time(), Some(at_micros(10_000)));
        queue.push(at_micros(300), "earlier");
        assert_eq!(queue.pop(), Some((at_micros(300), "earlier")));
        assert_eq!(queue.pop(), Some((at_micros(10_000), "later")));
    }
}
