//! The replay window of all senders (design.md §5): each authenticated
//! (sender, boot id, counter) is accepted at most once while its boot is
//! remembered, and no live sender is ever locked out.

use super::drops::DropReason;
use goose_common::datagram::{BootId, Header};
use goose_common::limits::{LEARNERS_MAX, VOTERS_MAX};
use goose_common::NodeId;
use std::collections::HashMap;

/// How many counters below the highest one seen a boot's window tracks;
/// older counters are refused. At 9 peers × 20 heartbeats a second a sender
/// uses about 180 counters a second, so this tolerates seconds of reordering.
pub const REPLAY_WINDOW_COUNTERS: u64 = 1024;

/// How many boots of one sender keep a full window. Two covers a restart
/// (the old boot's delayed datagrams and the new boot's) with room to spare.
pub const REPLAY_LIVE_BOOTS_PER_SENDER: usize = 2;

/// How many further boots of one sender are remembered compactly (boot id
/// and highest counter) after their full window is given up.
pub const REPLAY_REMEMBERED_BOOTS_PER_SENDER: usize = 16;

/// How many senders the window remembers. Senders are authenticated, so in
/// secure mode only members (and members that left) take entries.
pub const REPLAY_SENDERS_MAX: usize = 256;

const REPLAY_WINDOW_WORDS: usize = (REPLAY_WINDOW_COUNTERS / 64) as usize;
const _: () = assert!(REPLAY_WINDOW_COUNTERS.is_multiple_of(64) && REPLAY_WINDOW_COUNTERS >= 64);
const _: () = assert!(REPLAY_LIVE_BOOTS_PER_SENDER >= 2);
const _: () = assert!(REPLAY_SENDERS_MAX >= 2 * (VOTERS_MAX + LEARNERS_MAX));

/// The replay window of all senders (design.md §5).
///
/// # The rule
///
/// A datagram is identified by (sender, boot id, counter). The window
/// accepts each identity at most once while it remembers the sender's boot,
/// and never locks a live sender out:
///
/// 1. A boot with a full window (a *live* boot, at most
///    [`REPLAY_LIVE_BOOTS_PER_SENDER`] per sender) accepts a counter that is
///    new and no more than [`REPLAY_WINDOW_COUNTERS`] below the highest seen.
///    This is the RFC 6479 sliding window: reordering within the window is
///    accepted once per counter.
/// 2. A *remembered* boot (at most [`REPLAY_REMEMBERED_BOOTS_PER_SENDER`] per
///    sender; only its id and highest counter are kept) accepts only a counter
///    above its highest; that datagram makes it live again. So a replay of
///    anything a previous boot of the sender sent, and that this node
///    accepted, is refused.
/// 3. A boot id never seen (or forgotten) is accepted and becomes live. The
///    least recently used live boot is then compacted into a remembered one,
///    and the least recently used remembered boot is forgotten.
///
/// Why not "a new boot id replaces the current one and the old one is
/// refused for ever": a single replayed datagram of a boot that this node
/// does not remember (any boot before this node's own restart) would then
/// retire the sender's real, running boot, and cut the link until the sender
/// restarts. Here a replay can at worst make this node forget a boot (by
/// replaying datagrams of more than 18 old boots of one sender), after which
/// datagrams of that boot may be accepted once more: Raft tolerates
/// duplicated and delayed messages, so that degrades a defence in depth
/// without harming safety or liveness.
///
/// What no receiver-side rule can fix: a node that restarts remembers
/// nothing, so datagrams recorded before its restart are accepted (once each)
/// after it. They are old Raft messages, which Raft ignores or tolerates.
#[derive(Debug, Default)]
pub struct ReplayWindow {
    senders: HashMap<NodeId, SenderRecord>,
    /// A logical clock: +1 per check, used to find least recently used entries.
    uses: u64,
}

/// What the window remembers of one sender.
#[derive(Debug)]
struct SenderRecord {
    last_used: u64,
    live: Vec<LiveBoot>,
    remembered: Vec<RememberedBoot>,
}

#[derive(Debug)]
struct LiveBoot {
    boot_id: BootId,
    last_used: u64,
    window: CounterWindow,
}

