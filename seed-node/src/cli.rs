//! Command-line arguments.
//!
//! The fuzz crate compiles this module too, for [`crate::config`] (`#[path]`, see
//! `fuzz/README.md`): it uses clap and nothing else of this crate.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand};

/// Default address of the control API.
pub(crate) const DEFAULT_API: &str = "127.0.0.1:7710";
/// Default address peers connect to.
pub(crate) const DEFAULT_LISTEN: &str = "0.0.0.0:7711";

/// Pollen: verified peer-to-peer distribution of large artifacts.
#[derive(Debug, Parser)]
#[command(name = "pollen", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Print the content id of files, in the same format as `b3sum`.
    Id(IdArgs),
    /// Run a node: store artifacts, serve them to peers, fetch them from peers.
    #[command(args_override_self = true)]
    Node(Box<NodeArgs>),
    /// Import a file into the running node, seed it, and print its ticket.
    Share(ShareArgs),
    /// Fetch the artifact a ticket names through the running node, and write it out.
    Get(GetArgs),
    /// Show the running node's artifacts and peers.
    Status(StatusArgs),
    /// Stop a fetch in progress and delete what it got.
    Cancel(RemoveArgs),
    /// Stop seeding or fetching an artifact and delete it from the node.
    Rm(RemoveArgs),
    /// Keep an artifact whatever the storage limit (it is never evicted).
    Pin(RemoveArgs),
    /// Let an artifact be evicted again.
    Unpin(RemoveArgs),
    /// Node configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// How the node writes its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line.
    Json,
}

/// `pollen config` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Check a `pollen node --config` file: every key known, every value valid.
    Check {
        /// The file.
        path: PathBuf,
    },
}

/// Arguments of `pollen cancel` and `pollen rm`.
#[derive(Debug, Args)]
pub(crate) struct RemoveArgs {
    /// The artifact: its content id (hex), or a ticket.
    #[arg(value_name = "ID|TICKET")]
    pub(crate) target: String,
    #[command(flatten)]
    pub(crate) api: ApiArg,
}

/// Arguments of `pollen id`.
#[derive(Debug, Args)]
pub(crate) struct IdArgs {
    /// Print a ticket for each file instead of its content id.
    #[arg(long)]
    pub(crate) ticket: bool,
    /// Files to hash; `-` reads standard input (not with --ticket).
    #[arg(required = true, value_name = "PATH")]
    pub(crate) paths: Vec<PathBuf>,
}

