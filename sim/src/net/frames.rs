//! What a node's endpoint transmits, taken apart into the items a simulated link carries: a
//! connection's frames whole, and (on a lengths-only network) blocks as their lengths, their
//! data left out. A misbehaving node's behavior is applied to the swarm frames inside.

use bytes::Bytes;
use pollen_core::wire::{self, Kind, LEN_PREFIX};

use super::Behavior;

/// What one transmission carries, frame by frame.
#[derive(Debug)]
pub(super) enum Item {
    /// A whole frame body, for [`pollen_core::endpoint::Endpoint::handle_frame`].
    Frame {
        body: Bytes,
        /// Bytes it takes on the wire.
        wire: u64,
    },
    /// A block inside channel `channel`, its data not carried (lengths-only payloads), for
    /// [`pollen_core::endpoint::Endpoint::handle_block`].
    Block {
        channel: u32,
        piece: u32,
        offset: u32,
        len: u32,
        /// Bytes it takes on the wire (its frame, and its share of the channel's header).
        wire: u64,
    },
}

impl Item {
    /// Bytes it takes on the wire.
    pub(super) fn wire_len(&self) -> u64 {
        match self {
            Item::Frame { wire, .. } | Item::Block { wire, .. } => *wire,
        }
    }

    /// Whether it is a block.
    pub(super) fn is_block(&self) -> bool {
        matches!(self, Item::Block { .. })
    }
}

/// One frame inside a `Channel` frame.
enum Inner {
    /// A frame with its length prefix, in one piece.
    Whole(Bytes),
    /// A block frame: its bytes before the data, and the data as it was handed over.
    Block {
        piece: u32,
        offset: u32,
        len: u32,
        header: Bytes,
        data: Vec<Bytes>,
    },
}

impl Inner {
    fn kind(&self) -> Option<u8> {
        match self {
            Inner::Whole(frame) => frame.get(LEN_PREFIX + 1).copied(),
            Inner::Block { .. } => Some(Kind::Block as u8),
        }
    }

    fn wire_len(&self) -> u64 {
        match self {
            Inner::Whole(frame) => frame.len() as u64,
            Inner::Block { header, len, .. } => header.len() as u64 + u64::from(*len),
        }
    }
}

/// One frame of the connection.
enum Outer {
    /// The connection's own frame (handshake, channel open or close), with its prefix.
    Own(Bytes),
    /// A `Channel` frame: its channel, the bytes of its header, and the frames inside.
    Channel {
        channel: u32,
        header: usize,
        inner: Vec<Inner>,
    },
}

/// The items of one transmit of whole frames (as an endpoint's `Output::Transmit` gives
/// them), after `behavior` had its way with the swarm frames. On a lengths-only network
/// (`lengths_only`) blocks become [`Item::Block`]s; otherwise every item is a whole frame.
pub(super) fn items(segments: &[Bytes], behavior: Behavior, lengths_only: bool) -> Vec<Item> {
    let mut cursor = Cursor {
        segments,
        seg: 0,
        at: 0,
    };
    let mut out = Vec::new();
    while let Some(frame) = cursor.outer(!lengths_only) {
        match frame {
            Outer::Own(bytes) => out.push(Item::Frame {
                wire: bytes.len() as u64,
                body: bytes.slice(LEN_PREFIX..),
            }),
            Outer::Channel {
                channel,
                header,
                inner,
            } => {
                let kept = inner
                    .into_iter()
                    .filter(|f| !withheld(behavior, f))
                    .map(|f| {
                        if lengths_only {
                            f
                        } else {
                            corrupted(behavior, f)
                        }
                    });
                if lengths_only {
                    channel_items(channel, header, kept, &mut out);
                } else {
                    let whole: Vec<Bytes> = kept.map(into_whole).collect();
                    if let Some(item) = channel_frame(channel, &whole) {
                        out.push(item);
                    }
                }
            }
        }
    }
    out
}

/// Whether a node of `behavior` leaves the frame out.
fn withheld(behavior: Behavior, frame: &Inner) -> bool {
    match behavior {
        Behavior::WithholdBlocks => frame.kind() == Some(Kind::Block as u8),
        Behavior::WithholdManifest => frame.kind() == Some(Kind::ManifestPart as u8),
        Behavior::Honest | Behavior::CorruptBlocks => false,
    }
}

