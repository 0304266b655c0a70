//! The `auditor` command. Thin: parse, set up logging, dispatch.
use clap::Parser as _;

fn main() -> std::process::ExitCode {
    let cli = auditor::cli::Cli::parse();
    auditor::cli::init_tracing(cli.verbose);
    auditor::commands::run(cli)
}
