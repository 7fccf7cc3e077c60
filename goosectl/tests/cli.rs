//! Runs the built goosectl binary against nothing, against a missing
//! socket, and against a fake daemon (a thread speaking the control
//! protocol on a Unix socket in a temporary directory), and checks exit
//! codes, the one-line error rule, and the text and JSON output of design.md §6.

use goose_common::control::{
    read_frame, write_frame, ClusterStatus, ErrorKind, HealthState, NodeRole, NodeStatus, Reply,
    Request, WatchEvent, WatchEventKind,
};
use goose_common::partition::{Chain, DropPercent, ListedRule, Matcher, Rule};
use goose_common::{LogIndex, NodeId, Term};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long the fake daemon waits for a request before giving up on a client.
const FAKE_DAEMON_READ_TIMEOUT: Duration = Duration::from_secs(10);

fn goosectl(socket: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_goosectl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("GOOSE_SOCKET")
        .output()
        .expect("goosectl runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// Checks the error rule: exit 2 and exactly one `goosectl: ` line on stderr.
fn assert_one_line_error(output: &Output) -> String {
    let text = stderr(output);
    assert_eq!(output.status.code(), Some(2), "stderr: {text}");
    assert_eq!(text.lines().count(), 1, "stderr: {text:?}");
    assert!(text.starts_with("goosectl: "), "stderr: {text:?}");
    assert!(text.ends_with('\n'));
    text
}

/// A promise long enough that no delay of a test run can outlast it.
const LONG_PROMISE: Duration = Duration::from_secs(3600);

/// This host's `CLOCK_BOOTTIME`, the clock goosectl judges answers on.
fn boottime_ns() -> u64 {
    goose_common::answer::boottime().unwrap().as_nanos()
}

/// An answer decided now on this host's clock; a goose promises
/// [`LONG_PROMISE`] ahead (`lease 3600000 ms` in text).
fn node(id: u64, role: NodeRole) -> NodeStatus {
    let now = boottime_ns();
    answer_with(id, role, now, lease_after(now, role, LONG_PROMISE))
}

fn lease_after(now: u64, role: NodeRole, promise: Duration) -> Option<u64> {
    let promise = u64::try_from(promise.as_nanos()).unwrap();
    (role == NodeRole::Goose).then_some(now + promise)
}

fn answer_with(id: u64, role: NodeRole, clock_ns: u64, lease_until_ns: Option<u64>) -> NodeStatus {
    NodeStatus {
        id: NodeId(id),
        addr: format!("10.0.0.{id}:7700").parse().unwrap(),
        role,
        term: Term(7),
        leader_id: Some(NodeId(3)),
        commit_index: LogIndex(5),
        voter: true,
        clock_ns,
        lease_until_ns,
        last_index: LogIndex(5),
        removed: false,
        drops: Default::default(),
        eligible: role != NodeRole::Unreachable,
        health: HealthState::None,
        health_reason: None,
        drained: false,
        priority: 100,
        observer: false,
        datagrams_sent: 0,
        datagrams_received: 0,
    }
}

/// A fake goosed: answers each request on its socket with `answer`, and
/// records the requests. A watch gets the replies `answer` returns for it
/// and then the connection closes.
struct FakeDaemon {
    _directory: tempfile::TempDir,
    socket: PathBuf,
    seen: Arc<Mutex<Vec<Request>>>,
}

fn fake_daemon(answer: impl Fn(&Request) -> Vec<Reply> + Send + 'static) -> FakeDaemon {
    let directory = tempfile::tempdir().unwrap();
    let socket = directory.path().join("goosed.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorded = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            stream
                .set_read_timeout(Some(FAKE_DAEMON_READ_TIMEOUT))
                .unwrap();
            let Ok(request) = read_frame::<_, Request>(&mut stream) else {
                continue;
            };
            recorded.lock().unwrap().push(request.clone());
            for reply in answer(&request) {
                if write_frame(&mut stream, &reply).is_err() {
                    break;
                }
            }
        }
    });
    FakeDaemon {
        _directory: directory,
        socket,
        seen,
    }
}