/// The frame as a node of `behavior` sends it with real payloads: a corrupter flips a
/// block's last byte (on a lengths-only network the piece check knows the sender instead).
fn corrupted(behavior: Behavior, frame: Inner) -> Inner {
    match (behavior, frame) {
        (
            Behavior::CorruptBlocks,
            Inner::Block {
                piece,
                offset,
                len,
                header,
                data,
            },
        ) => {
            let mut bytes = data.concat();
            if let Some(last) = bytes.last_mut() {
                *last ^= 0x55;
            }
            Inner::Block {
                piece,
                offset,
                len,
                header,
                data: vec![Bytes::from(bytes)],
            }
        }
        (_, frame) => frame,
    }
}

/// A frame with its data joined to its header.
fn into_whole(frame: Inner) -> Bytes {
    match frame {
        Inner::Whole(bytes) => bytes,
        Inner::Block { header, data, .. } => {
            let mut bytes = header.to_vec();
            for d in data {
                bytes.extend_from_slice(&d);
            }
            Bytes::from(bytes)
        }
    }
}

/// A `Channel` frame on `channel` carrying `frames` (each with its prefix), if any.
fn channel_frame(channel: u32, frames: &[Bytes]) -> Option<Item> {
    let len: usize = frames.iter().map(Bytes::len).sum();
    if len == 0 {
        return None;
    }
    let mut bytes = Vec::with_capacity(LEN_PREFIX + 8 + len);
    wire::encode_channel_header(channel, len, &mut bytes).expect("a channel frame that was sent");
    for f in frames {
        bytes.extend_from_slice(f);
    }
    let bytes = Bytes::from(bytes);
    Some(Item::Frame {
        wire: bytes.len() as u64,
        body: bytes.slice(LEN_PREFIX..),
    })
}

/// The items of one `Channel` frame on a lengths-only network: its blocks, and runs of other
/// frames as `Channel` frames of their own. The frame's header counts on the first.
fn channel_items(
    channel: u32,
    header: usize,
    frames: impl Iterator<Item = Inner>,
    out: &mut Vec<Item>,
) {
    let first = out.len();
    let mut run: Vec<Bytes> = Vec::new();
    for frame in frames {
        match frame {
            Inner::Whole(bytes) => run.push(bytes),
            Inner::Block {
                piece,
                offset,
                len,
                header,
                ..
            } => {
                out.extend(channel_frame(channel, &std::mem::take(&mut run)).map(inner_wire));
                out.push(Item::Block {
                    channel,
                    piece,
                    offset,
                    len,
                    wire: header.len() as u64 + u64::from(len),
                });
            }
        }
    }
    out.extend(channel_frame(channel, &run).map(inner_wire));
    if let Some(item) = out.get_mut(first) {
        match item {
            Item::Frame { wire, .. } | Item::Block { wire, .. } => *wire += header as u64,
        }
    }
}

/// A rebuilt `Channel` frame counted by the frames it carries (its header is the original's).
fn inner_wire(item: Item) -> Item {
    match item {
        Item::Frame { body, .. } => {
            let (_, header) = wire::decode_channel_header(&body).expect("a frame just built");
            Item::Frame {
                wire: (body.len() - header) as u64,
                body,
            }
        }
        block => block,
    }
}

/// Reads frames from a transmit's segments without copying what it can slice: a frame lies
/// in one segment, but for a block's data (segments of its own) and a `Channel` frame's
/// header (whose frames follow in other segments).
struct Cursor<'a> {
    segments: &'a [Bytes],
    seg: usize,
    at: usize,
}

/// Bytes enough for any frame header this reads (prefix, version, kind, three varints).
const HEAD: usize = LEN_PREFIX + 2 + 15;

