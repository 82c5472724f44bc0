//! Explaining captured bytes to a human or as JSON lines
//! (`dormwatt frame decode`).
//!
//! Unlike [`crate::decode`] and [`crate::StreamDecoder`], the scanner here is
//! lenient: a frame with a bad checksum or an unknown function code is still
//! shown (flagged), because a field engineer looking at a capture wants to see
//! what is wrong, not just that something is.

use std::fmt::Write as _;

use crate::frame::{frame_at, locate};
use crate::value::{MeterDateTime, Recharge, RechargeReply, RelayControl, Value, WriteData};
use crate::{Baud, Di, Frame, Function, PREAMBLE, START};

/// One piece of a capture: a frame, or bytes that are not part of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A frame (its checksum may be wrong).
    Frame(Box<Described>),
    /// Bytes between frames: gateway heartbeats, prefixes, noise.
    Junk(Vec<u8>),
}

/// A frame explained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    /// The frame's bytes as captured, preamble included.
    pub raw: Vec<u8>,
    /// The frame.
    pub frame: Frame,
    /// Whether the checksum byte matched.
    pub checksum_ok: bool,
    /// The data identifier, when the frame carries one.
    pub di: Option<Di>,
    /// The decoded value, for replies (and writes) of known DIs.
    pub value: Option<Value>,
    /// Why the value did not decode, if it did not.
    pub value_error: Option<String>,
    /// The meter's error, for abnormal replies (`ERR=02 no_data`).
    pub error: Option<String>,
    /// Function-specific detail: relay command, recharge fields, time, ...
    pub detail: Option<String>,
}

/// Why text is not hex bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    /// A character that is not a hex digit or separator.
    #[error("not a hex digit: {0:?}")]
    Character(char),
    /// An odd number of hex digits.
    #[error("odd number of hex digits ({0})")]
    Odd(usize),
}

/// Parses hex bytes, ignoring whitespace, `,`, `:`, `-` and `0x` prefixes,
/// so that both `FE FE 68 …` and `fefe68…` work.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, HexError> {
    let cleaned = text.replace("0x", " ").replace("0X", " ");
    let mut digits = Vec::new();
    for c in cleaned.chars() {
        match c {
            c if c.is_ascii_hexdigit() => digits.push(c.to_digit(16).unwrap_or_default() as u8),
            c if c.is_whitespace() || matches!(c, ',' | ':' | '-') => {}
            other => return Err(HexError::Character(other)),
        }
    }
    if digits.len() % 2 != 0 {
        return Err(HexError::Odd(digits.len()));
    }
    Ok(digits.chunks_exact(2).map(|p| (p[0] << 4) | p[1]).collect())
}

/// Upper-case hex with spaces, the way captures are written in the specs.
pub fn to_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let _ = write!(out, "{b:02X}");
    }
    out
}

/// Splits a capture into frames and junk.
pub fn scan(bytes: &[u8]) -> Vec<Item> {
    let mut items = Vec::new();
    let mut junk = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let found = (bytes[i] == START)
            .then(|| locate(&bytes[i..]).ok())
            .flatten();
        // A frame-shaped run with a bad checksum may hide a good frame that
        // starts inside it; prefer the good one.
        let found = found.filter(|f| {
            f.checksum_ok
                || !(i + 1..i + f.end).any(|j| {
                    bytes[j] == START && matches!(locate(&bytes[j..]), Ok(g) if g.checksum_ok)
                })
        });
        let Some(found) = found else {
            junk.push(bytes[i]);
            i += 1;
            continue;
        };
        // The FE preamble belongs to the frame, not to the junk before it.
        let preamble = junk.iter().rev().take_while(|&&b| b == PREAMBLE).count();
        let mut raw = junk.split_off(junk.len() - preamble);
        if !junk.is_empty() {
            items.push(Item::Junk(std::mem::take(&mut junk)));
        }
        raw.extend_from_slice(&bytes[i..i + found.end]);
        let frame = frame_at(&bytes[i..], &found);
        items.push(Item::Frame(Box::new(describe(
            frame,
            raw,
            found.checksum_ok,
        ))));
        i += found.end;
    }
    if !junk.is_empty() {
        items.push(Item::Junk(junk));
    }
    items
}

