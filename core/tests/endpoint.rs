//! The endpoint: many swarms over one connection per peer pair, duplicate connections,
//! channel opens that cross, refusals and closes.

mod common;

use common::endpoints::{Net, artifact};
use pollen_core::{
    endpoint::{CloseReason, ConnId, EndpointEvent, LinkEnd, Output},
    wire::{self, Message},
};

const PIECE: usize = 16 * 1024;

#[test]
fn thirty_artifacts_share_one_connection_and_all_complete() {
    let mut net = Net::new(2);
    let tickets: Vec<_> = (0..30)
        .map(|i| net.seed(0, artifact(i, 5 * PIECE + usize::from(i) * 1000)))
        .collect();
    for t in &tickets {
        net.fetch(1, t);
    }
    let (_, conn) = net.connect(0, 1);
    let now = net.now;
    for t in &tickets {
        assert!(net.nodes[1].ep.open_swarm(now, conn, t.id()));
    }
    net.drive_until(|n| tickets.iter().all(|t| n.complete(1, &t.id())));
    for t in &tickets {
        assert!(net.complete(1, &t.id()), "artifact {} incomplete", t.id());
        let seed = &net.nodes[0].data[&t.id()];
        assert_eq!(&net.nodes[1].data[&t.id()], seed, "bytes differ");
    }
    assert_eq!(net.conns(0), 1);
    assert_eq!(net.conns(1), 1);
    assert_eq!(net.nodes[0].ep.conn_swarms(net_conn(&net, 0)).len(), 30);
}

#[test]
fn a_swarm_opened_on_a_busy_connection_gets_an_equal_share_of_it() {
    let mut net = Net::new(2);
    net.use_native_settings();
    net.limit_rate(16 * 1024);
    let first = net.seed(0, artifact(1, 256 * PIECE));
    let second = net.seed(0, artifact(2, 256 * PIECE));
    net.fetch(1, &first);
    net.fetch(1, &second);
    let (_, conn) = net.connect(0, 1);
    let now = net.now;
    assert!(net.nodes[1].ep.open_swarm(now, conn, first.id()));
    let pieces = |net: &Net, id| net.nodes[1].ep.swarm(&id).map_or(0, |s| s.have().count());
    // The first fills the connection (and its seed's queue) alone for a while.
    net.drive_until(|n| pieces(n, first.id()) >= 32);
    let now = net.now;
    assert!(net.nodes[1].ep.open_swarm(now, conn, second.id()));
    // Once the second has its manifest and a first piece, both fetch.
    net.drive_until(|n| pieces(n, second.id()) >= 1);
    let (first_start, second_start) = (pieces(&net, first.id()), pieces(&net, second.id()));
    net.drive_until(|n| n.complete(1, &first.id()));
    let first_got = pieces(&net, first.id()) - first_start;
    let second_got = pieces(&net, second.id()) - second_start;
    // An equal share would be as many pieces each; a backlog ahead of the second would
    // leave it far behind.
    assert!(
        second_got * 10 >= first_got * 7,
        "while both fetched, the first got {first_got} pieces and the second {second_got}"
    );
    net.drive_until(|n| n.complete(1, &second.id()));
    assert!(net.complete(1, &second.id()));
}

/// Carries out nothing, and returns the connections node `node` closed since last asked.
fn drain_closes(net: &mut Net, node: usize) -> Vec<(ConnId, CloseReason)> {
    let mut closes = Vec::new();
    while let Some(out) = net.nodes[node].ep.poll_output() {
        if let Output::Close(c, reason) = out {
            closes.push((c, reason));
        }
    }
    closes
}

fn net_conn(net: &Net, node: usize) -> ConnId {
    let peer = Net::peer(1 - node);
    net.nodes[node].ep.conn_to(&peer).expect("a connection")
}

#[test]
fn two_peers_dialing_each_other_keep_one_and_the_same_connection() {
    for (a, b) in [(0, 1), (1, 0)] {
        let mut net = Net::new(2);
        let t = net.seed(a, artifact(1, 8 * PIECE));
        net.fetch(b, &t);
        let (a_dialed, b_accepted) = net.connect(a, b);
        let (b_dialed, a_accepted) = net.connect(b, a);
        let now = net.now;
        net.nodes[b].ep.open_swarm(now, b_dialed, t.id());
        net.nodes[b].ep.open_swarm(now, b_accepted, t.id());
        net.drive_until(|n| n.complete(b, &t.id()));
        assert!(net.complete(b, &t.id()));
        assert_eq!(net.conns(a), 1, "a keeps one connection");
        assert_eq!(net.conns(b), 1, "b keeps one connection");
        // Both keep the connection the smaller peer id (node 0) dialed.
        let (kept_a, kept_b) = if a == 0 {
            (a_dialed, b_accepted)
        } else {
            (a_accepted, b_dialed)
        };
        assert_eq!(net.nodes[a].ep.conn_peer(kept_a), Some(Net::peer(b)));
        assert_eq!(net.nodes[b].ep.conn_peer(kept_b), Some(Net::peer(a)));
        for n in 0..2 {
            assert!(
                net.nodes[n]
                    .closed
                    .iter()
                    .all(|(_, r)| *r == CloseReason::Duplicate),
                "only duplicates close"
            );
        }
    }
}

