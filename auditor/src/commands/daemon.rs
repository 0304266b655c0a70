//! `auditor daemon`: the resident learner for containers (see crate::daemon).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::daemon::{self, protocol};

/// `auditor daemon [--socket PATH] [--output-dir DIR] [--max-containers N]`
#[derive(Debug, clap::Args)]
pub struct DaemonArgs {
    /// The Unix socket `auditor hook` registers containers on (root-only, mode 0600).
    #[arg(long, default_value = protocol::DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Where observation files go, one per container: ID.json.
    #[arg(long, default_value = "/var/lib/auditor/observations")]
    pub output_dir: PathBuf,
    /// Containers tracked at once (each costs ~48 KiB of counters per CPU).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub max_containers: u32,
}

pub fn run(args: &DaemonArgs) -> anyhow::Result<ExitCode> {
    super::require_root("auditor daemon")?;
    daemon::run(daemon::Config {
        socket: args.socket.clone(),
        output_dir: args.output_dir.clone(),
        max_containers: args.max_containers,
    })?;
    Ok(ExitCode::SUCCESS)
}
