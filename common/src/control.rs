//! The control protocol between `goosectl` and the local `goosed` over a Unix
//! socket (design.md §6).
//!
//! # Framing
//!
//! Every message, in both directions, is one frame:
//!
//! ```text
//! +----------------------+--------------------+------------------------------+
//! | length: u32, BE      | version: u16, BE   | postcard Request or Reply    |
//! +----------------------+--------------------+------------------------------+
//!                         \______________ length bytes ____________________/
//! ```
//!
//! `length` counts the version and the postcard body, never the prefix
//! itself, and is at most [`CONTROL_FRAME_BYTES_MAX`]. The version sits
//! outside postcard, as two plain bytes, so that a peer of another version can
//! always read it and answer [`ErrorKind::UnsupportedVersion`] instead of
//! misreading the body. A reader checks the length before reading the body,
//! so a hostile prefix never makes it allocate more than the limit.
//!
//! # Conversation
//!
//! The client sends one [`Request`] and reads one [`Reply`], and may repeat
//! on the same connection. [`Request::Watch`] and [`Request::Run`] are the
//! exceptions: the daemon answers with a stream of [`Reply::Event`] (or
//! [`Reply::Runner`]) until either side closes. On a run stream the runner
//! in turn sends [`Request::Released`] when the daemon asks it to stop its
//! job for a handoff and the job is gone.

use crate::ids::{LogIndex, NodeId, Term};
use crate::limits::{LEARNERS_MAX, VOTERS_MAX};
use crate::messages::MemberRole;
use crate::partition::{ListedRule, Rule};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The version of this protocol, the first two bytes of every frame payload.
/// Bump it whenever the postcard layout of [`Request`] or [`Reply`] changes.
pub const CONTROL_PROTOCOL_VERSION: u16 = 8;

/// The longest grace a `goosectl run` runner may ask for: a handoff waits
/// at most this (plus a margin) for a runner to stop its job.
pub const RUNNER_GRACE_MAX: Duration = Duration::from_secs(60);

/// The largest frame payload (version plus body), in bytes. A cluster status
/// of [`MEMBERS_MAX`] members is a few kilobytes, so this leaves ample room
/// while bounding what a client can make the daemon allocate.
pub const CONTROL_FRAME_BYTES_MAX: usize = 64 * 1024;

/// Bytes of the big-endian length prefix of a frame.
pub const FRAME_LENGTH_BYTES: usize = 4;

/// Bytes of the big-endian protocol version at the start of a payload.
pub const FRAME_VERSION_BYTES: usize = 2;

/// The most members a cluster holds: voters plus learners (design.md §8).
pub const MEMBERS_MAX: usize = VOTERS_MAX + LEARNERS_MAX;

/// How long the daemon may take to answer a question it answers from its own
/// state (is-goose, local status, lists, local rule changes).
pub const LOCAL_REPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the daemon may take to answer a request that needs the other
/// members over UDP (cluster status, split, heal).
pub const CLUSTER_REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the daemon may take to commit a removal or hand the goose over.
pub const CHANGE_REPLY_TIMEOUT: Duration = Duration::from_secs(15);

/// How long `member add` may take: the new node must catch up as a learner
/// before its promotion to voter commits (design.md §3).
pub const MEMBER_ADD_REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// The socket's file name inside a runtime directory.
pub const SOCKET_FILE_NAME: &str = "goosed.sock";

/// The socket of a system-wide daemon (systemd `RuntimeDirectory=goose`).
pub const SYSTEM_SOCKET_PATH: &str = "/run/goose/goosed.sock";

/// The directory, under a user's runtime directory, holding the socket.
pub const USER_SOCKET_DIRECTORY: &str = "goose";

const _: () = assert!(CONTROL_FRAME_BYTES_MAX <= u32::MAX as usize);
const _: () = assert!(CONTROL_FRAME_BYTES_MAX > FRAME_VERSION_BYTES);
const _: () = assert!(LOCAL_REPLY_TIMEOUT.as_millis() < CLUSTER_REPLY_TIMEOUT.as_millis());
const _: () = assert!(CLUSTER_REPLY_TIMEOUT.as_millis() <= CHANGE_REPLY_TIMEOUT.as_millis());
const _: () = assert!(CHANGE_REPLY_TIMEOUT.as_millis() <= MEMBER_ADD_REPLY_TIMEOUT.as_millis());

/// Why a frame could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer closed the connection cleanly, between frames.
    #[error("connection closed")]
    Closed,
    /// Reading or writing the socket failed (a timeout included).
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The frame is larger than [`CONTROL_FRAME_BYTES_MAX`].
    #[error("frame of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The announced or would-be size of the payload.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The peer speaks another version of this protocol.
    #[error("control protocol version {received} is not supported (this side speaks version {supported})")]
    UnsupportedVersion {
        /// The version the frame carries.
        received: u16,
        /// The version this side speaks.
        supported: u16,
    },
    /// The frame is truncated, too short, or its body is not exactly one
    /// valid value.
    #[error("malformed frame: {0}")]
    Malformed(String),
}

