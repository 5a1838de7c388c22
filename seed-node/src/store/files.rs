//! Reading and writing the `manifest` and `have` files of an artifact directory; their bytes
//! are [`super::format`]'s.

use std::{io, path::Path};

use pollen_core::{Bitfield, ContentId, Manifest};

use super::{
    FormatError, HAVE_FILE, HAVE_TMP_FILE, MANIFEST_FILE, StoreError, format,
    fsutil::{io_err, read_bounded, replace_file},
};

/// Loads and checks the manifest file of the artifact directory `dir`.
pub(super) fn load_manifest(
    dir: &Path,
    id: ContentId,
) -> Result<(Manifest, Option<String>), StoreError> {
    let path = dir.join(MANIFEST_FILE);
    let bad = |reason| StoreError::BadManifest {
        path: path.clone(),
        reason,
    };
    let bytes = match read_bounded(&path, format::MAX_MANIFEST_LEN) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Err(bad(FormatError::Length)),
        Err(e) if is_missing(&e) => return Err(bad(FormatError::Missing)),
        Err(e) => return Err(io_err("reading", &path)(e)),
    };
    format::decode_manifest(id, &bytes).map_err(bad)
}

/// Loads the have file of the artifact directory `dir`. The outer error is an IO failure; the
/// inner one means the file is missing or invalid, which counts as "no pieces held".
pub(super) fn load_have(
    dir: &Path,
    id: ContentId,
    pieces: u32,
) -> Result<Result<Bitfield, FormatError>, StoreError> {
    let path = dir.join(HAVE_FILE);
    match read_bounded(&path, format::have_len(pieces)) {
        Ok(Some(bytes)) => Ok(format::decode_have(id, pieces, &bytes)),
        Ok(None) => Ok(Err(FormatError::Length)),
        Err(e) if is_missing(&e) => Ok(Err(FormatError::Missing)),
        Err(e) => Err(io_err("reading", &path)(e)),
    }
}

/// Atomically replaces the have file of the artifact directory `dir`.
pub(super) fn store_have(dir: &Path, id: ContentId, have: &Bitfield) -> Result<(), StoreError> {
    replace_file(
        dir,
        HAVE_FILE,
        HAVE_TMP_FILE,
        &format::encode_have(id, have),
    )
}

fn is_missing(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}
