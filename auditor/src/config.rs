//! `/etc/auditor/config.toml`: settings of the long-running services (`auditor daemon`,
//! `auditor agent`) and of `auditor hook`, so that a unit file or a runtime's hook entry need
//! not repeat them. Every setting is optional; a command-line flag always wins over the file,
//! and the file over the built-in default. The default file may be absent; a file named with
//! `--config` must exist. Unknown keys and wrong types are errors with line and column.
//!
//! ```toml
//! [daemon]
//! socket = "/run/auditor/daemon.sock"
//! output_dir = "/var/lib/auditor/observations"
//! max_containers = 64
//! metrics_addr = "127.0.0.1:9464"     # Prometheus /metrics, /healthz, /readyz (off if absent)
//!
//! [agent]
//! socket = "/run/auditor/agent.sock"
//! lxc_socket = "/run/auditor/lxc.sock"
//! policy_dir = "/etc/auditor/policies"
//! audit_log = "/var/log/auditor/audit.jsonl"
//! policy_from_annotation = false
//! helper_timeout = "5s"
//! abort_stalled_fuse = false
//! prompt_timeout = "30s"              # interactive policies (default = "notify")
//! metrics_addr = "127.0.0.1:9465"
//! flood_rate = 20000                  # notified calls/s above which a container is served from idle CPU time (0: never)
//!
//! [hook]
//! socket = "/run/auditor/daemon.sock"
//! timeout = "10s"
//!
//! [runtime]          # only `auditor-runc` reads it (containerd's runc BinaryName)
//! delegate = "runc"
//! learn = "/run/auditor/daemon.sock"
//! agent = "/run/auditor/agent.sock"
//! policy = "web"
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where the services look when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/auditor/config.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: [{section}] {key} = {value:?}: {message}")]
    Invalid {
        path: PathBuf,
        section: &'static str,
        key: &'static str,
        value: String,
        message: String,
    },
}

/// The whole file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub daemon: DaemonConfig,
    pub agent: AgentConfig,
    pub hook: HookConfig,
    pub runtime: RuntimeConfig,
}

/// `[daemon]`: `auditor daemon`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    pub socket: Option<PathBuf>,
    pub output_dir: Option<PathBuf>,
    pub max_containers: Option<u32>,
    /// Prometheus metrics and health endpoints (`host:port`); off when absent.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// `[agent]`: `auditor agent`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    pub socket: Option<PathBuf>,
    pub lxc_socket: Option<PathBuf>,
    pub policy_dir: Option<PathBuf>,
    pub audit_log: Option<PathBuf>,
    pub policy_from_annotation: Option<bool>,
    /// A duration (`"5s"`, `"1500ms"`).
    pub helper_timeout: Option<String>,
    pub abort_stalled_fuse: Option<bool>,
    /// A duration: how long a prompt of an interactive policy waits before it denies.
    pub prompt_timeout: Option<String>,
    /// Prometheus metrics and health endpoints (`host:port`); off when absent.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Notified calls a second above which a container's broker thread runs at idle priority
    /// (0: never).
    pub flood_rate: Option<u64>,
}

/// `[hook]`: `auditor hook`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HookConfig {
    pub socket: Option<PathBuf>,
    /// A duration (`"10s"`).
    pub timeout: Option<String>,
}

/// `[runtime]`: the options of `auditor-runc`, the runtime wrapper under a name that takes
/// no arguments (containerd's runc `BinaryName` is a bare path). `auditor runtime` itself
/// takes its options from its command line only.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// `runc`, `crun` or a path [default: runc].
    pub delegate: Option<String>,
    /// `auditor daemon`'s socket: learn every container created.
    pub learn: Option<PathBuf>,
    /// `auditor agent`'s socket, set as the profile's `listenerPath`.
    pub agent: Option<PathBuf>,
    /// The policy name, set as the profile's `listenerMetadata`.
    pub policy: Option<String>,
}

/// Where the configuration came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Read from this file.
    File(PathBuf),
    /// The default file does not exist: built-in defaults.
    Absent(PathBuf),
}