/// Explains one frame.
pub fn describe(frame: Frame, raw: Vec<u8>, checksum_ok: bool) -> Described {
    let mut d = Described {
        di: frame.di(),
        raw,
        checksum_ok,
        value: None,
        value_error: None,
        error: None,
        detail: None,
        frame,
    };
    let control = d.frame.control();
    if let Some(err) = d.frame.error_flags() {
        d.error = Some(err.to_string());
    }
    if let Some(serr) = d.frame.security_error() {
        d.error = Some(serr.to_string());
    }
    if control.is_abnormal() && d.error.is_none() {
        d.error = Some("abnormal reply without error byte".to_owned());
    }
    let set_value = |d: &mut Described, di: Di, bytes: &[u8]| {
        if let Some(format) = di.format() {
            match format.decode(bytes) {
                Ok(v) => d.value = Some(v),
                Err(e) => d.value_error = Some(e.to_string()),
            }
        }
    };
    let data = d.frame.data().to_vec();
    match (
        d.frame.function(),
        control.is_reply(),
        control.is_abnormal(),
    ) {
        (_, _, true) => {}
        (Some(Function::Read), true, false) => {
            if let Some(di) = d.di {
                set_value(&mut d, di, &data[4..]);
            }
        }
        (Some(Function::ReadFollowUp), false, false) if data.len() == 5 => {
            d.detail = Some(format!("seq {}", data[4]));
        }
        (Some(Function::Write), false, false) => match WriteData::from_wire(&data) {
            Ok(w) => {
                d.detail = Some(format!(
                    "password level {:02X}, operator {:08X}",
                    w.password.level, w.operator.0
                ));
                set_value(&mut d, w.di, &w.value);
            }
            Err(e) => d.value_error = Some(e.to_string()),
        },
        (Some(Function::ReadAddress | Function::WriteAddress), _, false) if data.len() == 6 => {
            let mut wire = [0u8; 6];
            wire.copy_from_slice(&data);
            d.value = Some(Value::Address(crate::Address::from_wire(wire)));
        }
        (Some(Function::BroadcastTime), false, false) => {
            match MeterDateTime::from_wire_seconds(&data) {
                Ok(t) => d.value = Some(Value::DateTime(t)),
                Err(e) => d.value_error = Some(e.to_string()),
            }
        }
        (Some(Function::ChangeBaud), _, false) if data.len() == 1 => {
            d.detail = Some(match Baud::from_feature_byte(data[0]) {
                Some(b) => format!("{} bps", b.bps()),
                None => format!("feature byte {:02X} (not one standard rate)", data[0]),
            });
        }
        (Some(Function::RelayControl), false, false) => match RelayControl::from_wire(&data) {
            Ok(r) => {
                d.detail = Some(format!(
                    "{} (N2={:02X}) valid until {}, password level {:02X}, operator {:08X}",
                    r.command.name(),
                    r.reserved,
                    r.valid_until,
                    r.password.level,
                    r.operator.0
                ));
            }
            Err(e) => d.value_error = Some(e.to_string()),
        },
        (Some(Function::Security), false, false) if d.di == Some(Di::RECHARGE) => {
            match Recharge::from_wire(&data) {
                Ok(r) => {
                    d.detail = Some(format!(
                        "recharge {} kWh, purchase count {}, customer {}, operator {:08X}",
                        crate::value::format_decimal(i64::from(r.energy_centikwh), 2),
                        r.purchase_count,
                        r.customer,
                        r.operator.0
                    ));
                }
                Err(e) => d.value_error = Some(e.to_string()),
            }
        }
        (Some(Function::Security), true, false) if d.di == Some(Di::RECHARGE) => {
            match RechargeReply::from_wire(&data) {
                Ok(r) => {
                    d.value = Some(Value::Number {
                        raw: r.remaining_centikwh,
                        bcd: crate::value::Bcd::ENERGY,
                    });
                    d.detail = Some(format!(
                        "recharge applied: remaining {} kWh, purchase count {}",
                        crate::value::format_decimal(r.remaining_centikwh, 2),
                        r.purchase_count
                    ));
                }
                Err(e) => d.value_error = Some(e.to_string()),
            }
        }
        _ => {}
    }
    d
}

impl Described {
    /// The function name, or `unknown_XX` for codes outside DL/T 645-2007.
    pub fn function_name(&self) -> String {
        match self.frame.function() {
            Some(f) => f.name().to_owned(),
            None => format!("unknown_{:02X}", self.frame.control().function_code()),
        }
    }

