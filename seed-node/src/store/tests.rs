//! Store tests: round trips, corruption, crashes (simulated and real SIGKILLs), bad files.

use std::{
    fs::{self, File, OpenOptions},
    io::{BufRead, BufReader, Write},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, SystemTime},
};

use pollen_core::{BuildError, ContentId, Manifest, PieceError, layout::MIN_PIECE_SIZE};
use tempfile::TempDir;

use super::*;

/// Deterministic pseudo-random bytes.
fn bytes(len: u64, seed: u8) -> Vec<u8> {
    let mut out = vec![0; len as usize];
    blake3::Hasher::new()
        .update(&[seed])
        .finalize_xof()
        .fill(&mut out);
    out
}

fn piece<'a>(m: &Manifest, data: &'a [u8], i: u32) -> &'a [u8] {
    let r = m.layout().piece_range(i).expect("piece in range");
    &data[r.start as usize..r.end as usize]
}

fn write_source(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, data).expect("write source file");
    path
}

fn no_progress() -> impl FnMut(u64) {
    |_| {}
}

/// Opens a store, waiting out a lock that only a forking sibling test still holds.
///
/// Another test here spawns child processes. Between fork and exec a child shares every open
/// file description of this process, this test's lock file included, so a lock can outlive
/// its `File` for a moment. The node never forks; only these tests need the wait.
fn open(dir: &Path) -> Store {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match Store::open(dir) {
            Err(StoreError::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            result => return result.expect("open store"),
        }
    }
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("list directory")
        .map(|e| {
            e.expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

fn flip_byte(path: &Path, offset: u64) {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open data file");
    let mut b = [0u8];
    f.read_exact_at(&mut b, offset).expect("read byte");
    b[0] ^= 0x40;
    f.write_all_at(&b, offset).expect("write byte");
}

/// Three full pieces and a short one.
fn four_pieces(seed: u8) -> (Vec<u8>, Manifest) {
    let data = bytes(3 * MIN_PIECE_SIZE + 5, seed);
    let manifest = Manifest::of(&data).expect("small artifact");
    assert_eq!(manifest.layout().piece_count(), 4);
    (data, manifest)
}

#[test]
fn store_and_artifact_can_move_between_threads() {
    fn check<T: Send + Sync>() {}
    check::<Store>();
    check::<Artifact>();
}

#[test]
fn import_read_export_round_trip() {
    let root = TempDir::new().expect("tempdir");
    let store = open(&root.path().join("store"));
    let out_dir = root.path().join("out");
    fs::create_dir(&out_dir).expect("mkdir");
    // One piece, exactly one piece, several pieces with a short tail, and several copy buffers.
    for (i, size) in [
        1,
        MIN_PIECE_SIZE,
        3 * MIN_PIECE_SIZE + 5,
        (5 << 20) / 2 + 123,
    ]
    .into_iter()
    .enumerate()
    {
        let data = bytes(size, i as u8);
        let src = write_source(root.path(), &format!("file-{i}.bin"), &data);
        let mut calls = Vec::new();
        let mut art = store
            .import_file(&src, &mut |done| calls.push(done))
            .expect("import");
        let id = ContentId::of(&data);
        assert_eq!(art.id(), id);
        assert_eq!(art.manifest().id(), id);
        assert_eq!(art.name(), Some(format!("file-{i}.bin").as_str()));
        assert!(art.is_complete() && art.durable().is_complete());
        assert!(
            calls.is_sorted() && calls.last() == Some(&size),
            "{calls:?}"
        );
        let m = art.manifest().clone();
        for p in 0..m.layout().piece_count() {
            assert_eq!(art.read_piece(p).expect("read"), piece(&m, &data, p));
        }
        let dest = out_dir.join(format!("copy-{i}"));
        art.export(&dest).expect("export");
        let copy = fs::read(&dest).expect("read export");
        assert!(copy == data, "export differs");
        assert_eq!(ContentId::of(&copy), id);
    }
    // Only the exports are in the destination directory: no temporary files left behind.
    assert_eq!(entries(&out_dir), ["copy-0", "copy-1", "copy-2", "copy-3"]);
    assert!(entries(&store.shared.tmp).is_empty());
    assert_eq!(store.list().expect("list").len(), 4);

    // Everything is still there, complete, after a restart.
    let dir = store.dir().to_path_buf();
    let ids = store.list().expect("list");
    drop(store);
    let store = open(&dir);
    assert_eq!(store.list().expect("list"), ids);
    for id in ids {
        let art = store.open_artifact(id).expect("open").expect("present");
        assert!(art.is_complete());
        assert!(art.reset_reason().is_none());
    }
}

#[test]
fn an_export_that_must_not_replace_keeps_an_existing_file() {
    let root = TempDir::new().expect("tempdir");
    let store = open(&root.path().join("store"));
    let out_dir = root.path().join("out");
    fs::create_dir(&out_dir).expect("mkdir");
    let data = bytes(3 * MIN_PIECE_SIZE + 5, 7);
    let src = write_source(root.path(), "a.bin", &data);
    let mut art = store.import_file(&src, &mut no_progress()).expect("import");
    let taken = out_dir.join("taken");
    fs::write(&taken, b"mine").expect("write");
    let err = art.export_new(&taken).expect_err("exists");
    assert!(matches!(err, StoreError::DestinationExists { .. }), "{err}");
    assert_eq!(fs::read(&taken).expect("kept"), b"mine");
    let free = out_dir.join("free");
    art.export_new(&free).expect("export");
    assert_eq!(fs::read(&free).expect("read"), data);
    // No temporary file is left next to either.
    assert_eq!(entries(&out_dir), ["free", "taken"]);
}

#[test]
fn downloaded_pieces_in_any_order_make_a_complete_artifact() {
    let root = TempDir::new().expect("tempdir");
    let store = open(root.path());
    let (data, m) = four_pieces(1);
    let mut art = store.create(&m, Some("dl.bin")).expect("create");
    assert_eq!(art.have().count(), 0);
    assert_eq!(art.name(), Some("dl.bin"));
    assert_eq!(
        fs::metadata(art.data_path()).expect("stat").len(),
        m.layout().size(),
        "data file is sized up front"
    );
    for (n, p) in [2, 0, 3].into_iter().enumerate() {
        assert!(art.write_piece(p, piece(&m, &data, p)).expect("write"));
        assert_eq!(art.have().count() as usize, n + 1);
    }
    assert!(
        !art.write_piece(0, piece(&m, &data, 0)).expect("rewrite"),
        "already held"
    );
    assert_eq!(art.durable().count(), 0, "not flushed yet");
    assert!(art.write_piece(1, piece(&m, &data, 1)).expect("write"));
    assert!(art.durable().is_complete(), "completion flushes by itself");
    let dest = root.path().join("dl.bin");
    art.export(&dest).expect("export");
    assert!(fs::read(&dest).expect("read") == data);
    assert!(matches!(
        store.create(&m, None),
        Err(StoreError::InUse(id)) if id == m.id()
    ));
    drop(art);
    assert!(matches!(
        store.create(&m, None),
        Err(StoreError::Exists(id)) if id == m.id()
    ));
}

#[test]
fn write_piece_refuses_unverified_bytes() {
    let root = TempDir::new().expect("tempdir");
    let store = open(root.path());
    let (data, m) = four_pieces(2);
    let mut art = store.create(&m, None).expect("create");
    let mut bad = piece(&m, &data, 1).to_vec();
    bad[100] ^= 1;
    assert!(matches!(
        art.write_piece(1, &bad),
        Err(StoreError::Piece {
            source: PieceError::Mismatch { index: 1 },
            ..
        })
    ));
    // Piece 0's bytes offered as piece 1: right length, wrong place.
    assert!(matches!(
        art.write_piece(1, piece(&m, &data, 0)),
        Err(StoreError::Piece {
            source: PieceError::Mismatch { index: 1 },
            ..
        })
    ));
    assert!(matches!(
        art.write_piece(3, piece(&m, &data, 0)),
        Err(StoreError::Piece {
            source: PieceError::Length { index: 3, .. },
            ..
        })
    ));
    assert!(matches!(
        art.write_piece(4, b"x"),
        Err(StoreError::Piece {
            source: PieceError::OutOfRange { index: 4, count: 4 },
            ..
        })
    ));
    assert_eq!(art.have().count(), 0);
    assert!(matches!(
        art.read_piece(1),
        Err(StoreError::NotHeld { index: 1, .. })
    ));
    assert!(matches!(
        art.read_piece(9),
        Err(StoreError::Piece {
            source: PieceError::OutOfRange { .. },
            ..
        })
    ));
}

#[test]
fn read_piece_into_reuses_a_dirty_buffer_of_any_length() {
    let root = TempDir::new().expect("tempdir");
    let store = open(&root.path().join("store"));
    // Four full pieces and a short tail.
    let data = bytes(4 * MIN_PIECE_SIZE + 99, 5);
    let src = write_source(root.path(), "src", &data);
    let mut art = store.import_file(&src, &mut no_progress()).expect("import");
    let m = art.manifest().clone();
    // A recycled buffer holds the last piece's bytes, or garbage, at any length.
    let mut buf = vec![0xAA; 7];
    for p in [0, 4, 1, 4, 3] {
        art.read_piece_into(p, &mut buf).expect("read");
        assert!(buf == piece(&m, &data, p), "piece {p}");
    }
    buf.fill(0x55);
    art.read_piece_into(2, &mut buf).expect("read");
    assert!(buf == piece(&m, &data, 2));
}

#[test]
fn corrupt_piece_is_detected_on_read_dropped_and_that_persists() {
    let root = TempDir::new().expect("tempdir");
    let dir = root.path().join("store");
    let (data, m) = four_pieces(3);
    let src = write_source(root.path(), "src", &data);
    let store = open(&dir);
    let data_path = {
        let art = store.import_file(&src, &mut no_progress()).expect("import");
        art.data_path().to_path_buf()
    };
    flip_byte(&data_path, MIN_PIECE_SIZE + 77); // inside piece 1

    let mut art = store.open_artifact(m.id()).expect("open").expect("present");
    assert!(
        art.is_complete(),
        "held pieces are not re-hashed on open, only on read"
    );
    assert_eq!(
        art.read_piece(0).expect("piece 0 is fine"),
        piece(&m, &data, 0)
    );
    let err = art.read_piece(1).expect_err("piece 1 is corrupt");
    assert!(
        matches!(&err, StoreError::Corrupt { index: 1, path, .. } if *path == data_path),
        "{err:?}"
    );
    assert!(err.to_string().contains(&data_path.display().to_string()));
    assert!(!art.have().contains(1) && !art.durable().contains(1));
    assert!(matches!(art.read_piece(1), Err(StoreError::NotHeld { .. })));
    art.crash(); // The drop is persisted by read_piece itself, not by a later flush.
    drop(store);

    let store = open(&dir);
    let mut art = store.open_artifact(m.id()).expect("open").expect("present");
    assert_eq!(art.have().iter().collect::<Vec<_>>(), [0, 2, 3]);
    assert!(matches!(
        art.export(&root.path().join("x")),
        Err(StoreError::Incomplete {
            held: 3,
            pieces: 4,
            ..
        })
    ));
    // Fetched again, it is held again, and the artifact exports.
    assert!(art.write_piece(1, piece(&m, &data, 1)).expect("refetch"));
    art.export(&root.path().join("x")).expect("export");
    assert!(fs::read(root.path().join("x")).expect("read") == data);
}

#[test]
fn verify_all_finds_every_corrupt_piece_and_a_truncated_data_file() {
    let root = TempDir::new().expect("tempdir");
    let store = open(root.path());
    let (data, m) = four_pieces(4);
    let mut art = store.create(&m, None).expect("create");
    for p in 0..4 {
        art.write_piece(p, piece(&m, &data, p)).expect("write");
    }
    flip_byte(art.data_path(), 5);
    flip_byte(art.data_path(), 2 * MIN_PIECE_SIZE + 5);
    assert_eq!(art.verify_all().expect("scrub"), [0, 2]);
    assert_eq!(art.have().iter().collect::<Vec<_>>(), [1, 3]);
    // Shortened behind the store's back while open: the tail piece cannot be read whole.
    OpenOptions::new()
        .write(true)
        .open(art.data_path())
        .expect("open")
        .set_len(3 * MIN_PIECE_SIZE + 2)
        .expect("truncate");
    assert!(matches!(
        art.read_piece(3),
        Err(StoreError::Corrupt { index: 3, .. })
    ));
    assert_eq!(art.have().iter().collect::<Vec<_>>(), [1]);
}

#[test]
fn unflushed_pieces_are_not_reported_after_a_crash() {
    let root = TempDir::new().expect("tempdir");
    let (data, m) = four_pieces(5);
    let store = open(root.path());
    let mut art = store.create(&m, None).expect("create");
    art.write_piece(0, piece(&m, &data, 0)).expect("write");
    art.flush().expect("flush");
    art.write_piece(2, piece(&m, &data, 2)).expect("write");
    art.write_piece(3, piece(&m, &data, 3)).expect("write");
    assert_eq!(art.have().iter().collect::<Vec<_>>(), [0, 2, 3]);
    assert_eq!(art.durable().iter().collect::<Vec<_>>(), [0]);
    // The bytes did reach the file (the page cache survives a SIGKILL); only the record of
    // them as held is missing, which is the point.
    let mut on_disk = vec![0; MIN_PIECE_SIZE as usize];
    File::open(art.data_path())
        .expect("open data")
        .read_exact_at(&mut on_disk, 2 * MIN_PIECE_SIZE)
        .expect("read");
    assert!(on_disk == piece(&m, &data, 2));
    art.crash();
    drop(store);

    let store = open(root.path());
    let art = store.open_artifact(m.id()).expect("open").expect("present");
    assert_eq!(art.have().iter().collect::<Vec<_>>(), [0]);
    assert!(art.reset_reason().is_none());
}

#[test]
fn pieces_become_durable_by_threshold_by_drop_and_by_completion() {
    let root = TempDir::new().expect("tempdir");
    let (data, m) = four_pieces(6);
    let store = open(root.path());
    let mut art = store.create(&m, None).expect("create");
    art.set_flush_bytes(2 * MIN_PIECE_SIZE);
    art.write_piece(0, piece(&m, &data, 0)).expect("write");
    assert_eq!(art.durable().count(), 0);
    art.write_piece(1, piece(&m, &data, 1)).expect("write");
    assert_eq!(art.durable().count(), 2, "threshold reached");
    art.write_piece(2, piece(&m, &data, 2)).expect("write");
    art.crash();
    let art = store.open_artifact(m.id()).expect("open").expect("present");
    assert_eq!(art.have().iter().collect::<Vec<_>>(), [0, 1]);
    drop(art);

    let mut art = store.open_artifact(m.id()).expect("open").expect("present");
    art.write_piece(2, piece(&m, &data, 2)).expect("write");
    drop(art); // flushes
    let mut art = store.open_artifact(m.id()).expect("open").expect("present");
    assert_eq!(art.have().iter().collect::<Vec<_>>(), [0, 1, 2]);

    art.write_piece(3, piece(&m, &data, 3)).expect("write");
    art.crash();
    let art = store.open_artifact(m.id()).expect("open").expect("present");
    assert!(art.is_complete(), "completion was flushed");
}

#[test]
fn a_garbage_truncated_missing_or_foreign_have_file_is_rebuilt_from_the_data() {
    let root = TempDir::new().expect("tempdir");
    let store = open(&root.path().join("store"));
    // Two artifacts of the same size, hence the same piece count.
    let (data_a, a) = four_pieces(7);
    let (data_b, b) = four_pieces(8);
    let src_a = write_source(root.path(), "a", &data_a);
    let src_b = write_source(root.path(), "b", &data_b);
    drop(
        store
            .import_file(&src_a, &mut no_progress())
            .expect("import a"),
    );
    drop(
        store
            .import_file(&src_b, &mut no_progress())
            .expect("import b"),
    );
    let have_a = store.shared.artifact_dir(a.id()).join(HAVE_FILE);
    let have_b = store.shared.artifact_dir(b.id()).join(HAVE_FILE);
    let good = fs::read(&have_a).expect("read have");

    type Damage<'a> = Box<dyn Fn() + 'a>;
    let cases: [(&str, Damage, FormatError); 5] = [
        (
            "truncated",
            Box::new(|| fs::write(&have_a, &good[..10]).expect("write")),
            FormatError::Length,
        ),
        (
            "garbage",
            Box::new(|| fs::write(&have_a, vec![0xa5; good.len()]).expect("write")),
            FormatError::Magic("have"),
        ),
        (
            "torn",
            Box::new(|| {
                let mut torn = good.clone();
                torn[good.len() - 10] ^= 1;
                fs::write(&have_a, torn).expect("write");
            }),
            FormatError::Checksum,
        ),
        (
            "missing",
            Box::new(|| fs::remove_file(&have_a).expect("remove")),
            FormatError::Missing,
        ),
        (
            "foreign",
            Box::new(|| {
                fs::copy(&have_b, &have_a).expect("copy");
            }),
            FormatError::WrongArtifact(b.id()),
        ),
    ];
    for (what, damage, reason) in cases {
        fs::write(&have_a, &good).expect("restore");
        damage();
        // The data is intact: every piece verifies, so every piece is held again.
        let art = store.open_artifact(a.id()).expect("open").expect("present");
        assert!(art.is_complete(), "{what}");
        assert_eq!(art.reset_reason(), Some(&reason), "{what}");
        assert_eq!(art.rebuilt(), Some(4), "{what}");
        drop(art);
        // The rebuilt set was persisted: it opens cleanly, whole.
        let art = store.open_artifact(a.id()).expect("open").expect("present");
        assert!(art.is_complete(), "{what}");
        assert_eq!((art.reset_reason(), art.rebuilt()), (None, None), "{what}");
    }
    let art_b = store.open_artifact(b.id()).expect("open").expect("present");
    assert!(art_b.is_complete(), "the other artifact is unaffected");

    // Garbage over data with a flipped byte in piece 2: the other three are kept.
    let data_path = store.shared.artifact_dir(a.id()).join(DATA_FILE);
    let mut bytes = fs::read(&data_path).expect("read data");
    let piece = a.layout().piece_range(2).expect("piece 2");
    bytes[piece.start as usize + 5] ^= 0x40;
    fs::write(&data_path, &bytes).expect("write data");
    fs::write(&have_a, vec![0xa5; good.len()]).expect("garbage");
    let art = store.open_artifact(a.id()).expect("open").expect("present");
    assert_eq!(art.rebuilt(), Some(3));
    assert!(!art.have().contains(2) && art.have().count() == 3);
}

#[test]
fn data_file_of_the_wrong_length_discards_held_pieces() {
    let root = TempDir::new().expect("tempdir");
    let store = open(root.path());
    let (data, m) = four_pieces(9);
    let src = write_source(root.path(), "src", &data);
    let data_path = {
        let art = store.import_file(&src, &mut no_progress()).expect("import");
        art.data_path().to_path_buf()
    };
    for damage in ["truncate", "remove"] {
        if damage == "truncate" {
            OpenOptions::new()
                .write(true)
                .open(&data_path)
                .expect("open")
                .set_len(10)
                .expect("truncate");
        } else {
            fs::remove_file(&data_path).expect("remove");
        }
        let mut art = store.open_artifact(m.id()).expect("open").expect("present");
        assert_eq!(art.have().count(), 0, "{damage}");
        assert_eq!(art.reset_reason(), Some(&FormatError::DataFile), "{damage}");
        assert_eq!(
            fs::metadata(&data_path).expect("stat").len(),
            m.layout().size(),
            "{damage}: data file repaired"
        );
        for p in 0..4 {
            art.write_piece(p, piece(&m, &data, p)).expect("refetch");
        }
        drop(art);
        let art = store.open_artifact(m.id()).expect("open").expect("present");
        assert!(
            art.is_complete() && art.reset_reason().is_none(),
            "{damage}"
        );
    }
}

#[test]
fn garbage_manifest_makes_that_artifact_unusable_and_list_skips_it() {
    let root = TempDir::new().expect("tempdir");
    let dir = root.path().join("store");
    let store = open(&dir);
    let (data_a, a) = four_pieces(10);
    let (data_b, b) = four_pieces(11);
    drop(
        store
            .import_file(&write_source(root.path(), "a", &data_a), &mut no_progress())
            .expect("import"),
    );
    drop(
        store
            .import_file(&write_source(root.path(), "b", &data_b), &mut no_progress())
            .expect("import"),
    );
    let manifest_a = store.shared.artifact_dir(a.id()).join(MANIFEST_FILE);
    fs::write(&manifest_a, b"not a manifest at all").expect("write garbage");
    // Stray entries in artifacts/ are ignored.
    fs::write(store.shared.artifacts.join("README"), "hi").expect("write");
    fs::create_dir(
        store
            .shared
            .artifacts
            .join(a.id().to_string().to_uppercase()),
    )
    .expect("mkdir");
    drop(store);

    let store = open(&dir);
    assert_eq!(store.list().expect("list"), [b.id()]);
    let scan = store.scan().expect("scan");
    assert_eq!(scan.usable, [b.id()]);
    assert!(
        matches!(
            scan.unusable.as_slice(),
            [StoreError::BadManifest { path, reason: FormatError::Magic("manifest") }]
                if *path == manifest_a
        ),
        "{:?}",
        scan.unusable
    );
    let err = store.open_artifact(a.id()).expect_err("unusable");
    assert!(matches!(err, StoreError::BadManifest { .. }), "{err:?}");
    assert!(store.open_artifact(b.id()).expect("open").is_some());

    fs::remove_file(&manifest_a).expect("remove");
    assert!(matches!(
        store.open_artifact(a.id()),
        Err(StoreError::BadManifest {
            reason: FormatError::Missing,
            ..
        })
    ));
    // The way out: remove it, then it can be fetched or imported again.
    assert!(store.remove(a.id()).expect("remove"));
    let art = store
        .import_file(&root.path().join("a"), &mut no_progress())
        .expect("import again");
    assert!(art.is_complete());
}

#[test]
fn import_of_a_file_that_grows_or_shrinks_fails_and_leaves_nothing() {
    let root = TempDir::new().expect("tempdir");
    let store = open(&root.path().join("store"));
    let size = 3 << 20; // several read buffers, so progress is reported before the end
    for grow in [true, false] {
        let src = write_source(root.path(), "moving", &bytes(size, 12));
        let result = store.import_file(&src, &mut |done| {
            if done == 1 << 20 {
                let f = OpenOptions::new().write(true).open(&src).expect("open");
                f.set_len(if grow { size + 1 } else { size - 1 })
                    .expect("resize");
            }
        });
        let err = result.expect_err("the file changed");
        let expected = if grow {
            BuildError::TooLong { expected: size }
        } else {
            BuildError::TooShort {
                expected: size,
                got: size - 1,
            }
        };
        assert!(
            matches!(&err, StoreError::Changed { path, source: Some(e) } if *path == src && *e == expected),
            "{err:?}"
        );
        assert!(err.to_string().contains(&src.display().to_string()));
        assert!(store.list().expect("list").is_empty());
        assert!(entries(&store.shared.artifacts).is_empty());
        assert!(entries(&store.shared.tmp).is_empty());
    }
}

#[test]
fn import_of_a_file_rewritten_in_place_fails() {
    let root = TempDir::new().expect("tempdir");
    let store = open(&root.path().join("store"));
    let size = 3 << 20;
    let src = write_source(root.path(), "edited", &bytes(size, 13));
    let result = store.import_file(&src, &mut |done| {
        if done == 1 << 20 {
            let f = OpenOptions::new().write(true).open(&src).expect("open");
            f.write_all_at(b"edit", 10).expect("edit");
            // Make the change visible whatever the timestamp granularity.
            f.set_modified(SystemTime::now() + Duration::from_secs(10))
                .expect("set mtime");
        }
    });
    assert!(
        matches!(result, Err(StoreError::Changed { source: None, .. })),
        "{result:?}"
    );
    assert!(store.list().expect("list").is_empty());
    assert!(entries(&store.shared.tmp).is_empty());
}

#[test]
fn import_errors_name_the_path() {
    let root = TempDir::new().expect("tempdir");
    let store = open(&root.path().join("store"));
    let missing = root.path().join("no-such-file");
    let err = store
        .import_file(&missing, &mut no_progress())
        .expect_err("missing");
    assert!(matches!(err, StoreError::Io { .. }));
    assert!(err.to_string().contains("no-such-file"), "{err}");
    let err = store
        .import_file(root.path(), &mut no_progress())
        .expect_err("a directory");
    assert!(matches!(err, StoreError::NotAFile { .. }), "{err:?}");
}

#[test]
fn import_replaces_an_incomplete_copy_of_the_same_artifact() {
    let root = TempDir::new().expect("tempdir");
    let store = open(root.path());
    let (data, m) = four_pieces(14);
    let mut art = store.create(&m, None).expect("create");
    art.write_piece(0, piece(&m, &data, 0)).expect("write");
    let src = write_source(root.path(), "same.bin", &data);
    assert!(matches!(
        store.import_file(&src, &mut no_progress()),
        Err(StoreError::InUse(_))
    ));
    assert!(entries(&store.shared.tmp).is_empty());
    drop(art);
    let art = store.import_file(&src, &mut no_progress()).expect("import");
    assert!(art.is_complete());
    assert_eq!(art.name(), Some("same.bin"));
    assert_eq!(store.list().expect("list"), [m.id()]);
}

#[test]
fn export_refuses_an_incomplete_artifact_and_leaves_the_destination_alone() {
    let root = TempDir::new().expect("tempdir");
    let store = open(&root.path().join("store"));
    let out = root.path().join("out");
    fs::create_dir(&out).expect("mkdir");
    let (data, m) = four_pieces(15);
    let mut art = store.create(&m, None).expect("create");
    art.write_piece(0, piece(&m, &data, 0)).expect("write");
    art.write_piece(3, piece(&m, &data, 3)).expect("write");
    let err = art.export(&out.join("new")).expect_err("incomplete");
    assert!(
        matches!(
            err,
            StoreError::Incomplete {
                held: 2,
                pieces: 4,
                ..
            }
        ),
        "{err:?}"
    );
    fs::write(out.join("old"), "previous contents").expect("write");
    assert!(art.export(&out.join("old")).is_err());
    assert_eq!(entries(&out), ["old"]);
    assert_eq!(
        fs::read_to_string(out.join("old")).expect("read"),
        "previous contents"
    );
    assert!(matches!(
        art.export(Path::new("/")),
        Err(StoreError::Incomplete { .. })
    ));
}

#[test]
fn export_replaces_atomically_and_detects_corruption_while_copying() {
    let root = TempDir::new().expect("tempdir");
    let store = open(&root.path().join("store"));
    let out = root.path().join("out");
    fs::create_dir(&out).expect("mkdir");
    let (data, m) = four_pieces(16);
    let src = write_source(root.path(), "src", &data);
    let mut art = store.import_file(&src, &mut no_progress()).expect("import");

    fs::write(out.join("dest"), "previous contents").expect("write");
    art.export(&out.join("dest"))
        .expect("export over an existing file");
    assert!(fs::read(out.join("dest")).expect("read") == data);

    flip_byte(art.data_path(), 2 * MIN_PIECE_SIZE + 1);
    let err = art.export(&out.join("second")).expect_err("corrupt data");
    assert!(
        matches!(err, StoreError::DataMismatch { dropped: 1, .. }),
        "{err:?}"
    );
    assert_eq!(
        entries(&out),
        ["dest"],
        "no partial file, no temporary file"
    );
    assert_eq!(art.have().iter().collect::<Vec<_>>(), [0, 1, 3]);

    assert!(matches!(art.write_piece(2, piece(&m, &data, 2)), Ok(true)));
    assert!(matches!(
        art.export(Path::new("/")),
        Err(StoreError::BadDestination { .. })
    ));
    let err = art
        .export(&out.join("missing-dir").join("x"))
        .expect_err("no such directory");
    assert!(err.to_string().contains("missing-dir"), "{err}");
}

#[test]
fn zero_length_artifacts_work() {
    let root = TempDir::new().expect("tempdir");
    let store = open(&root.path().join("store"));
    let src = write_source(root.path(), "empty", b"");
    let mut calls = Vec::new();
    let mut art = store
        .import_file(&src, &mut |done| calls.push(done))
        .expect("import");
    assert_eq!(calls, [0]);
    assert_eq!(art.id(), ContentId::of(b""));
    assert_eq!(art.have().len(), 0);
    assert!(art.is_complete());
    assert!(matches!(
        art.read_piece(0),
        Err(StoreError::Piece {
            source: PieceError::OutOfRange { index: 0, count: 0 },
            ..
        })
    ));
    art.export(&root.path().join("copy")).expect("export");
    assert_eq!(fs::read(root.path().join("copy")).expect("read"), b"");
    assert_eq!(art.verify_all().expect("scrub"), Vec::<u32>::new());
    drop(art);

    let m = Manifest::of(&[]).expect("empty");
    assert!(store.remove(m.id()).expect("remove"));
    let art = store.create(&m, None).expect("create");
    assert!(art.is_complete());
    drop(art);
    let art = store.open_artifact(m.id()).expect("open").expect("present");
    assert!(art.is_complete() && art.reset_reason().is_none());
}

#[test]
fn a_data_directory_is_locked_by_its_store_and_artifacts() {
    let root = TempDir::new().expect("tempdir");
    let store = open(root.path());
    assert!(matches!(
        Store::open(root.path()),
        Err(StoreError::Locked { .. })
    ));
    let (_, m) = four_pieces(17);
    let art = store.create(&m, None).expect("create");
    drop(store);
    assert!(
        matches!(Store::open(root.path()), Err(StoreError::Locked { .. })),
        "an open artifact keeps the directory locked"
    );
    drop(art);
    let store = open(root.path());
    let art = store.open_artifact(m.id()).expect("open").expect("present");
    assert!(matches!(
        store.open_artifact(m.id()),
        Err(StoreError::InUse(_))
    ));
    assert!(matches!(store.remove(m.id()), Err(StoreError::InUse(_))));
    drop(art);
    assert!(store.open_artifact(m.id()).expect("open").is_some());
}

#[test]
fn remove_deletes_and_open_clears_leftovers() {
    let root = TempDir::new().expect("tempdir");
    let store = open(root.path());
    let (data, m) = four_pieces(18);
    drop(
        store
            .import_file(&write_source(root.path(), "x", &data), &mut no_progress())
            .expect("import"),
    );
    assert!(store.remove(m.id()).expect("remove"));
    assert!(!store.remove(m.id()).expect("remove again"));
    assert!(store.open_artifact(m.id()).expect("open").is_none());
    assert!(store.list().expect("list").is_empty());
    assert!(entries(&store.shared.tmp).is_empty());

    // Debris of an import or removal cut short by a crash.
    fs::create_dir_all(store.shared.tmp.join("staging-7/sub")).expect("mkdir");
    fs::write(store.shared.tmp.join("staging-7/data"), "partial").expect("write");
    drop(store);
    let store = open(root.path());
    assert!(entries(&store.shared.tmp).is_empty());
}

#[test]
fn names_are_checked() {
    let root = TempDir::new().expect("tempdir");
    let store = open(root.path());
    let (_, m) = four_pieces(19);
    for bad in ["", "a/b", "..", "tab\there"] {
        assert!(
            matches!(store.create(&m, Some(bad)), Err(StoreError::Name { .. })),
            "{bad:?}"
        );
    }
    assert!(store.list().expect("list").is_empty());
}

#[test]
fn a_full_disk_is_a_typed_error_naming_the_file_and_nothing_is_claimed() {
    let root = TempDir::new().expect("tempdir");
    let store = open(root.path());
    let (data, m) = four_pieces(20);
    let mut art = store.create(&m, None).expect("create");
    let data_path = art.data_path().to_path_buf();
    let full = || {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/full")
            .expect("/dev/full")
    };

    // The write itself fails with ENOSPC.
    art.replace_data_file(full());
    let err = art
        .write_piece(0, piece(&m, &data, 0))
        .expect_err("disk full");
    assert!(
        matches!(&err, StoreError::Io { source, path, .. }
            if source.kind() == std::io::ErrorKind::StorageFull && *path == data_path),
        "{err:?}"
    );
    assert!(err.to_string().contains(&data_path.display().to_string()));
    assert_eq!(art.have().count(), 0);

    // The write lands in the page cache but the sync fails (fsync of /dev/full is refused):
    // the piece is no longer held, because a retried fsync could lie.
    art.replace_data_file(
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(&data_path)
            .expect("data"),
    );
    art.write_piece(1, piece(&m, &data, 1)).expect("write");
    assert!(art.have().contains(1));
    art.replace_data_file(full());
    let err = art.flush().expect_err("sync fails");
    assert!(
        matches!(
            &err,
            StoreError::Io {
                action: "syncing",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(art.have().count(), 0);
    drop(art);
    let art = store.open_artifact(m.id()).expect("open").expect("present");
    assert_eq!(art.have().count(), 0);
}

/// Environment variable that turns [`crash_child`] on and names the data directory.
const CRASH_CHILD_DIR: &str = "POLLEN_STORE_CRASH_CHILD_DIR";

fn crash_data() -> Vec<u8> {
    bytes(96 * MIN_PIECE_SIZE - 7, 21)
}

/// The process that [`sigkill_at_any_moment_resumes_without_refetching_or_false_claims`] kills.
/// It "downloads" the missing pieces in order, flushing every 4 pieces. It prints
/// `fetch <index>` before writing a piece and `durable <n>` after a flush has made pieces
/// `0..n` durable.
#[test]
#[ignore = "helper process for the SIGKILL test; does nothing on its own"]
fn crash_child() {
    let Some(dir) = std::env::var_os(CRASH_CHILD_DIR) else {
        return;
    };
    let data = crash_data();
    let m = Manifest::of(&data).expect("small");
    let store = open(Path::new(&dir));
    let mut art = store
        .open_artifact(m.id())
        .expect("open")
        .expect("created by the parent");
    let mut out = std::io::stdout().lock();
    // libtest has just printed "test ... " without a newline: start a line of our own.
    writeln!(out).expect("stdout");
    for i in 0..m.layout().piece_count() {
        if art.have().contains(i) {
            continue;
        }
        writeln!(out, "fetch {i}").expect("stdout");
        art.write_piece(i, piece(&m, &data, i)).expect("write");
        if i % 4 == 3 {
            art.flush().expect("flush");
            writeln!(out, "durable {}", i + 1).expect("stdout");
        }
    }
    art.flush().expect("flush");
    writeln!(out, "complete").expect("stdout");
}

#[test]
fn sigkill_at_any_moment_resumes_without_refetching_or_false_claims() {
    let root = TempDir::new().expect("tempdir");
    let data = crash_data();
    let m = Manifest::of(&data).expect("small");
    drop(open(root.path()).create(&m, None).expect("create"));
    let exe = std::env::current_exe().expect("path of the test binary");
    let mut reported = 0; // pieces 0..reported were reported durable by some child
    for round in 1u64.. {
        assert!(round <= 200, "the download never completed");
        let kill_after = round % 3 + 1; // `durable` lines to see before the kill
        let mut child = Command::new(&exe)
            .args([
                "store::tests::crash_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CRASH_CHILD_DIR, root.path())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn child");
        // Kept open until the child is dead, so that it never sees a closed pipe.
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let (mut seen, mut complete) = (0, false);
        for line in lines.by_ref() {
            let line = line.expect("child stdout");
            if let Some(i) = line.strip_prefix("fetch ") {
                let i: u32 = i.parse().expect("index");
                assert!(i >= reported, "piece {i} fetched again although durable");
            } else if let Some(n) = line.strip_prefix("durable ") {
                reported = reported.max(n.parse().expect("count"));
                seen += 1;
                if seen == kill_after {
                    break;
                }
            } else if line == "complete" {
                complete = true;
            }
        }
        if !complete && seen < kill_after {
            let status = child.wait().expect("wait");
            panic!("the child stopped on its own: {status}");
        }
        // Wherever the child is now (writing, syncing, renaming `have`), it dies there.
        std::thread::sleep(Duration::from_micros(round * 397 % 1500));
        let _ = child.kill();
        child.wait().expect("wait");
        drop(lines);

        let store = open(root.path());
        let mut art = store.open_artifact(m.id()).expect("open").expect("present");
        for i in 0..reported {
            assert!(art.have().contains(i), "durable piece {i} was lost");
        }
        let held: Vec<u32> = art.have().iter().collect();
        for i in held {
            let bytes = art.read_piece(i).expect("every held piece verifies");
            assert!(bytes == piece(&m, &data, i));
        }
        if complete {
            let dest = root.path().join("result");
            art.export(&dest).expect("export");
            assert!(fs::read(&dest).expect("read") == data);
            assert!(round > 3, "the child was never killed mid-download");
            break;
        }
    }
}
