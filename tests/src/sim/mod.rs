//! The deterministic cluster simulator (design.md §9, tier 3).
//!
//! It drives the daemon's own sans-IO core ([`goosed::raft::Node`]) with
//! virtual time: 1 to 9 voters (plus learners and removed nodes), each with
//! a clock running at its own rate within `±rho`, a disk that keeps exactly
//! what each `Ready` asked to persist, and a network with per-link delay,
//! loss, duplication, reordering and partitions of every shape. Nodes crash
//! (losing everything but their disk and the messages in flight to them),
//! restart (sometimes with a new clock, as after a reboot) and pause for
//! longer than a lease (their clock runs on, and they process their backlog
//! at once on resume). Membership changes and handoffs are asked of random
//! nodes at random times.
//!
//! One seed decides everything: the plan of the run ([`chaos::plan`]), the
//! faults, the delays, the clocks and the seeds handed to each `Node`. A
//! failure prints the last trace records and the command that replays it.
//!
//! After every event that changes anything, the checkers in [`checks`] run
//! and every running, unpaused node is asked "am I the goose?".
//!
//! # Soundness of the time-based checks
//!
//! - (b) promises: a goose answer at local `now` promising `lease_until`
//!   says no other node answers goose before the true instant at which the
//!   promiser's clock reads `lease_until`. The checker converts with the
//!   promiser's exact clock (the first true nanosecond reading at least
//!   `lease_until`) and flags an answer of any other (node, term) strictly
//!   before it. That is the promise of design.md §2 word for word, so a
//!   correct core never trips it.
//! - (g) majority contact: by the goose rule, a goose at local `now` has
//!   a heartbeat round sent at local `s` with `now < s + lease_duration`,
//!   acknowledged by a majority. On a clock at most `rho` slow, that round
//!   left less than `W = lease_duration / (1 - drift)` (rounded up) of true
//!   time ago, so each acknowledging voter processed a message from the
//!   goose, and the goose one from it, within the last `W`. The checker
//!   demands such two-way deliveries (counted when processed) with a
//!   majority of the goose's latest or previous membership (single-server
//!   changes make their majorities overlap). It never asks for more than the
//!   goose rule implies, so it is sound; a goose cut off from its majority
//!   fails it as soon as `W` has passed.
//! - (j) jobs: a modelled `goosectl run` job of (node, term) may run until
//!   the true instant at which its node's clock reads the last lease end
//!   its runner was told (a runner kills its job by then), or until its
//!   runner confirmed it stopped (the simulated daemon's `Input::Release`
//!   with `stopped`, which the simulator sends only after ending the job).
//!   That is pessimistic about the runner (a crashed daemon's job is kept
//!   running to its lease end) and exact about what the core promised, so
//!   a correct core never trips it. A handoff released late is bounded by a
//!   quarter of the liveness bound, so (h) still holds.
//! - (h) liveness: the world is calm when the network is whole and
//!   lossless and every node runs unpaused. Within `liveness_bound`
//!   (default ten election timeouts) of the world becoming calm some node
//!   must answer goose, and every seeded run ends with a fault-free phase of
//!   at least twice that bound and must end with a goose. The bound covers
//!   the worst legal wait: up to one election timeout of leader stickiness
//!   (voters that heard a leader, or restarted, refuse votes that long),
//!   one timeout plus jitter before a follower campaigns, a pre-vote and a
//!   vote round and the no-op's commit (sub-millisecond links), with room
//!   for several split votes or a handoff that times out.

pub mod chaos;
pub mod checks;
pub mod clock;
pub mod network;
pub mod trace;
pub mod world;

pub use chaos::{
    plan, replay_command, run_seed, run_seeds, RunOptions, SeedPlan, SeedReport, Summary, Timing,
};
pub use checks::Violation;
pub use goosed::raft::{Node, RaftRole};
pub use network::{NetworkParams, PartitionShape};
pub use world::{node_addr, Failure, GooseChange, ReleasePolicy, Sim, SimConfig, SimStats};