    /// One line for a human.
    pub fn to_human(&self) -> String {
        let f = &self.frame;
        let c = f.control();
        let kind = match (c.is_reply(), c.is_abnormal()) {
            (false, _) => "request",
            (true, false) => "reply",
            (true, true) => "ERROR reply",
        };
        let mut out = format!("{} C={} {} {}", f.address(), c, self.function_name(), kind);
        if c.has_follow_up() {
            out.push_str(" (more follows)");
        }
        if let Some(di) = self.di {
            let _ = write!(out, " DI {di}");
            if let Some(name) = di.name() {
                let _ = write!(out, " ({name})");
            }
        }
        if let Some(v) = &self.value {
            let _ = write!(out, " = {v}");
        }
        if let Some(e) = &self.value_error {
            let _ = write!(out, " [value does not decode: {e}]");
        }
        if let Some(e) = &self.error {
            let _ = write!(out, ": {e}");
        }
        if let Some(detail) = &self.detail {
            let _ = write!(out, ": {detail}");
        }
        if !self.checksum_ok {
            out.push_str(" [BAD CHECKSUM]");
        }
        if f.function().is_none() {
            out.push_str(" [not a DL/T 645-2007 function]");
        }
        if !f.data().is_empty() {
            let _ = write!(out, "\n  data: {}", to_hex(f.data()));
        }
        out
    }

    /// One JSON object (no trailing newline) with `address` (nameplate order),
    /// `control`, `function`, `direction`, `di`, `di_name`, `value`, `unit`,
    /// `flags`, `error`, `detail`, `checksum_ok`, `data` (plain) and `raw`.
    pub fn to_json(&self) -> String {
        let f = &self.frame;
        let c = f.control();
        let mut j = JsonObject::default();
        j.string("address", &f.address().to_string());
        j.string("control", &c.to_string());
        j.string("function", &self.function_name());
        j.string("direction", if c.is_reply() { "reply" } else { "request" });
        j.raw("abnormal", bool_text(c.is_abnormal()));
        j.raw("follow_up", bool_text(c.has_follow_up()));
        if let Some(di) = self.di {
            j.string("di", &di.to_string());
            if let Some(name) = di.name() {
                j.string("di_name", name);
            }
        }
        if let Some(v) = &self.value {
            json_value(&mut j, v);
        }
        if let Some(e) = &self.value_error {
            j.string("value_error", e);
        }
        if let Some(e) = &self.error {
            j.string("error", e);
        }
        if let Some(detail) = &self.detail {
            j.string("detail", detail);
        }
        j.raw("checksum_ok", bool_text(self.checksum_ok));
        j.string("data", &to_hex(f.data()));
        j.string("raw", &to_hex(&self.raw));
        j.finish()
    }
}

impl Item {
    /// One line for a human.
    pub fn to_human(&self) -> String {
        match self {
            Item::Frame(d) => d.to_human(),
            Item::Junk(bytes) => format!("junk ({} bytes): {}", bytes.len(), to_hex(bytes)),
        }
    }

    /// One JSON object; junk is `{"junk":"…hex…"}`.
    pub fn to_json(&self) -> String {
        match self {
            Item::Frame(d) => d.to_json(),
            Item::Junk(bytes) => {
                let mut j = JsonObject::default();
                j.string("junk", &to_hex(bytes));
                j.finish()
            }
        }
    }
}

