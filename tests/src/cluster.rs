//! A real-process test harness: clusters of `goosed run` child processes on
//! loopback, driven through `goosectl` and observed over the control socket
//! (design.md §9, tier 4).
//!
//! What it does for a test:
//!
//! - finds the `goosed` and `goosectl` binaries, building them once per test
//!   process with the same profile as the test (see [`binaries`]);
//! - allocates free loopback UDP ports, a temporary directory per cluster, a
//!   cluster key made with `goosectl keygen` (mode 0600);
//! - starts, signals (`SIGKILL`, `SIGTERM`, `SIGSTOP`, `SIGCONT`) and
//!   restarts nodes; each node's stderr goes to its own log file, whose tail
//!   is printed when a test panics ([`Cluster::panic_message`] finds a
//!   daemon's own panic there);
//! - does what operators do between starts: other timers for one node
//!   ([`Cluster::set_timers`], mixed timings or a rolling change), and a
//!   member rebuilt under its old id with its data directory moved aside
//!   and `--join` ([`Cluster::rebuild_as_joiner`]);
//! - gives nodes more `goosed run` flags, for every node or one of them,
//!   and a health check per node whose command names the node's own
//!   directory ([`Options::health_check`], [`Options::node_arguments`]);
//! - runs `goosectl` against a node with a bounded wait ([`Cluster::ctl`]),
//!   or hands the command over unstarted ([`Cluster::ctl_command`]);
//! - reads the daemons' clock, `CLOCK_BOOTTIME` ([`boottime_ns`]);
//! - polls every node's role in the background ([`RolePoller`]) and checks
//!   the goose rule of design.md §2 on what it saw ([`check_goose_samples`]).
//!
//! Everything is bounded: every wait has a timeout and panics with a message
//! saying what it waited for. Everything is cleaned up when the [`Cluster`]
//! is dropped, a panicking test included: children are killed and reaped,
//! the temporary directory is removed (set `GOOSE_E2E_KEEP=1` to keep it).
//! Children also get `SIGKILL` from the kernel if the thread that started
//! them dies without cleaning up (`PR_SET_PDEATHSIG`), so a test process
//! killed by a timeout leaves no daemon behind.
//!
//! Real-process clusters of one target directory run one at a time (a file
//! lock, [`exclusive`]): the machines that run these tests have two cores,
//! and two clusters with 150 ms election timeouts competing for them would
//! test the scheduler rather than the daemon.

use goose_common::control::{
    call_once, read_frame, write_frame, NodeRole, NodeStatus, Reply, Request,
};
use goose_common::datagram::ClusterKey;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long building the binaries may take (a cold build on two cores).
const BUILD_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// How long one `goosectl` invocation may take: the longest reply deadline
/// of the control protocol (`member add`, 60 s) plus goosectl's slack.
pub const CTL_TIMEOUT: Duration = Duration::from_secs(75);

/// How long a test waits for the file lock that serialises clusters.
const EXCLUSIVE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// How long a stopped node may take to exit after `SIGKILL` (it cannot
/// refuse; this only bounds the reaping).
const KILL_REAP_TIMEOUT: Duration = Duration::from_secs(10);

/// How many lines of each node's log are printed when a test fails.
const LOG_TAIL_LINES: usize = 40;

/// The longest a [`RolePoller`] runs, whatever the test does.
const POLLER_RUN_MAX: Duration = Duration::from_secs(15 * 60);

/// How long a poller waits for one answer before reconnecting.
const POLL_REPLY_TIMEOUT: Duration = Duration::from_millis(400);

/// The pause between two polls of one node.
const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// The pause between two checks of a [`wait_for`] condition.
const WAIT_INTERVAL: Duration = Duration::from_millis(20);

// ---------------------------------------------------------------------------
// Binaries.
// ---------------------------------------------------------------------------

/// Where the binaries under test are.
#[derive(Clone, Debug)]
pub struct Binaries {
    /// The daemon.
    pub goosed: PathBuf,
    /// The command-line tool.
    pub goosectl: PathBuf,
}

/// The binaries under test, built at most once per test process.
///
/// With `GOOSE_BIN_DIR` set, the binaries in that directory are used as
/// they are. Otherwise the harness runs
/// `cargo build --profile P --bin goosed --bin goosectl` for this
/// workspace, into the target directory holding the running test, with the
/// profile that writes there: `test` for `target/debug` (so the daemon gets
/// the test build's optimisation and debug assertions, and reuses the
/// library the test itself was built against), `bench` for
/// `target/release`, otherwise the directory's own name. Cargo makes this a
/// no-op when the binaries are fresh, and it guarantees the test never runs
/// stale binaries.
///
/// # Panics
/// If the build fails or the binaries cannot be found; the message says
/// how to build them by hand.
pub fn binaries() -> &'static Binaries {
    static BINARIES: OnceLock<Binaries> = OnceLock::new();
    BINARIES.get_or_init(|| match std::env::var_os("GOOSE_BIN_DIR") {
        Some(directory) => binaries_in(Path::new(&directory)),
        None => build_binaries(),
    })
}

fn binaries_in(directory: &Path) -> Binaries {
    let binaries = Binaries {
        goosed: directory.join("goosed"),
        goosectl: directory.join("goosectl"),
    };
    for path in [&binaries.goosed, &binaries.goosectl] {
        assert!(
            path.is_file(),
            "{} does not exist; build it with `cargo build --bin goosed --bin goosectl`",
            path.display()
        );
    }
    binaries
}

/// The directory of the running test's profile (`target/debug`): the
/// parent of `deps/` holding the test executable.
fn profile_directory() -> PathBuf {
    let executable = std::env::current_exe().expect("the test executable has a path");
    let parent = executable
        .parent()
        .expect("the test executable is in a directory");
    if parent.file_name().is_some_and(|name| name == "deps") {
        parent.parent().expect("deps/ has a parent").to_path_buf()
    } else {
        parent.to_path_buf()
    }
}

