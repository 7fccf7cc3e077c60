//! The client end of the control socket: connect with a deadline, send one
//! request, read its reply within the request's own deadline.

use crate::error::CtlError;
use goose_common::control::{
    read_frame, socket_path_candidates, write_frame, Reply, Request, RunnerUpdate, WatchEvent,
};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

/// How long connecting may take. Connecting to a Unix socket is immediate
/// unless the daemon's accept queue is full, that is the daemon is stuck;
/// `is-goose` must then say "cannot tell" rather than hang.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How much longer than the daemon's own deadline goosectl waits, so that
/// the daemon's timeout error, which says more, arrives first.
const REPLY_TIMEOUT_SLACK: Duration = Duration::from_secs(1);

/// How long writing a request may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// The environment variable naming the socket.
const SOCKET_VARIABLE: &str = "GOOSE_SOCKET";

/// The socket to use without `--socket`: `$GOOSE_SOCKET`, else the first
/// default location that exists, else the first default location.
pub fn default_socket() -> PathBuf {
    if let Some(path) = std::env::var_os(SOCKET_VARIABLE).filter(|value| !value.is_empty()) {
        return PathBuf::from(path);
    }
    let candidates = socket_path_candidates();
    candidates
        .iter()
        .find(|path| path.exists())
        .or(candidates.first())
        .cloned()
        .unwrap_or_else(|| PathBuf::from(goose_common::control::SYSTEM_SOCKET_PATH))
}

/// A connection to the local daemon.
pub struct Client {
    stream: UnixStream,
}

impl Client {
    /// Connects to the daemon at `path` within [`CONNECT_TIMEOUT`].
    pub fn connect(path: &Path) -> Result<Client, CtlError> {
        // std has no connect timeout for Unix sockets, so connect on a
        // helper thread; if it hangs, the process exits without it.
        let (sender, receiver) = mpsc::channel();
        let target = path.to_path_buf();
        std::thread::spawn(move || {
            let _ = sender.send(UnixStream::connect(target));
        });
        let connect_error = |source| CtlError::Connect {
            path: path.to_path_buf(),
            source,
        };
        let stream = match receiver.recv_timeout(CONNECT_TIMEOUT) {
            Ok(result) => result.map_err(connect_error)?,
            Err(_) => {
                return Err(connect_error(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {} ms", CONNECT_TIMEOUT.as_millis()),
                )))
            }
        };
        stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        Ok(Client { stream })
    }

    /// Sends `request` and returns the daemon's reply; an error reply
    /// becomes [`CtlError::Daemon`].
    pub fn call(&mut self, request: &Request) -> Result<Reply, CtlError> {
        let command = request.command_name();
        let timeout = request
            .reply_timeout()
            .map(|timeout| timeout + REPLY_TIMEOUT_SLACK);
        self.stream.set_read_timeout(timeout)?;
        write_frame(&mut self.stream, request)?;
        let reply = read_frame(&mut self.stream).map_err(|error| {
            if error.is_timeout() {
                CtlError::Timeout {
                    command,
                    timeout_ms: timeout.unwrap_or_default().as_millis(),
                }
            } else {
                CtlError::Protocol(error)
            }
        })?;
        match reply {
            Reply::Error { kind, message } => Err(CtlError::Daemon { kind, message }),
            reply => Ok(reply),
        }
    }

    /// Starts a watch: afterwards read events with [`Client::next_event`].
    pub fn start_watch(&mut self) -> Result<(), CtlError> {
        // A watch may be quiet for as long as the cluster is stable.
        self.stream.set_read_timeout(None)?;
        write_frame(&mut self.stream, &Request::Watch)?;
        Ok(())
    }

    /// Registers as a `goosectl run` runner whose job gets `grace` between
    /// SIGTERM and SIGKILL: afterwards read updates with
    /// [`Client::next_runner_update`], and answer release requests through
    /// the [`Releaser`] returned.
    pub fn start_run(&mut self, grace: Duration) -> Result<Releaser, CtlError> {
        // Updates come at least once per lease while goose, but a duck may
        // hear nothing for as long as the cluster is stable.
        self.stream.set_read_timeout(None)?;
        let grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
        write_frame(&mut self.stream, &Request::Run { grace_ms })?;
        Ok(Releaser(self.stream.try_clone()?))
    }

    /// The next update of a runner's stream.
    pub fn next_runner_update(&mut self) -> Result<RunnerUpdate, CtlError> {
        match read_frame(&mut self.stream) {
            Ok(Reply::Runner(update)) => Ok(update),
            Ok(Reply::Error { kind, message }) => Err(CtlError::Daemon { kind, message }),
            Ok(_) => Err(CtlError::UnexpectedReply("run")),
            Err(goose_common::control::FrameError::Closed) => Err(CtlError::WatchClosed),
            Err(error) => Err(CtlError::Protocol(error)),
        }
    }

    /// The next event of a watch.
    pub fn next_event(&mut self) -> Result<WatchEvent, CtlError> {
        match read_frame(&mut self.stream) {
            Ok(Reply::Event(event)) => Ok(event),
            Ok(Reply::Error { kind, message }) => Err(CtlError::Daemon { kind, message }),
            Ok(_) => Err(CtlError::UnexpectedReply("watch")),
            Err(goose_common::control::FrameError::Closed) => Err(CtlError::WatchClosed),
            Err(error) => Err(CtlError::Protocol(error)),
        }
    }
}

/// The writing side of a runner's stream.
pub struct Releaser(UnixStream);

impl Releaser {
    /// Tells the daemon that the job is gone after `handoff` asked.
    pub fn released(&mut self, handoff: u64) -> Result<(), CtlError> {
        write_frame(&mut self.0, &Request::Released { handoff })?;
        Ok(())
    }
}

/// Connects to the daemon of `context` and sends one request.
pub fn call(context: &crate::Context, request: &Request) -> Result<Reply, CtlError> {
    Client::connect(&context.socket)?.call(request)
}
