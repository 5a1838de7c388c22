//! A node configured by a settings file, overridden by the environment and by flags, and
//! logging JSON lines.

use std::fs;

use pollen_tests::{Node, NodeOpts, pollen_bin};

#[test]
fn a_settings_file_the_environment_and_flags_configure_a_node_in_that_order() {
    let tmp = tempfile::tempdir().expect("tmp");
    let file = tmp.path().join("pollen.toml");
    fs::write(
        &file,
        "zone = \"from-file\"\nmax-fetches = 3\nlog-format = \"json\"\nno-signal = true\n",
    )
    .expect("write settings");
    let check = std::process::Command::new(pollen_bin())
        .args(["config", "check"])
        .arg(&file)
        .output()
        .expect("run pollen config check");
    // No data directory in the file: a node needs one.
    assert!(!check.status.success());
    assert!(String::from_utf8_lossy(&check.stderr).contains("--data"));

    // The file alone: its zone, JSON logs.
    let node = Node::start(
        &tmp.path().join("a"),
        &NodeOpts {
            extra: vec!["--config".into(), file.to_string_lossy().into_owned()],
            ..NodeOpts::default()
        },
    );
    assert_eq!(node.status()["zone"], "from-file");
    node.wait_until(std::time::Duration::from_secs(10), "a JSON log line", |n| {
        n.log().lines().any(|l| l.starts_with('{'))
    });
    let log = node.log();
    let json_line = log
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON log line: {log}"));
    let parsed: serde_json::Value = serde_json::from_str(json_line).expect("a JSON object");
    assert!(parsed["level"].is_string(), "{parsed}");

    // The environment overrides the file; a flag overrides both.
    let env = vec![("POLLEN_ZONE".to_string(), "from-env".to_string())];
    let node = Node::start(
        &tmp.path().join("b"),
        &NodeOpts {
            extra: vec!["--config".into(), file.to_string_lossy().into_owned()],
            env: env.clone(),
            ..NodeOpts::default()
        },
    );
    assert_eq!(node.status()["zone"], "from-env");
    let node = Node::start(
        &tmp.path().join("c"),
        &NodeOpts {
            extra: vec!["--config".into(), file.to_string_lossy().into_owned()],
            zone: Some("from-flag".into()),
            env,
            ..NodeOpts::default()
        },
    );
    assert_eq!(node.status()["zone"], "from-flag");

    // A misspelt key is an error that names it.
    fs::write(&file, "data = \"/tmp/x\"\nzome = \"eu\"\n").expect("write");
    let out = std::process::Command::new(pollen_bin())
        .args(["node", "--config"])
        .arg(&file)
        .output()
        .expect("run pollen node");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown key 'zome'"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
