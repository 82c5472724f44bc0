//! `dormwatt bench purchase` (being written; see the issue tracker).

/// Arguments of `dormwatt bench purchase`.
#[derive(Debug, clap::Args)]
pub struct BenchPurchaseArgs {}

/// Runs `dormwatt bench purchase`.
pub fn run(_args: BenchPurchaseArgs) -> anyhow::Result<()> {
    anyhow::bail!("dormwatt bench purchase is not built yet")
}
