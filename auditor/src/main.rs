//! The `auditor` command. Thin: parse, set up logging, dispatch.
use clap::Parser as _;

fn main() -> std::process::ExitCode {
    // `auditor-runc`: containerd calls the runtime wrapper by a name, with runc's arguments.
    if let Some(code) = auditor::commands::runtime::run_by_name() {
        return code;
    }
    let cli = auditor::commands::cli::Cli::parse();
    auditor::commands::cli::init_tracing(cli.verbose);
    auditor::commands::run(cli)
}
