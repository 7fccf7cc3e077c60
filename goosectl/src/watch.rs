//! `watch`: a line per role or leader change until interrupted.

use crate::client::Client;
use crate::error::CtlError;
use crate::output;
use crate::Context;

/// Streams the daemon's events; returns only on an error (the daemon going
/// away included), since the normal end is the operator's Ctrl-C.
pub fn watch(context: &Context) -> Result<u8, CtlError> {
    let mut client = Client::connect(&context.socket)?;
    client.start_watch()?;
    loop {
        let event = client.next_event()?;
        if context.json {
            // One object per line (JSON Lines), one line per event.
            output::json(&event)?;
        } else {
            output::line(&format!(
                "{}: {}",
                event.kind,
                output::node_line(&event.status)
            ))?;
        }
    }
}
