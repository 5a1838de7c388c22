//! One data channel's sending side: messages queue here and go out while the channel's
//! `bufferedAmount` is below a high-water mark; the `bufferedamountlow` event sends more.

use std::collections::VecDeque;

use web_sys::RtcDataChannel;

use crate::driver::MAX_UNSENT;

/// Bytes buffered in the browser above which we stop handing it more.
const HIGH_WATER: u32 = 1 << 20;
/// Bytes buffered below which the browser tells us to send more.
pub(crate) const LOW_WATER: u32 = 256 << 10;

/// The messages waiting for room in a data channel.
pub(crate) struct Outbox {
    queue: VecDeque<Vec<u8>>,
    queued: usize,
}

impl Outbox {
    pub(crate) fn new() -> Self {
        Self {
            queue: VecDeque::new(),
            queued: 0,
        }
    }

    /// Queues messages; fails if the peer lets too much pile up (the link is then dropped).
    pub(crate) fn push(&mut self, messages: Vec<Vec<u8>>) -> Result<(), ()> {
        for m in messages {
            self.queued += m.len();
            self.queue.push_back(m);
        }
        if self.queued > MAX_UNSENT {
            return Err(());
        }
        Ok(())
    }

    /// Sends while the channel has room: the bytes handed to it, or an error if the channel
    /// refuses a message.
    pub(crate) fn pump(&mut self, dc: &RtcDataChannel) -> Result<u64, ()> {
        let mut sent = 0;
        while dc.buffered_amount() < HIGH_WATER {
            let Some(m) = self.queue.pop_front() else {
                break;
            };
            self.queued -= m.len();
            dc.send_with_u8_array(&m).map_err(|_| ())?;
            sent += m.len() as u64;
        }
        Ok(sent)
    }
}
