//! Real `pollen node` processes on loopback, each with its own data directory and ports.

use std::{
    fs,
    path::{Path, PathBuf},
    time::Duration,
};

use pollen_tests::{Node, NodeOpts, b3, finish_get, write_artifact};

const MIB: usize = 1024 * 1024;
const LIMIT: Duration = Duration::from_secs(300);

/// Writes a pseudo-random artifact of `mib` MiB into `dir`; returns its path, bytes and id.
fn artifact(dir: &Path, mib: usize, seed: u64) -> (PathBuf, Vec<u8>, String) {
    write_artifact(dir, mib * MIB, seed)
}

#[test]
fn one_seed_and_five_nodes_fetch_64_mib_and_the_seed_uploads_well_under_five_copies() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (file, data, id) = artifact(tmp.path(), 64, 1);
    // Cap every uplink so peers have time to trade pieces instead of all pulling the seed.
    let rate = Some(40_000_000);
    let seed = Node::start(
        &tmp.path().join("seed"),
        &NodeOpts {
            max_upload_rate: rate,
            ..NodeOpts::default()
        },
    );
    let ticket = seed.share(&file);
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..5 {
        let mut peers = vec![seed.listen.clone()];
        peers.extend(nodes.iter().map(|n| n.listen.clone()));
        let opts = NodeOpts {
            peers,
            max_upload_rate: rate,
            ..NodeOpts::default()
        };
        nodes.push(Node::start(&tmp.path().join(format!("node{i}")), &opts));
    }
    let outputs: Vec<_> = (0..5)
        .map(|i| tmp.path().join(format!("out{i}.bin")))
        .collect();
    let gets: Vec<_> = nodes
        .iter()
        .zip(&outputs)
        .map(|(n, out)| n.cli_spawn(&["get", &ticket, "-o", out.to_str().expect("utf-8")]))
        .collect();
    for get in gets {
        finish_get(get);
    }
    for out in &outputs {
        assert_eq!(b3(out), id, "{}", out.display());
    }
    let uploaded = seed.artifact(&id).expect("seed holds it")["uploaded"]
        .as_u64()
        .expect("uploaded counter");
    let copies = uploaded as f64 / data.len() as f64;
    eprintln!("seed uploaded {copies:.2} copies");
    assert!(
        copies < 3.0,
        "the seed uploaded {copies:.2} copies; peers should share the load"
    );
}

#[test]
fn when_one_of_two_seeds_dies_mid_transfer_every_download_completes() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (file, data, id) = artifact(tmp.path(), 32, 2);
    let rate = Some(8_000_000);
    let a = Node::start(
        &tmp.path().join("a"),
        &NodeOpts {
            max_upload_rate: rate,
            ..NodeOpts::default()
        },
    );
    let ticket = a.share(&file);
    // The second seed fetches it first, at full speed.
    let b = Node::start(
        &tmp.path().join("b"),
        &NodeOpts {
            peers: vec![a.listen.clone()],
            ..NodeOpts::default()
        },
    );
    finish_get(b.cli_spawn(&[
        "get",
        &ticket,
        "-o",
        tmp.path().join("b.bin").to_str().expect("utf-8"),
    ]));
    // Now cap it too, by restarting it where it was.
    let b_listen = b.listen.clone();
    let b_data = b.data.clone();
    drop(b);
    let b = Node::start(
        &b_data,
        &NodeOpts {
            max_upload_rate: rate,
            listen: Some(b_listen),
            ..NodeOpts::default()
        },
    );
    let seeds = vec![a.listen.clone(), b.listen.clone()];
    let nodes: Vec<Node> = (0..3)
        .map(|i| {
            Node::start(
                &tmp.path().join(format!("n{i}")),
                &NodeOpts {
                    peers: seeds.clone(),
                    max_upload_rate: rate,
                    ..NodeOpts::default()
                },
            )
        })
        .collect();
    let outputs: Vec<_> = (0..3)
        .map(|i| tmp.path().join(format!("out{i}.bin")))
        .collect();
    let gets: Vec<_> = nodes
        .iter()
        .zip(&outputs)
        .map(|(n, out)| n.cli_spawn(&["get", &ticket, "-o", out.to_str().expect("utf-8")]))
        .collect();
    // Kill seed A once the first node is a quarter done.
    nodes[0].wait_for(&id, LIMIT, |s| {
        s["have_bytes"].as_u64() >= Some(data.len() as u64 / 4)
    });
    assert!(
        nodes
            .iter()
            .all(|n| n.artifact(&id).is_some_and(|s| s["complete"] == false)),
        "killed too late"
    );
    a.kill();
    for get in gets {
        finish_get(get);
    }
    for out in &outputs {
        assert_eq!(b3(out), id);
    }
}

