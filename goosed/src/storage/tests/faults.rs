//! Failing disks, a second daemon, foreign or newer directories, and lost
//! files: each is an error that names what is wrong, never a silent repair.

use super::*;
use crate::storage::file::Fault;
use crate::storage::{StorageError, FORMAT_VERSION};
use goose_common::Snapshot;
use std::fs;
use std::os::unix::fs::PermissionsExt;

fn open_error(dir: &Path) -> StorageError {
    DiskStorage::open_with(dir, SMALL_SEGMENT_BYTES, FaultInjector::default())
        .expect_err("opening must fail")
}

/// The persists whose IO a fault can hit: a term/vote change, an append,
/// a truncation and a compaction.
fn persists_of_every_kind() -> Vec<Persist> {
    let compaction = Snapshot {
        index: LogIndex(2),
        term: Term(1),
        membership: membership(3),
    };
    vec![
        Persist {
            hard_state: Some(hard_state(9, Some(3))),
            ..Persist::default()
        },
        Persist {
            entries: vec![entry(7, 1)],
            ..Persist::default()
        },
        Persist {
            truncate_from: Some(LogIndex(5)),
            ..Persist::default()
        },
        Persist {
            snapshot: Some(compaction),
            ..Persist::default()
        },
    ]
}

/// A failing write or fsync surfaces as an error naming the file, poisons
/// the storage (the next persist is refused without IO), and the directory
/// then holds the old state or the new one.
#[test]
fn write_or_fsync_failure_is_fatal_and_poisons() {
    for fault in [Fault::Write, Fault::Sync] {
        for persist in persists_of_every_kind() {
            let dir = scratch_dir();
            let (mut storage, _) = open(dir.path(), SMALL_SEGMENT_BYTES);
            let old = write_entries(&mut storage, 6);
            storage.faults().arm(fault);
            let error = storage
                .persist(&persist)
                .expect_err("the fault must surface");
            assert!(
                matches!(error, StorageError::Io { .. }),
                "{fault:?}: {error}"
            );
            let again = storage.persist(&Persist::default());
            assert!(matches!(again, Err(StorageError::Poisoned)));
            drop(storage);
            let mut new = old.clone();
            new.apply(&persist);
            let (_, found) = open(dir.path(), SMALL_SEGMENT_BYTES);
            assert!(
                found == old || found == new,
                "{fault:?} {persist:?}: {found:?}"
            );
        }
    }
}

/// An empty persist (the heartbeat path) does no IO at all: an armed
/// failure is still armed afterwards.
#[test]
fn empty_persist_does_no_io() {
    for fault in [Fault::Write, Fault::Sync] {
        let dir = scratch_dir();
        let (mut storage, _) = open(dir.path(), SMALL_SEGMENT_BYTES);
        storage.faults().arm(fault);
        storage.persist(&Persist::default()).unwrap();
        let append = Persist {
            entries: vec![entry(1, 0)],
            ..Persist::default()
        };
        assert!(storage.persist(&append).is_err(), "{fault:?} was consumed");
    }
}

/// A second open of the same directory fails at once, naming the
/// directory and the pid of the holder; after the holder closes, it opens.
#[test]
fn second_open_is_refused_naming_the_pid() {
    let dir = scratch_dir();
    let (storage, _) = open(dir.path(), SMALL_SEGMENT_BYTES);
    let error = open_error(dir.path());
    let message = error.to_string();
    let pid = std::process::id().to_string();
    assert!(matches!(error, StorageError::Locked { pid: ref p, .. } if *p == pid));
    assert!(message.contains(&pid) && message.contains(&dir.path().display().to_string()));
    drop(storage);
    drop(open(dir.path(), SMALL_SEGMENT_BYTES));
}

/// A missing directory is created private to the daemon's user, with the
/// format version recorded.
#[test]
fn new_directory_is_private_and_versioned() {
    let parent = scratch_dir();
    let dir = parent.path().join("a/b");
    let (_, found) = open(&dir, SMALL_SEGMENT_BYTES);
    assert!(found.is_empty());
    let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let format = fs::read_to_string(dir.join("FORMAT")).unwrap();
    assert_eq!(format, format!("goose-storage {FORMAT_VERSION}\n"));
}

/// Another format version is refused rather than misread.
#[test]
fn other_format_version_is_refused() {
    let dir = scratch_dir();
    drop(open(dir.path(), SMALL_SEGMENT_BYTES));
    // A newer format, and format 1 (before member identities): both refused.
    for other in [FORMAT_VERSION + 1, 1] {
        let line = format!("goose-storage {other}");
        fs::write(dir.path().join("FORMAT"), format!("{line}\n")).unwrap();
        let error = open_error(dir.path());
        assert!(
            matches!(error, StorageError::UnsupportedFormat { ref found, .. } if *found == line)
        );
    }
}

/// A directory holding someone else's files (or our data without FORMAT)
/// is refused, not initialised over.
#[test]
fn foreign_or_unversioned_directory_is_refused() {
    let dir = scratch_dir();
    fs::write(dir.path().join("notes.txt"), "mine").unwrap();
    assert!(matches!(
        open_error(dir.path()),
        StorageError::NotADataDirectory { .. }
    ));
    let dir = scratch_dir();
    let (mut storage, _) = open(dir.path(), SMALL_SEGMENT_BYTES);
    write_entries(&mut storage, 1);
    drop(storage);
    fs::remove_file(dir.path().join("FORMAT")).unwrap();
    assert!(matches!(
        open_error(dir.path()),
        StorageError::NotADataDirectory { .. }
    ));
}

/// A lost segment (first, middle or last) or a lost snapshot is refused,
/// naming the file that should be there.
#[test]
fn lost_files_are_refused() {
    let build = || {
        let dir = scratch_dir();
        let (mut storage, _) = open(dir.path(), SMALL_SEGMENT_BYTES);
        write_entries(&mut storage, 30);
        drop(storage);
        let segments = segment_files(dir.path());
        assert!(segments.len() >= 4, "the test needs several segments");
        (dir, segments)
    };
    for lost in ["first", "middle", "last"] {
        let (dir, segments) = build();
        let victim = match lost {
            "first" => &segments[0],
            "middle" => &segments[1],
            _ => segments.last().unwrap(),
        };
        fs::remove_file(victim).unwrap();
        let error = open_error(dir.path());
        let names_victim = match &error {
            StorageError::Missing { path, .. } => path == victim,
            StorageError::Corrupt { path, .. } => *path == segments[1],
            _ => false,
        };
        assert!(names_victim, "{lost}: {error}");
    }
    let (dir, _) = build();
    fs::remove_file(dir.path().join("snapshot")).unwrap();
    assert!(matches!(
        open_error(dir.path()),
        StorageError::Missing { .. }
    ));
}
