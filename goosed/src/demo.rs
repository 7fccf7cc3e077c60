//! `goosed demo`: a local cluster on loopback to play with (design.md §7).
//!
//! Starts `nodes` voters as `goosed run` child processes on 127.0.0.1, plus
//! one spare node started with `--join` that `goosectl member add` can bring
//! in, each with a data directory, log file and control socket in one
//! temporary directory, and a freshly generated cluster key (mode 0600).
//! Then it shows who is goose every half second: a live table when stdout
//! is a terminal, otherwise one line per change. It prints the goosectl
//! commands to try with the real socket paths and process ids.
//!
//! On Ctrl-C, SIGTERM or SIGHUP it stops every child (SIGTERM, so a goose hands
//! over, then SIGKILL for any that lingers) and removes the temporary
//! directory; it does the same when it fails. A node that dies (the user
//! may kill nodes on purpose) is shown as down.
//!
//! The children run in their own process groups, so a Ctrl-C typed in the
//! terminal reaches only the demo, which then stops them in order.

use anyhow::{bail, Context};
use goose_common::control::{call_once, NodeRole, NodeStatus, Reply, Request};
use goose_common::datagram::ClusterKey;
use goose_common::limits::VOTERS_MAX;
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{IsTerminal, Write};
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the table is refreshed.
const REFRESH_INTERVAL: Duration = Duration::from_millis(500);

/// How long the demo waits for one node's status before showing it as not
/// answering (a node paused with SIGSTOP, say).
const STATUS_TIMEOUT: Duration = Duration::from_millis(200);

/// How long the children get to exit after SIGTERM before SIGKILL: a goose
/// hands over first, which takes about one election timeout.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// One child daemon.
struct DemoNode {
    id: u64,
    addr: SocketAddr,
    socket: PathBuf,
    log: PathBuf,
    spare: bool,
    child: Option<Child>,
    exit: Option<ExitStatus>,
}

/// What the table shows of one node.
#[derive(Clone, Debug, PartialEq, Eq)]
enum NodeView {
    /// It answered.
    Up {
        role: NodeRole,
        term: u64,
        leader: Option<u64>,
        voter: bool,
        removed: bool,
    },
    /// It runs but did not answer in time.
    Silent,
    /// Its process ended.
    Down(String),
}

/// The running demo: its children and directory, cleaned up on drop.
struct Demo {
    directory: Option<tempfile::TempDir>,
    nodes: Vec<DemoNode>,
}

/// Runs the demo until Ctrl-C or SIGTERM; see the module documentation.
///
/// # Errors
/// If `nodes` is not between 1 and 9, or the directory, key, ports or
/// children cannot be set up; everything started so far is stopped and
/// removed first.
pub fn run(nodes: usize, goosed: &Path, goosectl: &Path) -> anyhow::Result<()> {
    if nodes == 0 || nodes > VOTERS_MAX {
        bail!("--nodes must be between 1 and {VOTERS_MAX}, not {nodes}");
    }
    let stop = Arc::new(AtomicBool::new(false));
    // SIGHUP too: closing the terminal must not leave the children behind.
    let signals = [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ];
    for signal in signals {
        // A second signal while stopping exits at once (the children have
        // their own process groups and are then left to the user).
        signal_hook::flag::register_conditional_shutdown(signal, 1, Arc::clone(&stop))
            .context("cannot install the signal handlers")?;
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("cannot install the signal handlers")?;
    }
    let mut demo = Demo::start(nodes, goosed)?;
    let interactive = std::io::stdout().is_terminal();
    let introduction = demo.introduction(goosectl);
    if !interactive {
        print!("{introduction}");
    }
    let mut last_summary = String::new();
    while !stop.load(Ordering::Relaxed) {
        let views = demo.refresh();
        if interactive {
            // Home the cursor and clear the screen, then redraw.
            // The live part first, so that it stays in view.
            print!("\x1b[H\x1b[2J{}\n{introduction}", demo.table(&views));
        } else {
            let summary = summary_line(&demo.nodes, &views);
            if summary != last_summary {
                println!("{summary}");
                last_summary = summary;
            }
        }
        let _ = std::io::stdout().flush();
        sleep_unless(&stop, REFRESH_INTERVAL);
    }
    let stopped = demo
        .nodes
        .iter()
        .filter(|node| node.child.is_some())
        .count();
    let directory = demo.path().to_path_buf();
    demo.shutdown();
    println!(
        "demo stopped: {stopped} running nodes stopped, {} removed",
        directory.display()
    );
    Ok(())
}

