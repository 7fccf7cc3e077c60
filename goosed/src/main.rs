//! goosed: the Duck Duck Goose daemon. `goosed run` joins a cluster;
//! `goosed demo` starts a local one on loopback.

use anyhow::{anyhow, Context};
use clap::{Parser, Subcommand};
use goose_common::datagram::{BootId, ClusterKey};
use goose_common::{Membership, NodeId};
use goosed::config::{RunFlags, Settings};
use goosed::control::{self, ControlServer};
use goosed::driver::{Driver, Exit};
use goosed::hooks::{HookCommands, Hooks};
use goosed::net::Transport;
use goosed::raft::{Node, Persist, PersistedState};
use goosed::storage::{DiskStorage, Storage};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "goosed",
    version,
    about = "Keeps exactly one host of a cluster the goose"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run this node's daemon (see design.md §6 and the README)
    Run(Box<RunFlags>),
    /// Start a local demo cluster on loopback and show who is goose
    Demo {
        /// How many nodes
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=9))]
        nodes: u64,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() { 2 } else { 0 };
            let _ = error.print();
            return ExitCode::from(code);
        }
    };
    let result = match cli.command {
        Command::Run(flags) => run(&flags),
        Command::Demo { nodes } => demo(nodes),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("goosed: {}", one_line(&error));
            ExitCode::from(2)
        }
    }
}

/// An error and its causes on one line.
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string().replace('\n', " ");
        // Many errors already quote their source; say each thing once.
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line
}

fn demo(nodes: u64) -> anyhow::Result<ExitCode> {
    let goosed = std::env::current_exe().context("cannot find this executable")?;
    let goosectl = goosed.with_file_name("goosectl");
    if !goosectl.exists() {
        return Err(anyhow!(
            "goosectl not found next to goosed at {}: build both (cargo build)",
            goosectl.display()
        ));
    }
    let count = usize::try_from(nodes).context("node count")?;
    goosed::demo::run(count, &goosed, &goosectl)?;
    Ok(ExitCode::SUCCESS)
}

fn run(flags: &RunFlags) -> anyhow::Result<ExitCode> {
    let settings = Settings::resolve(flags)?;
    let _log_guard = init_logging(settings.log_dir.as_deref())?;
    let key = load_key(&settings)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let exit = runtime.block_on(serve(settings, key))?;
    match exit {
        Exit::Signal => Ok(ExitCode::SUCCESS),
        Exit::StorageFailed(error) => Err(anyhow!("storage failed: {error}")),
        Exit::TimerFailed(error) => Err(anyhow!("wake-up timer failed: {error}")),
    }
}

fn init_logging(
    log_dir: Option<&Path>,
) -> anyhow::Result<Option<tracing_appender::non_blocking::WorkerGuard>> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GOOSE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    match log_dir {
        None => {
            use std::io::IsTerminal;
            let ansi = std::io::stderr().is_terminal();
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_ansi(ansi)
                .with_writer(std::io::stderr)
                .init();
            Ok(None)
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create log directory {}", dir.display()))?;
            let appender = tracing_appender::rolling::RollingFileAppender::builder()
                .rotation(tracing_appender::rolling::Rotation::DAILY)
                .filename_prefix("goosed.log")
                .build(dir)
                .with_context(|| format!("cannot open a log file in {}", dir.display()))?;
            let (writer, guard) = tracing_appender::non_blocking(appender);
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_ansi(false)
                .with_writer(writer)
                .init();
            Ok(Some(guard))
        }
    }
}

/// Reads the cluster key, refusing a file others may read (design.md §5).
fn load_key(settings: &Settings) -> anyhow::Result<ClusterKey> {
    let Some(path) = &settings.key_file else {
        tracing::warn!("running with --insecure: datagrams are not authenticated; use a key file in production");
        return Ok(ClusterKey::insecure());
    };
    let metadata = std::fs::metadata(path)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(anyhow!(
            "key file {} has mode {mode:03o}; it must not be readable by group or others (chmod 600 {})",
            path.display(),
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    ClusterKey::parse(&text)
        .map_err(|error| anyhow!("invalid key file {}: {error}", path.display()))
}

/// Opens storage, binds the sockets, and runs the event loop.
async fn serve(settings: Settings, key: ClusterKey) -> anyhow::Result<Exit> {
    let id = settings.raft.id;
    // Lock and recover the data directory, bind both sockets, and only then
    // write anything: a start-up that fails leaves the disk as it was.
    let (mut storage, mut state) = DiskStorage::open(&settings.data_dir)?;
    let seed = BootId::generate().map_err(|e| anyhow!("{e}"))?.0;
    let transport = Transport::bind(settings.listen, id, key, seed).await?;
    let transport = Arc::new(transport);
    let (requests_tx, requests_rx) = control::channel();
    let server = ControlServer::bind(&settings.socket, requests_tx).await?;
    if state.is_empty() && !settings.join {
        let membership = Membership::with_voters(settings.peers.iter().copied());
        let bootstrap = PersistedState::bootstrap(state.identity, membership);
        storage.persist(&Persist {
            snapshot: Some(bootstrap.snapshot.clone()),
            ..Persist::default()
        })?;
        tracing::info!(
            peers = settings.peers.len(),
            "bootstrapped a new cluster membership"
        );
        state = bootstrap;
    } else if !state.is_empty() && !settings.peers.is_empty() {
        tracing::info!("a log exists: --peer is ignored; the membership comes from the log");
    }
    let server_task = tokio::spawn(server.run());
    let node = Node::new(settings.raft.clone(), state, seed, goosed::clock::now())?;
    let commands = HookCommands {
        on_goose: settings.on_goose.clone(),
        on_duck: settings.on_duck.clone(),
        timeout: settings.hook_timeout,
    };
    let (hooks, hooks_task) = Hooks::spawn(id, commands);
    let state_file = settings
        .socket
        .parent()
        .map(|dir| dir.join(format!("goosed-{}.state", id.0)));
    let signals = forward_signals()?;
    tracing::info!(
        id = id.0,
        listen = %settings.listen,
        data_dir = %settings.data_dir.display(),
        socket = %settings.socket.display(),
        term = node.hard_state().term.0,
        "goosed started"
    );
    let health = settings
        .health
        .clone()
        .map(|check| goosed::health::spawn(check, id.0));
    let driver = Driver::new(
        node,
        storage,
        transport,
        hooks.clone(),
        state_file.clone(),
        health,
    );
    driver.notify_ready();
    let exit = driver.run(requests_rx, signals).await;
    server_task.abort();
    let _ = server_task.await;
    hooks.close();
    // Hooks already running finish (each bounded by its timeout).
    let _ = hooks_task.await;
    if let Some(path) = state_file {
        let _ = std::fs::remove_file(path);
    }
    let _: NodeId = id;
    tracing::info!("goosed stopped");
    Ok(exit)
}

/// SIGTERM and SIGINT, read by signal-hook on a thread and passed to the loop.
fn forward_signals() -> anyhow::Result<tokio::sync::mpsc::Receiver<i32>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])
        .context("cannot install signal handlers")?;
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if sender.blocking_send(signal).is_err() {
                    break;
                }
            }
        })
        .context("cannot start the signal thread")?;
    Ok(receiver)
}
