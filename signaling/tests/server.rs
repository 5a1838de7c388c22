//! The signaling server over real WebSockets on loopback: relaying, and every limit answered
//! with an error message while other connections carry on.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use pollen_core::{
    ContentId, PeerId,
    signal::{self, ErrorCode, FromServer, Limits, PeerKind, Signal, ToServer, decode_from_server},
};
use pollen_signal::{Config, PATH, Signaling};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{self, Message},
};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn start(limits: Limits) -> (String, Signaling) {
    let config = Config {
        limits,
        max_connections: 100,
        max_connections_per_ip: 100,
        ..Config::default()
    };
    serve(config, true).await
}

/// Serves `config` on loopback as `pollen-signal` does ([`pollen_signal::serve`], which tells
/// the router each connection's remote address), or with the bare router, as a server
/// embedding it without remote addresses does.
async fn serve(config: Config, connect_info: bool) -> (String, Signaling) {
    let server = Signaling::new(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let url = format!(
        "ws://{}{PATH}",
        listener.local_addr().expect("has an address")
    );
    if connect_info {
        tokio::spawn(pollen_signal::serve(listener, server.clone()));
    } else {
        let app = pollen_signal::router(server.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
    (url, server)
}

fn peer(n: u8) -> PeerId {
    PeerId::from_bytes([n; 32])
}

fn swarm(n: u8) -> ContentId {
    ContentId::from_bytes([n; 32])
}

async fn connect(url: &str) -> Ws {
    tokio_tungstenite::connect_async(url)
        .await
        .expect("connects")
        .0
}

fn server_addr(url: &str) -> SocketAddr {
    url.trim_start_matches("ws://")
        .trim_end_matches(PATH)
        .parse()
        .expect("a socket address")
}

/// A TCP connection to the server from `ip` (any address in 127.0.0.0/8 reaches a loopback
/// server).
async fn tcp_from(url: &str, ip: Ipv4Addr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("a socket");
    socket
        .bind(SocketAddr::new(IpAddr::V4(ip), 0))
        .expect("binds a loopback address");
    socket.connect(server_addr(url)).await.expect("connects")
}

/// Connects from `ip`; a refusal's HTTP status, or `None` if the server closed the connection
/// without an answer.
async fn connect_from(url: &str, ip: Ipv4Addr) -> Result<Ws, Option<u16>> {
    let stream = tcp_from(url, ip).await;
    match tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream)).await {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(response)) => Err(Some(response.status().as_u16())),
        Err(_) => Err(None),
    }
}

/// Waits until `server` holds `connections` connections.
async fn wait_for_connections(server: &Signaling, connections: usize) {
    for _ in 0..250 {
        if server.stats().connections == connections {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.stats().connections, connections);
}

async fn send(ws: &mut Ws, msg: ToServer) {
    let bytes = signal::encode_to_server(&msg).expect("encodes");
    ws.send(Message::Binary(bytes.into())).await.expect("sends");
}

/// The next message from the server, or `None` once it closed.
async fn recv(ws: &mut Ws) -> Option<FromServer> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("the server answers within 10 s");
        match msg {
            Some(Ok(Message::Binary(bytes))) => {
                return Some(decode_from_server(&bytes).expect("the server sends valid messages"));
            }
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => {}
        }
    }
}

async fn hello(url: &str, n: u8, kind: PeerKind) -> Ws {
    let mut ws = connect(url).await;
    send(
        &mut ws,
        ToServer::Hello {
            peer: peer(n),
            kind,
        },
    )
    .await;
    assert!(matches!(
        recv(&mut ws).await,
        Some(FromServer::Welcome { .. })
    ));
    ws
}

async fn expect_error(ws: &mut Ws, code: ErrorCode) -> String {
    match recv(ws).await {
        Some(FromServer::Error { code: got, text }) if got == code => text,
        other => panic!("expected a {code:?} error, got {other:?}"),
    }
}

/// The connection still answers.
async fn still_serves(ws: &mut Ws) {
    send(ws, ToServer::Ping).await;
    assert_eq!(recv(ws).await, Some(FromServer::Pong));
}

