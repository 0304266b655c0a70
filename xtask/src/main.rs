//! `cargo xtask`: the project's tasks. `setup` installs what a fresh machine lacks (idempotent),
//! `test` runs every test (unit, then privileged integration), `demo` runs the main job, `bench`
//! measures, `fuzz` fuzzes the parsers of outside input.

mod bench;
mod fuzz;
mod setup;
mod util;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install Debian packages, rust-src for nightly and bpf-linker, if missing.
    Setup,
    /// Check formatting (rustfmt) and lints (clippy, -D warnings) of every crate, the eBPF one
    /// with its own toolchain and target. `test` runs it first.
    Lint,
    /// Set up, build, and run the whole test suite (lint, unit and privileged integration tests).
    Test {
        /// Only run integration tests whose name contains this.
        #[arg(long)]
        filter: Option<String>,
    },
    /// Set up, build, and run the demo: learn a real workload and show what it saw.
    Demo,
    /// Learn the runtime baselines (runc, crun) again and rewrite auditor/src/policy/baselines.json.
    Baselines,
    /// Only the filter-cost benchmark, with an already built release binary.
    #[command(hide = true)]
    BenchFilter,
    /// Only the seccomp-notify broker benchmark, with an already built release binary.
    #[command(hide = true)]
    BenchBroker,
    /// Only the live-UI load benchmark, with an already built release binary.
    #[command(hide = true)]
    BenchTui,
    /// Only the large-inputs benchmark (generate, merge, check on 1,000 files), with an
    /// already built release binary.
    #[command(hide = true)]
    BenchLarge,
    /// Only the start-up and memory benchmark, with an already built release binary.
    #[command(hide = true)]
    BenchStartup,
    /// Only the agent handover benchmark, with an already built release binary.
    #[command(hide = true)]
    BenchHandover,
    /// Only the agent fleet benchmark (64 containers, auditor tui attached or not), with an
    /// already built release binary.
    #[command(hide = true)]
    BenchFleet,
    /// Only the learner at node scale (200 runc containers, one daemon), with an already
    /// built release binary.
    #[command(hide = true)]
    BenchScale,
    /// Only the tracing benchmark (what the eBPF programs add to every syscall), with an
    /// already built release binary.
    #[command(hide = true)]
    BenchTracing(bench::BenchArgs),
    /// Only the emulated-calls benchmark (mknod, setxattr, overlay mount, setpriority round
    /// trips), with an already built release binary.
    #[command(hide = true)]
    BenchEmulate,
    /// Set up, build, and run the benchmarks (not part of the tests).
    Bench(bench::BenchArgs),
    /// Run the fuzz targets of fuzz/ (nightly, libFuzzer) for --secs each (default 60).
    Fuzz(fuzz::FuzzArgs),
    /// Set up, build, and put the Debian package together in target/dist/ (packaging/).
    Dist,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.task {
        Task::Setup => setup::run(),
        Task::Lint => {
            setup::run()?;
            lint()
        }
        Task::Test { filter } => test(filter),
        Task::Demo => demo(),
        Task::Dist => {
            setup::run()?;
            let bin = build_release()?;
            dist(&bin)
        }
        Task::Baselines => {
            setup::run()?;
            let bin = build_release()?;
            util::phase("learn runtime baselines", || {
                util::cargo_env(
                    &[
                        "test",
                        "-p",
                        "integration",
                        "--release",
                        "--test",
                        "baselines",
                        "--",
                        "--test-threads",
                        "1",
                    ],
                    &[
                        ("AUDITOR_BIN", bin.as_os_str()),
                        ("UPDATE_BASELINES", std::ffi::OsStr::new("1")),
                    ],
                )
            })
        }
        Task::Bench(args) => {
            setup::run()?;
            let bin = build_release()?;
            let learn = bench::run(&bin, &args);
            // The filter-cost benchmark runs even if the learning one reported a failure.
            let filter = bench::run_filter_cost(&bin, 7, 2_000_000);
            // The live UI under load (issue 5), also whatever the others reported.
            let tui = bench::run_tui_load(&bin, 3);
            // The seccomp-notify broker against a minimal C supervisor (issue 4).
            let broker = bench::run_broker(&bin, 5, 100_000, 2_000);
            let large = bench::run_large(&bin, 1_000);
            let startup = bench::run_startup(&bin, 9);
            let handover = bench::run_handover(&bin, 3);
            // The agent serving 64 containers with auditor tui attached (issue 18).
            let fleet = bench::run_fleet(&bin, 3);
            // One daemon learning 200 runc containers (issue 15).
            let scale = bench::run_scale(&bin);
            // Emulated calls' round trips (issue 16, item 5).
            let emulate = bench::run_emulate(&bin, 5);
            learn
                .and(filter)
                .and(tui)
                .and(broker)
                .and(large)
                .and(startup)
                .and(handover)
                .and(fleet)
                .and(scale)
                .and(emulate)
        }
        Task::Fuzz(args) => {
            setup::run()?;
            fuzz::run_fuzz(&args)
        }
        Task::BenchBroker => {
            let bin = util::target_dir()?.join("release").join("auditor");
            bench::run_broker(&bin, 5, 100_000, 2_000)
        }
        Task::BenchTui => {
            let bin = util::target_dir()?.join("release").join("auditor");
            bench::run_tui_load(&bin, 3)
        }
        Task::BenchHandover => {
            let bin = util::target_dir()?.join("release").join("auditor");
            bench::run_handover(&bin, 3)
        }
        Task::BenchFleet => {
            let bin = util::target_dir()?.join("release").join("auditor");
            bench::run_fleet(&bin, 3)
        }
        Task::BenchTracing(args) => {
            let bin = util::target_dir()?.join("release").join("auditor");
            bench::run(&bin, &args)
        }
        Task::BenchEmulate => {
            let bin = util::target_dir()?.join("release").join("auditor");
            bench::run_emulate(&bin, 5)
        }
        Task::BenchScale => {
            let bin = util::target_dir()?.join("release").join("auditor");
            bench::run_scale(&bin)
        }
        Task::BenchStartup => {
            let bin = util::target_dir()?.join("release").join("auditor");
            bench::run_startup(&bin, 9)
        }
        Task::BenchLarge => {
            let bin = util::target_dir()?.join("release").join("auditor");
            bench::run_large(&bin, 1_000)
        }
        Task::BenchFilter => {
            let bin = util::target_dir()?.join("release").join("auditor");
            bench::run_filter_cost(&bin, 7, 2_000_000)
        }
    }
}

