//! `dormwatt operator add | list | disable` (issue 13): staff accounts from
//! the server's command line — how the first administrator comes to be.
//!
//! A password never comes from argv (it would sit in the shell history and
//! in `ps`): it is read from stdin, twice without echo at a terminal, once
//! (one line) from a pipe. Every change is audited as the command line.

use anyhow::Context as _;
use domain::staff::{self, Role};
use std::io::{BufRead as _, IsTerminal as _};
use std::process::ExitCode;

/// `dormwatt operator …`.
#[derive(Debug, clap::Subcommand)]
pub enum OperatorCommand {
    /// Create an operator; the password is read from stdin.
    Add(AddArgs),
    /// List the operators.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Disable an operator (it cannot log in; its sessions end).
    Disable {
        /// The operator's name.
        name: String,
    },
}

/// Arguments of `dormwatt operator add`.
#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// Login name (2–32 characters, no spaces).
    name: String,
    /// administrator, cashier, building-manager or auditor.
    #[arg(long, value_parser = parse_role)]
    role: Role,
    /// Limit to this area (its code); repeat for several. Default: every area.
    #[arg(long = "area", value_name = "CODE")]
    areas: Vec<String>,
    /// A building manager's building (its name); repeat for several.
    #[arg(long = "building", value_name = "NAME")]
    buildings: Vec<String>,
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| {
        format!("unknown role '{s}' (administrator, cashier, building-manager, auditor)")
    })
}

/// Runs an operator subcommand on `db`.
pub async fn run(db: &store::Db, cmd: OperatorCommand) -> anyhow::Result<ExitCode> {
    let cli = store::audit::Actor::command_line();
    match cmd {
        OperatorCommand::Add(a) => {
            store::operators::check_name(&a.name)?;
            let password = read_password()?;
            if let Err(e) = staff::check_new_password(&password, &a.name) {
                anyhow::bail!("password refused: {e}");
            }
            let phc = staff::hash_password(&password, rand::random())?;
            let new = store::operators::NewOperator {
                name: a.name,
                role: a.role,
                password_phc: phc,
                area_codes: a.areas,
                building_names: a.buildings,
            };
            let op = store::operators::create(db, &new, &cli, store::now_ms()).await?;
            println!(
                "operator {} created ({}, {})",
                op.name,
                op.role,
                where_(&op)
            );
            Ok(ExitCode::SUCCESS)
        }
        OperatorCommand::List { json } => {
            let ops = store::operators::list(db).await?;
            if json {
                println!("{}", serde_json::to_string(&ops)?);
            } else {
                use std::io::Write as _;
                let mut out = std::io::stdout().lock();
                for op in &ops {
                    let state = if op.disabled_at_ms.is_some() {
                        "disabled"
                    } else {
                        "active"
                    };
                    let _ = writeln!(
                        out,
                        "{:<20} {:<17} {:<9} {}",
                        op.name,
                        op.role.as_str(),
                        state,
                        where_(op)
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        OperatorCommand::Disable { name } => {
            match store::operators::disable(db, &name, &cli, store::now_ms()).await {
                Ok(_) => println!("operator {name} disabled"),
                Err(store::Error::NotFound(_)) => anyhow::bail!("no operator is named {name}"),
                Err(e) => return Err(e.into()),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// "all areas", "areas A01, A02", "buildings A01 / 4号楼".
fn where_(op: &store::operators::Operator) -> String {
    if !op.buildings.is_empty() {
        format!("buildings {}", op.buildings.join(", "))
    } else if op.all_areas {
        "all areas".to_owned()
    } else {
        format!("areas {}", op.areas.join(", "))
    }
}

/// The new password from stdin: typed twice without echo at a terminal,
/// one line from a pipe (the trailing newline dropped).
fn read_password() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("new password (at least 10 characters): ")
            .context("cannot read the password from the terminal")?;
        let again = rpassword::prompt_password("the same password again: ")
            .context("cannot read the password from the terminal")?;
        if first != again {
            anyhow::bail!("the two passwords differ; nothing was created");
        }
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    let pw = line.trim_end_matches(['\n', '\r']).to_owned();
    if pw.is_empty() {
        anyhow::bail!("no password on stdin (pipe it in, e.g. from a password manager)");
    }
    Ok(pw)
}