/// The configuration in effect, and its source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loaded {
    pub source: Source,
    pub config: Config,
}

impl Loaded {
    /// The file read, or the default one that was absent.
    pub fn path(&self) -> &Path {
        match &self.source {
            Source::File(p) | Source::Absent(p) => p,
        }
    }

    /// `[agent] helper_timeout`, checked like the flag.
    pub fn agent_helper_timeout(&self) -> Result<Option<Duration>, ConfigError> {
        self.duration(
            "agent",
            "helper_timeout",
            self.config.agent.helper_timeout.as_deref(),
            crate::broker::check_helper_timeout,
        )
    }

    /// `[agent] prompt_timeout`, checked like the flag.
    pub fn agent_prompt_timeout(&self) -> Result<Option<Duration>, ConfigError> {
        self.duration(
            "agent",
            "prompt_timeout",
            self.config.agent.prompt_timeout.as_deref(),
            check_prompt_timeout,
        )
    }

    /// `[hook] timeout`.
    pub fn hook_timeout(&self) -> Result<Option<Duration>, ConfigError> {
        self.duration(
            "hook",
            "timeout",
            self.config.hook.timeout.as_deref(),
            |s| humantime::parse_duration(s).map_err(|e| e.to_string()),
        )
    }

    /// `[daemon] max_containers`, in the flag's range.
    pub fn daemon_max_containers(&self) -> Result<Option<u32>, ConfigError> {
        match self.config.daemon.max_containers {
            Some(n) if !(1..=MAX_CONTAINERS_LIMIT).contains(&n) => Err(ConfigError::Invalid {
                path: self.path().to_owned(),
                section: "daemon",
                key: "max_containers",
                value: n.to_string(),
                message: format!("give 1 to {MAX_CONTAINERS_LIMIT}"),
            }),
            other => Ok(other),
        }
    }

    fn duration(
        &self,
        section: &'static str,
        key: &'static str,
        value: Option<&str>,
        parse: impl Fn(&str) -> Result<Duration, String>,
    ) -> Result<Option<Duration>, ConfigError> {
        value
            .map(|v| {
                parse(v).map_err(|message| ConfigError::Invalid {
                    path: self.path().to_owned(),
                    section,
                    key,
                    value: v.to_owned(),
                    message,
                })
            })
            .transpose()
    }
}

/// The daemon's settings as flags give them (`None`: not given).
#[derive(Clone, Debug, Default)]
pub struct DaemonFlags {
    pub socket: Option<PathBuf>,
    pub output_dir: Option<PathBuf>,
    pub max_containers: Option<u32>,
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// `--instance` (checked by the caller).
    pub instance: Option<String>,
}

/// Where observation files go unless told otherwise.
pub const DEFAULT_OUTPUT_DIR: &str = "/var/lib/auditor/observations";
/// Containers the daemon tracks at once unless told otherwise.
pub const DEFAULT_MAX_CONTAINERS: u32 = 64;
/// The most `max_containers` (flag or file) may be.
pub const MAX_CONTAINERS_LIMIT: u32 = 1024;

/// The agent's settings as flags give them (`None`/`false`: not given).
#[derive(Clone, Debug, Default)]
pub struct AgentFlags {
    pub socket: Option<PathBuf>,
    pub lxc_socket: Option<PathBuf>,
    pub policy_dir: Option<PathBuf>,
    pub audit_log: Option<PathBuf>,
    pub policy_from_annotation: bool,
    pub helper_timeout: Option<Duration>,
    pub abort_stalled_fuse: bool,
    pub prompt_timeout: Option<Duration>,
    pub metrics_addr: Option<std::net::SocketAddr>,
    pub flood_rate: Option<u64>,
    /// The service manager passed the listening sockets (socket activation): no socket paths
    /// are needed, and configured ones are not bound.
    pub activated: bool,
}

/// The agent's effective settings.
#[derive(Clone, Debug)]
pub struct AgentSettings {
    pub socket: Option<PathBuf>,
    pub lxc_socket: Option<PathBuf>,
    pub policy_dir: PathBuf,
    pub audit_log: Option<PathBuf>,
    pub policy_from_annotation: bool,
    pub helper_timeout: Duration,
    pub abort_stalled_fuse: bool,
    pub prompt_timeout: Duration,
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Notified calls a second above which a container is served from idle CPU time; 0: never.
    pub flood_rate: u64,
}

