//! Idempotent set-up of a fresh machine of this kind (Debian 12, root): Debian packages,
//! rust-src for the nightly toolchain, bpf-linker built against LLVM 22. Does nothing when
//! everything is present. See ../shared/TOOLCHAIN.md.

use std::process::Command;

use anyhow::Context as _;

use crate::util::{have, phase, run as sh};

/// Debian packages: build (LLVM 22 for bpf-linker, libseccomp), tests (strace, busybox, gcc,
/// e2fsprogs, xfsprogs and btrfs-progs for the mount tests, fuse2fs for the FUSE mount test, runtimes, Docker's engine and podman,
/// PyYAML and jsonschema for SPO's CRD validator), tools (bpftrace for the benchmark baseline,
/// tmux for the TUI tests).
pub const PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
    "libseccomp-dev",
    "pkg-config",
    "strace",
    "bpftrace",
    "busybox-static",
    "gcc",
    "tmux",
    "e2fsprogs",
    "fuse2fs",
    "xfsprogs",
    "btrfs-progs",
    "runc",
    "crun",
    "lxc",
    "docker.io",
    "podman",
    "python3-yaml",
    "python3-jsonschema",
    "python3-pip",
];

/// Python modules the Kubernetes tests run: SPO's CRD validator (PyYAML, jsonschema) and the
/// Kubernetes OpenAPI schemas (kubernetes-validate, pinned; not packaged by Debian).
const PYTHON_MODULES: &str = "import yaml, jsonschema, kubernetes_validate";
const PIP_PACKAGES: &[&str] = &["pyyaml", "jsonschema", "kubernetes-validate==1.37.0"];

fn missing_packages() -> Vec<&'static str> {
    PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            let out = Command::new("dpkg-query").args(["-W", "-f=${Status}", p]).output();
            !matches!(out, Ok(o) if String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .collect()
}

pub fn run_setup() -> anyhow::Result<()> {
    let missing = missing_packages();
    if !missing.is_empty() {
        phase("apt packages", || {
            sh(Command::new("apt-get").arg("update").arg("-q"))?;
            // Packages with services (docker.io, containerd, lxc, podman's socket) must not start them on the
            // host: tests start private instances. Debian's policy-rc.d convention says so
            // (exit 101), unless the machine already has a policy of its own.
            let policy = std::path::Path::new("/usr/sbin/policy-rc.d");
            let ours = !policy.exists();
            if ours {
                use std::os::unix::fs::PermissionsExt as _;
                std::fs::write(
                    policy,
                    "#!/bin/sh\n# cargo xtask setup: start no service\nexit 101\n",
                )?;
                std::fs::set_permissions(policy, std::fs::Permissions::from_mode(0o755))?;
            }
            let installed = sh(Command::new("apt-get")
                .args(["install", "-y", "-q", "--no-install-recommends"])
                .args(&missing)
                .env("DEBIAN_FRONTEND", "noninteractive"));
            if ours {
                let _ = std::fs::remove_file(policy);
            }
            installed
        })?;
    }
    let has_src = Command::new("rustup")
        .args(["component", "list", "--toolchain", "nightly", "--installed"])
        .output()
        .context("rustup is needed (the nightly toolchain builds the eBPF programs)")?;
    if !String::from_utf8_lossy(&has_src.stdout)
        .lines()
        .any(|l| l.starts_with("rust-src"))
    {
        phase("rust-src for nightly", || {
            sh(Command::new("rustup").args([
                "component",
                "add",
                "rust-src",
                "--toolchain",
                "nightly",
            ]))
        })?;
    }
    // The lint gate (`cargo xtask lint`): rustfmt and clippy on stable, clippy on nightly for
    // the eBPF crate.
    for (toolchain, component) in [
        ("stable", "rustfmt"),
        ("stable", "clippy"),
        ("nightly", "clippy"),
    ] {
        let installed = Command::new("rustup")
            .args(["component", "list", "--toolchain", toolchain, "--installed"])
            .output()
            .context("rustup is needed")?;
        if !String::from_utf8_lossy(&installed.stdout)
            .lines()
            .any(|l| l.starts_with(component))
        {
            phase(&format!("{component} for {toolchain}"), || {
                sh(Command::new("rustup").args([
                    "component",
                    "add",
                    component,
                    "--toolchain",
                    toolchain,
                ]))
            })?;
        }
    }
    let python_ready = Command::new("python3")
        .args(["-c", PYTHON_MODULES])
        .output()
        .is_ok_and(|o| o.status.success());
    if !python_ready {
        phase("python modules (kubernetes-validate)", || {
            // Debian's python3 refuses pip installs into the system without the flag (PEP 668);
            // a pyenv python takes it too.
            sh(Command::new("python3")
                .args(["-m", "pip", "install", "--quiet", "--break-system-packages"])
                .args(PIP_PACKAGES))
        })?;
    }
    if !have("bpf-linker") {
        phase("bpf-linker (LLVM 22)", || {
            sh(Command::new("cargo")
                .args([
                    "install",
                    "bpf-linker",
                    "--no-default-features",
                    "--features",
                    "llvm-22",
                    "--locked",
                ])
                .env("LLVM_PREFIX", "/usr/lib/llvm-22"))
        })?;
    }
    Ok(())
}

pub fn run() -> anyhow::Result<()> {
    phase("setup", run_setup)
}
