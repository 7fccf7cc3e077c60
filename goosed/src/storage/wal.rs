//! The write-ahead log: numbered segment files of framed records.
//!
//! The log is a sequence of records (append an entry, truncate from an index,
//! seal a segment) replayed on top of the snapshot at start-up. A conflicting
//! suffix is dropped by appending a truncate record, so every change is one
//! append and a crash leaves a prefix of the records: never a half-edited
//! file. Segments are named `segment-<sequence>` (20 digits) because
//! truncation can move the log's end backwards, so the first index of a
//! segment does not order segments; the sequence does.
//!
//! Rotation creates the successor first and then appends a seal record
//! naming it to the full segment, so a sealed segment without a successor
//! means a segment was lost. Compaction deletes the oldest segments once
//! everything they hold is covered by the snapshot.

use super::error::StorageError;
use super::file::{self, DataFile, FaultInjector};
use super::record::{self, RecordRef};
use goose_common::limits::APPEND_ENTRIES_MAX;
use goose_common::LogIndex;
use std::collections::VecDeque;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// The log's directory inside the data directory.
pub(crate) const WAL_DIR_NAME: &str = "wal";

/// Segments are named this prefix followed by a 20-digit sequence number.
pub(crate) const SEGMENT_PREFIX: &str = "segment-";

/// A segment at least this large is sealed before the next append.
pub(crate) const SEGMENT_BYTES_TARGET: u64 = 1024 * 1024;

/// The largest segment file start-up reads. A segment ends at most one
/// persist past the target, so a larger file is damage.
pub(crate) const SEGMENT_FILE_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// The most segments start-up accepts. Compaction keeps the log to a few.
pub(crate) const SEGMENTS_MAX: usize = 4096;

/// The largest batch of records one persist appends: a full append message
/// plus a truncate record, all at the largest record size.
pub(crate) const BATCH_BYTES_MAX: u64 = (APPEND_ENTRIES_MAX as u64 + 1)
    * (record::RECORD_HEADER_BYTES + record::RECORD_PAYLOAD_BYTES_MAX) as u64;

const _: () = assert!(SEGMENT_BYTES_TARGET + BATCH_BYTES_MAX <= SEGMENT_FILE_BYTES_MAX);

/// Directories storage creates are private to the daemon's user.
pub(crate) const DIR_MODE: u32 = 0o700;

/// The path of segment `sequence` in `wal_dir`.
pub(crate) fn segment_path(wal_dir: &Path, sequence: u64) -> PathBuf {
    wal_dir.join(format!("{SEGMENT_PREFIX}{sequence:020}"))
}

/// The sequence number in a segment's file name, if it is one.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(SEGMENT_PREFIX)?;
    let all_digits = digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit());
    all_digits.then(|| digits.parse().ok()).flatten()
}

/// One segment known to the writer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Segment {
    /// Its sequence number.
    pub(crate) sequence: u64,
    /// The log's last index once this segment's records are applied (the
    /// snapshot's index if that is higher). Meaningful only once sealed.
    pub(crate) last_index_at_end: LogIndex,
}

/// The open log, appending to its newest segment.
#[derive(Debug)]
pub(crate) struct Wal {
    dir: PathBuf,
    /// Oldest first; the last one is the active segment.
    segments: VecDeque<Segment>,
    active: DataFile,
    active_bytes: u64,
    segment_bytes_target: u64,
    faults: FaultInjector,
}

/// Creates the log directory with one empty segment.
pub(crate) fn create(data_dir: &Path, faults: &FaultInjector) -> Result<(), StorageError> {
    let dir = data_dir.join(WAL_DIR_NAME);
    std::fs::DirBuilder::new()
        .mode(DIR_MODE)
        .create(&dir)
        .or_else(|error| match error.kind() {
            std::io::ErrorKind::AlreadyExists => Ok(()),
            _ => Err(StorageError::io(&dir, "create directory", error)),
        })?;
    DataFile::create(&segment_path(&dir, 0), faults)?.sync()?;
    file::sync_dir(&dir, faults)
}

impl Wal {
    /// A writer appending to the last of `segments` at `active_bytes`.
    pub(crate) fn new(
        dir: PathBuf,
        segments: VecDeque<Segment>,
        active_bytes: u64,
        segment_bytes_target: u64,
        faults: &FaultInjector,
    ) -> Result<Wal, StorageError> {
        let newest = segments.back().expect("the log has a segment");
        let active = DataFile::open(&segment_path(&dir, newest.sequence), faults)?;
        Ok(Wal {
            dir,
            segments,
            active,
            active_bytes,
            segment_bytes_target,
            faults: faults.clone(),
        })
    }

    /// The segments, oldest first.
    #[cfg(test)]
    pub(crate) fn segments(&self) -> &VecDeque<Segment> {
        &self.segments
    }

    /// Whether the active segment is full and must be sealed before the next append.
    pub(crate) fn needs_rotation(&self) -> bool {
        self.active_bytes >= self.segment_bytes_target
    }

    /// Appends `batch` (framed records) and fdatasyncs it.
    ///
    /// # Panics
    /// If the batch exceeds [`BATCH_BYTES_MAX`], which the core's bounded
    /// steps never reach.
    pub(crate) fn append(&mut self, batch: &[u8]) -> Result<(), StorageError> {
        if batch.is_empty() {
            return Ok(());
        }
        assert!(
            batch.len() as u64 <= BATCH_BYTES_MAX,
            "a persist too large for one batch"
        );
        self.active.write_at(batch, self.active_bytes)?;
        self.active.sync()?;
        self.active_bytes += batch.len() as u64;
        Ok(())
    }

    /// Seals the active segment and starts its successor. `last_index` is
    /// the log's last index at this point, remembered for compaction.
    pub(crate) fn rotate(&mut self, last_index: LogIndex) -> Result<(), StorageError> {
        let sealed = *self.segments.back().expect("the log has a segment");
        let next_sequence = sealed.sequence + 1;
        let next_path = segment_path(&self.dir, next_sequence);
        let next = DataFile::create(&next_path, &self.faults)?;
        next.sync()?;
        file::sync_dir(&self.dir, &self.faults)?;
        let mut seal = Vec::with_capacity(record::SEAL_RECORD_BYTES_MAX);
        record::encode(&RecordRef::Seal { next_sequence }, &mut seal);
        self.active.write_at(&seal, self.active_bytes)?;
        self.active.sync()?;
        if let Some(segment) = self.segments.back_mut() {
            segment.last_index_at_end = last_index;
        }
        self.segments.push_back(Segment {
            sequence: next_sequence,
            last_index_at_end: last_index,
        });
        self.active = next;
        self.active_bytes = 0;
        tracing::debug!(path = %next_path.display(), "started a new log segment");
        Ok(())
    }

    /// Deletes the oldest sealed segments whose every entry is at or below
    /// `snapshot_index`, oldest first, so that a crash midway leaves a
    /// consecutive run of segments.
    pub(crate) fn compact(&mut self, snapshot_index: LogIndex) -> Result<(), StorageError> {
        let mut removed = 0;
        while self.segments.len() > 1 && self.segments[0].last_index_at_end <= snapshot_index {
            let path = segment_path(&self.dir, self.segments[0].sequence);
            file::remove_if_present(&path, &self.faults)?;
            self.segments.pop_front();
            removed += 1;
        }
        if removed > 0 {
            file::sync_dir(&self.dir, &self.faults)?;
            tracing::info!(
                removed,
                snapshot_index = snapshot_index.0,
                "removed log segments covered by the snapshot"
            );
        }
        Ok(())
    }
}
