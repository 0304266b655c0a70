//! `auditor completions SHELL` and `auditor manpages DIR`: shell completions and man pages,
//! generated from the same clap definitions the parser uses (for packages, and for users who
//! build from source).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, CommandFactory as _};

use super::cli::Cli;

/// `auditor completions SHELL`
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    pub shell: clap_complete::Shell,
}

/// `auditor manpages DIR`
#[derive(Debug, Args)]
pub struct ManpagesArgs {
    /// Where to write auditor.1 and one auditor-SUBCOMMAND.1 per subcommand.
    pub dir: PathBuf,
}

/// Print the completion script for a shell.
pub fn completions(args: &CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "auditor", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

/// Write the man pages: `auditor.1` and one per (visible) subcommand.
pub fn manpages(args: &ManpagesArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let cmd = Cli::command();
    clap_mangen::generate_to(cmd, &args.dir)
        .with_context(|| format!("writing man pages into {}", args.dir.display()))?;
    let mut written: Vec<String> = std::fs::read_dir(&args.dir)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".1"))
        .collect();
    written.sort();
    eprintln!(
        "auditor: {} man pages in {}: {}",
        written.len(),
        args.dir.display(),
        written.join(" ")
    );
    Ok(ExitCode::SUCCESS)
}