/// How long a prompt may wait: at least a second, at most an hour (the call's thread is
/// blocked all that time).
pub fn check_prompt_timeout(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d < Duration::from_secs(1) || d > Duration::from_secs(3600) {
        return Err(format!(
            "{s} is out of range: a prompt waits between 1s and 1h (LXC containers' prompts at most {}s)",
            crate::agent::prompts::LXC_MAX_TIMEOUT.as_secs()
        ));
    }
    Ok(d)
}

/// Why the agent's settings are incomplete.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("no policy directory: give --policy-dir DIR, or set [agent] policy_dir in {0}")]
    NoPolicyDir(PathBuf),
    #[error("nothing to listen on: give --socket PATH (runc, crun) and/or --lxc-socket PATH (LXC), or set [agent] socket / lxc_socket in {0}")]
    NoSocket(PathBuf),
}

impl Loaded {
    /// The daemon's settings: each from its flag, else this configuration, else the default.
    pub fn daemon(&self, flags: DaemonFlags) -> Result<crate::daemon::Config, ConfigError> {
        let c = &self.config.daemon;
        let socket = flags
            .socket
            .or_else(|| c.socket.clone())
            .unwrap_or_else(|| PathBuf::from(crate::daemon::protocol::DEFAULT_SOCKET));
        Ok(crate::daemon::Config {
            instance: flags.instance.unwrap_or_else(|| {
                crate::daemon::state::instance_of(
                    &socket,
                    Path::new(crate::daemon::protocol::DEFAULT_SOCKET),
                )
            }),
            state_dir: PathBuf::from(crate::daemon::state::STATE_DIR),
            socket,
            output_dir: flags
                .output_dir
                .or_else(|| c.output_dir.clone())
                .unwrap_or_else(|| PathBuf::from(DEFAULT_OUTPUT_DIR)),
            max_containers: match flags.max_containers {
                Some(n) => n,
                None => self
                    .daemon_max_containers()?
                    .unwrap_or(DEFAULT_MAX_CONTAINERS),
            },
            metrics_addr: flags.metrics_addr.or(c.metrics_addr),
        })
    }

    /// The agent's settings: each from its flag, else this configuration, else the default.
    pub fn agent(&self, flags: AgentFlags) -> Result<AgentSettings, SettingsError> {
        let c = &self.config.agent;
        let settings = AgentSettings {
            socket: flags.socket.or_else(|| c.socket.clone()),
            lxc_socket: flags.lxc_socket.or_else(|| c.lxc_socket.clone()),
            policy_dir: flags
                .policy_dir
                .or_else(|| c.policy_dir.clone())
                .ok_or_else(|| SettingsError::NoPolicyDir(self.path().to_owned()))?,
            audit_log: flags.audit_log.or_else(|| c.audit_log.clone()),
            policy_from_annotation: flags.policy_from_annotation
                || c.policy_from_annotation.unwrap_or(false),
            helper_timeout: match flags.helper_timeout {
                Some(t) => t,
                None => self
                    .agent_helper_timeout()?
                    .unwrap_or(crate::broker::DEFAULT_HELPER_TIMEOUT),
            },
            abort_stalled_fuse: flags.abort_stalled_fuse || c.abort_stalled_fuse.unwrap_or(false),
            prompt_timeout: match flags.prompt_timeout {
                Some(t) => t,
                None => self
                    .agent_prompt_timeout()?
                    .unwrap_or(crate::broker::prompt::DEFAULT_TIMEOUT),
            },
            metrics_addr: flags.metrics_addr.or(c.metrics_addr),
            flood_rate: flags
                .flood_rate
                .or(c.flood_rate)
                .unwrap_or(crate::broker::DEFAULT_FLOOD_RATE),
        };
        if flags.activated {
            return Ok(AgentSettings {
                socket: None,
                lxc_socket: None,
                ..settings
            });
        }
        if settings.socket.is_none() && settings.lxc_socket.is_none() {
            return Err(SettingsError::NoSocket(self.path().to_owned()));
        }
        Ok(settings)
    }