#[test]
fn a_second_connection_after_the_first_carried_blocks_is_the_one_closed() {
    let mut net = Net::new(2);
    let t = net.seed(0, artifact(2, 64 * PIECE));
    net.fetch(1, &t);
    // Node 1 (the larger id) dials: by the id rule node 0's dial would win, but the first
    // connection is in use by then.
    let (first, _) = net.connect(1, 0);
    let now = net.now;
    net.nodes[1].ep.open_swarm(now, first, t.id());
    net.drive_until(|n| {
        n.nodes[1]
            .ep
            .swarm(&t.id())
            .is_some_and(|s| s.stats().have > 0)
    });
    let (second, _) = net.connect(0, 1);
    let now = net.now;
    net.nodes[0].ep.open_swarm(now, second, t.id());
    net.drive_until(|n| n.complete(1, &t.id()));
    assert!(net.complete(1, &t.id()));
    assert_eq!(net.nodes[1].ep.conn_peer(first), Some(Net::peer(0)));
    assert_eq!(net.conns(0), 1);
    assert_eq!(net.conns(1), 1);
}

#[test]
fn both_ends_opening_one_swarm_at_once_make_one_link() {
    let mut net = Net::new(2);
    let t = net.seed(0, artifact(3, 6 * PIECE));
    net.fetch(1, &t);
    let (c0, c1) = net.connect(0, 1);
    let now = net.now;
    net.nodes[0].ep.open_swarm(now, c0, t.id());
    net.nodes[1].ep.open_swarm(now, c1, t.id());
    net.drive_until(|n| n.complete(1, &t.id()));
    assert!(net.complete(1, &t.id()));
    for n in 0..2 {
        let links = net.nodes[n]
            .ep
            .swarm(&t.id())
            .map(|s| s.stats().links.len());
        assert_eq!(links, Some(1), "node {n} has one link");
        assert!(
            !net.nodes[n]
                .events
                .iter()
                .any(|e| matches!(e, EndpointEvent::LinkClosed { .. })),
            "no link closed on node {n}"
        );
    }
}

#[test]
fn a_swarm_the_peer_lacks_is_refused_and_the_connection_stays() {
    let mut net = Net::new(2);
    let shared = net.seed(0, artifact(4, 4 * PIECE));
    let only_1 = net.seed(1, artifact(5, 4 * PIECE));
    net.fetch(1, &shared);
    let (_, c1) = net.connect(0, 1);
    let now = net.now;
    net.nodes[1].ep.open_swarm(now, c1, only_1.id());
    net.nodes[1].ep.open_swarm(now, c1, shared.id());
    net.drive_until(|n| n.complete(1, &shared.id()));
    assert!(net.complete(1, &shared.id()));
    assert!(net.nodes[1].events.iter().any(|e| matches!(
        e,
        EndpointEvent::LinkClosed { swarm, reason: LinkEnd::Refused, .. } if *swarm == only_1.id()
    )));
    assert_eq!(net.conns(1), 1);
}

#[test]
fn a_connection_to_ourselves_is_closed() {
    let mut net = Net::new(1);
    let now = net.now;
    let a = net.nodes[0].ep.connect(now, true);
    let b = net.nodes[0].ep.connect(now, false);
    // Join the two ends of node 0 to each other by hand.
    let mut frames = Vec::new();
    while let Some(out) = net.nodes[0].ep.poll_output() {
        if let Output::Transmit(conn, segs) = out {
            frames.push((conn, bytes::Bytes::from(segs.concat())));
        }
    }
    for (conn, bytes) in frames {
        let to = if conn == a { b } else { a };
        let (body, _) = wire::split_frame(&bytes).expect("a frame").expect("whole");
        net.nodes[0].ep.handle_frame(now, to, bytes.slice_ref(body));
    }
    let closes: Vec<CloseReason> = drain_closes(&mut net, 0)
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    assert_eq!(closes, vec![CloseReason::SelfConnection; 2]);
    assert_eq!(net.conns(0), 0);
}

#[test]
fn a_connection_without_a_handshake_times_out() {
    let mut net = Net::new(1);
    let now = net.now;
    let conn = net.nodes[0].ep.connect(now, false);
    while net.nodes[0].ep.poll_output().is_some() {}
    let due = net.nodes[0]
        .ep
        .poll_timeout()
        .expect("a handshake deadline");
    net.nodes[0].ep.handle_timeout(due);
    let closes = drain_closes(&mut net, 0);
    assert_eq!(closes, vec![(conn, CloseReason::HandshakeTimeout)]);
}

