//! The daemon's clock: `CLOCK_BOOTTIME` (design.md §2). Monotonic, never
//! jumps back, and keeps counting while the host is suspended, so a resumed
//! host cannot believe an old lease.

use goose_common::Timestamp;

/// Reads `CLOCK_BOOTTIME` in nanoseconds ([`goose_common::answer::boottime`],
/// the one reading every consumer of an answer shares).
///
/// # Panics
/// If the kernel refuses `CLOCK_BOOTTIME`, which Linux has offered since
/// 2.6.39; without it the goose rule cannot be kept, so there is no fallback.
pub fn now() -> Timestamp {
    goose_common::answer::boottime().expect("CLOCK_BOOTTIME is readable")
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
