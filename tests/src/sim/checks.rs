//! The safety checkers, run after every simulator event (design.md §9, tier 3).
//!
//! Each check is named by the letter it has in the simulator's issue:
//! (a) at most one goose at any true instant, (b) no goose answer while
//! another (node, term)'s promise is running, (c) at most one leader per
//! term, (d) log matching, (e) committed entries are never lost or changed,
//! (f) terms never go back, (g) a goose has been in two-way contact with a
//! majority within its lease; plus the driver contract (persist before send)
//! and the handoff rule (no goose after `TimeoutNow` in that term, and no
//! `TimeoutNow` before every promise has run out or while a runner's job
//! runs). (j): a `goosectl run` job, modelled as running until its runner
//! confirmed it stopped or, failing that, until the last lease end the
//! runner was told, never overlaps another (node, term)'s job or promise.
//! Liveness (h) lives in the simulator itself because it needs the fault
//! state.
//!
//! The checkers key what they remember by process slot, not by node id:
//! an impostor (another process started under a member's id) is a process
//! of its own, so two leaders of one term under one id, or a goose answer
//! of one while the other's promise runs, are violations like any other.

use super::clock::Clock;
use super::{Node, RaftRole};
use goose_common::{
    Entry, EntryPayload, LogIndex, Membership, Message, MessageBody, NodeId, Snapshot, Term,
    Timestamp,
};
use goosed::raft::{Config, GooseAnswer, Persist, PersistedState};
use std::collections::HashMap;
use std::fmt;

/// A broken invariant: which checker saw it and what it saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The checker, e.g. "(b) promise".
    pub checker: &'static str,
    /// What was wrong, in a sentence with the numbers.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.checker, self.message)
    }
}

/// Builds an `Err(Violation)` for `?`.
pub(crate) fn violation<T>(checker: &'static str, message: String) -> Result<T, Violation> {
    Err(Violation { checker, message })
}

/// When and where a goose question was asked.
#[derive(Clone, Copy, Debug)]
pub struct Asked<'a> {
    /// The asked node's configuration.
    pub config: &'a Config,
    /// Its clock.
    pub clock: &'a Clock,
    /// An upper bound on the true length of its lease on that clock (g).
    pub lease_window_ns: u64,
    /// Its clock's reading when asked.
    pub local_now: Timestamp,
    /// The true time when asked, in nanoseconds.
    pub now_ns: u64,
}

/// The most impostors one simulation starts.
pub const IMPOSTORS_MAX: usize = 4;

/// The most process slots a simulation holds: members and impostors.
pub const SLOTS_MAX: usize = super::network::NODES_MAX + IMPOSTORS_MAX;

/// A promise given with a goose answer, in true time.
#[derive(Clone, Copy, Debug)]
struct Promise {
    slot: usize,
    term: Term,
    until_true_ns: u64,
}

/// A `goosectl run` job, in true time: it runs until `until_true_ns` at the
/// latest (its runner kills it by the lease end it was told).
#[derive(Clone, Copy, Debug)]
struct Job {
    slot: usize,
    term: Term,
    until_true_ns: u64,
}

/// What the checkers remember about one process slot.
#[derive(Clone, Debug, Default)]
pub struct NodeCheck {
    /// The node id the slot runs under (0 until registered).
    id: u64,
    /// Whether the slot is an impostor under a member's id.
    impostor: bool,
    /// The highest term the node ever had, across restarts (f).
    max_term: Term,
    /// The commit index up to which its log was checked against the committed record (e).
    commit_checked: LogIndex,
    /// The term in which it was last seen leading (c).
    leader_term: Option<Term>,
    /// The term in which it sent `TimeoutNow`, after which it must not be goose.
    timeout_now_term: Option<Term>,
    /// The latest promise it gave in this incarnation: (term, lease_until on its clock).
    promise_local: Option<(Term, Timestamp)>,
    /// The membership before its latest one, if its log shows one (g).
    previous_membership: Option<Membership>,
    /// Whether it reported `Event::Removed`.
    removed: bool,
}

/// A process slot as messages name it: `n3`, or `n3 (impostor)`.
#[derive(Clone, Copy, Debug)]
struct Who {
    id: u64,
    impostor: bool,
}

impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.id)?;
        if self.impostor {
            write!(f, " (impostor)")?;
        }
        Ok(())
    }
}

