//! Bounded postcard encoding of messages.
//!
//! Encoding refuses anything larger than [`MESSAGE_BYTES_MAX`]; decoding
//! accepts arbitrary bytes and returns an error, never panics, for anything
//! that is not exactly one well-formed value.

use crate::limits::MESSAGE_BYTES_MAX;
use serde::{de::DeserializeOwned, Serialize};

/// Why a value could not be encoded or decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// The encoded value would exceed the limit.
    #[error("encoded message is {size} bytes, over the limit of {limit}")]
    TooLarge {
        /// The size it would have.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The bytes are not a valid encoding.
    #[error("undecodable payload: {0}")]
    Malformed(String),
    /// A valid value was followed by extra bytes.
    #[error("{0} trailing bytes after the payload")]
    TrailingBytes(usize),
}

/// The size of `value`'s postcard encoding, in bytes.
pub fn encoded_len<T: Serialize>(value: &T) -> usize {
    postcard::serialize_with_flavor(value, postcard::ser_flavors::Size::default())
        .unwrap_or(usize::MAX)
}

/// Encodes `value`, refusing encodings longer than `limit` bytes.
pub fn encode_limited<T: Serialize>(value: &T, limit: usize) -> Result<Vec<u8>, WireError> {
    let size = encoded_len(value);
    if size > limit {
        return Err(WireError::TooLarge { size, limit });
    }
    postcard::to_allocvec(value).map_err(|error| WireError::Malformed(error.to_string()))
}

/// Encodes a message payload within [`MESSAGE_BYTES_MAX`].
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, WireError> {
    encode_limited(value, MESSAGE_BYTES_MAX)
}

/// Decodes exactly one value from `bytes`, which must hold nothing else.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    if bytes.len() > MESSAGE_BYTES_MAX {
        return Err(WireError::TooLarge {
            size: bytes.len(),
            limit: MESSAGE_BYTES_MAX,
        });
    }
    let (value, rest) = postcard::take_from_bytes::<T>(bytes)
        .map_err(|error| WireError::Malformed(error.to_string()))?;
    if !rest.is_empty() {
        return Err(WireError::TrailingBytes(rest.len()));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{LogIndex, NodeId, Round, Term};
    use crate::messages::{
        Append, AppendReply, Entry, EntryPayload, InstallSnapshot, Membership, Message,
        MessageBody, PreVote, RequestVote, Snapshot, VoteReply,
    };
    use proptest::prelude::*;

    fn sample_messages() -> Vec<Message> {
        let membership = Membership::with_voters((1..=5).map(|i| {
            (
                NodeId(i),
                format!("127.0.0.1:{}", 7700 + i).parse().unwrap(),
            )
        }));
        let bodies = vec![
            MessageBody::PreVote(PreVote {
                last_log_index: LogIndex(3),
                last_log_term: Term(2),
            }),
            MessageBody::PreVoteReply(VoteReply { granted: true }),
            MessageBody::RequestVote(RequestVote {
                last_log_index: LogIndex(3),
                last_log_term: Term(2),
                handoff: true,
            }),
            MessageBody::RequestVoteReply(VoteReply { granted: false }),
            MessageBody::Append(Append {
                round: Round(9),
                prev_index: LogIndex(1),
                prev_term: Term(1),
                entries: vec![
                    Entry {
                        index: LogIndex(2),
                        term: Term(2),
                        payload: EntryPayload::NoOp,
                    },
                    Entry {
                        index: LogIndex(3),
                        term: Term(2),
                        payload: EntryPayload::Membership(membership.clone()),
                    },
                ],
                commit: LogIndex(2),
                lease_guard: std::time::Duration::from_millis(300),
            }),
            MessageBody::AppendReply(AppendReply {
                round: Round(9),
                success: true,
                match_index: LogIndex(3),
                candidacy: crate::Candidacy {
                    eligible: true,
                    priority: 200,
                    preempting: true,
                },
            }),
            MessageBody::InstallSnapshot(InstallSnapshot {
                round: Round(3),
                snapshot: Snapshot {
                    index: LogIndex(7),
                    term: Term(3),
                    membership,
                },
                lease_guard: std::time::Duration::from_millis(50),
            }),
            MessageBody::TimeoutNow,
        ];
        bodies
            .into_iter()
            .map(|body| Message {
                from: NodeId(1),
                from_identity: crate::Identity(0x1d),
                to: NodeId(2),
                to_identity: crate::Identity::UNKNOWN,
                term: Term(4),
                body,
            })
            .collect()
    }

    #[test]
    fn every_message_kind_round_trips() {
        for message in sample_messages() {
            let bytes = encode(&message).unwrap();
            assert_eq!(bytes.len(), encoded_len(&message));
            assert_eq!(decode::<Message>(&bytes).unwrap(), message);
        }
    }

    /// Checks that the wire bytes of every message kind stay what they are
    /// (nodes of two builds talk to each other during a rolling upgrade):
    /// the hex of each sample message's encoding, pinned.
    #[test]
    fn the_encoding_of_every_message_kind_is_pinned() {
        let hex: Vec<String> = sample_messages()
            .iter()
            .map(|message| {
                let bytes = encode(message).unwrap();
                bytes.iter().map(|byte| format!("{byte:02x}")).collect()
            })
            .collect();
        assert_eq!(hex, PINNED_ENCODINGS);
    }

    /// The encodings of `sample_messages()`, in order (format 2).
    const PINNED_ENCODINGS: [&str; 8] = [
        "011d020004000302",
        "011d0200040101",
        "011d02000402030201",
        "011d0200040300",
        "011d02000404090101020202000302010501007f000001953c000002007f000001963c000003007f000001973c000004007f000001983c000005007f000001993c0000020080c6868f01",
        "011d0200040509010301c801",
        "011d020004060307030501007f000001953c000002007f000001963c000003007f000001973c000004007f000001983c000005007f000001993c00000080e1eb17",
        "011d02000407",
    ];

    #[test]
    fn encoding_refuses_oversize_values() {
        let big = vec![7u8; MESSAGE_BYTES_MAX + 1];
        assert!(matches!(encode(&big), Err(WireError::TooLarge { .. })));
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = encode(&sample_messages()[0]).unwrap();
        bytes.push(0);
        assert_eq!(decode::<Message>(&bytes), Err(WireError::TrailingBytes(1)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// Arbitrary bytes never panic the decoder.
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1300)) {
            let _ = decode::<Message>(&bytes);
        }

        /// Mutating a valid encoding yields an error or some valid message, never a panic.
        #[test]
        fn decoding_mutated_messages_never_panics(which in 0usize..8, position in any::<usize>(), value in any::<u8>()) {
            let mut bytes = encode(&sample_messages()[which]).unwrap();
            let position = position % bytes.len();
            bytes[position] = value;
            if let Ok(message) = decode::<Message>(&bytes) {
                prop_assert!(encoded_len(&message) <= MESSAGE_BYTES_MAX);
            }
        }
    }
}