fn build_binaries() -> Binaries {
    let profile_directory = profile_directory();
    let profile_name = profile_directory
        .file_name()
        .and_then(|name| name.to_str())
        .expect("the profile directory has a UTF-8 name")
        .to_string();
    let profile = match profile_name.as_str() {
        "debug" => "test".to_string(),
        "release" => "bench".to_string(),
        other => other.to_string(),
    };
    let target_directory = profile_directory
        .parent()
        .expect("the profile directory is inside a target directory");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is inside the workspace");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut command = Command::new(cargo);
    command
        .arg("build")
        .arg("--quiet")
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_directory)
        .args([
            "--profile",
            &profile,
            "--bin",
            "goosed",
            "--bin",
            "goosectl",
        ])
        .stdin(Stdio::null());
    eprintln!("harness: building goosed and goosectl (profile {profile})");
    let output = run_bounded(&mut command, BUILD_TIMEOUT)
        .unwrap_or_else(|error| panic!("cannot run cargo build: {error}"));
    assert!(
        output.status.success(),
        "cargo build --profile {profile} --bin goosed --bin goosectl failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    binaries_in(&profile_directory)
}

// ---------------------------------------------------------------------------
// Small utilities.
// ---------------------------------------------------------------------------

/// Runs `command` to completion with its output captured, killing it after
/// `timeout`. Returns an error if it could not be started or timed out.
pub fn run_bounded(command: &mut Command, timeout: Duration) -> Result<Output, String> {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("cannot start {:?}: {error}", command.get_program()))?;
    let pid = pid_of(&child);
    let (sender, receiver) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let _ = sender.send(child.wait_with_output());
    });
    let result = match receiver.recv_timeout(timeout) {
        Ok(output) => output.map_err(|error| format!("waiting for {pid}: {error}")),
        Err(_) => {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = receiver.recv_timeout(KILL_REAP_TIMEOUT);
            Err(format!(
                "{:?} did not finish within {} ms and was killed",
                command.get_program(),
                timeout.as_millis()
            ))
        }
    };
    let _ = waiter.join();
    result
}

fn pid_of(child: &Child) -> Pid {
    Pid::from_raw(i32::try_from(child.id()).expect("process ids fit in i32"))
}

/// Makes `command`'s child receive `SIGKILL` when the thread that spawns it
/// dies, so that a test process killed from outside (a timeout) leaves no
/// daemon running.
#[allow(unsafe_code)]
pub fn kill_with_parent(command: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec and only
    // calls prctl(2), which is async-signal-safe; it allocates nothing and
    // touches no lock.
    unsafe {
        command.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
        });
    }
}

/// The stderr of an output, trimmed.
pub fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).trim().to_string()
}

/// Checks a poller's answers against the goose rule (no two goose answers
/// overlap, promises included) and that it saw goose answers at all;
/// prints and returns the summary line.
///
/// # Panics
/// If the rule is broken or no goose answer was seen.
pub fn assert_goose_rule(samples: &[Sample], context: &str) -> String {
    let summary = check_goose_samples(samples)
        .unwrap_or_else(|violation| panic!("{context}: goose rule broken: {violation}"));
    assert!(
        summary.goose_answers > 0,
        "{context}: the poller saw no goose answer in {} answers",
        summary.answers
    );
    let line = format!(
        "{context}: {} answers, {} goose answers, geese by term {:?}",
        summary.answers, summary.goose_answers, summary.geese
    );
    eprintln!("{line}");
    line
}

/// Polls `condition` every 20 ms until it returns `Some`, for at most
/// `timeout`.
///
/// # Panics
/// With `what` in the message if `timeout` passes first.
pub fn wait_for<T>(what: &str, timeout: Duration, mut condition: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = condition() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {} ms waiting for {what}",
            timeout.as_millis()
        );
        std::thread::sleep(WAIT_INTERVAL);
    }
}

/// `count` distinct UDP ports on 127.0.0.1 that were free a moment ago.
/// They are bound all at once and released together, so they differ; a
/// process elsewhere could still take one before the daemon binds it, which
/// shows as a clear start-up failure in the node's log.
pub fn free_udp_ports(count: usize) -> Vec<u16> {
    goosed::demo::free_loopback_addrs(count)
        .expect("free loopback UDP ports")
        .iter()
        .map(SocketAddr::port)
        .collect()
}

/// Writes a new cluster key, made by `goosectl keygen`, to `path` with mode
/// 0600, and returns it.
pub fn write_key(goosectl: &Path, path: &Path) -> ClusterKey {
    let output = run_bounded(
        Command::new(goosectl).arg("keygen").stdin(Stdio::null()),
        Duration::from_secs(10),
    )
    .expect("goosectl keygen runs");
    assert!(
        output.status.success(),
        "goosectl keygen failed: {output:?}"
    );
    let text = String::from_utf8(output.stdout).expect("a key is text");
    let key = ClusterKey::parse(&text).expect("goosectl keygen prints a valid key");
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .expect("create the key file");
    file.write_all(text.as_bytes()).expect("write the key file");
    // The umask cannot widen 0600, but make the mode explicit anyway.
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).expect("chmod 0600");
    key
}