/// The state of all checkers across a run.
#[derive(Debug)]
pub struct Checker {
    nodes: Vec<NodeCheck>,
    /// (c): the slot that led each term ever seen.
    leaders_by_term: HashMap<Term, usize>,
    /// (d): for each (index, term) ever appended, the previous entry's term and the payload.
    entries_seen: HashMap<(LogIndex, Term), (Term, EntryPayload)>,
    /// (e): the committed entries by index (index 0 unused): term, unless
    /// only a snapshot showed it the payload, and the term of the first node
    /// seen to know it committed (leaders of later terms must hold it).
    committed: Vec<Option<(Term, Option<EntryPayload>, Term)>>,
    /// (b): promises that may still be running.
    promises: Vec<Promise>,
    /// (j): jobs that may still be running.
    jobs: Vec<Job>,
    /// (g): the last true instant a message from slot `i` was processed
    /// by slot `j`, `last_delivery[i][j]`; 0 for never.
    last_delivery: Box<[[u64; SLOTS_MAX]; SLOTS_MAX]>,
    /// A deliberately broken checker for the replay test: any goose answer
    /// after this true instant is a violation.
    goose_forbidden_after_ns: Option<u64>,
}

/// The term of the entry at `index` in a log made of `snapshot` and `entries`,
/// if the log still knows it.
fn term_at(snapshot: &Snapshot, entries: &[Entry], index: LogIndex) -> Option<Term> {
    if index == snapshot.index {
        return Some(snapshot.term);
    }
    entry_at(snapshot, entries, index).map(|entry| entry.term)
}

fn entry_at<'a>(snapshot: &Snapshot, entries: &'a [Entry], index: LogIndex) -> Option<&'a Entry> {
    if index <= snapshot.index {
        return None;
    }
    let position = usize::try_from(index.0 - snapshot.index.0 - 1).ok()?;
    let entry = entries.get(position)?;
    debug_assert_eq!(entry.index, index);
    Some(entry)
}

/// The membership before the latest membership entry of a log, if any.
fn previous_membership(snapshot: &Snapshot, entries: &[Entry]) -> Option<Membership> {
    let mut memberships = entries
        .iter()
        .rev()
        .filter_map(|entry| match &entry.payload {
            EntryPayload::Membership(membership) => Some(membership),
            EntryPayload::NoOp => None,
        });
    memberships.next()?;
    Some(memberships.next().unwrap_or(&snapshot.membership).clone())
}

fn role_name(role: RaftRole) -> &'static str {
    match role {
        RaftRole::Follower => "Follower",
        RaftRole::PreCandidate => "PreCandidate",
        RaftRole::Candidate => "Candidate",
        RaftRole::Leader => "Leader",
    }
}

/// The name of a Raft role, for traces.
pub fn raft_role_name(role: RaftRole) -> &'static str {
    role_name(role)
}

/// Whether `voters` of `membership` that `contacted` says yes to make a majority;
/// `leader` counts itself if it is a voter.
fn is_majority(
    membership: &Membership,
    leader: NodeId,
    contacted: impl Fn(NodeId) -> bool,
) -> bool {
    let count = membership
        .voters()
        .filter(|&voter| voter == leader || contacted(voter))
        .count();
    membership.voters().next().is_some() && count >= membership.majority()
}

impl Checker {
    /// A checker with no history; `goose_forbidden_after_ns` is the
    /// deliberately broken check of the replay test (None in real runs).
    pub fn new(goose_forbidden_after_ns: Option<u64>) -> Checker {
        Checker {
            nodes: Vec::new(),
            leaders_by_term: HashMap::new(),
            entries_seen: HashMap::new(),
            committed: vec![None],
            promises: Vec::new(),
            jobs: Vec::new(),
            last_delivery: Box::new([[0; SLOTS_MAX]; SLOTS_MAX]),
            goose_forbidden_after_ns,
        }
    }

    fn node(&mut self, slot: usize) -> &mut NodeCheck {
        assert!(slot < SLOTS_MAX, "at most {SLOTS_MAX} process slots");
        if self.nodes.len() <= slot {
            self.nodes.resize_with(slot + 1, NodeCheck::default);
        }
        &mut self.nodes[slot]
    }

    /// Names slot `slot` in messages.
    fn who(&self, slot: usize) -> Who {
        self.nodes.get(slot).map_or(
            Who {
                id: 0,
                impostor: false,
            },
            |check| Who {
                id: check.id,
                impostor: check.impostor,
            },
        )
    }

    /// Makes slot `slot` known as a process under `id` (an impostor if
    /// `impostor`), before anything else is checked of it.
    pub fn register(&mut self, slot: usize, id: NodeId, impostor: bool) {
        let check = self.node(slot);
        check.id = id.0;
        check.impostor = impostor;
    }

