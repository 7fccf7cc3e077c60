//! The data directory itself: creating it, locking it against a second
//! daemon, and checking (or writing) its format version.
//!
//! A new directory is initialised file by file and the FORMAT file is
//! written last, atomically: a directory with FORMAT is complete, and one
//! without it is either a crashed initialisation (which holds no data and is
//! initialised again) or not ours (refused).

use super::drain::DRAIN_TEMPORARY_FILE_NAME;
use super::error::StorageError;
use super::file::{self, FaultInjector};
use super::hard_state::{self, HardStateFile, HARD_STATE_FILE_NAME};
use super::snapshot::{self, SNAPSHOT_FILE_NAME};
use super::wal::{self, DIR_MODE, WAL_DIR_NAME};
use goose_common::{HardState, Snapshot};
use rustix::fs::FlockOperation;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::Path;

/// The lock file: flock'd exclusively while a daemon runs; holds its pid.
pub(crate) const LOCK_FILE_NAME: &str = "LOCK";

/// The format version file.
pub(crate) const FORMAT_FILE_NAME: &str = "FORMAT";

/// The on-disk format this build reads and writes. Any change to a file
/// layout bumps it, so an old daemon refuses a newer directory (and vice
/// versa) instead of misreading it.
pub const FORMAT_VERSION: u32 = 2;

const FORMAT_PREFIX: &str = "goose-storage ";

/// The width of the pid in the lock file: every `u32` fits.
const PID_WIDTH: usize = 10;

/// The FORMAT and LOCK files are a line of text; anything longer is not ours.
const SMALL_FILE_BYTES_MAX: u64 = 256;

/// Names a crashed initialisation may leave behind (besides the lock file).
const INITIALISATION_NAMES: [&str; 6] = [
    HARD_STATE_FILE_NAME,
    SNAPSHOT_FILE_NAME,
    "snapshot.tmp",
    WAL_DIR_NAME,
    "FORMAT.tmp",
    "lost+found",
];

/// Creates the directory (mode 0700) if it does not exist.
pub(crate) fn create(dir: &Path, faults: &FaultInjector) -> Result<(), StorageError> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|error| StorageError::io(dir, "create directory", error))?;
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => file::sync_dir(parent, faults),
        _ => Ok(()),
    }
}

/// Takes the directory's exclusive lock and writes our pid into it. The
/// lock lasts as long as the returned file stays open; the kernel releases
/// it when the process dies, so a crash never leaves a stale lock.
pub(crate) fn lock(dir: &Path) -> Result<DirectoryLock, StorageError> {
    let path = dir.join(LOCK_FILE_NAME);
    let lock_file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|error| StorageError::io(&path, "open", error))?;
    match rustix::fs::flock(&lock_file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(errno) if errno == rustix::io::Errno::WOULDBLOCK => {
            let pid = read_pid(&lock_file);
            let dir = dir.to_path_buf();
            return Err(StorageError::Locked { dir, pid });
        }
        Err(errno) => return Err(StorageError::io(&path, "flock", errno.into())),
    }
    // A fixed-width line overwrites the previous holder's pid without a
    // truncation, which on ext4 would wait for the journal.
    let pid_line = format!("{:>PID_WIDTH$}\n", std::process::id());
    lock_file
        .write_all_at(pid_line.as_bytes(), 0)
        .and_then(|()| lock_file.set_len(pid_line.len() as u64))
        .map_err(|error| StorageError::io(&path, "write", error))?;
    Ok(DirectoryLock(lock_file))
}

/// The held lock of a data directory.
#[derive(Debug)]
pub(crate) struct DirectoryLock(File);

impl Drop for DirectoryLock {
    /// Unlocks explicitly: a child forked by another thread (a hook) may
    /// briefly share the open file, and closing our copy alone would leave
    /// the lock held until that child execs.
    fn drop(&mut self) {
        let _ = rustix::fs::flock(&self.0, FlockOperation::Unlock);
    }
}

/// The pid the lock holder wrote, or "unknown" (it may not have written it yet).
fn read_pid(mut lock_file: &File) -> String {
    let mut text = String::new();
    let read = lock_file
        .by_ref()
        .take(SMALL_FILE_BYTES_MAX)
        .read_to_string(&mut text);
    match read {
        Ok(_) if !text.trim().is_empty() => text.trim().to_string(),
        _ => "unknown".to_string(),
    }
}

