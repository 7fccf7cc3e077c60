//! A bounded trace of what the simulator did: compact records kept in a
//! ring buffer, formatted only when a run fails (or all of them as they
//! happen with `GOOSE_SIM_TRACE=1`).

use goose_common::{LogIndex, Message, MessageBody, NodeId, Round, Term};
use goosed::raft::Event;
use std::collections::VecDeque;
use std::fmt;

/// How many records a failing run prints by default.
pub const TRACE_RECORDS_DEFAULT: usize = 400;

/// A message without its entries: enough to read a trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageSummary {
    /// The sender.
    pub from: NodeId,
    /// The sender's term.
    pub term: Term,
    /// What it said.
    pub body: BodySummary,
}

/// The body of a message without its entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodySummary {
    /// A pre-vote request.
    PreVote(LogIndex, Term),
    /// A pre-vote answer.
    PreVoteReply(bool),
    /// A vote request (the flag says it follows a handoff).
    RequestVote(LogIndex, Term, bool),
    /// A vote answer.
    RequestVoteReply(bool),
    /// An append: round, prev index, prev term, entry count, commit.
    Append(Round, LogIndex, Term, usize, LogIndex),
    /// An append answer: round, success, match index, and the follower's
    /// eligibility, priority and wish to preempt.
    AppendReply(Round, bool, LogIndex, goose_common::Candidacy),
    /// A snapshot: round, index, term.
    InstallSnapshot(Round, LogIndex, Term),
    /// A handoff's last step.
    TimeoutNow,
}

impl MessageSummary {
    /// Summarises `message`.
    pub fn of(message: &Message) -> MessageSummary {
        let body = match &message.body {
            MessageBody::PreVote(goose_common::PreVote {
                last_log_index,
                last_log_term,
            }) => BodySummary::PreVote(*last_log_index, *last_log_term),
            MessageBody::PreVoteReply(goose_common::VoteReply { granted }) => {
                BodySummary::PreVoteReply(*granted)
            }
            MessageBody::RequestVote(goose_common::RequestVote {
                last_log_index,
                last_log_term,
                handoff,
            }) => BodySummary::RequestVote(*last_log_index, *last_log_term, *handoff),
            MessageBody::RequestVoteReply(goose_common::VoteReply { granted }) => {
                BodySummary::RequestVoteReply(*granted)
            }
            MessageBody::Append(goose_common::Append {
                round,
                prev_index,
                prev_term,
                entries,
                commit,
                ..
            }) => BodySummary::Append(*round, *prev_index, *prev_term, entries.len(), *commit),
            MessageBody::AppendReply(goose_common::AppendReply {
                round,
                success,
                match_index,
                candidacy,
            }) => BodySummary::AppendReply(*round, *success, *match_index, *candidacy),
            MessageBody::InstallSnapshot(goose_common::InstallSnapshot {
                round, snapshot, ..
            }) => BodySummary::InstallSnapshot(*round, snapshot.index, snapshot.term),
            MessageBody::TimeoutNow => BodySummary::TimeoutNow,
        };
        MessageSummary {
            from: message.from,
            term: message.term,
            body,
        }
    }
}

impl fmt::Display for MessageSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (from, term) = (self.from, self.term);
        match self.body {
            BodySummary::PreVote(index, last_term) => {
                write!(f, "PreVote from {from} t{term} last {index}/{last_term}")
            }
            BodySummary::PreVoteReply(granted) => {
                write!(f, "PreVoteReply from {from} t{term} granted={granted}")
            }
            BodySummary::RequestVote(index, last_term, handoff) => write!(
                f,
                "RequestVote from {from} t{term} last {index}/{last_term} handoff={handoff}"
            ),
            BodySummary::RequestVoteReply(granted) => {
                write!(f, "VoteReply from {from} t{term} granted={granted}")
            }
            BodySummary::Append(round, prev_index, prev_term, count, commit) => write!(
                f,
                "Append from {from} t{term} round {round} prev {prev_index}/{prev_term} +{count} commit {commit}"
            ),
            BodySummary::AppendReply(round, success, index, candidacy) => {
                write!(
                    f,
                    "AppendReply from {from} t{term} round {round} ok={success} match {index}"
                )?;
                let goose_common::Candidacy {
                    eligible,
                    priority,
                    preempting,
                } = candidacy;
                if !eligible || priority != 100 {
                    write!(f, " eligible={eligible} priority {priority}")?;
                    if preempting {
                        write!(f, " preempting")?;
                    }
                }
                Ok(())
            }
            BodySummary::InstallSnapshot(round, index, snapshot_term) => write!(
                f,
                "InstallSnapshot from {from} t{term} round {round} at {index}/{snapshot_term}"
            ),
            BodySummary::TimeoutNow => write!(f, "TimeoutNow from {from} t{term}"),
        }
    }
}

