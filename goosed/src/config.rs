//! `goosed run` settings: command-line flags merged over a TOML file
//! (flags win), with systemd's directory variables honoured (design.md §6).

use crate::health::{self, HealthCheck};
use crate::raft;
use goose_common::NodeId;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The default configuration file when `--config` is not given.
pub const CONFIG_PATH_DEFAULT: &str = "/etc/goose/goosed.toml";

/// The default hook timeout.
pub const HOOK_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);

/// The shortest `health_interval_ms` and `health_timeout_ms`.
pub const HEALTH_MS_MIN: u64 = 10;

/// The longest `health_interval_ms` and `health_timeout_ms` (one hour).
pub const HEALTH_MS_MAX: u64 = 3_600_000;

/// The smallest `health_fall` and `health_rise`.
pub const HEALTH_COUNT_MIN: u32 = 1;

/// The largest `health_fall` and `health_rise`.
pub const HEALTH_COUNT_MAX: u32 = 100;

/// The lowest `priority`.
pub const PRIORITY_MIN: i64 = 0;

/// The highest `priority`.
pub const PRIORITY_MAX: i64 = u8::MAX as i64;

/// The longest `preempt_delay_ms` (one hour).
pub const PREEMPT_DELAY_MS_MAX: u64 = 3_600_000;

/// The flags of `goosed run`; every one may also come from the TOML file.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct RunFlags {
    /// TOML configuration file [default: $CONFIGURATION_DIRECTORY/goosed.toml, else /etc/goose/goosed.toml]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// This node's id (a positive integer)
    #[arg(long, value_name = "N")]
    pub id: Option<u64>,
    /// UDP address to bind, e.g. 10.0.0.1:7700
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// An initial voter as ID=ADDR (repeat); ignored once a log exists
    #[arg(long = "peer", value_name = "ID=ADDR")]
    pub peers: Vec<String>,
    /// Start with no configuration and wait to be added (`goosectl member add`)
    #[arg(long)]
    pub join: bool,
    /// Data directory [default: $STATE_DIRECTORY, else the user's data dir]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Control socket [default: $RUNTIME_DIRECTORY/goosed.sock, else the user's runtime dir]
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Cluster key file (64 hex characters; `goosectl keygen > FILE`)
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Run without a cluster key (datagrams are not authenticated)
    #[arg(long)]
    pub insecure: bool,
    /// Heartbeat interval in milliseconds [default: 50]
    #[arg(long, value_name = "MS")]
    pub heartbeat_ms: Option<u64>,
    /// election_timeout_min in milliseconds [default: 300]
    #[arg(long, value_name = "MS")]
    pub election_timeout_ms: Option<u64>,
    /// Command run when this node becomes the goose
    #[arg(long, value_name = "CMD")]
    pub on_goose: Option<String>,
    /// Command run when this node stops being the goose
    #[arg(long, value_name = "CMD")]
    pub on_duck: Option<String>,
    /// Hook timeout in milliseconds, after which a hook is killed [default: 10000]
    #[arg(long, value_name = "MS")]
    pub hook_timeout_ms: Option<u64>,
    /// Eligibility check run through /bin/sh; exit status 0 passes (design.md §7)
    #[arg(long, value_name = "CMD")]
    pub health_check: Option<String>,
    /// Time between the starts of two health checks in milliseconds [default: 1000]
    #[arg(long, value_name = "MS")]
    pub health_interval_ms: Option<u64>,
    /// A health check running longer is killed and has failed, in milliseconds [default: 1000]
    #[arg(long, value_name = "MS")]
    pub health_timeout_ms: Option<u64>,
    /// Failed health checks in a row that make this node unhealthy [default: 3]
    #[arg(long, value_name = "N")]
    pub health_fall: Option<u32>,
    /// Passed health checks in a row that make this node healthy again [default: 2]
    #[arg(long, value_name = "N")]
    pub health_rise: Option<u32>,
    /// Preference as goose, 0-255; a higher one is preferred [default: 100]
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub priority: Option<i64>,
    /// Whether to take the goose over from a goose of lower priority [default: true]
    #[arg(long, value_name = "BOOL")]
    pub preempt: Option<bool>,
    /// How long this node must be eligible without a break before it preempts, in milliseconds [default: 5000]
    #[arg(long, value_name = "MS")]
    pub preempt_delay_ms: Option<u64>,
    /// Longest promise of a goose answer in milliseconds [default: 10]
    #[arg(long, value_name = "MS")]
    pub promise_ms: Option<u64>,
    /// Lease margin for scheduling delay in milliseconds [default: 5]
    #[arg(long, value_name = "MS")]
    pub lease_margin_ms: Option<u64>,
    /// Assumed bound on clock-rate drift in ppm [default: 1000]
    #[arg(long, value_name = "PPM")]
    pub clock_drift_ppm: Option<u32>,
    /// Write rolling log files here instead of stderr
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
}