impl FrameError {
    /// Whether the error is a socket timeout (as set with `set_read_timeout`).
    pub fn is_timeout(&self) -> bool {
        matches!(self, FrameError::Io(error)
            if matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
    }
}

/// Encodes `value` as one complete frame: length prefix, version, body.
pub fn encode_frame<T: Serialize>(value: &T) -> Result<Vec<u8>, FrameError> {
    let body_size = postcard::serialize_with_flavor(value, postcard::ser_flavors::Size::default())
        .map_err(|error| FrameError::Malformed(error.to_string()))?;
    let payload_size = FRAME_VERSION_BYTES + body_size;
    if payload_size > CONTROL_FRAME_BYTES_MAX {
        return Err(FrameError::TooLarge {
            size: payload_size,
            limit: CONTROL_FRAME_BYTES_MAX,
        });
    }
    // The check above keeps the size within u32 (asserted at compile time).
    let length = u32::try_from(payload_size).map_err(|_| FrameError::TooLarge {
        size: payload_size,
        limit: CONTROL_FRAME_BYTES_MAX,
    })?;
    let mut frame = Vec::with_capacity(FRAME_LENGTH_BYTES + payload_size);
    frame.extend_from_slice(&length.to_be_bytes());
    frame.extend_from_slice(&CONTROL_PROTOCOL_VERSION.to_be_bytes());
    let frame = postcard::to_extend(value, frame)
        .map_err(|error| FrameError::Malformed(error.to_string()))?;
    debug_assert_eq!(frame.len(), FRAME_LENGTH_BYTES + payload_size);
    Ok(frame)
}

/// The payload length announced by a length prefix, refused when it is
/// over the limit or too short to hold the version.
pub fn payload_length(prefix: [u8; FRAME_LENGTH_BYTES]) -> Result<usize, FrameError> {
    let announced = u32::from_be_bytes(prefix);
    let length = usize::try_from(announced).unwrap_or(usize::MAX);
    if length > CONTROL_FRAME_BYTES_MAX {
        return Err(FrameError::TooLarge {
            size: length,
            limit: CONTROL_FRAME_BYTES_MAX,
        });
    }
    if length < FRAME_VERSION_BYTES {
        return Err(FrameError::Malformed(format!(
            "a frame of {length} bytes cannot hold the protocol version"
        )));
    }
    Ok(length)
}

/// Decodes a frame payload (version plus body, without the length prefix):
/// exactly one value of this protocol version, nothing after it.
pub fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    if payload.len() > CONTROL_FRAME_BYTES_MAX {
        return Err(FrameError::TooLarge {
            size: payload.len(),
            limit: CONTROL_FRAME_BYTES_MAX,
        });
    }
    let Some((version_bytes, body)) = payload.split_first_chunk::<FRAME_VERSION_BYTES>() else {
        return Err(FrameError::Malformed(format!(
            "a frame of {} bytes cannot hold the protocol version",
            payload.len()
        )));
    };
    let version = u16::from_be_bytes(*version_bytes);
    if version != CONTROL_PROTOCOL_VERSION {
        return Err(FrameError::UnsupportedVersion {
            received: version,
            supported: CONTROL_PROTOCOL_VERSION,
        });
    }
    let (value, rest) = postcard::take_from_bytes::<T>(body)
        .map_err(|error| FrameError::Malformed(error.to_string()))?;
    if !rest.is_empty() {
        return Err(FrameError::Malformed(format!(
            "{} trailing bytes after the body",
            rest.len()
        )));
    }
    Ok(value)
}

/// Writes `value` as one frame and flushes it.
pub fn write_frame<W: Write, T: Serialize>(writer: &mut W, value: &T) -> Result<(), FrameError> {
    let frame = encode_frame(value)?;
    writer.write_all(&frame)?;
    writer.flush()?;
    Ok(())
}

/// Reads one frame and decodes its value. A connection closed before the
/// first byte of the frame is [`FrameError::Closed`]; closed inside it is
/// [`FrameError::Malformed`].
pub fn read_frame<R: Read, T: DeserializeOwned>(reader: &mut R) -> Result<T, FrameError> {
    let mut prefix = [0u8; FRAME_LENGTH_BYTES];
    let mut filled = 0;
    while filled < FRAME_LENGTH_BYTES {
        match reader.read(&mut prefix[filled..]) {
            Ok(0) if filled == 0 => return Err(FrameError::Closed),
            Ok(0) => {
                return Err(FrameError::Malformed(
                    "connection closed inside a length prefix".to_string(),
                ))
            }
            Ok(count) => filled += count,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(FrameError::Io(error)),
        }
    }
    let length = payload_length(prefix)?;
    let mut payload = vec![0u8; length];
    reader.read_exact(&mut payload).map_err(|error| {
        if error.kind() == io::ErrorKind::UnexpectedEof {
            FrameError::Malformed(format!(
                "connection closed inside a frame of {length} bytes"
            ))
        } else {
            FrameError::Io(error)
        }
    })?;
    decode_payload(&payload)
}

/// Asks the daemon at `socket` one question over a new connection and reads
/// its reply, writing and reading each within `timeout`: the blocking call
/// of the demo and the tests (goosectl's client adds a connect deadline and
/// per-request timeouts).
pub fn call_once(socket: &Path, request: &Request, timeout: Duration) -> Result<Reply, FrameError> {
    let mut stream = std::os::unix::net::UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write_frame(&mut stream, request)?;
    read_frame(&mut stream)
}

