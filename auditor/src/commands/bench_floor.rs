//! `auditor bench-floor`: the benchmark's floor — empty programs on the same syscall hooks.

use std::process::ExitCode;

pub fn run() -> anyhow::Result<ExitCode> {
    super::require_root("auditor bench-floor")?;
    let _floor = crate::bpf::Floor::load()?;
    eprintln!("floor programs attached; interrupt to detach");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
