//! `auditor generate OBS.json [OBS2.json ...]`: observations to a policy, in any export format.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use super::shared::read_input;
use crate::observe::model::Observation;
use crate::policy::formats::{self, ExportOptions, Format};
use crate::policy::generate::{self, GenerateOptions, Mode, Runtime, RuntimeTarget};
use crate::policy::model::{parse_errno, Action, Location, EPERM};

/// `auditor generate OBS.json [OBS2.json ...] [--format …] [-o FILE] [--tighten] …`
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Observation files written by `auditor learn` (several runs or replicas are merged).
    #[arg(required = true, value_name = "OBS.json")]
    pub observations: Vec<PathBuf>,
    /// Output format: native (TOML, reviewable), oci (runc/crun JSON; also podman's, which
    /// passes every field on: `podman` names the same), docker (the
    /// OCI JSON Docker 20.10 passes on: without listenerPath, listenerMetadata, flags and
    /// defaultErrnoRet, which it drops; notes say what that means), lxc, k8s (Security
    /// Profiles Operator SeccompProfile; with --runtime, the runtime's calls go to a base
    /// profile it names in baseProfileName), k8s-configmap (a ConfigMap carrying the OCI JSON
    /// for kubelet's localhost/ profiles, without the operator), systemd (drop-in).
    #[arg(long, default_value = "native", value_parser = ["native", "oci", "podman", "docker", "lxc", "k8s", "k8s-configmap", "systemd"])]
    pub format: String,
    /// Where to write the policy (atomically); standard output if not given. With
    /// --group-by: a directory, one file per group.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// One profile per group of replicas instead of one for all: by the `image` they run, or
    /// by `workload` (Kubernetes: namespace, pod name minus its replica suffixes, container;
    /// Docker and podman: the container name minus a replica number). Each file is named
    /// after its group; the report says which observations made it.
    #[arg(long, value_enum)]
    pub group_by: Option<generate::group::GroupBy>,
    /// With --group-by owner: `kubectl proxy`'s address (e.g. http://127.0.0.1:8001), where
    /// each pod's owner is read (namespaced `get` of pods, replicasets and jobs).
    #[arg(long, value_name = "URL")]
    pub kube_api: Option<String>,
    /// Serve a file-system type the workload mounts through a FUSE program from the
    /// container's root file system instead of the host's driver, e.g. `--fuse ext4=fuse2fs`
    /// (repeatable): an untrusted image is then never parsed by the host kernel.
    #[arg(long, value_name = "TYPE=PROGRAM")]
    pub fuse: Vec<String>,
    /// Add argument conditions for scalar arguments whose every observed value is known
    /// (socket domains, clone/unshare namespace flags, personality, prctl options, ioctl
    /// requests); tightened clone also answers clone3 with ENOSYS.
    #[arg(long)]
    pub tighten: bool,
    /// For everything no rule allows: errno[:NAME|NUMBER] (default errno:EPERM), kill
    /// (= kill-process), kill-thread, trap, log, or notify: an interactive policy, where a
    /// person decides each call the rules do not (`auditor agent` prompts on its live
    /// session, `auditor enforce --interactive` on its own; --format native, oci, podman or
    /// docker only).
    #[arg(long, default_value = "errno:EPERM", value_name = "ACTION")]
    pub default_action: String,
    /// Export even if the format cannot express everything, and list what was dropped.
    #[arg(long)]
    pub lossy: bool,
    /// OCI `listenerPath`: the socket the runtime sends the notify fd to (`auditor agent
    /// --socket`); an absolute path.
    #[arg(long, value_name = "PATH")]
    pub listener: Option<String>,
    /// OCI `listenerMetadata`, passed to the listener. For `auditor agent`, the name of the
    /// native policy in its --policy-dir that serves the container (it keeps the notify
    /// handlers' parameters, which OCI JSON cannot carry).
    #[arg(long, value_name = "NAME")]
    pub listener_metadata: Option<String>,
    /// Also allow what this runtime does between loading the filter and execve
    /// (runc|crun|lxc, optionally @VERSION).
    #[arg(long, value_name = "RUNTIME[@VERSION]")]
    pub runtime: Option<String>,
    /// With --runtime: the container runs in a user namespace of its own (the runtime's init
    /// then makes other calls under the filter).
    #[arg(long, requires = "runtime")]
    pub userns: bool,
    /// With --runtime: whether the container runs with `noNewPrivileges` (runc's init loads
    /// the filter later when it is on). Default: off for --format docker, podman and k8s (the
    /// engines' default), on otherwise (`runc spec`'s).
    #[arg(long, value_name = "on|off", requires = "runtime")]
    pub no_new_privileges: Option<OnOff>,
    /// Emit a notify rule for a handler no observation calls for (e.g. sysinfo).
    #[arg(long = "with-handler", value_name = "HANDLER")]
    pub with_handler: Vec<String>,
    /// `metadata.name` for --format k8s and k8s-configmap, and the file name under
    /// --kubelet-root.
    #[arg(long)]
    pub name: Option<String>,
    /// The SeccompProfile version --format k8s writes: v1 (SPO ≥ 0.11) or v1beta1 (served by
    /// every SPO release).
    #[arg(long, value_enum, default_value = "v1")]
    pub k8s_api_version: formats::k8s::ApiVersion,
    /// With --format oci: write the profile where kubelet loads `localhost/` profiles, as SPO
    /// lays them out: DIR/seccomp/operator/NAME.json (DIR is kubelet's root, usually
    /// /var/lib/kubelet); pods name it `localhostProfile: operator/NAME.json`.
    #[arg(long, value_name = "DIR", conflicts_with = "output")]
    pub kubelet_root: Option<PathBuf>,
}