/// The last `lines` lines of the file at `path` (at most 64 KiB are read).
pub fn tail(path: &Path, lines: usize) -> String {
    let Ok(mut file) = File::open(path) else {
        return format!("(no file {})", path.display());
    };
    let length = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(length.saturating_sub(64 * 1024)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// This host's `CLOCK_BOOTTIME` in nanoseconds: the clock of every
/// daemon's `clock_ns` and `lease_until_ns` (design.md §6).
pub fn boottime_ns() -> u64 {
    let spec = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .expect("CLOCK_BOOTTIME is readable");
    let seconds = u64::try_from(spec.tv_sec()).expect("CLOCK_BOOTTIME is never negative");
    let nanos = u64::try_from(spec.tv_nsec()).expect("nanoseconds are never negative");
    seconds * 1_000_000_000 + nanos
}

/// A guard that holds the file lock serialising real-process clusters of
/// this target directory.
pub struct ExclusiveGuard {
    _lock: Flock<File>,
}

/// Takes the lock serialising real-process clusters (see the module
/// documentation), waiting at most 30 minutes.
pub fn exclusive() -> ExclusiveGuard {
    let path = profile_directory().join("goose-e2e.lock");
    let deadline = Instant::now() + EXCLUSIVE_TIMEOUT;
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|error| panic!("cannot open {}: {error}", path.display()));
    let mut announced = false;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return ExclusiveGuard { _lock: lock },
            Err((returned, _)) => file = returned,
        }
        if !announced {
            eprintln!("harness: waiting for another cluster test to finish");
            announced = true;
        }
        assert!(
            Instant::now() < deadline,
            "another real-process test held {} for 30 minutes",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------
// The control protocol, spoken directly.
// ---------------------------------------------------------------------------

/// Sends one request to the daemon at `socket` over a new connection and
/// returns its reply, within `timeout` for the reply.
pub fn control_call(socket: &Path, request: &Request, timeout: Duration) -> Result<Reply, String> {
    call_once(socket, request, timeout).map_err(|error| format!("{}: {error}", socket.display()))
}

/// The daemon's own status over the control protocol, or `None` if it does
/// not answer within `timeout`.
pub fn status_direct(socket: &Path, timeout: Duration) -> Option<NodeStatus> {
    match control_call(socket, &Request::Status { local: true }, timeout) {
        Ok(Reply::NodeStatus(status)) => Some(status),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// The cluster.
// ---------------------------------------------------------------------------

/// How a cluster's daemons are started. The timers are every node's first
/// ones; [`Cluster::set_timers`] changes one node's for its next start.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `--heartbeat-ms`; the daemon's default when `None`.
    pub heartbeat_ms: Option<u64>,
    /// `--election-timeout-ms`; the daemon's default when `None`.
    pub election_timeout_ms: Option<u64>,
    /// `--promise-ms`; the daemon's default when `None`.
    pub promise_ms: Option<u64>,
    /// `--lease-margin-ms`; the daemon's default when `None`.
    pub lease_margin_ms: Option<u64>,
    /// Give every node `--on-goose` and `--on-duck` hooks that append
    /// `$GOOSE_ROLE $GOOSE_TERM $GOOSE_REASON` to the node's [`Cluster::hook_log`].
    pub record_hooks: bool,
    /// With `record_hooks`: `on_duck` sleeps this long first, and every
    /// hook line ends with when the hook began and ended (CLOCK_REALTIME ns,
    /// one clock for every node of the host), so a test can order the hooks
    /// of different nodes.
    pub on_duck_sleep: Option<Duration>,
    /// Run node N inside the network namespace `{prefix}N`, through
    /// `ip netns exec` (which execs, so the process id is the daemon's).
    pub netns_prefix: Option<String>,
    /// Give every node `--health-check` with this command, in which
    /// [`NODE_DIR_PLACEHOLDER`] stands for the node's directory
    /// ([`Cluster::node_dir`]), e.g. `test -f {dir}/healthy`; `None` runs
    /// without a check.
    pub health_check: Option<String>,
    /// More `goosed run` arguments for every node (e.g.
    /// `--health-interval-ms 100`), after the harness's own.
    pub extra_arguments: Vec<String>,
    /// More `goosed run` arguments for one node, by id, after
    /// `extra_arguments` (e.g. `--priority 200`).
    pub node_arguments: BTreeMap<u64, Vec<String>>,
}

/// What [`Options::health_check`] replaces by the node's directory.
pub const NODE_DIR_PLACEHOLDER: &str = "{dir}";

impl Options {
    /// Fast timers for tests that measure nothing: heartbeat 20 ms,
    /// election timeout 150 ms.
    pub fn fast() -> Options {
        Options {
            heartbeat_ms: Some(20),
            election_timeout_ms: Some(150),
            ..Options::default()
        }
    }

    /// The fast profile of design.md §8 (README "Timing"), every timer taken
    /// from the core's `Config::fast`.
    pub fn fast_profile() -> Options {
        let config = goosed::raft::Config::fast(goose_common::NodeId(1));
        let ms = |duration: Duration| Some(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX));
        Options {
            heartbeat_ms: ms(config.heartbeat_interval),
            election_timeout_ms: ms(config.election_timeout_min),
            promise_ms: ms(config.promise_max),
            lease_margin_ms: ms(config.lease_margin),
            ..Options::default()
        }
    }

    /// The election timeout in force (else the daemon's default).
    pub fn election_timeout(&self) -> Duration {
        self.election_timeout_ms.map_or_else(
            || goosed::raft::Config::new(goose_common::NodeId(1)).election_timeout_min,
            Duration::from_millis,
        )
    }
}

/// How a node takes part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// One of the initial voters (`--peer` for each of them).
    Initial,
    /// A node started with `--join`, waiting for `member add`.
    Joiner,
    /// A node of another cluster: the initial peers plus itself, but its
    /// own key.
    Stranger,
}

/// The timers a node is started with; each `None` is the daemon's default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timers {
    /// `--heartbeat-ms`.
    pub heartbeat_ms: Option<u64>,
    /// `--election-timeout-ms`.
    pub election_timeout_ms: Option<u64>,
    /// `--promise-ms`.
    pub promise_ms: Option<u64>,
    /// `--lease-margin-ms`.
    pub lease_margin_ms: Option<u64>,
}

impl Timers {
    /// The timers of these options.
    pub fn of(options: &Options) -> Timers {
        Timers {
            heartbeat_ms: options.heartbeat_ms,
            election_timeout_ms: options.election_timeout_ms,
            promise_ms: options.promise_ms,
            lease_margin_ms: options.lease_margin_ms,
        }
    }

    fn arguments(&self) -> Vec<OsString> {
        let timers = [
            ("--heartbeat-ms", self.heartbeat_ms),
            ("--election-timeout-ms", self.election_timeout_ms),
            ("--promise-ms", self.promise_ms),
            ("--lease-margin-ms", self.lease_margin_ms),
        ];
        timers
            .into_iter()
            .filter_map(|(flag, value)| value.map(|value| [flag.into(), value.to_string().into()]))
            .flatten()
            .collect()
    }
}

/// One daemon of the cluster.
struct Node {
    addr: SocketAddr,
    directory: PathBuf,
    socket: PathBuf,
    log: PathBuf,
    /// Everything but the peers, `--join` and the timers.
    arguments: Vec<OsString>,
    /// The `--peer` list (empty for a joiner).
    peers: Vec<(u64, SocketAddr)>,
    /// Whether it starts with `--join`.
    join: bool,
    /// The timers of its next start.
    timers: Timers,
    /// How many data directories were moved aside so far.
    set_aside: u32,
    child: Option<Child>,
    paused: bool,
}

