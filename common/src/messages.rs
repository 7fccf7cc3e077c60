//! The Raft messages daemons exchange, and the replicated data they carry.
//!
//! The log holds only no-ops and memberships (design.md §3),
//! so the replicated state is just the membership.

use crate::ids::{Identity, LogIndex, NodeId, Round, Term};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

/// What a member does in the cluster: its part in the replicated
/// membership (not a node's Raft role, `RaftRole`, nor the goose or duck
/// answer, `NodeRole`). The names are the ones `member list` prints and its
/// JSON carries; the wire encodes the variant's position, not its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberRole {
    /// Votes, counts towards majorities and may become the goose.
    Voter,
    /// Receives the log but never votes or counts towards a majority: an
    /// observer (`goosectl member add --observer`), named so in `member
    /// list` and its JSON.
    #[serde(rename = "observer")]
    Learner,
    /// A learner that any leader promotes to voter once it has caught up
    /// (the first half of `goosectl member add`).
    Joining,
}

impl std::fmt::Display for MemberRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MemberRole::Voter => "voter",
            MemberRole::Learner => "observer",
            MemberRole::Joining => "joining",
        })
    }
}

/// One member of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Member {
    /// The member's id.
    pub id: NodeId,
    /// The UDP address its daemon listens on.
    pub addr: SocketAddr,
    /// Whether it votes.
    pub role: MemberRole,
    /// The identity of its data directory; [`Identity::UNKNOWN`] until the
    /// leader has heard from it (initial voters) and bound it in an entry.
    pub identity: Identity,
}

/// A membership: the members, sorted by id, ids unique.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Membership {
    /// The members, sorted by id.
    pub members: Vec<Member>,
}

impl Membership {
    /// A membership of the given voters (sorted and deduplicated by id).
    pub fn with_voters(voters: impl IntoIterator<Item = (NodeId, SocketAddr)>) -> Membership {
        let mut members: Vec<Member> = voters
            .into_iter()
            .map(|(id, addr)| Member {
                id,
                addr,
                role: MemberRole::Voter,
                identity: Identity::UNKNOWN,
            })
            .collect();
        members.sort_by_key(|member| member.id);
        members.dedup_by_key(|member| member.id);
        Membership { members }
    }

    /// The member with this id, if any.
    pub fn get(&self, id: NodeId) -> Option<&Member> {
        self.members.iter().find(|member| member.id == id)
    }

    /// Whether `id` is a voter in this membership.
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.get(id)
            .is_some_and(|member| member.role == MemberRole::Voter)
    }

    /// The ids of the voters, in id order.
    pub fn voters(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.members
            .iter()
            .filter(|m| m.role == MemberRole::Voter)
            .map(|m| m.id)
    }

    /// How many voters make a majority (0 voters: 1, so nothing is ever decided).
    pub fn majority(&self) -> usize {
        self.voters().count() / 2 + 1
    }

    /// Whether the members are sorted by id with no duplicate id or address.
    pub fn is_well_formed(&self) -> bool {
        let sorted = self.members.windows(2).all(|pair| pair[0].id < pair[1].id);
        let mut addrs: Vec<SocketAddr> = self.members.iter().map(|m| m.addr).collect();
        addrs.sort();
        let addrs_unique = addrs.windows(2).all(|pair| pair[0] != pair[1]);
        let ids_valid = self.members.iter().all(|m| m.id.is_valid());
        sorted && addrs_unique && ids_valid
    }
}

/// What a log entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryPayload {
    /// A leader's first entry of its term; committing it is part of the goose rule.
    NoOp,
    /// A new membership, effective as soon as it is appended.
    Membership(Membership),
}

/// One log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Its position in the log.
    pub index: LogIndex,
    /// The term of the leader that created it.
    pub term: Term,
    /// What it carries.
    pub payload: EntryPayload,
}

/// A compacted log prefix: everything up to `index` (of `term`) is replaced
/// by the membership in force at that index.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The last index the snapshot covers.
    pub index: LogIndex,
    /// The term of the entry at `index`.
    pub term: Term,
    /// The membership in force at `index`.
    pub membership: Membership,
}

/// The state a node must make durable before sending anything that depends
/// on it (Raft's persistent `currentTerm` and `votedFor`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    /// The latest term this node has seen.
    pub term: Term,
    /// The candidate it voted for in `term`, if any.
    pub vote: Option<NodeId>,
    /// The lease guard to wait out after a restart: the longest guard
    /// (a leader's `election_timeout_min`) of the leaders this node has
    /// acknowledged whose leases may still run (design.md §2, one timing).
    pub lease_guard: Duration,
}

