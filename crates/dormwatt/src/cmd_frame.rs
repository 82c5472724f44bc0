//! `dormwatt frame`: decode captured DL/T 645 bytes, or build common requests,
//! for field engineers with a serial sniffer or a gateway log in hand.
//!
//! The explaining logic lives in `dlt645::describe` so that it is tested with
//! the codec; this module only parses arguments and prints.

use std::io::Read as _;

use anyhow::{Context as _, bail};
use dlt645::describe::{Item, parse_hex, scan, to_hex};
use dlt645::request::{
    broadcast_time_request, read_address_request, read_request, recharge_request, relay_request,
    write_request,
};
use dlt645::value::{
    MeterDateTime, OperatorCode, Password, Recharge, RelayCommand, RelayControl, WriteData,
    parse_decimal,
};
use dlt645::{Address, Di, Frame, encode_into};

/// Arguments of `dormwatt frame`.
#[derive(Debug, clap::Args)]
pub struct FrameArgs {
    #[command(subcommand)]
    command: FrameCommand,
}

#[derive(Debug, clap::Subcommand)]
enum FrameCommand {
    /// Decode captured bytes: several frames, FE preambles and junk between
    /// them are fine. Reads standard input when no HEX is given.
    Decode {
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
        /// Hex bytes; spaces, commas and 0x prefixes are ignored.
        hex: Vec<String>,
    },
    /// Build a request and print it as hex.
    Encode {
        /// Leave out the four FE preamble bytes.
        #[arg(long, global = true)]
        no_preamble: bool,
        #[command(subcommand)]
        request: EncodeCommand,
    },
}

#[derive(Debug, clap::Subcommand)]
enum EncodeCommand {
    /// 11H read of one data identifier.
    Read {
        /// Meter address as on the nameplate (12 digits, AA for wildcard bytes).
        #[arg(long)]
        address: Address,
        /// Data identifier as eight hex digits, DI3 first (e.g. 00900100).
        #[arg(long, value_parser = parse_di)]
        di: Di,
    },
    /// 13H read of the address of the only meter on the bus.
    ReadAddress,
    /// 14H write of a value in the DI's own format (e.g. `--di 04000F01 --value 10.00`).
    Write {
        /// Meter address.
        #[arg(long)]
        address: Address,
        /// Data identifier (eight hex digits).
        #[arg(long, value_parser = parse_di)]
        di: Di,
        /// The value as a decimal number in the DI's unit.
        #[arg(long)]
        value: String,
        /// Password as LEVEL:CODE in hex, e.g. 02:123456.
        #[arg(long, value_parser = parse_password, default_value = "02:000000")]
        password: Password,
        /// Operator code, eight hex digits.
        #[arg(long, value_parser = parse_operator, default_value = "00000000")]
        operator: OperatorCode,
    },
    /// 1CH relay control.
    Relay {
        /// Meter address.
        #[arg(long)]
        address: Address,
        /// trip, close-allowed, direct-close, alarm, alarm-release, keep-power, keep-power-release.
        #[arg(long, value_parser = parse_relay_command)]
        command: RelayCommand,
        /// Password as LEVEL:CODE in hex, e.g. 02:123456.
        #[arg(long, value_parser = parse_password, default_value = "02:000000")]
        password: Password,
        /// Operator code, eight hex digits.
        #[arg(long, value_parser = parse_operator, default_value = "00000000")]
        operator: OperatorCode,
        /// Deadline in meter local time, "YYYY-MM-DD HH:MM:SS".
        #[arg(long, value_parser = parse_time)]
        valid_until: MeterDateTime,
    },
    /// 03H recharge (reference profile, plain text).
    Recharge {
        /// Meter address.
        #[arg(long)]
        address: Address,
        /// Purchased energy in kWh, at most two decimals (e.g. 20.00).
        #[arg(long)]
        energy_kwh: String,
        /// The purchase count this recharge makes (the meter's count + 1).
        #[arg(long)]
        count: u32,
        /// Customer (room account) number, up to 12 digits.
        #[arg(long, default_value_t = 0)]
        customer: u64,
        /// Operator code, eight hex digits.
        #[arg(long, value_parser = parse_operator, default_value = "00000000")]
        operator: OperatorCode,
    },
    /// 08H broadcast time to 99…99.
    BroadcastTime {
        /// Meter local time, "YYYY-MM-DD HH:MM:SS".
        #[arg(long, value_parser = parse_time)]
        time: MeterDateTime,
    },
}