#[test]
fn a_downloader_killed_mid_transfer_resumes_without_refetching_what_it_had() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (file, data, id) = artifact(tmp.path(), 32, 3);
    let size = data.len() as u64;
    let seed = Node::start(
        &tmp.path().join("seed"),
        &NodeOpts {
            max_upload_rate: Some(8_000_000),
            ..NodeOpts::default()
        },
    );
    let ticket = seed.share(&file);
    let opts = NodeOpts {
        peers: vec![seed.listen.clone()],
        ..NodeOpts::default()
    };
    let dir = tmp.path().join("downloader");
    let out = tmp.path().join("out.bin");
    let node = Node::start(&dir, &opts);
    let get = node.cli_spawn(&["get", &ticket, "-o", out.to_str().expect("utf-8")]);
    let before = node.wait_for(&id, LIMIT, |s| {
        s["have_bytes"].as_u64() >= Some(size * 2 / 5)
    });
    node.kill();
    let _ = get.wait_with_output();
    assert!(!out.exists(), "nothing half-written at the output path");

    let node = Node::start(&dir, &opts);
    // On restart the node reports only what is durably verified, and resumes by itself.
    let resumed = node.artifact(&id).expect("the download is remembered");
    let had = resumed["have_bytes"].as_u64().expect("have_bytes");
    let at_kill = before["have_bytes"].as_u64().expect("have_bytes");
    assert!(had <= size && resumed["complete"] == false);
    // A piece counts as held only once it is durable, so nothing reported before the kill is
    // lost: no verified piece is fetched again.
    assert!(
        had >= at_kill,
        "had {had} after restart, {at_kill} before the kill"
    );
    finish_get(node.cli_spawn(&["get", &ticket, "-o", out.to_str().expect("utf-8")]));
    assert_eq!(b3(&out), id);
    let fetched = node.artifact(&id).expect("held")["downloaded"]
        .as_u64()
        .expect("downloaded");
    // What it fetched after the restart: what was missing plus at most the in-flight window
    // (one link, 4 requests of 64 KiB).
    let window = 4 * 64 * 1024;
    assert!(
        fetched <= size - had + window,
        "fetched {fetched} after restart; missing was {}",
        size - had
    );
}