/// The Debian package of `bin`, by packaging/build-deb.sh, in target/dist/.
fn dist(bin: &std::path::Path) -> anyhow::Result<()> {
    let manifest = std::fs::read_to_string(util::workspace_root().join("Cargo.toml"))?;
    let version = manifest
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .ok_or_else(|| anyhow::anyhow!("no version in the workspace Cargo.toml"))?
        .to_owned();
    let out = util::target_dir()?.join("dist");
    util::phase("package (dpkg-deb)", || {
        let script = util::workspace_root().join("packaging/build-deb.sh");
        let o = std::process::Command::new(&script)
            .arg(bin)
            .arg(&version)
            .arg(&out)
            .output()?;
        if !o.status.success() {
            anyhow::bail!(
                "{} failed: {}",
                script.display(),
                String::from_utf8_lossy(&o.stderr).trim()
            );
        }
        eprintln!("xtask: {}", String::from_utf8_lossy(&o.stdout).trim());
        Ok(())
    })
}

/// Build auditor (release) and return the binary's path.
fn build_release() -> anyhow::Result<std::path::PathBuf> {
    util::phase("build (release)", || {
        util::cargo(&["build", "--release", "-p", "auditor"])
    })?;
    Ok(util::target_dir()?.join("release").join("auditor"))
}

/// rustfmt, clippy and rustdoc's links, as CI enforces them: the workspace on stable, the eBPF crate on
/// nightly for its BPF target (its own target dir, so that its build-std artefacts stay apart),
/// the fuzz crate's formatting.
fn lint() -> anyhow::Result<()> {
    util::phase("rustfmt", || {
        util::cargo(&["fmt", "--all", "--", "--check"])?;
        util::cargo(&["fmt", "--manifest-path", "fuzz/Cargo.toml", "--", "--check"])
    })?;
    util::phase("clippy", || {
        util::cargo(&[
            "clippy",
            "--workspace",
            "--exclude",
            "auditor-ebpf",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ])
    })?;
    // Docs of private items too (auditor is mostly read as code): every link resolves.
    util::phase("rustdoc links", || {
        util::run(
            std::process::Command::new("cargo")
                .args([
                    "doc",
                    "-q",
                    "--workspace",
                    "--exclude",
                    "auditor-ebpf",
                    "--no-deps",
                    "--document-private-items",
                ])
                .env(
                    "RUSTDOCFLAGS",
                    "-D rustdoc::broken_intra_doc_links -A rustdoc::private_intra_doc_links -D rustdoc::invalid_html_tags",
                ),
        )
    })?;
    let ebpf_target = util::target_dir()?.join("ebpf-clippy");
    util::phase("clippy (eBPF, nightly)", || {
        util::run(
            std::process::Command::new("cargo")
                .args([
                    "+nightly",
                    "clippy",
                    "-p",
                    "auditor-ebpf",
                    "--target",
                    "bpfel-unknown-none",
                    "-Z",
                    "build-std=core",
                    "--target-dir",
                ])
                .arg(&ebpf_target)
                .args(["--", "-D", "warnings"])
                .current_dir(util::workspace_root()),
        )
    })
}

