//! The loop's wake-up timer: one `CLOCK_BOOTTIME` timerfd armed at an
//! absolute deadline of the daemon's clock.
//!
//! Not `tokio::time::sleep`, for an idle goose's sake (issue 13, item 3):
//! a tokio timer set during a poll to come due before the runtime's next
//! wake-up writes the runtime's eventfd so that the runtime recomputes its
//! timeout (once per heartbeat round: the round's own timer has just fired),
//! and tokio's wheel wakes the thread once more whenever a sleep crosses one
//! of its 64 ms slots. The timerfd costs one `timerfd_settime` when the
//! deadline moves and wakes the loop once, when it is due, through the same
//! `epoll_wait` as the sockets.

use goose_common::Timestamp;
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use std::io;
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// The timerfd, for [`AsyncFd`] (which needs `AsRawFd`).
struct Fd(TimerFd);

impl std::os::fd::AsRawFd for Fd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsFd;
        self.0.as_fd().as_raw_fd()
    }
}

pub(crate) struct WakeTimer {
    fd: AsyncFd<Fd>,
    /// The deadline the timer is armed at, until it fires.
    armed: Option<Timestamp>,
}

impl WakeTimer {
    /// A disarmed timer on the runtime of the caller.
    pub(crate) fn new() -> io::Result<WakeTimer> {
        let fd = TimerFd::new(
            ClockId::CLOCK_BOOTTIME,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        // SAFETY: `Fd` owns the timerfd (an `OwnedFd` inside `TimerFd`) and
        // nothing replaces or closes it while the `AsyncFd` holds it, so
        // `as_raw_fd` names the same open descriptor for the whole
        // registration (the condition of `register_with_interest`).
        #[allow(unsafe_code)]
        let fd = unsafe { AsyncFd::register_with_interest(Fd(fd), Interest::READABLE) }
            .map_err(|error| error.into_parts().1)?;
        Ok(WakeTimer { fd, armed: None })
    }

    /// Arms the timer at `at`, a reading of the daemon's clock, unless it
    /// is armed there already. A deadline already past fires at once.
    pub(crate) fn arm(&mut self, at: Timestamp) -> io::Result<()> {
        if self.armed == Some(at) {
            return Ok(());
        }
        // An all-zero expiration would disarm the timer.
        let spec = TimeSpec::from_duration(Duration::from_nanos(at.as_nanos().max(1)));
        self.fd
            .get_ref()
            .0
            .set(
                Expiration::OneShot(spec),
                TimerSetTimeFlags::TFD_TIMER_ABSTIME,
            )
            .map_err(io::Error::from)?;
        self.armed = Some(at);
        Ok(())
    }

    /// Resolves once the timer has fired (rarely, a little early: an expiry
    /// of the deadline before the last one; the loop checks every deadline
    /// against the clock), and forgets the deadline, so the next `arm` sets
    /// the timer again even at the same deadline. Setting the timer again
    /// clears its expiry count, so nothing is read.
    pub(crate) async fn fired(&mut self) -> io::Result<()> {
        let mut guard = self.fd.readable().await?;
        guard.clear_ready();
        self.armed = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::WakeTimer;
    use crate::clock;
    use std::time::{Duration, Instant};

    async fn fires_within(timer: &mut WakeTimer, bound: Duration) -> bool {
        tokio::time::timeout(bound, timer.fired()).await.is_ok()
    }

    /// It fires at its deadline, not before; moving the deadline moves the
    /// wake-up; a deadline already past fires at once; and after firing it
    /// stays quiet until armed again.
    #[tokio::test(flavor = "current_thread")]
    async fn fires_at_the_deadline_it_was_last_armed_at() {
        let mut timer = WakeTimer::new().unwrap();
        let started = Instant::now();
        timer
            .arm(clock::now().add(Duration::from_secs(3600)))
            .unwrap();
        timer
            .arm(clock::now().add(Duration::from_millis(30)))
            .unwrap();
        assert!(fires_within(&mut timer, Duration::from_secs(5)).await);
        assert!(started.elapsed() >= Duration::from_millis(30), "not early");
        assert!(
            !fires_within(&mut timer, Duration::from_millis(100)).await,
            "quiet until armed again"
        );
        timer
            .arm(clock::now().add(Duration::from_secs(3600)))
            .unwrap();
        assert!(!fires_within(&mut timer, Duration::from_millis(50)).await);
        timer.arm(clock::now()).unwrap();
        assert!(
            fires_within(&mut timer, Duration::from_secs(5)).await,
            "past: at once"
        );
        // The same deadline again, once fired, is set again.
        let at = clock::now().add(Duration::from_millis(10));
        timer.arm(at).unwrap();
        assert!(fires_within(&mut timer, Duration::from_secs(5)).await);
        timer.arm(at).unwrap();
        assert!(fires_within(&mut timer, Duration::from_secs(5)).await);
    }
}
