//! Import and export: the native format, OCI/Docker seccomp JSON (import and export), LXC
//! seccomp policy v2, the Kubernetes Security Profiles Operator `SeccompProfile` and a systemd
//! drop-in (export).
//!
//! An export that cannot express part of a policy is refused unless `lossy` is set; then the
//! [`Export`] lists what was dropped or changed, so that nothing is lost silently.

pub mod k8s;
pub mod lxc;
pub mod oci;
pub mod systemd;

use super::check;
use super::model::{self, Arch, Location, ModelError, Policy};

/// Errors importing or exporting.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("the file is empty (expected a native TOML policy or OCI seccomp JSON)")]
    Empty,
    #[error(transparent)]
    Native(#[from] ModelError),
    #[error("{location}: {message}{}", model::fix_suffix(.fix))]
    Json {
        location: Location,
        message: String,
        fix: String,
    },
    #[error("{format} cannot express all of this policy; pass --lossy to export anyway:\n  - {}", .dropped.join("\n  - "))]
    Lossy {
        format: &'static str,
        dropped: Vec<String>,
    },
    #[error("{0}")]
    Unusable(String),
    #[error("the policy has notify rules but no listener path: runc and crun refuse such a profile (pass --listener PATH)")]
    NeedsListener,
}

impl FormatError {
    /// Where in the input the problem is, if it is about the input.
    pub fn location(&self) -> Option<Location> {
        match self {
            FormatError::Native(e) => Some(e.location()),
            FormatError::Json { location, .. } => Some(*location),
            _ => None,
        }
    }
}

/// An export format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Native,
    Oci,
    /// OCI JSON as Docker 20.10 passes it on (see [`oci::export_docker`]).
    Docker,
    Lxc,
    K8s,
    /// A ConfigMap carrying the OCI JSON for kubelet's `localhost/` profiles.
    K8sConfigMap,
    Systemd,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        Some(match s {
            "native" | "toml" => Format::Native,
            // podman 4.3 passes every field of the OCI form on (listenerPath, listenerMetadata,
            // flags, defaultErrnoRet), checked by the podman tests.
            "oci" | "json" | "podman" => Format::Oci,
            "docker" => Format::Docker,
            "lxc" => Format::Lxc,
            "k8s" | "kubernetes" => Format::K8s,
            "k8s-configmap" => Format::K8sConfigMap,
            "systemd" => Format::Systemd,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Native => "native",
            Format::Oci => "oci",
            Format::Docker => "docker",
            Format::Lxc => "lxc",
            Format::K8s => "k8s",
            Format::K8sConfigMap => "k8s-configmap",
            Format::Systemd => "systemd",
        }
    }
}

/// How to export.
#[derive(Clone, Debug, Default)]
pub struct ExportOptions {
    /// Export even if something cannot be expressed, and list it.
    pub lossy: bool,
    /// OCI `listenerPath`, overriding the policy's.
    pub listener_path: Option<String>,
    /// OCI `listenerMetadata`, overriding the policy's.
    pub listener_metadata: Option<String>,
    /// `metadata.name` of a Kubernetes object.
    pub name: Option<String>,
    /// Kubernetes: the `SeccompProfile` version to write.
    pub api_version: k8s::ApiVersion,
    /// Kubernetes: the runtime's calls as a base profile of their own, named in
    /// `baseProfileName`.
    pub base_profile: Option<k8s::BaseProfile>,
    /// Kubernetes: `metadata.annotations` of the object.
    pub annotations: Vec<(String, String)>,
}

/// An interactive policy (default action notify), as a filter must carry it: the names the
/// filter allows although no rule names them (the runtime's own calls after it loads the
/// filter, see [`check::INTERACTIVE_EXEMPT`]) and every other syscall of the policy's
/// architectures (x86_64 when it names none) that no rule names, for the filter to send to the
/// agent; sorted. `Err`: an architecture auditor has no syscall table for.
pub(crate) fn interactive_names(policy: &Policy) -> Result<(Vec<String>, Vec<String>), Arch> {
    let named: std::collections::BTreeSet<&str> = policy
        .rules
        .iter()
        .flat_map(|r| r.names.iter().map(String::as_str))
        .collect();
    let arches: Vec<Arch> = if policy.architectures.is_empty() {
        vec![Arch::X86_64]
    } else {
        policy.architectures.clone()
    };
    let mut notify = std::collections::BTreeSet::new();
    for a in arches {
        let abi = a.abi().ok_or(a)?;
        for (_, name) in crate::syscalls::all(abi) {
            if !named.contains(name) && !check::INTERACTIVE_EXEMPT.contains(&name) {
                notify.insert(name.to_owned());
            }
        }
    }
    let exempt = check::INTERACTIVE_EXEMPT
        .iter()
        .filter(|n| !named.contains(*n))
        .map(|n| (*n).to_owned())
        .collect();
    Ok((exempt, notify.into_iter().collect()))
}