/// Runs `dormwatt frame`.
pub fn run(args: FrameArgs) -> anyhow::Result<()> {
    match args.command {
        FrameCommand::Decode { json, hex } => {
            let text = if hex.is_empty() {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .context("reading standard input")?;
                text
            } else {
                hex.join(" ")
            };
            let bytes = parse_hex(&text)?;
            let items = scan(&bytes);
            if items.is_empty() {
                bail!("no bytes to decode");
            }
            for item in &items {
                println!(
                    "{}",
                    if json {
                        item.to_json()
                    } else {
                        item.to_human()
                    }
                );
            }
            if !items.iter().any(|i| matches!(i, Item::Frame(_))) {
                let rejected = items
                    .iter()
                    .filter(|i| matches!(i, Item::Rejected(_)))
                    .count();
                if rejected > 0 {
                    bail!(
                        "no valid DL/T 645 frame in {} bytes; {rejected} candidate(s) rejected (reasons above)",
                        bytes.len()
                    );
                }
                bail!("no DL/T 645 frame found in {} bytes", bytes.len());
            }
            Ok(())
        }
        FrameCommand::Encode {
            no_preamble,
            request,
        } => {
            let frame = build(request)?;
            let mut out = Vec::new();
            encode_into(
                &frame,
                if no_preamble { 0 } else { dlt645::PREAMBLE_LEN },
                &mut out,
            );
            println!("{}", to_hex(&out));
            Ok(())
        }
    }
}

fn build(request: EncodeCommand) -> anyhow::Result<Frame> {
    Ok(match request {
        EncodeCommand::Read { address, di } => read_request(address, di),
        EncodeCommand::ReadAddress => read_address_request(),
        EncodeCommand::Write {
            address,
            di,
            value,
            password,
            operator,
        } => {
            let Some(dlt645::value::Format::Number(bcd)) = di.format() else {
                bail!("dormwatt frame encode write only knows numeric DIs; {di} is not one");
            };
            let raw = parse_decimal(&value, bcd.decimals)?;
            let value = bcd.encode(raw)?;
            write_request(
                address,
                &WriteData {
                    di,
                    password,
                    operator,
                    value,
                },
            )?
        }
        EncodeCommand::Relay {
            address,
            command,
            password,
            operator,
            valid_until,
        } => relay_request(
            address,
            &RelayControl {
                password,
                operator,
                command,
                reserved: 0,
                valid_until,
            },
        ),
        EncodeCommand::Recharge {
            address,
            energy_kwh,
            count,
            customer,
            operator,
        } => {
            let energy = parse_decimal(&energy_kwh, 2)?;
            let energy_centikwh =
                u32::try_from(energy).context("energy must be between 0 and 42949672.95 kWh")?;
            recharge_request(
                address,
                &Recharge {
                    operator,
                    energy_centikwh,
                    purchase_count: count,
                    mac1: [0; 4],
                    customer,
                    mac2: [0; 4],
                },
            )?
        }
        EncodeCommand::BroadcastTime { time } => broadcast_time_request(time),
    })
}

fn parse_di(text: &str) -> Result<Di, String> {
    let text = text.trim().trim_start_matches("0x").replace(' ', "");
    if text.len() != 8 {
        return Err(format!(
            "a DI is eight hex digits, DI3 first (got {text:?})"
        ));
    }
    u32::from_str_radix(&text, 16)
        .map(Di)
        .map_err(|e| e.to_string())
}

fn parse_password(text: &str) -> Result<Password, String> {
    let (level, code) = text
        .split_once(':')
        .ok_or("expected LEVEL:CODE, e.g. 02:123456")?;
    let level = u8::from_str_radix(level, 16).map_err(|e| format!("level: {e}"))?;
    if code.len() != 6 {
        return Err("the password code is six hex digits".to_owned());
    }
    let code = u32::from_str_radix(code, 16).map_err(|e| format!("code: {e}"))?;
    Ok(Password { level, code })
}

fn parse_operator(text: &str) -> Result<OperatorCode, String> {
    if text.len() != 8 {
        return Err("an operator code is eight hex digits".to_owned());
    }
    u32::from_str_radix(text, 16)
        .map(OperatorCode)
        .map_err(|e| e.to_string())
}

fn parse_relay_command(text: &str) -> Result<RelayCommand, String> {
    RelayCommand::from_name(text).ok_or_else(|| {
        let names: Vec<&str> = RelayCommand::ALL.iter().map(|c| c.name()).collect();
        format!("expected one of {}", names.join(", "))
    })
}

