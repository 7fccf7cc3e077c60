//! A stand-in for the core's `Node` while it is being written on `main`:
//! the announced API with a node that never leads. Only here so that the
//! simulator compiles; it goes away when the core lands.
#![allow(missing_docs, dead_code)]

use goose_common::{Entry, HardState, LogIndex, Membership, NodeId, Snapshot, Timestamp};
use goosed::raft::{Config, ConfigError, GooseAnswer, Input, PersistedState, Ready, Role};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RaftRole {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

pub struct Node {
    config: Config,
    state: PersistedState,
}

impl Node {
    pub fn new(config: Config, state: PersistedState, _rng_seed: u64, _now: Timestamp) -> Result<Node, ConfigError> {
        config.validate()?;
        Ok(Node { config, state })
    }
    pub fn step(&mut self, now: Timestamp, _input: Input) -> Ready {
        Ready { next_deadline: now.add(self.config.heartbeat_interval), ..Ready::default() }
    }
    pub fn goose(&mut self, now: Timestamp) -> GooseAnswer {
        GooseAnswer { role: Role::Duck, term: self.state.hard_state.term, leader: None, decided_at: now, lease_until: None }
    }
    pub fn id(&self) -> NodeId {
        self.config.id
    }
    pub fn hard_state(&self) -> HardState {
        self.state.hard_state
    }
    pub fn raft_role(&self) -> RaftRole {
        RaftRole::Follower
    }
    pub fn leader(&self) -> Option<NodeId> {
        None
    }
    pub fn commit_index(&self) -> LogIndex {
        self.state.snapshot.index
    }
    pub fn last_index(&self) -> LogIndex {
        self.state.last_index()
    }
    pub fn snapshot(&self) -> &Snapshot {
        &self.state.snapshot
    }
    pub fn entries(&self) -> &[Entry] {
        &self.state.entries
    }
    pub fn membership(&self) -> &Membership {
        &self.state.snapshot.config
    }
    pub fn is_removed(&self) -> bool {
        false
    }
}
