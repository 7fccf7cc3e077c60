//! What the benchmarks under `tests/benches/` share: run only under
//! `cargo bench`, and how many rounds.

/// Whether the benchmark was started by `cargo bench`: `cargo test
/// --all-targets` also runs benchmarks, without `--bench`, and these take
/// minutes, so they then say how to run them and return.
pub fn wanted(name: &str) -> bool {
    let wanted = std::env::args().any(|argument| argument == "--bench");
    if !wanted {
        println!("{name} benchmark: run it with `cargo bench -p goose-tests --bench {name}`");
    }
    wanted
}

/// The rounds per measurement: `GOOSE_BENCH_ROUNDS`, else `default`; at least 1.
pub fn rounds(default: usize) -> usize {
    std::env::var("GOOSE_BENCH_ROUNDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
        .max(1)
}