#[derive(Debug, Clone, Copy)]
struct RememberedBoot {
    boot_id: BootId,
    last_used: u64,
    highest: u64,
}

impl ReplayWindow {
    /// An empty window.
    pub fn new() -> ReplayWindow {
        ReplayWindow::default()
    }

    /// Accepts the datagram (and records it), or returns
    /// [`DropReason::Replayed`]. Call only with authenticated headers.
    pub fn check(&mut self, header: &Header) -> Result<(), DropReason> {
        self.uses += 1;
        let now = self.uses;
        if !self.senders.contains_key(&header.sender) && self.senders.len() >= REPLAY_SENDERS_MAX {
            self.forget_least_recent_sender();
        }
        let record = self
            .senders
            .entry(header.sender)
            .or_insert_with(|| SenderRecord {
                last_used: now,
                live: Vec::with_capacity(REPLAY_LIVE_BOOTS_PER_SENDER),
                remembered: Vec::new(),
            });
        record.last_used = now;
        let accepted = record.check(header.boot_id, header.counter, now);
        debug_assert!(record.live.len() <= REPLAY_LIVE_BOOTS_PER_SENDER);
        debug_assert!(record.remembered.len() <= REPLAY_REMEMBERED_BOOTS_PER_SENDER);
        debug_assert!(self.senders.len() <= REPLAY_SENDERS_MAX);
        if accepted {
            Ok(())
        } else {
            Err(DropReason::Replayed)
        }
    }

    /// How many senders are remembered.
    pub fn senders(&self) -> usize {
        self.senders.len()
    }

    fn forget_least_recent_sender(&mut self) {
        let oldest = self
            .senders
            .iter()
            .min_by_key(|(_, record)| record.last_used)
            .map(|(sender, _)| *sender);
        if let Some(sender) = oldest {
            self.senders.remove(&sender);
        }
    }
}

impl SenderRecord {
    /// Rules 1 to 3 of [`ReplayWindow`]; true if accepted.
    fn check(&mut self, boot_id: BootId, counter: u64, now: u64) -> bool {
        if let Some(live) = self.live.iter_mut().find(|live| live.boot_id == boot_id) {
            live.last_used = now;
            return live.window.accept(counter);
        }
        let floor = match self.remembered.iter().position(|r| r.boot_id == boot_id) {
            Some(position) => {
                let remembered = self.remembered[position];
                if counter <= remembered.highest {
                    return false;
                }
                self.remembered.swap_remove(position);
                Some(remembered.highest)
            }
            None => None,
        };
        if self.live.len() >= REPLAY_LIVE_BOOTS_PER_SENDER {
            self.compact_least_recent_live_boot();
        }
        self.live.push(LiveBoot {
            boot_id,
            last_used: now,
            window: CounterWindow::starting_at(counter, floor),
        });
        true
    }

    fn compact_least_recent_live_boot(&mut self) {
        let Some(position) = (0..self.live.len()).min_by_key(|&i| self.live[i].last_used) else {
            return;
        };
        let live = self.live.swap_remove(position);
        if self.remembered.len() >= REPLAY_REMEMBERED_BOOTS_PER_SENDER {
            if let Some(oldest) =
                (0..self.remembered.len()).min_by_key(|&i| self.remembered[i].last_used)
            {
                self.remembered.swap_remove(oldest);
            }
        }
        self.remembered.push(RememberedBoot {
            boot_id: live.boot_id,
            last_used: live.last_used,
            highest: live.window.highest_refused(),
        });
    }
}

/// The RFC 6479 window of one boot: the highest counter accepted, a bitmap
/// of which of the [`REPLAY_WINDOW_COUNTERS`] counters at and below it were
/// accepted, and a floor at and below which everything is refused (the
/// highest counter of the boot before it was compacted, if it was).
#[derive(Debug, Clone)]
struct CounterWindow {
    highest: u64,
    /// Bit `k` (word `k / 64`, bit `k % 64`) is set if counter `highest - k`
    /// was accepted.
    seen: [u64; REPLAY_WINDOW_WORDS],
    floor: Option<u64>,
}

