//! The `dormwatt` binary. `main` only parses the command line, sets up logging
//! and hands over to a subcommand module; the logic lives in the library crates.

mod cmd_frame;
mod cmd_simulate;

use clap::{Parser, Subcommand};

/// Prepaid electricity for university dormitories.
#[derive(Debug, Parser)]
#[command(name = "dormwatt", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decode or build DL/T 645-2007 frames (for field engineers).
    Frame(cmd_frame::FrameArgs),
    /// Run the meter-fleet simulator (virtual meters behind TCP gateways).
    Simulate(cmd_simulate::SimulateArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Frame(args) => cmd_frame::run(args),
        Command::Simulate(args) => cmd_simulate::run(args),
    }
}