/// The TOML file: the same keys as the flags, in snake case.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    id: Option<u64>,
    listen: Option<SocketAddr>,
    #[serde(default)]
    peers: Vec<String>,
    join: Option<bool>,
    data_dir: Option<PathBuf>,
    socket: Option<PathBuf>,
    key_file: Option<PathBuf>,
    insecure: Option<bool>,
    heartbeat_ms: Option<u64>,
    election_timeout_ms: Option<u64>,
    on_goose: Option<String>,
    on_duck: Option<String>,
    hook_timeout_ms: Option<u64>,
    health_check: Option<String>,
    health_interval_ms: Option<u64>,
    health_timeout_ms: Option<u64>,
    health_fall: Option<u32>,
    health_rise: Option<u32>,
    priority: Option<i64>,
    preempt: Option<bool>,
    preempt_delay_ms: Option<u64>,
    promise_ms: Option<u64>,
    lease_margin_ms: Option<u64>,
    clock_drift_ppm: Option<u32>,
    log_dir: Option<PathBuf>,
}

/// Resolved settings of one daemon.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The core's configuration (id and timing).
    pub raft: raft::Config,
    /// The UDP address to bind.
    pub listen: SocketAddr,
    /// The initial voters (empty with `--join`).
    pub peers: Vec<(NodeId, SocketAddr)>,
    /// Wait to be added rather than bootstrap.
    pub join: bool,
    /// Where the log and hard state live.
    pub data_dir: PathBuf,
    /// The control socket path.
    pub socket: PathBuf,
    /// The cluster key file (`None` only with `insecure`).
    pub key_file: Option<PathBuf>,
    /// Run without authentication.
    pub insecure: bool,
    /// Hook commands.
    pub on_goose: Option<String>,
    /// Hook commands.
    pub on_duck: Option<String>,
    /// How long a hook may run.
    pub hook_timeout: Duration,
    /// The health check; `None` when no `health_check` is configured (the
    /// node counts as healthy).
    pub health: Option<HealthCheck>,
    /// Rolling log files directory.
    pub log_dir: Option<PathBuf>,
}

/// A setting that cannot be used, with a message fit for one line on stderr.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SettingsError(pub String);

fn error<T>(message: impl Into<String>) -> Result<T, SettingsError> {
    Err(SettingsError(message.into()))
}

/// Parses `ID=ADDR`.
pub fn parse_peer(text: &str) -> Result<(NodeId, SocketAddr), SettingsError> {
    let Some((id, addr)) = text.split_once('=') else {
        return error(format!(
            "invalid peer {text:?}: expected ID=ADDR, e.g. 2=10.0.0.2:7700"
        ));
    };
    let id: u64 = match id.trim().parse() {
        Ok(id) if id > 0 => id,
        _ => {
            return error(format!(
                "invalid peer {text:?}: the id must be a positive integer"
            ))
        }
    };
    let Ok(addr) = addr.trim().parse::<SocketAddr>() else {
        return error(format!(
            "invalid peer {text:?}: {addr:?} is not an IP:PORT address"
        ));
    };
    Ok((NodeId(id), addr))
}

fn env_path(name: &str) -> Option<PathBuf> {
    // systemd may pass several colon-separated directories; the first is ours.
    std::env::var_os(name)
        .and_then(|value| {
            value
                .to_str()
                .map(|v| v.split(':').next().unwrap_or("").to_string())
        })
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
}

