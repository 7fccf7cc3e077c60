//! The Unix socket listener and the per-connection protocol.
//!
//! Each connection is served by its own task, so a slow or hostile client
//! costs one of [`CONNECTIONS_MAX`] slots and nothing else: every read and
//! write has a deadline, every frame is bounded before it is read, and the
//! driver is reached only through a bounded channel with `try_send`.

use super::auth::{authorize, PeerCredentials};
use super::{
    ControlRequest, ACCEPT_ERROR_BACKOFF, CONNECTIONS_MAX, REPLY_WRITE_TIMEOUT,
    REQUEST_READ_TIMEOUT, SOCKET_MODE, WATCH_EVENTS_QUEUED_MAX,
};
use goose_common::control::{
    decode_payload, encode_frame, payload_length, ErrorKind, FrameError, Reply, Request,
    FRAME_LENGTH_BYTES, LOCAL_REPLY_TIMEOUT,
};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time;

/// How long binding waits for an existing socket to accept a test
/// connection before deciding that something alive holds it.
const STALE_CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// Why the control socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ControlServerError {
    /// The socket's directory could not be created.
    #[error("cannot create the socket directory {path}: {source}")]
    CreateDirectory {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A live daemon already listens on the path.
    #[error("another daemon is already listening on {0}")]
    InUse(PathBuf),
    /// The path holds something other than a socket, which is not ours to remove.
    #[error("{0} exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    /// An existing socket could not be checked or removed.
    #[error("cannot replace the old socket {path}: {source}")]
    Stale {
        /// The socket.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Binding or setting the mode failed.
    #[error("cannot bind the control socket {path}: {source}")]
    Bind {
        /// The socket.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// What every connection task needs.
struct Shared {
    /// The way to the driver.
    requests: mpsc::Sender<ControlRequest>,
    /// The daemon's effective user id: the one non-root user allowed to mutate.
    daemon_uid: u32,
    /// One permit per open connection.
    connections: Arc<Semaphore>,
    /// The number the next `goosectl run` runner gets.
    next_runner: std::sync::atomic::AtomicU64,
}

/// The listening control socket. Dropping it (or the future of
/// [`ControlServer::run`]) removes the socket file, if it is still ours.
pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
    /// Device and inode of the socket file we created, so that dropping the
    /// server never removes a socket another daemon has since bound.
    identity: (u64, u64),
    shared: Arc<Shared>,
}

impl ControlServer {
    /// Binds the socket at `path`: creates its directory if needed, replaces
    /// a stale socket (one nothing listens on), refuses to replace a live one
    /// or a non-socket, and sets the mode to [`SOCKET_MODE`]. Must be called
    /// inside a tokio runtime.
    pub async fn bind(
        path: &Path,
        requests: mpsc::Sender<ControlRequest>,
    ) -> Result<ControlServer, ControlServerError> {
        if let Some(directory) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(directory).map_err(|source| {
                ControlServerError::CreateDirectory {
                    path: directory.to_path_buf(),
                    source,
                }
            })?;
        }
        remove_stale_socket(path).await?;
        let bind_error = |source| ControlServerError::Bind {
            path: path.to_path_buf(),
            source,
        };
        let listener = UnixListener::bind(path).map_err(bind_error)?;
        // Between bind and chmod the socket has the umask's mode; that mode
        // never grants more than the umask allows, and a daemon under
        // systemd runs with UMask=0027 or stricter, so no outsider can
        // connect in that window.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))
            .map_err(bind_error)?;
        let metadata = std::fs::symlink_metadata(path).map_err(bind_error)?;
        tracing::info!(path = %path.display(), "control socket listening");
        Ok(ControlServer {
            listener,
            path: path.to_path_buf(),
            identity: (metadata.dev(), metadata.ino()),
            shared: Arc::new(Shared {
                requests,
                daemon_uid: rustix::process::geteuid().as_raw(),
                connections: Arc::new(Semaphore::new(CONNECTIONS_MAX)),
                next_runner: std::sync::atomic::AtomicU64::new(1),
            }),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts connections until the future is dropped, serving each on its
    /// own task.
    pub async fn run(self) {
        loop {
            match self.listener.accept().await {
                Ok((stream, _addr)) => self.admit(stream),
                Err(error) => {
                    tracing::warn!(%error, "control socket accept failed");
                    time::sleep(ACCEPT_ERROR_BACKOFF).await;
                }
            }
        }
    }

    /// Serves `stream` on a new task if a connection slot is free, otherwise
    /// tells the client the daemon is busy and closes it.
    fn admit(&self, stream: UnixStream) {
        match Arc::clone(&self.shared.connections).try_acquire_owned() {
            Ok(permit) => {
                let shared = Arc::clone(&self.shared);
                tokio::spawn(async move {
                    serve_connection(stream, &shared).await;
                    drop(permit);
                });
            }
            Err(_) => {
                let reply = Reply::error(
                    ErrorKind::Busy,
                    format!("too many control connections (limit {CONNECTIONS_MAX}); try again"),
                );
                // A fresh socket's send buffer is empty, so this small frame
                // fits without waiting; if it does not, the client just sees
                // the connection close. Never wait here: this is the accept loop.
                if let Ok(frame) = encode_frame(&reply) {
                    let _ = stream.try_write(&frame);
                }
            }
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let still_ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|metadata| (metadata.dev(), metadata.ino()) == self.identity);
        if still_ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Removes a socket file left by a daemon that is gone. A socket that
/// accepts a connection belongs to a live daemon and is left alone.
async fn remove_stale_socket(path: &Path) -> Result<(), ControlServerError> {
    let stale_error = |source| ControlServerError::Stale {
        path: path.to_path_buf(),
        source,
    };
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(stale_error(error)),
    };
    if !metadata.file_type().is_socket() {
        return Err(ControlServerError::NotASocket(path.to_path_buf()));
    }
    match time::timeout(STALE_CHECK_TIMEOUT, UnixStream::connect(path)).await {
        // Something answered, or is alive but too busy to answer in time.
        Ok(Ok(_)) | Err(_) => Err(ControlServerError::InUse(path.to_path_buf())),
        Ok(Err(error)) if error.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!(path = %path.display(), "removing stale control socket");
            std::fs::remove_file(path).map_err(stale_error)
        }
        Ok(Err(error)) => Err(stale_error(error)),
    }
}

/// The client went away or stopped reading; the connection is over.
struct ClientGone;

/// Serves one client: request, checks, driver, reply, until it closes,
/// misbehaves, idles, or turns into a watch.
async fn serve_connection(mut stream: UnixStream, shared: &Shared) {
    let peer = stream.peer_cred().ok().map(|credentials| PeerCredentials {
        uid: credentials.uid(),
        gid: credentials.gid(),
        pid: credentials.pid(),
    });
    loop {
        let request = match time::timeout(REQUEST_READ_TIMEOUT, read_request(&mut stream)).await {
            Ok(Ok(request)) => request,
            // Closed, idle, or an I/O error: nothing useful can be said back.
            Err(_) | Ok(Err(FrameError::Closed | FrameError::Io(_))) => return,
            // A frame we cannot trust: explain, then close, because the
            // stream may no longer be at a frame boundary.
            Ok(Err(error)) => {
                let kind = match error {
                    FrameError::UnsupportedVersion { .. } => ErrorKind::UnsupportedVersion,
                    _ => ErrorKind::InvalidRequest,
                };
                let _ = write_reply(&mut stream, &Reply::error(kind, error.to_string())).await;
                return;
            }
        };
        if let Err(message) = authorize(&request, peer.map(|peer| peer.uid), shared.daemon_uid) {
            tracing::warn!(
                ?peer,
                request = request.command_name(),
                "control request refused"
            );
            let reply = Reply::error(ErrorKind::PermissionDenied, message);
            if write_reply(&mut stream, &reply).await.is_err() {
                return;
            }
            continue;
        }
        if let Err(message) = request.validate() {
            let reply = Reply::error(
                ErrorKind::InvalidRequest,
                format!("invalid request: {message}"),
            );
            if write_reply(&mut stream, &reply).await.is_err() {
                return;
            }
            continue;
        }
        if let Request::Run { grace_ms } = request {
            serve_runner(stream, grace_ms, peer, shared).await;
            return;
        }
        if request == Request::Watch {
            serve_watch(&mut stream, peer, shared).await;
            return;
        }
        let reply = call_driver(request, peer, shared).await;
        if write_reply(&mut stream, &reply).await.is_err() {
            return;
        }
    }
}

/// Reads one request frame, refusing an oversize length before reading on.
async fn read_request<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Request, FrameError> {
    let mut prefix = [0u8; FRAME_LENGTH_BYTES];
    let first = reader.read(&mut prefix).await?;
    if first == 0 {
        return Err(FrameError::Closed);
    }
    let truncated = |error: io::Error| {
        if error.kind() == io::ErrorKind::UnexpectedEof {
            FrameError::Malformed("connection closed inside a frame".to_string())
        } else {
            FrameError::Io(error)
        }
    };
    reader
        .read_exact(&mut prefix[first..])
        .await
        .map_err(truncated)?;
    let length = payload_length(prefix)?;
    let mut payload = vec![0u8; length];
    reader.read_exact(&mut payload).await.map_err(truncated)?;
    decode_payload(&payload)
}

/// Writes one reply frame within [`REPLY_WRITE_TIMEOUT`].
async fn write_reply<W: AsyncWrite + Unpin>(
    writer: &mut W,
    reply: &Reply,
) -> Result<(), ClientGone> {
    let frame = match encode_frame(reply) {
        Ok(frame) => frame,
        Err(error) => {
            let fallback = Reply::error(
                ErrorKind::Internal,
                format!("the daemon's reply could not be sent: {error}"),
            );
            encode_frame(&fallback).map_err(|_| ClientGone)?
        }
    };
    match time::timeout(REPLY_WRITE_TIMEOUT, writer.write_all(&frame)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) | Err(_) => Err(ClientGone),
    }
}

/// Hands a request to the driver and waits, within the request's own
/// deadline, for its answer.
async fn call_driver(request: Request, peer: Option<PeerCredentials>, shared: &Shared) -> Reply {
    let name = request.command_name();
    let deadline = request.reply_timeout().unwrap_or(LOCAL_REPLY_TIMEOUT);
    let (reply_sender, reply_receiver) = oneshot::channel();
    let call = ControlRequest::Call {
        request,
        peer,
        reply: reply_sender,
    };
    if let Err(error) = shared.requests.try_send(call) {
        return refused_by_queue(&error);
    }
    match time::timeout(deadline, reply_receiver).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(_dropped)) => Reply::error(
            ErrorKind::Internal,
            format!("the daemon dropped the '{name}' request without answering"),
        ),
        Err(_elapsed) => Reply::error(
            ErrorKind::Timeout,
            format!(
                "the daemon did not settle '{name}' within {} ms; it may still take effect",
                deadline.as_millis()
            ),
        ),
    }
}

/// The reply for a request the driver's queue did not take.
fn refused_by_queue<T>(error: &TrySendError<T>) -> Reply {
    match error {
        TrySendError::Full(_) => Reply::error(
            ErrorKind::Busy,
            "the daemon has too many requests queued; try again",
        ),
        TrySendError::Closed(_) => Reply::error(ErrorKind::Internal, "the daemon is shutting down"),
    }
}

/// Streams the driver's events to a watcher until either side ends it.
async fn serve_watch(stream: &mut UnixStream, peer: Option<PeerCredentials>, shared: &Shared) {
    let (events_sender, mut events) = mpsc::channel(WATCH_EVENTS_QUEUED_MAX);
    let watch = ControlRequest::Watch {
        peer,
        events: events_sender,
    };
    if let Err(error) = shared.requests.try_send(watch) {
        let _ = write_reply(stream, &refused_by_queue(&error)).await;
        return;
    }
    let (mut reader, mut writer) = stream.split();
    let mut probe = [0u8; 1];
    loop {
        tokio::select! {
            event = events.recv() => {
                if !forward(&mut writer, event).await {
                    return;
                }
            }
            // A watcher sends nothing after its request, so any byte, the
            // end of the stream or an error means it is done. Dropping
            // `events` then tells the driver (its next `try_send` fails).
            _ = reader.read(&mut probe) => return,
        }
    }
}

/// Streams the driver's updates to a `goosectl run` runner, and passes
/// the runner's [`Request::Released`] answers to the driver, until either
/// side ends it. Anything else from the runner ends the stream.
async fn serve_runner(
    mut stream: UnixStream,
    grace_ms: u64,
    peer: Option<PeerCredentials>,
    shared: &Shared,
) {
    use std::sync::atomic::Ordering;
    let runner = shared.next_runner.fetch_add(1, Ordering::Relaxed);
    let (updates_sender, mut updates) = mpsc::channel(WATCH_EVENTS_QUEUED_MAX);
    let run = ControlRequest::Run {
        peer,
        runner,
        grace: Duration::from_millis(grace_ms),
        updates: updates_sender,
    };
    if let Err(error) = shared.requests.try_send(run) {
        let _ = write_reply(&mut stream, &refused_by_queue(&error)).await;
        return;
    }
    let (mut reader, mut writer) = stream.split();
    // One long-lived future, so that a frame half read is never lost to
    // the other branch of the select.
    let answers = async {
        loop {
            match read_request(&mut reader).await {
                Ok(Request::Released { handoff }) => {
                    let released = ControlRequest::Released { runner, handoff };
                    // Waits for room rather than lose a confirmation: the
                    // handoff waits for it.
                    if shared.requests.send(released).await.is_err() {
                        return;
                    }
                }
                Ok(other) => {
                    tracing::warn!(
                        request = other.command_name(),
                        "a runner sent something else than a release; closing its stream"
                    );
                    return;
                }
                Err(_) => return,
            }
        }
    };
    tokio::pin!(answers);
    loop {
        tokio::select! {
            update = updates.recv() => {
                if !forward(&mut writer, update).await {
                    return;
                }
            }
            () = &mut answers => return,
        }
    }
}

/// Writes one streamed reply; at the end of the driver's stream, says why.
/// Returns whether the stream goes on.
async fn forward<W: AsyncWrite + Unpin>(writer: &mut W, reply: Option<Reply>) -> bool {
    let Some(reply) = reply else {
        let reply = Reply::error(
            ErrorKind::Internal,
            "the daemon ended the stream (it is shutting down, or this client fell behind)",
        );
        let _ = write_reply(writer, &reply).await;
        return false;
    };
    write_reply(writer, &reply).await.is_ok()
}

#[cfg(test)]
mod tests {
    //! Drives a real socket in a temporary directory with a fake driver:
    //! round trips, watches, malformed and oversize frames, permissions
    //! (by injected uid in `auth`, and here by a real unprivileged child
    //! process when running as root), limits and socket file handling.

    use super::*;
    use goose_common::control::{
        read_frame, write_frame, HealthState, NodeRole, NodeStatus, RunnerUpdate, WatchEvent,
        WatchEventKind, CONTROL_FRAME_BYTES_MAX, CONTROL_PROTOCOL_VERSION,
    };
    use goose_common::{LogIndex, NodeId, Term};
    use std::collections::BTreeMap;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream as StdUnixStream;
    use std::sync::Mutex;

    /// Set in the environment of the unprivileged child process.
    const CHILD_SOCKET_VARIABLE: &str = "GOOSE_CONTROL_TEST_CHILD_SOCKET";
    /// The unprivileged user and group the child runs as (`nobody`, `nogroup`).
    const UNPRIVILEGED_ID: u32 = 65534;
    /// How long a test client waits for any reply.
    const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

    fn status() -> NodeStatus {
        NodeStatus {
            id: NodeId(1),
            addr: "127.0.0.1:7701".parse().unwrap(),
            role: NodeRole::Goose,
            term: Term(2),
            leader_id: Some(NodeId(1)),
            commit_index: LogIndex(3),
            voter: true,
            clock_ns: 10,
            lease_until_ns: Some(20),
            last_index: LogIndex(3),
            removed: false,
            drops: BTreeMap::new(),
            eligible: true,
            health: HealthState::None,
            health_reason: None,
            drained: false,
            priority: 100,
            observer: false,
            datagrams_sent: 0,
            datagrams_received: 0,
        }
    }

    /// What the fake driver does with a request.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum DriverMode {
        /// Answer at once.
        Answer,
        /// Keep the reply sender and never answer.
        Silent,
    }

    /// A running server with a fake driver that records what reached it.
    struct Harness {
        _directory: tempfile::TempDir,
        path: PathBuf,
        seen: Arc<Mutex<Vec<Request>>>,
        server: tokio::task::JoinHandle<()>,
    }

    impl Drop for Harness {
        fn drop(&mut self) {
            self.server.abort();
        }
    }

    async fn start(mode: DriverMode) -> Harness {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("run").join("goosed.sock");
        let (requests, mut control) = super::super::channel();
        let server = ControlServer::bind(&path, requests).await.unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let driver_seen = Arc::clone(&seen);
        let server_task = tokio::spawn(async move {
            let driver = async move {
                let mut kept_replies = Vec::new();
                let mut watchers = Vec::new();
                while let Some(control_request) = control.recv().await {
                    match control_request {
                        ControlRequest::Call { request, reply, .. } => {
                            driver_seen.lock().unwrap().push(request.clone());
                            if mode == DriverMode::Silent {
                                kept_replies.push(reply);
                                continue;
                            }
                            let answer = match request {
                                Request::IsGoose => Reply::IsGoose(status()),
                                other => Reply::Ok(format!("did {}", other.command_name())),
                            };
                            let _ = reply.send(answer);
                        }
                        ControlRequest::Watch { events, .. } => {
                            driver_seen.lock().unwrap().push(Request::Watch);
                            for kind in [WatchEventKind::Initial, WatchEventKind::BecameGoose] {
                                let event = WatchEvent {
                                    kind,
                                    status: status(),
                                };
                                let _ = events.try_send(Reply::Event(event));
                            }
                            watchers.push(events);
                        }
                        ControlRequest::Run { updates, grace, .. } => {
                            let grace_ms = grace.as_millis() as u64;
                            driver_seen.lock().unwrap().push(Request::Run { grace_ms });
                            let update = RunnerUpdate {
                                status: status(),
                                release: None,
                            };
                            let _ = updates.try_send(Reply::Runner(update));
                            watchers.push(updates);
                        }
                        ControlRequest::Released { handoff, .. } => {
                            driver_seen
                                .lock()
                                .unwrap()
                                .push(Request::Released { handoff });
                        }
                    }
                }
            };
            tokio::join!(server.run(), driver);
        });
        Harness {
            _directory: directory,
            path,
            seen,
            server: server_task,
        }
    }

    fn connect(path: &Path) -> StdUnixStream {
        let stream = StdUnixStream::connect(path).unwrap();
        stream.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
        stream
    }

    /// Sends `request` on a fresh connection and reads one reply (blocking).
    fn ask(path: &Path, request: &Request) -> Reply {
        let mut stream = connect(path);
        write_frame(&mut stream, request).unwrap();
        read_frame(&mut stream).unwrap()
    }

    async fn ask_async(path: &Path, request: Request) -> Reply {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || ask(&path, &request))
            .await
            .unwrap()
    }

    /// Sends raw bytes and returns the reply and whether the server then
    /// closed the connection.
    async fn send_raw(path: &Path, bytes: Vec<u8>) -> (Reply, bool) {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let mut stream = connect(&path);
            stream.write_all(&bytes).unwrap();
            let reply: Reply = read_frame(&mut stream).unwrap();
            let mut rest = [0u8; 1];
            let closed = matches!(stream.read(&mut rest), Ok(0));
            (reply, closed)
        })
        .await
        .unwrap()
    }

    fn error_kind(reply: &Reply) -> Option<ErrorKind> {
        match reply {
            Reply::Error { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    #[tokio::test]
    async fn a_request_reaches_the_driver_and_its_answer_comes_back() {
        let harness = start(DriverMode::Answer).await;
        assert_eq!(
            ask_async(&harness.path, Request::IsGoose).await,
            Reply::IsGoose(status())
        );
        // Tests run as root or as the user that owns the daemon: changes pass.
        let reply = ask_async(&harness.path, Request::MemberRemove { id: NodeId(2) }).await;
        assert_eq!(reply, Reply::Ok("did member remove".into()));
        assert_eq!(
            *harness.seen.lock().unwrap(),
            [Request::IsGoose, Request::MemberRemove { id: NodeId(2) }]
        );
    }

    #[tokio::test]
    async fn several_requests_share_one_connection() {
        let harness = start(DriverMode::Answer).await;
        let path = harness.path.clone();
        let replies = tokio::task::spawn_blocking(move || {
            let mut stream = connect(&path);
            (0..3)
                .map(|_| {
                    write_frame(&mut stream, &Request::IsGoose).unwrap();
                    read_frame::<_, Reply>(&mut stream).unwrap()
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap();
        assert_eq!(replies, vec![Reply::IsGoose(status()); 3]);
    }

    #[tokio::test]
    async fn the_socket_file_has_mode_0660_and_is_removed_on_drop() {
        let harness = start(DriverMode::Answer).await;
        let metadata = std::fs::symlink_metadata(&harness.path).unwrap();
        assert!(metadata.file_type().is_socket());
        assert_eq!(metadata.permissions().mode() & 0o777, 0o660);
        let path = harness.path.clone();
        harness.server.abort();
        // Aborting takes effect at the task's next poll.
        for _ in 0..100 {
            if !path.exists() {
                break;
            }
            time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!path.exists(), "the socket outlived its server");
    }

    #[tokio::test]
    async fn a_malformed_frame_gets_an_error_reply_and_the_connection_closes() {
        let harness = start(DriverMode::Answer).await;
        let mut garbage = 3u32.to_be_bytes().to_vec();
        garbage.extend_from_slice(&CONTROL_PROTOCOL_VERSION.to_be_bytes());
        garbage.push(250); // no such request variant
        let (reply, closed) = send_raw(&harness.path, garbage).await;
        assert_eq!(
            error_kind(&reply),
            Some(ErrorKind::InvalidRequest),
            "{reply:?}"
        );
        assert!(closed);
        assert!(harness.seen.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_oversize_length_prefix_is_refused_without_reading_on() {
        let harness = start(DriverMode::Answer).await;
        let announced = u32::try_from(CONTROL_FRAME_BYTES_MAX + 1).unwrap();
        let (reply, closed) = send_raw(&harness.path, announced.to_be_bytes().to_vec()).await;
        assert_eq!(
            error_kind(&reply),
            Some(ErrorKind::InvalidRequest),
            "{reply:?}"
        );
        let Reply::Error { message, .. } = reply else {
            unreachable!()
        };
        assert!(message.contains("exceeds the limit"), "{message}");
        assert!(closed);
    }

    #[tokio::test]
    async fn another_protocol_version_is_named_in_the_reply() {
        let harness = start(DriverMode::Answer).await;
        let mut frame = encode_frame(&Request::IsGoose).unwrap();
        frame[FRAME_LENGTH_BYTES..FRAME_LENGTH_BYTES + 2]
            .copy_from_slice(&(CONTROL_PROTOCOL_VERSION + 1).to_be_bytes());
        let (reply, closed) = send_raw(&harness.path, frame).await;
        assert_eq!(
            error_kind(&reply),
            Some(ErrorKind::UnsupportedVersion),
            "{reply:?}"
        );
        assert!(closed);
    }

    #[tokio::test]
    async fn invalid_arguments_are_refused_before_the_driver() {
        let harness = start(DriverMode::Answer).await;
        let overlapping = Request::PartitionSplit {
            sides: (vec![NodeId(1), NodeId(2)], vec![NodeId(2)]),
        };
        let reply = ask_async(&harness.path, overlapping).await;
        assert_eq!(
            error_kind(&reply),
            Some(ErrorKind::InvalidRequest),
            "{reply:?}"
        );
        assert!(harness.seen.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_watch_streams_events_until_the_client_leaves() {
        let harness = start(DriverMode::Answer).await;
        let path = harness.path.clone();
        let kinds = tokio::task::spawn_blocking(move || {
            let mut stream = connect(&path);
            write_frame(&mut stream, &Request::Watch).unwrap();
            (0..2)
                .map(|_| match read_frame::<_, Reply>(&mut stream).unwrap() {
                    Reply::Event(event) => event.kind,
                    other => panic!("expected an event, got {other:?}"),
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap();
        assert_eq!(
            kinds,
            [WatchEventKind::Initial, WatchEventKind::BecameGoose]
        );
        // The watcher's connection slot is released once it has gone.
        assert_eq!(
            ask_async(&harness.path, Request::IsGoose).await,
            Reply::IsGoose(status())
        );
    }

    /// A run request becomes a stream of updates; the runner's `Released`
    /// answers on it reach the driver, and anything else ends the stream.
    #[tokio::test]
    async fn a_run_request_becomes_a_runner_stream() {
        let harness = start(DriverMode::Answer).await;
        let path = harness.path.clone();
        let (first, after_other) = tokio::task::spawn_blocking(move || {
            let mut stream = connect(&path);
            write_frame(&mut stream, &Request::Run { grace_ms: 1500 }).unwrap();
            let first = read_frame::<_, Reply>(&mut stream).unwrap();
            write_frame(&mut stream, &Request::Released { handoff: 4 }).unwrap();
            write_frame(&mut stream, &Request::IsGoose).unwrap();
            (first, read_frame::<_, Reply>(&mut stream))
        })
        .await
        .unwrap();
        let expected = RunnerUpdate {
            status: status(),
            release: None,
        };
        assert_eq!(first, Reply::Runner(expected));
        assert!(
            matches!(after_other, Err(FrameError::Closed)),
            "{after_other:?}"
        );
        let seen = harness.seen.lock().unwrap().clone();
        assert!(seen.contains(&Request::Run { grace_ms: 1500 }), "{seen:?}");
        assert!(seen.contains(&Request::Released { handoff: 4 }), "{seen:?}");
        assert!(!seen.contains(&Request::IsGoose), "{seen:?}");
    }

    /// A grace past the bound is refused before the driver sees the runner.
    #[tokio::test]
    async fn a_runner_with_too_long_a_grace_is_refused() {
        let harness = start(DriverMode::Answer).await;
        let grace_ms = goose_common::control::RUNNER_GRACE_MAX.as_millis() as u64 + 1;
        let reply = ask_async(&harness.path, Request::Run { grace_ms }).await;
        assert!(
            matches!(&reply, Reply::Error { kind: ErrorKind::InvalidRequest, message } if message.contains("grace")),
            "{reply:?}"
        );
        assert!(harness.seen.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_driver_that_never_answers_yields_a_timeout_error() {
        let harness = start(DriverMode::Silent).await;
        let started = std::time::Instant::now();
        let reply = ask_async(&harness.path, Request::IsGoose).await;
        assert_eq!(error_kind(&reply), Some(ErrorKind::Timeout), "{reply:?}");
        assert!(started.elapsed() >= LOCAL_REPLY_TIMEOUT);
    }

    #[tokio::test]
    async fn connections_beyond_the_limit_are_told_busy_and_closed() {
        let harness = start(DriverMode::Answer).await;
        let path = harness.path.clone();
        let (reply, closed) = tokio::task::spawn_blocking(move || {
            // These hold every slot: each waits for a request it never gets.
            let held: Vec<StdUnixStream> = (0..CONNECTIONS_MAX).map(|_| connect(&path)).collect();
            let mut extra = connect(&path);
            let reply: Reply = read_frame(&mut extra).unwrap();
            let closed = matches!(read_frame::<_, Reply>(&mut extra), Err(FrameError::Closed));
            drop(held);
            (reply, closed)
        })
        .await
        .unwrap();
        assert_eq!(error_kind(&reply), Some(ErrorKind::Busy), "{reply:?}");
        assert!(closed);
    }

    #[tokio::test]
    async fn binding_replaces_a_stale_socket_but_not_a_live_one_or_a_file() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("goosed.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(
            path.exists(),
            "a dropped std listener leaves its file behind"
        );
        let (requests, _control) = super::super::channel();
        let server = ControlServer::bind(&path, requests.clone()).await.unwrap();
        let second = ControlServer::bind(&path, requests.clone()).await;
        assert!(
            matches!(second, Err(ControlServerError::InUse(_))),
            "{:?}",
            second.err()
        );
        drop(server);
        assert!(!path.exists());

        let file = directory.path().join("not-a-socket");
        std::fs::write(&file, b"precious").unwrap();
        let refused = ControlServer::bind(&file, requests).await;
        assert!(matches!(refused, Err(ControlServerError::NotASocket(_))));
        assert_eq!(std::fs::read(&file).unwrap(), b"precious");
    }

    /// Says why a test is skipped, straight to stderr so the test harness's
    /// capture cannot hide it.
    fn say_skipped(reason: &str) {
        let _ = writeln!(io::stderr(), "skipped: {reason}");
    }

    /// The client half of the test below, run only by it, in a child process
    /// as `nobody` (hence ignored in a normal run).
    #[test]
    #[ignore = "the child half of changes_from_an_unprivileged_process_are_refused_over_the_socket"]
    fn permission_child_client() {
        let path = std::env::var_os(CHILD_SOCKET_VARIABLE)
            .map(PathBuf::from)
            .expect("run only by its parent test, which names the socket");
        let refused = ask(&path, &Request::MemberRemove { id: NodeId(2) });
        assert_eq!(
            error_kind(&refused),
            Some(ErrorKind::PermissionDenied),
            "{refused:?}"
        );
        let Reply::Error { message, .. } = refused else {
            unreachable!()
        };
        assert!(message.starts_with("permission denied"), "{message}");
        assert_eq!(ask(&path, &Request::IsGoose), Reply::IsGoose(status()));
    }

    #[tokio::test]
    async fn changes_from_an_unprivileged_process_are_refused_over_the_socket() {
        if !rustix::process::geteuid().is_root() {
            say_skipped("not root, so no process can be started as another user");
            return;
        }
        let harness = start(DriverMode::Answer).await;
        // Let `nobody` reach the socket: through the private temporary
        // directory, and as a member of the socket's group (mode 0660).
        let run_directory = harness.path.parent().unwrap();
        for directory in [run_directory, run_directory.parent().unwrap()] {
            std::fs::set_permissions(directory, std::fs::Permissions::from_mode(0o711)).unwrap();
        }
        std::os::unix::fs::chown(&harness.path, None, Some(UNPRIVILEGED_ID)).unwrap();
        // A copy of this test binary that `nobody` may run wherever the
        // build lives (under /root, say).
        let binary_directory = tempfile::tempdir().unwrap();
        std::fs::set_permissions(
            binary_directory.path(),
            std::fs::Permissions::from_mode(0o711),
        )
        .unwrap();
        let test_binary = binary_directory.path().join("control-test-client");
        std::fs::copy(std::env::current_exe().unwrap(), &test_binary).unwrap();
        std::fs::set_permissions(&test_binary, std::fs::Permissions::from_mode(0o755)).unwrap();
        let socket = harness.path.clone();
        let output = tokio::task::spawn_blocking(move || {
            use std::os::unix::process::CommandExt;
            std::process::Command::new(test_binary)
                .args(["--exact", "control::server::tests::permission_child_client"])
                .args(["--ignored", "--nocapture", "--test-threads=1"])
                .env(CHILD_SOCKET_VARIABLE, socket)
                .uid(UNPRIVILEGED_ID)
                .gid(UNPRIVILEGED_ID)
                .output()
        })
        .await
        .unwrap();
        let output =
            output.unwrap_or_else(|error| panic!("cannot start the child client: {error}"));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "child failed: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            stdout.contains("1 passed"),
            "the child ran no test: {stdout}"
        );
        // The refused change never reached the driver; the question did.
        assert_eq!(*harness.seen.lock().unwrap(), [Request::IsGoose]);
    }
}
