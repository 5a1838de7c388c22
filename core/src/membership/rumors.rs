//! Rumor mongering: news about a member is piggybacked on outgoing packets a bounded number of
//! times, least-sent (so freshest) first.

use alloc::{collections::BTreeMap, vec::Vec};

use crate::PeerId;

/// One piece of news: the encoding of a member's newest record.
struct Rumor {
    bytes: Vec<u8>,
    sent: u32,
    /// When it became news (a counter): newer first among equally sent.
    born: u64,
}

/// The rumors this node is spreading, at most one per member (the newest).
#[derive(Default)]
pub(crate) struct Rumors {
    by_member: BTreeMap<PeerId, Rumor>,
    born: u64,
}

impl Rumors {
    /// Starts spreading `bytes` (a record of `id`), replacing older news of the same member.
    pub(crate) fn push(&mut self, id: PeerId, bytes: Vec<u8>) {
        self.born += 1;
        self.by_member.insert(
            id,
            Rumor {
                bytes,
                sent: 0,
                born: self.born,
            },
        );
    }

    /// Whether there is anything to spread.
    pub(crate) fn is_empty(&self) -> bool {
        self.by_member.is_empty()
    }

    /// Rumors in flight.
    pub(crate) fn len(&self) -> usize {
        self.by_member.len()
    }

    /// Picks rumors for one packet with `budget` bytes left, least sent first, and counts them
    /// as sent once more; rumors sent `limit` times are retired. Returns their encodings.
    pub(crate) fn take(&mut self, budget: usize, limit: u32) -> Vec<Vec<u8>> {
        if self.by_member.is_empty() {
            return Vec::new();
        }
        let mut order: Vec<(u32, u64, PeerId)> = self
            .by_member
            .iter()
            .map(|(id, r)| (r.sent, u64::MAX - r.born, *id))
            .collect();
        order.sort_unstable();
        let mut left = budget;
        let mut out = Vec::new();
        for (_, _, id) in order {
            let Some(rumor) = self.by_member.get_mut(&id) else {
                continue;
            };
            if rumor.bytes.len() > left {
                // Smaller rumors may still fit; stop once the packet is nearly full.
                if left < 64 {
                    break;
                }
                continue;
            }
            left -= rumor.bytes.len();
            rumor.sent += 1;
            if rumor.sent >= limit {
                if let Some(done) = self.by_member.remove(&id) {
                    out.push(done.bytes);
                }
            } else {
                out.push(rumor.bytes.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;

    fn id(n: u8) -> PeerId {
        PeerId::from_bytes([n; 32])
    }

    #[test]
    fn least_sent_and_newest_go_first_and_retire_after_the_limit() {
        let mut rumors = Rumors::default();
        rumors.push(id(1), vec![1; 10]);
        rumors.push(id(2), vec![2; 10]);
        // Budget for one: the newest goes first.
        assert_eq!(rumors.take(10, 3), vec![vec![2; 10]]);
        assert_eq!(rumors.take(10, 3), vec![vec![1; 10]]);
        rumors.push(id(3), vec![3; 10]);
        assert_eq!(rumors.take(10, 3), vec![vec![3; 10]]);
        // Each has been sent once; two more sends retire them all.
        assert_eq!(rumors.take(100, 3).len(), 3);
        assert_eq!(rumors.take(100, 3).len(), 3);
        assert!(rumors.is_empty());
    }

    #[test]
    fn newer_news_replaces_older_news_of_the_same_member() {
        let mut rumors = Rumors::default();
        rumors.push(id(1), vec![1]);
        rumors.take(100, 5);
        rumors.push(id(1), vec![9]);
        assert_eq!(rumors.len(), 1);
        assert_eq!(rumors.take(100, 1), vec![vec![9]]);
        assert!(rumors.is_empty());
    }

    #[test]
    fn oversized_rumors_are_skipped_not_truncated() {
        let mut rumors = Rumors::default();
        rumors.push(id(1), vec![1; 500]);
        rumors.push(id(2), vec![2; 50]);
        rumors.push(id(3), vec![3; 300]);
        let taken = rumors.take(400, 5);
        assert_eq!(taken, vec![vec![3; 300], vec![2; 50]]);
    }
}
