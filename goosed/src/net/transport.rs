//! The UDP transport: seals and sends datagrams, receives and checks them.
//!
//! Receiving runs every datagram through the checks of design.md §4 in
//! order: size, version, cluster id and MAC ([`datagram::open`]), then the
//! replay window, then the In chain of the partition table. Whatever fails
//! is counted by [`DropReason`] and logged at most once a second per reason;
//! nothing a peer (or anyone) sends can make it panic or stop. Sending
//! applies the Out chain, seals the payload with the next counter of this
//! boot, and counts network errors instead of failing the caller: UDP is
//! lossy anyway and Raft retries.
//!
//! Sender ids are not bound to addresses: members may move, and the MAC
//! already authenticates the sender id.

use crate::net::rules::{PartitionTable, Verdict};
use crate::net::twins::{TwinDetector, Twins};
use crate::net::{DropReason, ReplayWindow};
use goose_common::datagram::{
    self, BootId, ClusterId, ClusterKey, Header, RandomnessError, SealError,
};
use goose_common::limits::DATAGRAM_BYTES_MAX;
use goose_common::partition::Direction;
use goose_common::NodeId;
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

/// The most often one reason's drops are logged; counts in between are summed.
pub const DROP_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// How long to pause after the socket fails to receive, so a persistent error
/// cannot turn the receive loop into a busy loop.
pub const RECEIVE_ERROR_PAUSE: Duration = Duration::from_millis(1);

/// Why a transport could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The UDP socket could not be bound.
    #[error("cannot bind UDP socket to {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the operating system said.
        source: io::Error,
    },
    /// No boot id could be drawn.
    #[error(transparent)]
    Randomness(#[from] RandomnessError),
}

/// Why a datagram could not be sent. Network errors are not here: they are
/// counted and reported as [`SendOutcome::NetworkError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The payload does not fit in one datagram (a bug in the caller, whose
    /// messages are bounded).
    #[error(transparent)]
    Seal(#[from] SealError),
    /// This boot has sent 2^64 datagrams; restarting draws a new boot id.
    #[error("this boot's datagram counter is exhausted; restart the daemon")]
    CounterExhausted,
}

/// What became of a datagram given to [`Transport::send`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum SendOutcome {
    /// Handed to the operating system.
    Sent,
    /// Dropped by a rule of the Out chain.
    DroppedByRule {
        /// The number of the rule that dropped it.
        rule_number: usize,
    },
    /// The operating system refused it (counted, logged at debug level).
    NetworkError,
}

/// A datagram that passed every check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// Its authenticated header.
    pub header: Header,
    /// The address it came from.
    pub from: SocketAddr,
    /// Its payload, for the caller to decode. A payload that does not decode
    /// should be counted with [`DropCounters::record`] as
    /// [`DropReason::Undecodable`].
    pub payload: Vec<u8>,
}

/// Per-reason counts of dropped datagrams, with a rate-limited log.
#[derive(Debug, Default)]
pub struct DropCounters {
    counts: [AtomicU64; DropReason::COUNT],
    log: Mutex<[DropLog; DropReason::COUNT]>,
}

/// The log state of one reason: when it was last logged, and how many drops
/// happened since.
#[derive(Clone, Copy, Debug, Default)]
struct DropLog {
    last_logged_at: Option<Instant>,
    unlogged: u64,
}

impl DropCounters {
    /// All counts zero.
    pub fn new() -> DropCounters {
        DropCounters::default()
    }

    /// Counts one datagram from `from` dropped for `reason`, and logs the
    /// drops of that reason if it has not done so for [`DROP_LOG_INTERVAL`].
    /// (Drops after the last log line show up in the next one, or in
    /// [`DropCounters::snapshot`].)
    pub fn record(&self, reason: DropReason, from: SocketAddr) {
        self.record_at(reason, from, Instant::now());
    }