/// What goosectl asks the local daemon.
///
/// The postcard layout depends on the order of the variants: append new
/// ones at the end and bump [`CONTROL_PROTOCOL_VERSION`] on any other change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Every member's own answer gathered over UDP ([`Reply::Status`]), or
    /// with `local` this node's only ([`Reply::NodeStatus`]).
    Status {
        /// Only this node.
        local: bool,
    },
    /// "Is this node the goose right now?" ([`Reply::IsGoose`]).
    IsGoose,
    /// A stream of [`Reply::Event`], one per role or leader change, starting
    /// with the current state.
    Watch,
    /// The members of the membership ([`Reply::Members`]): `member list`.
    MemberList,
    /// Add a voter, answered once its promotion commits; or, with
    /// `observer`, a member that never votes, answered once it is in a
    /// committed membership.
    MemberAdd {
        /// The new node's id.
        id: NodeId,
        /// Its UDP address.
        addr: SocketAddr,
        /// Whether it is an observer (never votes, never the goose).
        observer: bool,
    },
    /// Remove a member; answered once the change commits.
    MemberRemove {
        /// The member to remove.
        id: NodeId,
    },
    /// The partition rules in force on this node ([`Reply::Rules`]).
    PartitionList,
    /// Append a partition rule on this node.
    PartitionAdd(Rule),
    /// Delete this node's rule with this number.
    PartitionDelete(u32),
    /// Delete every rule on this node.
    PartitionFlush,
    /// On every reachable member, drop traffic between the two sides.
    PartitionSplit {
        /// The two sides, disjoint and non-empty.
        sides: (Vec<NodeId>, Vec<NodeId>),
    },
    /// On every reachable member, delete every rule.
    PartitionHeal,
    /// Hand the goose over (to `to`, or to the most up-to-date voter).
    StepDown {
        /// The voter to hand over to.
        to: Option<NodeId>,
    },
    /// Register a `goosectl run` runner: a stream of [`Reply::Runner`], the
    /// first at once, then one whenever the role, term, leader, promise or
    /// release changes. A runner's promise runs to the lease end. On a
    /// voluntary handoff the daemon asks the runner to stop its job
    /// ([`RunnerUpdate::release`]) and sends no `TimeoutNow` until the runner
    /// answers [`Request::Released`], or `grace_ms` (plus a margin) has
    /// passed (design.md §7). Added in protocol version 4; `grace_ms` in 5.
    Run {
        /// How long the runner gives its job between SIGTERM and SIGKILL.
        grace_ms: u64,
    },
    /// Sent by a runner on its run stream, never alone: its job is gone
    /// after the daemon asked for handoff `handoff`'s release. Added in
    /// protocol version 5.
    Released {
        /// The [`ReleaseRequest::handoff`] answered.
        handoff: u64,
    },
    /// Make this node ineligible (`drained`: true, `goosectl drain`) or
    /// eligible again (`goosectl undrain`), kept across restarts; a drained
    /// goose hands over first. Answered with [`Reply::Ok`] once the intent
    /// is durable and the core knows it (a drained goose has then stopped
    /// answering goose; its handoff goes on). Added in protocol version 6.
    Drain {
        /// Drain (true) or undrain (false).
        drained: bool,
    },
    /// Make an observer a voter: it catches up and is promoted; answered
    /// once the promotion commits. Added in protocol version 8.
    MemberPromote {
        /// The observer.
        id: NodeId,
    },
    /// Make a voter an observer; answered once the change commits. A
    /// demoted goose stops answering goose when the change is appended and
    /// hands the goose over once it commits. Added in protocol version 8.
    MemberDemote {
        /// The voter.
        id: NodeId,
    },
}

impl Request {
    /// Whether the request changes the cluster or this node's rules, and so
    /// needs root or the daemon's own user (design.md §6).
    pub fn is_mutating(&self) -> bool {
        match self {
            Request::Status { .. }
            | Request::IsGoose
            | Request::Watch
            | Request::Run { .. }
            | Request::Released { .. }
            | Request::MemberList
            | Request::PartitionList => false,
            Request::MemberAdd { .. }
            | Request::MemberRemove { .. }
            | Request::MemberPromote { .. }
            | Request::MemberDemote { .. }
            | Request::PartitionAdd(_)
            | Request::PartitionDelete(_)
            | Request::PartitionFlush
            | Request::PartitionSplit { .. }
            | Request::PartitionHeal
            | Request::StepDown { .. }
            | Request::Drain { .. } => true,
        }
    }

    /// The goosectl command that sends this request, for messages and logs.
    pub fn command_name(&self) -> &'static str {
        match self {
            Request::Status { local: false } => "status",
            Request::Status { local: true } => "status --local",
            Request::IsGoose => "is-goose",
            Request::Watch => "watch",
            Request::MemberList => "member list",
            Request::MemberAdd {
                observer: false, ..
            } => "member add",
            Request::MemberAdd { observer: true, .. } => "member add --observer",
            Request::MemberRemove { .. } => "member remove",
            Request::MemberPromote { .. } => "member promote",
            Request::MemberDemote { .. } => "member demote",
            Request::PartitionList => "partition list",
            Request::PartitionAdd(_) => "partition add",
            Request::PartitionDelete(_) => "partition delete",
            Request::PartitionFlush => "partition flush",
            Request::PartitionSplit { .. } => "partition split",
            Request::PartitionHeal => "partition heal",
            Request::StepDown { .. } => "step-down",
            Request::Run { .. } => "run",
            Request::Released { .. } => "run (released)",
            Request::Drain { drained: true } => "drain",
            Request::Drain { drained: false } => "undrain",
        }
    }

    /// How long the daemon may take to answer; `None` for a watch, which
    /// streams until closed. A client waits a little longer than this so
    /// that the daemon's own timeout error reaches it first.
    pub fn reply_timeout(&self) -> Option<Duration> {
        match self {
            Request::Watch | Request::Run { .. } | Request::Released { .. } => None,
            Request::Status { local: false }
            | Request::PartitionSplit { .. }
            | Request::PartitionHeal => Some(CLUSTER_REPLY_TIMEOUT),
            Request::MemberAdd { .. } | Request::MemberPromote { .. } => {
                Some(MEMBER_ADD_REPLY_TIMEOUT)
            }
            Request::MemberRemove { .. }
            | Request::MemberDemote { .. }
            | Request::StepDown { .. }
            | Request::Drain { .. } => Some(CHANGE_REPLY_TIMEOUT),
            Request::Status { local: true }
            | Request::IsGoose
            | Request::MemberList
            | Request::PartitionList
            | Request::PartitionAdd(_)
            | Request::PartitionDelete(_)
            | Request::PartitionFlush => Some(LOCAL_REPLY_TIMEOUT),
        }
    }

    /// Checks the arguments a daemon relies on (valid ids, bounded lists,
    /// sane rules) so that the driver never sees a nonsensical request.
    pub fn validate(&self) -> Result<(), String> {
        let valid_id = |id: &NodeId| {
            if id.is_valid() {
                Ok(())
            } else {
                Err("node ids start at 1".to_string())
            }
        };
        match self {
            Request::MemberAdd { id, .. }
            | Request::MemberRemove { id }
            | Request::MemberPromote { id }
            | Request::MemberDemote { id } => valid_id(id),
            Request::StepDown { to: Some(id) } => valid_id(id),
            Request::Run { grace_ms } if *grace_ms > RUNNER_GRACE_MAX.as_millis() as u64 => Err(
                format!("the grace is at most {} s", RUNNER_GRACE_MAX.as_secs()),
            ),
            Request::PartitionAdd(rule) => rule.validate().map_err(|error| error.to_string()),
            Request::PartitionSplit {
                sides: (left, right),
            } => validate_split(left, right),
            Request::Status { .. }
            | Request::IsGoose
            | Request::Watch
            | Request::Run { .. }
            | Request::Released { .. }
            | Request::MemberList
            | Request::PartitionList
            | Request::PartitionDelete(_)
            | Request::PartitionFlush
            | Request::PartitionHeal
            | Request::StepDown { to: None }
            | Request::Drain { .. } => Ok(()),
        }
    }
}

