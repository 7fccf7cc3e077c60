//! Durable storage: the write-ahead log, the term/vote record and the
//! snapshot, under one locked data directory.
//!
//! The driver calls [`Storage::persist`] with each `Ready`'s [`Persist`] and
//! sends nothing until it returns: on `Ok` everything in it is on disk
//! (fdatasync done); an `Err` is fatal and the daemon exits. At start,
//! [`DiskStorage::open`] recovers the directory and returns the
//! [`PersistedState`] the core starts from.
//!
//! Layout of a data directory:
//!
//! ```text
//! LOCK                 flock'd by the running daemon; holds its pid
//! FORMAT               "goose-storage 1": the layout version
//! hardstate            term and vote, two checksummed slots written alternately
//! snapshot             the compacted prefix (index, term, membership), checksummed,
//!                      replaced atomically
//! wal/segment-<seq>    the log: framed, checksummed records (append an entry,
//!                      truncate from an index, seal the segment)
//! drained              present while an operator has drained the node
//!                      (`goosectl drain`); replaced atomically, removed by undrain
//! ```
//!
//! A persist is made durable in this order: the term and vote, then the
//! log records that truncate, then the snapshot, then the appended entries.
//! A crash in between therefore leaves a state in which the term is never
//! below the term of any entry on disk, and the log always continues its
//! snapshot. [`MemStorage`] is the in-memory double with the same crash model.

mod directory;
mod drain;
mod error;
mod file;
mod hard_state;
mod mem;
mod record;
mod recovery;
mod snapshot;
mod wal;

#[cfg(test)]
mod tests;

pub use directory::FORMAT_VERSION;
pub use error::{StorageError, RECOVERY_HINT};
pub use mem::MemStorage;

use crate::raft::{Persist, PersistedState};
use file::FaultInjector;
use goose_common::{LogIndex, Snapshot, Term};
use hard_state::HardStateFile;
use record::RecordRef;
use std::path::{Path, PathBuf};
use wal::Wal;

/// Where a node's [`Persist`]s go.
pub trait Storage {
    /// Makes `persist` durable; returns only once it is (fdatasync done).
    /// Errors are fatal to the daemon. An empty `persist` does no IO.
    fn persist(&mut self, persist: &Persist) -> Result<(), StorageError>;
}

/// Storage in a data directory on disk.
#[derive(Debug)]
pub struct DiskStorage {
    dir: PathBuf,
    /// Held open for the flock; closing it releases the directory.
    _lock: directory::DirectoryLock,
    hard_state: HardStateFile,
    wal: Wal,
    /// What is durable, kept to check each persist before writing it.
    state: PersistedState,
    /// The operator's drain intent as found at start or last set.
    drain: drain::Found,
    poisoned: bool,
    faults: FaultInjector,
}

impl DiskStorage {
    /// Locks the directory (flock, exclusive, non-blocking), checks the
    /// format version, recovers, and returns the storage and the state found.
    /// Creates the directory (mode 0700) and initialises it if needed.
    pub fn open(dir: &Path) -> Result<(DiskStorage, PersistedState), StorageError> {
        DiskStorage::open_with(dir, wal::SEGMENT_BYTES_TARGET, FaultInjector::default())
    }

