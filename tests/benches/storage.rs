//! Storage benchmark: what durability costs on this machine's disk.
//!
//! Prints p50 and p99 of three operations on a real data directory (in the
//! system temporary directory, or `$GOOSE_BENCH_DIR` to measure another
//! disk): a term/vote change made durable, an entry append made durable,
//! and start-up recovery of a log of 10,000 entries.
//!
//! Run with `cargo bench -p goose-tests --bench storage`.

use goose_common::{Entry, EntryPayload, HardState, LogIndex, NodeId, Term};
use goosed::raft::Persist;
use goosed::storage::{DiskStorage, Storage};
use std::path::Path;
use std::time::{Duration, Instant};

const HARD_STATE_SAMPLES: usize = 1_000;
const APPEND_SAMPLES: usize = 1_000;
const RECOVERY_ENTRIES: u64 = 10_000;
const RECOVERY_SAMPLES: usize = 50;
/// Entries per persist while building the recovery log (one append message's worth).
const RECOVERY_BATCH: u64 = 64;

fn main() {
    let base = std::env::var_os("GOOSE_BENCH_DIR").map(std::path::PathBuf::from);
    let scratch = match &base {
        Some(base) => tempfile::tempdir_in(base),
        None => tempfile::tempdir(),
    }
    .expect("a scratch directory");
    println!("storage benchmark in {}", scratch.path().display());
    report(
        "term/vote change made durable",
        &bench_hard_state(&scratch.path().join("hard-state")),
    );
    report(
        "entry append made durable",
        &bench_append(&scratch.path().join("append")),
    );
    report(
        "recovery of a 10,000-entry log",
        &bench_recovery(&scratch.path().join("recovery")),
    );
}

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index: LogIndex(index),
        term: Term(term),
        payload: EntryPayload::NoOp,
    }
}

fn bench_hard_state(dir: &Path) -> Vec<Duration> {
    let (mut storage, _) = DiskStorage::open(dir).expect("storage opens");
    (1..=HARD_STATE_SAMPLES as u64)
        .map(|term| {
            let persist = Persist {
                hard_state: Some(HardState {
                    term: Term(term),
                    vote: Some(NodeId(1)),
                    ..HardState::default()
                }),
                ..Persist::default()
            };
            time(|| storage.persist(&persist).expect("persist"))
        })
        .collect()
}

fn bench_append(dir: &Path) -> Vec<Duration> {
    let (mut storage, _) = DiskStorage::open(dir).expect("storage opens");
    (1..=APPEND_SAMPLES as u64)
        .map(|index| {
            let persist = Persist {
                entries: vec![entry(index, 0)],
                ..Persist::default()
            };
            time(|| storage.persist(&persist).expect("persist"))
        })
        .collect()
}

fn bench_recovery(dir: &Path) -> Vec<Duration> {
    let (mut storage, _) = DiskStorage::open(dir).expect("storage opens");
    for first in (1..=RECOVERY_ENTRIES).step_by(RECOVERY_BATCH as usize) {
        let last = (first + RECOVERY_BATCH - 1).min(RECOVERY_ENTRIES);
        let persist = Persist {
            entries: (first..=last).map(|index| entry(index, 0)).collect(),
            ..Persist::default()
        };
        storage.persist(&persist).expect("persist");
    }
    drop(storage);
    (0..RECOVERY_SAMPLES)
        .map(|_| {
            time(|| {
                let (_, state) = DiskStorage::open(dir).expect("storage opens");
                assert_eq!(state.entries.len() as u64, RECOVERY_ENTRIES);
            })
        })
        .collect()
}

fn time(operation: impl FnOnce()) -> Duration {
    let start = Instant::now();
    operation();
    start.elapsed()
}

fn report(name: &str, samples: &[Duration]) {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let at = |fraction: f64| sorted[((sorted.len() - 1) as f64 * fraction).round() as usize];
    println!(
        "{name:<34} p50 {:>9.1} µs   p99 {:>9.1} µs   ({} samples)",
        at(0.50).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        sorted.len()
    );
}