/// Checks that the sides of a split are non-empty, disjoint, duplicate-free,
/// of valid ids, and no larger than a cluster.
fn validate_split(left: &[NodeId], right: &[NodeId]) -> Result<(), String> {
    if left.is_empty() || right.is_empty() {
        return Err("each side of a split needs at least one node".to_string());
    }
    if left.len() + right.len() > MEMBERS_MAX {
        return Err(format!("a split names at most {MEMBERS_MAX} nodes"));
    }
    let mut all: Vec<NodeId> = left.iter().chain(right).copied().collect();
    if let Some(id) = all.iter().find(|id| !id.is_valid()) {
        return Err(format!("invalid node id {id}: ids start at 1"));
    }
    all.sort();
    if let Some(pair) = all.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(format!("node {} appears twice in the split", pair[0]));
    }
    Ok(())
}

/// A node's answer as status shows it: goose, duck, or no answer in time.
/// The outside view (not the Raft role, `RaftRole` in goosed's core, nor a
/// member's part in the membership, `MemberRole`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    /// The node answered goose.
    Goose,
    /// The node answered duck.
    Duck,
    /// The node did not answer in time.
    Unreachable,
}

impl fmt::Display for NodeRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NodeRole::Goose => "goose",
            NodeRole::Duck => "duck",
            NodeRole::Unreachable => "unreachable",
        })
    }
}

/// One node's own answer (design.md §6). The JSON of this struct is a
/// contract; fields may be added, never renamed or removed.
///
/// Every field is plain (no skipped or flattened fields) so that the same
/// struct encodes with postcard, which cannot skip fields, and JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The node's id.
    pub id: NodeId,
    /// Its UDP address.
    pub addr: SocketAddr,
    /// What it answered.
    pub role: NodeRole,
    /// Its term: the fencing token. 0 when unreachable.
    pub term: Term,
    /// The leader it knows of.
    pub leader_id: Option<NodeId>,
    /// Its commit index. 0 when unreachable.
    pub commit_index: LogIndex,
    /// Whether it is a voter in its configuration.
    pub voter: bool,
    /// The answering daemon's `CLOCK_BOOTTIME` in nanoseconds at the moment
    /// it decided its role (for an unreachable node: the asking daemon's,
    /// when it gave up).
    pub clock_ns: u64,
    /// The promise of design.md §2, on the same clock; `None` unless goose.
    pub lease_until_ns: Option<u64>,
    /// The index of its last log entry (an addition to the contract).
    pub last_index: LogIndex,
    /// Whether it has learnt that it was removed from the cluster.
    pub removed: bool,
    /// Datagrams it dropped since start, by reason (bad MAC, replay, ...).
    pub drops: BTreeMap<String, u64>,
    /// Whether it may be the goose: a voter, healthy and not drained
    /// (design.md §2, eligibility). Added in protocol version 6.
    pub eligible: bool,
    /// Its health check's verdict (design.md §7).
    pub health: HealthState,
    /// The last failure of its health check, while unhealthy (exit status,
    /// timeout, output tail); `None` otherwise.
    pub health_reason: Option<String>,
    /// Whether an operator drained it (`goosectl drain`).
    pub drained: bool,
    /// Its priority (0-255; a higher one is preferred as goose).
    pub priority: u8,
    /// Whether it is a permanent non-voting member (design.md §1).
    pub observer: bool,
    /// Protocol datagrams it has sent since it started (added in protocol
    /// version 7).
    pub datagrams_sent: u64,
    /// Protocol datagrams it has received since it started that passed
    /// every check (the dropped ones are in `drops`).
    pub datagrams_received: u64,
}

/// A health check's verdict (design.md §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthState {
    /// No health check is configured: the node counts as healthy.
    None,
    /// The check has not yet given its first result: not eligible.
    Unknown,
    /// The check passes.
    Healthy,
    /// The check failed `health_fall` times in a row.
    Unhealthy,
}

impl HealthState {
    /// Whether the node counts as healthy for eligibility.
    pub fn is_healthy(self) -> bool {
        matches!(self, HealthState::None | HealthState::Healthy)
    }
}

impl fmt::Display for HealthState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HealthState::None => "no check",
            HealthState::Unknown => "health unknown",
            HealthState::Healthy => "healthy",
            HealthState::Unhealthy => "unhealthy",
        })
    }
}

impl NodeStatus {
    /// Whether the node answered goose.
    pub fn is_goose(&self) -> bool {
        self.role == NodeRole::Goose
    }

    /// How long the goose's promise lasts past its answer; `None` unless goose.
    pub fn lease_remaining(&self) -> Option<Duration> {
        self.lease_until_ns
            .map(|until| Duration::from_nanos(until.saturating_sub(self.clock_ns)))
    }
}