    /// The hook's socket and timeout: flag, else this configuration, else the default.
    pub fn hook(
        &self,
        socket: Option<PathBuf>,
        timeout: Option<Duration>,
    ) -> Result<(PathBuf, Duration), ConfigError> {
        Ok((
            socket
                .or_else(|| self.config.hook.socket.clone())
                .unwrap_or_else(|| PathBuf::from(crate::daemon::protocol::DEFAULT_SOCKET)),
            match timeout {
                Some(t) => t,
                None => self.hook_timeout()?.unwrap_or(Duration::from_secs(10)),
            },
        ))
    }
}

/// Parse a configuration's text; `path` names it in errors.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    toml_edit::de::from_str::<Config>(text).map_err(|e| {
        let at = e.span().map_or(0, |s| s.start);
        let before = &text[..at.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rfind('\n').map_or(at, |i| at - i - 1) + 1;
        ConfigError::Parse {
            path: path.to_owned(),
            line,
            column,
            message: e.message().trim_end().replace('\n', "; "),
        }
    })
}

/// Load `explicit` (which must exist) or the default file (which may be absent).
pub fn load(explicit: Option<&Path>) -> Result<Loaded, ConfigError> {
    let path = explicit.map_or_else(|| PathBuf::from(DEFAULT_PATH), Path::to_path_buf);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Loaded {
            config: parse(&text, &path)?,
            source: Source::File(path),
        }),
        Err(e) if explicit.is_none() && e.kind() == std::io::ErrorKind::NotFound => Ok(Loaded {
            source: Source::Absent(path),
            config: Config::default(),
        }),
        Err(source) => Err(ConfigError::Read { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_section_and_leaves_the_rest_unset() {
        let c = parse(
            "[daemon]\nmax_containers = 8\n[agent]\npolicy_dir = \"/p\"\nhelper_timeout = \"2s\"\n",
            Path::new("c.toml"),
        )
        .expect("parse");
        assert_eq!(c.daemon.max_containers, Some(8));
        assert_eq!(c.daemon.socket, None);
        assert_eq!(c.agent.policy_dir.as_deref(), Some(Path::new("/p")));
        let l = Loaded {
            source: Source::File("c.toml".into()),
            config: c,
        };
        assert_eq!(
            l.agent_helper_timeout().expect("valid"),
            Some(Duration::from_secs(2))
        );
        assert_eq!(l.hook_timeout().expect("valid"), None);
        assert_eq!(
            parse("", Path::new("e.toml")).expect("empty"),
            Config::default()
        );
    }

    #[test]
    fn mistakes_are_located() {
        let e = parse("[agent]\npolicy_dri = \"/p\"\n", Path::new("c.toml")).expect_err("typo");
        let m = e.to_string();
        assert!(
            m.starts_with("c.toml:2:1: unknown field `policy_dri`"),
            "{m}"
        );
        assert!(m.contains("policy_dir"), "{m}");
        let e =
            parse("[daemon]\nmax_containers = \"many\"\n", Path::new("c.toml")).expect_err("type");
        assert!(e.to_string().starts_with("c.toml:2:18: "), "{e}");
        let l = Loaded {
            source: Source::File("c.toml".into()),
            config: parse(
                "[agent]\nhelper_timeout = \"1h\"\n[daemon]\nmax_containers = 0\n",
                Path::new("c.toml"),
            )
            .expect("parse"),
        };
        let e = l.agent_helper_timeout().expect_err("too long").to_string();
        assert!(e.contains("[agent] helper_timeout = \"1h\""), "{e}");
        assert!(l.daemon_max_containers().is_err());
    }

    /// The file the Debian package installs is valid and sets every key.
    #[test]
    fn the_packaged_configuration_is_valid_and_complete() {
        let text = include_str!("../../packaging/config.toml");
        let c = parse(text, Path::new("packaging/config.toml")).expect("valid");
        let l = Loaded {
            source: Source::File("packaging/config.toml".into()),
            config: c.clone(),
        };
        let d = l.daemon(DaemonFlags::default()).expect("daemon settings");
        assert_eq!(d.output_dir, Path::new(DEFAULT_OUTPUT_DIR));
        let a = l.agent(AgentFlags::default()).expect("agent settings");
        assert_eq!(a.policy_dir, Path::new("/etc/auditor/policies"));
        assert!(a.socket.is_some() && a.lxc_socket.is_some() && a.audit_log.is_some());
        assert!(c.agent.helper_timeout.is_some() && c.agent.abort_stalled_fuse.is_some());
        assert_eq!(c.agent.flood_rate, Some(crate::broker::DEFAULT_FLOOD_RATE));
        assert_eq!(a.flood_rate, crate::broker::DEFAULT_FLOOD_RATE);
        assert!(c.daemon.socket.is_some() && c.daemon.max_containers.is_some());
        assert!(c.hook.socket.is_some() && c.hook.timeout.is_some());
        // A flag wins over the file.
        let a = l
            .agent(AgentFlags {
                policy_dir: Some("/elsewhere".into()),
                ..AgentFlags::default()
            })
            .expect("agent settings");
        assert_eq!(a.policy_dir, Path::new("/elsewhere"));
    }

    #[test]
    fn the_flood_rate_comes_from_the_flag_then_the_file_then_the_default() {
        let loaded = |text: &str| Loaded {
            source: Source::File("c.toml".into()),
            config: parse(text, Path::new("c.toml")).expect("valid"),
        };
        let flags = |flood_rate| AgentFlags {
            policy_dir: Some("/p".into()),
            socket: Some("/s".into()),
            flood_rate,
            ..AgentFlags::default()
        };
        let none = loaded("");
        assert_eq!(
            none.agent(flags(None)).expect("agent").flood_rate,
            crate::broker::DEFAULT_FLOOD_RATE
        );
        let off = loaded("[agent]\nflood_rate = 0\n");
        assert_eq!(off.agent(flags(None)).expect("agent").flood_rate, 0);
        assert_eq!(
            off.agent(flags(Some(5_000))).expect("agent").flood_rate,
            5_000
        );
        let e = parse("[agent]\nflood_rate = \"fast\"\n", Path::new("c.toml"))
            .expect_err("a string is no rate")
            .to_string();
        assert!(e.contains("c.toml:2:") && e.contains("expected u64"), "{e}");
    }

    #[test]
    fn metrics_addresses_are_socket_addresses_and_flags_win() {
        let text = "[daemon]\nmetrics_addr = \"127.0.0.1:9464\"\n[agent]\npolicy_dir = \"/p\"\nsocket = \"/s\"\nmetrics_addr = \"[::1]:9465\"\n";
        let l = Loaded {
            source: Source::File("c.toml".into()),
            config: parse(text, Path::new("c.toml")).expect("valid"),
        };
        let d = l.daemon(DaemonFlags::default()).expect("daemon");
        assert_eq!(d.metrics_addr, Some("127.0.0.1:9464".parse().unwrap()));
        let flag = "0.0.0.0:1".parse().unwrap();
        let a = l
            .agent(AgentFlags {
                metrics_addr: Some(flag),
                ..AgentFlags::default()
            })
            .expect("agent");
        assert_eq!(a.metrics_addr, Some(flag));
        let e = parse(
            "[agent]\nmetrics_addr = \"localhost\"\n",
            Path::new("c.toml"),
        )
        .expect_err("a host without a port")
        .to_string();
        assert!(e.starts_with("c.toml:2:"), "{e}");
    }

    #[test]
    fn the_default_file_may_be_absent_a_named_one_may_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("none.toml");
        assert!(matches!(
            load(Some(&missing)),
            Err(ConfigError::Read { .. })
        ));
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[hook]\ntimeout = \"3s\"\n").expect("write");
        let l = load(Some(&path)).expect("load");
        assert_eq!(l.source, Source::File(path));
        assert_eq!(
            l.hook_timeout().expect("valid"),
            Some(Duration::from_secs(3))
        );
    }
}
