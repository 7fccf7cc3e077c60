//! What daemons say to each other in a datagram's payload: Raft messages,
//! status probes for `goosectl status`, operator requests forwarded to the
//! leader, and drill commands (`partition split` / `heal`).

use goose_common::control::{ErrorKind, NodeStatus, Request};
use goose_common::{Message, NodeId};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

/// One datagram's payload. The variant order is part of the wire format:
/// the first payload byte is the variant's index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerDatagram {
    /// A Raft message.
    Raft(Message),
    /// "Send me your own answer" (`goosectl status`).
    StatusProbe {
        /// Echoed in the reply.
        nonce: u64,
    },
    /// A member's own answer to a probe.
    StatusReply {
        /// The probe's nonce.
        nonce: u64,
        /// The member's status, decided when the probe arrived.
        status: NodeStatus,
    },
    /// An operator request forwarded to the leader.
    Forward {
        /// Echoed in the reply.
        nonce: u64,
        /// The request.
        request: ForwardedRequest,
    },
    /// The leader's answer to a forwarded request.
    ForwardReply {
        /// The request's nonce.
        nonce: u64,
        /// What happened.
        outcome: Outcome,
    },
    /// A drill command; exempt from partition rules so `heal` always gets through.
    Drill {
        /// Echoed in the reply.
        nonce: u64,
        /// What to do.
        action: DrillAction,
    },
    /// The answer to a drill command; exempt from partition rules too.
    DrillReply {
        /// The command's nonce.
        nonce: u64,
        /// What happened.
        outcome: Outcome,
    },
}

/// The first payload bytes of the drill variants.
const DRILL_TAGS: [u8; 2] = [5, 6];

/// Whether an encoded payload is a drill command or reply, which partition
/// rules never drop (the rules would otherwise cut off their own removal).
pub fn is_drill_payload(payload: &[u8]) -> bool {
    payload.first().is_some_and(|tag| DRILL_TAGS.contains(tag))
}

/// Operator requests that only the leader can carry out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ForwardedRequest {
    /// `goosectl member add`.
    MemberAdd {
        /// The new node's id.
        id: NodeId,
        /// Its UDP address.
        addr: SocketAddr,
    },
    /// `goosectl member remove`.
    MemberRemove {
        /// The member to remove.
        id: NodeId,
    },
    /// `goosectl step-down`.
    StepDown {
        /// The voter to hand to, if chosen.
        to: Option<NodeId>,
    },
    /// `goosectl member add --observer` (a variant of its own, last, so
    /// the encodings of the others stay as they were).
    ObserverAdd {
        /// The new node's id.
        id: NodeId,
        /// Its UDP address.
        addr: SocketAddr,
    },
    /// `goosectl member promote` (last, with `Demote`, for the same reason).
    Promote {
        /// The observer.
        id: NodeId,
    },
    /// `goosectl member demote`.
    Demote {
        /// The voter.
        id: NodeId,
    },
}

impl ForwardedRequest {
    /// The control request it came from.
    pub fn request(&self) -> Request {
        match *self {
            ForwardedRequest::MemberAdd { id, addr } => Request::MemberAdd {
                id,
                addr,
                observer: false,
            },
            ForwardedRequest::ObserverAdd { id, addr } => Request::MemberAdd {
                id,
                addr,
                observer: true,
            },
            ForwardedRequest::MemberRemove { id } => Request::MemberRemove { id },
            ForwardedRequest::StepDown { to } => Request::StepDown { to },
            ForwardedRequest::Promote { id } => Request::MemberPromote { id },
            ForwardedRequest::Demote { id } => Request::MemberDemote { id },
        }
    }

    /// How long the goosectl that asked waits for the answer: the reply
    /// timeout of its control request.
    pub fn reply_timeout(&self) -> Duration {
        self.request()
            .reply_timeout()
            .expect("every change request has a reply timeout")
    }
}

/// One change of each kind, for tests.
#[cfg(test)]
pub(crate) fn every_change() -> [ForwardedRequest; 6] {
    let addr: SocketAddr = "127.0.0.1:7700".parse().expect("an address");
    [
        ForwardedRequest::MemberAdd {
            id: NodeId(4),
            addr,
        },
        ForwardedRequest::MemberRemove { id: NodeId(4) },
        ForwardedRequest::StepDown { to: None },
        ForwardedRequest::ObserverAdd {
            id: NodeId(5),
            addr,
        },
        ForwardedRequest::Promote { id: NodeId(5) },
        ForwardedRequest::Demote { id: NodeId(3) },
    ]
}

/// Drill actions carried out on every member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DrillAction {
    /// Drop all traffic between the two sides.
    Split {
        /// One side.
        left: Vec<NodeId>,
        /// The other side.
        right: Vec<NodeId>,
    },
    /// Delete every partition rule.
    Heal,
}

/// The result of a forwarded request or drill command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Done, with a message for the operator.
    Done(String),
    /// Refused or failed.
    Failed {
        /// The kind of error, as in the control protocol.
        kind: ErrorKind,
        /// A message for the operator.
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use goose_common::wire;

    #[test]
    fn a_forwarded_change_waits_as_long_as_its_control_request() {
        for change in every_change() {
            assert_eq!(
                Some(change.reply_timeout()),
                change.request().reply_timeout()
            );
        }
    }

    #[test]
    fn drill_payloads_are_recognised_by_their_first_byte() {
        let drill = PeerDatagram::Drill {
            nonce: 1,
            action: DrillAction::Heal,
        };
        let reply = PeerDatagram::DrillReply {
            nonce: 1,
            outcome: Outcome::Done(String::new()),
        };
        let probe = PeerDatagram::StatusProbe { nonce: 1 };
        assert!(is_drill_payload(&wire::encode(&drill).unwrap()));
        assert!(is_drill_payload(&wire::encode(&reply).unwrap()));
        assert!(!is_drill_payload(&wire::encode(&probe).unwrap()));
        assert!(!is_drill_payload(&[]));
    }
}