/// A fake daemon whose node has `role`, in a cluster of 1 (duck), 3 (goose)
/// and 4 (unreachable).
fn cluster_daemon(role: NodeRole) -> FakeDaemon {
    fake_daemon(move |request| {
        vec![match request {
            Request::IsGoose => Reply::IsGoose(node(3, role)),
            Request::Status { local: true } => Reply::NodeStatus(node(3, role)),
            Request::Status { local: false } => Reply::Status(ClusterStatus {
                local: node(3, role),
                members: vec![
                    node(1, NodeRole::Duck),
                    node(3, role),
                    NodeStatus {
                        leader_id: None,
                        ..node(4, NodeRole::Unreachable)
                    },
                ],
                goose: (role == NodeRole::Goose).then_some(NodeId(3)),
                expired: Vec::new(),
            }),
            Request::MemberRemove { .. } => Reply::error(
                ErrorKind::PermissionDenied,
                "permission denied: 'member remove' needs root or the daemon's user (uid 998); you are uid 1000",
            ),
            other => Reply::Ok(format!("did {}", other.command_name())),
        }]
    })
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    let nowhere = Path::new("/nonexistent/goosed.sock");
    for args in [
        &["frobnicate"][..],
        &[],
        &["member"],
        &["member", "add", "0", "10.0.0.1:7700"],
        &["member", "add", "4", "not-an-address"],
        &["member", "promote"],
        &["member", "promote", "0"],
        &["member", "demote", "x"],
        &["member", "demote", "2", "3"],
        &["partition", "add", "--in"],
        &["partition", "add", "--in", "--out", "--peer", "2"],
        &["partition", "add", "--in", "--addr", "10.0.0.0/40"],
        &[
            "partition",
            "add",
            "--in",
            "--peer",
            "2",
            "--drop-percent",
            "101",
        ],
        &[
            "partition",
            "add",
            "--in",
            "--peer",
            "2",
            "--drop-percent",
            "0",
        ],
        &["partition", "add", "--in", "--addr", "10.0.0.1/8"],
        &["partition", "add", "--in", "--peer", "0"],
        &["partition", "add", "--in", "--peer", "2", "--for", "30x"],
        &["partition", "add", "--in", "--peer", "2", "--for", "0s"],
        &["partition", "add", "--in", "--peer", "2", "--for", "25h"],
        &["partition", "split", "1,2"],
        &["partition", "split", "1,2", "2,3"],
        &["status", "--jsn"],
    ] {
        let output = goosectl(nowhere, args);
        let line = assert_one_line_error(&output);
        assert!(stdout(&output).is_empty(), "{args:?}: {line}");
        // The daemon-less path never gets as far as connecting.
        assert!(!line.contains("cannot reach goosed"), "{args:?}: {line}");
    }
}

#[test]
fn help_and_version_exit_0() {
    let nowhere = Path::new("/nonexistent/goosed.sock");
    for args in [
        &["--help"][..],
        &["--version"],
        &["partition", "add", "--help"],
    ] {
        let output = goosectl(nowhere, args);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(!stdout(&output).is_empty());
    }
    assert!(stdout(&goosectl(nowhere, &["--help"])).contains("GOOSE_SOCKET"));
}

#[test]
fn an_unreachable_daemon_means_exit_2_and_a_clear_line() {
    let directory = tempfile::tempdir().unwrap();
    let socket = directory.path().join("goosed.sock");
    for args in [
        &["is-goose"][..],
        &["status"],
        &["status", "--local"],
        &["--json", "is-goose"],
    ] {
        let output = goosectl(&socket, args);
        let line = assert_one_line_error(&output);
        assert!(line.contains("cannot reach goosed at"), "{line}");
        assert!(line.contains(socket.to_str().unwrap()), "{line}");
        assert!(stdout(&output).is_empty());
    }
}

#[test]
fn keygen_prints_64_lowercase_hex_characters_without_a_daemon() {
    let output = goosectl(Path::new("/nonexistent/goosed.sock"), &["keygen"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let key = stdout(&output);
    assert_eq!(key.len(), 65, "{key:?}");
    assert!(key.ends_with('\n'));
    assert!(key[..64]
        .chars()
        .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)));
    let again = stdout(&goosectl(Path::new("/nonexistent"), &["keygen"]));
    assert_ne!(key, again);
}