/// Parse `--default-action`.
pub fn parse_default_action(s: &str) -> anyhow::Result<Action> {
    let (kind, arg) = s.split_once(':').map_or((s, None), |(k, a)| (k, Some(a)));
    Ok(match (kind, arg) {
        ("errno", None) => Action::Errno(EPERM),
        ("errno", Some(e)) => Action::Errno(parse_errno(e).with_context(|| {
            format!(
                "--default-action: unknown errno `{e}` (use a name like EPERM or a number 1-4095)"
            )
        })?),
        ("kill" | "kill-process", None) => Action::KillProcess,
        ("kill-thread", None) => Action::KillThread,
        ("trap", None) => Action::Trap,
        ("log", None) => Action::Log,
        ("notify", None) => Action::Notify(Default::default()),
        _ => anyhow::bail!(
            "--default-action `{s}`: use errno[:NAME], kill, kill-thread, trap, log or notify"
        ),
    })
}

/// Read and parse an observation file; errors say FILE:LINE:COLUMN.
pub fn load_observation(path: &std::path::Path) -> anyhow::Result<Observation> {
    let text = read_input(path, "observation file")?;
    serde_json::from_str(&text).map_err(|e| {
        let at = Location {
            line: e.line().max(1),
            column: e.column().max(1),
        };
        let msg = e.to_string();
        let msg = msg
            .rsplit_once(" at line ")
            .map_or(msg.as_str(), |(m, _)| m)
            .to_owned();
        let fix = if e.is_eof() {
            " (the file is truncated; was `auditor learn` interrupted before writing it?)"
        } else {
            " (is it an observation file written by `auditor learn`?)"
        };
        anyhow::anyhow!("{}:{at}: {msg}{fix}", path.display())
    })
}

/// A switch given as `on` or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

