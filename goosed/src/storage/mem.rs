//! The in-memory storage double the simulator plugs into a node.

use super::error::StorageError;
use super::Storage;
use crate::raft::{Persist, PersistedState};
use std::io;
use std::path::PathBuf;

/// Storage held in memory, with the crash model of [`DiskStorage`](super::DiskStorage):
/// what `persist` returned `Ok` for survives a crash, nothing else does,
/// and after a failed `persist` the storage is poisoned.
///
/// A simulated crash drops the node and keeps only [`MemStorage::durable`];
/// the restarted node loads that and gets a new `MemStorage` built from it.
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    durable: PersistedState,
    fail_next: bool,
    poisoned: bool,
}

impl MemStorage {
    /// A storage whose durable state is `state` (what a restarted node finds).
    pub fn new(state: PersistedState) -> MemStorage {
        MemStorage {
            durable: state,
            fail_next: false,
            poisoned: false,
        }
    }

    /// What survives a crash now.
    pub fn durable(&self) -> PersistedState {
        self.durable.clone()
    }

    /// Makes the next non-empty `persist` fail as a disk error would: it
    /// returns an error, changes nothing, and poisons the storage.
    pub fn fail_next_persist(&mut self) {
        self.fail_next = true;
    }

    /// Whether an earlier failure poisoned the storage.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }
}

impl Storage for MemStorage {
    /// Applies `persist` with [`PersistedState::apply`], the reference semantics.
    ///
    /// # Panics
    /// If `persist` breaks the contiguity of the log (see [`PersistedState::apply`]).
    fn persist(&mut self, persist: &Persist) -> Result<(), StorageError> {
        if self.poisoned {
            return Err(StorageError::Poisoned);
        }
        if persist.is_empty() {
            return Ok(());
        }
        if self.fail_next {
            self.fail_next = false;
            self.poisoned = true;
            return Err(StorageError::io(
                PathBuf::from("<memory>"),
                "fdatasync",
                io::Error::other("injected failure"),
            ));
        }
        self.durable.apply(persist);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use goose_common::{Entry, EntryPayload, HardState, LogIndex, NodeId, Term};

    fn append(index: u64, term: u64) -> Persist {
        Persist {
            entries: vec![Entry {
                index: LogIndex(index),
                term: Term(term),
                payload: EntryPayload::NoOp,
            }],
            hard_state: Some(HardState {
                term: Term(term),
                vote: Some(NodeId(1)),
                ..HardState::default()
            }),
            ..Persist::default()
        }
    }

    /// What persist returned Ok for is exactly what a crash keeps.
    #[test]
    fn persisted_state_survives_a_simulated_crash() {
        let mut storage = MemStorage::default();
        let mut model = PersistedState::default();
        for index in 1..=3 {
            let persist = append(index, 2);
            storage.persist(&persist).unwrap();
            model.apply(&persist);
        }
        let restarted = MemStorage::new(storage.durable());
        drop(storage);
        assert_eq!(restarted.durable(), model);
    }

    /// A failed persist changes nothing durable and poisons the storage;
    /// an empty persist still succeeds before the failure is armed.
    #[test]
    fn failed_persist_leaves_durable_state_unchanged() {
        let mut storage = MemStorage::default();
        storage.persist(&append(1, 1)).unwrap();
        let before = storage.durable();
        storage.fail_next_persist();
        storage.persist(&Persist::default()).unwrap();
        assert!(storage.persist(&append(2, 1)).is_err());
        assert_eq!(storage.durable(), before);
        assert!(storage.is_poisoned());
        assert!(matches!(
            storage.persist(&append(2, 1)),
            Err(StorageError::Poisoned)
        ));
        assert_eq!(storage.durable(), before);
    }
}
