//! Operators stop fetches and drop artifacts (`pollen cancel`, `pollen rm`), and a node
//! takes only so many fetches at once.

use std::{fs, path::Path, process::Output, time::Duration};

use pollen_tests::{Node, NodeOpts, bare_ticket, write_artifact};

const LIMIT: Duration = Duration::from_secs(60);

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A ticket for fresh bytes nobody holds (and its content id).
fn orphan_ticket(dir: &Path, seed: u64) -> (String, String) {
    let sub = dir.join(format!("orphan{seed}"));
    fs::create_dir_all(&sub).expect("mkdir");
    let (file, _, id) = write_artifact(&sub, 100_000, seed);
    (bare_ticket(&file), id)
}

/// Starts a fetch of `ticket` that gives up waiting at once (the node keeps fetching).
fn start_fetch(node: &Node, ticket: &str, dir: &Path) -> Output {
    node.cli_within(
        LIMIT,
        &[
            "get",
            ticket,
            "--stall-timeout",
            "1",
            "-o",
            dir.join("never").to_str().expect("utf-8"),
        ],
    )
}

#[test]
fn a_cancelled_fetch_is_gone_for_good_and_rm_deletes_a_held_artifact() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("node");
    let node = Node::start(&data, &NodeOpts::default());
    let (ticket, id) = orphan_ticket(tmp.path(), 1);
    assert!(!start_fetch(&node, &ticket, tmp.path()).status.success());
    assert_eq!(node.artifact(&id).expect("fetching")["complete"], false);

    let out = node.cli(&["cancel", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(node.artifact(&id).is_none(), "forgotten at once");
    assert!(!data.join("artifacts").join(&id).exists());
    assert!(!data.join("tickets").join(&id).exists());
    // Cancelling again: nothing to cancel.
    let out = node.cli(&["cancel", &ticket]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("does not hold"), "{}", stderr(&out));
    // It does not come back after a restart.
    let listen = node.listen.clone();
    node.kill();
    let node = Node::start(
        &data,
        &NodeOpts {
            listen: Some(listen),
            ..NodeOpts::default()
        },
    );
    assert!(node.artifact(&id).is_none(), "not resumed after a restart");

    // A complete artifact is not a fetch to cancel; rm deletes it.
    let (file, _, held) = write_artifact(tmp.path(), 50_000, 2);
    node.share(&file);
    let out = node.cli(&["cancel", &held]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("pollen rm"), "{}", stderr(&out));
    assert!(node.artifact(&held).is_some());
    let out = node.cli(&["rm", &held]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(node.artifact(&held).is_none());
    assert!(!data.join("artifacts").join(&held).exists());
    // The file it was shared from is untouched, and can be shared again.
    assert!(file.exists());
    node.share(&file);
    assert_eq!(node.artifact(&held).expect("again")["complete"], true);
}

#[test]
fn fetches_beyond_the_cap_are_refused_until_one_is_cancelled() {
    let tmp = tempfile::tempdir().expect("tmp");
    let node = Node::start(
        &tmp.path().join("node"),
        &NodeOpts {
            extra: vec!["--max-fetches".into(), "2".into()],
            ..NodeOpts::default()
        },
    );
    let (t1, id1) = orphan_ticket(tmp.path(), 11);
    let (t2, _) = orphan_ticket(tmp.path(), 12);
    let (t3, id3) = orphan_ticket(tmp.path(), 13);
    start_fetch(&node, &t1, tmp.path());
    start_fetch(&node, &t2, tmp.path());
    let out = start_fetch(&node, &t3, tmp.path());
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("already fetching 2 artifacts"),
        "{}",
        stderr(&out)
    );
    assert!(node.artifact(&id3).is_none(), "the third was not started");
    assert!(node.cli(&["cancel", &id1]).status.success());
    start_fetch(&node, &t3, tmp.path());
    assert!(node.artifact(&id3).is_some(), "room for it now");
}