impl CounterWindow {
    fn starting_at(counter: u64, floor: Option<u64>) -> CounterWindow {
        debug_assert!(floor.is_none_or(|floor| counter > floor));
        let mut seen = [0u64; REPLAY_WINDOW_WORDS];
        seen[0] = 1;
        CounterWindow {
            highest: counter,
            seen,
            floor,
        }
    }

    /// Records `counter` and returns true if it was not accepted before and
    /// is recent enough to tell.
    fn accept(&mut self, counter: u64) -> bool {
        if self.floor.is_some_and(|floor| counter <= floor) {
            return false;
        }
        if counter > self.highest {
            self.shift(counter - self.highest);
            self.highest = counter;
            self.seen[0] |= 1;
            return true;
        }
        let age = self.highest - counter;
        if age >= REPLAY_WINDOW_COUNTERS {
            return false;
        }
        // age < REPLAY_WINDOW_COUNTERS, so the index is in range.
        let (word, bit) = ((age / 64) as usize, age % 64);
        if self.seen[word] & (1 << bit) != 0 {
            return false;
        }
        self.seen[word] |= 1 << bit;
        true
    }

    /// Moves every bit `distance` places up (towards older), dropping those
    /// that fall out of the window.
    fn shift(&mut self, distance: u64) {
        if distance >= REPLAY_WINDOW_COUNTERS {
            self.seen = [0; REPLAY_WINDOW_WORDS];
            return;
        }
        // distance < REPLAY_WINDOW_COUNTERS, so both fit in usize and u32.
        let words = (distance / 64) as usize;
        let bits = (distance % 64) as u32;
        for index in (0..REPLAY_WINDOW_WORDS).rev() {
            let whole = if index >= words {
                self.seen[index - words] << bits
            } else {
                0
            };
            let carried = if bits > 0 && index > words {
                self.seen[index - words - 1] >> (64 - bits)
            } else {
                0
            };
            self.seen[index] = whole | carried;
        }
    }

