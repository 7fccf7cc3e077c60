//! Tests of the disk storage: crashes at every byte, corruption at every
//! bit, failing disks, and random operation sequences checked against the
//! reference semantics [`PersistedState::apply`].

mod crash;
mod drain;
mod faults;
mod model;

use super::file::FaultInjector;
use super::{DiskStorage, Storage};
use crate::raft::{Persist, PersistedState};
use goose_common::{Entry, EntryPayload, HardState, LogIndex, Membership, NodeId, Term};
use std::path::{Path, PathBuf};

/// A segment size small enough that tests rotate and compact often.
pub(super) const SMALL_SEGMENT_BYTES: u64 = 160;

/// A segment size large enough that a test's log stays in one segment.
pub(super) const LARGE_SEGMENT_BYTES: u64 = 1024 * 1024;

/// A scratch directory, on tmpfs when there is one so fsyncs are cheap.
pub(super) fn scratch_dir() -> tempfile::TempDir {
    let shared_memory = Path::new("/dev/shm");
    let builder = {
        let mut builder = tempfile::Builder::new();
        builder.prefix("goose-storage-test-");
        builder
    };
    if shared_memory.is_dir() {
        if let Ok(dir) = builder.tempdir_in(shared_memory) {
            return dir;
        }
    }
    builder.tempdir().expect("a temporary directory")
}

/// Opens `dir` with the given segment size and no armed faults.
pub(super) fn open(dir: &Path, segment_bytes: u64) -> (DiskStorage, PersistedState) {
    DiskStorage::open_with(dir, segment_bytes, FaultInjector::default()).expect("storage opens")
}

/// A membership of voters `1..=count`.
pub(super) fn membership(count: u64) -> Membership {
    let voters = (1..=count).map(|id| {
        let addr = format!("127.0.0.1:{}", 7700 + id).parse().unwrap();
        (NodeId(id), addr)
    });
    Membership::with_voters(voters)
}

/// An entry; every third one carries a membership so payloads vary in size.
pub(super) fn entry(index: u64, term: u64) -> Entry {
    let payload = match index % 3 {
        0 => EntryPayload::Membership(membership(index % 4 + 1)),
        _ => EntryPayload::NoOp,
    };
    Entry {
        index: LogIndex(index),
        term: Term(term),
        payload,
    }
}

pub(super) fn hard_state(term: u64, vote: Option<u64>) -> HardState {
    HardState {
        term: Term(term),
        vote: vote.map(NodeId),
        ..HardState::default()
    }
}

/// Persists entries `1..=count` of term 1, one record per persist, and
/// returns the model state.
pub(super) fn write_entries(storage: &mut DiskStorage, count: u64) -> PersistedState {
    let mut model = storage.state().clone();
    let first = Persist {
        hard_state: Some(hard_state(1, Some(1))),
        ..Persist::default()
    };
    storage.persist(&first).unwrap();
    model.apply(&first);
    for index in 1..=count {
        let persist = Persist {
            entries: vec![entry(index, 1)],
            ..Persist::default()
        };
        storage.persist(&persist).unwrap();
        model.apply(&persist);
    }
    model
}

/// The segment files of `dir`, oldest first.
pub(super) fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|item| item.unwrap().path())
        .collect();
    paths.sort();
    paths
}

/// The byte offsets at which the records of a segment start.
pub(super) fn record_offsets(segment: &Path) -> Vec<u64> {
    let bytes = std::fs::read(segment).unwrap();
    let scan = super::record::scan(&bytes);
    assert!(scan.damage.is_none());
    scan.records.iter().map(|record| record.offset).collect()
}

/// The driver may move storage to another thread (a blocking task).
#[test]
fn storages_can_move_between_threads() {
    fn assert_send<T: Send>() {}
    assert_send::<DiskStorage>();
    assert_send::<super::MemStorage>();
}
