//! Start-up recovery of the write-ahead log.
//!
//! The rules, each logged when it acts:
//! - a torn record at the very end of the last segment (an interrupted
//!   write: cut short, or followed only by zeros) is cut off;
//! - so is a torn seal at the end of the second-to-last segment when the
//!   last one is still empty (a rotation interrupted between creating the
//!   successor and sealing its predecessor);
//! - any other bad record, a gap in the segment numbers, a sealed last
//!   segment (its successor is gone), or a log that does not continue the
//!   snapshot refuses start-up with the file and offset: committed entries
//!   are never silently dropped.
//!
//! Nothing on disk changes until every check has passed.

use super::error::StorageError;
use super::file::{self, DataFile, FaultInjector};
use super::record::{self, Record, Scan, SEAL_RECORD_BYTES_MAX};
use super::wal::{self, Segment, Wal, SEGMENTS_MAX, SEGMENT_FILE_BYTES_MAX, WAL_DIR_NAME};
use goose_common::{Entry, LogIndex, Snapshot};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

/// One segment as read from disk.
struct SegmentScan {
    sequence: u64,
    path: PathBuf,
    file_bytes: u64,
    scan: Scan,
}

/// A torn tail to cut off once every check has passed.
struct Cut {
    path: PathBuf,
    offset: u64,
    bytes: u64,
}

/// The log after replaying every record on top of the snapshot.
struct Replayed {
    entries: Vec<Entry>,
    /// Where each entry was read: segment sequence number and byte offset.
    locations: Vec<(u64, u64)>,
    segments: VecDeque<Segment>,
}

/// Opens the log under `data_dir`, recovering it on top of `snapshot`.
/// Returns the writer and the entries after the snapshot.
pub(crate) fn open_wal(
    data_dir: &Path,
    snapshot: &Snapshot,
    segment_bytes_target: u64,
    faults: &FaultInjector,
) -> Result<(Wal, Vec<Entry>), StorageError> {
    let wal_dir = data_dir.join(WAL_DIR_NAME);
    let sequences = list_segments(&wal_dir)?;
    let scans = read_segments(&wal_dir, &sequences)?;
    let cuts = decide_cuts(&scans)?;
    check_seals(&wal_dir, &scans)?;
    let active_bytes = cuts
        .iter()
        .find(|cut| Some(&cut.path) == scans.last().map(|scan| &scan.path))
        .map_or(scans.last().map_or(0, |scan| scan.file_bytes), |cut| {
            cut.offset
        });
    let replayed = replay(scans, snapshot)?;
    check_log(&wal_dir, snapshot, &replayed)?;
    for cut in &cuts {
        apply_cut(cut, faults)?;
    }
    let wal = Wal::new(
        wal_dir,
        replayed.segments,
        active_bytes,
        segment_bytes_target,
        faults,
    )?;
    Ok((wal, replayed.entries))
}

/// The segment sequence numbers, sorted and checked to be consecutive.
fn list_segments(wal_dir: &Path) -> Result<Vec<u64>, StorageError> {
    let listing = std::fs::read_dir(wal_dir).map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => StorageError::Missing {
            path: wal_dir.to_path_buf(),
            reason: "the log directory is gone".to_string(),
        },
        _ => StorageError::io(wal_dir, "list directory", error),
    })?;
    let mut sequences = Vec::new();
    for item in listing {
        let item = item.map_err(|error| StorageError::io(wal_dir, "list directory", error))?;
        let name = item.file_name().to_string_lossy().into_owned();
        match wal::parse_segment_name(&name) {
            Some(sequence) if sequences.len() < SEGMENTS_MAX => sequences.push(sequence),
            Some(_) => {
                let reason = format!("more than {SEGMENTS_MAX} log segments");
                return Err(StorageError::corrupt(wal_dir, 0, reason));
            }
            None => {
                tracing::warn!(file = %item.path().display(), "ignoring an unknown file in the log directory")
            }
        }
    }
    sequences.sort_unstable();
    check_consecutive(wal_dir, &sequences)?;
    Ok(sequences)
}

/// A gap in the sequence numbers is a lost segment.
fn check_consecutive(wal_dir: &Path, sequences: &[u64]) -> Result<(), StorageError> {
    let Some(first) = sequences.first() else {
        return Err(StorageError::Missing {
            path: wal::segment_path(wal_dir, 0),
            reason: "the log directory holds no segment".to_string(),
        });
    };
    for (position, sequence) in sequences.iter().enumerate() {
        let expected = first + position as u64;
        if *sequence != expected {
            return Err(StorageError::Missing {
                path: wal::segment_path(wal_dir, expected),
                reason: format!("the log jumps from segment {} to {sequence}", expected - 1),
            });
        }
    }
    Ok(())
}

fn read_segments(wal_dir: &Path, sequences: &[u64]) -> Result<Vec<SegmentScan>, StorageError> {
    let mut scans = Vec::with_capacity(sequences.len());
    for &sequence in sequences {
        let path = wal::segment_path(wal_dir, sequence);
        let Some(bytes) = file::read_bounded(&path, SEGMENT_FILE_BYTES_MAX)? else {
            let reason = "the segment vanished during start-up".to_string();
            return Err(StorageError::Missing { path, reason });
        };
        scans.push(SegmentScan {
            sequence,
            path,
            file_bytes: bytes.len() as u64,
            scan: record::scan(&bytes),
        });
    }
    Ok(scans)
}