    /// [`DropCounters::record`] at a given time.
    pub fn record_at(&self, reason: DropReason, from: SocketAddr, now: Instant) {
        self.counts[reason.index()].fetch_add(1, Ordering::Relaxed);
        let mut logs = lock(&self.log);
        let log = &mut logs[reason.index()];
        log.unlogged += 1;
        let due = log
            .last_logged_at
            .is_none_or(|last| now.saturating_duration_since(last) >= DROP_LOG_INTERVAL);
        if due {
            tracing::info!(
                reason = reason.name(),
                count = log.unlogged,
                latest_from = %from,
                "dropped datagrams"
            );
            log.last_logged_at = Some(now);
            log.unlogged = 0;
        }
    }

    /// How many datagrams were dropped for `reason`.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.counts[reason.index()].load(Ordering::Relaxed)
    }

    /// How many datagrams were dropped, all reasons together.
    pub fn total(&self) -> u64 {
        DropReason::ALL.iter().map(|&reason| self.get(reason)).sum()
    }

    /// Every reason's count, keyed by its stable name (zeros included, so
    /// JSON consumers see every key).
    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        DropReason::ALL
            .iter()
            .map(|&reason| (reason.name(), self.get(reason)))
            .collect()
    }
}

/// Counts of datagrams that were not dropped on receipt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrafficCounts {
    /// Datagrams handed to the operating system.
    pub sent: u64,
    /// Datagrams dropped by a rule of the Out chain.
    pub send_dropped_by_rule: u64,
    /// Datagrams the operating system refused to send.
    pub send_failed: u64,
    /// Datagrams received that passed every check.
    pub received: u64,
    /// Times the socket failed to receive.
    pub receive_failed: u64,
}

#[derive(Debug, Default)]
struct TrafficCounters {
    sent: AtomicU64,
    send_dropped_by_rule: AtomicU64,
    send_failed: AtomicU64,
    received: AtomicU64,
    receive_failed: AtomicU64,
}

impl TrafficCounters {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> TrafficCounts {
        TrafficCounts {
            sent: self.sent.load(Ordering::Relaxed),
            send_dropped_by_rule: self.send_dropped_by_rule.load(Ordering::Relaxed),
            send_failed: self.send_failed.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
            receive_failed: self.receive_failed.load(Ordering::Relaxed),
        }
    }
}

/// One daemon's UDP endpoint. Every method takes `&self`, so it can be
/// shared (in an `Arc`) between a receiving task and the driver; its locks
/// are never held across an `.await`.
#[derive(Debug)]
pub struct Transport {
    socket: UdpSocket,
    node_id: NodeId,
    key: ClusterKey,
    boot_id: BootId,
    /// The counter of the next datagram this boot sends.
    next_counter: AtomicU64,
    replay_window: Mutex<ReplayWindow>,
    twins: Mutex<TwinDetector>,
    partitions: Mutex<PartitionTable>,
    drops: DropCounters,
    traffic: TrafficCounters,
}

impl Transport {
    /// Binds a UDP socket to `listen` for node `node_id`, drawing a fresh
    /// boot id. `rule_seed` seeds the partition table's drop percentages.
    pub async fn bind(
        listen: SocketAddr,
        node_id: NodeId,
        key: ClusterKey,
        rule_seed: u64,
    ) -> Result<Transport, TransportError> {
        let boot_id = BootId::generate()?;
        let socket = UdpSocket::bind(listen)
            .await
            .map_err(|source| TransportError::Bind {
                addr: listen,
                source,
            })?;
        tracing::info!(
            %node_id,
            listen = %socket.local_addr().unwrap_or(listen),
            cluster_id = %key.cluster_id(),
            %boot_id,
            insecure = key.is_insecure(),
            "transport bound"
        );
        Ok(Transport {
            socket,
            node_id,
            key,
            boot_id,
            next_counter: AtomicU64::new(0),
            replay_window: Mutex::new(ReplayWindow::new()),
            twins: Mutex::new(TwinDetector::default()),
            partitions: Mutex::new(PartitionTable::new(rule_seed)),
            drops: DropCounters::new(),
            traffic: TrafficCounters::default(),
        })
    }