#[test]
fn bad_input_gives_clear_errors_and_nonzero_exits() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let node = Node::start(&tmp.path().join("n"), &NodeOpts::default());
    // A malformed ticket.
    let out = node.cli(&["get", "pollenNOTATICKET"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid ticket"),
        "{out:?}"
    );
    // Sharing a missing file.
    let out = node.cli(&["share", "/nonexistent/file"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/nonexistent/file"),
        "{out:?}"
    );
    // A second node on the same data directory, or on a port in use.
    let out = std::process::Command::new(pollen_tests::pollen_bin())
        .args(["node", "--data"])
        .arg(&node.data)
        .args(["--listen", "127.0.0.1:0", "--api", "127.0.0.1:0"])
        .output()
        .expect("run");
    assert!(!out.status.success(), "two nodes on one data directory");
    let out = std::process::Command::new(pollen_tests::pollen_bin())
        .args(["node", "--data"])
        .arg(tmp.path().join("other"))
        .args(["--listen", &node.listen, "--api", "127.0.0.1:0"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot listen for peers"),
        "{out:?}"
    );
    // A ticket whose only peer is unreachable: a clear message once the wait runs out.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_addr = dead.local_addr().expect("addr");
    drop(dead);
    let file = tmp.path().join("f");
    fs::write(&file, b"some bytes").expect("write");
    let id_out = std::process::Command::new(pollen_tests::pollen_bin())
        .args(["id", "--ticket"])
        .arg(&file)
        .output()
        .expect("run");
    let ticket: String = String::from_utf8_lossy(&id_out.stdout).trim().to_string();
    let node2 = Node::start(
        &tmp.path().join("n2"),
        &NodeOpts {
            peers: vec![dead_addr.to_string()],
            ..NodeOpts::default()
        },
    );
    let out = node2.cli(&[
        "get",
        &ticket,
        "--stall-timeout",
        "2",
        "-o",
        tmp.path().join("x").to_str().expect("utf-8"),
    ]);
    assert!(!out.status.success());
    // It names what it tried and why that failed.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nothing arrived for 2s"), "{err}");
    assert!(err.contains(&dead_addr.to_string()), "{err}");
    assert!(err.to_lowercase().contains("refused"), "{err}");
    assert!(!tmp.path().join("x").exists());
    // A node that is not running.
    let out = std::process::Command::new(pollen_tests::pollen_bin())
        .args(["status", "--api", "http://127.0.0.1:9"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no Pollen node is running"),
        "{out:?}"
    );
}

/// A tmpfs of a few MiB, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    /// Mounts a `size`-byte tmpfs at `dir`; `None` where this process may not mount (not root).
    fn mount(dir: &Path, size: u64) -> Option<Self> {
        fs::create_dir_all(dir).expect("mount point");
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| SmallDisk(dir.to_path_buf()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_full_disk_stops_the_download_with_a_clear_message_and_nothing_is_reported_complete() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let Some(_disk) = SmallDisk::mount(&tmp.path().join("small"), 4 * MIB as u64) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must be able to mount a tmpfs (run as root)"
        );
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let (file, _, id) = artifact(tmp.path(), 16, 4);
    let seed = Node::start(&tmp.path().join("seed"), &NodeOpts::default());
    let ticket = seed.share(&file);
    let node = Node::start(
        &tmp.path().join("small").join("data"),
        &NodeOpts {
            peers: vec![seed.listen.clone()],
            ..NodeOpts::default()
        },
    );
    let out_path = tmp.path().join("out.bin");
    let out = node.cli(&["get", &ticket, "-o", out_path.to_str().expect("utf-8")]);
    assert!(!out.status.success(), "the download cannot fit");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot store") && stderr.contains("No space left"),
        "{stderr}"
    );
    assert!(!out_path.exists(), "nothing written at the output path");
    let status = node.artifact(&id).expect("the node still lists it");
    assert_eq!(status["complete"], false);
    assert!(status["have_bytes"].as_u64() < Some(4 * MIB as u64));
}

#[test]
fn two_nodes_sharing_thirty_artifacts_hold_one_connection_and_fetch_them_all() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let seed = Node::start(&tmp.path().join("seed"), &NodeOpts::default());
    let mut shared = Vec::new();
    for i in 0..30u64 {
        let dir = tmp.path().join(format!("src{i}"));
        fs::create_dir_all(&dir).expect("source dir");
        let (file, _, id) = write_artifact(&dir, 256 * 1024 + i as usize * 4096, 100 + i);
        shared.push((seed.share(&file), id));
    }
    let fetcher = Node::start(
        &tmp.path().join("fetcher"),
        &NodeOpts {
            peers: vec![seed.listen.clone()],
            ..NodeOpts::default()
        },
    );
    let gets: Vec<_> = shared
        .iter()
        .enumerate()
        .map(|(i, (ticket, _))| {
            let out = tmp.path().join(format!("out{i}.bin"));
            (
                fetcher.cli_spawn(&["get", ticket, "-o", out.to_str().expect("utf-8")]),
                out,
            )
        })
        .collect();
    let mut outs = Vec::new();
    for (get, out) in gets {
        finish_get(get);
        outs.push(out);
    }
    for ((_, id), out) in shared.iter().zip(&outs) {
        assert_eq!(&b3(out), id, "{}", out.display());
    }
    for node in [&seed, &fetcher] {
        let status = node.status();
        assert_eq!(
            status["connections"].as_u64(),
            Some(1),
            "one connection carries every artifact: {status}"
        );
    }
    // Every artifact's peer on the seed is the same remote socket: one TCP connection.
    let addrs: std::collections::BTreeSet<String> = seed.status()["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .flat_map(|a| a["peers"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p["addr"].as_str().map(str::to_string))
        .collect();
    assert_eq!(addrs.len(), 1, "peers seen from the seed: {addrs:?}");
}

#[test]
fn a_dotfile_ticket_is_saved_under_a_visible_name_and_never_over_an_existing_file() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).expect("source dir");
    let file = src.join(".bashrc");
    let data = pollen_tests::pseudo_random(100_000, 9);
    fs::write(&file, &data).expect("write");
    let seed = Node::start(&tmp.path().join("seed"), &NodeOpts::default());
    let ticket = seed.share(&file);
    let fetcher = Node::start(
        &tmp.path().join("fetcher"),
        &NodeOpts {
            peers: vec![seed.listen.clone()],
            ..NodeOpts::default()
        },
    );
    let home = tmp.path().join("home");
    fs::create_dir_all(&home).expect("home dir");
    let first = fetcher.cli_in(&home, &["get", &ticket]);
    assert!(first.status.success(), "{first:?}");
    assert!(!home.join(".bashrc").exists(), "no dotfile is written");
    assert_eq!(fs::read(home.join("_bashrc")).expect("saved"), data);
    // An existing file is kept, with a clear refusal.
    fs::write(home.join("_bashrc"), b"mine").expect("write");
    let again = fetcher.cli_in(&home, &["get", &ticket]);
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("--force"), "{err}");
    assert_eq!(fs::read(home.join("_bashrc")).expect("kept"), b"mine");
    let forced = fetcher.cli_in(&home, &["get", &ticket, "--force"]);
    assert!(forced.status.success(), "{forced:?}");
    assert_eq!(fs::read(home.join("_bashrc")).expect("replaced"), data);
}

#[test]
fn a_peer_that_links_but_never_sends_a_block_does_not_stop_the_stall_timeout() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = pollen_tests::pseudo_random(3 << 20, 77);
    let file = tmp.path().join("art.bin");
    fs::write(&file, &data).expect("write");
    let ticket = pollen_tests::bare_ticket(&file);
    let liar = pollen_tests::liar::Liar::start(&data);
    let node = Node::start(
        &tmp.path().join("n"),
        &NodeOpts {
            peers: vec![liar.addr.to_string()],
            ..NodeOpts::default()
        },
    );
    let out = node.cli_within(
        Duration::from_secs(60),
        &[
            "get",
            &ticket,
            "--stall-timeout",
            "3",
            "-o",
            tmp.path().join("x").to_str().expect("utf-8"),
        ],
    );
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nothing arrived for 3s"), "{err}");
    // It says whom it tried and that the peer sent nothing.
    assert!(err.contains(&liar.addr.to_string()), "{err}");
    assert!(err.contains("sent 0 bytes"), "{err}");
    assert!(!tmp.path().join("x").exists());
}
