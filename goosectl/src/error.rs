//! The errors of goosectl's commands; `main` prints them as one line.

use goose_common::control::{ErrorKind, FrameError};
use std::path::PathBuf;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// The daemon's socket could not be reached.
    #[error("cannot reach goosed at {}: {source}; is it running? (choose the socket with --socket or GOOSE_SOCKET)", path.display())]
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The daemon did not answer in time.
    #[error("goosed did not answer '{command}' within {timeout_ms} ms")]
    Timeout {
        /// The command.
        command: &'static str,
        /// How long goosectl waited.
        timeout_ms: u128,
    },
    /// The connection failed or the daemon sent something unreadable.
    #[error("talking to goosed: {0}")]
    Protocol(#[from] FrameError),
    /// The daemon answered with an error.
    #[error("{message}")]
    Daemon {
        /// The category of the error.
        kind: ErrorKind,
        /// The daemon's explanation.
        message: String,
    },
    /// The arguments are inconsistent (checked before asking the daemon).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The daemon answered with the wrong kind of reply.
    #[error("goosed sent an unexpected reply to '{0}'")]
    UnexpectedReply(&'static str),
    /// The daemon closed a watch.
    #[error("goosed closed the watch")]
    WatchClosed,
    /// The daemon's own role came back as unreachable.
    #[error("goosed could not tell whether it is the goose")]
    CannotTell,
    /// goosectl's own clock could not be read, so it cannot judge an answer.
    #[error("cannot read CLOCK_BOOTTIME to judge the answer: {0}")]
    Clock(std::io::Error),
    /// Printing the result failed (a closed pipe, say).
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
    /// JSON encoding failed.
    #[error("cannot encode JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The system's random number generator failed.
    #[error("cannot get random bytes from the operating system: {0}")]
    Random(String),
}
