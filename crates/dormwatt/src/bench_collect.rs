//! `dormwatt bench collect` (being written; see the issue tracker).

/// Arguments of `dormwatt bench collect`.
#[derive(Debug, clap::Args)]
pub struct BenchCollectArgs {}

/// Runs `dormwatt bench collect`.
pub fn run(_args: BenchCollectArgs) -> anyhow::Result<()> {
    anyhow::bail!("dormwatt bench collect is not built yet")
}