    /// The address the socket is bound to (with the port the OS chose, if
    /// it was bound to port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// This node's id: the receiver id every accepted datagram carries.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// This process's boot id.
    pub fn boot_id(&self) -> BootId {
        self.boot_id
    }

    /// The cluster id derived from the key.
    pub fn cluster_id(&self) -> ClusterId {
        self.key.cluster_id()
    }

    /// The drop counters, also for the caller's own drops
    /// ([`DropReason::Undecodable`], [`DropReason::UnknownSender`]).
    pub fn drop_counters(&self) -> &DropCounters {
        &self.drops
    }

    /// The counts of datagrams sent and accepted.
    pub fn traffic(&self) -> TrafficCounts {
        self.traffic.snapshot()
    }

    /// Runs `change` on the partition table (to add, delete, flush or list
    /// rules). The table is locked meanwhile, so keep it short.
    pub fn with_partitions<R>(&self, change: impl FnOnce(&mut PartitionTable) -> R) -> R {
        change(&mut lock(&self.partitions))
    }

    /// Sends `payload` to node `to` at `to_addr`, unless a rule of the Out
    /// chain drops it (drill payloads, see [`crate::net::peer`], are exempt). Network errors are counted and logged at debug level,
    /// never returned as errors: the caller carries on as if the network had
    /// lost the datagram.
    pub async fn send(
        &self,
        to: NodeId,
        to_addr: SocketAddr,
        payload: &[u8],
    ) -> Result<SendOutcome, SendError> {
        let verdict = if crate::net::peer::is_drill_payload(payload) {
            Verdict::Pass
        } else {
            lock(&self.partitions).decide(Direction::Out, Some(to), to_addr, Instant::now())
        };
        if let Verdict::Drop { rule_number } = verdict {
            TrafficCounters::bump(&self.traffic.send_dropped_by_rule);
            return Ok(SendOutcome::DroppedByRule { rule_number });
        }
        let bytes = self.seal_next(to, payload)?;
        match self.socket.send_to(&bytes, to_addr).await {
            Ok(_) => {
                TrafficCounters::bump(&self.traffic.sent);
                Ok(SendOutcome::Sent)
            }
            Err(error) => {
                TrafficCounters::bump(&self.traffic.send_failed);
                tracing::debug!(%to, %to_addr, %error, "send failed");
                Ok(SendOutcome::NetworkError)
            }
        }
    }

    /// Seals `payload` for `to` with this boot's next counter.
    fn seal_next(&self, to: NodeId, payload: &[u8]) -> Result<Vec<u8>, SendError> {
        let counter = self
            .next_counter
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |counter| {
                counter.checked_add(1)
            })
            .map_err(|_| SendError::CounterExhausted)?;
        let header = Header {
            sender: self.node_id,
            receiver: to,
            boot_id: self.boot_id,
            counter,
        };
        Ok(datagram::seal(&self.key, &header, payload)?)
    }

    /// Waits for the next datagram that passes every check, dropping and
    /// counting the others. Cancel-safe: nothing is awaited between receiving
    /// a datagram and returning it, so dropping this future (in a `select!`)
    /// never loses an accepted datagram.
    pub async fn recv(&self) -> Received {
        // One byte more than the limit, so an oversize datagram shows as such
        // instead of being silently cut to a valid-looking length.
        let mut buffer = [0u8; DATAGRAM_BYTES_MAX + 1];
        loop {
            match self.socket.recv_from(&mut buffer).await {
                Ok((length, from)) => match self.check(&buffer[..length], from, Instant::now()) {
                    Ok(received) => {
                        TrafficCounters::bump(&self.traffic.received);
                        return received;
                    }
                    Err(reason) => self.drops.record(reason, from),
                },
                Err(error) => {
                    TrafficCounters::bump(&self.traffic.receive_failed);
                    tracing::debug!(%error, "receive failed");
                    tokio::time::sleep(RECEIVE_ERROR_PAUSE).await;
                }
            }
        }
    }

    /// The checks of one received datagram, in the order of design.md §4.
    fn check(&self, bytes: &[u8], from: SocketAddr, now: Instant) -> Result<Received, DropReason> {
        let (header, payload) = datagram::open(&self.key, bytes, self.node_id)?;
        lock(&self.replay_window).check(&header)?;
        if let Twins::Silenced { started } =
            lock(&self.twins).observe(header.sender, header.boot_id, now)
        {
            if started {
                tracing::error!(
                    peer = %header.sender,
                    %from,
                    "two live processes are sending as node {}: a copied data directory or a second goosed under its id; \
                     ignoring both until one stops (stop the copy; see README: Recovering a corrupted data directory)",
                    header.sender
                );
            }
            return Err(DropReason::DuplicateIdentity);
        }
        // Drill commands pass every rule, so `partition heal` always gets through.
        let exempt = crate::net::peer::is_drill_payload(payload);
        let verdict = if exempt {
            Verdict::Pass
        } else {
            lock(&self.partitions).decide(Direction::In, Some(header.sender), from, now)
        };
        if verdict != Verdict::Pass {
            return Err(DropReason::PartitionRule);
        }
        Ok(Received {
            header,
            from,
            payload: payload.to_vec(),
        })
    }
}