    /// [`DiskStorage::open`] with a segment size and a fault switch for tests.
    pub(crate) fn open_with(
        dir: &Path,
        segment_bytes_target: u64,
        faults: FaultInjector,
    ) -> Result<(DiskStorage, PersistedState), StorageError> {
        directory::create(dir, &faults)?;
        let lock = directory::lock(dir)?;
        directory::prepare(dir, &faults)?;
        let (hard_state, found_hard_state) = HardStateFile::open(dir, &faults)?;
        let snapshot = snapshot::load(dir)?;
        let (wal, entries) = recovery::open_wal(dir, &snapshot, segment_bytes_target, &faults)?;
        let drain = drain::load(dir);
        let state = PersistedState {
            identity: hard_state.identity(),
            hard_state: found_hard_state,
            snapshot,
            entries,
        };
        tracing::info!(
            dir = %dir.display(),
            term = state.hard_state.term.0,
            vote = ?state.hard_state.vote.map(|id| id.0),
            identity = %state.identity,
            snapshot_index = state.snapshot.index.0,
            last_index = state.last_index().0,
            drained = drain.is_drained(),
            "storage recovered"
        );
        let storage = DiskStorage {
            dir: dir.to_path_buf(),
            _lock: lock,
            hard_state,
            wal,
            state: state.clone(),
            drain,
            poisoned: false,
            faults,
        };
        Ok((storage, state))
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether an operator drained this node (`goosectl drain`) and has not
    /// undrained it since: loaded at [`DiskStorage::open`], kept across
    /// restarts and reboots. A drain file that is damaged or cannot be read
    /// counts as drained (logged as an error at open): reading it as "not
    /// drained" could bring the goose back to a host an operator took out,
    /// and refusing to start would also take the node's vote away. An
    /// undrain clears it, a drain rewrites it.
    pub fn drained(&self) -> bool {
        self.drain.is_drained()
    }

    /// Makes the drain intent durable: `true` writes the `drained` file
    /// atomically (temporary file, fdatasync, rename, fsync of the
    /// directory), `false` removes it and fsyncs the directory; a crash
    /// leaves the old intent or the new one. Returns once the change is on
    /// disk. Setting the value already in force does no IO and succeeds
    /// (except that a damaged file is rewritten or removed).
    ///
    /// Like [`Storage::persist`], an error poisons the storage (the intent
    /// on disk is then either the old or the new one) and is fatal to the
    /// daemon; a poisoned storage refuses with [`StorageError::Poisoned`].
    pub fn set_drained(&mut self, drained: bool) -> Result<(), StorageError> {
        if self.poisoned {
            return Err(StorageError::Poisoned);
        }
        let wanted = if drained {
            drain::Found::Drained
        } else {
            drain::Found::Absent
        };
        if self.drain == wanted {
            return Ok(());
        }
        match drain::store(&self.dir, drained, &self.faults) {
            Ok(()) => {
                tracing::info!(dir = %self.dir.display(), drained, "drain intent stored");
                self.drain = wanted;
                Ok(())
            }
            Err(error) => {
                self.poisoned = true;
                tracing::error!(%error, "storage failed; it refuses further use");
                Err(error)
            }
        }
    }

    /// The switch tests use to make the next write or fsync fail.
    #[cfg(test)]
    pub(crate) fn faults(&self) -> &FaultInjector {
        &self.faults
    }

    /// What is durable now.
    #[cfg(test)]
    pub(crate) fn state(&self) -> &PersistedState {
        &self.state
    }

    /// The log writer.
    #[cfg(test)]
    pub(crate) fn wal(&self) -> &Wal {
        &self.wal
    }

    /// Writes `persist` in the order the module documentation gives.
    fn write(&mut self, persist: &Persist) -> Result<(), StorageError> {
        if let Some(hard_state) = persist.hard_state {
            self.hard_state.write(hard_state)?;
        }
        let has_records = persist.truncate_from.is_some() || !persist.entries.is_empty();
        if has_records && self.wal.needs_rotation() {
            self.wal.rotate(self.state.last_index())?;
        }
        let mut batch = Vec::new();
        if let Some(from) = persist.truncate_from {
            record::encode(&RecordRef::Truncate { from }, &mut batch);
        }
        if let Some(snapshot) = &persist.snapshot {
            // The truncation goes first so that no crash leaves the new
            // snapshot followed by old entries that conflict with it.
            self.wal.append(&batch)?;
            batch.clear();
            snapshot::store(&self.dir, snapshot, &self.faults)?;
        }
        for entry in &persist.entries {
            record::encode(&RecordRef::Entry(entry), &mut batch);
        }
        self.wal.append(&batch)?;
        if let Some(snapshot) = &persist.snapshot {
            self.wal.compact(snapshot.index)?;
        }
        Ok(())
    }
}

impl Storage for DiskStorage {
    /// # Panics
    /// If `persist` would break the log (a snapshot older than the current
    /// one, entries that do not continue the log, or decreasing terms): the
    /// core never asks for that, and refusing before writing keeps the
    /// directory recoverable.
    fn persist(&mut self, persist: &Persist) -> Result<(), StorageError> {
        if self.poisoned {
            return Err(StorageError::Poisoned);
        }
        if persist.is_empty() {
            return Ok(());
        }
        check_persist(&self.state, persist);
        match self.write(persist) {
            Ok(()) => {
                self.state.apply(persist);
                Ok(())
            }
            Err(error) => {
                self.poisoned = true;
                tracing::error!(%error, "storage failed; it refuses further use");
                Err(error)
            }
        }
    }
}

/// Asserts that `persist` keeps the log of `state` valid: what recovery
/// would otherwise refuse at the next start.
fn check_persist(state: &PersistedState, persist: &Persist) {
    let snapshot = persist.snapshot.as_ref().unwrap_or(&state.snapshot);
    assert!(
        snapshot.index >= state.snapshot.index,
        "a snapshot at {} would replace the newer one at {}",
        snapshot.index,
        state.snapshot.index
    );
    let mut last = state.last_index().max(snapshot.index);
    if let Some(from) = persist.truncate_from {
        last = last.min(from.prev()).max(snapshot.index);
    }
    let mut previous_term = term_at(state, snapshot, last);
    for entry in &persist.entries {
        assert_eq!(
            entry.index,
            last.next(),
            "appended entries must continue the log"
        );
        assert!(entry.term >= previous_term, "entry terms must not decrease");
        last = entry.index;
        previous_term = entry.term;
    }
}

/// The term of the entry at `index` in `state` once `snapshot` is installed.
fn term_at(state: &PersistedState, snapshot: &Snapshot, index: LogIndex) -> Term {
    if index == snapshot.index {
        return snapshot.term;
    }
    state
        .entries
        .iter()
        .rev()
        .find(|entry| entry.index == index)
        .map_or(snapshot.term, |entry| entry.term)
}
