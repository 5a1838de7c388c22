//! Tickets: everything a peer needs to fetch an artifact, as one copy-pasteable string.
//!
//! A ticket is `pollen` followed by lowercase base32 (RFC 4648 "extended hex" alphabet, no
//! padding) of:
//!
//! ```text
//! version:u8 | postcard(id, size, name?, hint count) | postcard(hint)* | checksum:[u8; 4]
//! ```
//!
//! where the checksum is the first four bytes of the BLAKE3 hash of everything before it, so a
//! mistyped or truncated ticket is refused instead of fetching something else. The URL form is
//! `<dashboard base>/#<ticket>`: the fragment never reaches a server's logs.

use alloc::{
    format,
    string::{String, ToString},
    vec::Vec,
};
use core::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    str::FromStr,
};

use serde::{Deserialize, Serialize};

use crate::{ContentId, LayoutError, PieceLayout};

/// Prefix of every ticket string.
pub const PREFIX: &str = "pollen";
/// Version of the ticket payload this build writes and reads.
pub const VERSION: u8 = 0;
/// Longest accepted ticket string or URL.
pub const MAX_TICKET_LEN: usize = 2048;
/// Longest artifact name, in bytes.
pub const MAX_NAME_LEN: usize = 255;
/// Longest signaling URL, in bytes.
pub const MAX_URL_LEN: usize = 255;
/// Most bootstrap hints in one ticket.
pub const MAX_HINTS: usize = 16;

const CHECKSUM_LEN: usize = 4;
const BASE32: data_encoding::Encoding = data_encoding::BASE32HEX_NOPAD;

/// A reference to an artifact: its content id, size, optional name and where to start looking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    id: ContentId,
    size: u64,
    name: Option<String>,
    hints: Vec<Hint>,
}

/// Where a fetching peer can find its first neighbours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hint {
    /// A native node accepting TCP links.
    Node(SocketAddr),
    /// A signaling server's WebSocket URL (`ws://` or `wss://`).
    Signal(String),
}

/// Why a string is not a valid ticket, or a field not valid in one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// Longer than [`MAX_TICKET_LEN`].
    #[error("ticket is {0} characters long; the limit is {MAX_TICKET_LEN}")]
    TooLong(usize),
    /// A URL without a `#ticket` fragment.
    #[error("the link has no '#' followed by a ticket")]
    NoFragment,
    /// Does not start with `pollen`.
    #[error("a ticket starts with '{PREFIX}'")]
    Prefix,
    /// Not valid base32 after the prefix.
    #[error("invalid character or length in the ticket at position {0}")]
    Encoding(usize),
    /// The checksum does not match: the ticket was mistyped or cut short.
    #[error("ticket checksum does not match; it was probably mistyped or cut short")]
    Checksum,
    /// Written by a newer version of Pollen.
    #[error("ticket version {0} is not supported by this version of Pollen")]
    Version(u8),
    /// The payload does not decode.
    #[error("ticket payload is malformed")]
    Malformed,
    /// The size has no piece layout.
    #[error(transparent)]
    Size(#[from] LayoutError),
    /// The name is empty, too long, or not a plain file name.
    #[error("invalid artifact name: {0}")]
    Name(&'static str),
    /// A signaling URL is not a `ws://` or `wss://` URL within the length limit.
    #[error("invalid signaling URL: {0}")]
    SignalUrl(&'static str),
    /// More than [`MAX_HINTS`] hints.
    #[error("a ticket carries at most {MAX_HINTS} hints")]
    TooManyHints,
}

impl Ticket {
    /// A ticket with no name and no hints.
    pub fn new(id: ContentId, size: u64) -> Result<Self, TicketError> {
        PieceLayout::for_size(size)?;
        Ok(Self {
            id,
            size,
            name: None,
            hints: Vec::new(),
        })
    }

    /// Sets the artifact's name: a plain file name (no path separators or control characters).
    pub fn with_name(mut self, name: &str) -> Result<Self, TicketError> {
        check_name(name)?;
        self.name = Some(name.to_string());
        Ok(self)
    }

    /// Adds a bootstrap hint.
    pub fn with_hint(mut self, hint: Hint) -> Result<Self, TicketError> {
        if self.hints.len() >= MAX_HINTS {
            return Err(TicketError::TooManyHints);
        }
        if let Hint::Signal(url) = &hint {
            check_signal_url(url)?;
        }
        self.hints.push(hint);
        Ok(self)
    }

    /// The artifact's content id.
    pub fn id(&self) -> ContentId {
        self.id
    }

    /// The artifact's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The artifact's suggested file name.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The bootstrap hints.
    pub fn hints(&self) -> &[Hint] {
        &self.hints
    }

    /// The ticket as a dashboard link: `<base>/#<ticket>`.
    pub fn to_url(&self, base: &str) -> String {
        format!("{}/#{}", base.trim_end_matches('/'), self)
    }

    /// The binary payload, checksum included.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = alloc::vec![VERSION];
        let head = Head {
            id: self.id,
            size: self.size,
            name: self.name.as_deref(),
            hints: self.hints.len() as u8,
        };
        out = postcard::to_extend(&head, out).expect("writing to a Vec cannot fail");
        for hint in &self.hints {
            out = postcard::to_extend(&WireHint::from(hint), out)
                .expect("writing to a Vec cannot fail");
        }
        let checksum = checksum(&out);
        out.extend_from_slice(&checksum);
        out
    }

    /// Parses the binary payload, checksum included.
    fn from_bytes(bytes: &[u8]) -> Result<Self, TicketError> {
        let (body, sum) = bytes
            .split_last_chunk::<CHECKSUM_LEN>()
            .ok_or(TicketError::Checksum)?;
        if checksum(body) != *sum {
            return Err(TicketError::Checksum);
        }
        let (&version, rest) = body.split_first().ok_or(TicketError::Malformed)?;
        if version != VERSION {
            return Err(TicketError::Version(version));
        }
        let (head, mut rest) =
            postcard::take_from_bytes::<Head<'_>>(rest).map_err(|_| TicketError::Malformed)?;
        if usize::from(head.hints) > MAX_HINTS {
            return Err(TicketError::TooManyHints);
        }
        let mut ticket = Ticket::new(head.id, head.size)?;
        if let Some(name) = head.name {
            ticket = ticket.with_name(name)?;
        }
        for _ in 0..head.hints {
            let (hint, tail) = postcard::take_from_bytes::<WireHint<'_>>(rest)
                .map_err(|_| TicketError::Malformed)?;
            ticket = ticket.with_hint(hint.into())?;
            rest = tail;
        }
        if !rest.is_empty() {
            return Err(TicketError::Malformed);
        }
        Ok(ticket)
    }
}

impl fmt::Display for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(PREFIX)?;
        f.write_str(&BASE32.encode(&self.to_bytes()).to_ascii_lowercase())
    }
}