    /// The highest index known to be committed.
    pub fn committed_index(&self) -> LogIndex {
        LogIndex(self.committed.len() as u64 - 1)
    }

    /// Records that slot `to` processed a message from slot `from` at true `now_ns` (g).
    pub fn on_delivery(&mut self, from: usize, to: usize, now_ns: u64) {
        self.last_delivery[from][to] = now_ns.max(1);
    }

    /// Forgets what slot `slot` held: its data directory was wiped, so the
    /// next process in it is another member (design.md §2).
    pub fn on_wipe(&mut self, slot: usize) {
        let check = self.node(slot);
        *check = NodeCheck {
            id: check.id,
            impostor: check.impostor,
            ..NodeCheck::default()
        };
    }

    /// Checks a node that has just been (re)started from `durable`.
    pub fn on_start(
        &mut self,
        slot: usize,
        node: &Node,
        durable: &PersistedState,
    ) -> Result<(), Violation> {
        let id = self.who(slot);
        let state = node.hard_state();
        if state != durable.hard_state || node.last_index() != durable.last_index() {
            return violation(
                "restart",
                format!(
                    "{id} started with {state:?} last {} but its disk holds {:?} last {}",
                    node.last_index(),
                    durable.hard_state,
                    durable.last_index()
                ),
            );
        }
        let check = self.node(slot);
        if state.term < check.max_term {
            return violation(
                "(f) term",
                format!(
                    "{id} restarted in term {} after reaching term {}",
                    state.term, check.max_term
                ),
            );
        }
        check.commit_checked = node.commit_index();
        check.leader_term = None;
        check.promise_local = None;
        check.previous_membership = previous_membership(node.snapshot(), node.entries());
        Ok(())
    }

    /// Checks a node right after a step whose `persist` has been applied to
    /// `durable` (`last_index_before` and `commit_before` are from before the step).
    pub fn after_step(
        &mut self,
        slot: usize,
        node: &Node,
        durable: &PersistedState,
        persist: &Persist,
        last_index_before: LogIndex,
        commit_before: LogIndex,
    ) -> Result<(), Violation> {
        self.check_durable(slot, node, durable, persist)?;
        self.check_term(slot, node)?;
        if !persist.entries.is_empty()
            || persist.snapshot.is_some()
            || persist.truncate_from.is_some()
        {
            self.check_log_change(
                slot,
                node,
                durable,
                persist,
                last_index_before,
                commit_before,
            )?;
            self.node(slot).previous_membership =
                previous_membership(node.snapshot(), node.entries());
        }
        self.check_commit(slot, node)?;
        self.check_leader(slot, node)
    }

    /// Persist before send: after the persist is applied, the disk holds
    /// exactly what the node holds.
    fn check_durable(
        &self,
        slot: usize,
        node: &Node,
        durable: &PersistedState,
        persist: &Persist,
    ) -> Result<(), Violation> {
        let id = self.who(slot);
        if node.hard_state() != durable.hard_state {
            return violation(
                "persist before send",
                format!(
                    "{id} holds {:?} but its disk holds {:?}",
                    node.hard_state(),
                    durable.hard_state
                ),
            );
        }
        let log_changed = !persist.entries.is_empty()
            || persist.snapshot.is_some()
            || persist.truncate_from.is_some();
        let same_log = if log_changed {
            node.snapshot() == &durable.snapshot && node.entries() == durable.entries.as_slice()
        } else {
            node.last_index() == durable.last_index()
                && node.snapshot().index == durable.snapshot.index
        };
        if !same_log {
            return violation(
                "persist before send",
                format!(
                    "{id}'s log (snapshot {}, last {}) differs from its disk (snapshot {}, last {})",
                    node.snapshot().index, node.last_index(), durable.snapshot.index, durable.last_index()
                ),
            );
        }
        Ok(())
    }

    /// (f): a node's term never decreases, across restarts too.
    fn check_term(&mut self, slot: usize, node: &Node) -> Result<(), Violation> {
        let id = self.who(slot);
        let term = node.hard_state().term;
        let check = self.node(slot);
        if term < check.max_term {
            return violation(
                "(f) term",
                format!("{id} went from term {} back to {term}", check.max_term),
            );
        }
        check.max_term = term;
        Ok(())
    }

