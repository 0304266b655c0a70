//! What several commands take and share, so that no command imports another: the import
//! options of OCI/Docker profiles (`--caps`, `--arch`, `--kernel`), reading input files and
//! policies with a size limit and located errors, the live-UI flags of `learn` and `enforce`,
//! and a policy compiled for a workload `enforce` or `learn --policy/--userns` launches.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;

use crate::broker::decide::Decider;
use crate::broker::{Broker, Mode};
use crate::launch::userns::{IdRange, Userns, DEFAULT_RANGE};
use crate::launch::Options;
use crate::policy::check::CheckOptions;
use crate::policy::formats::{self, ImportOptions, DOCKER_DEFAULT_CAPS};
use crate::policy::model::SourceFormat;
use crate::policy::model::{Arch, Policy};
use crate::policy::MAX_INPUT_BYTES;
use crate::seccomp::program::Filter;
use crate::seccomp::{compile, notify};
use crate::session;

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

/// `--tui [--workload-log FILE] [--policy-out FILE]` of `learn` and `enforce`.
#[derive(Debug, Args)]
pub struct LiveUiArgs {
    /// Watch this session in the live terminal UI (as `auditor tui` would), drawn on the
    /// controlling terminal. The workload's stdout and stderr go to a log file named on screen
    /// (its stdin is /dev/null). q closes the UI only: the session goes on to its end as
    /// without --tui; Ctrl-C in the UI stops the session as Ctrl-C does without it. Needs root
    /// (the session socket).
    #[arg(long)]
    pub tui: bool,
    /// With --tui: where the workload's output (and auditor's own messages while the UI is
    /// open) goes; default `auditor-<learn|enforce>-<PID>.log` in the current directory.
    #[arg(long, value_name = "FILE", requires = "tui")]
    pub workload_log: Option<PathBuf>,
    /// With --tui: where the `w` key writes the candidate policy (atomically).
    #[arg(
        long = "tui-policy-out",
        value_name = "FILE",
        requires = "tui",
        default_value = "candidate-policy.toml"
    )]
    pub policy_out: PathBuf,
}

impl LiveUiArgs {
    /// The UI's log file and terminal, checked before anything starts; `None` without --tui.
    pub fn prepare(
        &self,
        kind: session::SessionKind,
    ) -> anyhow::Result<Option<crate::tui::inprocess::Prepared>> {
        if !self.tui {
            return Ok(None);
        }
        crate::tui::inprocess::Prepared::new(kind, self.workload_log.as_deref()).map(Some)
    }
}

/// Load, check and compile a policy into its filter program.
pub(crate) fn compile_policy(
    path: &std::path::Path,
    import: &crate::policy::formats::ImportOptions,
) -> anyhow::Result<(Policy, Decider, Filter)> {
    compile_policy_with(path, import, CheckOptions::default())
}

/// [`compile_policy`] for a use of the policy (interactive: notify by default).
pub(crate) fn compile_policy_with(
    path: &std::path::Path,
    import: &crate::policy::formats::ImportOptions,
    options: CheckOptions,
) -> anyhow::Result<(Policy, Decider, Filter)> {
    let file = path.display();
    let policy = load_policy(path, import)?;
    if options.interactive && policy.source != SourceFormat::Native {
        anyhow::bail!(
            "{file}: --interactive needs a native (TOML) policy: always answers are appended to the policy file with a comment saying who decided and when, and an OCI JSON profile cannot keep comments. Convert it to a native policy first (`auditor merge -o policy.toml {file} {file}` writes it as TOML) and enforce that"
        );
    }
    let decider = Decider::new(policy.clone()).map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
    let compiled = match compile::compile_with(&policy, options) {
        Ok(c) => c,
        Err(compile::CompileError::Validate { problems }) => {
            for p in &problems {
                match p.location {
                    Some(_) => eprintln!("{file}:{p}"),
                    None => eprintln!("{file}: {p}"),
                }
            }
            anyhow::bail!(
                "{file}: the policy cannot be enforced ({} error(s) above)",
                problems.len()
            );
        }
        Err(e) => anyhow::bail!("{file}: {e}"),
    };
    for name in &compiled.skipped {
        eprintln!("auditor: warning: libseccomp cannot resolve `{name}`; its rule is skipped");
    }
    let bpf = compile::export_bpf(&compiled).with_context(|| format!("{file}: export"))?;
    let filter = Filter::from_bpf(&bpf).with_context(|| format!("{file}: filter"))?;
    Ok((policy, decider, filter))
}

