//! An origin whose fetchers upload as fast as it does sends each piece about once, however
//! few they are: the capacities come by gossip from `--max-upload-rate`.

use std::time::Duration;

use pollen_tests::{Node, NodeOpts, b3, write_artifact};

const LIMIT: Duration = Duration::from_secs(120);
const SIZE: usize = 6 << 20;
const RATE: u64 = 8_000_000;

#[test]
fn an_origin_no_faster_than_its_fetchers_sends_about_one_copy() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (file, _, id) = write_artifact(tmp.path(), SIZE, 71);
    let seed = Node::start(
        &tmp.path().join("seed"),
        &NodeOpts {
            max_upload_rate: Some(RATE),
            ..NodeOpts::default()
        },
    );
    let ticket = seed.share(&file);
    let nodes: Vec<Node> = (0..4)
        .map(|i| {
            Node::start(
                &tmp.path().join(format!("n{i}")),
                &NodeOpts {
                    join: vec![seed.listen.clone()],
                    max_upload_rate: Some(RATE),
                    ..NodeOpts::default()
                },
            )
        })
        .collect();
    // The seed knows all four (and their capacities) before they fetch.
    seed.wait_until(LIMIT, "four members alive", |n| {
        n.members_with("alive").len() == 4
    });
    let gets: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let out = tmp.path().join(format!("out{i}"));
            (
                n.cli_spawn(&["get", &ticket, "-o", out.to_str().expect("utf-8")]),
                out,
            )
        })
        .collect();
    for (get, out) in gets {
        pollen_tests::finish_get(get);
        assert_eq!(b3(&out), id);
    }
    let sent = seed.artifact(&id).expect("held")["uploaded"]
        .as_f64()
        .expect("uploaded");
    let copies = sent / SIZE as f64;
    // Serving every request, four fetchers this fast took 1.3-2 copies from it.
    assert!(copies <= 1.15, "the origin sent {copies:.2} copies");
}