/// Every member's own answer, gathered by the local daemon (design.md §6).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// The asked daemon's own answer.
    #[serde(rename = "self")]
    pub local: NodeStatus,
    /// Every member's answer, this node's included, in id order.
    pub members: Vec<NodeStatus>,
    /// The member that answered goose, if any.
    pub goose: Option<NodeId>,
    /// The members that answered goose but whose promise, carried onto the
    /// asked daemon's clock from when it asked, had run out when it replied;
    /// `members` shows them as ducks (design.md §2: answers are for the
    /// instant they are acted on). Added in protocol version 3.
    pub expired: Vec<NodeId>,
}

/// One member of the membership, as `member list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// Its id.
    pub id: NodeId,
    /// Its UDP address.
    pub addr: SocketAddr,
    /// Voter, learner or joining.
    pub role: MemberRole,
}

/// What a watch event reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WatchEventKind {
    /// The state when the watch started.
    Initial,
    /// The node started answering goose.
    BecameGoose,
    /// The node stopped answering goose.
    BecameDuck,
    /// The leader this node knows of changed.
    LeaderChanged,
    /// The node learnt that it was removed from the cluster.
    Removed,
    /// The node's eligibility (health, drain) changed. Added in protocol
    /// version 6.
    EligibilityChanged,
}

impl fmt::Display for WatchEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WatchEventKind::Initial => "now",
            WatchEventKind::BecameGoose => "became goose",
            WatchEventKind::BecameDuck => "became duck",
            WatchEventKind::LeaderChanged => "leader changed",
            WatchEventKind::Removed => "removed",
            WatchEventKind::EligibilityChanged => "eligibility changed",
        })
    }
}

/// One event of a watch: what changed, and the node's status just after.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    /// What happened.
    pub kind: WatchEventKind,
    /// The node's status after it.
    pub status: NodeStatus,
}

/// Why the daemon refused or failed a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// A mutating request from a user other than root or the daemon's.
    PermissionDenied,
    /// The request needs the leader and this node is not it (and could not
    /// forward the request).
    NotLeader,
    /// No goose is reachable from here.
    NoGoose,
    /// Another membership change or handoff is in progress.
    ChangeInProgress,
    /// The request is malformed or its arguments are invalid.
    InvalidRequest,
    /// The daemon did not settle the request in time; it may still take effect.
    Timeout,
    /// Something failed inside the daemon.
    Internal,
    /// The client speaks another protocol version.
    UnsupportedVersion,
    /// The daemon has too many connections or queued requests; retry later.
    Busy,
}

/// What the daemon answers.
///
/// `Error` is deliberately the first variant: its postcard layout (variant 0,
/// kind, message) is then the most likely to be readable by a client of
/// another version, which matters for [`ErrorKind::UnsupportedVersion`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// The request failed.
    Error {
        /// Why, as a category.
        kind: ErrorKind,
        /// One line for a person.
        message: String,
    },
    /// The answer to `Status { local: false }`.
    Status(ClusterStatus),
    /// The answer to `Status { local: true }`.
    NodeStatus(NodeStatus),
    /// The answer to `IsGoose`.
    IsGoose(NodeStatus),
    /// One event of a watch.
    Event(WatchEvent),
    /// The answer to `MemberList`.
    Members(Vec<MemberInfo>),
    /// The answer to `PartitionList`: the rules in order, numbered from 1.
    Rules(Vec<ListedRule>),
    /// A mutating request succeeded; one line for a person.
    Ok(String),
    /// One update of a `Run` stream.
    Runner(RunnerUpdate),
}

/// What a `goosectl run` runner is told (design.md §7).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerUpdate {
    /// This node's status; a goose's `lease_until_ns` is the lease end
    /// itself, not a short promise.
    pub status: NodeStatus,
    /// Set during a voluntary handoff: stop the job and answer
    /// [`Request::Released`] once it is gone.
    pub release: Option<ReleaseRequest>,
}

/// A voluntary handoff's request to stop a runner's job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRequest {
    /// Which handoff asks (echoed in [`Request::Released`]).
    pub handoff: u64,
    /// The lease end the node still holds and renews while it waits
    /// (CLOCK_BOOTTIME ns): no other node is the goose before it, so the
    /// job may take its grace to stop, but must be gone by then. `None`
    /// once the lease has lapsed.
    pub hold_until_ns: Option<u64>,
    /// Why the goose hands over (`GOOSE_REASON` of the hooks). Added in
    /// protocol version 6.
    pub reason: HandoffCause,
}

/// Why a goose hands over voluntarily (design.md §7): the value of
/// `GOOSE_REASON`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HandoffCause {
    /// `goosectl step-down`.
    StepDown,
    /// SIGTERM or SIGINT of goosed.
    Shutdown,
    /// Its removal from the membership.
    Removed,
    /// `goosectl drain`.
    Drain,
    /// Its health check failed.
    Unhealthy,
    /// A voter of higher priority asked to take over.
    Preempted,
}

impl HandoffCause {
    /// The value of `GOOSE_REASON`.
    pub fn as_str(self) -> &'static str {
        match self {
            HandoffCause::StepDown => "step_down",
            HandoffCause::Shutdown => "shutdown",
            HandoffCause::Removed => "removed",
            HandoffCause::Drain => "drain",
            HandoffCause::Unhealthy => "unhealthy",
            HandoffCause::Preempted => "preempted",
        }
    }
}

impl Reply {
    /// An error reply.
    pub fn error(kind: ErrorKind, message: impl Into<String>) -> Reply {
        Reply::Error {
            kind,
            message: message.into(),
        }
    }
}