impl Cursor<'_> {
    /// Skips to a segment with bytes left; false at the end.
    fn settle(&mut self) -> bool {
        while let Some(s) = self.segments.get(self.seg) {
            if self.at < s.len() {
                return true;
            }
            self.seg += 1;
            self.at = 0;
        }
        false
    }

    /// Up to [`HEAD`] bytes from here (copied), and how many there are.
    fn peek(&self) -> ([u8; HEAD], usize) {
        let mut out = [0u8; HEAD];
        let mut len = 0;
        let (mut seg, mut at) = (self.seg, self.at);
        while len < HEAD
            && let Some(s) = self.segments.get(seg)
        {
            let take = (HEAD - len).min(s.len() - at);
            out[len..len + take].copy_from_slice(&s[at..at + take]);
            len += take;
            seg += 1;
            at = 0;
        }
        (out, len)
    }

    /// Skips the next `n` bytes.
    fn skip(&mut self, mut n: usize) {
        while n > 0 && self.settle() {
            let take = n.min(self.segments[self.seg].len() - self.at);
            self.at += take;
            n -= take;
        }
        assert_eq!(n, 0, "a transmit ends inside a frame");
    }

    /// The next `n` bytes as slices of the segments.
    fn take(&mut self, mut n: usize) -> Vec<Bytes> {
        let mut out = Vec::new();
        while n > 0 && self.settle() {
            let s = &self.segments[self.seg];
            let take = n.min(s.len() - self.at);
            out.push(s.slice(self.at..self.at + take));
            self.at += take;
            n -= take;
        }
        assert_eq!(n, 0, "a transmit ends inside a frame");
        out
    }

    /// The next `n` bytes in one piece.
    fn take_whole(&mut self, n: usize) -> Bytes {
        if self.settle() && self.segments[self.seg].len() - self.at >= n {
            let whole = self.segments[self.seg].slice(self.at..self.at + n);
            self.at += n;
            return whole;
        }
        let mut parts = self.take(n);
        if parts.len() == 1 {
            return parts.pop().expect("one part");
        }
        Bytes::from(parts.concat())
    }

    /// The length of the frame starting here (its prefix included) and its header bytes.
    fn head(&self) -> (usize, [u8; HEAD], usize) {
        let (head, got) = self.peek();
        assert!(got >= LEN_PREFIX, "a transmit ends inside a frame's length");
        let mut prefix = [0u8; LEN_PREFIX];
        prefix.copy_from_slice(&head[..LEN_PREFIX]);
        (LEN_PREFIX + u32::from_le_bytes(prefix) as usize, head, got)
    }

    /// The connection's next frame; block data is kept only if `data`.
    fn outer(&mut self, data: bool) -> Option<Outer> {
        if !self.settle() {
            return None;
        }
        let (len, head, got) = self.head();
        if head[..got].get(LEN_PREFIX + 1) != Some(&(Kind::Channel as u8)) {
            return Some(Outer::Own(self.take_whole(len)));
        }
        let (channel, header) = wire::decode_channel_header(&head[LEN_PREFIX..got])
            .expect("an endpoint sends well-formed channel headers");
        let header = LEN_PREFIX + header;
        self.skip(header);
        let mut left = len - header;
        let mut inner = Vec::new();
        while left > 0 {
            let frame = self.inner(data);
            left = left
                .checked_sub(frame.wire_len() as usize)
                .expect("a channel frame holds whole frames");
            inner.push(frame);
        }
        Some(Outer::Channel {
            channel,
            header,
            inner,
        })
    }

    /// The next frame inside a `Channel` frame; a block's data is kept only if `data`.
    fn inner(&mut self, data: bool) -> Inner {
        self.settle();
        let (len, head, got) = self.head();
        if head[..got].get(LEN_PREFIX + 1) != Some(&(Kind::Block as u8)) {
            return Inner::Whole(self.take_whole(len));
        }
        let h = wire::decode_block_header(&head[LEN_PREFIX..got])
            .expect("a swarm sends well-formed block headers");
        let header = self.take_whole(LEN_PREFIX + h.header_len);
        let data = if data {
            self.take(h.block.len as usize)
        } else {
            self.skip(h.block.len as usize);
            Vec::new()
        };
        Inner::Block {
            piece: h.block.piece,
            offset: h.block.offset,
            len: h.block.len,
            header,
            data,
        }
    }
}
