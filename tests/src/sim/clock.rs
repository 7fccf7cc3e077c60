//! Per-node clocks. Each node's clock runs at its own constant rate within
//! `±rho` of true time (design.md §2), from an arbitrary origin, so that no
//! two nodes read the same number at the same true instant and every
//! comparison of instants across nodes must go through true time.

use goose_common::Timestamp;

/// Parts per million: the unit of clock-rate drift.
const PPM: i128 = 1_000_000;

/// `numerator / denominator` rounded up, for a non-negative numerator and
/// a positive denominator.
fn ceil_div(numerator: i128, denominator: i128) -> i128 {
    debug_assert!(numerator >= 0 && denominator > 0);
    (numerator + denominator - 1) / denominator
}

/// A node's clock: `local(t) = base_local + (t - base_true) * (1 + drift_ppm / 10^6)`
/// for true instants `t >= base_true`, in integer nanoseconds (rounded down).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    /// The true instant at which the clock was (re)started.
    base_true_ns: u64,
    /// What the clock read at `base_true_ns`.
    base_local_ns: u64,
    /// How much faster than true time the clock runs, in parts per million.
    drift_ppm: i32,
}

impl Clock {
    /// A clock that reads `base_local_ns` at true instant `base_true_ns` and
    /// runs `drift_ppm` parts per million fast (slow when negative).
    ///
    /// # Panics
    /// If the drift is not strictly between -100% and +100%.
    pub fn new(base_true_ns: u64, base_local_ns: u64, drift_ppm: i32) -> Clock {
        assert!(drift_ppm.unsigned_abs() < 1_000_000, "drift out of range");
        assert!(
            base_local_ns < (i64::MAX / 2) as u64,
            "clock origin too large"
        );
        Clock {
            base_true_ns,
            base_local_ns,
            drift_ppm,
        }
    }

    /// The drift of this clock in parts per million.
    pub fn drift_ppm(&self) -> i32 {
        self.drift_ppm
    }

    /// The true instant this clock was started at.
    pub fn base_true_ns(&self) -> u64 {
        self.base_true_ns
    }

    fn rate(&self) -> i128 {
        PPM + i128::from(self.drift_ppm)
    }

    /// What the clock reads at true instant `true_ns` (at or after its start).
    pub fn local_at(&self, true_ns: u64) -> Timestamp {
        debug_assert!(true_ns >= self.base_true_ns, "clock read before it started");
        // 64-bit arithmetic (this runs for every goose question): with the
        // drift below 10^6 ppm the product fits for runs of over 100 days.
        let elapsed = i64::try_from(true_ns.saturating_sub(self.base_true_ns)).unwrap_or(i64::MAX);
        let drift = (elapsed.saturating_mul(i64::from(self.drift_ppm))).div_euclid(1_000_000);
        let local = (self.base_local_ns as i64)
            .saturating_add(elapsed)
            .saturating_add(drift);
        Timestamp(u64::try_from(local).unwrap_or(0))
    }

    /// The first true instant (at or after the clock's start) at which the
    /// clock reads at least `local`; `u64::MAX` if that is beyond the end of time.
    pub fn true_at(&self, local: Timestamp) -> u64 {
        if local.0 <= self.base_local_ns {
            return self.base_true_ns;
        }
        let local_elapsed = i128::from(local.0 - self.base_local_ns);
        // Ceiling division gives a candidate within a nanosecond of the answer;
        // the loops below make it exact whatever the rounding of `local_at`.
        let estimate = i128::from(self.base_true_ns) + ceil_div(local_elapsed * PPM, self.rate());
        let Ok(mut candidate) = u64::try_from(estimate) else {
            return u64::MAX;
        };
        let mut steps = 0;
        while self.local_at(candidate) < local {
            if candidate == u64::MAX {
                return u64::MAX;
            }
            candidate += 1;
            steps += 1;
            assert!(steps < 4, "clock inverse drifted");
        }
        while candidate > self.base_true_ns && self.local_at(candidate - 1) >= local {
            candidate -= 1;
            steps += 1;
            assert!(steps < 8, "clock inverse drifted");
        }
        candidate
    }

    /// An upper bound on the true duration of `local_ns` nanoseconds of this clock.
    pub fn true_duration_ns(&self, local_ns: u64) -> u64 {
        let true_ns = ceil_div(i128::from(local_ns) * PPM, self.rate()) + 1;
        u64::try_from(true_ns).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks that `true_at` is the exact inverse of `local_at` for fast,
    /// slow and exact clocks: the first true instant reading at least a value.
    #[test]
    fn true_at_inverts_local_at() {
        let mut rng = fastrand::Rng::with_seed(7);
        for drift_ppm in [-1000, -1, 0, 1, 999, 1000] {
            let clock = Clock::new(5_000, 123_456_789, drift_ppm);
            for _ in 0..2_000 {
                let local = Timestamp(rng.u64(123_456_789..10_000_000_000_000));
                let t = clock.true_at(local);
                assert!(clock.local_at(t) >= local);
                assert!(t == clock.base_true_ns() || clock.local_at(t - 1) < local);
            }
            assert_eq!(clock.true_at(Timestamp(0)), 5_000);
        }
    }

    /// Checks that the clock rate is within the drift bound over a long run
    /// and that `true_duration_ns` never underestimates.
    #[test]
    fn rate_matches_drift() {
        let fast = Clock::new(0, 0, 1000);
        assert_eq!(fast.local_at(1_000_000_000), Timestamp(1_001_000_000));
        let slow = Clock::new(0, 0, -1000);
        assert_eq!(slow.local_at(1_000_000_000), Timestamp(999_000_000));
        let local_ns = 300_000_000;
        let true_ns = slow.true_duration_ns(local_ns);
        assert!(slow.local_at(true_ns) >= Timestamp(local_ns));
    }
}