fn test(filter: Option<String>) -> anyhow::Result<()> {
    let t0 = std::time::Instant::now();
    setup::run()?;
    lint()?;
    util::phase("unit tests", || {
        util::cargo(&[
            "test",
            "--workspace",
            "--exclude",
            "integration",
            "--exclude",
            "auditor-ebpf",
        ])
    })?;
    let bin = build_release()?;
    util::phase("integration tests (privileged)", || {
        let mut args = vec!["test", "-p", "integration", "--release", "--"];
        if let Some(f) = &filter {
            args.push(f);
        }
        args.extend(["--test-threads", "2"]);
        util::cargo_env(&args, &[("AUDITOR_BIN", bin.as_os_str())])
    })?;
    eprintln!(
        "xtask: all tests passed in {:.0}s",
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

fn demo() -> anyhow::Result<()> {
    setup::run()?;
    let bin = build_release()?;
    util::phase("demo", || {
        let dir = std::env::temp_dir().join(format!("auditor-demo-{}", std::process::id()));
        let devdir = dir.join("dev");
        std::fs::create_dir_all(&devdir)?;
        // The container's root is an unprivileged host uid: let it create the node here.
        std::fs::set_permissions(&devdir, std::os::unix::fs::PermissionsExt::from_mode(0o777))?;
        let obs = dir.join("observation.json");
        let policy = dir.join("policy.toml");
        let oci = dir.join("profile.oci.json");
        let audit = dir.join("audit.jsonl");
        let node = devdir.join("null");
        let script = format!(
            "ls /etc | sort | head -3; if mknod {n} c 1 3; then echo 'mknod: created'; else echo 'mknod: refused'; fi",
            n = node.display()
        );
        let workload = ["sh", "-c", script.as_str()];

        eprintln!("\n== 1. learn: the workload in an unprivileged container (--userns), where the kernel refuses mknod ==");
        // The workload's own failure is what is being learned, not a demo failure.
        let _ = std::process::Command::new(&bin)
            .args(["learn", "--userns", "-o"])
            .arg(&obs)
            .arg("--")
            .args(workload)
            .status()?;

        eprintln!(
            "\n== 2. generate: a reviewable native policy (mknodat becomes a notify rule) =="
        );
        util::run(
            std::process::Command::new(&bin)
                .arg("generate")
                .arg(&obs)
                .arg("-o")
                .arg(&policy),
        )?;
        let text = std::fs::read_to_string(&policy)?;
        for block in text
            .split("\n\n")
            .filter(|b| b.contains("name = \"mknod") || b.contains("default_action"))
        {
            eprintln!("{block}\n");
        }
        eprintln!(
            "== 3. check it, and export it for runc/crun (notify goes to auditor's listener) =="
        );
        let _ = std::process::Command::new(&bin)
            .arg("check")
            .arg(&policy)
            .status()?;
        let metadata = format!("policy={}", policy.display());
        util::run(
            std::process::Command::new(&bin)
                .arg("generate")
                .arg(&obs)
                .args([
                    "--format",
                    "oci",
                    "--listener",
                    "/run/auditor/agent.sock",
                    "--listener-metadata",
                    &metadata,
                    "--lossy",
                    "-o",
                ])
                .arg(&oci),
        )?;

        eprintln!("\n== 4. enforce: the same workload under the policy; auditor's broker emulates the mknod ==");
        util::run(
            std::process::Command::new(&bin)
                .args(["enforce", "--userns", "--policy"])
                .arg(&policy)
                .arg("--audit-log")
                .arg(&audit)
                .arg("--")
                .args(workload),
        )?;
        let meta = std::fs::metadata(&node)?;
        let rdev = std::os::unix::fs::MetadataExt::rdev(&meta);
        let uid = std::os::unix::fs::MetadataExt::uid(&meta);
        eprintln!(
            "\n{}: character device {}:{}, owned by host uid {uid} (the container's root)",
            node.display(),
            (rdev >> 8) & 0xfff,
            (rdev & 0xff) | ((rdev >> 12) & 0xfff00)
        );
        eprintln!("audit log:");
        for line in std::fs::read_to_string(&audit)?
            .lines()
            .filter(|l| l.contains("mknod"))
        {
            eprintln!("  {line}");
        }
        eprintln!(
            "\nfiles: {} (observation), {} (policy), {} (OCI profile), {} (audit log)",
            obs.display(),
            policy.display(),
            oci.display(),
            audit.display()
        );
        Ok(())
    })
}
