//! The limits of the system, each a named constant. Relations between them
//! are checked at compile time at the bottom of this file.

/// The largest UDP datagram a daemon sends or accepts, in bytes (design.md §5).
pub const DATAGRAM_BYTES_MAX: usize = 1200;

/// Bytes of a datagram taken by the header and the MAC; the rest is payload.
pub const DATAGRAM_OVERHEAD_BYTES: usize = 96;

/// The largest encoded Raft message, in bytes.
pub const MESSAGE_BYTES_MAX: usize = DATAGRAM_BYTES_MAX - DATAGRAM_OVERHEAD_BYTES;

/// The most voters a membership may hold (design.md §1).
pub const VOTERS_MAX: usize = 9;

/// The most learners a membership may hold (design.md §8).
pub const LEARNERS_MAX: usize = 64;

/// The most entries one append message carries.
pub const APPEND_ENTRIES_MAX: usize = 64;

/// How many heartbeat rounds a leader remembers the send time of. A reply
/// acknowledging an older round no longer extends the lease.
pub const LEASE_ROUNDS_REMEMBERED: usize = 64;

/// A leader compacts its log once it holds this many entries past the
/// snapshot (the log holds only no-ops and memberships, so this is rare).
pub const LOG_ENTRIES_BEFORE_COMPACTION: usize = 1024;

/// The most messages one step of the core may emit.
pub const MESSAGES_PER_STEP_MAX: usize = 2 * (VOTERS_MAX + LEARNERS_MAX) + 8;

/// The longest `election_timeout_min` a node accepts, in milliseconds. A
/// leader's timeout travels in its appends (the lease guard) and a receiver
/// waits at most this long on a peer's word, so a bogus value cannot silence
/// it for ever; a node's own timeout is validated against the same bound.
pub const ELECTION_TIMEOUT_MS_MAX: u64 = 60_000;

const _: () = assert!(DATAGRAM_OVERHEAD_BYTES < DATAGRAM_BYTES_MAX);
const _: () = assert!(
    VOTERS_MAX % 2 == 1,
    "an odd voter limit keeps majorities strict"
);
const _: () = assert!(APPEND_ENTRIES_MAX > 0);
const _: () = assert!(LEASE_ROUNDS_REMEMBERED >= 16);
const _: () = assert!(LOG_ENTRIES_BEFORE_COMPACTION > APPEND_ENTRIES_MAX);
