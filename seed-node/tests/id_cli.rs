//! `pollen id` prints what `b3sum` prints, streams files, and reports bad paths without stopping.

use std::{
    ffi::OsStr,
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use pollen_core::{ContentId, Ticket};
use pollen_tests::pseudo_random;

/// Runs `pollen id ARGS...`.
fn pollen_id(args: &[&OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pollen"))
        .arg("id")
        .args(args)
        .output()
        .expect("run pollen")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("utf-8 output")
}

/// Files at the sizes where the piece structure changes.
fn sample_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let kib = 1024;
    [
        0,
        1,
        1023,
        1024,
        1025,
        16 * kib - 1,
        16 * kib,
        16 * kib + 1,
        48 * kib + 1,
        2 * kib * kib + 7,
    ]
    .into_iter()
    .enumerate()
    .map(|(i, size)| {
        let path = dir.join(format!("file-{size}.bin"));
        let data = pseudo_random(size, i as u64);
        fs::write(&path, &data).expect("write sample");
        (path, data)
    })
    .collect()
}

#[test]
fn prints_blake3_of_each_file_in_b3sum_format() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = sample_files(dir.path());
    let args: Vec<_> = files.iter().map(|(p, _)| p.as_os_str()).collect();
    let out = pollen_id(&args);
    assert!(out.status.success(), "{out:?}");
    let expected: String = files
        .iter()
        .map(|(p, data)| format!("{}  {}\n", blake3::hash(data).to_hex(), p.display()))
        .collect();
    assert_eq!(stdout(&out), expected);
}

#[test]
fn agrees_with_b3sum_when_installed() {
    let Ok(b3sum) = which("b3sum") else {
        assert!(
            std::env::var_os("POLLEN_REQUIRE_B3SUM").is_none(),
            "POLLEN_REQUIRE_B3SUM is set but b3sum is not on PATH"
        );
        eprintln!("b3sum not installed; skipping the comparison");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let mut paths: Vec<PathBuf> = sample_files(dir.path())
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    let odd = dir.path().join("odd \\ name\nwith newline");
    fs::write(&odd, b"escape me").expect("write");
    paths.push(odd);
    let args: Vec<_> = paths.iter().map(|p| p.as_os_str()).collect();
    let ours = pollen_id(&args);
    let theirs = Command::new(b3sum).args(&args).output().expect("run b3sum");
    assert!(ours.status.success() && theirs.status.success());
    assert_eq!(stdout(&ours), String::from_utf8_lossy(&theirs.stdout));
}

#[test]
fn reports_missing_files_after_printing_the_others() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = dir.path().join("good");
    fs::write(&good, b"good").expect("write");
    let missing = dir.path().join("missing");
    let out = pollen_id(&[
        missing.as_os_str(),
        good.as_os_str(),
        dir.path().as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        format!("{}  {}\n", ContentId::of(b"good"), good.display())
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}: No such file", missing.display())),
        "{stderr}"
    );
    assert!(stderr.contains("Is a directory"), "{stderr}");
}

#[test]
fn prints_a_ticket_that_names_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("release.tar");
    let data = pseudo_random(100_000, 9);
    fs::write(&path, &data).expect("write");
    let out = pollen_id(&["--ticket".as_ref(), path.as_os_str()]);
    assert!(out.status.success(), "{out:?}");
    let ticket: Ticket = stdout(&out).trim().parse().expect("a valid ticket");
    assert_eq!(ticket.id(), ContentId::of(&data));
    assert_eq!(ticket.size(), data.len() as u64);
    assert_eq!(ticket.name(), Some("release.tar"));
}

#[test]
fn hashes_standard_input_but_refuses_a_ticket_for_it() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pollen"))
        .args(["id", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"from stdin").expect("write");
    }
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    assert_eq!(
        stdout(&out),
        format!("{}  -\n", ContentId::of(b"from stdin"))
    );

    let out = pollen_id(&["--ticket".as_ref(), "-".as_ref()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ticket needs a file"));
}

fn which(name: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .ok_or(())
}
