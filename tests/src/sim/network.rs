//! The simulated network: per-link delay, loss, duplication and reordering,
//! and partitions of every shape, as a matrix of blocked directed links.

use std::fmt;
use std::time::Duration;

/// The most nodes a simulation may hold (voters, learners and removed nodes);
/// links are kept as one 64-bit mask per sender.
pub const NODES_MAX: usize = 16;

/// How messages travel when a link is up. Delay is `base` plus an
/// exponential tail (mean `tail_mean`, cut at `tail_max`), plus, rarely, a
/// spike that reorders the message behind later ones.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkParams {
    /// The smallest one-way delay.
    pub delay_base: Duration,
    /// The mean of the exponential part of the delay.
    pub delay_tail_mean: Duration,
    /// The longest exponential part.
    pub delay_tail_max: Duration,
    /// The chance a message is delivered twice (each copy with its own delay).
    pub duplicate_probability: f64,
    /// The chance a message is held back by an extra delay of up to `spike_max`.
    pub spike_probability: f64,
    /// The longest extra delay of a spike.
    pub spike_max: Duration,
}

impl NetworkParams {
    /// A quiet LAN: about 0.1 ms plus a 0.1 ms tail, nothing lost, duplicated or reordered.
    pub fn quiet() -> NetworkParams {
        NetworkParams {
            delay_base: Duration::from_micros(100),
            delay_tail_mean: Duration::from_micros(100),
            delay_tail_max: Duration::from_micros(800),
            duplicate_probability: 0.0,
            spike_probability: 0.0,
            spike_max: Duration::ZERO,
        }
    }

    /// A LAN with some duplication and reordering.
    pub fn rough() -> NetworkParams {
        NetworkParams {
            duplicate_probability: 0.01,
            spike_probability: 0.01,
            spike_max: Duration::from_millis(5),
            ..NetworkParams::quiet()
        }
    }
}

/// The shape of a partition, kept for traces and scenario descriptions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartitionShape {
    /// One node can neither send nor receive.
    Isolate(u64),
    /// Two groups that cannot talk to each other.
    Split(Vec<u64>, Vec<u64>),
    /// Messages from `from` to every node in `to` are dropped; the other way works.
    OneWay {
        /// The sender whose messages are dropped.
        from: u64,
        /// The receivers that do not get them.
        to: Vec<u64>,
    },
    /// Two groups that cannot talk to each other, and a bridge node both see.
    Bridge {
        /// The node in the middle.
        bridge: u64,
        /// One side.
        left: Vec<u64>,
        /// The other side.
        right: Vec<u64>,
    },
    /// Nodes on a ring each see only their neighbours within `reach`, so each
    /// sees a different majority.
    Ring {
        /// The ring order.
        order: Vec<u64>,
        /// How many neighbours on each side a node sees.
        reach: usize,
    },
    /// Each directed link dropped independently.
    RandomLinks(Vec<(u64, u64)>),
}

impl fmt::Display for PartitionShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartitionShape::Isolate(id) => write!(f, "isolate {id}"),
            PartitionShape::Split(a, b) => write!(f, "split {a:?} | {b:?}"),
            PartitionShape::OneWay { from, to } => write!(f, "one-way: {from} -x-> {to:?}"),
            PartitionShape::Bridge {
                bridge,
                left,
                right,
            } => write!(f, "bridge {bridge} between {left:?} and {right:?}"),
            PartitionShape::Ring { order, reach } => write!(f, "ring {order:?} reach {reach}"),
            PartitionShape::RandomLinks(links) => write!(f, "cut links {links:?}"),
        }
    }
}

/// Which directed links are cut: bit `to` of `blocked[from]`, node ids as
/// indexes (node `i` has id `i + 1`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Links {
    blocked: [u64; NODES_MAX],
}

fn bit(id: u64) -> u64 {
    debug_assert!(id >= 1 && id as usize <= NODES_MAX);
    1 << (id - 1)
}

impl Links {
    /// Whether a message from `from` to `to` gets through the partition.
    pub fn is_up(&self, from: u64, to: u64) -> bool {
        self.blocked[(from - 1) as usize] & bit(to) == 0
    }

    /// Whether no link is cut.
    pub fn is_whole(&self) -> bool {
        self.blocked.iter().all(|mask| *mask == 0)
    }