#[tokio::test]
async fn members_find_each_other_and_relay_offers_and_answers() {
    let (url, server) = start(Limits::default()).await;
    let mut native = hello(&url, 1, PeerKind::Native).await;
    send(&mut native, ToServer::Join { swarm: swarm(9) }).await;
    assert_eq!(
        recv(&mut native).await,
        Some(FromServer::Members {
            swarm: swarm(9),
            members: vec![]
        })
    );
    let mut browser = hello(&url, 2, PeerKind::Browser).await;
    send(&mut browser, ToServer::Join { swarm: swarm(9) }).await;
    let Some(FromServer::Members { members, .. }) = recv(&mut browser).await else {
        panic!("a join is answered with members");
    };
    assert_eq!(members.len(), 1);
    assert_eq!(
        (members[0].peer, members[0].kind),
        (peer(1), PeerKind::Native)
    );

    let offer = Signal::Offer("v=0 offer".into());
    send(
        &mut browser,
        ToServer::Relay {
            swarm: swarm(9),
            to: peer(1),
            signal: offer.clone(),
        },
    )
    .await;
    assert_eq!(
        recv(&mut native).await,
        Some(FromServer::Relay {
            swarm: swarm(9),
            from: peer(2),
            kind: PeerKind::Browser,
            signal: offer
        })
    );
    let answer = Signal::Answer("v=0 answer".into());
    send(
        &mut native,
        ToServer::Relay {
            swarm: swarm(9),
            to: peer(2),
            signal: answer.clone(),
        },
    )
    .await;
    assert!(matches!(
        recv(&mut browser).await,
        Some(FromServer::Relay { signal, .. }) if signal == answer
    ));

    // Signals go only to members of a swarm the sender joined.
    send(
        &mut native,
        ToServer::Relay {
            swarm: swarm(8),
            to: peer(2),
            signal: Signal::Offer("x".into()),
        },
    )
    .await;
    expect_error(&mut native, ErrorCode::NotJoined).await;
    send(
        &mut native,
        ToServer::Relay {
            swarm: swarm(9),
            to: peer(77),
            signal: Signal::Offer("x".into()),
        },
    )
    .await;
    expect_error(&mut native, ErrorCode::UnknownPeer).await;

    // A closed connection leaves its swarms.
    drop(browser);
    for _ in 0..100 {
        if server.stats().peers == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.stats().peers, 1);
    send(&mut native, ToServer::Join { swarm: swarm(9) }).await;
    assert!(matches!(
        recv(&mut native).await,
        Some(FromServer::Members { members, .. }) if members.is_empty()
    ));
}

#[tokio::test]
async fn oversize_and_malformed_messages_get_errors_and_others_keep_being_served() {
    let (url, _server) = start(Limits::default()).await;
    let mut bystander = hello(&url, 1, PeerKind::Native).await;
    let mut abuser = hello(&url, 2, PeerKind::Browser).await;

    // Over the limit: refused with an error, the connection stays.
    let over = vec![signal::SIGNAL_VERSION; signal::MAX_MESSAGE + 1];
    abuser
        .send(Message::Binary(over.into()))
        .await
        .expect("sends");
    let text = expect_error(&mut abuser, ErrorCode::TooLarge).await;
    assert!(text.contains("65536"), "the error names the limit: {text}");
    still_serves(&mut abuser).await;

    // Garbage, a wrong version, and text.
    for junk in [vec![1u8, 250, 250, 250], vec![9u8, 0], vec![]] {
        abuser
            .send(Message::Binary(junk.into()))
            .await
            .expect("sends");
        expect_error(&mut abuser, ErrorCode::Malformed).await;
    }
    abuser
        .send(Message::Text("{\"hello\":1}".into()))
        .await
        .expect("sends");
    expect_error(&mut abuser, ErrorCode::Malformed).await;
    send(
        &mut abuser,
        ToServer::Hello {
            peer: peer(3),
            kind: PeerKind::Browser,
        },
    )
    .await;
    expect_error(&mut abuser, ErrorCode::HelloFirst).await;
    still_serves(&mut abuser).await;
    still_serves(&mut bystander).await;

    // Far over the limit: the WebSocket layer refuses it; the server says why and closes
    // that connection only.
    let huge = vec![signal::SIGNAL_VERSION; 8 * signal::MAX_MESSAGE];
    let _ = abuser.send(Message::Binary(huge.into())).await;
    expect_error(&mut abuser, ErrorCode::TooLarge).await;
    assert_eq!(recv(&mut abuser).await, None);
    still_serves(&mut bystander).await;

    // A second connection may not take a name in use.
    let mut twin = connect(&url).await;
    send(
        &mut twin,
        ToServer::Hello {
            peer: peer(1),
            kind: PeerKind::Native,
        },
    )
    .await;
    expect_error(&mut twin, ErrorCode::DuplicatePeer).await;
    assert_eq!(recv(&mut twin).await, None);
    still_serves(&mut bystander).await;
}