/// The variables systemd sets that change where goosed keeps its files and
/// whether it reports to systemd. A goosed started by another program (the
/// demo, the tests) must not inherit them from a service environment.
pub const SERVICE_ENVIRONMENT: [&str; 5] = [
    "STATE_DIRECTORY",
    "RUNTIME_DIRECTORY",
    "CONFIGURATION_DIRECTORY",
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
];

fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("", "", "goose")
}

/// The default data directory: `$STATE_DIRECTORY`, else the user's data dir.
pub fn default_data_dir() -> Option<PathBuf> {
    env_path("STATE_DIRECTORY").or_else(|| project_dirs().map(|d| d.data_dir().to_path_buf()))
}

/// The default socket: `$RUNTIME_DIRECTORY/goosed.sock`, else the user's
/// runtime dir; the first place goosectl looks (one rule for both,
/// `goose_common::control::socket_path_candidates`), and none if neither
/// is known.
pub fn default_socket() -> Option<PathBuf> {
    let candidates = goose_common::control::socket_path_candidates();
    let system = PathBuf::from(goose_common::control::SYSTEM_SOCKET_PATH);
    candidates.into_iter().next().filter(|path| *path != system)
}

fn read_file_settings(flags: &RunFlags) -> Result<FileSettings, SettingsError> {
    let (path, explicit) = match &flags.config {
        Some(path) => (path.clone(), true),
        None => match env_path("CONFIGURATION_DIRECTORY") {
            Some(dir) => (dir.join("goosed.toml"), false),
            None => (PathBuf::from(CONFIG_PATH_DEFAULT), false),
        },
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
            return Ok(FileSettings::default())
        }
        Err(e) => return error(format!("cannot read config file {}: {e}", path.display())),
    };
    toml::from_str(&text).or_else(|e: toml::de::Error| {
        let line = e
            .span()
            .map_or(0, |span| text[..span.start].matches('\n').count() + 1);
        let message = e.message().replace('\n', " ");
        error(format!(
            "invalid config file {} line {line}: {message}",
            path.display()
        ))
    })
}

impl Settings {
    /// Merges flags over the TOML file and checks the result.
    pub fn resolve(flags: &RunFlags) -> Result<Settings, SettingsError> {
        let file = read_file_settings(flags)?;
        let Some(id) = flags.id.or(file.id) else {
            return error("missing --id (this node's id, a positive integer)");
        };
        if id == 0 {
            return error("--id must be a positive integer");
        }
        let Some(listen) = flags.listen.or(file.listen) else {
            return error("missing --listen (the UDP address to bind, e.g. 10.0.0.1:7700)");
        };
        let join = flags.join || file.join.unwrap_or(false);
        let peer_texts = if flags.peers.is_empty() {
            &file.peers
        } else {
            &flags.peers
        };
        let mut peers = peer_texts
            .iter()
            .map(|p| parse_peer(p))
            .collect::<Result<Vec<_>, _>>()?;
        peers.sort();
        Self::check_peers(NodeId(id), listen, join, &peers)?;
        // The defaults are written once, in `raft::Config::new`.
        let defaults = raft::Config::new(NodeId(id));
        let ms = |flag: Option<u64>, file: Option<u64>, default: Duration| {
            flag.or(file).map_or(default, Duration::from_millis)
        };
        let mut raft = defaults.clone();
        raft.heartbeat_interval = ms(
            flags.heartbeat_ms,
            file.heartbeat_ms,
            defaults.heartbeat_interval,
        );
        raft.election_timeout_min = ms(
            flags.election_timeout_ms,
            file.election_timeout_ms,
            defaults.election_timeout_min,
        );
        raft.election_jitter_max = raft.election_timeout_min / 10;
        raft.promise_max = ms(flags.promise_ms, file.promise_ms, defaults.promise_max);
        raft.lease_margin = ms(
            flags.lease_margin_ms,
            file.lease_margin_ms,
            defaults.lease_margin,
        );
        raft.clock_drift_ppm = flags
            .clock_drift_ppm
            .or(file.clock_drift_ppm)
            .unwrap_or(defaults.clock_drift_ppm);
        if let Err(e) = raft.validate() {
            return error(format!("invalid timing settings: {e}"));
        }
        let priority = flags.priority.or(file.priority);
        raft.priority = match priority {
            None => defaults.priority,
            Some(value) => match u8::try_from(value) {
                Ok(priority) if (PRIORITY_MIN..=PRIORITY_MAX).contains(&value) => priority,
                _ => {
                    return error(format!(
                        "priority must be {PRIORITY_MIN}-{PRIORITY_MAX}, not {value}"
                    ))
                }
            },
        };
        raft.preempt = flags.preempt.or(file.preempt).unwrap_or(defaults.preempt);
        let preempt_delay_ms = flags.preempt_delay_ms.or(file.preempt_delay_ms);
        if let Some(value) = preempt_delay_ms.filter(|&ms| ms > PREEMPT_DELAY_MS_MAX) {
            return error(format!(
                "preempt_delay_ms must be at most {PREEMPT_DELAY_MS_MAX}, not {value}"
            ));
        }
        raft.preempt_delay = preempt_delay_ms.map_or(defaults.preempt_delay, Duration::from_millis);
        let health = Self::health_check(flags, &file)?;
        let Some(data_dir) = flags
            .data_dir
            .clone()
            .or(file.data_dir)
            .or_else(default_data_dir)
        else {
            return error(
                "missing --data-dir and no default (set $STATE_DIRECTORY or a home directory)",
            );
        };
        let Some(socket) = flags.socket.clone().or(file.socket).or_else(default_socket) else {
            return error(
                "missing --socket and no default (set $RUNTIME_DIRECTORY or $XDG_RUNTIME_DIR)",
            );
        };
        let insecure = flags.insecure || file.insecure.unwrap_or(false);
        let key_file = flags.key_file.clone().or(file.key_file);
        if key_file.is_none() && !insecure {
            return error("missing --key-file (create one with `goosectl keygen > FILE`), or pass --insecure to run without authentication");
        }
        Ok(Settings {
            raft,
            listen,
            peers,
            join,
            data_dir,
            socket,
            key_file,
            insecure,
            on_goose: flags.on_goose.clone().or(file.on_goose),
            on_duck: flags.on_duck.clone().or(file.on_duck),
            hook_timeout: ms(
                flags.hook_timeout_ms,
                file.hook_timeout_ms,
                HOOK_TIMEOUT_DEFAULT,
            ),
            health,
            log_dir: flags.log_dir.clone().or(file.log_dir),
        })
    }

