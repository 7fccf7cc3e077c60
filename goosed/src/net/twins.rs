//! Two live processes under one node id (design.md §2, "one identity per
//! member"): a copied data directory started beside the original, or
//! another process started under a member's id. Each process draws its own
//! boot id, so their datagrams interleave two boot ids of one sender. A
//! restart shows a new boot id once, and at most a short burst of the old
//! one's delayed datagrams; twins keep switching back and forth. While they
//! do, every datagram of that sender is dropped (counted as
//! `duplicate_identity`), so neither's votes or acknowledgements count, and
//! the start of each episode is logged as an error.

use crate::net::replay::REPLAY_SENDERS_MAX;
use goose_common::datagram::BootId;
use goose_common::NodeId;
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// Switches between two boot ids within this window are remembered.
pub const TWIN_WINDOW: Duration = Duration::from_secs(2);

/// This many switches within the window, spread over at least
/// [`TWIN_SPREAD_MIN`], mean two live processes.
pub const TWIN_SWITCHES_MIN: usize = 4;

/// A burst of reordered datagrams around a restart is shorter than this.
pub const TWIN_SPREAD_MIN: Duration = Duration::from_millis(200);

/// How long a sender stays silenced after its last switch.
pub const TWIN_HOLD: Duration = Duration::from_secs(2);

/// The switch times kept per sender (bounded).
const SWITCHES_KEPT_MAX: usize = 16;

const _: () = assert!(TWIN_SWITCHES_MIN <= SWITCHES_KEPT_MAX);

#[derive(Debug)]
struct SenderBoots {
    current: BootId,
    other: Option<BootId>,
    switches: VecDeque<Instant>,
    silenced_until: Option<Instant>,
}

/// The per-sender boot history. Bounded by the replay window's sender limit.
#[derive(Debug, Default)]
pub struct TwinDetector {
    senders: BTreeMap<NodeId, SenderBoots>,
}

/// What [`TwinDetector::observe`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Twins {
    /// One process, as far as can be told.
    None,
    /// Two processes interleave; this datagram is dropped. `started` is
    /// true for the datagram that began the episode.
    Silenced {
        /// Whether this datagram started the episode.
        started: bool,
    },
}

impl TwinDetector {
    /// Records a datagram of `sender` from boot `boot` at `now`, after it
    /// passed authentication and the replay window.
    pub fn observe(&mut self, sender: NodeId, boot: BootId, now: Instant) -> Twins {
        if !self.senders.contains_key(&sender) && self.senders.len() >= REPLAY_SENDERS_MAX {
            // Forget an arbitrary quiet sender rather than grow without bound.
            if let Some(&forget) = self.senders.keys().next() {
                self.senders.remove(&forget);
            }
        }
        let record = self.senders.entry(sender).or_insert(SenderBoots {
            current: boot,
            other: None,
            switches: VecDeque::new(),
            silenced_until: None,
        });
        if boot != record.current {
            if record.other == Some(boot) {
                record.switches.push_back(now);
                if record.switches.len() > SWITCHES_KEPT_MAX {
                    record.switches.pop_front();
                }
            } else {
                record.switches.clear();
            }
            record.other = Some(record.current);
            record.current = boot;
        }
        while record
            .switches
            .front()
            .is_some_and(|&at| now.duration_since(at) > TWIN_WINDOW)
        {
            record.switches.pop_front();
        }
        let spread = match (record.switches.front(), record.switches.back()) {
            (Some(&first), Some(&last)) => last.duration_since(first),
            _ => Duration::ZERO,
        };
        let was_silenced = record.silenced_until.is_some_and(|until| now < until);
        if record.switches.len() >= TWIN_SWITCHES_MIN && spread >= TWIN_SPREAD_MIN {
            let last = *record.switches.back().expect("switches are not empty");
            record.silenced_until = Some(last + TWIN_HOLD);
        }
        if record.silenced_until.is_some_and(|until| now < until) {
            Twins::Silenced {
                started: !was_silenced,
            }
        } else {
            Twins::None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(detector: &mut TwinDetector, start: Instant, boots: &[(u64, u64)]) -> Vec<Twins> {
        boots
            .iter()
            .map(|&(ms, boot)| {
                detector.observe(NodeId(2), BootId(boot), start + Duration::from_millis(ms))
            })
            .collect()
    }

    /// A restart (a new boot id, then a burst of the old one's delayed
    /// datagrams) is not twins; two processes alternating for longer are,
    /// until they have been quiet for the hold time.
    #[test]
    fn a_restart_is_not_twins_but_interleaving_boots_are() {
        let start = Instant::now();
        let mut detector = TwinDetector::default();
        let restart = feed(
            &mut detector,
            start,
            &[
                (0, 1),
                (50, 1),
                (100, 2),
                (101, 1),
                (102, 2),
                (103, 1),
                (104, 2),
                (150, 2),
            ],
        );
        assert!(restart.iter().all(|&t| t == Twins::None), "{restart:?}");
        let mut detector = TwinDetector::default();
        let twins: Vec<(u64, u64)> = (0..20).map(|i| (i * 50, 1 + i % 2)).collect();
        let seen = feed(&mut detector, start, &twins);
        let first = seen
            .iter()
            .position(|&t| t != Twins::None)
            .expect("detected");
        assert_eq!(seen[first], Twins::Silenced { started: true });
        assert!(
            first * 50 <= 400,
            "detected within 400 ms, at {} ms",
            first * 50
        );
        assert!(seen[first + 1..]
            .iter()
            .all(|&t| t == Twins::Silenced { started: false }));
        // One boot alone after the twins stop: silenced for the hold, then heard.
        let alone = feed(&mut detector, start, &[(2000, 2), (3000, 2), (4100, 2)]);
        assert_eq!(alone[0], Twins::Silenced { started: false });
        assert_eq!(alone[2], Twins::None);
    }
}