/// What made a node step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputSummary {
    /// The node (re)started and looked at its clock.
    Start,
    /// A deadline passed.
    Tick,
    /// A message arrived.
    Receive(MessageSummary),
    /// A membership change was proposed.
    Propose(u64),
    /// A handoff was asked for.
    Handoff(u64),
    /// The daemon released a handoff: what acts on the role stopped, or not.
    Release {
        /// Whether everything confirmed it stopped.
        stopped: bool,
    },
    /// The daemon told the core what health and drain allow.
    Eligibility {
        /// Healthy and not drained.
        eligible: bool,
    },
}

/// A node's Raft state after a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeSummary {
    /// Follower, PreCandidate, Candidate or Leader.
    pub role: &'static str,
    /// The current term.
    pub term: Term,
    /// The vote in that term.
    pub vote: Option<NodeId>,
    /// The leader it knows of.
    pub leader: Option<NodeId>,
    /// The commit index.
    pub commit: LogIndex,
    /// The last log index.
    pub last: LogIndex,
}

/// One thing that happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceWhat {
    /// A node stepped.
    Step {
        /// The node.
        node: NodeId,
        /// Whether the process is an impostor under that id.
        impostor: bool,
        /// Why.
        input: InputSummary,
        /// Its state afterwards.
        after: NodeSummary,
        /// How many messages it sent.
        sent: usize,
        /// Whether the step persisted anything.
        persisted: bool,
    },
    /// A node emitted an event.
    Event(NodeId, Event),
    /// The set of nodes answering goose changed.
    Goose(Vec<(NodeId, Term)>),
    /// A fault or a scenario action (rare, so a string is fine).
    Action(String),
}

/// One trace record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceRecord {
    /// The number of the simulator event during which it happened.
    pub event_number: u64,
    /// The true time, in nanoseconds.
    pub time_ns: u64,
    /// What happened.
    pub what: TraceWhat,
}

fn format_vote(vote: Option<NodeId>) -> String {
    vote.map_or_else(|| "-".to_string(), |id| id.to_string())
}

impl fmt::Display for TraceRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.time_ns / 1_000_000_000;
        let nanos = self.time_ns % 1_000_000_000;
        write!(f, "#{:<8} {seconds:>3}.{nanos:09}s ", self.event_number)?;
        match &self.what {
            TraceWhat::Step {
                node,
                impostor,
                input,
                after,
                sent,
                persisted,
            } => {
                write!(f, "n{node} ")?;
                if *impostor {
                    write!(f, "(impostor) ")?;
                }
                match input {
                    InputSummary::Start => write!(f, "start")?,
                    InputSummary::Tick => write!(f, "tick")?,
                    InputSummary::Receive(message) => write!(f, "recv {message}")?,
                    InputSummary::Propose(id) => write!(f, "propose #{id}")?,
                    InputSummary::Handoff(id) => write!(f, "handoff #{id}")?,
                    InputSummary::Release { stopped: true } => write!(f, "release")?,
                    InputSummary::Release { stopped: false } => {
                        write!(f, "release (not confirmed)")?
                    }
                    InputSummary::Eligibility { eligible: true } => write!(f, "eligible")?,
                    InputSummary::Eligibility { eligible: false } => write!(f, "not eligible")?,
                }
                write!(
                    f,
                    " => {} t{} vote {} leader {} commit {} last {}",
                    after.role,
                    after.term,
                    format_vote(after.vote),
                    format_vote(after.leader),
                    after.commit,
                    after.last
                )?;
                if *sent > 0 {
                    write!(f, ", sent {sent}")?;
                }
                if *persisted {
                    write!(f, ", persisted")?;
                }
                Ok(())
            }
            TraceWhat::Event(node, event) => write!(f, "n{node} event {event:?}"),
            TraceWhat::Goose(geese) if geese.is_empty() => write!(f, "no goose"),
            TraceWhat::Goose(geese) => {
                let list: Vec<String> = geese
                    .iter()
                    .map(|(id, term)| format!("n{id} (term {term})"))
                    .collect();
                write!(f, "goose: {}", list.join(", "))
            }
            TraceWhat::Action(text) => write!(f, "** {text}"),
        }
    }
}