    /// The health check settings: `health_check` and its `health_*` keys.
    fn health_check(
        flags: &RunFlags,
        file: &FileSettings,
    ) -> Result<Option<HealthCheck>, SettingsError> {
        let interval_ms = flags.health_interval_ms.or(file.health_interval_ms);
        let timeout_ms = flags.health_timeout_ms.or(file.health_timeout_ms);
        let fall = flags.health_fall.or(file.health_fall);
        let rise = flags.health_rise.or(file.health_rise);
        let Some(command) = flags.health_check.clone().or(file.health_check.clone()) else {
            let given = [
                ("health_interval_ms", interval_ms.is_some()),
                ("health_timeout_ms", timeout_ms.is_some()),
                ("health_fall", fall.is_some()),
                ("health_rise", rise.is_some()),
            ];
            if let Some((key, _)) = given.iter().find(|(_, given)| *given) {
                return error(format!(
                    "{key} is set but there is no health_check (--health-check CMD)"
                ));
            }
            return Ok(None);
        };
        if command.trim().is_empty() {
            return error("health_check must not be empty (drop the key to run without a check)");
        }
        let ms = |key: &str, value: Option<u64>, default: Duration| match value {
            None => Ok(default),
            Some(ms) if (HEALTH_MS_MIN..=HEALTH_MS_MAX).contains(&ms) => {
                Ok(Duration::from_millis(ms))
            }
            Some(ms) => error(format!(
                "{key} must be {HEALTH_MS_MIN}-{HEALTH_MS_MAX} (milliseconds), not {ms}"
            )),
        };
        let count = |key: &str, value: Option<u32>, default: u32| match value {
            None => Ok(default),
            Some(n) if (HEALTH_COUNT_MIN..=HEALTH_COUNT_MAX).contains(&n) => Ok(n),
            Some(n) => error(format!(
                "{key} must be {HEALTH_COUNT_MIN}-{HEALTH_COUNT_MAX}, not {n}"
            )),
        };
        Ok(Some(HealthCheck {
            command,
            interval: ms(
                "health_interval_ms",
                interval_ms,
                health::HEALTH_INTERVAL_DEFAULT,
            )?,
            timeout: ms(
                "health_timeout_ms",
                timeout_ms,
                health::HEALTH_TIMEOUT_DEFAULT,
            )?,
            fall: count("health_fall", fall, health::HEALTH_FALL_DEFAULT)?,
            rise: count("health_rise", rise, health::HEALTH_RISE_DEFAULT)?,
        }))
    }