/// Turns each segment's damage into a cut (a torn tail where one may be)
/// or a refusal.
fn decide_cuts(scans: &[SegmentScan]) -> Result<Vec<Cut>, StorageError> {
    let mut cuts = Vec::new();
    for (position, segment) in scans.iter().enumerate() {
        let Some(damage) = &segment.scan.damage else {
            continue;
        };
        let bytes = segment.file_bytes - damage.offset;
        let is_last = position + 1 == scans.len();
        let interrupted_rotation = position + 2 == scans.len()
            && scans[position + 1].file_bytes == 0
            && bytes <= SEAL_RECORD_BYTES_MAX as u64;
        if !(damage.torn && (is_last || interrupted_rotation)) {
            let why = if damage.torn {
                "a later segment follows, so it cannot be an interrupted last write"
            } else {
                "damage in place, not an interrupted last write"
            };
            let reason = format!("{} ({why})", damage.reason);
            return Err(StorageError::corrupt(&segment.path, damage.offset, reason));
        }
        cuts.push(Cut {
            path: segment.path.clone(),
            offset: damage.offset,
            bytes,
        });
    }
    Ok(cuts)
}

/// A seal must be its segment's last record, name the next sequence, and
/// that successor must exist.
fn check_seals(wal_dir: &Path, scans: &[SegmentScan]) -> Result<(), StorageError> {
    for (position, segment) in scans.iter().enumerate() {
        let records = &segment.scan.records;
        for (at, scanned) in records.iter().enumerate() {
            let Record::Seal { next_sequence } = scanned.record else {
                continue;
            };
            if let Some(following) = records.get(at + 1) {
                let reason = "a record follows the segment's seal";
                return Err(StorageError::corrupt(
                    &segment.path,
                    following.offset,
                    reason,
                ));
            }
            if next_sequence != segment.sequence + 1 {
                let reason = format!("the seal names segment {next_sequence}, not the next one");
                return Err(StorageError::corrupt(&segment.path, scanned.offset, reason));
            }
            if position + 1 == scans.len() {
                return Err(StorageError::Missing {
                    path: wal::segment_path(wal_dir, next_sequence),
                    reason: format!(
                        "segment {} is sealed, so this one must follow it",
                        segment.sequence
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Replays every record on top of the snapshot. Entries at or below the
/// snapshot's index are covered by it and skipped; every other entry must
/// extend the log by exactly one.
fn replay(scans: Vec<SegmentScan>, snapshot: &Snapshot) -> Result<Replayed, StorageError> {
    let mut replayed = Replayed {
        entries: Vec::new(),
        locations: Vec::new(),
        segments: VecDeque::with_capacity(scans.len()),
    };
    for segment in scans {
        for scanned in segment.scan.records {
            match scanned.record {
                Record::Entry(entry) => {
                    let location = (segment.sequence, scanned.offset);
                    replay_entry(&mut replayed, snapshot, entry, &segment.path, location)?;
                }
                Record::Truncate { from } => {
                    let kept = replayed.entries.partition_point(|entry| entry.index < from);
                    replayed.entries.truncate(kept);
                    replayed.locations.truncate(kept);
                }
                Record::Seal { .. } => {}
            }
        }
        replayed.segments.push_back(Segment {
            sequence: segment.sequence,
            last_index_at_end: last_index(snapshot, &replayed.entries),
        });
    }
    Ok(replayed)
}

fn replay_entry(
    replayed: &mut Replayed,
    snapshot: &Snapshot,
    entry: Entry,
    path: &Path,
    location: (u64, u64),
) -> Result<(), StorageError> {
    if entry.index <= snapshot.index {
        return Ok(());
    }
    let expected = last_index(snapshot, &replayed.entries).next();
    if entry.index != expected {
        let reason = format!(
            "entry {} found where entry {expected} should be (a lost segment or a gap after the snapshot at {})",
            entry.index, snapshot.index
        );
        return Err(StorageError::corrupt(path, location.1, reason));
    }
    replayed.entries.push(entry);
    replayed.locations.push(location);
    Ok(())
}

fn last_index(snapshot: &Snapshot, entries: &[Entry]) -> LogIndex {
    entries.last().map_or(snapshot.index, |entry| entry.index)
}

/// The recovered log must continue the snapshot, be contiguous, and its
/// terms must never decrease.
fn check_log(wal_dir: &Path, snapshot: &Snapshot, replayed: &Replayed) -> Result<(), StorageError> {
    let mut previous_index = snapshot.index;
    let mut previous_term = snapshot.term;
    for (entry, &(sequence, offset)) in replayed.entries.iter().zip(&replayed.locations) {
        let refuse = |reason: String| {
            let path = wal::segment_path(wal_dir, sequence);
            Err(StorageError::corrupt(path, offset, reason))
        };
        if entry.index != previous_index.next() {
            return refuse(format!(
                "entry {} does not follow entry {previous_index}",
                entry.index
            ));
        }
        if entry.term < previous_term {
            return refuse(format!(
                "entry {} has term {}, below the term {previous_term} before it",
                entry.index, entry.term
            ));
        }
        previous_index = entry.index;
        previous_term = entry.term;
    }
    Ok(())
}

fn apply_cut(cut: &Cut, faults: &FaultInjector) -> Result<(), StorageError> {
    let segment = DataFile::open(&cut.path, faults)?;
    segment.set_len(cut.offset)?;
    segment.sync()?;
    tracing::warn!(
        path = %cut.path.display(),
        offset = cut.offset,
        bytes = cut.bytes,
        "cut off {} bytes of a torn record at the end of the log (an interrupted write)",
        cut.bytes
    );
    Ok(())
}