#[test]
fn is_goose_exits_0_for_goose_and_1_for_duck() {
    let goose = cluster_daemon(NodeRole::Goose);
    let output = goosectl(&goose.socket, &["is-goose"]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(stdout(&output), "goose\n");

    let duck = cluster_daemon(NodeRole::Duck);
    let output = goosectl(&duck.socket, &["is-goose"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output), "duck\n");
    assert!(stderr(&output).is_empty());
}

#[test]
fn is_goose_json_is_a_node_status() {
    let goose = cluster_daemon(NodeRole::Goose);
    let output = goosectl(&goose.socket, &["--json", "is-goose"]);
    assert_eq!(output.status.code(), Some(0));
    let value: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(value["role"], "goose");
    assert_eq!(value["id"], 3);
    assert_eq!(value["term"], 7);
    let clock = value["clock_ns"].as_u64().unwrap();
    let promise = u64::try_from(LONG_PROMISE.as_nanos()).unwrap();
    assert_eq!(value["lease_until_ns"].as_u64(), Some(clock + promise));
    for key in ["addr", "leader_id", "commit_index", "voter", "clock_ns"] {
        assert!(value.get(key).is_some(), "missing {key}");
    }
    assert_eq!(value["decision"], "goose");
    assert!(value["reason"].is_null());
    let decided = value["decided_at_ns"].as_u64().unwrap();
    assert!(clock <= decided && decided < clock + promise, "{value}");
    let duck = cluster_daemon(NodeRole::Duck);
    let output = goosectl(&duck.socket, &["is-goose", "--json"]);
    assert_eq!(output.status.code(), Some(1));
    let value: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(value["role"], "duck");
    assert!(value["lease_until_ns"].is_null());
    assert_eq!(value["decision"], "duck");
    assert_eq!(value["reason"], "not_goose");
}

/// A fake daemon that answers `is-goose` and `status` with `answer()`,
/// computed when the request arrives, after waiting `delay` (a daemon, or a
/// goosectl, held up between deciding and acting).
fn answering_daemon(delay: Duration, answer: fn() -> NodeStatus) -> FakeDaemon {
    fake_daemon(move |request| {
        let status = answer();
        std::thread::sleep(delay);
        vec![match request {
            Request::IsGoose => Reply::IsGoose(status),
            Request::Status { local: true } => Reply::NodeStatus(status),
            Request::Status { local: false } => Reply::Status(ClusterStatus {
                local: status.clone(),
                members: vec![node(1, NodeRole::Duck), status],
                goose: Some(NodeId(3)),
                expired: Vec::new(),
            }),
            _ => Reply::error(ErrorKind::InvalidRequest, "not here"),
        }]
    })
}

/// A goose answer whose promise ran out 20 ms before it was sent.
fn expired_goose() -> NodeStatus {
    let now = boottime_ns();
    answer_with(3, NodeRole::Goose, now - 30_000_000, Some(now - 20_000_000))
}

#[test]
fn is_goose_with_a_promise_in_the_past_is_a_duck_saying_why() {
    let daemon = answering_daemon(Duration::ZERO, expired_goose);
    let output = goosectl(&daemon.socket, &["--json", "is-goose"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let value: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(value["decision"], "duck", "{value}");
    assert_eq!(value["reason"], "promise_expired");
    assert_eq!(value["role"], "duck");
    assert!(value["lease_until_ns"].is_null());
    let expired = value["expired_lease_until_ns"].as_u64().unwrap();
    let decided = value["decided_at_ns"].as_u64().unwrap();
    assert!(decided >= expired + 20_000_000, "{value}");
    // Every field of the NodeStatus is still there.
    for key in [
        "id",
        "addr",
        "term",
        "leader_id",
        "commit_index",
        "voter",
        "clock_ns",
        "last_index",
        "removed",
        "drops",
    ] {
        assert!(value.get(key).is_some(), "missing {key}: {value}");
    }
    assert_eq!(value["term"], 7);

    let text = goosectl(&daemon.socket, &["is-goose"]);
    assert_eq!(text.status.code(), Some(1));
    let line = stdout(&text);
    assert!(line.starts_with("duck (promise expired "), "{line:?}");
    assert!(line.ends_with(" ms ago)\n"), "{line:?}");
    assert!(stderr(&text).is_empty());
}

#[test]
fn is_goose_judges_the_promise_when_the_reply_arrives_not_when_it_was_decided() {
    // The daemon decides goose with 100 ms of promise, then the answer takes
    // 400 ms to reach goosectl: by the time goosectl decides, it has run out.
    fn short_goose() -> NodeStatus {
        let now = boottime_ns();
        let lease = lease_after(now, NodeRole::Goose, Duration::from_millis(100));
        answer_with(3, NodeRole::Goose, now, lease)
    }
    let late = answering_daemon(Duration::from_millis(400), short_goose);
    let output = goosectl(&late.socket, &["--json", "is-goose"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let value: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(value["reason"], "promise_expired", "{value}");
    let clock = value["clock_ns"].as_u64().unwrap();
    let decided = value["decided_at_ns"].as_u64().unwrap();
    assert!(decided >= clock + 400_000_000, "{value}");

    // The same answer with a promise far ahead is still goose when late.
    fn long_goose() -> NodeStatus {
        node(3, NodeRole::Goose)
    }
    let slow = answering_daemon(Duration::from_millis(400), long_goose);
    assert_eq!(goosectl(&slow.socket, &["is-goose"]).status.code(), Some(0));
}

#[test]
fn is_goose_without_a_promise_is_a_duck() {
    fn promiseless() -> NodeStatus {
        answer_with(3, NodeRole::Goose, boottime_ns(), None)
    }
    let daemon = answering_daemon(Duration::ZERO, promiseless);
    let output = goosectl(&daemon.socket, &["--json", "is-goose"]);
    assert_eq!(output.status.code(), Some(1));
    let value: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(value["reason"], "no_promise", "{value}");
}

#[test]
fn status_judges_the_local_node_at_print_time() {
    let daemon = answering_daemon(Duration::ZERO, expired_goose);
    let local = goosectl(&daemon.socket, &["--json", "status", "--local"]);
    assert_eq!(local.status.code(), Some(0), "{}", stderr(&local));
    let value: serde_json::Value = serde_json::from_str(&stdout(&local)).unwrap();
    assert_eq!(value["role"], "duck", "{value}");
    assert_eq!(value["reason"], "promise_expired");

    let cluster = goosectl(&daemon.socket, &["--json", "status"]);
    let value: serde_json::Value = serde_json::from_str(&stdout(&cluster)).unwrap();
    assert!(value["goose"].is_null(), "{value}");
    assert_eq!(value["self"]["role"], "duck");
    assert_eq!(value["self"]["reason"], "promise_expired");
    assert_eq!(value["members"][1]["reason"], "promise_expired");
    assert_eq!(value["members"][0]["role"], "duck");

    let text = stdout(&goosectl(&daemon.socket, &["status"]));
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[1].starts_with("node 3 (10.0.0.3:7700): duck (promise expired "),
        "{text}"
    );
    assert_eq!(
        lines[2],
        "no goose at the instant of the reply: the goose answer of node 3 ran out before it (status waits up to 500 ms for silent members; is-goose on that node answers at once)",
        "{text}"
    );
}

#[test]
fn status_text_lists_members_and_names_the_goose() {
    let goose = cluster_daemon(NodeRole::Goose);
    let output = goosectl(&goose.socket, &["status"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "node 1 (10.0.0.1:7700): duck, term 7, leader 3\n\
         node 3 (10.0.0.3:7700): goose, term 7, leader 3, lease 3600000 ms\n\
         node 4 (10.0.0.4:7700): unreachable\n\
         goose: node 3 (term 7)\n"
    );
    let duck = cluster_daemon(NodeRole::Duck);
    let text = stdout(&goosectl(&duck.socket, &["status"]));
    assert_eq!(
        text.lines().last(),
        Some("no goose: no goose elected yet (term 7)")
    );
    let local = goosectl(&goose.socket, &["status", "--local"]);
    assert_eq!(
        stdout(&local),
        "node 3 (10.0.0.3:7700): goose, term 7, leader 3, lease 3600000 ms\n"
    );
    assert_eq!(
        *goose.seen.lock().unwrap().last().unwrap(),
        Request::Status { local: true }
    );
}

#[test]
fn status_json_has_the_design_shapes() {
    let goose = cluster_daemon(NodeRole::Goose);
    let output = goosectl(&goose.socket, &["status", "--json"]);
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    assert_eq!(text.lines().count(), 1, "one object: {text}");
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut keys: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["goose", "members", "self"]);
    assert_eq!(value["goose"], 3);
    assert_eq!(value["self"]["role"], "goose");
    assert_eq!(value["members"][2]["role"], "unreachable");
    for member in [&value["self"], &value["members"][0], &value["members"][2]] {
        for key in [
            "eligible",
            "health",
            "health_reason",
            "drained",
            "priority",
            "observer",
        ] {
            assert!(member.get(key).is_some(), "{key} missing: {member}");
        }
    }
    assert_eq!(value["self"]["eligible"], true);
    assert_eq!(value["self"]["health"], "none");
    assert_eq!(value["self"]["priority"], 100);

    let local = goosectl(&goose.socket, &["--json", "status", "--local"]);
    let value: serde_json::Value = serde_json::from_str(&stdout(&local)).unwrap();
    assert_eq!(value["id"], 3);
    assert_eq!(value["role"], "goose");

    let duck = cluster_daemon(NodeRole::Duck);
    let value: serde_json::Value =
        serde_json::from_str(&stdout(&goosectl(&duck.socket, &["status", "--json"]))).unwrap();
    assert!(value["goose"].is_null());
}

#[test]
fn a_daemon_error_is_one_line_and_exit_2() {
    let daemon = cluster_daemon(NodeRole::Goose);
    let output = goosectl(&daemon.socket, &["member", "remove", "2"]);
    let line = assert_one_line_error(&output);
    assert!(
        line.starts_with("goosectl: permission denied: 'member remove'"),
        "{line}"
    );
    assert!(stdout(&output).is_empty());
}

#[test]
fn commands_send_the_requests_of_the_design() {
    let daemon = cluster_daemon(NodeRole::Goose);
    let runs: [&[&str]; 13] = [
        &["member", "add", "4", "10.0.0.4:7700"],
        &["member", "add", "--observer", "9", "10.0.0.9:7700"],
        &["member", "promote", "9"],
        &["member", "demote", "4"],
        &[
            "partition",
            "add",
            "--out",
            "--addr",
            "10.0.0.0/24",
            "--drop-percent",
            "50",
            "--for",
            "30s",
        ],
        &["partition", "add", "--in", "--peer", "2"],
        &["partition", "delete", "1"],
        &["partition", "flush"],
        &["partition", "split", "1,2", "3"],
        &["partition", "heal"],
        &["step-down", "--to", "2"],
        &["drain"],
        &["undrain"],
    ];
    for args in runs {
        let output = goosectl(&daemon.socket, args);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(stdout(&output).starts_with("did "), "{args:?}");
    }
    let json = goosectl(&daemon.socket, &["--json", "step-down"]);
    let value: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(value["ok"], true);
    assert_eq!(value["message"], "did step-down");
    assert_eq!(
        *daemon.seen.lock().unwrap(),
        [
            Request::MemberAdd {
                id: NodeId(4),
                addr: "10.0.0.4:7700".parse().unwrap(),
                observer: false,
            },
            Request::MemberAdd {
                id: NodeId(9),
                addr: "10.0.0.9:7700".parse().unwrap(),
                observer: true,
            },
            Request::MemberPromote { id: NodeId(9) },
            Request::MemberDemote { id: NodeId(4) },
            Request::PartitionAdd(Rule {
                chain: Chain::Out,
                matcher: Matcher::Addr("10.0.0.0/24".parse().unwrap()),
                drop_percent: DropPercent::new(50).unwrap(),
                duration: Some(Duration::from_secs(30)),
            }),
            Request::PartitionAdd(Rule::drop_all(Chain::In, Matcher::Peer(NodeId(2)))),
            Request::PartitionDelete(1),
            Request::PartitionFlush,
            Request::PartitionSplit {
                sides: (vec![NodeId(1), NodeId(2)], vec![NodeId(3)])
            },
            Request::PartitionHeal,
            Request::StepDown {
                to: Some(NodeId(2))
            },
            Request::Drain { drained: true },
            Request::Drain { drained: false },
            Request::StepDown { to: None },
        ]
    );
}

#[test]
fn drain_and_undrain_print_the_daemons_line_or_fail_with_exit_2() {
    let daemon = fake_daemon(|request| {
        vec![match request {
            Request::Drain { drained: true } => {
                Reply::Ok("node 3 drained: it hands the goose to node 1\n(term 8)".to_string())
            }
            Request::Drain { drained: false } => Reply::error(
                ErrorKind::PermissionDenied,
                "permission denied: 'undrain' needs root or the daemon's user",
            ),
            _ => Reply::error(ErrorKind::InvalidRequest, "only drain here"),
        }]
    });
    let output = goosectl(&daemon.socket, &["drain"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "node 3 drained: it hands the goose to node 1 (term 8)\n"
    );
    let json = goosectl(&daemon.socket, &["drain", "--json"]);
    let value: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(value["ok"], true);
    assert_eq!(
        value["message"],
        "node 3 drained: it hands the goose to node 1\n(term 8)"
    );
    let refused = goosectl(&daemon.socket, &["undrain"]);
    let line = assert_one_line_error(&refused);
    assert!(
        line.starts_with("goosectl: permission denied: 'undrain'"),
        "{line}"
    );
    assert!(stdout(&refused).is_empty());
    let nowhere = goosectl(Path::new("/nonexistent/goosed.sock"), &["drain"]);
    assert!(assert_one_line_error(&nowhere).contains("cannot reach goosed"));
}

#[test]
fn usage_errors_say_what_is_wrong_with_a_rule() {
    let nowhere = Path::new("/nonexistent/goosed.sock");
    for (args, expected) in [
        (
            &["partition", "add", "--in", "--addr", "10.0.0.1/8"][..],
            "10.0.0.1/8 has host bits set past the /8; did you mean 10.0.0.0/8?",
        ),
        (
            &[
                "partition",
                "add",
                "--in",
                "--peer",
                "2",
                "--drop-percent",
                "0",
            ],
            "drop percentage 0 is outside 1 to 100",
        ),
        (
            &["partition", "add", "--in", "--peer", "2", "--for", "25h"],
            "25h is too long: a rule may last at most 24h",
        ),
        (
            &["partition", "add", "--in", "--peer", "2", "--for", "30x"],
            "\"30x\" is not a duration",
        ),
    ] {
        let line = assert_one_line_error(&goosectl(nowhere, args));
        assert!(line.contains(expected), "{args:?}: {line}");
    }
}

/// A fake daemon whose node holds two partition rules.
fn rules_daemon() -> FakeDaemon {
    fake_daemon(|request| {
        vec![match request {
            Request::PartitionList => Reply::Rules(vec![
                ListedRule {
                    number: 1,
                    rule: Rule::drop_all(Chain::In, Matcher::Peer(NodeId(3))),
                    remaining: None,
                    dropped: 0,
                },
                ListedRule {
                    number: 2,
                    rule: Rule {
                        chain: Chain::Both,
                        matcher: Matcher::Addr("10.0.0.0/8".parse().unwrap()),
                        drop_percent: DropPercent::new(50).unwrap(),
                        duration: Some(Duration::from_secs(30)),
                    },
                    remaining: Some(Duration::from_millis(29_500)),
                    dropped: 12,
                },
            ]),
            _ => Reply::error(ErrorKind::InvalidRequest, "only partition list here"),
        }]
    })
}

#[test]
fn partition_list_prints_a_line_per_rule() {
    let daemon = rules_daemon();
    let output = goosectl(&daemon.socket, &["partition", "list"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "1: in peer 3, drop 100%, until deleted, 0 dropped\n\
         2: both addr 10.0.0.0/8, drop 50%, 29s500ms left, 12 dropped\n"
    );
    let empty = fake_daemon(|_| vec![Reply::Rules(Vec::new())]);
    assert_eq!(
        stdout(&goosectl(&empty.socket, &["partition", "list"])),
        "no rules\n"
    );
    // A daemon answering a list with anything but rules is an error.
    let confused = cluster_daemon(NodeRole::Goose);
    let line = assert_one_line_error(&goosectl(&confused.socket, &["partition", "list"]));
    assert!(line.contains("unexpected reply"), "{line}");
}

#[test]
fn partition_list_json_is_one_object_of_rules() {
    let daemon = rules_daemon();
    let output = goosectl(&daemon.socket, &["--json", "partition", "list"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert_eq!(text.lines().count(), 1, "one object: {text}");
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        value,
        serde_json::json!({"rules": [
            {
                "number": 1,
                "rule": {"chain": "in", "matcher": {"peer": 3}, "drop_percent": 100,
                         "duration_ms": null},
                "remaining_ms": null,
                "dropped": 0
            },
            {
                "number": 2,
                "rule": {"chain": "both", "matcher": {"addr": "10.0.0.0/8"},
                         "drop_percent": 50, "duration_ms": 30000},
                "remaining_ms": 29500,
                "dropped": 12
            }
        ]})
    );
}

#[test]
fn watch_prints_a_line_per_event_until_the_daemon_closes() {
    let daemon = fake_daemon(|request| match request {
        Request::Watch => vec![
            Reply::Event(WatchEvent {
                kind: WatchEventKind::Initial,
                status: node(3, NodeRole::Duck),
            }),
            Reply::Event(WatchEvent {
                kind: WatchEventKind::BecameGoose,
                status: node(3, NodeRole::Goose),
            }),
            Reply::Event(WatchEvent {
                kind: WatchEventKind::EligibilityChanged,
                status: NodeStatus {
                    eligible: false,
                    drained: true,
                    ..node(3, NodeRole::Duck)
                },
            }),
            Reply::Event(WatchEvent {
                kind: WatchEventKind::EligibilityChanged,
                status: node(3, NodeRole::Duck),
            }),
        ],
        _ => vec![Reply::error(ErrorKind::InvalidRequest, "only watch here")],
    });
    let output = goosectl(&daemon.socket, &["watch"]);
    assert_eq!(
        stdout(&output),
        "now: node 3 (10.0.0.3:7700): duck, term 7, leader 3\n\
         became goose: node 3 (10.0.0.3:7700): goose, term 7, leader 3, lease 3600000 ms\n\
         eligibility changed: node 3 (10.0.0.3:7700): duck, term 7, leader 3, not eligible: drained\n\
         eligibility changed: node 3 (10.0.0.3:7700): duck, term 7, leader 3, eligible\n"
    );
    let line = assert_one_line_error(&output);
    assert!(line.contains("closed the watch"), "{line}");

    let json = goosectl(&daemon.socket, &["watch", "--json"]);
    let kinds: Vec<String> = stdout(&json)
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["kind"].to_string())
        .collect();
    assert_eq!(
        kinds,
        [
            "\"initial\"",
            "\"became_goose\"",
            "\"eligibility_changed\"",
            "\"eligibility_changed\""
        ]
    );
}

#[test]
fn goose_socket_names_the_socket_when_no_flag_does() {
    let daemon = cluster_daemon(NodeRole::Duck);
    let output = Command::new(env!("CARGO_BIN_EXE_goosectl"))
        .arg("is-goose")
        .env("GOOSE_SOCKET", &daemon.socket)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(stdout(&output), "duck\n");
}

#[test]
fn completions_and_the_man_page_come_from_the_cli_definition() {
    // The README's install steps generate these; they must name every command.
    let socket = Path::new("/nonexistent/goosed.sock");
    let bash = goosectl(socket, &["completions", "bash"]);
    assert!(bash.status.success());
    let script = stdout(&bash);
    for command in [
        "status",
        "is-goose",
        "partition",
        "step-down",
        "drain",
        "undrain",
        "keygen",
    ] {
        assert!(
            script.contains(command),
            "bash completions mention {command}"
        );
    }
    let man = goosectl(socket, &["man"]);
    assert!(man.status.success());
    let page = stdout(&man);
    assert!(
        page.starts_with(".ie") && page.contains(".TH goosectl 1"),
        "a roff man page"
    );
    let bad = goosectl(socket, &["completions", "cmd.exe"]);
    assert_eq!(bad.status.code(), Some(2));
}