    fn check_peers(
        id: NodeId,
        listen: SocketAddr,
        join: bool,
        peers: &[(NodeId, SocketAddr)],
    ) -> Result<(), SettingsError> {
        if join {
            if !peers.is_empty() {
                return error("--join and --peer exclude each other: a joining node learns the members from the cluster");
            }
            return Ok(());
        }
        if peers.is_empty() {
            return error("no --peer given: list every initial voter (this node included) as ID=ADDR, or use --join");
        }
        if peers.len() > goose_common::limits::VOTERS_MAX {
            return error(format!(
                "at most {} voters",
                goose_common::limits::VOTERS_MAX
            ));
        }
        for pair in peers.windows(2) {
            if pair[0].0 == pair[1].0 {
                return error(format!("peer id {} is listed twice", pair[0].0));
            }
        }
        let mut addrs: Vec<SocketAddr> = peers.iter().map(|p| p.1).collect();
        addrs.sort();
        if addrs.windows(2).any(|pair| pair[0] == pair[1]) {
            return error("two peers share an address");
        }
        match peers.iter().find(|p| p.0 == id) {
            None => error(format!(
                "this node (id {id}) must be one of the --peer entries"
            )),
            Some(&(_, addr)) if addr != listen && !listen.ip().is_unspecified() => error(format!(
                "--peer {id}={addr} does not match --listen {listen}"
            )),
            Some(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> RunFlags {
        RunFlags {
            config: Some(PathBuf::from("/nonexistent/for-sure/goosed.toml")),
            id: Some(1),
            listen: Some("127.0.0.1:7701".parse().unwrap()),
            peers: vec![
                "1=127.0.0.1:7701".into(),
                "2=127.0.0.1:7702".into(),
                "3=127.0.0.1:7703".into(),
            ],
            data_dir: Some("/tmp/x".into()),
            socket: Some("/tmp/x.sock".into()),
            insecure: true,
            ..RunFlags::default()
        }
    }

    #[test]
    fn an_explicit_missing_config_file_is_an_error() {
        let error = Settings::resolve(&flags()).unwrap_err().to_string();
        assert!(error.contains("cannot read config file"), "{error}");
    }

    #[test]
    fn flags_win_over_the_file_and_defaults_fill_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("goosed.toml");
        std::fs::write(
            &path,
            "id = 9\nheartbeat_ms = 20\nelection_timeout_ms = 200\non_goose = \"true\"\n",
        )
        .unwrap();
        let settings = Settings::resolve(&RunFlags {
            config: Some(path),
            ..flags()
        })
        .unwrap();
        assert_eq!(settings.raft.id, NodeId(1), "the flag wins");
        assert_eq!(settings.raft.heartbeat_interval, Duration::from_millis(20));
        assert_eq!(
            settings.raft.election_timeout_min,
            Duration::from_millis(200)
        );
        assert_eq!(settings.on_goose.as_deref(), Some("true"));
        assert_eq!(settings.hook_timeout, HOOK_TIMEOUT_DEFAULT);
    }

    #[test]
    fn bad_settings_are_one_clear_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("goosed.toml");
        std::fs::write(&path, "bogus = 1\n").unwrap();
        let cases = [
            (
                RunFlags {
                    config: Some(path),
                    ..flags()
                },
                "unknown field",
            ),
            (
                RunFlags {
                    peers: vec!["x".into()],
                    ..flags()
                },
                "expected ID=ADDR",
            ),
            (
                RunFlags {
                    peers: vec!["2=127.0.0.1:7702".into()],
                    ..flags()
                },
                "must be one of",
            ),
            (
                RunFlags {
                    join: true,
                    ..flags()
                },
                "exclude each other",
            ),
            (
                RunFlags {
                    insecure: false,
                    ..flags()
                },
                "missing --key-file",
            ),
            (
                RunFlags {
                    heartbeat_ms: Some(200),
                    ..flags()
                },
                "invalid timing",
            ),
            (
                RunFlags {
                    id: Some(0),
                    ..flags()
                },
                "positive integer",
            ),
        ];
        let empty = dir.path().join("empty.toml");
        std::fs::write(&empty, "").unwrap();
        for (mut case, expected) in cases {
            if case.config == flags().config {
                case.config = Some(empty.clone());
            }
            let message = match Settings::resolve(&case) {
                Ok(_) => String::from("accepted"),
                Err(e) => e.to_string(),
            };
            assert!(
                message.contains(expected),
                "{message} should say {expected}"
            );
            assert!(!message.contains('\n'), "one line: {message}");
        }
    }

    /// Resolves `flags` over a config file holding `toml`.
    fn resolve_with_file(toml: &str, flags: RunFlags) -> Result<Settings, SettingsError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("goosed.toml");
        std::fs::write(&path, toml).unwrap();
        Settings::resolve(&RunFlags {
            config: Some(path),
            ..flags
        })
    }

