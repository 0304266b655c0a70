//! `cargo xtask bench` (filled in by the benchmark work).

#[derive(clap::Args)]
pub struct BenchArgs {}

pub fn run(_bin: &std::path::Path, _args: &BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("benchmarks are not written yet")
}
