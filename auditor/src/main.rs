//! The `auditor` command. Thin: parse, set up logging, dispatch.
use clap::Parser as _;

fn main() -> std::process::ExitCode {
    let cli = auditor::commands::cli::Cli::parse();
    auditor::commands::cli::init_tracing(cli.verbose);
    auditor::commands::run(cli)
}
