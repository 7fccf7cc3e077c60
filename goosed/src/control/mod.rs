//! The control socket: goosectl's way into the daemon (design.md §6).
//!
//! [`ControlServer`] listens on a Unix socket, reads framed
//! [`Request`]s (see [`goose_common::control`]), checks the sender's
//! credentials, validates the arguments, and hands each request to the
//! daemon's event loop as a [`ControlRequest`] over a bounded channel made by
//! [`channel`]. It never waits on the event loop without a deadline and never
//! lets a slow client hold up anything but its own connection.
//!
//! # What the driver must do
//!
//! ```text
//! let (requests, mut control) = control::channel();
//! let server = ControlServer::bind(&socket_path, requests)?;
//! tokio::spawn(server.run());
//! loop {
//!     select! {
//!         Some(request) = control.recv() => match request {
//!             ControlRequest::Call { request, reply, .. } => {
//!                 // Answer exactly once, now or when the change settles.
//!                 // A send error only means the client left.
//!                 let _ = reply.send(answer(request));
//!             }
//!             ControlRequest::Watch { events, .. } => {
//!                 // Send the current state, keep `events`, and on every
//!                 // role or leader change `events.try_send(Reply::Event(..))`.
//!                 // On `Full` or `Closed` drop it: the server then ends that watch.
//!                 watchers.push(events);
//!             }
//!         },
//!         ...
//!     }
//! }
//! ```
//!
//! By the time a request reaches the driver, [`authorize`] has accepted it
//! and [`Request::validate`] has passed, so the driver need not repeat
//! either. The driver may take up to [`Request::reply_timeout`] to answer a
//! `Call`; after that the server has already told the client
//! [`ErrorKind::Timeout`](goose_common::control::ErrorKind::Timeout) and the
//! late answer is dropped.

mod auth;
mod server;

pub use auth::{authorize, PeerCredentials};
pub use server::{ControlServer, ControlServerError};

use goose_common::control::{Reply, Request};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How many requests may wait for the driver. More than any burst of
/// operators needs; a full queue means the driver is stuck, and clients are
/// told the daemon is busy rather than queued without bound.
pub const CONTROL_REQUESTS_QUEUED_MAX: usize = 64;

/// How many events may wait to be written to one watcher. A watcher that
/// falls this far behind is cut off by the driver (`try_send` fails).
pub const WATCH_EVENTS_QUEUED_MAX: usize = 64;

/// How many clients may be connected at once (watchers included). Extra
/// connections get a busy reply and are closed at once.
pub const CONNECTIONS_MAX: usize = 32;

/// How long a client has to deliver a complete request frame once connected
/// or after its previous reply. goosectl sends at once; anyone slower is
/// disconnected so that idle connections cannot use up [`CONNECTIONS_MAX`].
pub const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// How long writing one reply may take before the client is dropped.
pub const REPLY_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the accept loop pauses after an accept error (such as running
/// out of file descriptors) so that it does not spin.
pub const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// The socket's file mode: the daemon's user and group may connect.
pub const SOCKET_MODE: u32 = 0o660;

const _: () = assert!(CONTROL_REQUESTS_QUEUED_MAX >= CONNECTIONS_MAX);
const _: () = assert!(WATCH_EVENTS_QUEUED_MAX > 0);

/// One request for the daemon's event loop, already authorized and validated.
#[derive(Debug)]
pub enum ControlRequest {
    /// A request answered by exactly one [`Reply`]. Never [`Request::Watch`],
    /// which arrives as [`ControlRequest::Watch`].
    Call {
        /// What the client asks.
        request: Request,
        /// Who asks (for the log of changes).
        peer: Option<PeerCredentials>,
        /// Where the answer goes.
        reply: oneshot::Sender<Reply>,
    },
    /// A client wants [`Reply::Event`]s: first the current state
    /// ([`WatchEventKind::Initial`](goose_common::control::WatchEventKind::Initial)),
    /// then one per role or leader change. The driver must use `try_send`
    /// and drop the sender when that fails; it must never wait on it.
    Watch {
        /// Who asks.
        peer: Option<PeerCredentials>,
        /// Where the events go; bounded by [`WATCH_EVENTS_QUEUED_MAX`].
        events: mpsc::Sender<Reply>,
    },
    /// A `goosectl run` runner wants [`Reply::Runner`] updates: the current
    /// state at once, then one whenever the role, term, leader, promise or
    /// release changes. As for a watch, the driver uses `try_send` and drops
    /// a runner whose queue is full; its runner then sees the stream end and
    /// stops its job.
    Run {
        /// Who asks.
        peer: Option<PeerCredentials>,
        /// The server's number for this runner (in its `Released` answers).
        runner: u64,
        /// How long the runner gives its job between SIGTERM and SIGKILL.
        grace: std::time::Duration,
        /// Where the updates go; bounded by [`WATCH_EVENTS_QUEUED_MAX`].
        updates: mpsc::Sender<Reply>,
    },
    /// Runner `runner`'s job is gone after handoff `handoff` asked.
    Released {
        /// The server's number for the runner.
        runner: u64,
        /// The handoff it answers.
        handoff: u64,
    },
}

/// The bounded channel between the server and the driver.
pub fn channel() -> (mpsc::Sender<ControlRequest>, mpsc::Receiver<ControlRequest>) {
    mpsc::channel(CONTROL_REQUESTS_QUEUED_MAX)
}