/// Checks the format version, initialising a directory that has none yet.
pub(crate) fn prepare(dir: &Path, faults: &FaultInjector) -> Result<(), StorageError> {
    let format_path = dir.join(FORMAT_FILE_NAME);
    match file::read_bounded(&format_path, SMALL_FILE_BYTES_MAX)? {
        Some(bytes) => check_format(dir, &bytes)?,
        None => {
            check_uninitialised(dir)?;
            initialise(dir, faults)?;
        }
    }
    remove_leftover(&dir.join("snapshot.tmp"), faults)?;
    remove_leftover(&dir.join(DRAIN_TEMPORARY_FILE_NAME), faults)?;
    remove_leftover(&dir.join("FORMAT.tmp"), faults)
}

fn format_line() -> String {
    format!("{FORMAT_PREFIX}{FORMAT_VERSION}\n")
}

fn check_format(dir: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    let text = String::from_utf8_lossy(bytes);
    let version = text
        .strip_prefix(FORMAT_PREFIX)
        .and_then(|rest| rest.trim_end().parse::<u32>().ok());
    if version == Some(FORMAT_VERSION) && text == format_line() {
        return Ok(());
    }
    Err(StorageError::UnsupportedFormat {
        dir: dir.to_path_buf(),
        found: text.trim_end().to_string(),
        expected: FORMAT_VERSION,
    })
}

/// Refuses a directory without FORMAT that holds anything a crashed
/// initialisation could not have left: unknown files, log records, a
/// snapshot or a term and vote.
fn check_uninitialised(dir: &Path) -> Result<(), StorageError> {
    let refuse = |reason: String| StorageError::NotADataDirectory {
        dir: dir.to_path_buf(),
        reason,
    };
    let listing =
        std::fs::read_dir(dir).map_err(|error| StorageError::io(dir, "list directory", error))?;
    for item in listing {
        let item = item.map_err(|error| StorageError::io(dir, "list directory", error))?;
        let name = item.file_name().to_string_lossy().into_owned();
        if name != LOCK_FILE_NAME && !INITIALISATION_NAMES.contains(&name.as_str()) {
            return Err(refuse(format!("unexpected file {name:?}")));
        }
    }
    if wal_has_records(&dir.join(WAL_DIR_NAME))? {
        return Err(refuse("the log holds records".to_string()));
    }
    let snapshot = file::read_bounded(&dir.join(SNAPSHOT_FILE_NAME), snapshot::SNAPSHOT_BYTES_MAX)?;
    if snapshot.is_some_and(|bytes| snapshot::decode(&bytes) != Ok(Snapshot::default())) {
        return Err(refuse("a snapshot other than the empty one".to_string()));
    }
    if hard_state::peek(dir).is_some_and(|found| found != HardState::default()) {
        return Err(refuse("a term or vote".to_string()));
    }
    Ok(())
}

/// Whether any file in the log directory has content.
fn wal_has_records(wal_dir: &Path) -> Result<bool, StorageError> {
    let listing = match std::fs::read_dir(wal_dir) {
        Ok(listing) => listing,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(error) => return Err(StorageError::io(wal_dir, "list directory", error)),
    };
    for item in listing {
        let item = item.map_err(|error| StorageError::io(wal_dir, "list directory", error))?;
        let length = item.metadata().map_or(1, |metadata| metadata.len());
        if length > 0 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Writes a fresh directory: empty term and vote, empty snapshot, one empty
/// segment, and finally FORMAT.
fn initialise(dir: &Path, faults: &FaultInjector) -> Result<(), StorageError> {
    HardStateFile::create(dir, faults)?;
    snapshot::store(dir, &Snapshot::default(), faults)?;
    wal::create(dir, faults)?;
    file::sync_dir(dir, faults)?;
    file::replace_atomically(dir, FORMAT_FILE_NAME, format_line().as_bytes(), faults)?;
    tracing::info!(dir = %dir.display(), version = FORMAT_VERSION, "initialised a new data directory");
    Ok(())
}

fn remove_leftover(path: &Path, faults: &FaultInjector) -> Result<(), StorageError> {
    if file::remove_if_present(path, faults)? {
        tracing::info!(path = %path.display(), "removed a temporary file left by an interrupted write");
    }
    Ok(())
}