impl Node {
    /// The full `goosed` command line of its next start.
    fn command_line(&self) -> Vec<OsString> {
        let mut arguments = self.arguments.clone();
        for (peer, peer_addr) in &self.peers {
            arguments.push("--peer".into());
            arguments.push(format!("{peer}={peer_addr}").into());
        }
        if self.join {
            arguments.push("--join".into());
        }
        arguments.extend(self.timers.arguments());
        arguments
    }
}

/// A cluster of `goosed run` processes on loopback (see the module
/// documentation).
pub struct Cluster {
    binaries: &'static Binaries,
    options: Options,
    root: Option<tempfile::TempDir>,
    key_file: PathBuf,
    key: ClusterKey,
    config_file: PathBuf,
    initial: Vec<(u64, SocketAddr)>,
    nodes: BTreeMap<u64, Node>,
    _exclusive: ExclusiveGuard,
}

impl Cluster {
    /// Starts `count` initial voters, ids 1 to `count`, and returns at once
    /// (use [`Cluster::wait_for_goose`] to wait for an election).
    pub fn start(count: u64, options: Options) -> Cluster {
        let mut cluster = Cluster::new(count, options);
        for id in 1..=count {
            cluster.start_node(id);
        }
        cluster
    }

    /// Prepares a cluster of `count` initial voters on loopback without
    /// starting any.
    pub fn new(count: u64, options: Options) -> Cluster {
        let count_usize = usize::try_from(count).expect("a small count");
        let initial: Vec<(u64, SocketAddr)> = (1..=count)
            .zip(free_udp_ports(count_usize))
            .map(|(id, port)| (id, SocketAddr::from(([127, 0, 0, 1], port))))
            .collect();
        Cluster::new_at(initial, options)
    }

    /// Prepares a cluster of initial voters at these addresses without
    /// starting any.
    pub fn new_at(initial: Vec<(u64, SocketAddr)>, options: Options) -> Cluster {
        let exclusive = exclusive();
        let binaries = binaries();
        let root = tempfile::Builder::new()
            .prefix("goose-e2e-")
            .tempdir()
            .expect("create a temporary directory");
        let key_file = root.path().join("cluster.key");
        let key = write_key(&binaries.goosectl, &key_file);
        // An empty configuration file keeps a host's /etc/goose/goosed.toml
        // out of the test.
        let config_file = root.path().join("goosed.toml");
        fs::write(&config_file, "").expect("write the empty configuration");
        let mut cluster = Cluster {
            binaries,
            options,
            root: Some(root),
            key_file,
            key,
            config_file,
            initial: initial.clone(),
            nodes: BTreeMap::new(),
            _exclusive: exclusive,
        };
        for (id, addr) in initial {
            cluster.prepare_node(id, addr, NodeKind::Initial);
        }
        cluster
    }

    /// The temporary directory holding every node's files.
    pub fn root(&self) -> &Path {
        self.root
            .as_ref()
            .expect("the root lives until drop")
            .path()
    }

    /// The cluster key.
    pub fn key(&self) -> &ClusterKey {
        &self.key
    }

    /// The cluster key file.
    pub fn key_file(&self) -> &Path {
        &self.key_file
    }

