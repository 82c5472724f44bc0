//! A line-based text control surface for demos and scripts, served on stdin
//! and/or a TCP port by `dormwatt simulate`.
//!
//! Plain text rather than HTTP because `web` is the only crate that knows
//! HTTP (CONVENTIONS.md); any `nc` or `telnet` can drive it. One command per
//! line, one reply per line (JSON for inspections).

use std::net::SocketAddr;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::fleet::Fleet;
use crate::load::Appliance;

/// The help text of the control surface.
pub const HELP: &str = "commands: help | time | speed <factor> | advance <dur> | meter <addr> \
| plug <addr> <kettle|heater|hairdryer|ricecooker|induction|laptop|<W>[@pf]> [dur] \
| unplug <addr> | offline <addr> <dur> | online <addr> | remaining <addr> <kWh> \
| gateways | silence <gateway> <dur> | reset <gateway> | faults | fault <name> <value> \
  (durations: 90s, 15m, 2h, 3d; bare numbers are ms)";

/// Parses a duration such as `90s`, `15m`, `2h`, `3d` or `1500` (ms) into ms.
pub fn parse_duration_ms(text: &str) -> Option<i64> {
    let t = text.trim();
    let (num, unit) = match t.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => (&t[..i], &t[i..]),
        None => (t, "ms"),
    };
    let n: f64 = num.parse().ok()?;
    let scale = match unit {
        "ms" => 1.0,
        "s" => 1e3,
        "m" | "min" => 60e3,
        "h" => 3_600e3,
        "d" => 86_400e3,
        _ => return None,
    };
    let ms = n * scale;
    (ms.is_finite() && ms >= 0.0).then_some(ms as i64)
}

/// Executes one command line and returns the reply line.
pub fn execute(fleet: &Fleet, line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    let err = |e: &dyn std::fmt::Display| format!("error: {e}");
    let ok = || "ok".to_owned();
    match words.as_slice() {
        [] => String::new(),
        ["help"] => HELP.to_owned(),
        ["time"] => {
            let now = fleet.clock().now_ms();
            let ts = jiff::Timestamp::from_millisecond(now)
                .map(|t| t.to_string())
                .unwrap_or_default();
            format!("{ts} now_ms={now} speed={}", fleet.clock().speed())
        }
        ["speed", f] => match f.parse::<f64>() {
            Ok(s) if s >= 0.0 => {
                fleet.clock().set_speed(s);
                ok()
            }
            _ => err(&"speed is a number >= 0"),
        },
        ["advance", d] => match parse_duration_ms(d) {
            Some(ms) => {
                fleet.clock().advance(ms);
                ok()
            }
            None => err(&"bad duration"),
        },
        ["meter", a] => match fleet.inspect(a) {
            Ok(v) => serde_json::to_string(&v).unwrap_or_else(|e| err(&e)),
            Err(e) => err(&e),
        },
        ["plug", a, what, rest @ ..] => {
            let Some(app) = Appliance::parse(what) else {
                return err(&"unknown appliance");
            };
            let dur = match rest {
                [] => None,
                [d] => match parse_duration_ms(d) {
                    Some(ms) => Some(ms),
                    None => return err(&"bad duration"),
                },
                _ => return err(&"too many arguments"),
            };
            fleet.plug(a, app, dur).map_or_else(|e| err(&e), |()| ok())
        }
        ["unplug", a] => fleet.unplug(a).map_or_else(|e| err(&e), |()| ok()),
        ["offline", a, d] => match parse_duration_ms(d) {
            Some(ms) => fleet.set_offline(a, ms).map_or_else(|e| err(&e), |()| ok()),
            None => err(&"bad duration"),
        },
        ["online", a] => fleet.set_offline(a, 0).map_or_else(|e| err(&e), |()| ok()),
        ["remaining", a, kwh] => match kwh.parse::<f64>() {
            Ok(k) if (0.0..=999_999.0).contains(&k) => fleet
                .set_remaining(a, (k * 100.0).round() as u32)
                .map_or_else(|e| err(&e), |()| ok()),
            _ => err(&"bad kWh"),
        },
        ["gateways"] => serde_json::to_string(&fleet.gateways()).unwrap_or_else(|e| err(&e)),
        ["silence", g, d] => match parse_duration_ms(d) {
            Some(ms) => fleet
                .silence_gateway(g, ms)
                .map_or_else(|e| err(&e), |()| ok()),
            None => err(&"bad duration"),
        },
        ["reset", g] => fleet.reset_gateway(g).map_or_else(|e| err(&e), |()| ok()),
        ["faults"] => serde_json::to_string(&fleet.faults()).unwrap_or_else(|e| err(&e)),
        ["fault", name, value] => {
            let mut f = fleet.faults();
            match value.parse::<f64>() {
                Ok(v) if f.set(name, v) => {
                    fleet.set_faults(f);
                    ok()
                }
                _ => err(&"unknown fault or bad value"),
            }
        }
        _ => err(&"unknown command; try help"),
    }
}