/// A Raft message from one node to another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The sender.
    pub from: NodeId,
    /// The identity of the sender's data directory.
    pub from_identity: Identity,
    /// The receiver.
    pub to: NodeId,
    /// The receiver's identity as the sender knows it (or unknown).
    pub to_identity: Identity,
    /// The sender's term (for a pre-vote request: the term it would campaign in).
    pub term: Term,
    /// What the message says.
    pub body: MessageBody,
}

/// The kinds of Raft message. Each carries a struct of its own, so that a
/// handler takes the message, not its fields (etcd's `stepFollower(r, m)`).
/// The encoding is that of the fields in order, after the variant's number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageBody {
    /// "Would you vote for me?" sent before bumping the term (PreVote).
    PreVote(PreVote),
    /// The answer to a pre-vote request.
    PreVoteReply(VoteReply),
    /// A real vote request (Raft's RequestVote RPC).
    RequestVote(RequestVote),
    /// The answer to a vote request.
    RequestVoteReply(VoteReply),
    /// Log replication and heartbeat (Raft's AppendEntries RPC).
    Append(Append),
    /// The answer to `Append` or `InstallSnapshot`.
    AppendReply(AppendReply),
    /// The leader's compacted prefix, sent to a follower that lags behind it.
    InstallSnapshot(InstallSnapshot),
    /// "Campaign now": the last step of a leadership handoff (dissertation §3.10).
    TimeoutNow,
}

/// A pre-vote request: the candidate's last entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreVote {
    /// The index of the candidate's last entry.
    pub last_log_index: LogIndex,
    /// The term of the candidate's last entry.
    pub last_log_term: Term,
}

/// A vote request: the candidate's last entry, and whether it campaigns
/// because the old leader handed over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestVote {
    /// The index of the candidate's last entry.
    pub last_log_index: LogIndex,
    /// The term of the candidate's last entry.
    pub last_log_term: Term,
    /// True when the campaign follows a `TimeoutNow` from the old leader,
    /// which has already stopped answering goose and waited out its promises.
    pub handoff: bool,
}

/// The answer to a pre-vote or a vote request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteReply {
    /// Whether the (pre-)vote was granted.
    pub granted: bool,
}

/// Log replication and heartbeat (Raft's AppendEntries RPC).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Append {
    /// The leader's heartbeat round, echoed in the reply so the leader
    /// can tell which round a reply acknowledges (the lease).
    pub round: Round,
    /// The index just before the first entry.
    pub prev_index: LogIndex,
    /// The term of the entry at `prev_index`.
    pub prev_term: Term,
    /// The entries to append (possibly none: a heartbeat).
    pub entries: Vec<Entry>,
    /// The leader's commit index.
    pub commit: LogIndex,
    /// The leader's `election_timeout_min`: the receiver grants no vote
    /// for at least this long after hearing it (the leader's lease is
    /// computed from it), whatever the receiver's own settings.
    pub lease_guard: Duration,
}

/// The answer to `Append` or `InstallSnapshot`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendReply {
    /// The round being acknowledged.
    pub round: Round,
    /// Whether the follower's log now matches the leader's up to `match_index`.
    pub success: bool,
    /// On success, the last index known to match; on failure, the
    /// follower's last index, a hint for where to probe next.
    pub match_index: LogIndex,
    /// Whether and how keenly the follower may lead (design.md §2).
    pub candidacy: Candidacy,
}

/// What a follower tells its leader about its eligibility (design.md §2):
/// the leader hands over only to an eligible voter, prefers a higher
/// priority, and is preempted by one that asks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Candidacy {
    /// Healthy and not drained (voter-ness is the leader's to judge).
    pub eligible: bool,
    /// The follower's priority (0-255).
    pub priority: u8,
    /// Eligible for its whole preempt delay, with preemption on: a leader
    /// of lower priority should hand over to it.
    pub preempting: bool,
}

/// The leader's compacted prefix, sent to a follower that lags behind it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallSnapshot {
    /// The leader's heartbeat round, as in `Append`.
    pub round: Round,
    /// The snapshot.
    pub snapshot: Snapshot,
    /// As in `Append`.
    pub lease_guard: Duration,
}