    /// The options the daemons were started with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The binaries under test.
    pub fn binaries(&self) -> &'static Binaries {
        self.binaries
    }

    /// The ids of every node the harness knows, running or not.
    pub fn ids(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    /// The ids of the nodes whose process is running (paused ones included).
    pub fn running_ids(&self) -> Vec<u64> {
        let ids = self.ids();
        ids.into_iter().filter(|id| self.is_running(*id)).collect()
    }

    /// A node's UDP address.
    pub fn addr(&self, id: u64) -> SocketAddr {
        self.node(id).addr
    }

    /// A node's control socket.
    pub fn socket(&self, id: u64) -> PathBuf {
        self.node(id).socket.clone()
    }

    /// A node's data directory.
    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.node(id).directory.join("data")
    }

    /// The message of the first panic in a node's log (the `panicked at`
    /// line and the one after it), if it panicked: the log tail printed on
    /// failure may hold only the backtrace.
    pub fn panic_message(&self, id: u64) -> Option<String> {
        let text = fs::read_to_string(&self.node(id).log).ok()?;
        let lines: Vec<&str> = text.lines().collect();
        let at = lines.iter().position(|line| line.contains("panicked at"))?;
        Some(lines[at..lines.len().min(at + 2)].join(" "))
    }

    /// A node's own directory: its data directory, socket, log and hook
    /// log are inside, and [`Options::health_check`]'s
    /// [`NODE_DIR_PLACEHOLDER`] stands for it.
    pub fn node_dir(&self, id: u64) -> PathBuf {
        self.node(id).directory.clone()
    }

    /// The file a node's hooks append to (with [`Options::record_hooks`]).
    pub fn hook_log(&self, id: u64) -> PathBuf {
        self.node(id).directory.join("hooks.log")
    }

    /// A node's process id, if it runs.
    pub fn pid(&self, id: u64) -> Option<Pid> {
        self.node(id).child.as_ref().map(pid_of)
    }

    /// The sockets of every node, for a [`RolePoller`].
    pub fn sockets(&self) -> Vec<(u64, PathBuf)> {
        self.nodes
            .iter()
            .map(|(id, node)| (*id, node.socket.clone()))
            .collect()
    }

    fn node(&self, id: u64) -> &Node {
        self.nodes
            .get(&id)
            .unwrap_or_else(|| panic!("no node {id} in this cluster"))
    }

    fn node_mut(&mut self, id: u64) -> &mut Node {
        self.nodes
            .get_mut(&id)
            .unwrap_or_else(|| panic!("no node {id} in this cluster"))
    }

    /// Records a node and the arguments it will always be started with.
    fn prepare_node(&mut self, id: u64, addr: SocketAddr, kind: NodeKind) {
        let directory = self.root().join(format!("node-{id}"));
        fs::create_dir_all(directory.join("data")).expect("create the node directory");
        let socket = directory.join("goosed.sock");
        let log = directory.join("goosed.log");
        let key_file = match kind {
            NodeKind::Stranger => {
                let path = directory.join("stranger.key");
                write_key(&self.binaries.goosectl, &path);
                path
            }
            NodeKind::Initial | NodeKind::Joiner => self.key_file.clone(),
        };
        let mut arguments: Vec<OsString> = vec![
            "run".into(),
            "--config".into(),
            self.config_file.clone().into(),
            "--id".into(),
            id.to_string().into(),
            "--listen".into(),
            addr.to_string().into(),
            "--data-dir".into(),
            directory.join("data").into(),
            "--socket".into(),
            socket.clone().into(),
            "--key-file".into(),
            key_file.into(),
        ];
        let mut peers = match kind {
            NodeKind::Initial | NodeKind::Stranger => self.initial.clone(),
            NodeKind::Joiner => Vec::new(),
        };
        if kind == NodeKind::Stranger {
            peers.push((id, addr));
        }
        if self.options.record_hooks {
            let hook_log = directory.join("hooks.log");
            let (on_goose, on_duck) = match self.options.on_duck_sleep {
                None => {
                    let command = format!(
                        "echo \"$GOOSE_ROLE $GOOSE_TERM $GOOSE_REASON\" >> '{}'",
                        hook_log.display()
                    );
                    (command.clone(), command)
                }
                Some(sleep) => {
                    let line = "\"$GOOSE_ROLE $GOOSE_TERM $GOOSE_REASON $begin $(date +%s%N)\"";
                    let on_goose = format!(
                        "begin=$(date +%s%N); echo {line} >> '{}'",
                        hook_log.display()
                    );
                    let on_duck = format!(
                        "begin=$(date +%s%N); sleep {:.3}; echo {line} >> '{}'",
                        sleep.as_secs_f64(),
                        hook_log.display()
                    );
                    (on_goose, on_duck)
                }
            };
            arguments.extend(["--on-goose".into(), on_goose.into()]);
            arguments.extend(["--on-duck".into(), on_duck.into()]);
        }
        if let Some(template) = &self.options.health_check {
            let command = template.replace(NODE_DIR_PLACEHOLDER, &directory.to_string_lossy());
            arguments.extend(["--health-check".into(), command.into()]);
        }
        arguments.extend(self.options.extra_arguments.iter().map(OsString::from));
        if let Some(extra) = self.options.node_arguments.get(&id) {
            arguments.extend(extra.iter().map(OsString::from));
        }
        let node = Node {
            addr,
            directory,
            socket,
            log,
            arguments,
            peers,
            join: kind == NodeKind::Joiner,
            timers: Timers::of(&self.options),
            set_aside: 0,
            child: None,
            paused: false,
        };
        assert!(
            self.nodes.insert(id, node).is_none(),
            "node {id} already exists"
        );
    }

    /// Prepares and starts a node with `--join` on a new port; returns its
    /// address for `member add`.
    pub fn start_joiner(&mut self, id: u64) -> SocketAddr {
        self.start_extra(id, NodeKind::Joiner)
    }

    /// Starts a second goosed under running node `id`'s id, on its own
    /// port and socket, beside the original, with the original's flags:
    /// from a copy of its data directory (`Beside::Copy`, as an operator
    /// copying it to another host would), or from an empty one
    /// (`Beside::Fresh`, a new identity that bootstraps from the same
    /// `--peer` flags). The child dies with the test; kill it to stop it.
    pub fn start_beside(&mut self, id: u64, kind: Beside) -> BesideProcess {
        let name = match kind {
            Beside::Copy => "copy-of",
            Beside::Fresh => "fresh-under",
        };
        let copy = self.root().join(format!("{name}-{id}"));
        let data = copy.join("data");
        fs::create_dir_all(&copy).expect("create the second process's directory");
        if kind == Beside::Copy {
            let copied = Command::new("cp")
                .arg("-a")
                .arg(self.data_dir(id))
                .arg(&data)
                .status()
                .expect("run cp");
            assert!(
                copied.success(),
                "cp -a of node {id}'s data directory failed"
            );
        }
        let port = free_udp_ports(1)[0];
        let mut arguments = self.node_mut(id).command_line();
        // A copy holds a log, so goosed ignores --peer, but it checks that
        // its own entry names its own address; a fresh one bootstraps from
        // them.
        let own = OsString::from(format!("{id}={}", self.addr(id)));
        for argument in arguments.iter_mut().filter(|a| **a == own) {
            *argument = format!("{id}=127.0.0.1:{port}").into();
        }
        let replace = |arguments: &mut Vec<OsString>, flag: &str, value: OsString| {
            let at = arguments
                .iter()
                .position(|a| a == flag)
                .expect("the flag is set");
            arguments[at + 1] = value;
        };
        replace(
            &mut arguments,
            "--listen",
            format!("127.0.0.1:{port}").into(),
        );
        replace(&mut arguments, "--data-dir", data.into());
        let socket = copy.join("goosed.sock");
        replace(&mut arguments, "--socket", socket.clone().into());
        let log_path = copy.join("goosed.log");
        let log = File::create(&log_path).expect("create the second process's log");
        let mut command = Command::new(&self.binaries.goosed);
        command
            .args(arguments)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log);
        kill_with_parent(&mut command);
        let child = command.spawn().expect("spawn the second process");
        BesideProcess {
            child,
            socket,
            log: log_path,
        }
    }

    /// Prepares and starts a node of another cluster (its own key) that
    /// names the initial voters and itself as its peers; returns its address.
    pub fn start_stranger(&mut self, id: u64) -> SocketAddr {
        self.start_extra(id, NodeKind::Stranger)
    }

    fn start_extra(&mut self, id: u64, kind: NodeKind) -> SocketAddr {
        let port = free_udp_ports(1)[0];
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        self.prepare_node(id, addr, kind);
        self.start_node(id);
        addr
    }

    /// Starts a prepared node that is not running (again after a stop: its
    /// data directory is kept, so this is a restart).
    ///
    /// # Panics
    /// If the node already runs or cannot be spawned.
    pub fn start_node(&mut self, id: u64) {
        let goosed = self.binaries.goosed.clone();
        let node = self.node_mut(id);
        assert!(node.child.is_none(), "node {id} is already running");
        let log_path = node.log.clone();
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("open the node's log");
        let _ = writeln!(log, "=== harness: starting node {id} ===");
        let mut command = match &self.options.netns_prefix {
            Some(prefix) => {
                let mut command = Command::new("ip");
                command
                    .args(["netns", "exec", &format!("{prefix}{id}")])
                    .arg(goosed);
                command
            }
            None => Command::new(goosed),
        };
        let node = self.nodes.get_mut(&id).expect("checked above");
        command
            .args(node.command_line())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log file"))
            .stderr(log)
            .env_remove("GOOSE_SOCKET");
        for name in goosed::config::SERVICE_ENVIRONMENT {
            command.env_remove(name);
        }
        kill_with_parent(&mut command);
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start node {id}: {error}"));
        node.child = Some(child);
        node.paused = false;
    }

    /// Whether a node's process is running (a paused one included). Reaps
    /// it if it exited.
    pub fn is_running(&self, id: u64) -> bool {
        // try_wait needs &mut; the harness keeps this query on &self by
        // asking the kernel whether the pid still exists and is not a zombie.
        let Some(child) = self.node(id).child.as_ref() else {
            return false;
        };
        let status = fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap_or_default();
        // The state is the field after the parenthesised command name.
        let state = status
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or("X");
        !matches!(state, "Z" | "X" | "x")
    }

    /// Whether a node is paused with `SIGSTOP`.
    pub fn is_paused(&self, id: u64) -> bool {
        self.node(id).paused
    }

    /// Sends `signal` to a node's process.
    ///
    /// # Panics
    /// If the node is not running.
    pub fn signal(&mut self, id: u64, signal: Signal) {
        let pid = self
            .pid(id)
            .unwrap_or_else(|| panic!("node {id} is not running"));
        kill(pid, signal).unwrap_or_else(|error| panic!("kill -{signal} node {id}: {error}"));
        match signal {
            Signal::SIGSTOP => self.node_mut(id).paused = true,
            Signal::SIGCONT => self.node_mut(id).paused = false,
            _ => {}
        }
    }

    /// Kills a node with `SIGKILL` and reaps it.
    pub fn kill(&mut self, id: u64) {
        let node = self.node_mut(id);
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        node.paused = false;
    }

    /// Pauses a node with `SIGSTOP`.
    pub fn pause(&mut self, id: u64) {
        self.signal(id, Signal::SIGSTOP);
    }

    /// Resumes a paused node with `SIGCONT`.
    pub fn resume(&mut self, id: u64) {
        self.signal(id, Signal::SIGCONT);
    }

    /// Sends `SIGTERM` and waits up to `timeout` for the node to exit.
    /// Returns its exit status and how long it took, or `None` if it was
    /// still running (it is then killed).
    pub fn terminate(&mut self, id: u64, timeout: Duration) -> Option<(ExitStatus, Duration)> {
        let started = Instant::now();
        self.signal(id, Signal::SIGTERM);
        let status = self.wait_exit(id, timeout);
        if status.is_none() {
            self.kill(id);
        }
        status.map(|status| (status, started.elapsed()))
    }

    /// Waits up to `timeout` for a node's process to exit by itself and
    /// reaps it.
    pub fn wait_exit(&mut self, id: u64, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let node = self.node_mut(id);
            let child = node.child.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                node.child = None;
                node.paused = false;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sets the timers of a node's next start (a running node keeps its
    /// own until restarted): mixed timings, or a rolling change of them.
    pub fn set_timers(&mut self, id: u64, timers: Timers) {
        self.node_mut(id).timers = timers;
    }

    /// Rebuilds a stopped node as a new member under its old id and address
    /// (README "Recovering a corrupted data directory"): its data directory
    /// is moved aside (kept, returned) and replaced by an empty one, and its
    /// next start is with `--join` and no `--peer`.
    ///
    /// # Panics
    /// If the node is running, or on a file system error.
    pub fn rebuild_as_joiner(&mut self, id: u64) -> PathBuf {
        assert!(
            !self.is_running(id),
            "node {id} must be stopped before its data directory is moved"
        );
        let data = self.data_dir(id);
        let node = self.node_mut(id);
        node.set_aside += 1;
        let aside = node
            .directory
            .join(format!("data.aside-{}", node.set_aside));
        fs::rename(&data, &aside).unwrap_or_else(|error| {
            panic!(
                "cannot move {} to {}: {error}",
                data.display(),
                aside.display()
            )
        });
        fs::create_dir_all(&data).expect("create the new data directory");
        node.peers.clear();
        node.join = true;
        aside
    }

    /// The `goosectl --socket <node's socket> ARGS` command, not started,
    /// for a test that needs the process itself (to signal it).
    pub fn ctl_command(&self, id: u64, arguments: &[&str]) -> Command {
        let mut command = Command::new(&self.binaries.goosectl);
        command
            .arg("--socket")
            .arg(self.socket(id))
            .args(arguments)
            .stdin(Stdio::null())
            .env_remove("GOOSE_SOCKET");
        command
    }

    /// Runs `goosectl --socket <node's socket> ARGS` with a bounded wait.
    ///
    /// # Panics
    /// If goosectl cannot be started or runs past [`CTL_TIMEOUT`].
    pub fn ctl(&self, id: u64, arguments: &[&str]) -> Output {
        let mut command = self.ctl_command(id, arguments);
        run_bounded(&mut command, CTL_TIMEOUT)
            .unwrap_or_else(|error| panic!("goosectl {arguments:?} on node {id}: {error}"))
    }

    /// [`Cluster::ctl`] that must succeed; returns stdout.
    ///
    /// # Panics
    /// If goosectl exits non-zero; the message has its stderr.
    pub fn ctl_ok(&self, id: u64, arguments: &[&str]) -> String {
        let output = self.ctl(id, arguments);
        assert!(
            output.status.success(),
            "goosectl {} on node {id} failed ({}): {}",
            arguments.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
        String::from_utf8(output.stdout).expect("goosectl prints UTF-8")
    }

    /// `goosectl --json status --local` of a node as JSON, or `None` if the
    /// node does not answer (not running, paused, or an error).
    pub fn status_local_json(&self, id: u64) -> Option<serde_json::Value> {
        if !self.is_running(id) || self.is_paused(id) {
            return None;
        }
        let output = self.ctl(id, &["--json", "status", "--local"]);
        if !output.status.success() {
            return None;
        }
        serde_json::from_slice(&output.stdout).ok()
    }

    /// A node's own status over the control protocol (faster than goosectl).
    pub fn status_direct(&self, id: u64) -> Option<NodeStatus> {
        if !self.is_running(id) || self.is_paused(id) {
            return None;
        }
        status_direct(&self.node(id).socket, Duration::from_secs(2))
    }

    /// The answers of every running, unpaused node to
    /// `goosectl --json status --local`, by id.
    pub fn statuses(&self) -> BTreeMap<u64, serde_json::Value> {
        self.ids()
            .into_iter()
            .filter_map(|id| self.status_local_json(id).map(|status| (id, status)))
            .collect()
    }

    /// The node that answers goose, asking each running node's
    /// `goosectl --json status --local`; `None` unless exactly one does.
    ///
    /// # Panics
    /// If two nodes answer goose with overlapping promises (design.md §2):
    /// answers asked one after the other may name two geese in turn, but
    /// never two whose promises overlap.
    pub fn goose(&self) -> Option<u64> {
        let geese: Vec<(u64, serde_json::Value)> = self
            .statuses()
            .into_iter()
            .filter(|(_, status)| status["role"] == "goose")
            .collect();
        if geese.len() > 1 {
            let samples: Vec<Sample> = geese
                .iter()
                .filter_map(|(_, status)| Sample::from_json(status))
                .collect();
            if let Err(violation) = check_goose_samples(&samples) {
                panic!("{violation}");
            }
        }
        match geese.as_slice() {
            [(id, _)] => Some(*id),
            _ => None,
        }
    }

    /// Waits up to `timeout` for exactly one node to answer goose.
    pub fn wait_for_goose(&self, timeout: Duration) -> u64 {
        wait_for("a goose", timeout, || {
            assert!(
                !self.running_ids().is_empty(),
                "no node is running (see the logs below)"
            );
            self.goose()
        })
    }

    /// Waits up to `timeout` for a goose among `ids`.
    pub fn wait_for_goose_among(&self, ids: &[u64], timeout: Duration) -> u64 {
        wait_for(&format!("a goose among {ids:?}"), timeout, || {
            self.goose().filter(|goose| ids.contains(goose))
        })
    }

    /// Checks for `duration` that no running node answers goose.
    ///
    /// # Panics
    /// Naming the node, at the first goose answer; or if no node answered
    /// at all (silence proves nothing).
    pub fn assert_no_goose_for(&self, duration: Duration) {
        let deadline = Instant::now() + duration;
        let mut answers = 0usize;
        while Instant::now() < deadline {
            for (id, status) in self.statuses() {
                answers += 1;
                assert_ne!(
                    status["role"], "goose",
                    "node {id} answered goose where no goose may be: {status}"
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(answers > 0, "no node answered a status question");
    }

    /// Starts a [`RolePoller`] on every node known now.
    pub fn start_poller(&self) -> RolePoller {
        RolePoller::start(self.sockets())
    }

    /// Prints the tail of every node's log to stderr.
    pub fn dump_logs(&self) {
        for (id, node) in &self.nodes {
            eprintln!(
                "----- node {id} ({}) log tail: {} -----\n{}",
                node.addr,
                node.log.display(),
                tail(&node.log, LOG_TAIL_LINES)
            );
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let ids = self.ids();
        for id in &ids {
            let node = self.node_mut(*id);
            if let Some(child) = node.child.as_mut() {
                // A stopped process still dies of SIGKILL; SIGCONT is for
                // good measure.
                let _ = kill(pid_of(child), Signal::SIGCONT);
                let _ = child.kill();
            }
        }
        for id in &ids {
            let node = self.node_mut(*id);
            if let Some(mut child) = node.child.take() {
                let _ = child.wait();
            }
        }
        if std::thread::panicking() {
            self.dump_logs();
        }
        if let Some(root) = self.root.take() {
            if std::env::var_os("GOOSE_E2E_KEEP").is_some() {
                eprintln!("harness: kept {}", root.keep().display());
            } else {
                let path = root.path().to_path_buf();
                if let Err(error) = root.close() {
                    eprintln!("harness: cannot remove {}: {error}", path.display());
                }
            }
        }
    }
}

pub use goosed::demo::describe_exit;

/// What [`Cluster::start_beside`] starts the second process from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Beside {
    /// A copy of the member's data directory (the same identity).
    Copy,
    /// An empty data directory (a new identity).
    Fresh,
}

/// A second goosed under a member's id.
#[derive(Debug)]
pub struct BesideProcess {
    /// The process.
    pub child: Child,
    /// Its control socket.
    pub socket: PathBuf,
    /// Its log.
    pub log: PathBuf,
}

// ---------------------------------------------------------------------------
// Watching the goose rule.
// ---------------------------------------------------------------------------

/// One node's answer, as a [`RolePoller`] saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// The answering process: the label the poller was given for its
    /// socket (the node id, or another number for a second process under
    /// one id, so that the two count as different answerers).
    pub node: u64,
    /// Whether it answered goose.
    pub goose: bool,
    /// Its term.
    pub term: u64,
    /// Its `CLOCK_BOOTTIME` when it decided.
    pub clock_ns: u64,
    /// Its promise, if goose.
    pub lease_until_ns: Option<u64>,
}

impl Sample {
    /// The sample of a [`NodeStatus`].
    pub fn from_status(status: &NodeStatus) -> Sample {
        Sample {
            node: status.id.0,
            goose: status.role == NodeRole::Goose,
            term: status.term.0,
            clock_ns: status.clock_ns,
            lease_until_ns: status.lease_until_ns,
        }
    }

    /// The sample of a `status --local --json` object, if it has the
    /// contract's fields.
    pub fn from_json(status: &serde_json::Value) -> Option<Sample> {
        Some(Sample {
            node: status["id"].as_u64()?,
            goose: status["role"] == "goose",
            term: status["term"].as_u64()?,
            clock_ns: status["clock_ns"].as_u64()?,
            lease_until_ns: status["lease_until_ns"].as_u64(),
        })
    }
}

/// What [`check_goose_samples`] found in a run that kept the rule.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GooseSummary {
    /// Every answer checked.
    pub answers: usize,
    /// The goose answers among them.
    pub goose_answers: usize,
    /// The goose of each term that had one.
    pub geese: BTreeMap<u64, u64>,
}

/// Checks answers against the goose rule (design.md §2), on the one clock
/// every daemon of a host shares:
///
/// 1. in each term at most one node answers goose;
/// 2. in clock order, the terms of goose answers never go back (no goose
///    answer of term t is later than one of a higher term);
/// 3. the intervals `[clock_ns, lease_until_ns]` of goose answers from
///    different nodes never overlap: no node answers goose while another's
///    promise runs;
/// 4. every goose answer carries a promise no earlier than its clock.
///
/// Returns a summary, or a description of the first violation.
pub fn check_goose_samples(samples: &[Sample]) -> Result<GooseSummary, String> {
    let mut geese: Vec<&Sample> = samples.iter().filter(|sample| sample.goose).collect();
    geese.sort_by_key(|sample| (sample.clock_ns, sample.node));
    let mut summary = GooseSummary {
        answers: samples.len(),
        goose_answers: geese.len(),
        geese: BTreeMap::new(),
    };
    // The latest promise of each node so far, with the answer that made it.
    let mut promises: BTreeMap<u64, &Sample> = BTreeMap::new();
    let mut previous: Option<&Sample> = None;
    for sample in geese {
        let Some(until) = sample.lease_until_ns else {
            return Err(format!("a goose answer without a promise: {sample:?}"));
        };
        if until < sample.clock_ns {
            return Err(format!("a promise earlier than its answer: {sample:?}"));
        }
        let owner = summary.geese.entry(sample.term).or_insert(sample.node);
        if *owner != sample.node {
            return Err(format!(
                "two geese in term {}: nodes {} and {} ({sample:?})",
                sample.term, owner, sample.node
            ));
        }
        if let Some(previous) = previous {
            if previous.term > sample.term {
                return Err(format!(
                    "a goose answer of term {} came after one of term {}: {previous:?} then {sample:?}",
                    sample.term, previous.term
                ));
            }
        }
        for (node, promise) in &promises {
            let promised_until = promise.lease_until_ns.unwrap_or(0);
            if *node != sample.node && promised_until > sample.clock_ns {
                return Err(format!(
                    "node {} answered goose at {} ns while node {node} had promised to be the \
                     only goose until {promised_until} ns: {promise:?} then {sample:?}",
                    sample.node, sample.clock_ns
                ));
            }
        }
        let entry = promises.entry(sample.node).or_insert(sample);
        if entry.lease_until_ns < sample.lease_until_ns {
            *entry = sample;
        }
        previous = Some(sample);
    }
    Ok(summary)
}

/// Polls every node's own status over the control socket in the
/// background, one thread per node, every few milliseconds, and keeps every
/// answer for [`check_goose_samples`]. Stops at [`RolePoller::stop`], on
/// drop, or after 15 minutes whatever happens.
pub struct RolePoller {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    samples: Arc<Mutex<Vec<Sample>>>,
}

impl RolePoller {
    /// Starts polling these sockets.
    pub fn start(sockets: Vec<(u64, PathBuf)>) -> RolePoller {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let threads = sockets
            .into_iter()
            .map(|(id, socket)| {
                let stop = Arc::clone(&stop);
                let samples = Arc::clone(&samples);
                std::thread::Builder::new()
                    .name(format!("poll-{id}"))
                    .spawn(move || poll_node(id, &socket, &stop, &samples))
                    .expect("spawn a poller thread")
            })
            .collect();
        RolePoller {
            stop,
            threads,
            samples,
        }
    }

    /// Stops polling and returns every answer seen.
    pub fn stop(mut self) -> Vec<Sample> {
        self.halt();
        self.samples
            .lock()
            .map(|mut samples| std::mem::take(&mut *samples))
            .unwrap_or_default()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for RolePoller {
    fn drop(&mut self) {
        self.halt();
    }
}

/// The loop of one poller thread: one connection, reused while it works.
fn poll_node(label: u64, socket: &Path, stop: &AtomicBool, samples: &Mutex<Vec<Sample>>) {
    let deadline = Instant::now() + POLLER_RUN_MAX;
    let mut connection: Option<UnixStream> = None;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        if connection.is_none() {
            connection = UnixStream::connect(socket).ok().filter(|stream| {
                stream.set_read_timeout(Some(POLL_REPLY_TIMEOUT)).is_ok()
                    && stream.set_write_timeout(Some(POLL_REPLY_TIMEOUT)).is_ok()
            });
        }
        let answer = connection.as_mut().and_then(|stream| {
            write_frame(stream, &Request::Status { local: true }).ok()?;
            match read_frame(stream) {
                Ok(Reply::NodeStatus(status)) => Some(status),
                _ => None,
            }
        });
        match answer {
            Some(status) => {
                if let Ok(mut samples) = samples.lock() {
                    samples.push(Sample {
                        node: label,
                        ..Sample::from_status(&status)
                    });
                }
                std::thread::sleep(POLL_INTERVAL);
            }
            None => {
                connection = None;
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Goal: the goose-rule checker accepts a clean handover and catches
    //! each kind of violation it is meant to catch.
    use super::*;

    fn goose(node: u64, term: u64, clock_ns: u64, until: u64) -> Sample {
        Sample {
            node,
            goose: true,
            term,
            clock_ns,
            lease_until_ns: Some(until),
        }
    }

    #[test]
    fn a_clean_handover_passes() {
        let samples = [
            goose(1, 2, 100, 110),
            goose(1, 2, 105, 115),
            goose(2, 3, 120, 130),
        ];
        let summary = check_goose_samples(&samples).expect("no violation");
        assert_eq!(summary.goose_answers, 3);
        assert_eq!(summary.geese, BTreeMap::from([(2, 1), (3, 2)]));
    }

    #[test]
    fn two_geese_in_one_term_fail() {
        let samples = [goose(1, 2, 100, 110), goose(2, 2, 200, 210)];
        assert!(check_goose_samples(&samples)
            .unwrap_err()
            .contains("two geese"));
    }

    #[test]
    fn an_older_term_after_a_newer_one_fails() {
        let samples = [goose(2, 3, 100, 110), goose(1, 2, 200, 210)];
        assert!(check_goose_samples(&samples)
            .unwrap_err()
            .contains("came after"));
    }

    #[test]
    fn overlapping_promises_fail() {
        let samples = [goose(1, 2, 100, 150), goose(2, 3, 120, 130)];
        assert!(check_goose_samples(&samples)
            .unwrap_err()
            .contains("promised"));
    }
}
