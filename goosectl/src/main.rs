//! goosectl: status, membership, partition drills and handoffs for goosed.
//!
//! Talks to the local daemon over its Unix control socket (design.md §6).
//! Exit codes: 0 success (and "goose" for `is-goose`), 1 "duck" for
//! `is-goose`, 2 any error, a usage error included. Every error is one line
//! on stderr starting with `goosectl: `.

mod client;
mod docs;
mod drain;
mod error;
mod handoff;
mod keygen;
mod member;
mod output;
mod partition;
mod run;
mod status;
mod watch;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// How the socket is found when `--socket` is not given.
const SOCKET_HELP: &str = "\
The socket is --socket PATH, else $GOOSE_SOCKET, else the first of these that
exists: $RUNTIME_DIRECTORY/goosed.sock, $XDG_RUNTIME_DIR/goose/goosed.sock,
/run/goose/goosed.sock (if none exists, the first of them is named in the error).

Exit codes: 0 success (is-goose: goose), 1 is-goose: duck, 2 error or cannot tell.
is-goose exits 0 only while the answer's promise (lease_until_ns, CLOCK_BOOTTIME)
is in the future when goosectl decides; do not act on it past that instant.";

/// Command-line control of Duck Duck Goose daemons.
#[derive(Debug, Parser)]
#[command(name = "goosectl", version, after_help = SOCKET_HELP)]
struct Cli {
    /// The local daemon's control socket.
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Print one JSON object instead of text (watch: one object per line).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Every member's own answer, gathered by the local daemon.
    Status(status::StatusArgs),
    /// Exit 0 if this node is the goose (its promise still in the future on
    /// goosectl's own clock when it decides), 1 if a duck, 2 if it cannot tell.
    IsGoose,
    /// Print a line per role, leader or eligibility change until interrupted.
    Watch,
    /// Run CMD only while this node is the goose; stop it before anyone
    /// else can start it (exit codes: CMD's own when it ends by itself, 75
    /// when stopped because the goose moved, 0 after goosectl is stopped by
    /// a signal, 2 on errors).
    Run(run::RunArgs),
    /// Supervises a job of `run` (internal: started by `run` itself).
    #[command(name = "__supervise", hide = true)]
    Supervise {
        /// The job's command and arguments.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<std::ffi::OsString>,
    },
    /// List, add or remove members.
    #[command(subcommand)]
    Member(member::MemberCommand),
    /// Drop traffic on purpose: drills for partitions and loss.
    #[command(subcommand)]
    Partition(partition::PartitionCommand),
    /// Hand the goose over to another voter.
    StepDown(handoff::StepDownArgs),
    /// Make this node ineligible to be the goose, kept across restarts until
    /// undrain; a goose hands over first. Returns once that has settled.
    Drain,
    /// Make this node eligible to be the goose again (undo drain).
    Undrain,
    /// Print a new cluster key (64 hex characters) for --key-file.
    Keygen,
    /// Print shell completions (install per the README).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), for /usr/local/share/man/man1/goosectl.1.
    Man,
}

/// What every command gets besides its own arguments.
pub struct Context {
    /// The control socket.
    pub socket: PathBuf,
    /// JSON output instead of text.
    pub json: bool,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(&error),
    };
    let context = Context {
        socket: cli.socket.unwrap_or_else(client::default_socket),
        json: cli.json,
    };
    let result: anyhow::Result<u8> = match cli.command {
        Command::Status(args) => status::status(&context, &args).map_err(Into::into),
        Command::IsGoose => status::is_goose(&context).map_err(Into::into),
        Command::Watch => watch::watch(&context).map_err(Into::into),
        Command::Run(args) => run::run(&context, &args).map_err(Into::into),
        Command::Supervise { command } => run::supervise(&command).map_err(Into::into),
        Command::Member(command) => member::run(&context, command).map_err(Into::into),
        Command::Partition(command) => partition::run(&context, command).map_err(Into::into),
        Command::StepDown(args) => handoff::step_down(&context, &args).map_err(Into::into),
        Command::Drain => drain::drain(&context, true).map_err(Into::into),
        Command::Undrain => drain::drain(&context, false).map_err(Into::into),
        Command::Keygen => keygen::keygen(&context).map_err(Into::into),
        Command::Completions { shell } => docs::completions(shell).map_err(Into::into),
        Command::Man => docs::man().map_err(Into::into),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            // Each error already names its cause; anyhow's `{:#}` chain
            // would repeat it.
            eprintln!("goosectl: {}", output::one_line(&error.to_string()));
            ExitCode::from(output::EXIT_ERROR)
        }
    }
}

