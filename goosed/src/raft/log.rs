//! The in-memory Raft log: a snapshot (the compacted prefix) followed by
//! contiguous entries. The durable copy lives in storage; this one is what
//! the core reasons about.

use goose_common::{Entry, EntryPayload, LogIndex, Membership, Snapshot, Term};

/// The log of one node.
#[derive(Clone, Debug, Default)]
pub(crate) struct RaftLog {
    /// Everything up to `snapshot.index` is compacted into this.
    pub(crate) snapshot: Snapshot,
    /// Entries `snapshot.index + 1 ..= last_index()`.
    pub(crate) entries: Vec<Entry>,
    /// The index of the latest membership entry, `None` when the
    /// snapshot's membership is the latest (a cache: asked on every goose answer).
    latest_membership_index: Option<LogIndex>,
}

impl RaftLog {
    pub(crate) fn new(snapshot: Snapshot, entries: Vec<Entry>) -> RaftLog {
        let mut log = RaftLog {
            snapshot,
            entries,
            latest_membership_index: None,
        };
        log.find_latest_membership();
        log.check();
        log
    }

    pub(crate) fn last_index(&self) -> LogIndex {
        self.entries
            .last()
            .map_or(self.snapshot.index, |entry| entry.index)
    }

    pub(crate) fn last_term(&self) -> Term {
        self.entries
            .last()
            .map_or(self.snapshot.term, |entry| entry.term)
    }

    /// The first index still held as an entry (may exceed `last_index`).
    pub(crate) fn first_index(&self) -> LogIndex {
        self.snapshot.index.next()
    }