/// Where a socket may be, most specific first: `$RUNTIME_DIRECTORY` (the
/// first of its colon-separated entries, as systemd sets it), then the
/// user's runtime directory, then [`SYSTEM_SOCKET_PATH`].
pub fn socket_path_candidates_from(
    runtime_directory: Option<&OsStr>,
    user_runtime_directory: Option<&Path>,
) -> Vec<PathBuf> {
    let mut candidates = Vec::new();
    let systemd_directory = runtime_directory
        .and_then(|value| std::env::split_paths(value).find(|path| !path.as_os_str().is_empty()));
    if let Some(directory) = systemd_directory {
        candidates.push(directory.join(SOCKET_FILE_NAME));
    }
    if let Some(directory) = user_runtime_directory {
        candidates.push(directory.join(USER_SOCKET_DIRECTORY).join(SOCKET_FILE_NAME));
    }
    candidates.push(PathBuf::from(SYSTEM_SOCKET_PATH));
    candidates
}

/// [`socket_path_candidates_from`] for this process's environment.
pub fn socket_path_candidates() -> Vec<PathBuf> {
    let runtime_directory = std::env::var_os("RUNTIME_DIRECTORY");
    let base_directories = directories::BaseDirs::new();
    let user_runtime_directory = base_directories
        .as_ref()
        .and_then(directories::BaseDirs::runtime_dir);
    socket_path_candidates_from(runtime_directory.as_deref(), user_runtime_directory)
}

#[cfg(test)]
mod tests {
    //! Checks the framing (round trips, bounds, malformed input) and the
    //! exact JSON shapes that design.md §6 makes a contract.

    use super::*;
    use crate::partition::{Chain, DropPercent, Matcher};
    use proptest::prelude::*;
    use std::io::Cursor;

    fn goose_status() -> NodeStatus {
        NodeStatus {
            id: NodeId(3),
            addr: "10.0.0.3:7700".parse().unwrap(),
            role: NodeRole::Goose,
            term: Term(7),
            leader_id: Some(NodeId(3)),
            commit_index: LogIndex(12),
            voter: true,
            clock_ns: 1_000_000_000,
            lease_until_ns: Some(1_008_000_000),
            last_index: LogIndex(12),
            removed: false,
            drops: BTreeMap::from([("bad_mac".to_string(), 2)]),
            eligible: true,
            health: HealthState::Healthy,
            health_reason: None,
            drained: false,
            priority: 100,
            observer: false,
            datagrams_sent: 0,
            datagrams_received: 0,
        }
    }

    fn duck_status(id: u64) -> NodeStatus {
        NodeStatus {
            id: NodeId(id),
            addr: format!("10.0.0.{id}:7700").parse().unwrap(),
            role: NodeRole::Duck,
            leader_id: None,
            lease_until_ns: None,
            drops: BTreeMap::new(),
            ..goose_status()
        }
    }

    fn sample_requests() -> Vec<Request> {
        vec![
            Request::Status { local: false },
            Request::Status { local: true },
            Request::IsGoose,
            Request::Watch,
            Request::MemberList,
            Request::MemberAdd {
                id: NodeId(4),
                addr: "[::1]:7704".parse().unwrap(),
                observer: false,
            },
            Request::MemberAdd {
                id: NodeId(5),
                addr: "10.0.0.5:7700".parse().unwrap(),
                observer: true,
            },
            Request::MemberRemove { id: NodeId(2) },
            Request::MemberPromote { id: NodeId(5) },
            Request::MemberDemote { id: NodeId(3) },
            Request::PartitionList,
            Request::PartitionAdd(Rule {
                chain: Chain::Both,
                matcher: Matcher::Addr("10.0.0.0/24".parse().unwrap()),
                drop_percent: DropPercent::new(50).unwrap(),
                duration: Some(Duration::from_secs(30)),
            }),
            Request::PartitionDelete(3),
            Request::PartitionFlush,
            Request::PartitionSplit {
                sides: (vec![NodeId(1), NodeId(2)], vec![NodeId(3)]),
            },
            Request::PartitionHeal,
            Request::StepDown {
                to: Some(NodeId(2)),
            },
            Request::Run { grace_ms: 5000 },
            Request::Released { handoff: 3 },
            Request::Drain { drained: true },
            Request::Drain { drained: false },
        ]
    }

    fn sample_replies() -> Vec<Reply> {
        vec![
            Reply::error(ErrorKind::PermissionDenied, "permission denied: member add"),
            Reply::Status(ClusterStatus {
                local: goose_status(),
                members: vec![duck_status(1), goose_status()],
                goose: Some(NodeId(3)),
                expired: vec![NodeId(1)],
            }),
            Reply::NodeStatus(duck_status(2)),
            Reply::IsGoose(goose_status()),
            Reply::Runner(RunnerUpdate {
                status: goose_status(),
                release: None,
            }),
            Reply::Runner(RunnerUpdate {
                status: duck_status(3),
                release: Some(ReleaseRequest {
                    handoff: 2,
                    hold_until_ns: Some(1_000_000),
                    reason: HandoffCause::Drain,
                }),
            }),
            Reply::Event(WatchEvent {
                kind: WatchEventKind::BecameGoose,
                status: goose_status(),
            }),
            Reply::Event(WatchEvent {
                kind: WatchEventKind::EligibilityChanged,
                status: NodeStatus {
                    eligible: false,
                    health: HealthState::Unhealthy,
                    health_reason: Some("exit status 1: disk full".into()),
                    drained: true,
                    priority: 7,
                    observer: true,
                    datagrams_sent: 0,
                    datagrams_received: 0,
                    ..duck_status(2)
                },
            }),
            Reply::Members(vec![MemberInfo {
                id: NodeId(1),
                addr: "127.0.0.1:7701".parse().unwrap(),
                role: MemberRole::Learner,
            }]),
            Reply::Rules(vec![
                ListedRule {
                    number: 1,
                    rule: Rule::drop_all(Chain::In, Matcher::Peer(NodeId(2))),
                    remaining: None,
                    dropped: 9,
                },
                ListedRule {
                    number: 2,
                    rule: Rule {
                        chain: Chain::Out,
                        matcher: Matcher::Addr("fd00::/8".parse().unwrap()),
                        drop_percent: DropPercent::new(1).unwrap(),
                        duration: Some(Duration::from_millis(1500)),
                    },
                    remaining: Some(Duration::from_millis(700)),
                    dropped: 0,
                },
            ]),
            Reply::Ok("done".into()),
        ]
    }