/// `--userns[=RANGE]` and `--rootfs DIR`.
pub(crate) fn userns_of(
    userns: Option<&str>,
    rootfs: Option<&std::path::Path>,
) -> anyhow::Result<Option<Userns>> {
    Ok(match userns {
        None => None,
        Some(r) => {
            let range = if r.is_empty() {
                DEFAULT_RANGE
            } else {
                IdRange::parse(r)?
            };
            Some(Userns::new(range, rootfs)?)
        }
    })
}

/// How `auditor learn --userns/--policy` launches its workload: in the same kind of container
/// `enforce --userns` makes and, with a policy, under that policy in complain mode with its
/// notify handlers active (refusals allowed, emulations performed), so that learning sees what
/// the workload does after a granted mknod or mount.
pub(crate) struct LearnUnder {
    pub options: Options,
    decider: Option<Decider>,
}

impl LearnUnder {
    pub(crate) fn new(
        userns: Option<&str>,
        rootfs: Option<&std::path::Path>,
        policy: Option<&std::path::Path>,
    ) -> anyhow::Result<LearnUnder> {
        let userns = userns_of(userns, rootfs)?;
        let (filter, decider) = match policy {
            None => (None, None),
            Some(p) => {
                let (_, decider, mut filter) = compile_policy(p, &Default::default())?;
                filter.complain();
                if filter.needs_listener() {
                    notify::check_sizes()?;
                }
                (Some(filter), Some(decider))
            }
        };
        Ok(LearnUnder {
            options: Options {
                filter,
                userns,
                stdio: None,
            },
            decider,
        })
    }

    /// Syscalls the policy hands to a notify handler.
    pub(crate) fn notified(&self) -> std::collections::BTreeSet<String> {
        self.decider
            .iter()
            .flat_map(|d| &d.policy().rules)
            .filter(|r| matches!(r.action, crate::policy::model::Action::Notify(_)))
            .flat_map(|r| r.names.iter().cloned())
            .collect()
    }

    /// The broker for the listener `release_with_listener` gave, if any.
    pub(crate) fn broker(self, listener: Option<std::os::fd::OwnedFd>) -> Option<Broker> {
        match (listener, self.decider) {
            (Some(fd), Some(d)) => Some(Broker::new(
                notify::NotifyFd::new(fd),
                d,
                Mode::Complain,
                None,
            )),
            _ => None,
        }
    }
}

/// A call the broker emulated looks to the observer like a refusal that returned no error (the
/// filter skipped it; it never entered the kernel's syscall table). Under `learn --policy` it
/// was granted, not refused: drop those refusals of the notified syscalls, so that the round
/// keeps the earlier round's notify rule instead of adding an allow rule beside it.
pub(crate) fn drop_emulated(
    obs: &mut crate::observe::model::Observation,
    notified: &std::collections::BTreeSet<String>,
) {
    for s in &mut obs.syscalls {
        if notified.contains(&s.name) {
            if let Some(n) = s.refused.remove("none") {
                // Per-executable refusals do not say which errno: take the emulated ones off
                // the largest counts first (one executable in practice).
                let mut left = n;
                for c in s.refused_executables.values_mut() {
                    let take = left.min(*c);
                    *c -= take;
                    left -= take;
                }
                s.refused_executables.retain(|_, c| *c > 0);
            }
        }
    }
    obs.syscalls
        .retain(|s| !(s.count == 0 && s.refused.is_empty() && notified.contains(&s.name)));
}
