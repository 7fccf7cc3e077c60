//! Framing of write-ahead-log records, and the scan that reads them back.
//!
//! A record is a 12-byte header followed by a postcard payload:
//!
//! ```text
//! offset 0  payload length    u32 little-endian
//! offset 4  crc32c(bytes 0..4)              makes the length trustworthy
//! offset 8  crc32c(bytes 0..8 ++ payload)   covers everything in the record
//! offset 12 payload
//! ```
//!
//! The separate length checksum lets the scan tell a torn tail (the last,
//! unfinished write: cut short, or followed only by zeros) from corruption
//! in the middle of the log (a bad record followed by more data), which must
//! never be silently cut away. The rule errs towards refusing: damage that
//! could be either is reported, and the operator decides.

use goose_common::{Entry, LogIndex};
use serde::{Deserialize, Serialize};

/// The size of a record header.
pub(crate) const RECORD_HEADER_BYTES: usize = 12;

/// The largest record payload. An entry holds at most one membership of
/// 73 members, a few kilobytes; anything longer is damage.
pub(crate) const RECORD_PAYLOAD_BYTES_MAX: usize = 64 * 1024;

/// The largest encoded seal record: a header, a variant tag and a varint.
pub(crate) const SEAL_RECORD_BYTES_MAX: usize = RECORD_HEADER_BYTES + 1 + 10;

/// A record as written (borrowing the entry to avoid a copy). Its variants
/// must stay in the same order as [`Record`]'s: postcard encodes the index.
#[derive(Serialize)]
pub(crate) enum RecordRef<'a> {
    /// An entry appended at the end of the log.
    Entry(&'a Entry),
    /// Every entry at or after `from` is dropped.
    Truncate {
        /// The first index dropped.
        from: LogIndex,
    },
    /// The segment is complete; the log continues in segment `next_sequence`.
    Seal {
        /// The successor's sequence number.
        next_sequence: u64,
    },
}

/// A record as read back.
#[derive(Debug, PartialEq, Eq, Deserialize)]
pub(crate) enum Record {
    /// See [`RecordRef::Entry`].
    Entry(Entry),
    /// See [`RecordRef::Truncate`].
    Truncate {
        /// The first index dropped.
        from: LogIndex,
    },
    /// See [`RecordRef::Seal`].
    Seal {
        /// The successor's sequence number.
        next_sequence: u64,
    },
}

/// Appends the framed `record` to `out`.
///
/// # Panics
/// If the payload exceeds [`RECORD_PAYLOAD_BYTES_MAX`]: the core's entries
/// are bounded far below it.
pub(crate) fn encode(record: &RecordRef<'_>, out: &mut Vec<u8>) {
    let payload = postcard::to_allocvec(record).expect("a record always encodes");
    assert!(
        payload.len() <= RECORD_PAYLOAD_BYTES_MAX,
        "a record payload of {} bytes exceeds the limit",
        payload.len()
    );
    let length = u32::try_from(payload.len()).expect("bounded by the limit");
    let mut header = [0u8; RECORD_HEADER_BYTES];
    header[0..4].copy_from_slice(&length.to_le_bytes());
    let length_checksum = crc32c::crc32c(&header[0..4]);
    header[4..8].copy_from_slice(&length_checksum.to_le_bytes());
    let checksum = crc32c::crc32c_append(crc32c::crc32c(&header[0..8]), &payload);
    header[8..12].copy_from_slice(&checksum.to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&payload);
}

/// A record read back, with where it starts in its segment.
#[derive(Debug)]
pub(crate) struct ScannedRecord {
    /// Its byte offset in the segment.
    pub(crate) offset: u64,
    /// The record.
    pub(crate) record: Record,
}

/// The first bad record of a segment.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Damage {
    /// Where the bad record starts.
    pub(crate) offset: u64,
    /// What is wrong with it.
    pub(crate) reason: String,
    /// Whether it looks like an unfinished last write (nothing but zeros,
    /// or nothing at all, after it) rather than corruption.
    pub(crate) torn: bool,
}

/// The records of one segment, up to the first bad one.
#[derive(Debug)]
pub(crate) struct Scan {
    /// The whole records, in order.
    pub(crate) records: Vec<ScannedRecord>,
    /// The first bad record, if any; `records` end just before it.
    pub(crate) damage: Option<Damage>,
}