/// The most lines a transcript holds; a story longer than this is cut.
pub const TRANSCRIPT_LINES_MAX: usize = 100_000;

/// The last records of a run, optionally every record as it happens, and
/// optionally its transcript.
#[derive(Debug)]
pub struct Trace {
    records: VecDeque<TraceRecord>,
    capacity: usize,
    to_stderr: bool,
    transcript: Option<Transcript>,
}

/// The story of a run for a golden file: every action, event and goose
/// change, and every step that changed a node's Raft state or persisted
/// something. Steps that change nothing (heartbeats and their answers) are
/// left out, so a story reads as what happened.
#[derive(Debug, Default)]
struct Transcript {
    text: String,
    lines: usize,
    /// The state each node had after its last step.
    last_state: Vec<(NodeId, bool, NodeSummary)>,
}

impl Transcript {
    fn push(&mut self, record: &TraceRecord) {
        if let TraceWhat::Step {
            node,
            impostor,
            after,
            persisted,
            ..
        } = &record.what
        {
            let key = (*node, *impostor);
            let position = self
                .last_state
                .iter()
                .position(|(id, impostor, _)| (*id, *impostor) == key);
            let changed = match position {
                Some(position) => {
                    let changed = self.last_state[position].2 != *after;
                    self.last_state[position].2 = *after;
                    changed
                }
                None => {
                    self.last_state.push((key.0, key.1, *after));
                    true
                }
            };
            if !changed && !persisted {
                return;
            }
        }
        if self.lines == TRANSCRIPT_LINES_MAX {
            self.text.push_str("... (the transcript is cut here)\n");
        }
        self.lines += 1;
        if self.lines <= TRANSCRIPT_LINES_MAX {
            self.text.push_str(&record.to_string());
            self.text.push('\n');
        }
    }
}

impl Trace {
    /// A trace keeping the last `capacity` records; `to_stderr` also prints each.
    pub fn new(capacity: usize, to_stderr: bool) -> Trace {
        Trace {
            records: VecDeque::with_capacity(capacity.min(4096)),
            capacity,
            to_stderr,
            transcript: None,
        }
    }

    /// Starts keeping the run's transcript (see [`Trace::transcript`]).
    pub fn keep_transcript(&mut self) {
        self.transcript.get_or_insert_with(Transcript::default);
    }

    /// The transcript so far, if kept: one line per action, event, goose
    /// change and step that changed a node's state or persisted.
    pub fn transcript(&self) -> Option<&str> {
        self.transcript.as_ref().map(|t| t.text.as_str())
    }

    /// Adds a record, dropping the oldest one when full.
    pub fn push(&mut self, record: TraceRecord) {
        if self.to_stderr {
            eprintln!("{record}");
        }
        if let Some(transcript) = self.transcript.as_mut() {
            transcript.push(&record);
        }
        if self.capacity == 0 {
            return;
        }
        if self.records.len() == self.capacity {
            self.records.pop_front();
        }
        self.records.push_back(record);
    }

    /// The kept records, oldest first.
    pub fn records(&self) -> impl Iterator<Item = &TraceRecord> {
        self.records.iter()
    }

    /// The kept records as text, one line each.
    pub fn render(&self) -> String {
        let mut text = String::new();
        for record in &self.records {
            text.push_str(&record.to_string());
            text.push('\n');
        }
        text
    }
}
