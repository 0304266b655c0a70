//! `auditor doctor [--mode MODE]... [--json]`: what this host offers auditor and what each
//! missing piece disables. Exit status: 0 when every mode asked about can run, 1 when one
//! cannot.

use std::process::ExitCode;

use clap::Args;

use crate::doctor::{Mode, Report};

/// `auditor doctor`
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The modes to judge the host for (repeat or comma-separate); the exit status says
    /// whether all of them can run. Default: all.
    #[arg(long = "mode", value_enum, value_delimiter = ',')]
    pub modes: Vec<Mode>,
    /// Print the report as JSON (the checks, and per mode whether it can run).
    #[arg(long)]
    pub json: bool,
}

pub fn run(
    args: &DoctorArgs,
    config: Result<crate::config::Loaded, crate::config::ConfigError>,
) -> anyhow::Result<ExitCode> {
    let mut modes = if args.modes.is_empty() {
        Mode::ALL.to_vec()
    } else {
        args.modes.clone()
    };
    modes.sort();
    modes.dedup();
    let report = Report::collect(&config);
    if args.json {
        println!("{}", report.to_json(&modes));
    } else {
        print!("{}", report.render(&modes));
    }
    Ok(if report.ready(&modes) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
