//! pollen-tests: end-to-end tests that drive real `pollen` processes on loopback.
//!
//! This library is their harness: it starts nodes on ports the OS picks, reads the addresses
//! they bound from their first line of output, and drives them with the `pollen` CLI. The
//! `pollen` binary must be built first; `cargo test --workspace` does that.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{Arc, Mutex, mpsc},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

pub mod browser;
pub mod liar;

/// The `pollen` binary next to this test executable (`target/<profile>/pollen`).
pub fn pollen_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // Tests live in target/<profile>/deps/, benchmark binaries in target/<profile>/.
    let candidates = [exe.parent(), exe.parent().and_then(Path::parent)];
    let bin = candidates
        .into_iter()
        .flatten()
        .map(|dir| dir.join("pollen"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("target/debug/pollen"));
    assert!(
        bin.is_file(),
        "{} is missing: build it first (cargo build -p pollen, or cargo test --workspace)",
        bin.display()
    );
    bin
}

/// Deterministic pseudo-random bytes.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A running `pollen node` process with its own data directory; killed when dropped.
pub struct Node {
    child: Child,
    /// Data directory.
    pub data: PathBuf,
    /// Address peers connect to.
    pub listen: String,
    /// URL of the API.
    pub api: String,
    log: Arc<Mutex<String>>,
}

/// Options for starting a node.
#[derive(Debug, Clone, Default)]
pub struct NodeOpts {
    /// `--peer` addresses.
    pub peers: Vec<String>,
    /// `--max-upload-rate`, bytes per second.
    pub max_upload_rate: Option<u64>,
    /// Reuse this listen address (to restart a node where it was).
    pub listen: Option<String>,
    /// `--join` addresses.
    pub join: Vec<String>,
    /// `--zone`.
    pub zone: Option<String>,
    /// Any other arguments.
    pub extra: Vec<String>,
    /// Run the node with this open-file limit (soft and hard), through `prlimit`.
    pub nofile: Option<u64>,
    /// Environment variables for the node.
    pub env: Vec<(String, String)>,
}