/// Reads every record of `bytes`, stopping at the first bad one.
pub(crate) fn scan(bytes: &[u8]) -> Scan {
    let mut records = Vec::new();
    let mut position = 0;
    while position < bytes.len() {
        let offset = position as u64;
        match read_one(&bytes[position..]) {
            Ok((record, length)) => {
                records.push(ScannedRecord { offset, record });
                position += length;
            }
            Err((reason, torn)) => {
                let damage = Damage {
                    offset,
                    reason,
                    torn,
                };
                return Scan {
                    records,
                    damage: Some(damage),
                };
            }
        }
    }
    Scan {
        records,
        damage: None,
    }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn all_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|&byte| byte == 0)
}

/// Reads the record at the start of `rest`: the record and its encoded
/// length, or why it is bad and whether that looks like a torn tail.
fn read_one(rest: &[u8]) -> Result<(Record, usize), (String, bool)> {
    if rest.len() < RECORD_HEADER_BYTES {
        return Err((
            format!("a partial record header of {} bytes", rest.len()),
            true,
        ));
    }
    if crc32c::crc32c(&rest[0..4]) != u32_at(rest, 4) {
        // Only zeros after the header: a header written in part, the rest
        // of the write lost. Anything else after it means damage in place.
        let torn = all_zero(&rest[RECORD_HEADER_BYTES..]);
        return Err(("record length checksum mismatch".to_string(), torn));
    }
    let length = u32_at(rest, 0) as usize;
    if length > RECORD_PAYLOAD_BYTES_MAX {
        return Err((format!("record length {length} exceeds the limit"), false));
    }
    let end = RECORD_HEADER_BYTES + length;
    if rest.len() < end {
        let reason = format!("a record cut short: {} of {end} bytes", rest.len());
        return Err((reason, true));
    }
    let payload = &rest[RECORD_HEADER_BYTES..end];
    let checksum = crc32c::crc32c_append(crc32c::crc32c(&rest[0..8]), payload);
    if checksum != u32_at(rest, 8) {
        return Err((
            "record checksum mismatch".to_string(),
            all_zero(&rest[end..]),
        ));
    }
    match postcard::take_from_bytes::<Record>(payload) {
        Ok((record, [])) => Ok((record, end)),
        Ok((_, trailing)) => Err((format!("{} stray bytes in a record", trailing.len()), false)),
        Err(error) => Err((format!("undecodable record: {error}"), false)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use goose_common::{EntryPayload, Term};

    fn entry(index: u64) -> Entry {
        Entry {
            index: LogIndex(index),
            term: Term(1),
            payload: EntryPayload::NoOp,
        }
    }

    /// Every kind of record round-trips through the framing.
    #[test]
    fn records_round_trip() {
        let mut bytes = Vec::new();
        let first = entry(1);
        encode(&RecordRef::Entry(&first), &mut bytes);
        encode(&RecordRef::Truncate { from: LogIndex(1) }, &mut bytes);
        encode(&RecordRef::Seal { next_sequence: 9 }, &mut bytes);
        let scan = scan(&bytes);
        assert_eq!(scan.damage, None);
        let records: Vec<Record> = scan.records.into_iter().map(|r| r.record).collect();
        let expected = vec![
            Record::Entry(first),
            Record::Truncate { from: LogIndex(1) },
            Record::Seal { next_sequence: 9 },
        ];
        assert_eq!(records, expected);
    }

    /// The largest seal fits the bound the recovery of a rotation relies on.
    #[test]
    fn seal_record_fits_its_bound() {
        let mut bytes = Vec::new();
        let seal = RecordRef::Seal {
            next_sequence: u64::MAX,
        };
        encode(&seal, &mut bytes);
        assert!(bytes.len() <= SEAL_RECORD_BYTES_MAX);
    }

    /// Zeros after the last record read as a torn tail, not corruption.
    #[test]
    fn zeros_after_the_last_record_are_a_torn_tail() {
        let mut bytes = Vec::new();
        encode(&RecordRef::Entry(&entry(1)), &mut bytes);
        let whole = bytes.len() as u64;
        bytes.extend_from_slice(&[0; 100]);
        let scan = scan(&bytes);
        assert_eq!(scan.records.len(), 1);
        let damage = scan.damage.unwrap();
        assert_eq!((damage.offset, damage.torn), (whole, true));
    }
}
