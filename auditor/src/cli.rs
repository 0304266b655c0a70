//! Command-line definitions (clap) only.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::TypedValueParser as _;
use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "auditor",
    version,
    about = "Learn the syscalls a workload needs, generate a seccomp policy, enforce it"
)]
pub struct Cli {
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Observe every syscall a workload attempts (eBPF) and write an observation file.
    Learn(LearnArgs),
    /// Attach empty programs to the syscall hooks until interrupted (benchmark floor).
    #[command(hide = true)]
    BenchFloor,
    /// Learn containers: the resident learner that `auditor hook` registers containers with.
    Daemon(crate::commands::daemon::DaemonArgs),
    /// OCI hook (createRuntime/prestart): register the container with `auditor daemon`.
    Hook(crate::commands::hook::HookArgs),
    // enforce commands
    /// Run a workload under a policy's seccomp filter, with auditor's broker deciding the
    /// calls the policy marks notify.
    Enforce(crate::commands::enforce::EnforceArgs),
    /// Watch a running learn or enforce session live in the terminal.
    Tui(crate::commands::tui::TuiArgs),
    /// The seccomp agent for container runtimes: serves the notify fds runc and crun
    /// (`listenerPath`) and LXC (`lxc.seccomp.notify.proxy`) hand over, per container policy.
    Agent(crate::commands::agent::AgentArgs),
    // policy commands
    /// Turn observation files into a policy (native, OCI, LXC, Kubernetes or systemd).
    Generate(crate::commands::generate::GenerateArgs),
    /// Validate and lint a policy: exit 0 clean, 1 warnings, 2 errors.
    Check(crate::commands::check::CheckArgs),
    /// Show added, removed and changed rules between two policies.
    Diff(crate::commands::diff::DiffArgs),
    /// Merge policies into one (keeps the first native policy's comments).
    Merge(crate::commands::merge::MergeArgs),
    /// Build the seccomp filter through libseccomp; --dump prints its BPF program.
    Compile(crate::commands::compile::CompileArgs),
}

/// `auditor learn [-o FILE] [--duration DUR] (-- CMD [ARGS...] | --pid PID | --cgroup DIR)`
#[derive(Debug, Args)]
pub struct LearnArgs {
    /// Where to write the observation file (JSON, written atomically).
    #[arg(short, long, default_value = "observation.json")]
    pub output: PathBuf,
    /// Stop learning after this long (e.g. 30s, 5m); a command started by auditor is then
    /// terminated.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Print the observation as JSON on stdout instead of the summary table.
    #[arg(long)]
    pub json: bool,
    /// Do not show the live progress line.
    #[arg(long)]
    pub no_progress: bool,
    /// Learn a running process and every descendant it creates from now on.
    #[arg(long, conflicts_with = "cgroup")]
    pub pid: Option<u32>,
    /// Learn a running OCI container by id (its init pid from `RUNTIME state ID`; scoped by its
    /// own cgroup v2 where it has one, else by its processes and their descendants).
    #[arg(long, value_name = "ID", conflicts_with_all = ["pid", "cgroup"])]
    pub container: Option<String>,
    /// With --container: the runtime that runs it.
    #[arg(
        long,
        default_value = "runc",
        requires = "container",
        value_parser = clap::builder::PossibleValuesParser::new(["runc", "crun"])
            .map(|s| if s == "crun" { crate::policy::generate::Runtime::Crun } else { crate::policy::generate::Runtime::Runc })
    )]
    pub runtime: crate::policy::generate::Runtime,
    /// With --container: the runtime's state directory (its --root).
    #[arg(long, value_name = "DIR", requires = "container")]
    pub root: Option<PathBuf>,
    /// Learn every task in a cgroup v2 directory and its child cgroups, including tasks that
    /// join later.
    #[arg(long)]
    pub cgroup: Option<PathBuf>,
    /// Run the command as an unprivileged container, as `auditor enforce --userns` does (root
    /// inside mapped to HOST_UID:COUNT, default 100000:65536), so that what is learned is what
    /// will be enforced.
    #[arg(long, value_name = "RANGE", num_args = 0..=1, require_equals = true, default_missing_value = "100000:65536", conflicts_with_all = ["pid", "cgroup", "container"])]
    pub userns: Option<String>,
    /// With --userns: the container's root file system (must contain a `proc` directory).
    #[arg(long, value_name = "DIR", requires = "userns")]
    pub rootfs: Option<PathBuf>,
    /// Run the command under this policy with its notify handlers active, refusals recorded but
    /// not enforced (complain mode): a second round sees what the workload does after a granted
    /// mknod or mount. `generate` then merges the rounds.
    #[arg(long, value_name = "POLICY", conflicts_with_all = ["pid", "cgroup", "container"])]
    pub policy: Option<PathBuf>,
    #[command(flatten)]
    pub ui: crate::commands::shared::LiveUiArgs,
    /// The command to start and learn, after `--`.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Logs go to stderr through `tracing`; RUST_LOG wins over -v.
pub fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