/// Prints help or the version (exit 0), or a usage error as one line (exit 2).
fn usage_error(error: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) {
        let _ = error.print();
        return ExitCode::SUCCESS;
    }
    let rendered = error.render().to_string();
    let message = if error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        // clap renders the whole help here; one line must do.
        "a command is required".to_string()
    } else {
        usage_error_message(&rendered)
    };
    eprintln!(
        "goosectl: {}; try '{} --help'",
        output::one_line(&message),
        command_path(&rendered)
    );
    ExitCode::from(output::EXIT_ERROR)
}

/// The error of a rendered clap usage error (its `error:` line and the
/// indented lines under it) and any tip, joined into one line.
fn usage_error_message(rendered: &str) -> String {
    let mut error = String::new();
    let mut details: Vec<&str> = Vec::new();
    let mut tips: Vec<&str> = Vec::new();
    let mut in_error = false;
    for line in rendered.lines().map(str::trim) {
        if let Some(message) = line.strip_prefix("error: ") {
            error = message.to_string();
            in_error = true;
        } else if line.is_empty() {
            in_error = false;
        } else if in_error {
            details.push(line);
        } else if line.starts_with("tip: ") {
            tips.push(line);
        }
    }
    if error.is_empty() {
        error = "invalid arguments".to_string();
    }
    if !details.is_empty() {
        error = format!("{} {}", error, details.join(", "));
    }
    std::iter::once(error.as_str())
        .chain(tips)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The command a rendered clap error is about, from its `Usage:` line
/// (`goosectl partition add`), for the help hint.
fn command_path(rendered: &str) -> String {
    let usage = rendered
        .lines()
        .find_map(|line| line.trim().strip_prefix("Usage: "))
        .unwrap_or("goosectl");
    let words: Vec<&str> = usage
        .split_whitespace()
        .take_while(|word| !word.starts_with(['[', '<', '-']))
        .collect();
    if words.is_empty() {
        "goosectl".to_string()
    } else {
        words.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_and_undrain_take_no_arguments() {
        let parse = |args: &[&str]| Cli::try_parse_from(["goosectl"].iter().chain(args));
        assert!(matches!(parse(&["drain"]).unwrap().command, Command::Drain));
        assert!(matches!(
            parse(&["undrain"]).unwrap().command,
            Command::Undrain
        ));
        let json = parse(&["--json", "drain", "--socket", "/tmp/s"]).unwrap();
        assert!(json.json && matches!(json.command, Command::Drain));
        assert_eq!(json.socket, Some(PathBuf::from("/tmp/s")));
        for wrong in [&["drain", "3"][..], &["undrain", "--to", "2"], &["drained"]] {
            assert!(parse(wrong).is_err(), "{wrong:?}");
        }
    }

    #[test]
    fn clap_errors_become_one_line_with_a_help_hint() {
        let rendered = "error: the following required arguments were not provided:\n  \
                        <--peer <ID>|--addr <CIDR>>\n\nUsage: goosectl partition add \
                        <--in|--out|--both> <--peer <ID>|--addr <CIDR>>\n\nFor more \
                        information, try '--help'.\n";
        assert_eq!(
            usage_error_message(rendered),
            "the following required arguments were not provided: <--peer <ID>|--addr <CIDR>>"
        );
        assert_eq!(command_path(rendered), "goosectl partition add");
        let tip = "error: unexpected argument '--jsn' found\n\n  tip: a similar argument \
                   exists: '--json'\n\nUsage: goosectl status [OPTIONS]\n";
        assert_eq!(
            usage_error_message(tip),
            "unexpected argument '--jsn' found; tip: a similar argument exists: '--json'"
        );
        assert_eq!(command_path(tip), "goosectl status");
    }
}
