//! Why storage refused to open or to persist.
//!
//! Every error is fatal to the daemon: the driver logs it and exits non-zero.
//! The messages name the file (and, for corruption, the byte offset) so an
//! operator can act on them without reading code.

use std::io;
use std::path::PathBuf;

/// The phrase every refusal to start ends with, pointing to the README.
pub const RECOVERY_HINT: &str = "see README: Recovering a corrupted data directory";

/// A storage failure. After any error a [`DiskStorage`](super::DiskStorage)
/// is poisoned and refuses further use.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Another process holds the directory's lock.
    #[error("data directory {dir} is in use by another goosed (pid {pid}); two daemons must never share it")]
    Locked {
        /// The data directory.
        dir: PathBuf,
        /// The holder's pid as written in the lock file ("unknown" if unreadable).
        pid: String,
    },
    /// The directory was written by a different storage format version.
    #[error("data directory {dir} has storage format {found:?}, this goosed reads format {expected}; {hint}", hint = RECOVERY_HINT)]
    UnsupportedFormat {
        /// The data directory.
        dir: PathBuf,
        /// What the FORMAT file holds.
        found: String,
        /// The version this build reads and writes.
        expected: u32,
    },
    /// The directory holds data but no FORMAT file, so it cannot be trusted.
    #[error("data directory {dir} holds data but no FORMAT file: {reason}; refusing to start, {hint}", hint = RECOVERY_HINT)]
    NotADataDirectory {
        /// The data directory.
        dir: PathBuf,
        /// What was found.
        reason: String,
    },
    /// A file failed its checksum or holds something impossible.
    #[error("{path}: corrupt at byte offset {offset}: {reason}; refusing to start, {hint}", hint = RECOVERY_HINT)]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Where in the file the damage starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The operating system could not give the random identity a new
    /// data directory needs.
    #[error("cannot draw the data directory's identity: {0}")]
    Randomness(String),
    /// A file the log needs is not there.
    #[error("{path}: missing: {reason}; refusing to start, {hint}", hint = RECOVERY_HINT)]
    Missing {
        /// The file that should exist.
        path: PathBuf,
        /// Why it is needed.
        reason: String,
    },
    /// An operating-system call failed. Never retried: after a failed fsync
    /// the kernel may have dropped the dirty pages, so a retry could report
    /// success for data that is not on disk.
    #[error("{path}: {operation} failed: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done ("write", "fdatasync", ...).
        operation: &'static str,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// An earlier error left the storage in an unknown state.
    #[error("storage refused: an earlier write or fsync failed and the storage is poisoned")]
    Poisoned,
}

impl StorageError {
    /// An [`StorageError::Io`] for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, operation: &'static str, source: io::Error) -> Self {
        StorageError::Io {
            path: path.into(),
            operation,
            source,
        }
    }

    /// A [`StorageError::Corrupt`] for `path` at `offset`.
    pub(crate) fn corrupt(
        path: impl Into<PathBuf>,
        offset: u64,
        reason: impl Into<String>,
    ) -> Self {
        StorageError::Corrupt {
            path: path.into(),
            offset,
            reason: reason.into(),
        }
    }
}