    const HEALTH_FILE: &str = "health_check = \"test -f /run/ok\"\nhealth_interval_ms = 250\n\
        health_timeout_ms = 150\nhealth_fall = 5\nhealth_rise = 4\npriority = 200\n\
        preempt = false\npreempt_delay_ms = 7000\n";

    #[test]
    fn without_the_new_keys_there_is_no_health_check_and_the_core_defaults_hold() {
        let settings = resolve_with_file("", flags()).unwrap();
        assert_eq!(settings.health, None);
        let defaults = raft::Config::new(NodeId(1));
        assert_eq!(settings.raft.priority, raft::PRIORITY_DEFAULT);
        assert_eq!(settings.raft.preempt, defaults.preempt);
        assert_eq!(settings.raft.preempt_delay, defaults.preempt_delay);
    }

    #[test]
    fn health_check_alone_takes_the_default_interval_timeout_fall_and_rise() {
        let settings = resolve_with_file("health_check = \"true\"\n", flags()).unwrap();
        assert_eq!(settings.health, Some(HealthCheck::new("true")));
        let health = settings.health.unwrap();
        assert_eq!(health.interval, Duration::from_millis(1000));
        assert_eq!(health.timeout, Duration::from_millis(1000));
        assert_eq!((health.fall, health.rise), (3, 2));
    }

    #[test]
    fn every_new_key_is_read_from_the_file() {
        let settings = resolve_with_file(HEALTH_FILE, flags()).unwrap();
        assert_eq!(
            settings.health,
            Some(HealthCheck {
                command: "test -f /run/ok".into(),
                interval: Duration::from_millis(250),
                timeout: Duration::from_millis(150),
                fall: 5,
                rise: 4,
            })
        );
        assert_eq!(settings.raft.priority, 200);
        assert!(!settings.raft.preempt);
        assert_eq!(settings.raft.preempt_delay, Duration::from_millis(7000));
    }

    #[test]
    fn every_new_flag_is_read_and_wins_over_the_file() {
        let new_flags = RunFlags {
            health_check: Some("exit 0".into()),
            health_interval_ms: Some(20),
            health_timeout_ms: Some(30),
            health_fall: Some(1),
            health_rise: Some(100),
            priority: Some(0),
            preempt: Some(true),
            preempt_delay_ms: Some(0),
            ..flags()
        };
        let expected = HealthCheck {
            command: "exit 0".into(),
            interval: Duration::from_millis(20),
            timeout: Duration::from_millis(30),
            fall: 1,
            rise: 100,
        };
        for file in ["", HEALTH_FILE] {
            let settings = resolve_with_file(file, new_flags.clone()).unwrap();
            assert_eq!(settings.health.as_ref(), Some(&expected), "file {file:?}");
            assert_eq!(settings.raft.priority, 0);
            assert!(settings.raft.preempt);
            assert_eq!(settings.raft.preempt_delay, Duration::ZERO);
        }
        // One flag over the file: the rest still comes from the file.
        let settings = resolve_with_file(
            HEALTH_FILE,
            RunFlags {
                health_fall: Some(9),
                ..flags()
            },
        )
        .unwrap();
        let health = settings.health.unwrap();
        assert_eq!((health.fall, health.rise), (9, 4));
        assert_eq!(health.command, "test -f /run/ok");
    }

