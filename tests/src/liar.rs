//! A hostile peer for tests: it accepts TCP links, speaks the protocol, serves an artifact's
//! manifest and claims every piece, but never sends a block.

use std::{
    io::{ErrorKind, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Duration,
};

use pollen_core::{
    Bitfield, Instant, Manifest, PeerId,
    endpoint::{Endpoint, EndpointConfig, Output},
    swarm::{Action, Swarm, SwarmConfig},
    wire::FrameBuffer,
};

/// A running liar; it stops when dropped.
pub struct Liar {
    /// Where it accepts links.
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Liar {
    /// Starts a liar about `data`, on loopback.
    pub fn start(data: &[u8]) -> Liar {
        let manifest = Manifest::of(data).expect("a test artifact");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        thread::spawn(move || {
            let mut n = 0u8;
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        n = n.wrapping_add(1);
                        let (m, s) = (manifest.clone(), stopped.clone());
                        thread::spawn(move || serve(stream, m, n, &s));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(10));
                    }
                    Err(_) => return,
                }
            }
        });
        Liar { addr, stop }
    }
}

impl Drop for Liar {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One link: an endpoint whose swarm holds everything and whose storage never reads a piece.
fn serve(mut stream: TcpStream, manifest: Manifest, n: u8, stop: &AtomicBool) {
    let start = std::time::Instant::now();
    let now = || Instant::from_micros(start.elapsed().as_micros() as u64);
    let peer = PeerId::from_bytes([0xEE ^ n; 32]);
    let mut ep = Endpoint::new(EndpointConfig::new(peer));
    let pieces = manifest.layout().piece_count();
    let swarm = Swarm::with_manifest(
        SwarmConfig::new(peer),
        manifest,
        Bitfield::full(pieces),
        now(),
        1,
    );
    ep.add_swarm(now(), swarm);
    let conn = ep.connect(now(), false);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(20)));
    let mut frames = FrameBuffer::new();
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        while let Some(out) = ep.poll_output() {
            match out {
                Output::Transmit(_, segments) => {
                    for s in segments {
                        if stream.write_all(&s).is_err() {
                            return;
                        }
                    }
                }
                Output::Close(..) => return,
                // Reads are never answered: it holds nothing it would send.
                Output::Action(_, Action::ReadPiece { .. }) | Output::Action(..) => {}
                Output::Event(_) => {}
            }
        }
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(k) => {
                frames.push(&buf[..k]);
                while let Ok(Some(body)) = frames.next_frame() {
                    ep.handle_frame(now(), conn, body);
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
        ep.handle_timeout(now());
    }
}