/// Serves the control surface on one byte stream (stdin/stdout or a socket)
/// until it closes. A line is cut at 1 KiB so that a client cannot make the
/// control surface buffer without bound.
pub async fn serve_lines<R, W>(fleet: Fleet, reader: R, mut writer: W)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut reader = BufReader::new(reader);
    loop {
        let mut line = Vec::new();
        match (&mut reader).take(1024).read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut reply = execute(&fleet, &String::from_utf8_lossy(&line));
        if reply.is_empty() {
            continue;
        }
        reply.push('\n');
        if writer.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
        let _ = writer.flush().await;
    }
}

/// Serves the control surface on a TCP listener, one task per client.
pub async fn serve_tcp(fleet: Fleet, listener: TcpListener) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        tracing::info!(%peer, "control client connected");
        let (r, w) = stream.into_split();
        tokio::spawn(serve_lines(fleet.clone(), r, w));
    }
}

/// Binds the control listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("90s"), Some(90_000));
        assert_eq!(parse_duration_ms("15m"), Some(900_000));
        assert_eq!(parse_duration_ms("2h"), Some(7_200_000));
        assert_eq!(parse_duration_ms("1.5d"), Some(129_600_000));
        assert_eq!(parse_duration_ms("1500"), Some(1500));
        assert_eq!(parse_duration_ms("-3s"), None);
        assert_eq!(parse_duration_ms("3y"), None);
    }

    #[test]
    fn commands_drive_the_fleet() {
        let cfg = crate::SimConfig {
            start_ms: Some(1_795_622_400_000 + 10 * 3_600_000),
            speed: 0.0,
            ..crate::SimConfig::default()
        };
        let fleet = Fleet::from_plan(&crate::synthetic_plan(2), cfg);
        let a = "209900010001";
        assert_eq!(execute(&fleet, &format!("plug {a} kettle 30m")), "ok");
        assert_eq!(execute(&fleet, "advance 2m"), "ok");
        let v: serde_json::Value =
            serde_json::from_str(&execute(&fleet, &format!("meter {a}"))).unwrap();
        assert_eq!(v["malicious_trips"], 1);
        assert_eq!(v["relay_open"], true);
        assert_eq!(execute(&fleet, "fault reply_loss 0.25"), "ok");
        assert!((fleet.faults().reply_loss - 0.25).abs() < 1e-9);
        assert!(execute(&fleet, "fault reply_loss 2").starts_with("error"));
        assert!(execute(&fleet, "meter 123").starts_with("error"));
        assert!(execute(&fleet, "plug 209900010002 toaster").starts_with("error"));
        assert_eq!(execute(&fleet, "speed 60"), "ok");
        assert!((fleet.clock().speed() - 60.0).abs() < 1e-9);
        assert_eq!(execute(&fleet, "offline 209900010002 1h"), "ok");
        let v: serde_json::Value =
            serde_json::from_str(&execute(&fleet, "meter 209900010002")).unwrap();
        assert!(v["offline_until_ms"].is_i64());
    }
}