    #[test]
    fn the_new_flags_parse_from_the_command_line() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            run: RunFlags,
        }
        let parsed = Wrapper::try_parse_from([
            "goosed",
            "--health-check",
            "test -f /run/ok",
            "--health-interval-ms",
            "20",
            "--health-timeout-ms",
            "30",
            "--health-fall",
            "4",
            "--health-rise",
            "5",
            "--priority",
            "255",
            "--preempt",
            "false",
            "--preempt-delay-ms",
            "100",
        ])
        .unwrap()
        .run;
        assert_eq!(parsed.health_check.as_deref(), Some("test -f /run/ok"));
        assert_eq!(parsed.health_interval_ms, Some(20));
        assert_eq!(parsed.health_timeout_ms, Some(30));
        assert_eq!(parsed.health_fall, Some(4));
        assert_eq!(parsed.health_rise, Some(5));
        assert_eq!(parsed.priority, Some(255));
        assert_eq!(parsed.preempt, Some(false));
        assert_eq!(parsed.preempt_delay_ms, Some(100));
        let parsed = Wrapper::try_parse_from(["goosed", "--priority", "-1"])
            .unwrap()
            .run;
        assert_eq!(parsed.priority, Some(-1), "refused by resolve, in one line");
        assert!(Wrapper::try_parse_from(["goosed", "--preempt", "maybe"]).is_err());
    }

    #[test]
    fn bad_new_settings_are_one_clear_line() {
        let health = |flags: RunFlags| RunFlags {
            health_check: Some("true".into()),
            ..flags
        };
        let cases: Vec<(&str, RunFlags, &str)> = vec![
            (
                "priority = 300\n",
                flags(),
                "priority must be 0-255, not 300",
            ),
            (
                "",
                RunFlags {
                    priority: Some(256),
                    ..flags()
                },
                "priority must be 0-255",
            ),
            (
                "",
                RunFlags {
                    priority: Some(-1),
                    ..flags()
                },
                "priority must be 0-255",
            ),
            (
                "preempt_delay_ms = 3600001\n",
                flags(),
                "preempt_delay_ms must be at most 3600000",
            ),
            (
                "",
                RunFlags {
                    preempt_delay_ms: Some(u64::MAX),
                    ..flags()
                },
                "preempt_delay_ms must be at most",
            ),
            (
                "health_check = \"\"\n",
                flags(),
                "health_check must not be empty",
            ),
            (
                "",
                RunFlags {
                    health_check: Some("  ".into()),
                    ..flags()
                },
                "health_check must not be empty",
            ),
            (
                "health_fall = 2\n",
                flags(),
                "health_fall is set but there is no health_check",
            ),
            (
                "",
                RunFlags {
                    health_interval_ms: Some(100),
                    ..flags()
                },
                "health_interval_ms is set but there is no health_check",
            ),
            (
                "",
                RunFlags {
                    health_timeout_ms: Some(100),
                    ..flags()
                },
                "health_timeout_ms is set but there is no health_check",
            ),
            (
                "health_rise = 2\n",
                flags(),
                "health_rise is set but there is no health_check",
            ),
            (
                "",
                health(RunFlags {
                    health_interval_ms: Some(9),
                    ..flags()
                }),
                "health_interval_ms must be 10-3600000 (milliseconds), not 9",
            ),
            (
                "health_interval_ms = 3600001\n",
                health(flags()),
                "health_interval_ms must be 10-3600000",
            ),
            (
                "",
                health(RunFlags {
                    health_timeout_ms: Some(0),
                    ..flags()
                }),
                "health_timeout_ms must be 10-3600000",
            ),
            (
                "health_timeout_ms = 3600001\n",
                health(flags()),
                "health_timeout_ms must be 10-3600000",
            ),
            (
                "",
                health(RunFlags {
                    health_fall: Some(0),
                    ..flags()
                }),
                "health_fall must be 1-100, not 0",
            ),
            (
                "health_fall = 101\n",
                health(flags()),
                "health_fall must be 1-100",
            ),
            (
                "",
                health(RunFlags {
                    health_rise: Some(0),
                    ..flags()
                }),
                "health_rise must be 1-100",
            ),
            (
                "health_rise = 101\n",
                health(flags()),
                "health_rise must be 1-100",
            ),
            ("preempt = \"yes\"\n", flags(), "invalid config file"),
        ];
        for (file, case, expected) in cases {
            let message = match resolve_with_file(file, case) {
                Ok(_) => String::from("accepted"),
                Err(e) => e.to_string(),
            };
            assert!(
                message.contains(expected),
                "{file:?}: {message} should say {expected}"
            );
            assert!(!message.contains('\n'), "one line: {message}");
        }
        // The bounds themselves are accepted.
        for file in [
            "health_check = \"true\"\nhealth_interval_ms = 10\nhealth_timeout_ms = 3600000\nhealth_fall = 100\nhealth_rise = 1\n",
            "priority = 255\npreempt_delay_ms = 3600000\n",
            "priority = 0\n",
        ] {
            assert!(resolve_with_file(file, flags()).is_ok(), "{file:?}");
        }
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    /// Checks that every timing flag's help names the default the daemon
    /// really uses (written once, in `raft::Config::new`).
    #[test]
    fn the_flags_help_states_the_defaults_the_daemon_uses() {
        use clap::CommandFactory;
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            run: RunFlags,
        }
        let defaults = raft::Config::new(NodeId(1));
        let ms = |d: Duration| d.as_millis().to_string();
        let expected = [
            ("heartbeat_ms", ms(defaults.heartbeat_interval)),
            ("election_timeout_ms", ms(defaults.election_timeout_min)),
            ("promise_ms", ms(defaults.promise_max)),
            ("lease_margin_ms", ms(defaults.lease_margin)),
            ("clock_drift_ppm", defaults.clock_drift_ppm.to_string()),
            ("hook_timeout_ms", ms(HOOK_TIMEOUT_DEFAULT)),
            ("health_interval_ms", ms(health::HEALTH_INTERVAL_DEFAULT)),
            ("health_timeout_ms", ms(health::HEALTH_TIMEOUT_DEFAULT)),
            ("health_fall", health::HEALTH_FALL_DEFAULT.to_string()),
            ("health_rise", health::HEALTH_RISE_DEFAULT.to_string()),
            ("priority", defaults.priority.to_string()),
            ("preempt", defaults.preempt.to_string()),
            ("preempt_delay_ms", ms(defaults.preempt_delay)),
        ];
        let command = Wrapper::command();
        for (id, value) in expected {
            let argument = command
                .get_arguments()
                .find(|argument| argument.get_id() == id)
                .unwrap_or_else(|| panic!("a flag {id}"));
            let help = argument
                .get_help()
                .map(ToString::to_string)
                .unwrap_or_default();
            assert!(
                help.ends_with(&format!("[default: {value}]")),
                "--{id}: {help:?} does not say [default: {value}]"
            );
        }
    }

    /// Checks that the example configuration file parses and mentions every key.
    #[test]
    fn the_example_config_file_parses_and_documents_every_key() {
        // systemd/goosed.toml is what operators copy: it must stay valid and complete.
        let text = include_str!("../../systemd/goosed.toml");
        let parsed: FileSettings = toml::from_str(text).expect("the example parses");
        assert_eq!(parsed.id, Some(1));
        assert_eq!(parsed.peers.len(), 3);
        let keys = [
            "id",
            "listen",
            "peers",
            "join",
            "data_dir",
            "socket",
            "key_file",
            "insecure",
            "heartbeat_ms",
            "election_timeout_ms",
            "on_goose",
            "on_duck",
            "hook_timeout_ms",
            "health_check",
            "health_interval_ms",
            "health_timeout_ms",
            "health_fall",
            "health_rise",
            "priority",
            "preempt",
            "preempt_delay_ms",
            "promise_ms",
            "lease_margin_ms",
            "clock_drift_ppm",
            "log_dir",
        ];
        for key in keys {
            assert!(
                text.contains(&format!("{key} =")),
                "the example documents {key}"
            );
        }
    }
}
