//! The signaling server over real WebSockets on loopback: relaying, and every limit answered
//! with an error message while other connections carry on.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use pollen_core::{
    ContentId, PeerId,
    signal::{self, ErrorCode, FromServer, Limits, PeerKind, Signal, ToServer, decode_from_server},
};
use pollen_signal::{Config, PATH, Signaling};
use tokio::net::TcpStream;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn start(limits: Limits) -> (String, Signaling) {
    let server = Signaling::new(Config {
        limits,
        max_connections: 100,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let url = format!(
        "ws://{}{PATH}",
        listener.local_addr().expect("has an address")
    );
    let app = pollen_signal::router(server.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
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
            swarms: 0
        }
    );
}
