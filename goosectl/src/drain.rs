//! `drain` and `undrain`: make this node ineligible to be the goose, kept
//! across restarts until undrained, or eligible again (design.md §2,
//! "Eligibility"). A drained goose hands over first; the daemon answers once
//! the intent is durable and the node has stopped answering goose (the
//! handoff itself goes on: `goosectl status` shows the new goose).

use crate::client;
use crate::error::CtlError;
use crate::output;
use crate::Context;
use goose_common::control::{Reply, Request};

/// Sends `Drain { drained }` and prints the daemon's one-line summary.
pub fn drain(context: &Context, drained: bool) -> Result<u8, CtlError> {
    let request = Request::Drain { drained };
    match client::call(context, &request)? {
        Reply::Ok(message) => output::done(context, &message),
        _ => Err(CtlError::UnexpectedReply(request.command_name())),
    }
}
