//! The few file operations storage performs, each wrapped so that its error
//! names the path and the operation, and so that tests can make the next
//! write or fsync fail the way a failing disk would.

use super::error::StorageError;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

/// Files storage creates are readable by the daemon's user only.
const FILE_MODE: u32 = 0o600;

/// The kind of operation a test may make fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The next write (or truncation) fails.
    Write = 1,
    /// The next fsync or fdatasync fails.
    Sync = 2,
}

/// A shared switch through which a test arms one failure: of the next
/// operation of a kind, or of the n-th operation of any kind. In the daemon
/// it is never armed, and checking it costs two relaxed atomic loads.
#[derive(Clone, Debug, Default)]
pub(crate) struct FaultInjector {
    armed: Arc<Armed>,
}

#[derive(Debug, Default)]
struct Armed {
    /// A [`Fault`] as a number, or 0.
    kind: AtomicU8,
    /// Operations left before the one that fails, plus one; or 0.
    countdown: AtomicU64,
}

impl FaultInjector {
    /// Makes the next operation of kind `fault` fail.
    #[cfg(test)]
    pub(crate) fn arm(&self, fault: Fault) {
        self.armed.kind.store(fault as u8, Ordering::Relaxed);
    }

    /// Makes the `count`-th operation from now fail, whatever its kind
    /// (1: the next one): a crash at any chosen step.
    #[cfg(test)]
    pub(crate) fn arm_countdown(&self, count: u64) {
        self.armed.countdown.store(count, Ordering::Relaxed);
    }

    /// Fails (once) if this operation is the armed one.
    fn check(&self, fault: Fault) -> io::Result<()> {
        let kind = &self.armed.kind;
        let kind_hit = kind.load(Ordering::Relaxed) == fault as u8
            && kind
                .compare_exchange(fault as u8, 0, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        let countdown = &self.armed.countdown;
        let countdown_hit = countdown.load(Ordering::Relaxed) != 0
            && countdown.fetch_sub(1, Ordering::Relaxed) == 1;
        if kind_hit || countdown_hit {
            return Err(io::Error::other(format!("injected {fault:?} failure")));
        }
        Ok(())
    }
}

/// One open file of the data directory.
#[derive(Debug)]
pub(crate) struct DataFile {
    file: File,
    path: PathBuf,
    faults: FaultInjector,
}

impl DataFile {
    /// Opens an existing file for reading and writing.
    pub(crate) fn open(path: &Path, faults: &FaultInjector) -> Result<DataFile, StorageError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|error| StorageError::io(path, "open", error))?;
        Ok(DataFile {
            file,
            path: path.to_path_buf(),
            faults: faults.clone(),
        })
    }

    /// Creates the file, emptying it if it exists.
    pub(crate) fn create(path: &Path, faults: &FaultInjector) -> Result<DataFile, StorageError> {
        let mut options = OpenOptions::new();
        options
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(FILE_MODE);
        let file = faults
            .check(Fault::Write)
            .and_then(|()| options.open(path))
            .map_err(|error| StorageError::io(path, "create", error))?;
        Ok(DataFile {
            file,
            path: path.to_path_buf(),
            faults: faults.clone(),
        })
    }

    /// Writes all of `bytes` at `offset`.
    pub(crate) fn write_at(&self, bytes: &[u8], offset: u64) -> Result<(), StorageError> {
        self.faults
            .check(Fault::Write)
            .and_then(|()| self.file.write_all_at(bytes, offset))
            .map_err(|error| StorageError::io(&self.path, "write", error))
    }

    /// Cuts (or extends) the file to `length` bytes.
    pub(crate) fn set_len(&self, length: u64) -> Result<(), StorageError> {
        self.faults
            .check(Fault::Write)
            .and_then(|()| self.file.set_len(length))
            .map_err(|error| StorageError::io(&self.path, "truncate", error))
    }

    /// fdatasync: the data and the size reach the disk. Never retried by
    /// callers: after a failure the kernel may already have dropped the pages.
    pub(crate) fn sync(&self) -> Result<(), StorageError> {
        self.faults
            .check(Fault::Sync)
            .and_then(|()| self.file.sync_data())
            .map_err(|error| StorageError::io(&self.path, "fdatasync", error))
    }
}

/// fsync of a directory, so that names created, renamed or removed in it
/// survive a crash.
pub(crate) fn sync_dir(dir: &Path, faults: &FaultInjector) -> Result<(), StorageError> {
    faults
        .check(Fault::Sync)
        .and_then(|()| File::open(dir)?.sync_all())
        .map_err(|error| StorageError::io(dir, "fsync directory", error))
}

/// Replaces `dir/name` with `bytes` so that a crash leaves either the old
/// or the new content: write a temporary file, fsync it, rename it over the
/// target, fsync the directory.
pub(crate) fn replace_atomically(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    faults: &FaultInjector,
) -> Result<(), StorageError> {
    let temporary_path = dir.join(format!("{name}.tmp"));
    let target_path = dir.join(name);
    let temporary = DataFile::create(&temporary_path, faults)?;
    temporary.write_at(bytes, 0)?;
    temporary.sync()?;
    drop(temporary);
    faults
        .check(Fault::Write)
        .and_then(|()| fs::rename(&temporary_path, &target_path))
        .map_err(|error| StorageError::io(&target_path, "rename", error))?;
    sync_dir(dir, faults)
}

/// Reads a whole file of at most `length_max` bytes; `None` if it does not
/// exist. A larger file is refused rather than read into memory.
pub(crate) fn read_bounded(path: &Path, length_max: u64) -> Result<Option<Vec<u8>>, StorageError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(StorageError::io(path, "open", error)),
    };
    let mut bytes = Vec::new();
    file.take(length_max + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| StorageError::io(path, "read", error))?;
    if bytes.len() as u64 > length_max {
        let reason = format!("the file is larger than the limit of {length_max} bytes");
        return Err(StorageError::corrupt(path, length_max, reason));
    }
    Ok(Some(bytes))
}

/// Removes a file, treating "already gone" as success.
pub(crate) fn remove_if_present(path: &Path, faults: &FaultInjector) -> Result<bool, StorageError> {
    match faults
        .check(Fault::Write)
        .and_then(|()| fs::remove_file(path))
    {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(StorageError::io(path, "remove", error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An armed fault fires exactly once, on the kind of operation it names.
    #[test]
    fn armed_fault_fires_once_on_its_kind() {
        let dir = tempfile::tempdir().unwrap();
        let faults = FaultInjector::default();
        let file = DataFile::create(&dir.path().join("f"), &faults).unwrap();
        faults.arm(Fault::Sync);
        file.write_at(b"x", 0).unwrap();
        assert!(file.sync().is_err());
        file.sync().unwrap();
        faults.arm(Fault::Write);
        assert!(file.write_at(b"y", 1).is_err());
        file.write_at(b"y", 1).unwrap();
    }
}