#[tokio::test]
async fn rate_swarm_and_member_limits_are_enforced() {
    let limits = Limits {
        rate_per_second: 5,
        burst: 5,
        max_swarms: 2,
        max_members: 3,
        ..Limits::default()
    };
    let (url, _server) = start(limits).await;
    let mut ws = hello(&url, 100, PeerKind::Native).await;

    send(&mut ws, ToServer::Join { swarm: swarm(1) }).await;
    assert!(matches!(
        recv(&mut ws).await,
        Some(FromServer::Members { .. })
    ));
    send(&mut ws, ToServer::Join { swarm: swarm(2) }).await;
    assert!(matches!(
        recv(&mut ws).await,
        Some(FromServer::Members { .. })
    ));
    send(&mut ws, ToServer::Join { swarm: swarm(3) }).await;
    let text = expect_error(&mut ws, ErrorCode::TooManySwarms).await;
    assert!(text.contains('2'), "{text}");

    // A burst beyond the bucket: some pings are dropped and one error says so.
    for _ in 0..20 {
        send(&mut ws, ToServer::Ping).await;
    }
    let mut pongs = 0;
    let mut limited = 0;
    for _ in 0..20 {
        match tokio::time::timeout(Duration::from_millis(500), recv(&mut ws)).await {
            Ok(Some(FromServer::Pong)) => pongs += 1,
            Ok(Some(FromServer::Error {
                code: ErrorCode::RateLimited,
                ..
            })) => limited += 1,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => break,
        }
    }
    assert!(pongs < 20, "the rate limit dropped nothing");
    assert_eq!(limited, 1, "one rate-limit report per second");

    // Ten members: a join returns at most three.
    let mut others = Vec::new();
    for n in 0..10 {
        let mut m = hello(&url, n, PeerKind::Browser).await;
        send(&mut m, ToServer::Join { swarm: swarm(7) }).await;
        assert!(matches!(
            recv(&mut m).await,
            Some(FromServer::Members { .. })
        ));
        others.push(m);
    }
    let mut late = hello(&url, 200, PeerKind::Browser).await;
    send(&mut late, ToServer::Join { swarm: swarm(7) }).await;
    assert!(matches!(
        recv(&mut late).await,
        Some(FromServer::Members { members, .. }) if members.len() == 3
    ));
}

#[tokio::test]
async fn idle_connections_are_told_and_closed() {
    let limits = Limits {
        idle_timeout_secs: 1,
        ..Limits::default()
    };
    let (url, server) = start(limits).await;
    let mut ws = hello(&url, 1, PeerKind::Browser).await;
    expect_error(&mut ws, ErrorCode::Idle).await;
    assert_eq!(recv(&mut ws).await, None);
    for _ in 0..100 {
        if server.stats().connections == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        server.stats(),
        pollen_signal::Stats {
            connections: 0,
            peers: 0,
            swarms: 0,
            addresses: 0,
        }
    );
}

#[tokio::test]
async fn one_address_cannot_take_every_connection() {
    let config = Config {
        max_connections: 4,
        max_connections_per_ip: 2,
        ..Config::default()
    };
    let (url, server) = serve(config, true).await;
    let (one, two, three) = (
        Ipv4Addr::new(127, 0, 0, 1),
        Ipv4Addr::new(127, 0, 0, 2),
        Ipv4Addr::new(127, 0, 0, 3),
    );
    let mut a1 = connect_from(&url, one).await.expect("a first connection");
    let a2 = connect_from(&url, one).await.expect("a second connection");
    assert_eq!(
        connect_from(&url, one).await.err(),
        Some(Some(429)),
        "a third connection from one address is refused"
    );
    // Another address is not locked out.
    let mut b1 = connect_from(&url, two).await.expect("another address");
    let _b2 = connect_from(&url, two).await.expect("another address");
    still_serves(&mut b1).await;
    // The total cap still holds.
    assert_eq!(connect_from(&url, three).await.err(), Some(Some(503)));
    assert_eq!(server.stats().addresses, 2);

    // A closed connection gives its address's place back.
    drop(a2);
    wait_for_connections(&server, 3).await;
    let mut a3 = connect_from(&url, one)
        .await
        .expect("a place was given back");
    still_serves(&mut a3).await;
    still_serves(&mut a1).await;
    drop((a1, a3, b1, _b2));
    wait_for_connections(&server, 0).await;
    assert_eq!(server.stats().addresses, 0, "no address is remembered");
}

