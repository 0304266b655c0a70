//! Compiles the C test workloads (workloads/*.c) with gcc into OUT_DIR.

use std::process::Command;

fn main() {
    let out = std::env::var("OUT_DIR").expect("OUT_DIR");
    // At run time, not `env!`: a build script binary reused from another checkout of the same
    // source would otherwise read that checkout's workloads.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let dir = std::path::Path::new(&manifest).join("workloads");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .expect("workloads dir")
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let p = e.path();
        if p.extension().and_then(|x| x.to_str()) != Some("c") {
            continue;
        }
        let stem = p.file_stem().and_then(|s| s.to_str()).expect("file name");
        // `// gcc: FLAGS` on a line of the source: extra flags (e.g. -static, for a workload
        // that runs inside a busybox container without a libc).
        let source = std::fs::read_to_string(&p).expect("workload source");
        let extra: Vec<&str> = source
            .lines()
            .find_map(|l| l.strip_prefix("// gcc: "))
            .map(|f| f.split_whitespace().collect())
            .unwrap_or_default();
        let status = Command::new("gcc")
            .args(["-O1", "-Wall", "-pthread", "-o"])
            .arg(format!("{out}/{stem}"))
            .arg(&p)
            .args(&extra)
            .status()
            .expect("gcc is needed to build the test workloads (cargo xtask setup installs it)");
        assert!(status.success(), "gcc failed on {}", p.display());
    }
}
