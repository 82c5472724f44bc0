//! `dormwatt bench pages` (being written; see the issue tracker).

/// Arguments of `dormwatt bench pages`.
#[derive(Debug, clap::Args)]
pub struct BenchPagesArgs {}

/// Runs `dormwatt bench pages`.
pub fn run(_args: BenchPagesArgs) -> anyhow::Result<()> {
    anyhow::bail!("dormwatt bench pages is not built yet")
}
