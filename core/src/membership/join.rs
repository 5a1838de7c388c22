//! Joining: asking the join addresses to let us in until one answers, and welcoming joiners.

use alloc::{string::String, vec::Vec};

use rand_core::Rng;

use super::{
    Membership,
    packet::{self, Body},
};
use crate::PeerId;

impl Membership {
    /// Asks every join address to let us in, with our record.
    pub(super) fn send_join(&mut self) {
        let record = packet::encode_record(&self.own_record());
        for addr in self.join_addrs.clone() {
            self.send(None, addr, Body::Join, alloc::vec![record.clone()]);
        }
    }

    /// A node joins through us: welcome it with our record and some members.
    pub(super) fn on_join(&mut self, sender: PeerId, from: &str) {
        let reply_to = Some(sender);
        let records = self.welcome_records();
        self.send(reply_to, String::from(from), Body::Welcome, records);
    }

    /// A welcome: our record, then random present members.
    fn welcome_records(&mut self) -> Vec<Vec<u8>> {
        let mut out = alloc::vec![packet::encode_record(&self.own_record())];
        let n = self.present.len();
        if n == 0 {
            return out;
        }
        let mut budget = self.cfg.max_packet.min(packet::MAX_PACKET) / 2;
        // Consecutive members from a random start: distinct, and different for each joiner.
        let first = (self.rng.next_u64() % n as u64) as usize;
        for k in 0..n.min(256) {
            let i = (first + k) % n;
            if let Some(bytes) = self.encode_member(&self.present[i]) {
                if bytes.len() > budget {
                    break;
                }
                budget -= bytes.len();
                out.push(bytes);
            }
        }
        out
    }
}