/// Sleeps for `duration` in short steps, returning early once `stop` is set.
fn sleep_unless(stop: &AtomicBool, duration: Duration) {
    let deadline = Instant::now() + duration;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Demo {
    /// Creates the directory and key and starts the children.
    fn start(nodes: usize, goosed: &Path) -> anyhow::Result<Demo> {
        let directory = tempfile::Builder::new()
            .prefix("goose-demo-")
            .tempdir()
            .context("cannot create the demo's temporary directory")?;
        let mut demo = Demo {
            directory: Some(directory),
            nodes: Vec::new(),
        };
        let root = demo.path().to_path_buf();
        let key_file = root.join("cluster.key");
        write_key(&key_file)?;
        let config_file = root.join("goosed.toml");
        // An empty configuration keeps /etc/goose/goosed.toml out of the demo.
        fs::write(&config_file, "").context("cannot write the demo's configuration")?;
        let addrs = free_loopback_addrs(nodes + 1)?;
        let voters: Vec<(u64, SocketAddr)> = (1..).zip(addrs.iter().copied()).take(nodes).collect();
        for (index, addr) in addrs.iter().enumerate() {
            let id = u64::try_from(index + 1).context("node id")?;
            let spare = index == nodes;
            let node_directory = root.join(format!("node-{id}"));
            fs::create_dir_all(node_directory.join("data"))
                .with_context(|| format!("cannot create {}", node_directory.display()))?;
            let mut node = DemoNode {
                id,
                addr: *addr,
                socket: node_directory.join("goosed.sock"),
                log: node_directory.join("goosed.log"),
                spare,
                child: None,
                exit: None,
            };
            let mut command = Command::new(goosed);
            command
                .arg("run")
                .arg("--config")
                .arg(&config_file)
                .args(["--id", &id.to_string(), "--listen", &addr.to_string()])
                .arg("--data-dir")
                .arg(node_directory.join("data"))
                .arg("--socket")
                .arg(&node.socket)
                .arg("--key-file")
                .arg(&key_file);
            // No timing flags: with the empty configuration file, the
            // children run on the daemon's own defaults.
            if spare {
                command.arg("--join");
            } else {
                for (peer, peer_addr) in &voters {
                    command.arg("--peer").arg(format!("{peer}={peer_addr}"));
                }
            }
            let log = File::create(&node.log)
                .with_context(|| format!("cannot create {}", node.log.display()))?;
            command
                .stdin(Stdio::null())
                .stdout(log.try_clone().context("cannot share the log file")?)
                .stderr(log)
                .process_group(0);
            for name in crate::config::SERVICE_ENVIRONMENT {
                command.env_remove(name);
            }
            let child = command
                .spawn()
                .with_context(|| format!("cannot start {} for node {id}", goosed.display()))?;
            node.child = Some(child);
            demo.nodes.push(node);
        }
        Ok(demo)
    }

    /// The temporary directory.
    fn path(&self) -> &Path {
        self.directory
            .as_ref()
            .map(tempfile::TempDir::path)
            .unwrap_or(Path::new(""))
    }

    /// Notes children that ended and asks the others for their status.
    fn refresh(&mut self) -> Vec<NodeView> {
        self.nodes
            .iter_mut()
            .map(|node| {
                if let Some(child) = node.child.as_mut() {
                    if let Ok(Some(status)) = child.try_wait() {
                        node.exit = Some(status);
                        node.child = None;
                    }
                }
                match (&node.child, node.exit) {
                    (None, Some(status)) => NodeView::Down(describe_exit(status)),
                    (None, None) => NodeView::Down("stopped".to_string()),
                    (Some(_), _) => match ask_status(&node.socket) {
                        Some(status) => NodeView::Up {
                            role: status.role,
                            term: status.term.0,
                            leader: status.leader_id.map(|id| id.0),
                            voter: status.voter,
                            removed: status.removed,
                        },
                        None => NodeView::Silent,
                    },
                }
            })
            .collect()
    }

    /// The text printed once (or above the live table): where things are
    /// and what to try.
    fn introduction(&self, goosectl: &Path) -> String {
        let voters = self.nodes.iter().filter(|node| !node.spare).count();
        let mut text = String::new();
        let _ = writeln!(
            text,
            "Duck Duck Goose demo: {voters} nodes on loopback, one spare; Ctrl-C stops and removes everything."
        );
        let _ = writeln!(text, "demo directory: {}", self.path().display());
        for node in &self.nodes {
            let pid = node
                .child
                .as_ref()
                .map_or_else(|| "-".to_string(), |child| child.id().to_string());
            let _ = writeln!(
                text,
                "node {}: pid {pid}, udp {}, log {}, socket {}{}",
                node.id,
                node.addr,
                node.log.display(),
                node.socket.display(),
                if node.spare {
                    " (spare, started with --join)"
                } else {
                    ""
                }
            );
        }
        let ctl = format!(
            "{} --socket {}",
            goosectl.display(),
            self.nodes[0].socket.display()
        );
        let spare = self.nodes.last().expect("the demo has nodes");
        let voters_list = |range: std::ops::RangeInclusive<usize>| {
            range.map(|id| id.to_string()).collect::<Vec<_>>().join(",")
        };
        let half = voters / 2;
        let mut tries: Vec<(String, &str)> = vec![
            (format!("{ctl} status"), "every node's own answer"),
            (format!("{ctl} is-goose; echo $?"), "0 goose, 1 duck"),
            (format!("{ctl} watch"), "a line per change"),
            (
                "kill PID".to_string(),
                "stop a node (the goose's PID is under the table)",
            ),
        ];
        if voters >= 2 {
            tries.push((
                format!(
                    "{ctl} partition split {} {}",
                    voters_list(1..=half.max(1)),
                    voters_list(half.max(1) + 1..=voters)
                ),
                "the goose ends on the majority side",
            ));
        }
        tries.push((format!("{ctl} partition heal"), "back to one network"));
        tries.push((format!("{ctl} step-down --to ID"), "hand the goose over"));
        tries.push((
            format!("{ctl} member add {} {}", spare.id, spare.addr),
            "bring in the spare",
        ));
        let width = tries
            .iter()
            .map(|(command, _)| command.len())
            .max()
            .unwrap_or(0);
        let _ = writeln!(text, "\nTry, in another terminal:");
        for (command, comment) in tries {
            let _ = writeln!(text, "  {command:<width$}   # {comment}");
        }
        text
    }

    /// The live table.
    fn table(&self, views: &[NodeView]) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "{:>5}  {:>8}  {:<22} {:<14} {:>5}  {:>6}  voter",
            "node", "pid", "udp", "role", "term", "leader"
        );
        for (node, view) in self.nodes.iter().zip(views) {
            let pid = node
                .child
                .as_ref()
                .map_or_else(|| "-".to_string(), |child| child.id().to_string());
            let (role, term, leader, voter) = match view {
                NodeView::Up {
                    role,
                    term,
                    leader,
                    voter,
                    removed,
                } => (
                    if *removed {
                        format!("{role} (removed)")
                    } else {
                        role.to_string()
                    },
                    term.to_string(),
                    leader.map_or_else(|| "-".to_string(), |id| id.to_string()),
                    if *voter { "yes" } else { "no" }.to_string(),
                ),
                NodeView::Silent => ("no answer".into(), "-".into(), "-".into(), "-".into()),
                NodeView::Down(why) => {
                    (format!("down ({why})"), "-".into(), "-".into(), "-".into())
                }
            };
            let _ = writeln!(
                text,
                "{:>5}  {:>8}  {:<22} {:<14} {:>5}  {:>6}  {voter}",
                node.id, pid, node.addr, role, term, leader
            );
        }
        let goose = self.nodes.iter().zip(views).find(|(_, view)| {
            matches!(
                view,
                NodeView::Up {
                    role: NodeRole::Goose,
                    ..
                }
            )
        });
        match goose {
            Some((node, _)) => {
                let pid = node.child.as_ref().map(Child::id).unwrap_or(0);
                let _ = writeln!(
                    text,
                    "\ngoose: node {} (pid {pid}); stop it with `kill {pid}` and watch another take over",
                    node.id
                );
            }
            None => {
                let _ = writeln!(text, "\nno goose right now");
            }
        }
        text
    }

    /// Stops every child (SIGTERM, then SIGKILL after the grace period) and
    /// removes the directory.
    fn shutdown(&mut self) {
        for node in &mut self.nodes {
            if let Some(child) = node.child.as_ref() {
                if let Ok(pid) = i32::try_from(child.id()) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGTERM,
                    );
                }
            }
        }
        let deadline = Instant::now() + STOP_GRACE;
        for node in &mut self.nodes {
            let Some(mut child) = node.child.take() else {
                continue;
            };
            loop {
                match child.try_wait() {
                    Ok(Some(status)) => {
                        node.exit = Some(status);
                        break;
                    }
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    _ => {
                        let _ = child.kill();
                        node.exit = child.wait().ok();
                        break;
                    }
                }
            }
        }
        if let Some(directory) = self.directory.take() {
            let path = directory.path().to_path_buf();
            if let Err(error) = directory.close() {
                eprintln!("goosed demo: cannot remove {}: {error}", path.display());
            }
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// One line saying who is goose and which nodes are down, for output that
/// is not a terminal.
fn summary_line(nodes: &[DemoNode], views: &[NodeView]) -> String {
    let mut goose = None;
    let mut down = Vec::new();
    let mut silent = Vec::new();
    for (node, view) in nodes.iter().zip(views) {
        match view {
            NodeView::Up {
                role: NodeRole::Goose,
                term,
                ..
            } => goose = Some((node.id, *term)),
            NodeView::Up { .. } => {}
            NodeView::Silent => silent.push(node.id.to_string()),
            NodeView::Down(_) => down.push(node.id.to_string()),
        }
    }
    let mut line = match goose {
        Some((id, term)) => format!("goose: node {id} (term {term})"),
        None => "goose: none".to_string(),
    };
    if !down.is_empty() {
        let _ = write!(line, "; down: {}", down.join(","));
    }
    if !silent.is_empty() {
        let _ = write!(line, "; not answering: {}", silent.join(","));
    }
    line
}

/// A node's own status over its control socket, or `None` if it does not
/// answer within [`STATUS_TIMEOUT`].
fn ask_status(socket: &Path) -> Option<NodeStatus> {
    match call_once(socket, &Request::Status { local: true }, STATUS_TIMEOUT) {
        Ok(Reply::NodeStatus(status)) => Some(status),
        _ => None,
    }
}

/// Writes a new cluster key, 64 hex characters and a newline, mode 0600.
fn write_key(path: &Path) -> anyhow::Result<()> {
    let key = ClusterKey::generate().context("cannot generate a cluster key")?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    writeln!(file, "{key}").with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// `count` loopback addresses whose UDP ports were free a moment ago (bound
/// together, so they differ, then released for the children).
///
/// # Errors
/// If no more UDP ports can be bound on 127.0.0.1.
pub fn free_loopback_addrs(count: usize) -> anyhow::Result<Vec<SocketAddr>> {
    let sockets = (0..count)
        .map(|_| UdpSocket::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .context("cannot find free UDP ports on 127.0.0.1")?;
    sockets
        .iter()
        .map(|socket| socket.local_addr().context("a bound socket has an address"))
        .collect()
}

/// How a process ended, for messages: `exit 0` or `signal 9`.
pub fn describe_exit(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(signal)) => format!("signal {signal}"),
        (None, None) => "ended".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_count_is_checked_before_anything_starts() {
        let error = run(0, Path::new("/nonexistent"), Path::new("/nonexistent")).unwrap_err();
        assert!(error.to_string().contains("between 1 and"), "{error}");
        let error = run(10, Path::new("/nonexistent"), Path::new("/nonexistent")).unwrap_err();
        assert!(error.to_string().contains("between 1 and"), "{error}");
    }

    #[test]
    fn the_summary_names_the_goose_and_the_down_nodes() {
        let node = |id| DemoNode {
            id,
            addr: SocketAddr::from(([127, 0, 0, 1], 1)),
            socket: PathBuf::new(),
            log: PathBuf::new(),
            spare: false,
            child: None,
            exit: None,
        };
        let nodes = [node(1), node(2), node(3)];
        let views = [
            NodeView::Down("signal 9".into()),
            NodeView::Up {
                role: NodeRole::Goose,
                term: 4,
                leader: Some(2),
                voter: true,
                removed: false,
            },
            NodeView::Silent,
        ];
        assert_eq!(
            summary_line(&nodes, &views),
            "goose: node 2 (term 4); down: 1; not answering: 3"
        );
    }
}
