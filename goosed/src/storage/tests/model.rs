//! Random sequences of appends, truncations, compactions, leader snapshots
//! and term/vote changes, each followed by a restart, checked against the
//! reference semantics [`PersistedState::apply`]: the reopened directory
//! must hold exactly the model's state, every time.

use super::*;
use goose_common::Snapshot;

/// Directories, each living through `RESTARTS_PER_DIRECTORY` sequences:
/// 10,000 random operation sequences checked in all.
const DIRECTORIES: u64 = 1_000;
const RESTARTS_PER_DIRECTORY: u64 = 10;
const OPERATIONS_PER_SEQUENCE_MAX: usize = 6;

/// Generates persists that the core could emit from the model state.
struct Generator {
    rng: fastrand::Rng,
}

impl Generator {
    fn next_term(&mut self, model: &PersistedState) -> HardState {
        let term = model.hard_state.term.next();
        let vote = self.rng.bool().then(|| NodeId(self.rng.u64(1..=5)));
        HardState {
            term,
            vote,
            ..HardState::default()
        }
    }

    /// New entries after `last` in the model's current term, bumping the
    /// term first when the model has none yet or at random.
    fn entries_after(&mut self, persist: &mut Persist, model: &PersistedState, last: LogIndex) {
        if model.hard_state.term.0 == 0 || self.rng.u8(0..4) == 0 {
            persist.hard_state = Some(self.next_term(model));
        }
        let term = persist
            .hard_state
            .map_or(model.hard_state.term, |state| state.term);
        let count = self.rng.u64(0..=4);
        persist.entries = (1..=count).map(|k| entry(last.0 + k, term.0)).collect();
    }

    fn append(&mut self, model: &PersistedState) -> Persist {
        let mut persist = Persist::default();
        self.entries_after(&mut persist, model, model.last_index());
        persist
    }

    fn truncate(&mut self, model: &PersistedState) -> Persist {
        let first = model.snapshot.index.next().0;
        let from = LogIndex(self.rng.u64(first..=model.last_index().0.max(first)));
        let mut persist = Persist {
            truncate_from: Some(from),
            ..Persist::default()
        };
        let last = from.prev().max(model.snapshot.index);
        self.entries_after(&mut persist, model, last);
        persist
    }

    fn compact(&mut self, model: &PersistedState) -> Persist {
        let index = self.rng.u64(model.snapshot.index.0..=model.last_index().0);
        let term = model
            .entries
            .iter()
            .find(|entry| entry.index.0 == index)
            .map_or(model.snapshot.term, |entry| entry.term);
        let snapshot = Snapshot {
            index: LogIndex(index),
            term,
            membership: membership(self.rng.u64(1..=5)),
        };
        Persist {
            snapshot: Some(snapshot),
            ..Persist::default()
        }
    }

    /// A leader's snapshot replacing the whole log, possibly past its end.
    fn install_snapshot(&mut self, model: &PersistedState) -> Persist {
        let hard_state = self.next_term(model);
        let index = self
            .rng
            .u64(model.snapshot.index.0..=model.last_index().0 + 5);
        let snapshot = Snapshot {
            index: LogIndex(index),
            term: hard_state.term,
            membership: membership(self.rng.u64(1..=5)),
        };
        let entries = (1..=self.rng.u64(0..=2))
            .map(|k| entry(index + k, hard_state.term.0))
            .collect();
        Persist {
            snapshot: Some(snapshot),
            truncate_from: Some(model.snapshot.index.next()),
            entries,
            hard_state: Some(hard_state),
        }
    }

    fn vote(&mut self, model: &PersistedState) -> Persist {
        Persist {
            hard_state: Some(self.next_term(model)),
            ..Persist::default()
        }
    }

    fn operation(&mut self, model: &PersistedState) -> Persist {
        match self.rng.u8(0..10) {
            0..=3 => self.append(model),
            4 | 5 => self.truncate(model),
            6 => self.compact(model),
            7 => self.install_snapshot(model),
            8 => self.vote(model),
            _ => Persist::default(),
        }
    }
}

/// 10,000 random operation sequences (1,000 directories, each restarted
/// after every one of its 10 sequences) with segments small enough to
/// rotate every few records: the state reopened after each sequence equals
/// the model's, and the storage's own view equals it after every persist.
#[test]
fn random_sequences_match_the_model_across_restarts() {
    let mut coverage = Coverage::default();
    for seed in 0..DIRECTORIES {
        let mut generator = Generator {
            rng: fastrand::Rng::with_seed(seed),
        };
        let dir = scratch_dir();
        let mut model = PersistedState::default();
        for restart in 0..RESTARTS_PER_DIRECTORY {
            let (mut storage, found) = open(dir.path(), SMALL_SEGMENT_BYTES);
            if restart == 0 {
                assert!(found.identity.is_known(), "a new directory has an identity");
                model.identity = found.identity;
            }
            assert_eq!(found, model, "seed {seed}, restart {restart}");
            let operations = generator.rng.usize(1..=OPERATIONS_PER_SEQUENCE_MAX);
            for _ in 0..operations {
                let persist = generator.operation(&model);
                let before = segment_range(&storage);
                storage.persist(&persist).unwrap();
                coverage.count(before, segment_range(&storage), &persist);
                model.apply(&persist);
                assert_eq!(*storage.state(), model, "seed {seed}, restart {restart}");
            }
        }
        let (storage, found) = open(dir.path(), SMALL_SEGMENT_BYTES);
        assert_eq!(found, model, "seed {seed}, final");
        let segments = storage.wal().segments().len();
        assert!(
            segments <= 64,
            "seed {seed}: compaction left {segments} segments"
        );
    }
    coverage.check();
}

/// The oldest and newest segment sequence numbers.
fn segment_range(storage: &DiskStorage) -> (u64, u64) {
    let segments = storage.wal().segments();
    let first = segments.front().map_or(0, |segment| segment.sequence);
    let last = segments.back().map_or(0, |segment| segment.sequence);
    (first, last)
}

/// How often the random sequences reached the interesting paths, so that a
/// change to the generator cannot quietly stop exercising them.
#[derive(Debug, Default)]
struct Coverage {
    rotations: u64,
    segment_deletions: u64,
    truncations: u64,
    snapshots: u64,
}

impl Coverage {
    fn count(&mut self, before: (u64, u64), after: (u64, u64), persist: &Persist) {
        self.rotations += after.1 - before.1;
        self.segment_deletions += after.0 - before.0;
        self.truncations += u64::from(persist.truncate_from.is_some());
        self.snapshots += u64::from(persist.snapshot.is_some());
    }

    fn check(&self) {
        eprintln!("{self:?}");
        let Coverage {
            rotations,
            segment_deletions,
            truncations,
            snapshots,
        } = *self;
        assert!(
            rotations
                .min(segment_deletions)
                .min(truncations)
                .min(snapshots)
                >= 1_000
        );
    }
}