/// Arguments of `pollen node`.
#[derive(Debug, Args)]
pub(crate) struct NodeArgs {
    /// A TOML file of settings: any flag below as a key (`max-upload-rate = "20M"`,
    /// `join = ["10.0.0.1:7711"]`, `no-signal = true`). Flags override it, and `POLLEN_*`
    /// environment variables (`POLLEN_MAX_UPLOAD_RATE`) override it too.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Directory for artifacts and node state (created if missing).
    #[arg(long, value_name = "DIR", env = "POLLEN_DATA")]
    pub(crate) data: PathBuf,
    /// Address to accept peer links on.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN, env = "POLLEN_LISTEN")]
    pub(crate) listen: SocketAddr,
    /// Address of the control API (keep it on localhost: it can read and write local files).
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_API, env = "POLLEN_API")]
    pub(crate) api: SocketAddr,
    /// Address put in tickets for peers to reach this node [default: the listen address, with
    /// 127.0.0.1 if it listens on all interfaces].
    #[arg(long, value_name = "ADDR", env = "POLLEN_ADVERTISE")]
    pub(crate) advertise: Option<SocketAddr>,
    /// Join the cluster through this member (any member's peer address; repeatable).
    #[arg(long, value_name = "ADDR", env = "POLLEN_JOIN", value_delimiter = ',')]
    pub(crate) join: Vec<SocketAddr>,
    /// Locality label (a rack, a data centre): peers in the same zone are preferred, and an
    /// artifact crosses into a zone about once per 25 of its fetchers (at least once).
    #[arg(long, value_name = "NAME", env = "POLLEN_ZONE")]
    pub(crate) zone: Option<String>,
    /// A peer to fetch from, for every artifact (repeatable).
    #[arg(
        long = "peer",
        value_name = "ADDR",
        env = "POLLEN_PEER",
        value_delimiter = ','
    )]
    pub(crate) peers: Vec<SocketAddr>,
    /// Cap on upload bandwidth to peers, in bytes per second (suffixes k, M, G: powers of 1000).
    #[arg(long, value_name = "RATE", env = "POLLEN_MAX_UPLOAD_RATE")]
    pub(crate) max_upload_rate: Option<Rate>,
    /// Most artifacts fetched at once; more `get`s are refused until one completes or is
    /// cancelled (each fetch costs two threads and buffers).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 64,
        env = "POLLEN_MAX_FETCHES"
    )]
    pub(crate) max_fetches: usize,
    /// Most bytes of artifacts to keep (`500G`, `2Ti`: powers of 1000, or of 1024 with `i`);
    /// the least recently used complete artifacts that are not pinned nor being served are
    /// evicted beyond it, down to 90%. No limit by default.
    #[arg(long, value_name = "SIZE", env = "POLLEN_MAX_STORAGE")]
    pub(crate) max_storage: Option<Size>,
    /// Remove complete artifacts not pinned and unused (not fetched, shared, written out or
    /// served) for this long (`90s`, `30m`, `12h`, `7d`). Never by default.
    #[arg(long, value_name = "DURATION", env = "POLLEN_EVICT_AFTER")]
    pub(crate) evict_after: Option<HumanDuration>,
    /// Stop serving an artifact this node fetched once this many nodes (itself included) hold
    /// it whole, as gossip tells: the node's own traffic comes first. Serve always by default.
    #[arg(long, value_name = "N", env = "POLLEN_SEED_COPIES")]
    pub(crate) seed_copies: Option<usize>,
    /// Stop serving an artifact this node fetched this long after it completed (`30m`, `2h`).
    #[arg(long, value_name = "DURATION", env = "POLLEN_SEED_TIME")]
    pub(crate) seed_time: Option<HumanDuration>,
    /// The dashboard's files (built by ./scripts/run into target/pollen-www). Default: the
    /// `pollen-www` directory next to the binary's directory, if it exists.
    #[arg(long, value_name = "DIR", env = "POLLEN_WEB")]
    pub(crate) web: Option<PathBuf>,
    /// Do not serve the signaling server for browsers at the API address's /signal.
    #[arg(long, env = "POLLEN_NO_SIGNAL")]
    pub(crate) no_signal: bool,
    /// Another signaling server to find browser peers through (`ws://host:port/signal`;
    /// repeatable). Tickets' signaling hints are used as well.
    #[arg(long = "signal", value_name = "URL", value_parser = parse_ws_url, env = "POLLEN_SIGNAL", value_delimiter = ',')]
    pub(crate) signal: Vec<String>,
    /// A STUN or TURN server for WebRTC (`stun:host:port`, `turn:host:port`; repeatable).
    /// None are needed on a LAN or on one machine.
    #[arg(long = "ice-server", value_name = "URL", value_parser = parse_ice_url, env = "POLLEN_ICE_SERVER", value_delimiter = ',')]
    pub(crate) ice_servers: Vec<String>,
    /// Log lines as plain text or one JSON object each (for log shippers).
    #[arg(
        long,
        value_enum,
        value_name = "FORMAT",
        default_value = "text",
        env = "POLLEN_LOG_FORMAT"
    )]
    pub(crate) log_format: LogFormat,
    /// User name and credential for the TURN servers, as USER:PASSWORD.
    #[arg(long, value_name = "USER:PASSWORD", env = "POLLEN_TURN_CREDENTIALS")]
    pub(crate) turn_credentials: Option<String>,
}

fn parse_ws_url(s: &str) -> Result<String, String> {
    if s.starts_with("ws://") || s.starts_with("wss://") {
        Ok(s.to_string())
    } else {
        Err(format!(
            "'{s}' is not a WebSocket URL (ws://host:port/signal)"
        ))
    }
}

fn parse_ice_url(s: &str) -> Result<String, String> {
    if ["stun:", "stuns:", "turn:", "turns:"]
        .iter()
        .any(|p| s.starts_with(p))
    {
        Ok(s.to_string())
    } else {
        Err(format!(
            "'{s}' is not a STUN or TURN URL (stun:host:port, turn:host:port)"
        ))
    }
}

/// A rate in bytes per second, parsed from e.g. `500k`, `20M`, `1G` or `1500000`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rate(pub(crate) u64);

