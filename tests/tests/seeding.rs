//! Nodes whose own traffic comes first stop serving what they fetched once enough other
//! nodes hold it (`--seed-copies`), or some time after (`--seed-time`), and still use it.

use std::time::Duration;

use pollen_tests::{Node, NodeOpts, b3, finish_get, write_artifact};

const LIMIT: Duration = Duration::from_secs(60);

fn serving(node: &Node, id: &str) -> bool {
    node.artifact(id).expect("held")["serving"] == true
}

#[test]
fn with_seed_copies_some_fetchers_stop_serving_but_never_all_and_they_keep_the_data() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (file, _, id) = write_artifact(tmp.path(), 300_000, 61);
    let seed = Node::start(&tmp.path().join("seed"), &NodeOpts::default());
    let ticket = seed.share(&file);
    let fetchers: Vec<Node> = (0..3)
        .map(|i| {
            Node::start(
                &tmp.path().join(format!("f{i}")),
                &NodeOpts {
                    join: vec![seed.listen.clone()],
                    extra: vec!["--seed-copies".into(), "2".into()],
                    ..NodeOpts::default()
                },
            )
        })
        .collect();
    for (i, f) in fetchers.iter().enumerate() {
        let out = tmp.path().join(format!("out{i}"));
        finish_get(f.cli_spawn(&["get", &ticket, "-o", out.to_str().expect("utf-8")]));
    }
    // Once gossip has told everyone who holds it, the fetchers that two others outrank stop.
    fetchers[0].wait_until(LIMIT, "a fetcher stops serving", |_| {
        fetchers.iter().any(|f| !serving(f, &id))
    });
    std::thread::sleep(Duration::from_secs(3));
    let still: usize = fetchers.iter().filter(|f| serving(f, &id)).count();
    assert!(still >= 1, "every fetcher stopped serving");
    assert!(still <= 2, "none stopped");
    // A node that stopped serving still holds the bytes and writes them out.
    let retired = fetchers
        .iter()
        .find(|f| !serving(f, &id))
        .expect("one stopped");
    let out = tmp.path().join("again");
    finish_get(retired.cli_spawn(&["get", &ticket, "-o", out.to_str().expect("utf-8")]));
    assert_eq!(b3(&out), id);
    assert!(serving(&seed, &id), "the origin serves on");
}

#[test]
fn with_seed_time_a_fetcher_stops_serving_after_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (file, _, id) = write_artifact(tmp.path(), 100_000, 62);
    let seed = Node::start(&tmp.path().join("seed"), &NodeOpts::default());
    let ticket = seed.share(&file);
    let node = Node::start(
        &tmp.path().join("n"),
        &NodeOpts {
            peers: vec![seed.listen.clone()],
            extra: vec!["--seed-time".into(), "1s".into()],
            ..NodeOpts::default()
        },
    );
    finish_get(node.cli_spawn(&[
        "get",
        &ticket,
        "-o",
        tmp.path().join("o").to_str().expect("utf-8"),
    ]));
    node.wait_until(LIMIT, "it stops serving", |n| !serving(n, &id));
    assert_eq!(node.artifact(&id).expect("held")["complete"], true);
}
