//! Command-line definitions (clap) only.

use clap::{Parser, Subcommand};

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
    /// The configuration file of `daemon`, `agent` and `hook` (flags win over it) [default:
    /// /etc/auditor/config.toml, which may be absent].
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Observe every syscall a workload attempts (eBPF) and write an observation file.
    Learn(super::learn::LearnArgs),
    /// Attach empty programs to the syscall hooks until interrupted (benchmark floor).
    #[command(hide = true)]
    BenchFloor,
    /// Learn containers: the resident learner that `auditor hook` registers containers with.
    Daemon(super::daemon::DaemonArgs),
    /// OCI hook (createRuntime/prestart): register the container with `auditor daemon`.
    Hook(super::hook::HookArgs),
    /// OCI runtime wrapper for Docker and containerd: passes every call to runc or crun,
    /// adding auditor's learning hook and seccomp listener to the containers it creates.
    Runtime(super::runtime::RuntimeArgs),
    /// What this host offers auditor (kernel, eBPF, seccomp, namespaces, privileges, runtimes)
    /// and what each missing piece disables; exit 1 when a chosen mode cannot run.
    Doctor(super::doctor::DoctorArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(super::docs::CompletionsArgs),
    /// Write man pages (auditor.1 and one per subcommand) into a directory.
    Manpages(super::docs::ManpagesArgs),
    // enforce commands
    /// Run a workload under a policy's seccomp filter, with auditor's broker deciding the
    /// calls the policy marks notify.
    Enforce(super::enforce::EnforceArgs),
    /// Watch a running learn or enforce session live in the terminal.
    Tui(super::tui::TuiArgs),
    /// The seccomp agent for container runtimes: serves the notify fds runc and crun
    /// (`listenerPath`) and LXC (`lxc.seccomp.notify.proxy`) hand over, per container policy.
    Agent(super::agent::AgentArgs),
    // policy commands
    /// Turn observation files into a policy (native, OCI, LXC, Kubernetes or systemd).
    Generate(super::generate::GenerateArgs),
    /// Validate and lint a policy: exit 0 clean, 1 warnings, 2 errors.
    Check(super::check::CheckArgs),
    /// Show added, removed and changed rules between two policies.
    Diff(super::diff::DiffArgs),
    /// Merge policies into one (keeps the first native policy's comments).
    Merge(super::merge::MergeArgs),
    /// Read a profile a cluster or engine loads (SPO SeccompProfile YAML, OCI/Docker JSON) into
    /// a native policy.
    Import(super::import::ImportCmdArgs),
    /// Install seccomp profiles where kubelet loads localhost/ profiles
    /// (seccomp/operator/NAME.json under the kubelet root), checking each first.
    KubeletProfiles(super::kubelet::KubeletProfilesArgs),
    /// Build the seccomp filter through libseccomp; --dump prints its BPF program.
    Compile(super::compile::CompileArgs),
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
