//! `auditor runtime --delegate runc|crun|PATH [--learn SOCKET] [--agent SOCKET [--policy
//! NAME]] RUNTIME_ARGS...`, and the same wrapper as `auditor-runc` (options from the
//! configuration's `[runtime]` section). See [`crate::runtime`].

use std::path::PathBuf;
use std::process::ExitCode;

use crate::runtime::{self, args, Level, Options};

/// The name under which the wrapper takes no options of its own (a symlink to auditor):
/// containerd's runc `BinaryName` is a bare path.
pub const RUNC_NAME: &str = "auditor-runc";

/// Where `auditor-runc` reads its configuration when `AUDITOR_CONFIG` names none.
pub const CONFIG_ENV: &str = "AUDITOR_CONFIG";

/// `auditor runtime`
#[derive(Debug, clap::Args)]
pub struct RuntimeArgs {
    /// The real OCI runtime every call is passed to (`runc`, `crun`, or a path).
    #[arg(long, value_name = "runc|crun|PATH")]
    pub delegate: String,
    /// Learn every container created: add a createRuntime hook registering it with
    /// `auditor daemon` on this socket.
    #[arg(long, value_name = "DAEMON_SOCKET")]
    pub learn: Option<PathBuf>,
    /// Serve notify rules with `auditor agent` on this socket: set the seccomp profile's
    /// `listenerPath` (Docker drops it from `--security-opt seccomp=` profiles), when the
    /// profile has an SCMP_ACT_NOTIFY rule and names no listener of its own.
    #[arg(long, value_name = "AGENT_SOCKET")]
    pub agent: Option<PathBuf>,
    /// The agent's policy for these containers (`listenerMetadata`; else `default`).
    #[arg(long, value_name = "NAME", requires = "agent", value_parser = policy_name)]
    pub policy: Option<String>,
    /// The runtime's own arguments, passed on unchanged: global flags (--root, --log,
    /// --log-format, --systemd-cgroup, …), the subcommand, its flags, the container id.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "RUNTIME_ARGS"
    )]
    pub args: Vec<String>,
}

fn policy_name(s: &str) -> Result<String, String> {
    crate::agent::policies::validate_name(Some(s))
        .map(str::to_owned)
        .map_err(|e| e.to_string())
}

/// `auditor runtime …`: returns only when the delegate could not be run.
pub fn run(args: RuntimeArgs, config: Option<PathBuf>) -> ExitCode {
    let options = Options {
        delegate: args.delegate,
        learn: args.learn,
        agent: args.agent,
        policy: args.policy,
        config,
    };
    wrap(&options, &args.args)
}

/// `auditor-runc …` when this program was called by that name; `None` otherwise.
pub fn run_by_name() -> Option<ExitCode> {
    let mut argv = std::env::args_os();
    let name = PathBuf::from(argv.next()?);
    if name.file_name()? != RUNC_NAME {
        return None;
    }
    super::cli::init_tracing(0);
    let rest: Vec<String> = argv.map(|a| a.to_string_lossy().into_owned()).collect();
    let explicit = std::env::var_os(CONFIG_ENV).map(PathBuf::from);
    let options = crate::config::load(explicit.as_deref())
        .map_err(|e| e.to_string())
        .and_then(|loaded| {
            let r = &loaded.config.runtime;
            if let Some(p) = &r.policy {
                policy_name(p)
                    .map_err(|e| format!("{}: [runtime] policy: {e}", loaded.path().display()))?;
            }
            Ok(Options {
                delegate: r.delegate.clone().unwrap_or_else(|| "runc".to_owned()),
                learn: r.learn.clone(),
                agent: r.agent.clone(),
                policy: r.policy.clone(),
                config: explicit.clone(),
            })
        });
    Some(match options {
        Ok(options) => wrap(&options, &rest),
        Err(e) => fail(&args::parse(&rest), &e),
    })
}

/// Say why the call failed where the shim looks (the runtime's log) and on stderr, as runc
/// does, and fail.
fn fail(inv: &args::Invocation, msg: &str) -> ExitCode {
    runtime::log_to_runtime(inv, Level::Error, msg);
    eprintln!("auditor runtime: error: {msg}");
    ExitCode::from(super::EXIT_ERROR)
}

fn wrap(options: &Options, rest: &[String]) -> ExitCode {
    let inv = args::parse(rest);
    let delegate = match runtime::resolve_delegate(&options.delegate) {
        Ok(d) => d,
        Err(e) => return fail(&inv, &e.to_string()),
    };
    match runtime::prepare(options, &delegate, &inv) {
        Ok(report) => {
            for (level, line) in report.lines() {
                let id = inv.id.as_deref().unwrap_or("?");
                let line = format!("container {id}: {line}");
                // `create`'s stderr is the container's: only a warning with nowhere else to go
                // is written there.
                if !runtime::log_to_runtime(&inv, level, &line) && level == Level::Warning {
                    eprintln!("auditor runtime: warning: {line}");
                }
            }
        }
        Err(e) => {
            let id = inv.id.as_deref().unwrap_or("?");
            return fail(&inv, &format!("container {id}: {e:#}"));
        }
    }
    let e = runtime::exec(&delegate, rest);
    fail(&inv, &e.to_string())
}
