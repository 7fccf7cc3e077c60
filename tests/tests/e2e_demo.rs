//! Goal: `goosed demo` (design.md §7) does what it says on a real run: it
//! starts a local cluster whose sockets it prints, a goose appears there as
//! goosectl sees it, the spare node can be added with the printed `member
//! add`, and SIGTERM stops every child and removes the temporary directory
//! with exit code 0.

use goose_tests::cluster::{binaries, describe_exit, exclusive, kill_with_parent, wait_for};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long the demo may take to print its nodes and elect a goose.
const START_WAIT: Duration = Duration::from_secs(15);

/// One node as the demo printed it.
#[derive(Clone, Debug)]
struct PrintedNode {
    pid: i32,
    addr: String,
    socket: PathBuf,
    spare: bool,
}

/// Kills the demo and whatever it printed if the test ends early.
struct DemoGuard {
    child: Child,
    pids: Vec<i32>,
    directory: Option<PathBuf>,
}

impl Drop for DemoGuard {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            for pid in &self.pids {
                let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
            }
            if let Some(directory) = &self.directory {
                let _ = std::fs::remove_dir_all(directory);
            }
        }
    }
}

/// Parses `node 1: pid 123, udp 127.0.0.1:4000, log ..., socket /p[ (spare...)]`.
fn parse_node(line: &str) -> Option<(u64, PrintedNode)> {
    let rest = line.strip_prefix("node ")?;
    let (id, rest) = rest.split_once(": pid ")?;
    let (pid, rest) = rest.split_once(", udp ")?;
    let (addr, rest) = rest.split_once(", log ")?;
    let (_, socket) = rest.split_once(", socket ")?;
    let spare = socket.ends_with(" (spare, started with --join)");
    let socket = socket.trim_end_matches(" (spare, started with --join)");
    Some((
        id.parse().ok()?,
        PrintedNode {
            pid: pid.parse().ok()?,
            addr: addr.to_string(),
            socket: PathBuf::from(socket),
            spare,
        },
    ))
}

/// `goosed demo --nodes 3` with stdout piped: prints its directory and
/// nodes, elects a goose that goosectl sees on a printed socket, prints a
/// line naming the goose, lets the spare join as a voter, and on SIGTERM
/// exits 0 having stopped every child and removed its directory.
#[test]
fn the_demo_runs_a_cluster_and_cleans_up_on_sigterm() {
    let _exclusive = exclusive();
    let binaries = binaries();
    let mut command = Command::new(&binaries.goosed);
    command
        .args(["demo", "--nodes", "3"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    kill_with_parent(&mut command);
    let mut child = command.spawn().expect("start goosed demo");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut guard = DemoGuard {
        child,
        pids: Vec::new(),
        directory: None,
    };
    let (lines, receiver) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            eprintln!("demo> {line}");
            if lines.send(line).is_err() {
                break;
            }
        }
    });

    let mut output = Vec::new();
    let mut nodes: BTreeMap<u64, PrintedNode> = BTreeMap::new();
    let mut directory = None;
    let deadline = Instant::now() + START_WAIT;
    while !(directory.is_some() && nodes.len() == 4) {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let line = receiver.recv_timeout(remaining).unwrap_or_else(|_| {
            panic!("the demo did not print its directory and 4 nodes: {output:#?}")
        });
        if let Some(path) = line.strip_prefix("demo directory: ") {
            directory = Some(PathBuf::from(path));
            guard.directory = directory.clone();
        }
        if let Some((id, node)) = parse_node(&line) {
            guard.pids.push(node.pid);
            nodes.insert(id, node);
        }
        output.push(line);
    }
    let directory = directory.expect("parsed above");
    assert!(
        directory.is_dir(),
        "{} exists while running",
        directory.display()
    );
    assert_eq!(
        nodes.values().filter(|node| node.spare).count(),
        1,
        "one spare: {nodes:?}"
    );

    let goosectl = |socket: &PathBuf, arguments: &[&str]| {
        Command::new(&binaries.goosectl)
            .arg("--socket")
            .arg(socket)
            .args(arguments)
            .stdin(Stdio::null())
            .output()
            .expect("run goosectl")
    };
    let goose = wait_for("a goose seen through goosectl", START_WAIT, || {
        let answer = goosectl(&nodes[&1].socket, &["--json", "status"]);
        let status: serde_json::Value = serde_json::from_slice(&answer.stdout).ok()?;
        status["goose"].as_u64()
    });
    // Without a terminal, the demo prints a line on each change.
    let announced = format!("goose: node {goose} ");
    let deadline = Instant::now() + START_WAIT;
    while !output.iter().any(|line| line.starts_with(&announced)) {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let line = receiver
            .recv_timeout(remaining)
            .unwrap_or_else(|_| panic!("no line announcing goose {goose}: {output:#?}"));
        output.push(line);
    }
    let (spare_id, spare) = nodes
        .iter()
        .find(|(_, node)| node.spare)
        .map(|(id, node)| (*id, node.clone()))
        .unwrap();
    let added = goosectl(
        &nodes[&goose].socket,
        &["member", "add", &spare_id.to_string(), &spare.addr],
    );
    assert!(
        added.status.success(),
        "member add of the spare: {}",
        String::from_utf8_lossy(&added.stderr)
    );

    let pid = Pid::from_raw(i32::try_from(guard.child.id()).unwrap());
    kill(pid, Signal::SIGTERM).expect("signal the demo");
    let status = wait_for(
        "the demo to exit after SIGTERM",
        Duration::from_secs(15),
        || guard.child.try_wait().ok().flatten(),
    );
    assert_eq!(
        status.code(),
        Some(0),
        "demo exit: {}",
        describe_exit(status)
    );
    let _ = reader.join();
    assert!(
        !directory.exists(),
        "{} was not removed",
        directory.display()
    );
    for node in nodes.values() {
        let alive = std::fs::read_to_string(format!("/proc/{}/cmdline", node.pid))
            .is_ok_and(|cmdline| cmdline.contains("goosed"));
        assert!(!alive, "node pid {} still runs after the demo", node.pid);
    }
}
