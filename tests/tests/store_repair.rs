//! A damaged store repairs itself: a flipped byte on a seed's disk is never served and the
//! piece comes back from a peer, a garbage record of held pieces is rebuilt from the data,
//! and sharing the same file again fills in what is missing.

use std::{fs, path::Path, time::Duration};

use pollen_tests::{Node, NodeOpts, b3, finish_get, write_artifact};

const LIMIT: Duration = Duration::from_secs(120);
const SIZE: usize = 3 << 20;

/// The file of artifact `id` named `name` in node data directory `data`.
fn store_file(data: &Path, id: &str, name: &str) -> std::path::PathBuf {
    data.join("artifacts").join(id).join(name)
}

/// Flips one byte in the middle of artifact `id`'s data file under `data`.
fn flip_a_byte(data: &Path, id: &str) {
    let path = store_file(data, id, "data");
    let mut bytes = fs::read(&path).expect("read data");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x20;
    fs::write(&path, bytes).expect("write data");
}

/// Restarts a killed node on the same data directory and listen address.
fn restart(data: &Path, listen: &str, peers: Vec<String>) -> Node {
    Node::start(
        data,
        &NodeOpts {
            listen: Some(listen.to_string()),
            peers,
            ..NodeOpts::default()
        },
    )
}

#[test]
fn a_node_whose_disk_flipped_a_byte_never_hands_it_out_and_gets_the_piece_back_from_a_peer() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (file, _, id) = write_artifact(tmp.path(), SIZE, 21);
    let seed_dir = tmp.path().join("seed");
    let seed = Node::start(&seed_dir, &NodeOpts::default());
    let ticket = seed.share(&file);
    // A second holder, in the seed's cluster.
    let peer = Node::start(
        &tmp.path().join("peer"),
        &NodeOpts {
            peers: vec![seed.listen.clone()],
            ..NodeOpts::default()
        },
    );
    let p_out = tmp.path().join("p.out");
    finish_get(peer.cli_spawn(&["get", &ticket, "-o", p_out.to_str().expect("utf-8")]));
    let listen = seed.listen.clone();
    seed.kill();
    flip_a_byte(&seed_dir, &id);
    // The seed still believes it holds everything (pieces are checked when read).
    let seed = restart(&seed_dir, &listen, vec![peer.listen.clone()]);
    assert_eq!(seed.artifact(&id).expect("held")["complete"], true);
    // Writing it out checks the bytes: the get fails and writes nothing...
    let out = tmp.path().join("s.out");
    let first = seed.cli_within(LIMIT, &["get", &ticket, "-o", out.to_str().expect("utf-8")]);
    assert!(!first.status.success());
    assert!(!out.exists());
    // ...the node drops the bad piece, says so, and fetches it back from the peer.
    let a = seed.wait_for(&id, LIMIT, |a| {
        a["complete"] == true && a["corrupt_on_disk"].as_u64() >= Some(1)
    });
    assert!(a["downloaded"].as_u64() >= Some(1), "{a}");
    assert!(
        seed.log().contains("no longer verifies on disk"),
        "{}",
        seed.log()
    );
    let again = seed.cli_within(LIMIT, &["get", &ticket, "-o", out.to_str().expect("utf-8")]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(b3(&out), id);
}

#[test]
fn a_garbage_record_of_held_pieces_is_rebuilt_from_the_data_and_a_reshare_fills_the_rest() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (file, _, id) = write_artifact(tmp.path(), SIZE, 22);
    let dir = tmp.path().join("seed");
    let seed = Node::start(&dir, &NodeOpts::default());
    seed.share(&file);
    let listen = seed.listen.clone();

    // The record of held pieces is garbage; the data is intact: nothing is lost.
    seed.kill();
    fs::write(store_file(&dir, &id, "have"), vec![0xA5; 300]).expect("garbage");
    let seed = restart(&dir, &listen, vec![]);
    let a = seed.artifact(&id).expect("held");
    assert_eq!(a["complete"], true, "{a}");
    assert!(
        seed.log().contains("rebuilt from the data"),
        "{}",
        seed.log()
    );

    // Garbage again, over data with a flipped byte: all but that piece are kept...
    seed.kill();
    flip_a_byte(&dir, &id);
    fs::write(store_file(&dir, &id, "have"), vec![0x5A; 300]).expect("garbage");
    let seed = restart(&dir, &listen, vec![]);
    let a = seed.artifact(&id).expect("held");
    assert_eq!(a["complete"], false, "{a}");
    assert_eq!(
        a["have_pieces"].as_u64().map(|h| h + 1),
        a["pieces"].as_u64(),
        "{a}"
    );
    // ...and sharing the original file again fills in the missing piece.
    let ticket = seed.share(&file);
    let a = seed.artifact(&id).expect("held");
    assert_eq!(a["complete"], true, "{a}");
    let out = tmp.path().join("out");
    let fetcher = Node::start(
        &tmp.path().join("fetcher"),
        &NodeOpts {
            peers: vec![listen.clone()],
            ..NodeOpts::default()
        },
    );
    let get = fetcher.cli_within(LIMIT, &["get", &ticket, "-o", out.to_str().expect("utf-8")]);
    assert!(
        get.status.success(),
        "{}",
        String::from_utf8_lossy(&get.stderr)
    );
    assert_eq!(b3(&out), id);
}