/// Locks `mutex`, carrying on if a panic elsewhere poisoned it: the data it
/// guards (counters, windows, rules) stays usable whatever was interrupted.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    //! Goal: two transports on loopback exchange datagrams; every kind of bad
    //! datagram a stranger, a damaged network or a replaying attacker can
    //! produce is dropped and counted under its reason without disturbing
    //! the good ones; partition rules drop in the direction they name; and
    //! network errors are counted, not fatal. Each test bounds its waits.
    use super::*;
    use goose_common::datagram::{seal, PAYLOAD_BYTES_MAX};
    use goose_common::partition::{Chain, DropPercent, Matcher, Rule};

    /// The longest a test waits for a datagram on loopback.
    const WAIT: Duration = Duration::from_secs(5);

    fn loopback() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    fn key() -> ClusterKey {
        ClusterKey::from_bytes([42; 32])
    }

    async fn node(id: u64) -> Transport {
        Transport::bind(loopback(), NodeId(id), key(), id)
            .await
            .unwrap()
    }

    async fn receive(transport: &Transport) -> Received {
        tokio::time::timeout(WAIT, transport.recv())
            .await
            .expect("no datagram arrived in time")
    }

    /// Lets `transport` receive until it has dropped `count` datagrams in
    /// all for `reason` (or for any reason, if `None`); fails if it accepts
    /// one meanwhile. Loopback delivery order is then not relied on.
    async fn receive_until_dropped(transport: &Transport, reason: Option<DropReason>, count: u64) {
        let dropped = || match reason {
            Some(reason) => transport.drop_counters().get(reason),
            None => transport.drop_counters().total(),
        };
        let counted = async {
            while dropped() < count {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        let waited = tokio::time::timeout(WAIT, async {
            tokio::select! {
                got = transport.recv() => panic!("accepted {got:?} while waiting for drops"),
                () = counted => {}
            }
        });
        waited.await.expect("the drops did not happen in time");
    }

    fn addr(transport: &Transport) -> SocketAddr {
        transport.local_addr().unwrap()
    }

    /// A datagram from node 1 to node 2 as a peer would seal it.
    fn sealed(key: &ClusterKey, receiver: u64, counter: u64, payload: &[u8]) -> Vec<u8> {
        let header = Header {
            sender: NodeId(1),
            receiver: NodeId(receiver),
            boot_id: BootId(77),
            counter,
        };
        seal(key, &header, payload).unwrap()
    }

    #[tokio::test]
    async fn two_transports_exchange_datagrams() {
        let (a, b) = (node(1).await, node(2).await);
        assert_ne!(a.boot_id(), b.boot_id());
        assert_eq!(a.cluster_id(), b.cluster_id());
        let outcome = a.send(NodeId(2), addr(&b), b"ping").await;
        assert_eq!(outcome, Ok(SendOutcome::Sent));
        let got = receive(&b).await;
        assert_eq!(got.payload, b"ping");
        assert_eq!(got.from, addr(&a));
        let expected = Header {
            sender: NodeId(1),
            receiver: NodeId(2),
            boot_id: a.boot_id(),
            counter: 0,
        };
        assert_eq!(got.header, expected);
        let outcome = b.send(NodeId(1), addr(&a), b"pong").await;
        assert_eq!(outcome, Ok(SendOutcome::Sent));
        assert_eq!(receive(&a).await.payload, b"pong");
        // The counter goes up by one per datagram.
        let _ = a.send(NodeId(2), addr(&b), b"again").await;
        assert_eq!(receive(&b).await.header.counter, 1);
        assert_eq!(a.traffic().sent, 2);
        assert_eq!(b.traffic().received, 2);
        assert_eq!(b.drop_counters().total(), 0);
    }

    #[tokio::test]
    async fn bad_datagrams_are_dropped_and_counted_by_reason() {
        let b = node(2).await;
        let raw = UdpSocket::bind(loopback()).await.unwrap();
        let to_b = addr(&b);
        let good = sealed(&key(), 2, 0, b"first");
        raw.send_to(&good, to_b).await.unwrap();
        assert_eq!(receive(&b).await.payload, b"first");

        let mut version = sealed(&key(), 2, 1, b"v");
        version[0] = goose_common::datagram::VERSION + 1;
        let mut damaged = sealed(&key(), 2, 1, b"damaged");
        damaged[45] ^= 0x10;
        let other_key = ClusterKey::from_bytes([43; 32]);
        let bad = [
            (DropReason::Truncated, Vec::new()),
            (DropReason::Truncated, good[..40].to_vec()),
            (DropReason::Oversize, vec![1u8; 1300]),
            (DropReason::UnknownVersion, version),
            (DropReason::WrongCluster, sealed(&other_key, 2, 1, b"x")),
            (DropReason::BadMac, damaged),
            (DropReason::WrongReceiver, sealed(&key(), 3, 1, b"x")),
            (DropReason::Replayed, good.clone()),
        ];
        for (_, bytes) in &bad {
            raw.send_to(bytes, to_b).await.unwrap();
        }
        // A good datagram after them all: receiving it means every bad one
        // before it has been looked at (loopback keeps a socket's order).
        raw.send_to(&sealed(&key(), 2, 1, b"last"), to_b)
            .await
            .unwrap();
        assert_eq!(receive(&b).await.payload, b"last");

        let snapshot = b.drop_counters().snapshot();
        assert_eq!(snapshot.len(), DropReason::COUNT);
        for reason in DropReason::ALL {
            let expected = bad.iter().filter(|(r, _)| *r == reason).count() as u64;
            assert_eq!(snapshot[reason.name()], expected, "{reason}");
        }
        assert_eq!(b.traffic().received, 2);
    }

    #[tokio::test]
    async fn random_bytes_are_dropped() {
        let b = node(2).await;
        let raw = UdpSocket::bind(loopback()).await.unwrap();
        let mut rng = fastrand::Rng::with_seed(5);
        // Few enough that the receive buffer holds them all before b reads.
        const DATAGRAMS: u64 = 40;
        for _ in 0..DATAGRAMS {
            let length = rng.usize(0..=DATAGRAM_BYTES_MAX + 100);
            let bytes: Vec<u8> = (0..length).map(|_| rng.u8(..)).collect();
            raw.send_to(&bytes, addr(&b)).await.unwrap();
        }
        receive_until_dropped(&b, None, DATAGRAMS).await;
        raw.send_to(&sealed(&key(), 2, 0, b"last"), addr(&b))
            .await
            .unwrap();
        assert_eq!(receive(&b).await.payload, b"last");
        assert_eq!(b.drop_counters().total(), DATAGRAMS);
    }

    #[tokio::test]
    async fn in_rules_drop_received_datagrams() {
        let (a, b) = (node(1).await, node(2).await);
        let mut dropped = 0;
        for matcher in [
            Matcher::Peer(NodeId(1)),
            Matcher::Addr("127.0.0.0/8".parse().unwrap()),
        ] {
            let rule = Rule::drop_all(Chain::In, matcher);
            b.with_partitions(|table| table.add(rule, Instant::now()))
                .unwrap();
            for _ in 0..3 {
                // The sender cannot tell: the datagram leaves.
                let outcome = a.send(NodeId(2), addr(&b), b"lost").await;
                assert_eq!(outcome, Ok(SendOutcome::Sent));
            }
            dropped += 3;
            receive_until_dropped(&b, Some(DropReason::PartitionRule), dropped).await;
            b.with_partitions(|table| table.flush());
            let _ = a.send(NodeId(2), addr(&b), b"heard").await;
            assert_eq!(receive(&b).await.payload, b"heard");
        }
        // A rule for another peer leaves this one alone.
        let rule = Rule::drop_all(Chain::In, Matcher::Peer(NodeId(3)));
        b.with_partitions(|table| table.add(rule, Instant::now()))
            .unwrap();
        let _ = a.send(NodeId(2), addr(&b), b"through").await;
        assert_eq!(receive(&b).await.payload, b"through");
        assert_eq!(b.drop_counters().total(), 6);
    }

    #[tokio::test]
    async fn out_rules_drop_sent_datagrams() {
        let (a, b) = (node(1).await, node(2).await);
        let rule = Rule::drop_all(Chain::Out, Matcher::Peer(NodeId(2)));
        a.with_partitions(|table| table.add(rule, Instant::now()))
            .unwrap();
        let outcome = a.send(NodeId(2), addr(&b), b"lost").await;
        assert_eq!(outcome, Ok(SendOutcome::DroppedByRule { rule_number: 1 }));
        // An Out rule on a does not stop b from sending to a.
        let _ = b.send(NodeId(1), addr(&a), b"reply").await;
        assert_eq!(receive(&a).await.payload, b"reply");
        a.with_partitions(|table| table.delete(1, Instant::now()))
            .unwrap();
        let _ = a.send(NodeId(2), addr(&b), b"heard").await;
        let got = receive(&b).await;
        assert_eq!(got.payload, b"heard");
        // A dropped datagram was never sealed, so it used no counter.
        assert_eq!(got.header.counter, 0);
        assert_eq!(a.traffic().send_dropped_by_rule, 1);
    }

    #[tokio::test]
    async fn half_drop_rules_drop_about_half() {
        let (a, b) = (node(1).await, node(2).await);
        let rule = Rule {
            drop_percent: DropPercent::new(50).unwrap(),
            ..Rule::drop_all(Chain::Out, Matcher::Peer(NodeId(2)))
        };
        a.with_partitions(|table| table.add(rule, Instant::now()))
            .unwrap();
        let mut dropped = 0;
        for _ in 0..1000 {
            match a.send(NodeId(2), addr(&b), b"maybe").await {
                Ok(SendOutcome::DroppedByRule { .. }) => dropped += 1,
                Ok(SendOutcome::Sent) => {}
                other => panic!("unexpected outcome {other:?}"),
            }
        }
        // Seeded, so the count is fixed; the bound says what it means.
        assert!((430..=570).contains(&dropped), "{dropped} of 1000 dropped");
        assert_eq!(a.traffic().send_dropped_by_rule, dropped);
    }

    #[tokio::test]
    async fn network_errors_are_counted_not_fatal() {
        let (a, b) = (node(1).await, node(2).await);
        // An IPv6 destination from an IPv4 socket: the OS refuses it.
        let unreachable: SocketAddr = "[::1]:9".parse().unwrap();
        let outcome = a.send(NodeId(2), unreachable, b"nowhere").await;
        assert_eq!(outcome, Ok(SendOutcome::NetworkError));
        assert_eq!(a.traffic().send_failed, 1);
        let outcome = a.send(NodeId(2), addr(&b), b"still works").await;
        assert_eq!(outcome, Ok(SendOutcome::Sent));
        assert_eq!(receive(&b).await.payload, b"still works");
    }

    #[tokio::test]
    async fn oversize_payloads_are_refused_before_sending() {
        let (a, b) = (node(1).await, node(2).await);
        let payload = vec![0u8; PAYLOAD_BYTES_MAX + 1];
        let outcome = a.send(NodeId(2), addr(&b), &payload).await;
        assert!(matches!(outcome, Err(SendError::Seal(_))));
        let payload = vec![0u8; PAYLOAD_BYTES_MAX];
        let outcome = a.send(NodeId(2), addr(&b), &payload).await;
        assert_eq!(outcome, Ok(SendOutcome::Sent));
        assert_eq!(receive(&b).await.payload.len(), PAYLOAD_BYTES_MAX);
    }

    #[tokio::test]
    async fn a_restarted_sender_is_heard_and_its_old_datagrams_are_not() {
        let b = node(2).await;
        let raw = UdpSocket::bind(loopback()).await.unwrap();
        // The first life of node 1 sends through a capturing socket.
        let first_life = node(1).await;
        let _ = first_life
            .send(NodeId(2), raw.local_addr().unwrap(), b"old")
            .await;
        let mut captured = [0u8; DATAGRAM_BYTES_MAX];
        let (length, _) = raw.recv_from(&mut captured).await.unwrap();
        let captured = &captured[..length];
        raw.send_to(captured, addr(&b)).await.unwrap();
        assert_eq!(receive(&b).await.payload, b"old");
        drop(first_life);
        // Node 1 restarts: a new boot id, counters from 0 again.
        let second_life = node(1).await;
        let _ = second_life.send(NodeId(2), addr(&b), b"new").await;
        let got = receive(&b).await;
        assert_eq!(
            (got.header.counter, got.payload.as_slice()),
            (0, &b"new"[..])
        );
        // Replaying the first life's datagram now is refused.
        raw.send_to(captured, addr(&b)).await.unwrap();
        receive_until_dropped(&b, Some(DropReason::Replayed), 1).await;
        let _ = second_life.send(NodeId(2), addr(&b), b"next").await;
        assert_eq!(receive(&b).await.payload, b"next");
        assert_eq!(b.drop_counters().total(), 1);
    }

    #[test]
    fn drop_logs_are_rate_limited_per_reason() {
        let counters = DropCounters::new();
        let from: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let start = Instant::now();
        let unlogged = |reason: DropReason| lock(&counters.log)[reason.index()].unlogged;
        counters.record_at(DropReason::BadMac, from, start);
        assert_eq!(unlogged(DropReason::BadMac), 0, "the first drop is logged");
        counters.record_at(DropReason::BadMac, from, start + Duration::from_millis(500));
        counters.record_at(DropReason::BadMac, from, start + Duration::from_millis(900));
        assert_eq!(
            unlogged(DropReason::BadMac),
            2,
            "held back within the interval"
        );
        counters.record_at(
            DropReason::Replayed,
            from,
            start + Duration::from_millis(900),
        );
        assert_eq!(
            unlogged(DropReason::Replayed),
            0,
            "reasons are limited separately"
        );
        counters.record_at(DropReason::BadMac, from, start + DROP_LOG_INTERVAL);
        assert_eq!(
            unlogged(DropReason::BadMac),
            0,
            "logged with the sum after the interval"
        );
        assert_eq!(counters.get(DropReason::BadMac), 4);
        assert_eq!(counters.total(), 5);
    }
}
