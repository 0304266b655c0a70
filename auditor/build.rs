//! Builds the eBPF programs (auditor-ebpf) on the nightly toolchain with bpf-linker and puts the
//! object in OUT_DIR, where `bpf::load` embeds it.
use anyhow::{anyhow, Context as _};

fn main() -> anyhow::Result<()> {
    let out_dir = std::env::var_os("OUT_DIR").ok_or_else(|| anyhow!("OUT_DIR not set"))?;
    let object = std::path::Path::new(&out_dir).join("auditor");
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    let skip =
        std::env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    if skip {
        // For work that never loads programs (policy, formats): an empty object makes any load
        // fail with a clear error instead of failing the build.
        if !object.exists() {
            std::fs::write(&object, b"").context("writing placeholder eBPF object")?;
        }
        return Ok(());
    }
    if which::which("bpf-linker").is_err() {
        return Err(anyhow!(
            "bpf-linker is not installed: run `cargo xtask setup` (or see README.md) first"
        ));
    }
    // At run time, not `env!`: a build script binary reused from another checkout of the same
    // source would otherwise build that checkout's programs.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR not set")?;
    let root_dir = format!("{manifest}/../auditor-ebpf");
    // aya-build relays everything the nested cargo prints on stderr as `cargo:warning=` lines, so
    // its progress ("Compiling core ...") would show as forty warnings in every build. Quiet
    // cargo prints no progress; the eBPF crate's own compiler messages (real warnings, errors)
    // still come through its JSON output and are relayed.
    // (The build script is single-threaded here: setting the environment races nothing.)
    std::env::set_var("CARGO_TERM_QUIET", "true");
    // `nightly` unless AUDITOR_EBPF_TOOLCHAIN names another (e.g. `nightly-2026-05-20`): the
    // toolchain's LLVM must be the major version bpf-linker was built against, so a build that
    // cannot take whatever `nightly` is today (the Containerfile) pins one.
    println!("cargo:rerun-if-env-changed=AUDITOR_EBPF_TOOLCHAIN");
    let pinned = std::env::var("AUDITOR_EBPF_TOOLCHAIN").ok();
    let toolchain = match pinned.as_deref() {
        None | Some("") => aya_build::Toolchain::default(),
        Some(t) => aya_build::Toolchain::Custom(t),
    };
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "auditor-ebpf",
            root_dir: &root_dir,
            ..Default::default()
        }],
        toolchain,
    )
}