    /// The term of the entry at `index`, if the log still knows it.
    pub(crate) fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index == self.snapshot.index {
            return Some(self.snapshot.term);
        }
        self.entry(index).map(|entry| entry.term)
    }

    pub(crate) fn entry(&self, index: LogIndex) -> Option<&Entry> {
        let offset = index.0.checked_sub(self.first_index().0)?;
        self.entries.get(usize::try_from(offset).ok()?)
    }

    /// Whether a log ending at (`last_index`, `last_term`) is at least as
    /// up to date as this one (Raft §5.4.1).
    pub(crate) fn is_up_to_date(&self, last_index: LogIndex, last_term: Term) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }

    /// Up to `count_max` entries starting at `from` (which must be above the snapshot).
    pub(crate) fn entries_from(&self, from: LogIndex, count_max: usize) -> &[Entry] {
        let Some(offset) = from.0.checked_sub(self.first_index().0) else {
            return &[];
        };
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.entries.len());
        let end = start.saturating_add(count_max).min(self.entries.len());
        &self.entries[start..end]
    }

    pub(crate) fn append(&mut self, entry: Entry) {
        assert_eq!(
            entry.index,
            self.last_index().next(),
            "log entries must be contiguous"
        );
        assert!(
            entry.term >= self.last_term(),
            "log terms must not decrease"
        );
        if matches!(entry.payload, EntryPayload::Membership(_)) {
            self.latest_membership_index = Some(entry.index);
        }
        self.entries.push(entry);
    }

    /// Drops every entry at or above `from`.
    pub(crate) fn truncate_from(&mut self, from: LogIndex) {
        assert!(
            from > self.snapshot.index,
            "cannot truncate into the snapshot"
        );
        self.entries.retain(|entry| entry.index < from);
        self.find_latest_membership();
    }

    /// Replaces the prefix up to `snapshot.index` by `snapshot`.
    pub(crate) fn compact(&mut self, snapshot: Snapshot) {
        assert!(
            snapshot.index >= self.snapshot.index,
            "snapshots only move forward"
        );
        self.entries.retain(|entry| entry.index > snapshot.index);
        self.snapshot = snapshot;
        self.find_latest_membership();
        self.check();
    }

    /// The latest membership at or below `index` and the index it came from.
    pub(crate) fn membership_at(&self, index: LogIndex) -> (LogIndex, &Membership) {
        self.entries
            .iter()
            .rev()
            .filter(|entry| entry.index <= index)
            .find_map(|entry| match &entry.payload {
                EntryPayload::Membership(membership) => Some((entry.index, membership)),
                EntryPayload::NoOp => None,
            })
            .unwrap_or((self.snapshot.index, &self.snapshot.membership))
    }

    /// The latest membership in the log, committed or not.
    pub(crate) fn latest_membership(&self) -> (LogIndex, &Membership) {
        let cached =
            self.latest_membership_index
                .and_then(|index| match &self.entry(index)?.payload {
                    EntryPayload::Membership(membership) => Some((index, membership)),
                    EntryPayload::NoOp => None,
                });
        cached.unwrap_or((self.snapshot.index, &self.snapshot.membership))
    }

    /// Recomputes the cached index of the latest membership entry.
    fn find_latest_membership(&mut self) {
        self.latest_membership_index = self
            .entries
            .iter()
            .rev()
            .find(|entry| matches!(entry.payload, EntryPayload::Membership(_)))
            .map(|entry| entry.index);
    }

    /// Panics if the log's structure is broken (a bug in the core).
    pub(crate) fn check(&self) {
        debug_assert_eq!(
            self.latest_membership(),
            self.membership_at(self.last_index()),
            "the cached latest membership is current"
        );
        if let Some(first) = self.entries.first() {
            assert_eq!(
                first.index,
                self.first_index(),
                "entries must follow the snapshot"
            );
            assert!(first.term >= self.snapshot.term, "terms must not decrease");
        }
        for pair in self.entries.windows(2) {
            assert_eq!(
                pair[1].index,
                pair[0].index.next(),
                "entries must be contiguous"
            );
            assert!(pair[1].term >= pair[0].term, "terms must not decrease");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use goose_common::NodeId;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index: LogIndex(index),
            term: Term(term),
            payload: EntryPayload::NoOp,
        }
    }

    fn membership(ids: &[u64]) -> Membership {
        Membership::with_voters(ids.iter().map(|&i| {
            (
                NodeId(i),
                format!("127.0.0.1:{}", 7000 + i).parse().unwrap(),
            )
        }))
    }

    #[test]
    fn terms_and_slices_follow_the_snapshot() {
        let snapshot = Snapshot {
            index: LogIndex(3),
            term: Term(2),
            membership: membership(&[1]),
        };
        let log = RaftLog::new(snapshot, vec![entry(4, 2), entry(5, 3)]);
        assert_eq!(
            log.term_at(LogIndex(2)),
            None,
            "compacted entries are unknown"
        );
        assert_eq!(log.term_at(LogIndex(3)), Some(Term(2)));
        assert_eq!(log.term_at(LogIndex(5)), Some(Term(3)));
        assert_eq!(log.term_at(LogIndex(6)), None);
        assert_eq!(log.entries_from(LogIndex(5), 10).len(), 1);
        assert_eq!(log.entries_from(LogIndex(2), 10).len(), 0);
        assert!(log.is_up_to_date(LogIndex(5), Term(3)));
        assert!(!log.is_up_to_date(LogIndex(9), Term(2)));
    }

    #[test]
    fn membership_at_finds_the_latest_membership_entry() {
        let mut log = RaftLog::new(
            Snapshot {
                index: LogIndex(0),
                term: Term(0),
                membership: membership(&[1]),
            },
            vec![],
        );
        log.append(entry(1, 1));
        log.append(Entry {
            index: LogIndex(2),
            term: Term(1),
            payload: EntryPayload::Membership(membership(&[1, 2])),
        });
        assert_eq!(log.membership_at(LogIndex(1)).1, &membership(&[1]));
        assert_eq!(log.latest_membership(), (LogIndex(2), &membership(&[1, 2])));
        log.truncate_from(LogIndex(2));
        assert_eq!(log.latest_membership().1, &membership(&[1]));
        log.compact(Snapshot {
            index: LogIndex(1),
            term: Term(1),
            membership: membership(&[1]),
        });
        assert_eq!(log.first_index(), LogIndex(2));
        assert!(log.entries.is_empty());
    }
}