/// An exported policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Export {
    pub text: String,
    /// What the format could not express (only non-empty with `lossy`).
    pub dropped: Vec<String>,
    /// What a reader of the export should know (the refusals auditor forced into it).
    pub notes: Vec<String>,
    /// The syscalls refused whatever the policy says ([`super::handlers::harden`]).
    pub forced: Vec<&'static str>,
}

/// Export `policy` as `format`.
pub fn export(
    policy: &Policy,
    format: Format,
    options: &ExportOptions,
) -> Result<Export, FormatError> {
    // The runtime builds the filter from the export: it must carry the refusals the policy's
    // handlers need (the native format keeps the policy as written; compiling forces them).
    let (hardened, forced) = super::handlers::harden(policy);
    let mut notes = Vec::new();
    if format != Format::Native && !forced.is_empty() {
        notes.push(format!(
            "refused with ENOSYS whatever the policy says (a notify handler judges what they would bypass): {}",
            forced.join(", ")
        ));
    }
    let policy = if format == Format::Native {
        policy
    } else {
        &hardened
    };
    let (text, dropped) = match format {
        Format::Native => {
            let mut p = policy.clone();
            if options.listener_path.is_some() {
                p.listener_path.clone_from(&options.listener_path);
            }
            if options.listener_metadata.is_some() {
                p.listener_metadata.clone_from(&options.listener_metadata);
            }
            (model::to_native(&p), Vec::new())
        }
        Format::Oci => oci::export(policy, options)?,
        Format::Docker => {
            let (text, dropped, engine_notes) = oci::export_docker(policy, options)?;
            notes.extend(engine_notes);
            (text, dropped)
        }
        Format::Lxc => lxc::export(policy),
        Format::K8s => k8s::export(policy, options)?,
        Format::K8sConfigMap => {
            let (json, dropped) = oci::export(policy, options)?;
            (k8s::export_configmap(&json, options)?, dropped)
        }
        Format::Systemd => systemd::export(policy),
    };
    if !dropped.is_empty() && !options.lossy {
        return Err(FormatError::Lossy {
            format: format.as_str(),
            dropped,
        });
    }
    Ok(Export {
        text,
        dropped,
        notes,
        forced,
    })
}

/// How to resolve Docker's conditional rules on import.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// Capabilities the container has (`CAP_…`); Docker's default set unless given.
    pub caps: Vec<String>,
    /// The architecture the profile is for (Docker's `includes.arches`, `archMap`).
    pub arch: model::Arch,
    /// Kernel version (major, minor) for `minKernel`; `None` keeps every rule.
    pub kernel: Option<(u32, u32)>,
}

/// Docker's default capability set (moby `oci/caps/defaults.go`).
pub const DOCKER_DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            caps: DOCKER_DEFAULT_CAPS
                .iter()
                .map(|c| (*c).to_owned())
                .collect(),
            arch: model::Arch::X86_64,
            kernel: None,
        }
    }
}

/// Read a policy in any input format: OCI JSON if the text starts with `{`, a Kubernetes
/// `SeccompProfile` if it is a YAML object (`apiVersion:`, `kind:` or `---` first), native TOML
/// otherwise.
pub fn import(text: &str, options: &ImportOptions) -> Result<Policy, FormatError> {
    let trimmed = text.trim_start_matches(['\u{feff}', ' ', '\t', '\r', '\n']);
    if trimmed.is_empty() {
        return Err(FormatError::Empty);
    }
    if trimmed.starts_with('{') {
        oci::import(text, options)
    } else if k8s::looks_like(trimmed) {
        k8s::import(text)
    } else {
        Ok(model::parse_native(text)?)
    }
}

/// `kernel` as (major, minor) from a release string like `6.18.0-1-amd64`.
pub fn parse_kernel_version(s: &str) -> Option<(u32, u32)> {
    let mut it = s.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}
