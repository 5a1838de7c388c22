//! `pollen status --cluster`: every member gossip knows of, and how many nodes hold each
//! artifact.

use std::time::Duration;

use pollen_tests::{Node, NodeOpts, finish_get, write_artifact};

#[test]
fn the_cluster_view_lists_members_and_counts_holders() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (file, _, id) = write_artifact(tmp.path(), 200_000, 51);
    let a = Node::start(
        &tmp.path().join("a"),
        &NodeOpts {
            zone: Some("east".into()),
            max_upload_rate: Some(50_000_000),
            ..NodeOpts::default()
        },
    );
    let ticket = a.share(&file);
    let b = Node::start(
        &tmp.path().join("b"),
        &NodeOpts {
            join: vec![a.listen.clone()],
            zone: Some("west".into()),
            ..NodeOpts::default()
        },
    );
    finish_get(b.cli_spawn(&[
        "get",
        &ticket,
        "-o",
        tmp.path().join("out").to_str().expect("utf-8"),
    ]));
    let b_id = b.peer_id();
    // Gossip tells A that B holds the artifact whole.
    a.wait_until(Duration::from_secs(60), "B's holding reaches A", |n| {
        let out = n.cli(&["status", "--cluster"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains(&format!("{id}  held whole by 2"))
    });
    let out = a.cli(&["status", "--cluster"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains(&b_id))
        .unwrap_or_else(|| panic!("B is not listed:\n{text}"));
    assert!(
        line.contains("alive") && line.contains("zone west"),
        "{line}"
    );
    // A's own capacity is gossiped too: B sees it.
    let out = b.cli(&["status", "--cluster"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("upload 47.7 MiB/s"), "{text}");
}