#[tokio::test]
async fn an_embedding_server_without_remote_addresses_gets_the_total_cap_only() {
    let config = Config {
        max_connections: 3,
        max_connections_per_ip: 1,
        ..Config::default()
    };
    let (url, server) = serve(config, false).await;
    let mut all = Vec::new();
    for _ in 0..3 {
        all.push(
            connect_from(&url, Ipv4Addr::LOCALHOST)
                .await
                .expect("under the total"),
        );
    }
    assert_eq!(
        connect_from(&url, Ipv4Addr::LOCALHOST).await.err(),
        Some(Some(503))
    );
    for ws in &mut all {
        still_serves(ws).await;
    }
    assert_eq!(server.stats().addresses, 0);
}

/// Pings `ws` every 100 ms for `time`, reading what comes back; the error the server closed
/// it with, if it did, and when.
async fn keep_pinging(ws: &mut Ws, time: Duration) -> Option<(ErrorCode, String, Instant)> {
    let end = Instant::now() + time;
    while Instant::now() < end {
        match tokio::time::timeout(Duration::from_millis(100), ws.next()).await {
            Err(_) => send(ws, ToServer::Ping).await,
            Ok(Some(Ok(Message::Binary(bytes)))) => match decode_from_server(&bytes) {
                Ok(FromServer::Pong) => {}
                Ok(FromServer::Error { code, text }) => {
                    let at = Instant::now();
                    assert_eq!(recv(ws).await, None, "closed after the error");
                    return Some((code, text, at));
                }
                other => panic!("unexpected {other:?}"),
            },
            Ok(other) => panic!("closed without saying why: {other:?}"),
        }
    }
    None
}

#[tokio::test]
async fn pings_alone_do_not_keep_a_connection_open() {
    let unjoined = Duration::from_secs(1);
    let config = Config {
        max_connections: 100,
        max_connections_per_ip: 100,
        unjoined_timeout: unjoined,
        ..Config::default()
    };
    let (url, server) = serve(config, true).await;
    let start = Instant::now();
    // Says Hello, then only pings.
    let mut lurker = hello(&url, 1, PeerKind::Browser).await;
    // Not even a Hello.
    let mut anonymous = connect(&url).await;
    // Joins a swarm and waits for offers, pinging: it stays.
    let mut member = hello(&url, 2, PeerKind::Native).await;
    send(&mut member, ToServer::Join { swarm: swarm(1) }).await;
    assert!(matches!(
        recv(&mut member).await,
        Some(FromServer::Members { .. })
    ));
    // Joins, stays past the limit, then leaves its only swarm.
    let mut leaver = hello(&url, 3, PeerKind::Browser).await;
    send(&mut leaver, ToServer::Join { swarm: swarm(2) }).await;
    assert!(matches!(
        recv(&mut leaver).await,
        Some(FromServer::Members { .. })
    ));
    let leaving = async {
        assert_eq!(keep_pinging(&mut leaver, 2 * unjoined).await, None);
        send(&mut leaver, ToServer::Leave { swarm: swarm(2) }).await;
        let left = Instant::now();
        (left, keep_pinging(&mut leaver, 3 * unjoined).await)
    };
    let (lurked, anonymous, member, (left, leaver)) = tokio::join!(
        keep_pinging(&mut lurker, 3 * unjoined),
        keep_pinging(&mut anonymous, 3 * unjoined),
        keep_pinging(&mut member, 4 * unjoined),
        leaving,
    );
    for (who, closed, since) in [
        ("a connection that only pings", lurked, start),
        ("a connection without Hello", anonymous, start),
        ("a connection that left its swarms", leaver, left),
    ] {
        let Some((code, text, at)) = closed else {
            panic!("{who} was kept open");
        };
        assert_eq!(code, ErrorCode::Idle, "{who}: {text}");
        assert!(
            text.contains("no swarm"),
            "{who}: the error says why: {text}"
        );
        assert!(
            at.duration_since(since) >= unjoined - Duration::from_millis(100),
            "{who} was closed early"
        );
    }
    assert_eq!(member, None, "a member that pings stays");
    wait_for_connections(&server, 1).await;
    assert_eq!(server.stats().peers, 1);
}