    /// (d) and (e) for a step that changed the log.
    fn check_log_change(
        &mut self,
        slot: usize,
        node: &Node,
        durable: &PersistedState,
        persist: &Persist,
        last_index_before: LogIndex,
        commit_before: LogIndex,
    ) -> Result<(), Violation> {
        let id = self.who(slot);
        // (e) A truncation must not remove an entry the node knew committed.
        if let Some(from) = persist.truncate_from {
            let snapshot_end = persist
                .snapshot
                .as_ref()
                .map_or(LogIndex(0), |s| s.index.next());
            let first_removed = from.max(snapshot_end);
            if first_removed <= commit_before && first_removed <= last_index_before {
                return violation(
                    "(e) committed",
                    format!("{id} truncated its log from {first_removed} below its commit index {commit_before}"),
                );
            }
        }
        if let Some(snapshot) = &persist.snapshot {
            if snapshot.index > node.commit_index() {
                return violation(
                    "(e) committed",
                    format!(
                        "{id} holds a snapshot at {} beyond its commit index {}",
                        snapshot.index,
                        node.commit_index()
                    ),
                );
            }
            let observer_term = node.hard_state().term;
            self.record_committed(id, observer_term, snapshot.index, snapshot.term, None)?;
        }
        // (d) Log matching, by induction on the index: every (index, term)
        // always comes with the same payload and the same previous term.
        for entry in &persist.entries {
            let Some(previous_term) =
                term_at(&durable.snapshot, &durable.entries, entry.index.prev())
            else {
                return violation(
                    "(d) log matching",
                    format!(
                        "{id} appended entry {} with no entry before it",
                        entry.index
                    ),
                );
            };
            let key = (entry.index, entry.term);
            match self.entries_seen.get(&key) {
                Some((seen_previous, seen_payload)) => {
                    if *seen_previous != previous_term || *seen_payload != entry.payload {
                        return violation(
                            "(d) log matching",
                            format!(
                                "{id} holds entry {}/{} after term {previous_term} with {:?}; another log has it after term {seen_previous} with {seen_payload:?}",
                                entry.index, entry.term, entry.payload
                            ),
                        );
                    }
                }
                None => {
                    self.entries_seen
                        .insert(key, (previous_term, entry.payload.clone()));
                }
            }
        }
        Ok(())
    }

