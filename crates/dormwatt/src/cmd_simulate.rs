//! `dormwatt simulate` (being written; see the issue tracker).

/// Arguments of `dormwatt simulate`.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {}

/// Runs `dormwatt simulate`.
pub fn run(_args: SimulateArgs) -> anyhow::Result<()> {
    anyhow::bail!("dormwatt simulate is not built yet")
}