#[tokio::test]
async fn a_peer_that_stops_reading_is_dropped() {
    let config = Config {
        limits: Limits {
            rate_per_second: 100_000,
            burst: 100_000,
            ..Limits::default()
        },
        max_connections: 100,
        max_connections_per_ip: 100,
        write_timeout: Duration::from_secs(1),
        ..Config::default()
    };
    let (url, server) = serve(config, true).await;
    // Joins a swarm, then never reads again (with a small receive buffer, to fill sooner).
    let socket = TcpSocket::new_v4().expect("a socket");
    socket.set_recv_buffer_size(4096).expect("sets SO_RCVBUF");
    let stream = socket.connect(server_addr(&url)).await.expect("connects");
    let (mut sluggard, _) = tokio_tungstenite::client_async(&url, MaybeTlsStream::Plain(stream))
        .await
        .expect("upgrades");
    let greeting = ToServer::Hello {
        peer: peer(1),
        kind: PeerKind::Browser,
    };
    send(&mut sluggard, greeting).await;
    assert!(matches!(
        recv(&mut sluggard).await,
        Some(FromServer::Welcome { .. })
    ));
    send(&mut sluggard, ToServer::Join { swarm: swarm(5) }).await;
    assert!(matches!(
        recv(&mut sluggard).await,
        Some(FromServer::Members { .. })
    ));

    // Another member sends it far more than its socket holds.
    let mut sender = hello(&url, 2, PeerKind::Native).await;
    send(&mut sender, ToServer::Join { swarm: swarm(5) }).await;
    assert!(matches!(
        recv(&mut sender).await,
        Some(FromServer::Members { .. })
    ));
    let offer = Signal::Offer("v".repeat(40 * 1024));
    for _ in 0..400 {
        let relay = ToServer::Relay {
            swarm: swarm(5),
            to: peer(1),
            signal: offer.clone(),
        };
        send(&mut sender, relay).await;
    }
    for _ in 0..250 {
        if server.stats().peers == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    assert_eq!(
        server.stats().peers,
        1,
        "a peer that takes no writes is dropped within the write timeout"
    );
    assert_eq!(server.stats().connections, 1);
    // The sender is served on (its relays were refused, busy or unknown, meanwhile).
    send(&mut sender, ToServer::Ping).await;
    loop {
        match recv(&mut sender).await {
            Some(FromServer::Pong) => break,
            Some(FromServer::Error {
                code: ErrorCode::PeerBusy | ErrorCode::UnknownPeer,
                ..
            }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    drop(sluggard);
}

#[tokio::test]
async fn connections_that_do_not_upgrade_are_capped_and_closed_in_time() {
    let config = Config {
        max_connections: 100,
        max_connections_per_ip: 2,
        upgrade_timeout: Duration::from_secs(1),
        ..Config::default()
    };
    let (url, server) = serve(config, true).await;
    let one = Ipv4Addr::new(127, 0, 0, 1);
    let opened = Instant::now();
    // A silent socket and a request whose headers never end.
    let mut silent = tcp_from(&url, one).await;
    let mut half = tcp_from(&url, one).await;
    half.write_all(b"GET /signal HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("writes");
    // They hold their address's places (but no WebSocket's)...
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(connect_from(&url, one).await.err(), Some(None));
    assert_eq!(server.stats().connections, 0);
    // ...not another address's.
    let mut other = connect_from(&url, Ipv4Addr::new(127, 0, 0, 2))
        .await
        .expect("another address");
    // Both are closed once the upgrade timeout is over.
    for stream in [&mut silent, &mut half] {
        let mut buf = [0u8; 256];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("closed within the upgrade timeout");
        assert!(matches!(read, Ok(0) | Err(_)), "closed without an answer");
    }
    assert!(opened.elapsed() >= Duration::from_millis(900));
    // The address is welcome again, and a WebSocket outlives the upgrade timeout.
    let mut ws = connect_from(&url, one)
        .await
        .expect("places were given back");
    still_serves(&mut ws).await;
    still_serves(&mut other).await;
}