impl FromStr for Ticket {
    type Err = TicketError;

    /// Parses a bare ticket or a link whose fragment is a ticket; surrounding whitespace is
    /// ignored, and letters may be in either case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.len() > MAX_TICKET_LEN {
            return Err(TicketError::TooLong(s.len()));
        }
        let ticket = if s.contains("://") {
            s.rsplit_once('#').ok_or(TicketError::NoFragment)?.1
        } else {
            s
        };
        let encoded = ticket
            .get(..PREFIX.len())
            .filter(|p| p.eq_ignore_ascii_case(PREFIX))
            .and(ticket.get(PREFIX.len()..))
            .ok_or(TicketError::Prefix)?;
        let upper = encoded.to_ascii_uppercase();
        let bytes = BASE32
            .decode(upper.as_bytes())
            .map_err(|e| TicketError::Encoding(PREFIX.len() + e.position))?;
        Self::from_bytes(&bytes)
    }
}

/// Checks that `name` may be offered as a file name.
pub fn check_name(name: &str) -> Result<(), TicketError> {
    if name.is_empty() {
        return Err(TicketError::Name("empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(TicketError::Name("longer than 255 bytes"));
    }
    if name == "." || name == ".." {
        return Err(TicketError::Name("not a file name"));
    }
    if name.contains(['/', '\\']) {
        return Err(TicketError::Name("contains a path separator"));
    }
    if name.chars().any(char::is_control) {
        return Err(TicketError::Name("contains a control character"));
    }
    Ok(())
}

fn check_signal_url(url: &str) -> Result<(), TicketError> {
    if url.len() > MAX_URL_LEN {
        return Err(TicketError::SignalUrl("longer than 255 bytes"));
    }
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("ws://")
        .or_else(|| lower.strip_prefix("wss://"))
        .ok_or(TicketError::SignalUrl("must start with ws:// or wss://"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(TicketError::SignalUrl("has no host"));
    }
    if url
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '#')
    {
        return Err(TicketError::SignalUrl(
            "contains whitespace, '#' or a control character",
        ));
    }
    Ok(())
}

fn checksum(body: &[u8]) -> [u8; CHECKSUM_LEN] {
    let hash = blake3::hash(body);
    let mut out = [0; CHECKSUM_LEN];
    out.copy_from_slice(&hash.as_bytes()[..CHECKSUM_LEN]);
    out
}

/// The fixed fields of the binary payload.
#[derive(Serialize, Deserialize)]
struct Head<'a> {
    id: ContentId,
    size: u64,
    #[serde(borrow)]
    name: Option<&'a str>,
    hints: u8,
}

/// One hint as encoded in the payload.
#[derive(Serialize, Deserialize)]
enum WireHint<'a> {
    V4([u8; 4], u16),
    V6([u8; 16], u16),
    Signal(&'a str),
}

impl<'a> From<&'a Hint> for WireHint<'a> {
    fn from(hint: &'a Hint) -> Self {
        match hint {
            Hint::Node(SocketAddr::V4(a)) => WireHint::V4(a.ip().octets(), a.port()),
            Hint::Node(SocketAddr::V6(a)) => WireHint::V6(a.ip().octets(), a.port()),
            Hint::Signal(url) => WireHint::Signal(url),
        }
    }
}

impl From<WireHint<'_>> for Hint {
    fn from(hint: WireHint<'_>) -> Self {
        match hint {
            WireHint::V4(ip, port) => {
                Hint::Node(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port))
            }
            WireHint::V6(ip, port) => {
                Hint::Node(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port))
            }
            WireHint::Signal(url) => Hint::Signal(url.to_string()),
        }
    }
}