    #[test]
    fn every_request_and_reply_round_trips_through_a_frame() {
        for request in sample_requests() {
            let mut buffer = Vec::new();
            write_frame(&mut buffer, &request).unwrap();
            let length = u32::from_be_bytes(buffer[..4].try_into().unwrap()) as usize;
            assert_eq!(length + FRAME_LENGTH_BYTES, buffer.len());
            assert_eq!(
                u16::from_be_bytes([buffer[4], buffer[5]]),
                CONTROL_PROTOCOL_VERSION
            );
            let decoded: Request = read_frame(&mut Cursor::new(buffer)).unwrap();
            assert_eq!(decoded, request);
        }
        for reply in sample_replies() {
            let frame = encode_frame(&reply).unwrap();
            let decoded: Reply = read_frame(&mut Cursor::new(frame)).unwrap();
            assert_eq!(decoded, reply);
        }
    }

    #[test]
    fn several_frames_read_back_in_order_then_closed() {
        let mut buffer = Vec::new();
        write_frame(&mut buffer, &Request::IsGoose).unwrap();
        write_frame(&mut buffer, &Request::PartitionHeal).unwrap();
        let mut reader = Cursor::new(buffer);
        assert_eq!(
            read_frame::<_, Request>(&mut reader).unwrap(),
            Request::IsGoose
        );
        assert_eq!(
            read_frame::<_, Request>(&mut reader).unwrap(),
            Request::PartitionHeal
        );
        assert!(matches!(
            read_frame::<_, Request>(&mut reader),
            Err(FrameError::Closed)
        ));
    }

