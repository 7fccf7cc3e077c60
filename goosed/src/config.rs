//! `goosed run` settings: command-line flags merged over a TOML file
//! (flags win), with systemd's directory variables honoured (design.md §6).

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
            log_dir: flags.log_dir.clone().or(file.log_dir),
        })
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