    /// Records that the entry at `index` is committed with `term` and `payload`,
    /// or checks it against what was recorded before (e).
    fn record_committed(
        &mut self,
        id: Who,
        observer_term: Term,
        index: LogIndex,
        term: Term,
        payload: Option<&EntryPayload>,
    ) -> Result<(), Violation> {
        if index == LogIndex(0) {
            return Ok(());
        }
        let position = index.0 as usize;
        if self.committed.len() <= position {
            self.committed.resize(position + 1, None);
        }
        match &mut self.committed[position] {
            slot @ None => *slot = Some((term, payload.cloned(), observer_term)),
            Some((recorded_term, recorded_payload, _)) => {
                if *recorded_term != term {
                    return violation(
                        "(e) committed",
                        format!("{id} has committed {index} in term {term}; it was committed in term {recorded_term}"),
                    );
                }
                match (recorded_payload.as_ref(), payload) {
                    (Some(recorded), Some(seen)) if recorded != seen => {
                        return violation(
                            "(e) committed",
                            format!("{id} has committed {index} with {seen:?}; it was committed with {recorded:?}"),
                        );
                    }
                    (None, Some(seen)) => *recorded_payload = Some(seen.clone()),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// (e): everything up to the node's commit index matches the committed record.
    fn check_commit(&mut self, slot: usize, node: &Node) -> Result<(), Violation> {
        let id = self.who(slot);
        let commit = node.commit_index();
        if commit > node.last_index() {
            return violation(
                "(e) committed",
                format!(
                    "{id} commit index {commit} is beyond its last index {}",
                    node.last_index()
                ),
            );
        }
        let checked = self.node(slot).commit_checked;
        if commit < checked {
            return violation(
                "(e) committed",
                format!("{id} commit index went back from {checked} to {commit} without a restart"),
            );
        }
        let mut index = checked.next().max(node.snapshot().index);
        while index <= commit {
            if let Some(term) = term_at(node.snapshot(), node.entries(), index) {
                let payload =
                    entry_at(node.snapshot(), node.entries(), index).map(|entry| &entry.payload);
                self.record_committed(id, node.hard_state().term, index, term, payload)?;
            }
            index = index.next();
        }
        self.node(slot).commit_checked = commit;
        Ok(())
    }

    /// (c) one leader per term, and leader completeness: a new leader holds
    /// every committed entry (e).
    fn check_leader(&mut self, slot: usize, node: &Node) -> Result<(), Violation> {
        if node.raft_role() != RaftRole::Leader {
            return Ok(());
        }
        let id = self.who(slot);
        let term = node.hard_state().term;
        if self.node(slot).leader_term == Some(term) {
            return Ok(());
        }
        self.node(slot).leader_term = Some(term);
        if let Some(other) = self.leaders_by_term.insert(term, slot) {
            if other != slot {
                return violation(
                    "(c) one leader per term",
                    format!("{id} and {} both led term {term}", self.who(other)),
                );
            }
        }
        for (position, slot) in self.committed.iter().enumerate().skip(1) {
            // Leader completeness (Raft §5.4): an entry committed in term U is
            // held by every leader of a term above U. A leader of an older
            // term may still win a late election; it is deposed, not complete.
            let Some((committed_term, _, known_in_term)) = slot else {
                continue;
            };
            if *known_in_term >= term {
                continue;
            }
            let index = LogIndex(position as u64);
            if index > node.last_index() {
                return violation(
                    "(e) committed",
                    format!("{id} became leader of term {term} with last index {} but {index} is committed", node.last_index()),
                );
            }
            if let Some(held_term) = term_at(node.snapshot(), node.entries(), index) {
                if held_term != *committed_term {
                    return violation(
                        "(e) committed",
                        format!("{id} became leader of term {term} holding {index}/{held_term}, but {index}/{committed_term} is committed"),
                    );
                }
            }
        }
        Ok(())
    }

    /// Checks a message as it leaves `node`, whose disk holds `durable`
    /// (persist before send, and the handoff rule for `TimeoutNow`).
    pub fn on_send(
        &mut self,
        slot: usize,
        node: &Node,
        durable: &PersistedState,
        message: &Message,
        (local_now, now_ns): (Timestamp, u64),
    ) -> Result<(), Violation> {
        let node_id = node.id();
        let id = self.who(slot);
        let disk = durable.hard_state;
        if message.from != node_id || message.to == node_id {
            return violation(
                "message",
                format!(
                    "{id} sent a message from {} to {}",
                    message.from, message.to
                ),
            );
        }
        let term_ok = match message.body {
            // A pre-vote asks in the term the sender would campaign in, and
            // its answer may echo that term: neither is persisted.
            MessageBody::PreVote(_) => message.term <= disk.term.next(),
            MessageBody::PreVoteReply(_) => true,
            _ => message.term == disk.term,
        };
        if !term_ok {
            return violation(
                "persist before send",
                format!(
                    "{id} sent {:?} in term {} while its disk holds term {}",
                    message.body, message.term, disk.term
                ),
            );
        }
        match message.body {
            MessageBody::RequestVoteReply(goose_common::VoteReply { granted: true })
                if disk.vote != Some(message.to) =>
            {
                violation(
                    "persist before send",
                    format!(
                        "{id} granted its vote to {} before its disk recorded it ({:?})",
                        message.to, disk.vote
                    ),
                )
            }
            MessageBody::RequestVote(_) if disk.vote != Some(node_id) => violation(
                "persist before send",
                format!(
                    "{id} asked for votes before its disk recorded its own vote ({:?})",
                    disk.vote
                ),
            ),
            MessageBody::TimeoutNow => {
                let check = self.node(slot);
                if let Some((term, until)) = check.promise_local {
                    if term == message.term && local_now < until {
                        return violation(
                            "handoff",
                            format!("{id} sent TimeoutNow at {} (its clock) before its promise until {} ran out", local_now.0, until.0),
                        );
                    }
                }
                check.timeout_now_term = Some(message.term);
                let running = self.jobs.iter().find(|job| {
                    (job.slot, job.term) == (slot, message.term) && job.until_true_ns > now_ns
                });
                if let Some(job) = running {
                    return violation(
                        "handoff",
                        format!(
                            "{id} sent TimeoutNow while its runner's job (term {}) may run until {} ns",
                            job.term, job.until_true_ns
                        ),
                    );
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Records that `node`, in slot `slot`, reported `Event::Removed`.
    pub fn on_removed(&mut self, slot: usize, node: &Node) -> Result<(), Violation> {
        let id = self.who(slot);
        self.node(slot).removed = true;
        if !node.is_removed() {
            return violation(
                "removed",
                format!("{id} reported Removed but is_removed() is false"),
            );
        }
        Ok(())
    }

    /// Checks one answer of `node` to "am I the goose?" asked at `asked`,
    /// and records its promise.
    pub fn on_answer(
        &mut self,
        slot: usize,
        node: &Node,
        asked: &Asked<'_>,
        answer: &GooseAnswer,
    ) -> Result<(), Violation> {
        let Asked {
            config,
            clock,
            lease_window_ns,
            local_now,
            now_ns,
        } = *asked;
        let node_id = node.id();
        let id = self.who(slot);
        let term = node.hard_state().term;
        if answer.decided_at != local_now || answer.term != term {
            return violation(
                "answer",
                format!(
                    "{id} answered at {:?} in term {} when asked at {local_now:?} in term {term}",
                    answer.decided_at, answer.term
                ),
            );
        }
        let observer = !node.committed_membership().is_voter(node_id) && !node.is_voter();
        if observer {
            self.check_observer_answer(slot, answer)?;
        }
        if !answer.is_goose() {
            if answer.lease_until.is_some() {
                return violation("answer", format!("{id} answered duck with a promise"));
            }
            return Ok(());
        }
        if observer {
            return violation(
                "(m) observers",
                format!("{id} answered goose in term {term} as an observer"),
            );
        }
        let Some(lease_until) = answer.lease_until else {
            return violation("answer", format!("{id} answered goose without a promise"));
        };
        let promise_max = config.promise_max;
        if lease_until <= local_now || lease_until > local_now.add(promise_max) {
            return violation(
                "answer",
                format!(
                    "{id} promised until {} at {} (promise_max {promise_max:?})",
                    lease_until.0, local_now.0
                ),
            );
        }
        if node.raft_role() != RaftRole::Leader
            || node.leader() != Some(node_id)
            || node.is_removed()
        {
            return violation(
                "answer",
                format!(
                    "{id} answered goose as {} (leader {:?}, removed {})",
                    role_name(node.raft_role()),
                    node.leader(),
                    node.is_removed()
                ),
            );
        }
        let check = self.node(slot);
        if check.removed {
            return violation(
                "removed",
                format!("{id} answered goose after it reported Removed"),
            );
        }
        if check.timeout_now_term == Some(term) {
            return violation(
                "handoff",
                format!("{id} answered goose in term {term} after sending TimeoutNow in it"),
            );
        }
        check.promise_local = Some((term, lease_until));
        self.check_promises(slot, term, now_ns, clock.true_at(lease_until))?;
        self.check_majority_contact(slot, node, lease_window_ns, now_ns)?;
        if let Some(after_ns) = self.goose_forbidden_after_ns {
            if now_ns > after_ns {
                return violation(
                    "broken test checker",
                    format!("{id} answered goose in term {term} after {after_ns} ns"),
                );
            }
        }
        Ok(())
    }

    /// (m): the goose an observer names held that term: the leader of
    /// `answer.term` it reports is the process seen leading that term.
    fn check_observer_answer(&self, slot: usize, answer: &GooseAnswer) -> Result<(), Violation> {
        let Some(leader) = answer.leader else {
            return Ok(());
        };
        let held = self
            .leaders_by_term
            .get(&answer.term)
            .map(|&leader_slot| self.who(leader_slot));
        if held.is_some_and(|who| who.id == leader.0) {
            return Ok(());
        }
        violation(
            "(m) observers",
            format!(
                "{} (an observer) names {leader} the leader of term {}, which {}",
                self.who(slot),
                answer.term,
                held.map_or("nobody led".to_string(), |who| format!("{who} led")),
            ),
        )
    }

    /// (j): slot `slot`'s runner was told at true `now_ns` that its job of
    /// `term` may run until true `until_true_ns`: a goose answer to the
    /// lease end (`start`: a job starts if none runs), or the lease end
    /// held while the node releases a handoff (only a running job goes on).
    /// No job or promise of another (process, term) may be running.
    pub fn on_job(
        &mut self,
        slot: usize,
        term: Term,
        now_ns: u64,
        until_true_ns: u64,
        start: bool,
    ) -> Result<bool, Violation> {
        self.jobs.retain(|job| job.until_true_ns > now_ns);
        self.promises
            .retain(|promise| promise.until_true_ns > now_ns);
        let own = self
            .jobs
            .iter()
            .position(|job| (job.slot, job.term) == (slot, term));
        if own.is_none() && !start {
            return Ok(false);
        }
        let other_job = self
            .jobs
            .iter()
            .find(|job| (job.slot, job.term) != (slot, term))
            .map(|job| (job.slot, job.term, job.until_true_ns));
        let other_promise = self
            .promises
            .iter()
            .find(|p| (p.slot, p.term) != (slot, term))
            .map(|p| (p.slot, p.term, p.until_true_ns));
        if let Some((other, other_term, until)) = other_job.or(other_promise) {
            return violation(
                "(j) job",
                format!(
                    "{}'s job of term {term} runs at {now_ns} ns while {} (term {other_term}) may act as goose until {until} ns",
                    self.who(slot),
                    self.who(other)
                ),
            );
        }
        match own {
            Some(position) => {
                let job = &mut self.jobs[position];
                job.until_true_ns = job.until_true_ns.max(until_true_ns);
                Ok(false)
            }
            None => {
                self.jobs.push(Job {
                    slot,
                    term,
                    until_true_ns,
                });
                Ok(true)
            }
        }
    }

    /// (j): slot `slot`'s runner confirmed at true `now_ns` that its job of
    /// `term` has stopped.
    pub fn on_job_stopped(&mut self, slot: usize, term: Term, now_ns: u64) {
        for job in &mut self.jobs {
            if (job.slot, job.term) == (slot, term) {
                job.until_true_ns = job.until_true_ns.min(now_ns);
            }
        }
    }

    /// (b): no goose answer while a promise of another (process, term)
    /// runs, nor while another's job may run (j).
    fn check_promises(
        &mut self,
        slot: usize,
        term: Term,
        now_ns: u64,
        until_true_ns: u64,
    ) -> Result<(), Violation> {
        self.promises
            .retain(|promise| promise.until_true_ns > now_ns);
        self.jobs.retain(|job| job.until_true_ns > now_ns);
        if let Some(job) = self
            .jobs
            .iter()
            .find(|job| (job.slot, job.term) != (slot, term))
        {
            return violation(
                "(j) job",
                format!(
                    "{} answered goose in term {term} at {now_ns} ns while {}'s job (term {}) may run until {} ns",
                    self.who(slot),
                    self.who(job.slot),
                    job.term,
                    job.until_true_ns
                ),
            );
        }
        if let Some(other) = self
            .promises
            .iter()
            .find(|p| (p.slot, p.term) != (slot, term))
        {
            return violation(
                "(b) promise",
                format!(
                    "{} answered goose in term {term} at {now_ns} ns while {} promised (term {}) that no other node would until {} ns",
                    self.who(slot), self.who(other.slot), other.term, other.until_true_ns
                ),
            );
        }
        match self
            .promises
            .iter_mut()
            .find(|p| (p.slot, p.term) == (slot, term))
        {
            Some(promise) => promise.until_true_ns = promise.until_true_ns.max(until_true_ns),
            None => self.promises.push(Promise {
                slot,
                term,
                until_true_ns,
            }),
        }
        Ok(())
    }

    /// (g): a goose at true `now_ns` sent a heartbeat round at local `s` with
    /// `now < s + lease_duration` that a majority acknowledged. That round
    /// left after true `now_ns - W`, where `W` bounds the true length of
    /// `lease_duration` on this clock, so every acknowledging voter processed
    /// a message from the goose, and the goose one from it, after that instant.
    /// The majority is counted in the latest or the previous membership
    /// (any majorities of the two overlap under single-server changes).
    /// A voter's acknowledgement may come from any process under its id
    /// (the goose cannot tell them apart), but both directions of the
    /// exchange from the same one.
    fn check_majority_contact(
        &self,
        slot: usize,
        node: &Node,
        lease_window_ns: u64,
        now_ns: u64,
    ) -> Result<(), Violation> {
        let id = node.id();
        let since_ns = now_ns.saturating_sub(lease_window_ns).max(1);
        let contacted = |voter: NodeId| {
            self.nodes.iter().enumerate().any(|(other, check)| {
                other != slot
                    && check.id == voter.0
                    && self.last_delivery[slot][other] >= since_ns
                    && self.last_delivery[other][slot] >= since_ns
            })
        };
        if is_majority(node.membership(), id, contacted) {
            return Ok(());
        }
        let previous = self.nodes[slot].previous_membership.as_ref();
        if previous.is_some_and(|membership| is_majority(membership, id, contacted)) {
            return Ok(());
        }
        let voters: Vec<u64> = node.membership().voters().map(|v| v.0).collect();
        violation(
            "(g) majority contact",
            format!(
                "{} answered goose at {now_ns} ns but had no two-way exchange with a majority of voters {voters:?} since {since_ns} ns",
                self.who(slot)
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use goose_common::Member;

    /// Checks (j): a job runs until its runner confirmed it stopped or its
    /// hold ended; another (node, term) may start a job or answer goose only
    /// after that. A hold without a job starts nothing.
    #[test]
    fn jobs_exclude_other_jobs_and_answers_until_stopped_or_expired() {
        let mut checker = Checker::new(None);
        assert!(!checker.on_job(0, Term(3), 0, 100, false).unwrap());
        assert!(checker.on_job(0, Term(3), 0, 100, true).unwrap());
        assert!(!checker.on_job(0, Term(3), 50, 150, false).unwrap());
        let other = checker.on_job(1, Term(4), 149, 300, true).unwrap_err();
        assert_eq!(other.checker, "(j) job");
        let answer = checker.check_promises(1, Term(4), 149, 160).unwrap_err();
        assert_eq!(answer.checker, "(j) job");
        // Confirmed stopped: another may go on at once.
        checker.on_job_stopped(0, Term(3), 120);
        assert!(checker.on_job(1, Term(4), 120, 300, true).unwrap());
        // A promise of another node keeps a job from starting.
        let mut checker = Checker::new(None);
        checker.check_promises(0, Term(3), 0, 10).unwrap();
        let job = checker.on_job(1, Term(4), 5, 300, true).unwrap_err();
        assert_eq!(job.checker, "(j) job");
        assert!(checker.on_job(1, Term(4), 10, 300, true).unwrap());
    }

    /// Checks (b): an answer of another node, or of the same node in another
    /// term, before a running promise ends is a violation; at its end it is not.
    #[test]
    fn promises_exclude_other_nodes_and_terms_until_they_end() {
        let mut checker = Checker::new(None);
        checker.register(0, NodeId(1), false);
        checker.register(1, NodeId(2), false);
        checker.register(2, NodeId(1), true);
        checker.check_promises(0, Term(3), 0, 100).unwrap();
        checker.check_promises(0, Term(3), 50, 150).unwrap();
        let other = checker.check_promises(1, Term(4), 120, 200).unwrap_err();
        assert_eq!(other.checker, "(b) promise");
        let same_node = checker.check_promises(0, Term(5), 149, 200).unwrap_err();
        assert_eq!(same_node.checker, "(b) promise");
        // An impostor under the promiser's id, even in the same term.
        let impostor = checker.check_promises(2, Term(3), 149, 200).unwrap_err();
        assert_eq!(impostor.checker, "(b) promise");
        assert!(impostor.message.contains("n1 (impostor)"), "{impostor}");
        checker.check_promises(1, Term(4), 150, 200).unwrap();
    }

    /// Checks the majority count of (g): the goose counts itself only if it
    /// is a voter, learners never count, and an empty membership has none.
    #[test]
    fn majority_counts_voters_only() {
        let addr = |port| std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let mut membership = Membership::with_voters([
            (NodeId(1), addr(1)),
            (NodeId(2), addr(2)),
            (NodeId(3), addr(3)),
        ]);
        assert!(is_majority(&membership, NodeId(1), |id| id == NodeId(2)));
        assert!(!is_majority(&membership, NodeId(1), |_| false));
        assert!(!is_majority(&membership, NodeId(4), |id| id == NodeId(2)));
        membership.members.push(Member {
            id: NodeId(4),
            addr: addr(4),
            role: goose_common::MemberRole::Learner,
            identity: goose_common::Identity::UNKNOWN,
        });
        assert!(!is_majority(&membership, NodeId(1), |id| id == NodeId(4)));
        assert!(!is_majority(&Membership::default(), NodeId(1), |_| true));
    }

    /// Checks (d) and the previous-configuration lookup of (g) on a small log.
    #[test]
    fn logs_are_read_across_the_snapshot() {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 1));
        let first = Membership::with_voters([(NodeId(1), addr)]);
        let snapshot = Snapshot {
            index: LogIndex(4),
            term: Term(2),
            membership: first.clone(),
        };
        let second = Membership::default();
        let entries = vec![
            Entry {
                index: LogIndex(5),
                term: Term(3),
                payload: EntryPayload::NoOp,
            },
            Entry {
                index: LogIndex(6),
                term: Term(3),
                payload: EntryPayload::Membership(second),
            },
        ];
        assert_eq!(term_at(&snapshot, &entries, LogIndex(4)), Some(Term(2)));
        assert_eq!(term_at(&snapshot, &entries, LogIndex(6)), Some(Term(3)));
        assert_eq!(term_at(&snapshot, &entries, LogIndex(3)), None);
        assert_eq!(term_at(&snapshot, &entries, LogIndex(7)), None);
        assert_eq!(previous_membership(&snapshot, &entries), Some(first));
        assert_eq!(previous_membership(&snapshot, &entries[..1]), None);
    }
}
