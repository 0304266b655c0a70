//! `auditor check POLICY`: validate and lint a native or OCI JSON policy.
//! Exit status: 0 clean, 1 warnings, 2 errors (or unreadable input).
//!
//! Also home of the input helpers the other policy commands share (reading with a size limit,
//! locating errors as FILE:LINE:COLUMN).

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use crate::policy::check::{self, Severity};
use crate::policy::formats::{self, ImportOptions, DOCKER_DEFAULT_CAPS};
use crate::policy::model::{Arch, Policy};
use crate::policy::MAX_INPUT_BYTES;

/// How to read an OCI/Docker profile's conditional rules (shared by every policy command).
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// Capabilities the container has, for Docker's `includes`/`excludes` (comma-separated,
    /// e.g. CAP_SYS_ADMIN,CAP_NET_ADMIN). Default: Docker's default capability set.
    #[arg(long, value_delimiter = ',', value_name = "CAPS")]
    pub caps: Option<Vec<String>>,
    /// Architecture for Docker's `includes.arches` and `archMap` (e.g. x86_64, aarch64).
    /// Default: this machine's.
    #[arg(long, value_name = "ARCH")]
    pub arch: Option<String>,
}

impl ImportArgs {
    /// The import options these flags describe.
    pub fn options(&self) -> anyhow::Result<ImportOptions> {
        let arch = match &self.arch {
            Some(a) => Arch::from_native(a).or_else(|| Arch::from_uname(a)).with_context(|| {
                format!("unknown architecture `{a}` (use x86_64, x86, x32, aarch64, arm, riscv64, s390x, ppc64le, …)")
            })?,
            None => Arch::from_uname(std::env::consts::ARCH).unwrap_or(Arch::X86_64),
        };
        let caps = match &self.caps {
            Some(c) => c
                .iter()
                .map(|c| {
                    let c = c.trim().to_ascii_uppercase();
                    if c.starts_with("CAP_") {
                        c
                    } else {
                        format!("CAP_{c}")
                    }
                })
                .collect(),
            None => DOCKER_DEFAULT_CAPS
                .iter()
                .map(|c| (*c).to_owned())
                .collect(),
        };
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .and_then(|s| formats::parse_kernel_version(s.trim()));
        Ok(ImportOptions { caps, arch, kernel })
    }
}

/// `auditor check POLICY`
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// A native (TOML) or OCI/Docker JSON policy.
    pub policy: PathBuf,
    /// Check it for `auditor enforce --interactive`: notify as the default action is accepted
    /// (every call no rule decides is prompted for), and calls that are never prompted for are
    /// named.
    #[arg(long)]
    pub interactive: bool,
    #[command(flatten)]
    pub import: ImportArgs,
}

/// Read an input file whole, refusing empty and oversized files with a clear message.
pub fn read_input(path: &Path, what: &str) -> anyhow::Result<String> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot open {what} {}", path.display()))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len > MAX_INPUT_BYTES {
        anyhow::bail!(
            "{}: the file is {len} bytes, more than the {} MiB a {what} may have (is it the right file?)",
            path.display(),
            MAX_INPUT_BYTES / (1024 * 1024)
        );
    }
    let mut bytes = Vec::new();
    // A file that grows while it is read (or a device) is still bounded.
    file.take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        anyhow::bail!(
            "{}: more than the {} MiB a {what} may have",
            path.display(),
            MAX_INPUT_BYTES / (1024 * 1024)
        );
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        let at = crate::policy::model::Location::at(
            &String::from_utf8_lossy(e.as_bytes()),
            e.utf8_error().valid_up_to(),
        );
        anyhow::anyhow!(
            "{}:{at}: not UTF-8 text (is it the right file?)",
            path.display()
        )
    })?;
    if text.trim().is_empty() {
        anyhow::bail!("{}: the file is empty (expected a {what})", path.display());
    }
    Ok(text)
}

/// Read a native or OCI JSON policy; errors say FILE:LINE:COLUMN.
pub fn load_policy(path: &Path, options: &ImportOptions) -> anyhow::Result<Policy> {
    let text = read_input(path, "policy")?;
    formats::import(&text, options).map_err(|e| anyhow::anyhow!("{}:{e}", path.display()))
}

pub fn run(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let policy = load_policy(&args.policy, &args.import.options()?)?;
    let findings = check::check_with(
        &policy,
        check::CheckOptions {
            interactive: args.interactive,
        },
    );
    let file = args.policy.display();
    for f in &findings {
        match f.location {
            Some(_) => println!("{file}:{f}"),
            None => println!("{file}: {f}"),
        }
    }
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    let warnings = findings.len() - errors;
    let names: std::collections::BTreeSet<&str> = policy.names().map(|(_, n)| n).collect();
    if findings.is_empty() {
        println!(
            "{file}: ok: {} rules, {} syscalls, default action {}",
            policy.rules.len(),
            names.len(),
            policy.default_action
        );
    } else {
        println!("{file}: {errors} error(s), {warnings} warning(s)");
    }
    Ok(ExitCode::from(check::exit_status(&findings)))
}