    /// Cuts the directed link from `from` to `to`.
    pub fn cut(&mut self, from: u64, to: u64) {
        if from != to {
            self.blocked[(from - 1) as usize] |= bit(to);
        }
    }

    /// Cuts both directions between `a` and `b`.
    pub fn cut_both(&mut self, a: u64, b: u64) {
        self.cut(a, b);
        self.cut(b, a);
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.blocked = [0; NODES_MAX];
    }

    /// Cuts every link between the two groups, both ways.
    fn separate(&mut self, left: &[u64], right: &[u64]) {
        for &a in left {
            for &b in right {
                self.cut_both(a, b);
            }
        }
    }

    /// The links of a partition of shape `shape` among `nodes` (all others up).
    pub fn of_shape(shape: &PartitionShape, nodes: &[u64]) -> Links {
        let mut links = Links::default();
        match shape {
            PartitionShape::Isolate(id) => {
                for &other in nodes {
                    links.cut_both(*id, other);
                }
            }
            PartitionShape::Split(left, right) => links.separate(left, right),
            PartitionShape::OneWay { from, to } => {
                for &other in to {
                    links.cut(*from, other);
                }
            }
            PartitionShape::Bridge { left, right, .. } => links.separate(left, right),
            PartitionShape::Ring { order, reach } => {
                let size = order.len();
                for (i, &a) in order.iter().enumerate() {
                    for (j, &b) in order.iter().enumerate() {
                        let distance = i.abs_diff(j).min(size - i.abs_diff(j));
                        if distance > *reach {
                            links.cut(a, b);
                        }
                    }
                }
            }
            PartitionShape::RandomLinks(cut) => {
                for &(from, to) in cut {
                    links.cut(from, to);
                }
            }
        }
        links
    }
}

/// Draws a one-way delay in nanoseconds for a link that is up.
pub fn sample_delay_ns(params: &NetworkParams, rng: &mut fastrand::Rng) -> u64 {
    let base_ns = params.delay_base.as_nanos() as f64;
    let mean_ns = params.delay_tail_mean.as_nanos() as f64;
    let max_ns = params.delay_tail_max.as_nanos() as f64;
    // Inverse-CDF sampling of the exponential tail; 1 - u avoids ln(0).
    let tail_ns = (-(1.0 - rng.f64()).ln() * mean_ns).min(max_ns);
    let mut delay_ns = (base_ns + tail_ns) as u64;
    if params.spike_probability > 0.0 && rng.f64() < params.spike_probability {
        delay_ns += rng.u64(0..=params.spike_max.as_nanos() as u64);
    }
    delay_ns.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks that a ring of five with reach 1 lets each node see exactly a
    /// majority (itself and two neighbours), and a different one each.
    #[test]
    fn ring_gives_each_node_its_own_majority() {
        let order = vec![1, 2, 3, 4, 5];
        let links = Links::of_shape(&PartitionShape::Ring { order, reach: 1 }, &[1, 2, 3, 4, 5]);
        let mut views = Vec::new();
        for a in 1..=5u64 {
            let view: Vec<u64> = (1..=5).filter(|&b| a == b || links.is_up(a, b)).collect();
            assert_eq!(view.len(), 3, "node {a} sees {view:?}");
            views.push(view);
        }
        views.sort();
        views.dedup();
        assert_eq!(views.len(), 5);
    }

    /// Checks the bridge shape: both sides reach the bridge, not each other.
    #[test]
    fn bridge_connects_both_sides_only_through_itself() {
        let shape = PartitionShape::Bridge {
            bridge: 3,
            left: vec![1, 2],
            right: vec![4, 5],
        };
        let links = Links::of_shape(&shape, &[1, 2, 3, 4, 5]);
        assert!(links.is_up(1, 3) && links.is_up(3, 1) && links.is_up(5, 3));
        assert!(!links.is_up(1, 4) && !links.is_up(5, 2));
        assert!(links.is_up(1, 2) && links.is_up(4, 5));
    }

    /// Checks that delays stay within base + tail_max + spike_max.
    #[test]
    fn delays_are_bounded() {
        let params = NetworkParams::rough();
        let mut rng = fastrand::Rng::with_seed(3);
        let bound = params.delay_base + params.delay_tail_max + params.spike_max;
        for _ in 0..10_000 {
            let delay = sample_delay_ns(&params, &mut rng);
            assert!(delay >= params.delay_base.as_nanos() as u64);
            assert!(u128::from(delay) <= bound.as_nanos());
        }
    }
}
