//! A node keeps within `--max-storage` by evicting the least recently used complete
//! artifacts that are neither pinned nor being fetched, refuses what cannot fit, drops
//! artifacts unused for `--evict-after`, and keeps its pins across a restart.

use std::{fs, path::Path, time::Duration};

use pollen_tests::{Node, NodeOpts, finish_get, write_artifact};

const PART: usize = 900_000;
const LIMIT: Duration = Duration::from_secs(60);

/// Writes `len` fresh bytes under `dir/name/` and returns the file and its content id.
fn artifact(dir: &Path, name: &str, len: usize, seed: u64) -> (std::path::PathBuf, String) {
    let sub = dir.join(name);
    fs::create_dir_all(&sub).expect("mkdir");
    let (file, _, id) = write_artifact(&sub, len, seed);
    (file, id)
}

#[test]
fn the_least_recently_used_unpinned_artifact_makes_room_and_pins_survive_a_restart() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("node");
    let node = Node::start(
        &data,
        &NodeOpts {
            extra: vec!["--max-storage".into(), "3000000".into()],
            ..NodeOpts::default()
        },
    );
    let (a_file, a) = artifact(tmp.path(), "a", PART, 1);
    let (b_file, b) = artifact(tmp.path(), "b", PART, 2);
    let (c_file, c) = artifact(tmp.path(), "c", PART, 3);
    let a_ticket = node.share(&a_file);
    node.share(&b_file);
    node.share(&c_file);
    assert!(node.cli(&["pin", &b]).status.success());
    // A is used again (written out): C is now the least recently used.
    finish_get(node.cli_spawn(&[
        "get",
        &a_ticket,
        "-o",
        tmp.path().join("a.out").to_str().expect("utf-8"),
    ]));

    // D comes from a seed: 3.6 MB would not fit, so C goes.
    let seed = Node::start(&tmp.path().join("seed"), &NodeOpts::default());
    let (d_file, d) = artifact(tmp.path(), "d", PART, 4);
    let d_ticket = seed.share(&d_file);
    let out = node.cli_within(
        LIMIT,
        &[
            "get",
            &d_ticket,
            "-o",
            tmp.path().join("d.out").to_str().expect("utf-8"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = node.status();
    let held: Vec<String> = status["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .map(|x| x["id"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        held.contains(&a) && held.contains(&b) && held.contains(&d),
        "{held:?}"
    );
    assert!(
        !held.contains(&c),
        "the least recently used unpinned one was evicted: {held:?}"
    );
    // Its files go right after (the deletion runs beside the node).
    node.wait_until(LIMIT, "the evicted files are deleted", |_| {
        !data.join("artifacts").join(&c).exists()
    });

    // Too big for the limit at all: refused, with the reason.
    let (e_file, _) = artifact(tmp.path(), "e", 4_000_000, 5);
    let e_ticket = seed.share(&e_file);
    let out = node.cli_within(
        LIMIT,
        &[
            "get",
            &e_ticket,
            "-o",
            tmp.path().join("e.out").to_str().expect("utf-8"),
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("larger than the node's --max-storage"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The pin survives a restart.
    let listen = node.listen.clone();
    node.kill();
    let node = Node::start(
        &data,
        &NodeOpts {
            listen: Some(listen),
            extra: vec!["--max-storage".into(), "3000000".into()],
            ..NodeOpts::default()
        },
    );
    assert_eq!(node.artifact(&b).expect("held")["pinned"], true);
    assert_eq!(node.artifact(&a).expect("held")["pinned"], false);
}

#[test]
fn artifacts_unused_for_evict_after_are_removed_but_pinned_ones_stay() {
    let tmp = tempfile::tempdir().expect("tmp");
    let node = Node::start(
        &tmp.path().join("node"),
        &NodeOpts {
            extra: vec!["--evict-after".into(), "2s".into()],
            ..NodeOpts::default()
        },
    );
    let (f_file, f) = artifact(tmp.path(), "f", 10_000, 6);
    let (g_file, g) = artifact(tmp.path(), "g", 10_000, 7);
    node.share(&f_file);
    node.share(&g_file);
    assert!(node.cli(&["pin", &g]).status.success());
    node.wait_until(LIMIT, "the unused artifact is evicted", |n| {
        n.artifact(&f).is_none()
    });
    assert!(node.artifact(&g).is_some(), "the pinned one stays");
}
