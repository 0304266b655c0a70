//! `auditor daemon`: the resident learner for containers (see crate::daemon).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::daemon;

/// `auditor daemon [--socket PATH] [--output-dir DIR] [--max-containers N]`
#[derive(Debug, clap::Args)]
pub struct DaemonArgs {
    /// The Unix socket `auditor hook` registers containers on (root-only, mode 0600)
    /// [config: daemon.socket; default: /run/auditor/daemon.sock].
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Where observation files go, one per container: ID.json [config: daemon.output_dir;
    /// default: /var/lib/auditor/observations].
    #[arg(long)]
    pub output_dir: Option<PathBuf>,
    /// Containers tracked at once (each costs ~48 KiB of counters per CPU) [config:
    /// daemon.max_containers; default: 64].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::config::MAX_CONTAINERS_LIMIT)))]
    pub max_containers: Option<u32>,
    /// Serve Prometheus metrics (`/metrics`) and health checks (`/healthz`, `/readyz`: the
    /// eBPF programs are loaded and the socket is bound) on this address, e.g.
    /// 127.0.0.1:9464 (port 0: any free port, logged) [config: daemon.metrics_addr; default:
    /// off].
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Names this daemon's pinned eBPF programs (/sys/fs/bpf/auditor/NAME) and registry
    /// (/run/auditor/daemon/NAME.json), which a daemon restarted with the same name adopts:
    /// the containers it was learning go on being learned, counted all along by the kernel
    /// [default: `default` for the default socket, else one derived from --socket].
    #[arg(long, value_name = "NAME")]
    pub instance: Option<String>,
    /// Do not serve: write the observation of every container the pinned programs still count
    /// (as a stopped daemon leaves them), then remove the pins and the registry, which
    /// detaches the programs. Refused while a daemon serves the instance.
    #[arg(long)]
    pub uninstall: bool,
    /// With --uninstall: also remove pins that cannot be read (another auditor build's, or
    /// without a registry); their containers' counts are lost.
    #[arg(long, requires = "uninstall")]
    pub force: bool,
}

pub fn run(args: &DaemonArgs, config: &crate::config::Loaded) -> anyhow::Result<ExitCode> {
    super::require_root("auditor daemon")?;
    if let Some(name) = &args.instance {
        daemon::state::check_instance(name)?;
    }
    let config = config.daemon(crate::config::DaemonFlags {
        socket: args.socket.clone(),
        output_dir: args.output_dir.clone(),
        max_containers: args.max_containers,
        metrics_addr: args.metrics_addr,
        instance: args.instance.clone(),
    })?;
    if args.uninstall {
        let said = daemon::uninstall(&config, args.force)?;
        eprintln!("auditor daemon: {said}");
        return Ok(ExitCode::SUCCESS);
    }
    daemon::run(config)?;
    Ok(ExitCode::SUCCESS)
}