#[test]
fn a_swarm_frame_before_the_handshake_closes_the_connection() {
    let mut net = Net::new(1);
    let now = net.now;
    let conn = net.nodes[0].ep.connect(now, false);
    while net.nodes[0].ep.poll_output().is_some() {}
    let mut frame = Vec::new();
    wire::encode(&Message::Interested, &mut frame).expect("encodes");
    let bytes = bytes::Bytes::from(frame);
    net.nodes[0].ep.handle_frame(now, conn, bytes.slice(4..));
    let closes = drain_closes(&mut net, 0);
    assert_eq!(closes, vec![(conn, CloseReason::Protocol)]);
}

#[test]
fn removing_a_swarm_closes_its_link_at_the_peer_and_keeps_the_others() {
    let mut net = Net::new(2);
    let a = net.seed(0, artifact(6, 40 * PIECE));
    let b = net.seed(0, artifact(7, 4 * PIECE));
    net.fetch(1, &a);
    net.fetch(1, &b);
    let (_, c1) = net.connect(0, 1);
    let now = net.now;
    net.nodes[1].ep.open_swarm(now, c1, a.id());
    net.nodes[1].ep.open_swarm(now, c1, b.id());
    net.drive_until(|n| n.complete(1, &b.id()));
    let now = net.now;
    assert!(net.nodes[0].ep.remove_swarm(now, &a.id()).is_some());
    net.drive();
    assert!(net.nodes[1].events.iter().any(|e| matches!(
        e,
        EndpointEvent::LinkClosed { swarm, reason: LinkEnd::ByPeer, .. } if *swarm == a.id()
    )));
    let links = net.nodes[1]
        .ep
        .swarm(&a.id())
        .map(|s| s.stats().links.len());
    assert_eq!(links, Some(0));
    assert_eq!(net.conns(1), 1);
    assert!(net.complete(1, &b.id()));
}

#[test]
fn a_swarm_reopened_after_a_close_completes() {
    let mut net = Net::new(2);
    let a = net.seed(0, artifact(8, 30 * PIECE));
    net.fetch(1, &a);
    let (c0, c1) = net.connect(0, 1);
    let now = net.now;
    net.nodes[1].ep.open_swarm(now, c1, a.id());
    net.nodes[0].ep.open_swarm(now, c0, a.id());
    net.step();
    net.step();
    // Node 0 drops the swarm and adds it back while opens are crossing.
    let now = net.now;
    let swarm = net.nodes[0].ep.remove_swarm(now, &a.id()).expect("held");
    net.nodes[0].ep.add_swarm(now, swarm);
    net.nodes[0].ep.open_swarm(now, c0, a.id());
    net.drive_until(|n| n.complete(1, &a.id()));
    assert!(net.complete(1, &a.id()));
    for n in 0..2 {
        let links = net.nodes[n]
            .ep
            .swarm(&a.id())
            .map(|s| s.stats().links.len());
        assert_eq!(links, Some(1), "node {n} ends with one link");
    }
}

#[test]
fn a_close_that_crosses_an_unasked_open_leaves_no_link_at_one_end_only() {
    let mut net = Net::new(2);
    let a = net.seed(0, artifact(9, 30 * PIECE));
    net.fetch(1, &a);
    let (c0, c1) = net.connect(0, 1);
    net.drive();
    let now = net.now;
    // Both open the swarm unasked; node 1 drops and re-adds it before node 0's open arrives,
    // and so takes that open for a new one.
    net.nodes[0].ep.open_swarm(now, c0, a.id());
    net.nodes[1].ep.open_swarm(now, c1, a.id());
    while let Some(out) = net.nodes[1].ep.poll_output() {
        net_carry(&mut net, 1, out);
    }
    let swarm = net.nodes[1].ep.remove_swarm(now, &a.id()).expect("held");
    net.nodes[1].ep.add_swarm(now, swarm);
    net.drive();
    let links = |n: usize, net: &Net| {
        net.nodes[n]
            .ep
            .swarm(&a.id())
            .map(|s| s.stats().links.len())
    };
    assert_eq!(
        links(0, &net),
        links(1, &net),
        "both ends agree on the link"
    );
}

/// Carries out one output of node `i` as [`Net::step`] would.
fn net_carry(net: &mut Net, i: usize, out: Output) {
    net.carry_out(i, out);
}

#[test]
fn a_connection_closed_before_its_handshake_ends_the_swarms_waiting_for_it() {
    let mut net = Net::new(1);
    let t = net.seed(0, artifact(10, 4 * PIECE));
    let now = net.now;
    let conn = net.nodes[0].ep.connect(now, true);
    assert!(net.nodes[0].ep.open_swarm(now, conn, t.id()));
    while net.nodes[0].ep.poll_output().is_some() {}
    let due = net.nodes[0]
        .ep
        .poll_timeout()
        .expect("a handshake deadline");
    net.nodes[0].ep.handle_timeout(due);
    let mut ended = Vec::new();
    while let Some(out) = net.nodes[0].ep.poll_output() {
        if let Output::Event(EndpointEvent::LinkClosed {
            conn: c,
            swarm,
            reason,
        }) = out
        {
            ended.push((c, swarm, reason));
        }
    }
    assert_eq!(
        ended,
        vec![(
            conn,
            t.id(),
            LinkEnd::Connection(Some(CloseReason::HandshakeTimeout))
        )]
    );
}