impl std::str::FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (digits, scale) = match s.char_indices().last() {
            Some((i, 'k' | 'K')) => (&s[..i], 1_000),
            Some((i, 'm' | 'M')) => (&s[..i], 1_000_000),
            Some((i, 'g' | 'G')) => (&s[..i], 1_000_000_000),
            _ => (s, 1),
        };
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("'{s}' is not a rate like 500k, 20M or 1500000"))?;
        match n.checked_mul(scale) {
            Some(0) | None => Err(format!("'{s}' is not a usable rate")),
            Some(rate) => Ok(Rate(rate)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Rate;

    #[test]
    fn sizes_and_durations_parse_with_suffixes() {
        use super::{HumanDuration, Size};
        use std::time::Duration;
        assert_eq!("500G".parse(), Ok(Size(500_000_000_000)));
        assert_eq!("2Ti".parse(), Ok(Size(2 << 40)));
        assert_eq!("3MiB".parse(), Ok(Size(3 << 20)));
        assert_eq!("1500".parse(), Ok(Size(1500)));
        assert!("lots".parse::<Size>().is_err());
        assert!("0G".parse::<Size>().is_err());
        assert_eq!("90s".parse(), Ok(HumanDuration(Duration::from_secs(90))));
        assert_eq!(
            "7d".parse(),
            Ok(HumanDuration(Duration::from_secs(7 * 86_400)))
        );
        assert_eq!("45".parse(), Ok(HumanDuration(Duration::from_secs(45))));
        assert!("soon".parse::<HumanDuration>().is_err());
    }

    #[test]
    fn rates_parse_with_suffixes() {
        assert_eq!("1500".parse(), Ok(Rate(1500)));
        assert_eq!("20M".parse(), Ok(Rate(20_000_000)));
        assert_eq!("5k".parse(), Ok(Rate(5_000)));
        assert!("0".parse::<Rate>().is_err());
        assert!("fast".parse::<Rate>().is_err());
        assert!("99999999999999999999G".parse::<Rate>().is_err());
    }
}

/// A size in bytes, parsed from e.g. `500G`, `2Ti` or `1500000`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Size(pub(crate) u64);

impl std::str::FromStr for Size {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let units: [(&str, u64); 8] = [
            ("Ti", 1 << 40),
            ("Gi", 1 << 30),
            ("Mi", 1 << 20),
            ("Ki", 1 << 10),
            ("T", 1_000_000_000_000),
            ("G", 1_000_000_000),
            ("M", 1_000_000),
            ("k", 1_000),
        ];
        let trimmed = s.trim().trim_end_matches(['B', 'b']);
        let (digits, scale) = units
            .iter()
            .find_map(|&(u, n)| trimmed.strip_suffix(u).map(|d| (d, n)))
            .unwrap_or((trimmed, 1));
        let n: u64 = digits
            .trim()
            .parse()
            .map_err(|_| format!("'{s}' is not a size like 500G, 2Ti or 1500000"))?;
        match n.checked_mul(scale) {
            Some(0) | None => Err(format!("'{s}' is not a usable size")),
            Some(v) => Ok(Size(v)),
        }
    }
}

/// A duration, parsed from e.g. `90s`, `30m`, `12h`, `7d` or seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HumanDuration(pub(crate) std::time::Duration);

impl std::str::FromStr for HumanDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let (digits, scale) = match t.char_indices().last() {
            Some((i, 's')) => (&t[..i], 1),
            Some((i, 'm')) => (&t[..i], 60),
            Some((i, 'h')) => (&t[..i], 3600),
            Some((i, 'd')) => (&t[..i], 86_400),
            _ => (t, 1),
        };
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("'{s}' is not a duration like 90s, 30m, 12h or 7d"))?;
        match n.checked_mul(scale) {
            Some(0) | None => Err(format!("'{s}' is not a usable duration")),
            Some(secs) => Ok(HumanDuration(std::time::Duration::from_secs(secs))),
        }
    }
}

/// Where the running node's API is.
#[derive(Debug, Args)]
pub(crate) struct ApiArg {
    /// URL of the node's control API.
    #[arg(
        long,
        value_name = "URL",
        env = "POLLEN_API_URL",
        default_value = concat!("http://", "127.0.0.1:7710")
    )]
    pub(crate) api: String,
}

/// Arguments of `pollen share`.
#[derive(Debug, Args)]
pub(crate) struct ShareArgs {
    /// The file to share.
    pub(crate) path: PathBuf,
    #[command(flatten)]
    pub(crate) api: ApiArg,
}

/// Arguments of `pollen get`.
#[derive(Debug, Args)]
pub(crate) struct GetArgs {
    /// The ticket (or ticket link).
    pub(crate) ticket: String,
    /// Where to write the artifact [default: its name from the ticket, in the current
    /// directory, with a leading dot and invisible formatting characters replaced by `_`].
    #[arg(short, long, value_name = "PATH")]
    pub(crate) output: Option<PathBuf>,
    /// Replace the output file if it exists.
    #[arg(long)]
    pub(crate) force: bool,
    /// Give up when nothing arrives for this many seconds (the node goes on fetching; a
    /// later get resumes it, and `pollen cancel` stops it).
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub(crate) stall_timeout: u64,
    #[command(flatten)]
    pub(crate) api: ApiArg,
}

/// Arguments of `pollen status`.
#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// Print the node's status as JSON (fields documented in the README).
    #[arg(long)]
    pub(crate) json: bool,
    /// Show the cluster as gossip tells it: every member, and how many hold each artifact.
    #[arg(long)]
    pub(crate) cluster: bool,
    #[command(flatten)]
    pub(crate) api: ApiArg,
}