fn parse_time(text: &str) -> Result<MeterDateTime, String> {
    let civil: jiff::civil::DateTime = text.trim().parse().map_err(|e| format!("{e}"))?;
    let narrow = |v: i8| u8::try_from(v).map_err(|e| e.to_string());
    MeterDateTime::new(
        u16::try_from(civil.year()).map_err(|e| e.to_string())?,
        narrow(civil.month())?,
        narrow(civil.day())?,
        narrow(civil.hour())?,
        narrow(civil.minute())?,
        narrow(civil.second())?,
    )
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use dlt645::describe::to_hex;

    /// Just `dormwatt frame`, so the tests parse the real argument shapes.
    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: FrameArgs,
    }

    fn encoded(args: &[&str]) -> String {
        let cli = Cli::try_parse_from(std::iter::once("frame").chain(args.iter().copied()))
            .expect("arguments parse");
        let FrameCommand::Encode {
            no_preamble,
            request,
        } = cli.args.command
        else {
            panic!("not an encode command");
        };
        let mut out = Vec::new();
        encode_into(
            &build(request).expect("builds"),
            if no_preamble { 0 } else { dlt645::PREAMBLE_LEN },
            &mut out,
        );
        to_hex(&out)
    }

    #[test]
    fn encodes_the_protocol_notes_vectors() {
        assert_eq!(
            encoded(&[
                "encode",
                "read",
                "--address",
                "123456789012",
                "--di",
                "00900100"
            ]),
            "FE FE FE FE 68 12 90 78 56 34 12 68 11 04 33 34 C3 33 F8 16" // V07a
        );
        assert_eq!(
            encoded(&[
                "encode",
                "relay",
                "--address",
                "123456789012",
                "--command",
                "trip",
                "--password",
                "02:123456",
                "--operator",
                "12345678",
                "--valid-until",
                "2025-12-31 23:59:59",
            ]),
            "FE FE FE FE 68 12 90 78 56 34 12 68 1C 10 35 89 67 45 AB 89 67 45 4D 33 8C 8C 56 64 45 58 EB 16" // V10
        );
        assert_eq!(
            encoded(&["encode", "broadcast-time", "--time", "2025-09-01 08:00:00"]),
            "FE FE FE FE 68 99 99 99 99 99 99 68 08 06 33 33 3B 34 3C 58 DD 16" // V14
        );
        assert_eq!(
            encoded(&[
                "encode",
                "write",
                "--address",
                "123456789012",
                "--di",
                "04000F01",
                "--value",
                "10.00",
                "--password",
                "02:123456",
                "--operator",
                "12345678",
            ]),
            "FE FE FE FE 68 12 90 78 56 34 12 68 14 10 34 42 33 37 35 89 67 45 AB 89 67 45 33 43 33 33 B0 16" // V17a
        );
        assert_eq!(
            encoded(&["encode", "--no-preamble", "read-address"]),
            "68 AA AA AA AA AA AA 68 13 00 DF 16" // V09a without FE
        );
    }

    #[test]
    fn recharge_round_trips_through_the_decoder() {
        let hex = encoded(&[
            "encode",
            "recharge",
            "--address",
            "123456789012",
            "--energy-kwh",
            "20.5",
            "--count",
            "7",
            "--customer",
            "101203",
        ]);
        let items = dlt645::describe::scan(&parse_hex(&hex).expect("hex"));
        let Item::Frame(d) = &items[0] else {
            panic!("no frame")
        };
        assert_eq!(
            d.detail.as_deref(),
            Some("recharge 20.50 kWh, purchase count 7, customer 101203, operator 00000000")
        );
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(parse_di("0090010").is_err());
        assert_eq!(parse_di("0x00900100"), Ok(Di::REMAINING_ENERGY));
        assert!(parse_password("02123456").is_err());
        assert!(parse_operator("1234").is_err());
        assert!(parse_relay_command("open").is_err());
        assert!(parse_time("2025-02-30 00:00:00").is_err());
        assert!(parse_time("1999-12-31 23:59:59").is_err());
        let too_precise = Cli::try_parse_from([
            "frame",
            "encode",
            "recharge",
            "--address",
            "1",
            "--energy-kwh",
            "1.005",
            "--count",
            "1",
        ])
        .expect("parses");
        let FrameCommand::Encode { request, .. } = too_precise.args.command else {
            panic!()
        };
        assert!(build(request).is_err());
    }
}
