//! The daemon's clock: `CLOCK_BOOTTIME` (design.md §2). Monotonic, never
//! jumps back, and keeps counting while the host is suspended, so a resumed
//! host cannot believe an old lease.

use goose_common::Timestamp;
use nix::time::{clock_gettime, ClockId};

/// Reads `CLOCK_BOOTTIME` in nanoseconds.
///
/// # Panics
/// If the kernel refuses `CLOCK_BOOTTIME`, which Linux has offered since
/// 2.6.39; without it the goose rule cannot be kept, so there is no fallback.
pub fn now() -> Timestamp {
    let spec = clock_gettime(ClockId::CLOCK_BOOTTIME).expect("CLOCK_BOOTTIME is readable");
    let seconds = u64::try_from(spec.tv_sec()).expect("CLOCK_BOOTTIME is never negative");
    let nanos = u64::try_from(spec.tv_nsec()).expect("nanoseconds are never negative");
    Timestamp(seconds * 1_000_000_000 + nanos)
}

#[cfg(test)]
mod tests {
    #[test]
    fn boottime_moves_forward() {
        let first = super::now();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = super::now();
        assert!(second.since(first) >= std::time::Duration::from_millis(2));
    }
}
