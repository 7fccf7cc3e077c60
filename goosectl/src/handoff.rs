//! `step-down [--to ID]`: hand the goose over.

use crate::client;
use crate::error::CtlError;
use crate::member::parse_node_id;
use crate::output;
use crate::Context;
use goose_common::control::{Reply, Request};
use goose_common::NodeId;

/// Arguments of `step-down`.
#[derive(Debug, clap::Args)]
pub struct StepDownArgs {
    /// The voter to hand over to (default: the most up-to-date one).
    #[arg(long, value_name = "ID", value_parser = parse_node_id)]
    to: Option<NodeId>,
}

/// Asks the goose to hand over; returns once the handoff settled.
pub fn step_down(context: &Context, args: &StepDownArgs) -> Result<u8, CtlError> {
    let request = Request::StepDown { to: args.to };
    match client::call(context, &request)? {
        Reply::Ok(message) => output::done(context, &message),
        _ => Err(CtlError::UnexpectedReply(request.command_name())),
    }
}