pub fn run(args: &GenerateArgs) -> anyhow::Result<ExitCode> {
    let format = Format::parse(&args.format)
        .with_context(|| format!("unknown --format `{}`", args.format))?;
    let mut options = GenerateOptions {
        default_action: {
            let a = parse_default_action(&args.default_action)?;
            if a.is_notify() && !matches!(format, Format::Native | Format::Oci | Format::Docker) {
                anyhow::bail!(
                    "--default-action notify with --format {}: an interactive policy is served by auditor agent (runc, crun, podman, Docker) or auditor enforce --interactive; generate it --format native and oci (or podman, docker) instead. For LXC, list the syscalls to ask about as notify lines of the container's profile and name the policy in lxc.seccomp.notify.cookie: a filter that notifies everything else would hold LXC's own calls after it loads the filter, before its monitor passes the listener on",
                    args.format
                );
            }
            a
        },
        tighten: args.tighten,
        extra_handlers: args.with_handler.clone(),
        runtime: None,
        fuse: args
            .fuse
            .iter()
            .map(|f| {
                f.split_once('=')
                    .filter(|(t, p)| !t.is_empty() && !p.is_empty())
                    .map(|(t, p)| (t.to_owned(), p.to_owned()))
                    .with_context(|| {
                        format!("--fuse `{f}`: write TYPE=PROGRAM, e.g. --fuse ext4=fuse2fs")
                    })
            })
            .collect::<anyhow::Result<_>>()?,
    };
    if let Some(r) = &args.runtime {
        let (name, version) = r
            .split_once('@')
            .map_or((r.as_str(), None), |(n, v)| (n, Some(v)));
        let runtime = Runtime::parse(name)
            .with_context(|| format!("--runtime `{name}`: use runc, crun or lxc"))?;
        // Docker, podman and Kubernetes run containers with noNewPrivileges off unless asked
        // (`--security-opt no-new-privileges`, `allowPrivilegeEscalation: false`); runc's and
        // crun's own `spec` turn it on.
        let engine_default = matches!(args.format.as_str(), "docker" | "podman" | "k8s");
        let target = RuntimeTarget {
            runtime,
            version: version.map(str::to_owned),
            listener: args.listener.is_some(),
            userns: args.userns,
            no_new_privileges: args
                .no_new_privileges
                .map_or(!engine_default, |v| v == OnOff::On),
        };
        // Resolve it now, for an error that says what is shipped (generate resolves it again
        // with the listener its rules need).
        for listener in [target.listener, true] {
            let mode = Mode {
                listener,
                userns: target.userns,
                no_new_privileges: target.no_new_privileges,
            };
            generate::baseline(runtime, version, mode).map_err(|e| {
                let known: Vec<String> = crate::policy::baselines::all()
                    .iter()
                    .filter(|b| b.runtime == name)
                    .map(|b| format!("{}@{} with {}", b.runtime, b.version, b.mode()))
                    .collect();
                anyhow::anyhow!(
                    "--runtime {r}: {e} (shipped: {}); learn it with `cargo xtask baselines` on a machine with that runtime",
                    if known.is_empty() { "none".to_owned() } else { known.join("; ") }
                )
            })?;
        }
        options.runtime = Some(target);
    }
    if let Some(l) = &args.listener {
        if !std::path::Path::new(l).is_absolute() {
            anyhow::bail!("--listener {l}: give an absolute path (runc and crun connect to it from their own working directory)");
        }
    }
    // A metadata that is a policy name names the native policy `auditor agent` applies: the
    // handler parameters the OCI JSON cannot carry are in that policy, not lost.
    let agent_policy = match (format, &args.listener_metadata) {
        (Format::Oci, Some(m)) => crate::agent::policies::validate_name(Some(m))
            .ok()
            .map(str::to_owned),
        _ => None,
    };
    if args.kubelet_root.is_some() && format != Format::Oci {
        anyhow::bail!("--kubelet-root writes the plain OCI JSON kubelet loads: use it with --format oci (--format k8s-configmap carries the same JSON in a ConfigMap)");
    }
    if args.kubelet_root.is_some() && args.group_by.is_none() && args.name.is_none() {
        anyhow::bail!("--kubelet-root: name the profile with --name (the file is DIR/seccomp/operator/NAME.json)");
    }
    let mut observations = Vec::new();
    for p in &args.observations {
        observations.push(load_observation(p)?);
    }
    let Some(by) = args.group_by else {
        let generated = generate::generate(&observations, &options)?;
        let output = match &args.kubelet_root {
            Some(root) => Some(kubelet_path(
                root,
                args.name.as_deref().unwrap_or_default(),
            )?),
            None => args.output.clone(),
        };
        emit(
            args,
            format,
            &agent_policy,
            &generated,
            output.as_deref(),
            args.name.clone(),
            contributors(&observations, &args.observations),
        )?;
        return Ok(ExitCode::SUCCESS);
    };
    let owners = match (by, &args.kube_api) {
        (generate::group::GroupBy::Owner, Some(url)) => owners(url, &observations)?,
        (generate::group::GroupBy::Owner, None) => anyhow::bail!(
            "--group-by owner reads each pod's owner from the API: give --kube-api http://127.0.0.1:8001 with `kubectl proxy` running"
        ),
        (_, Some(_)) => anyhow::bail!("--kube-api is for --group-by owner"),
        _ => Default::default(),
    };
    let groups = generate::group::group(&observations, by, &owners).map_err(|(i, why)| {
        anyhow::anyhow!(
            "{}: {why}, so it belongs to no --group-by {} group (group observations of containers that Docker, podman or Kubernetes ran, learned through auditor daemon or learn --container)",
            args.observations[i].display(),
            match by {
                generate::group::GroupBy::Image => "image",
                generate::group::GroupBy::Workload => "workload",
                generate::group::GroupBy::Owner => "owner",
            }
        )
    })?;
    let dir = args
        .output
        .as_deref()
        .or(args.kubelet_root.as_deref())
        .context("--group-by writes into the directory -o names")?;
    if args.kubelet_root.is_none() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut stems = std::collections::BTreeSet::new();
    for (key, members) in &groups {
        let inputs: Vec<Observation> = members.iter().map(|&i| observations[i].clone()).collect();
        let generated = generate::generate(&inputs, &options)?;
        let mut stem = generate::group::file_stem(key);
        // Two keys that read the same once made file names: number the later one.
        let mut n = 2;
        while !stems.insert(stem.clone()) {
            stem = format!("{}-{n}", generate::group::file_stem(key));
            n += 1;
        }
        let name = args
            .name
            .clone()
            .or_else(|| Some(stem.to_ascii_lowercase().replace(['_', '.'], "-")));
        let path = match &args.kubelet_root {
            Some(root) => kubelet_path(root, name.as_deref().unwrap_or_default())?,
            None => dir.join(format!("{stem}.{}", extension(format))),
        };
        eprintln!(
            "group {key}: {} observation{} ({})",
            members.len(),
            if members.len() == 1 { "" } else { "s" },
            members
                .iter()
                .map(|&i| args.observations[i].display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let paths: Vec<PathBuf> = members
            .iter()
            .map(|&i| args.observations[i].clone())
            .collect();
        emit(
            args,
            format,
            &agent_policy,
            &generated,
            Some(&path),
            name,
            contributors(&inputs, &paths),
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The file extension of an export format.
fn extension(format: Format) -> &'static str {
    match format {
        Format::Native => "toml",
        Format::Oci | Format::Docker => "json",
        Format::Lxc => "lxc",
        Format::K8s | Format::K8sConfigMap => "yaml",
        Format::Systemd => "conf",
    }
}

/// Every observed pod's owner, read through `kubectl proxy` at `url`; a pod the API no longer
/// has is grouped by its name, and said.
fn owners(url: &str, observations: &[Observation]) -> anyhow::Result<generate::group::Owners> {
    let client = crate::kube::Client::new(url)?;
    let mut owners = generate::group::Owners::new();
    let mut gone = Vec::new();
    for o in observations {
        let Some((ns, pod)) = generate::group::pod_of(o) else {
            continue;
        };
        let key = (ns.to_owned(), pod.to_owned());
        if owners.contains_key(&key) || gone.contains(&key) {
            continue;
        }
        match client.owner_of_pod(ns, pod)? {
            Some(owner) => {
                owners.insert(key, (owner.kind, owner.name));
            }
            None => gone.push(key),
        }
    }
    for (ns, pod) in &gone {
        eprintln!("note: pod {ns}/{pod} is not in the API (deleted?): grouped by its name, as --group-by workload does");
    }
    Ok(owners)
}

/// `<root>/seccomp/operator/<name>.json`, its directory made.
fn kubelet_path(root: &std::path::Path, name: &str) -> anyhow::Result<PathBuf> {
    if !root.is_dir() {
        anyhow::bail!(
            "--kubelet-root {}: not a directory (kubelet's root, usually /var/lib/kubelet)",
            root.display()
        );
    }
    let (rel, _) = formats::k8s::localhost_profile(name);
    let path = root.join(rel);
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    Ok(path)
}

/// What the profile was learned from, for a Kubernetes object's annotations: how many
/// replicas (containers or runs) and which nodes.
fn contributors(observations: &[Observation], paths: &[PathBuf]) -> Vec<(String, String)> {
    let mut nodes: Vec<&str> = observations
        .iter()
        .filter_map(|o| o.host.node.as_deref())
        .collect();
    nodes.sort_unstable();
    nodes.dedup();
    let mut out = vec![(
        "auditor.dev/replicas".to_owned(),
        observations.len().to_string(),
    )];
    if !nodes.is_empty() {
        out.push(("auditor.dev/nodes".to_owned(), nodes.join(",")));
    }
    let _ = paths;
    out
}

/// Export one generated policy to `output` (or standard output) and report on it.
fn emit(
    args: &GenerateArgs,
    format: Format,
    agent_policy: &Option<String>,
    generated: &generate::Generated,
    output: Option<&std::path::Path>,
    name: Option<String>,
    annotations: Vec<(String, String)>,
) -> anyhow::Result<()> {
    // Kubernetes: the runtime's own calls as a base profile (SPO unions it in).
    let base_profile = match (format, &generated.baseline) {
        (Format::K8s, Some((b, mode))) => Some(formats::k8s::BaseProfile {
            name: format!(
                "auditor-{}-v{}{}{}{}",
                b.runtime.as_str(),
                b.version,
                if mode.listener { "-listener" } else { "" },
                if mode.userns { "-userns" } else { "" },
                if mode.no_new_privileges { "-nnp" } else { "" }
            ),
            description: format!(
                "what {} {} does between loading a container's filter and execve, with {mode} (learned by auditor)",
                b.runtime.as_str(),
                b.version
            ),
            syscalls: b.syscalls.clone(),
        }),
        _ => None,
    };
    let export = formats::export(
        &generated.policy,
        format,
        &ExportOptions {
            // Docker's notify rules are served by the agent's native policy, which keeps what
            // the JSON cannot carry (said below).
            lossy: args.lossy || agent_policy.is_some() || format == Format::Docker,
            listener_path: args.listener.clone(),
            listener_metadata: args.listener_metadata.clone(),
            name,
            api_version: args.k8s_api_version,
            base_profile,
            annotations,
        },
    )?;
    match output {
        Some(path) => crate::fsutil::write_atomic(path, export.text.as_bytes())?,
        None => print!("{}", export.text),
    }
    eprint!(
        "{}",
        generated.report.render(&generated.policy.default_action)
    );
    if let (Some(name), false) = (agent_policy, export.dropped.is_empty()) {
        eprintln!(
            "listenerMetadata {name:?}: `auditor agent` serves the notify rules with the native policy {name}.toml from its --policy-dir, which keeps the handler parameters this JSON cannot carry; write it with `auditor generate … -o DIR/{name}.toml`"
        );
    } else if format == Format::Docker && !export.dropped.is_empty() && !args.lossy {
        eprintln!(
            "note: `auditor agent` serves these containers' notify rules with a native policy from its --policy-dir (`auditor runtime --policy NAME`, else `default`), which keeps what this JSON cannot carry: write it with `auditor generate … -o DIR/NAME.toml`"
        );
    } else if !export.dropped.is_empty() {
        eprintln!("--lossy: the {} export dropped:", format.as_str());
        for d in &export.dropped {
            eprintln!("  - {d}");
        }
    }
    for n in &export.notes {
        eprintln!("note: {n}");
    }
    if format != crate::policy::formats::Format::Native {
        if let Some(n) = crate::seccomp::names::unenforceable_note(&export.forced) {
            eprintln!("note: {n}");
        }
    }
    if let Some(p) = output {
        eprintln!("wrote {}", p.display());
        if let (Some(_), Some(name)) = (&args.kubelet_root, p.file_name()) {
            eprintln!(
                "pods load it with securityContext.seccompProfile: {{type: Localhost, localhostProfile: operator/{}}}",
                name.to_string_lossy()
            );
        }
    }
    Ok(())
}