    /// Everything at or below this counter is refused once the bitmap is
    /// given up: the highest counter accepted.
    fn highest_refused(&self) -> u64 {
        self.highest.max(self.floor.unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    //! Goal: the window accepts each (sender, boot, counter) at most once
    //! without ever locking a live sender out.
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn from(sender: u64, boot: u64, counter: u64) -> Header {
        Header {
            sender: NodeId(sender),
            receiver: NodeId(99),
            boot_id: BootId(boot),
            counter,
        }
    }

    #[test]
    fn replays_are_refused_and_reordering_within_the_window_is_accepted_once() {
        let mut window = ReplayWindow::new();
        for counter in [10, 12, 11, 5, 1000, 1010] {
            assert_eq!(
                window.check(&from(1, 1, counter)),
                Ok(()),
                "counter {counter}"
            );
        }
        for counter in [10, 12, 11, 5, 1000, 1010] {
            assert_eq!(
                window.check(&from(1, 1, counter)),
                Err(DropReason::Replayed)
            );
        }
        // 1010 - 1024 < 0: everything from 0 up is still inside the window.
        assert_eq!(window.check(&from(1, 1, 0)), Ok(()));
        assert_eq!(window.check(&from(1, 1, 3000)), Ok(()));
        // 3000 - 1976 = 1024 is just outside; 1977 just inside.
        assert_eq!(window.check(&from(1, 1, 1976)), Err(DropReason::Replayed));
        assert_eq!(window.check(&from(1, 1, 1977)), Ok(()));
        // Other senders and boots have windows of their own.
        assert_eq!(window.check(&from(2, 1, 10)), Ok(()));
        assert_eq!(window.check(&from(1, 2, 10)), Ok(()));
    }

    #[test]
    fn a_previous_boot_is_refused_after_the_sender_restarts() {
        let mut window = ReplayWindow::new();
        // Boots 1, 2, 3: the sender restarted twice; boot 1 loses its full window.
        for boot in 1..=3 {
            for counter in 0..50 {
                assert_eq!(window.check(&from(1, boot, counter)), Ok(()));
            }
        }
        for boot in 1..=3 {
            for counter in 0..50 {
                assert_eq!(
                    window.check(&from(1, boot, counter)),
                    Err(DropReason::Replayed)
                );
            }
        }
        // A remembered boot that is somehow still running may go on.
        assert_eq!(window.check(&from(1, 1, 50)), Ok(()));
        assert_eq!(window.check(&from(1, 1, 49)), Err(DropReason::Replayed));
    }

    #[test]
    fn replaying_old_boots_never_locks_out_the_running_boot() {
        let mut window = ReplayWindow::new();
        assert_eq!(window.check(&from(1, 1000, 0)), Ok(()));
        // An attacker replays one datagram from each of 100 old boots.
        for boot in 0..100 {
            let _ = window.check(&from(1, boot, 7));
        }
        assert_eq!(window.check(&from(1, 1000, 1)), Ok(()));
        assert_eq!(window.check(&from(1, 1000, 1)), Err(DropReason::Replayed));
    }

    #[test]
    fn the_number_of_senders_is_bounded() {
        let mut window = ReplayWindow::new();
        for sender in 1..=(REPLAY_SENDERS_MAX as u64 + 10) {
            assert_eq!(window.check(&from(sender, 1, 0)), Ok(()));
        }
        assert_eq!(window.senders(), REPLAY_SENDERS_MAX);
        // The most recent sender is still remembered.
        let last = REPLAY_SENDERS_MAX as u64 + 10;
        assert_eq!(window.check(&from(last, 1, 0)), Err(DropReason::Replayed));
    }

    #[test]
    fn shifting_moves_bits_across_words() {
        let mut window = CounterWindow::starting_at(100, None);
        for distance in [1u64, 63, 64, 65, 127, 500] {
            let before = window.clone();
            window.shift(distance);
            for k in 0..REPLAY_WINDOW_COUNTERS {
                let was = before.seen[(k / 64) as usize] >> (k % 64) & 1;
                let moved = k + distance;
                if moved < REPLAY_WINDOW_COUNTERS {
                    let now = window.seen[(moved / 64) as usize] >> (moved % 64) & 1;
                    assert_eq!(was, now, "bit {k} shifted by {distance}");
                }
            }
            for k in 0..distance.min(REPLAY_WINDOW_COUNTERS) {
                assert_eq!(window.seen[(k / 64) as usize] >> (k % 64) & 1, 0);
            }
            window.seen[0] |= 1;
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// One boot's window against a model: a counter is accepted if and
        /// only if it was not accepted before and is within the window of the
        /// highest accepted so far.
        #[test]
        fn one_boot_matches_the_model(counters in proptest::collection::vec(0u64..3000, 1..400)) {
            let mut window = ReplayWindow::new();
            let mut accepted = HashSet::new();
            let mut highest: Option<u64> = None;
            for counter in counters {
                let expected = !accepted.contains(&counter)
                    && highest.is_none_or(|h| counter > h || h - counter < REPLAY_WINDOW_COUNTERS);
                let got = window.check(&from(1, 1, counter)).is_ok();
                prop_assert_eq!(got, expected, "counter {}", counter);
                if got {
                    accepted.insert(counter);
                    highest = Some(highest.map_or(counter, |h| h.max(counter)));
                }
            }
        }

        /// While every boot is remembered (few enough boots), no identity is
        /// accepted twice; and a counter above every counter yet presented
        /// for its boot is always accepted (no lockout).
        #[test]
        fn no_identity_is_accepted_twice_and_no_boot_is_locked_out(
            datagrams in proptest::collection::vec(
                (1u64..4, 0..(REPLAY_LIVE_BOOTS_PER_SENDER + REPLAY_REMEMBERED_BOOTS_PER_SENDER) as u64, 0u64..2000),
                1..600,
            )
        ) {
            let mut window = ReplayWindow::new();
            let mut accepted = HashSet::new();
            let mut presented_max: HashMap<(u64, u64), u64> = HashMap::new();
            for (sender, boot, counter) in datagrams {
                let got = window.check(&from(sender, boot, counter)).is_ok();
                if got {
                    prop_assert!(accepted.insert((sender, boot, counter)), "accepted twice");
                }
                let above_all = presented_max.get(&(sender, boot)).is_none_or(|&max| counter > max);
                if above_all {
                    prop_assert!(got, "a fresh counter of boot {} was refused", boot);
                }
                let max = presented_max.entry((sender, boot)).or_insert(counter);
                *max = (*max).max(counter);
            }
        }
    }
}