impl Node {
    /// Starts a node on `data` and waits until it serves its API.
    pub fn start(data: &Path, opts: &NodeOpts) -> Node {
        let mut cmd = match opts.nofile {
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}"))
                    .arg("--")
                    .arg(pollen_bin());
                c
            }
            None => Command::new(pollen_bin()),
        };
        cmd.arg("node")
            .arg("--data")
            .arg(data)
            .args(["--listen", opts.listen.as_deref().unwrap_or("127.0.0.1:0")])
            .args(["--api", "127.0.0.1:0"]);
        for p in &opts.peers {
            cmd.args(["--peer", p]);
        }
        for j in &opts.join {
            cmd.args(["--join", j]);
        }
        if let Some(zone) = &opts.zone {
            cmd.args(["--zone", zone]);
        }
        if let Some(rate) = opts.max_upload_rate {
            cmd.args(["--max-upload-rate", &rate.to_string()]);
        }
        cmd.args(&opts.extra);
        cmd.envs(opts.env.iter().map(|(k, v)| (k, v)));
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pollen node");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("API on http://") {
                    let _ = tx.send(line.clone());
                }
                if let Ok(mut log) = sink.lock() {
                    log.push_str(&line);
                    log.push('\n');
                }
            }
        });
        let Ok(banner) = rx.recv_timeout(Duration::from_secs(20)) else {
            let _ = child.kill();
            panic!(
                "node did not start: {}",
                log.lock().map(|l| l.clone()).unwrap_or_default()
            );
        };
        let field = |after: &str| {
            banner
                .split(after)
                .nth(1)
                .and_then(|s| s.split([' ', ',']).next())
                .map(str::to_string)
                .unwrap_or_else(|| panic!("unexpected banner: {banner}"))
        };
        Node {
            child,
            data: data.to_path_buf(),
            listen: field("peers on "),
            api: format!("http://{}", field("API on http://")),
            log,
        }
    }

    /// The node's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The node's resident memory, in bytes (from `/proc`).
    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
            .expect("VmRSS in /proc status")
    }

    /// Runs `pollen ARGS... --api <this node>` to completion.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(pollen_bin())
            .args(args)
            .args(["--api", &self.api])
            .stdin(Stdio::null())
            .output()
            .expect("run pollen")
    }

    /// Runs `pollen ARGS... --api <this node>` to completion in directory `dir`.
    pub fn cli_in(&self, dir: &Path, args: &[&str]) -> Output {
        Command::new(pollen_bin())
            .args(args)
            .args(["--api", &self.api])
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .expect("run pollen")
    }

    /// Runs `pollen ARGS... --api <this node>`, killing it if it has not ended within `limit`
    /// (a command that hangs fails the test instead of holding it forever).
    pub fn cli_within(&self, limit: Duration, args: &[&str]) -> Output {
        let mut child = self.cli_spawn(args);
        let start = Instant::now();
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return child.wait_with_output().expect("collect pollen output");
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                let out = child.wait_with_output().expect("collect pollen output");
                panic!(
                    "pollen {args:?} did not end within {limit:?}:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts `pollen ARGS... --api <this node>` in the background.
    pub fn cli_spawn(&self, args: &[&str]) -> Child {
        Command::new(pollen_bin())
            .args(args)
            .args(["--api", &self.api])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pollen")
    }

    /// Shares a file and returns its ticket (the last line of output).
    pub fn share(&self, path: &Path) -> String {
        let out = self.cli(&["share", path.to_str().expect("utf-8 path")]);
        assert!(
            out.status.success(),
            "share failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .expect("a ticket line")
            .to_string()
    }

    /// `pollen status --json`.
    pub fn status(&self) -> Value {
        let out = self.cli(&["status", "--json"]);
        assert!(
            out.status.success(),
            "status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("status JSON")
    }

    /// `GET /api/status` over a plain socket: cheaper than running the CLI, for tight polls.
    pub fn status_http(&self) -> Value {
        use std::io::{Read, Write};
        let addr = self.api.trim_start_matches("http://");
        let mut sock = std::net::TcpStream::connect(addr).expect("connect to the API");
        write!(
            sock,
            "GET /api/status HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .expect("send request");
        let mut reply = Vec::new();
        sock.read_to_end(&mut reply).expect("read reply");
        let start = reply
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("an HTTP reply");
        serde_json::from_slice(&reply[start + 4..]).expect("status JSON")
    }

    /// The status of one artifact, if the node has it.
    pub fn artifact(&self, id: &str) -> Option<Value> {
        self.status_http()["artifacts"]
            .as_array()?
            .iter()
            .find(|a| a["id"] == id)
            .cloned()
    }

    /// Polls until `pred` holds for the artifact's status, or panics after `limit`.
    pub fn wait_for(&self, id: &str, limit: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            if let Some(a) = self.artifact(id).filter(&pred) {
                return a;
            }
            assert!(
                start.elapsed() < limit,
                "timed out; node log:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Members this node sees with `status` (`alive`, `suspect`, `dead`, `left`), by peer id.
    pub fn members_with(&self, status: &str) -> Vec<String> {
        self.status_http()["members"]
            .as_array()
            .map(|ms| {
                ms.iter()
                    .filter(|m| m["status"] == status)
                    .filter_map(|m| m["peer_id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// This node's peer id (hex prefix), as status reports it.
    pub fn peer_id(&self) -> String {
        self.status_http()["peer_id"]
            .as_str()
            .expect("a peer id")
            .to_string()
    }

    /// Polls until `pred` holds for this node, or panics after `limit` with its log.
    pub fn wait_until(&self, limit: Duration, what: &str, pred: impl Fn(&Node) -> bool) {
        let start = Instant::now();
        while !pred(self) {
            assert!(
                start.elapsed() < limit,
                "timed out waiting until {what}; node log:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Everything the node printed.
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `n` distinct loopback ports free for both TCP and UDP right now (a node listens for peers on
/// TCP and gossips on UDP at the same port), for nodes that must know each other's addresses
/// before any of them starts.
pub fn free_ports(n: usize) -> Vec<u16> {
    let mut held = Vec::new();
    while held.len() < n {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a TCP port");
        let port = tcp.local_addr().expect("a local address").port();
        if let Ok(udp) = std::net::UdpSocket::bind(("127.0.0.1", port)) {
            held.push((port, tcp, udp));
        }
    }
    held.into_iter().map(|(port, _, _)| port).collect()
}

/// Waits for a `pollen get` to finish; panics with its output if it fails.
pub fn finish_get(child: Child) {
    let out = child.wait_with_output().expect("wait for pollen get");
    assert!(
        out.status.success(),
        "pollen get failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes `len` pseudo-random bytes (from `seed`) to `dir/artifact.bin`; returns the path,
/// the bytes and their content id.
pub fn write_artifact(dir: &Path, len: usize, seed: u64) -> (PathBuf, Vec<u8>, String) {
    let data = pseudo_random(len, seed);
    let file = dir.join("artifact.bin");
    std::fs::write(&file, &data).expect("write artifact");
    let id = blake3::hash(&data).to_hex().to_string();
    (file, data, id)
}

/// A ticket for `file` with no addresses in it (`pollen id --ticket`).
pub fn bare_ticket(file: &Path) -> String {
    let out = Command::new(pollen_bin())
        .args(["id", "--ticket"])
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .expect("run pollen id");
    assert!(out.status.success(), "pollen id --ticket failed");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("a ticket")
        .to_string()
}

/// The BLAKE3 of a file, in hex.
pub fn b3(path: &Path) -> String {
    let data = std::fs::read(path).expect("read output");
    blake3::hash(&data).to_hex().to_string()
}
