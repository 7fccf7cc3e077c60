//! A small job for `goosectl run` tests: records when it runs on
//! `CLOCK_BOOTTIME`, the clock of the daemons' promises.
//!
//! `goose-job DIR` writes `start <ns> <node> <term>` to a new file
//! `DIR/job-<node>-<pid>.txt`, then every millisecond overwrites the line after it with
//! `alive <ns>`, and on SIGTERM writes `stop <ns>` and exits 0. A job
//! killed with SIGKILL leaves its last `alive`: it died within about a
//! millisecond of it. So `[start, stop or alive]` is when the job ran.

use nix::time::{clock_gettime, ClockId};
use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn boottime_ns() -> u64 {
    let spec = clock_gettime(ClockId::CLOCK_BOOTTIME).expect("CLOCK_BOOTTIME");
    u64::try_from(spec.tv_sec()).unwrap_or(0) * 1_000_000_000
        + u64::try_from(spec.tv_nsec()).unwrap_or(0)
}

fn main() {
    let directory = std::env::args().nth(1).expect("usage: goose-job DIR");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let path = std::path::Path::new(&directory).join(format!(
        "job-{}-{}.txt",
        var("GOOSE_NODE_ID"),
        std::process::id()
    ));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .expect("a new record file");
    let start = format!(
        "start {} {} {}\n",
        boottime_ns(),
        var("GOOSE_NODE_ID"),
        var("GOOSE_TERM")
    );
    file.write_all(start.as_bytes()).expect("write start");
    let offset = start.len() as u64;
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook_registry_flag(&stop);
    while !stop.load(Ordering::Relaxed) {
        file.seek(SeekFrom::Start(offset)).expect("seek");
        // Fixed width, so each record overwrites the last one whole.
        writeln!(file, "alive {:020}", boottime_ns()).expect("write alive");
        std::thread::sleep(Duration::from_millis(1));
    }
    file.seek(SeekFrom::Start(offset)).expect("seek");
    writeln!(file, "stop  {:020}", boottime_ns()).expect("write stop");
}

/// Sets `flag` on SIGTERM.
fn signal_hook_registry_flag(flag: &Arc<AtomicBool>) {
    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(flag))
        .expect("a SIGTERM handler");
}