    #[test]
    fn oversize_length_prefix_is_refused_before_reading_the_body() {
        let announced = (CONTROL_FRAME_BYTES_MAX + 1) as u32;
        let bytes = announced.to_be_bytes().to_vec();
        let result = read_frame::<_, Request>(&mut Cursor::new(bytes));
        assert!(
            matches!(result, Err(FrameError::TooLarge { .. })),
            "{result:?}"
        );
        assert!(matches!(
            payload_length(u32::MAX.to_be_bytes()),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn oversize_values_are_not_encoded() {
        let reply = Reply::Ok("x".repeat(CONTROL_FRAME_BYTES_MAX));
        assert!(matches!(
            encode_frame(&reply),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn truncated_short_and_trailing_frames_are_malformed() {
        let frame = encode_frame(&Request::MemberRemove { id: NodeId(2) }).unwrap();
        let truncated = frame[..frame.len() - 1].to_vec();
        assert!(matches!(
            read_frame::<_, Request>(&mut Cursor::new(truncated)),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(
            read_frame::<_, Request>(&mut Cursor::new(vec![0, 0])),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(
            read_frame::<_, Request>(&mut Cursor::new(vec![0, 0, 0, 1, 0])),
            Err(FrameError::Malformed(_))
        ));
        let mut payload = frame[FRAME_LENGTH_BYTES..].to_vec();
        payload.push(0);
        assert!(matches!(
            decode_payload::<Request>(&payload),
            Err(FrameError::Malformed(_))
        ));
        // An unknown variant index.
        let mut unknown = CONTROL_PROTOCOL_VERSION.to_be_bytes().to_vec();
        unknown.push(200);
        assert!(matches!(
            decode_payload::<Request>(&unknown),
            Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn another_version_is_reported_as_such() {
        let mut frame = encode_frame(&Request::IsGoose).unwrap();
        frame[FRAME_LENGTH_BYTES..FRAME_LENGTH_BYTES + 2].copy_from_slice(&9u16.to_be_bytes());
        let result = read_frame::<_, Request>(&mut Cursor::new(frame));
        assert!(
            matches!(
                result,
                Err(FrameError::UnsupportedVersion {
                    received: 9,
                    supported: CONTROL_PROTOCOL_VERSION
                })
            ),
            "{result:?}"
        );
    }

    #[test]
    fn node_status_json_has_exactly_the_design_keys() {
        let value = serde_json::to_value(goose_status()).unwrap();
        let keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected = vec![
            "id",
            "addr",
            "role",
            "term",
            "leader_id",
            "commit_index",
            "voter",
            "clock_ns",
            "lease_until_ns",
            // Additions the design allows.
            "last_index",
            "removed",
            "drops",
            // Eligibility (protocol version 6).
            "eligible",
            "health",
            "health_reason",
            "drained",
            "priority",
            "observer",
            // Traffic (protocol version 7).
            "datagrams_sent",
            "datagrams_received",
        ];
        let mut keys_sorted = keys.clone();
        keys_sorted.sort_unstable();
        expected.sort_unstable();
        assert_eq!(keys_sorted, expected);
        assert_eq!(value["id"], 3);
        assert_eq!(value["addr"], "10.0.0.3:7700");
        assert_eq!(value["role"], "goose");
        assert_eq!(value["term"], 7);
        assert_eq!(value["leader_id"], 3);
        assert_eq!(value["commit_index"], 12);
        assert_eq!(value["voter"], true);
        assert_eq!(value["clock_ns"], 1_000_000_000u64);
        assert_eq!(value["lease_until_ns"], 1_008_000_000u64);
        assert_eq!(value["drops"]["bad_mac"], 2);
        assert_eq!(value["eligible"], true);
        assert_eq!(value["health"], "healthy");
        assert!(value["health_reason"].is_null());
        assert_eq!(value["drained"], false);
        assert_eq!(value["priority"], 100);
        assert_eq!(value["observer"], false);
        let health = |state: HealthState| serde_json::to_value(state).unwrap();
        assert_eq!(health(HealthState::None), "none");
        assert_eq!(health(HealthState::Unknown), "unknown");
        assert_eq!(health(HealthState::Unhealthy), "unhealthy");
        assert!(!HealthState::Unknown.is_healthy() && !HealthState::Unhealthy.is_healthy());
        assert!(HealthState::None.is_healthy() && HealthState::Healthy.is_healthy());

        let duck = serde_json::to_value(duck_status(2)).unwrap();
        assert_eq!(duck["role"], "duck");
        assert!(duck["leader_id"].is_null());
        assert!(duck["lease_until_ns"].is_null());
        let unreachable = NodeStatus {
            role: NodeRole::Unreachable,
            ..duck_status(4)
        };
        assert_eq!(
            serde_json::to_value(unreachable).unwrap()["role"],
            "unreachable"
        );
    }

    #[test]
    fn cluster_status_json_has_self_members_and_goose() {
        let status = ClusterStatus {
            local: duck_status(1),
            members: vec![duck_status(1), goose_status()],
            goose: Some(NodeId(3)),
            expired: Vec::new(),
        };
        let value = serde_json::to_value(&status).unwrap();
        let mut keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["expired", "goose", "members", "self"]);
        assert_eq!(value["self"]["id"], 1);
        assert_eq!(value["members"].as_array().unwrap().len(), 2);
        assert_eq!(value["goose"], 3);
        let none = ClusterStatus {
            goose: None,
            ..status
        };
        assert!(serde_json::to_value(&none).unwrap()["goose"].is_null());
        // And back: a script's parser may hand the JSON to another tool.
        let parsed: ClusterStatus = serde_json::from_value(value).unwrap();
        assert_eq!(parsed.goose, Some(NodeId(3)));
    }

    #[test]
    fn lease_remaining_is_the_promise_past_the_answer() {
        assert_eq!(
            goose_status().lease_remaining(),
            Some(Duration::from_millis(8))
        );
        assert_eq!(duck_status(1).lease_remaining(), None);
    }

    #[test]
    fn mutating_requests_are_exactly_member_partition_step_down_and_drain_changes() {
        let mutating: Vec<&str> = sample_requests()
            .iter()
            .filter(|request| request.is_mutating())
            .map(Request::command_name)
            .collect();
        assert_eq!(
            mutating,
            [
                "member add",
                "member add --observer",
                "member remove",
                "member promote",
                "member demote",
                "partition add",
                "partition delete",
                "partition flush",
                "partition split",
                "partition heal",
                "step-down",
                "drain",
                "undrain"
            ]
        );
    }

    #[test]
    fn validation_refuses_bad_arguments() {
        for request in sample_requests() {
            assert_eq!(request.validate(), Ok(()), "{request:?}");
        }
        let split = |left: Vec<u64>, right: Vec<u64>| Request::PartitionSplit {
            sides: (
                left.into_iter().map(NodeId).collect(),
                right.into_iter().map(NodeId).collect(),
            ),
        };
        assert!(split(vec![], vec![1]).validate().is_err());
        assert!(split(vec![1, 2], vec![2, 3]).validate().is_err());
        assert!(split(vec![0], vec![1]).validate().is_err());
        assert!(split((1..=80).collect(), vec![100]).validate().is_err());
        assert!(Request::MemberRemove { id: NodeId(0) }.validate().is_err());
        assert!(Request::MemberPromote { id: NodeId(0) }.validate().is_err());
        assert!(Request::MemberDemote { id: NodeId(0) }.validate().is_err());
        assert!(Request::StepDown {
            to: Some(NodeId(0))
        }
        .validate()
        .is_err());
        // Rules are checked by partition::Rule::validate, and the reason
        // reaches the operator as one line.
        let rule = |matcher: Matcher, duration: Option<Duration>| {
            Request::PartitionAdd(Rule {
                chain: Chain::In,
                matcher,
                drop_percent: DropPercent::ALL,
                duration,
            })
        };
        assert_eq!(
            rule(Matcher::Peer(NodeId(0)), None).validate(),
            Err("peer id 0 is not a node id (ids start at 1)".to_string())
        );
        assert_eq!(
            rule(Matcher::Peer(NodeId(1)), Some(Duration::ZERO)).validate(),
            Err("a rule's duration must be longer than zero".to_string())
        );
        let too_long = rule(Matcher::Peer(NodeId(1)), Some(Duration::MAX)).validate();
        assert!(
            too_long
                .as_ref()
                .is_err_and(|message| message.contains("too long")),
            "{too_long:?}"
        );
        assert_eq!(
            rule(
                Matcher::Addr("fd00::/8".parse().unwrap()),
                Some(Duration::from_millis(1))
            )
            .validate(),
            Ok(())
        );
    }

    #[test]
    fn socket_path_prefers_systemd_then_the_user_then_the_system() {
        let user = Path::new("/run/user/1000");
        assert_eq!(
            socket_path_candidates_from(Some(OsStr::new("/run/goose:/run/other")), Some(user)),
            [
                PathBuf::from("/run/goose/goosed.sock"),
                PathBuf::from("/run/user/1000/goose/goosed.sock"),
                PathBuf::from(SYSTEM_SOCKET_PATH),
            ]
        );
        assert_eq!(
            socket_path_candidates_from(Some(OsStr::new("")), None),
            [PathBuf::from(SYSTEM_SOCKET_PATH)]
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Arbitrary bytes never panic the frame reader.
        #[test]
        fn reading_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = read_frame::<_, Request>(&mut Cursor::new(bytes.clone()));
            let _ = read_frame::<_, Reply>(&mut Cursor::new(bytes));
        }

        /// A mutated valid frame decodes to an error or some request, never a panic.
        #[test]
        fn mutated_frames_never_panic(which in 0usize..14, position in any::<usize>(), value in any::<u8>()) {
            let mut frame = encode_frame(&sample_requests()[which]).unwrap();
            let position = position % frame.len();
            frame[position] = value;
            let _ = read_frame::<_, Request>(&mut Cursor::new(frame));
        }
    }
}