fn bool_text(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

fn json_value(j: &mut JsonObject, v: &Value) {
    match v {
        // Exact decimal text is a valid JSON number, so 1234.56 stays 1234.56.
        Value::Number { raw, bcd } => {
            j.raw("value", &bcd.format_raw(*raw));
            if !bcd.unit.is_empty() {
                j.string("unit", bcd.unit);
            }
        }
        Value::StatusWord3(s) => {
            j.string("value", &format!("{:04X}", s.0));
            let names: Vec<String> = s.names().iter().map(|n| json_string(n)).collect();
            j.raw("flags", &format!("[{}]", names.join(",")));
        }
        Value::EnergyBlock(values) => {
            let parts: Vec<String> = values
                .iter()
                .map(|v| crate::value::format_decimal(*v, 2))
                .collect();
            j.raw("value", &format!("[{}]", parts.join(",")));
            j.string("unit", "kWh");
        }
        Value::Date { date, weekday } => {
            j.string(
                "value",
                &format!("{:04}-{:02}-{:02}", date.year(), date.month(), date.day()),
            );
            j.raw("weekday", &weekday.to_string());
        }
        Value::Time {
            hour,
            minute,
            second,
        } => {
            j.string("value", &format!("{hour:02}:{minute:02}:{second:02}"));
        }
        Value::DateTime(t) => j.string("value", &t.to_string()),
        Value::Event { time, rest } => {
            j.string("value", &time.to_string());
            j.string("event_rest", &to_hex(rest));
        }
        Value::Address(a) => j.string("value", &a.to_string()),
    }
}

/// A minimal JSON object writer: the keys and values here are few and known,
/// so pulling serde into a sans-IO codec is not worth it.
#[derive(Default)]
struct JsonObject {
    out: String,
}

impl JsonObject {
    fn key(&mut self, key: &str) {
        self.out.push(if self.out.is_empty() { '{' } else { ',' });
        self.out.push_str(&json_string(key));
        self.out.push(':');
    }

    fn string(&mut self, key: &str, value: &str) {
        self.key(key);
        self.out.push_str(&json_string(value));
    }

    fn raw(&mut self, key: &str, value: &str) {
        self.key(key);
        self.out.push_str(value);
    }

    fn finish(mut self) -> String {
        if self.out.is_empty() {
            self.out.push('{');
        }
        self.out.push('}');
        self.out
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(items: &[Item]) -> Vec<&Described> {
        items
            .iter()
            .filter_map(|i| match i {
                Item::Frame(d) => Some(&**d),
                Item::Junk(_) => None,
            })
            .collect()
    }

    #[test]
    fn energy_reply_json() {
        let bytes =
            parse_hex("FE FE FE FE 68 12 90 78 56 34 12 68 91 08 33 33 33 33 89 67 45 33 53 16")
                .unwrap();
        let items = scan(&bytes);
        assert_eq!(items.len(), 1);
        let json = items[0].to_json();
        assert!(
            json.starts_with(r#"{"address":"123456789012","control":"91","function":"read""#),
            "{json}"
        );
        assert!(json.contains(r#""di":"00000000""#), "{json}");
        assert!(json.contains(r#""value":1234.56,"unit":"kWh""#), "{json}");
        assert!(json.contains(r#""checksum_ok":true"#), "{json}");
        assert!(items[0].to_human().contains("= 1234.56 kWh"));
    }

    #[test]
    fn several_frames_with_junk_and_a_bad_checksum() {
        let text = "01 02 03 FE FE 68 12 90 78 56 34 12 68 D1 01 35 8D 16 \
                    68 12 90 78 56 34 12 68 9C 00 23 16 ff";
        let items = scan(&parse_hex(text).unwrap());
        assert!(matches!(&items[0], Item::Junk(j) if j == &[1, 2, 3]));
        let fs = frames(&items);
        assert_eq!(fs.len(), 2);
        assert_eq!(fs[0].raw[..2], [0xFE, 0xFE]);
        assert_eq!(fs[0].error.as_deref(), Some("ERR=02 no_data"));
        assert!(fs[0].to_json().contains(r#""error":"ERR=02 no_data""#));
        assert!(!fs[1].checksum_ok);
        assert!(fs[1].to_json().contains(r#""checksum_ok":false"#));
        assert!(fs[1].to_human().contains("BAD CHECKSUM"));
        assert!(matches!(items.last(), Some(Item::Junk(j)) if j == &[0xFF]));
    }

    #[test]
    fn relay_and_status_word() {
        let relay = parse_hex(
            "FE FE FE FE 68 12 90 78 56 34 12 68 1C 10 35 89 67 45 AB 89 67 45 4D 33 8C 8C 56 64 45 58 EB 16",
        )
        .unwrap();
        let items = scan(&relay);
        let d = frames(&items)[0];
        assert_eq!(
            d.detail.as_deref(),
            Some(
                "trip (N2=00) valid until 2025-12-31 23:59:59, password level 02, operator 12345678"
            )
        );
        let status =
            parse_hex("FE FE FE FE 68 12 90 78 56 34 12 68 91 06 36 38 33 37 83 34 AC 16").unwrap();
        let json = scan(&status)[0].to_json();
        assert!(
            json.contains(
                r#""value":"0150","flags":["relay_open","relay_commanded_open","kwh_prepaid"]"#
            ),
            "{json}"
        );
    }

    #[test]
    fn hex_parsing() {
        assert_eq!(parse_hex("0xFE, fe:68").unwrap(), [0xFE, 0xFE, 0x68]);
        assert_eq!(parse_hex("F"), Err(HexError::Odd(1)));
        assert_eq!(parse_hex("zz"), Err(HexError::Character('z')));
        assert_eq!(json_string("a\"b\\\n"), r#""a\"b\\\u000a""#);
    }
}
