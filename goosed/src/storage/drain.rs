//! The operator's drain intent (`goosectl drain`, design.md §2
//! "Eligibility"): a drained node may not be the goose, across restarts and
//! reboots, until `goosectl undrain`.
//!
//! The intent is the presence of the file [`DRAIN_FILE_NAME`] holding exactly
//! [`DRAIN_FILE_CONTENT`]. Draining writes it atomically (temporary file,
//! fdatasync, rename, fsync of the directory); undraining removes it and
//! fsyncs the directory. Either way a crash leaves the old intent or the new
//! one, and a change is durable once it returns.
//!
//! A file that is there but does not hold exactly the expected line (damage
//! to the disk or a hand edit), or that cannot be read, counts as **drained**
//! and is logged as an error naming it: reading it as "not drained" could
//! bring the goose back to a host an operator took out, while refusing to
//! start would also take away the node's vote, which the cluster's majority
//! may need. An undrain removes such a file whatever it holds, and a drain
//! rewrites it.

use super::error::StorageError;
use super::file::{self, FaultInjector};
use std::path::Path;

/// The drain intent's file name inside the data directory.
pub(crate) const DRAIN_FILE_NAME: &str = "drained";

/// The temporary file a drain writes before renaming it into place; a crash
/// may leave it behind, and the next start removes it.
pub(crate) const DRAIN_TEMPORARY_FILE_NAME: &str = "drained.tmp";

/// What the drain file holds: one line that says what it is for.
pub(crate) const DRAIN_FILE_CONTENT: &str =
    "drained by goosectl drain; goosectl undrain removes this file\n";

/// Anything larger than this is not ours (read no further).
const DRAIN_FILE_BYTES_MAX: u64 = 256;

const _: () = assert!(DRAIN_FILE_CONTENT.len() as u64 <= DRAIN_FILE_BYTES_MAX);

/// What the drain file was found to hold at start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// No file: not drained.
    Absent,
    /// The file with its expected content: drained.
    Drained,
    /// A file that could not be read or holds something else: counted as
    /// drained, and rewritten (or removed) by the next drain (or undrain).
    Damaged,
}

impl Found {
    /// Whether the node counts as drained.
    pub(crate) fn is_drained(self) -> bool {
        self != Found::Absent
    }
}

/// Reads the drain intent of `dir`. Never fails: see the module
/// documentation for why a damaged or unreadable file counts as drained.
pub(crate) fn load(dir: &Path) -> Found {
    let path = dir.join(DRAIN_FILE_NAME);
    let problem = match file::read_bounded(&path, DRAIN_FILE_BYTES_MAX) {
        Ok(None) => return Found::Absent,
        Ok(Some(bytes)) if bytes == DRAIN_FILE_CONTENT.as_bytes() => return Found::Drained,
        Ok(Some(bytes)) => format!(
            "unexpected content ({} bytes, expected the line {:?})",
            bytes.len(),
            DRAIN_FILE_CONTENT.trim_end()
        ),
        Err(error) => error.to_string(),
    };
    tracing::error!(
        path = %path.display(),
        problem,
        "the drain intent file is damaged or unreadable; this node counts as drained \
         (not eligible to be the goose): run `goosectl undrain` to remove the file, \
         or `goosectl drain` to rewrite it"
    );
    Found::Damaged
}

/// Makes the intent durable: writes the file (drain) or removes it
/// (undrain), then fsyncs the directory.
pub(crate) fn store(dir: &Path, drained: bool, faults: &FaultInjector) -> Result<(), StorageError> {
    if drained {
        file::replace_atomically(dir, DRAIN_FILE_NAME, DRAIN_FILE_CONTENT.as_bytes(), faults)
    } else {
        file::remove_if_present(&dir.join(DRAIN_FILE_NAME), faults)?;
        file::sync_dir(dir, faults)
    }
}
