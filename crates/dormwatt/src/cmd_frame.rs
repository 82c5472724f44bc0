//! `dormwatt frame` (being written; see the issue tracker).

/// Arguments of `dormwatt frame`.
#[derive(Debug, clap::Args)]
pub struct FrameArgs {}

/// Runs `dormwatt frame`.
pub fn run(_args: FrameArgs) -> anyhow::Result<()> {
    anyhow::bail!("dormwatt frame is not built yet")
}
