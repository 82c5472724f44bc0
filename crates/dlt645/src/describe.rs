//! Explaining captured bytes to a human or as JSON lines
//! (`dormwatt frame decode`).
//!
//! Unlike [`crate::decode`] and [`crate::StreamDecoder`], the scanner here is
//! lenient: a frame with a bad checksum or an unknown function code is still
//! shown (flagged), because a field engineer looking at a capture wants to see
//! what is wrong, not just that something is.

use std::fmt::Write as _;

use std::fmt;

use crate::frame::{frame_at, locate};
use crate::v1997::{self, Di1997, Function1997};
use crate::value::{
    Format, MeterDateTime, Recharge, RechargeReply, RelayControl, Value, WriteData,
};
use crate::{Baud, DecodeError, Di, END, Frame, Function, MAX_DATA_LEN, PREAMBLE, START, checksum};

/// One piece of a capture: a frame, bytes that start like a frame but are
/// not one, or bytes that are not part of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A frame (its checksum may be wrong).
    Frame(Box<Described>),
    /// A candidate frame the codec refused, with why.
    Rejected(Rejected),
    /// Bytes between frames: gateway heartbeats, prefixes, noise.
    Junk(Vec<u8>),
}

/// Bytes from a 68H that look like a frame but are not one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Where its first 68H is in the capture (0-based).
    pub offset: usize,
    /// Its bytes, from that 68H.
    pub bytes: Vec<u8>,
    /// Why it is not a frame.
    pub reason: Rejection,
}

/// Why a candidate frame was refused: the codec's own errors
/// ([`DecodeError::NoSecondStart`], [`DecodeError::NoEnd`],
/// [`DecodeError::Incomplete`]), with a length mismatch told apart from a
/// wrong end byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Byte 7 is not the second 68H but `found`; `missing` when the 68H is
    /// absent altogether (everything after it one byte early).
    NoSecondStart {
        /// The byte where the second 68H belongs.
        found: u8,
        /// The 68H is left out rather than replaced.
        missing: bool,
    },
    /// The byte after the checksum is `found`, not 16H.
    NoEnd {
        /// The byte where 16H belongs.
        found: u8,
    },
    /// L says `declared` data bytes, but the checksum and 16H close the
    /// frame after `actual`.
    LengthMismatch {
        /// The L byte.
        declared: usize,
        /// The data bytes actually there.
        actual: usize,
    },
    /// The capture ends inside the frame.
    Incomplete {
        /// At least this many more bytes were needed.
        needed: usize,
    },
}

impl Rejection {
    /// A stable name for JSON: `no_second_start`, `no_end`, `length_mismatch`, `incomplete`.
    pub const fn code(&self) -> &'static str {
        match self {
            Rejection::NoSecondStart { .. } => "no_second_start",
            Rejection::NoEnd { .. } => "no_end",
            Rejection::LengthMismatch { .. } => "length_mismatch",
            Rejection::Incomplete { .. } => "incomplete",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::NoSecondStart { missing: true, .. } => {
                f.write_str("missing second 68 after the address (the frame is one byte short)")
            }
            Rejection::NoSecondStart { found, .. } => {
                write!(f, "missing second 68: byte 7 is {found:02X}")
            }
            Rejection::NoEnd { found } => write!(f, "wrong end byte: {found:02X} where 16 belongs"),
            Rejection::LengthMismatch { declared, actual } => write!(
                f,
                "length mismatch: L says {declared} data bytes, the frame has {actual}"
            ),
            Rejection::Incomplete { needed } => write!(
                f,
                "incomplete: the capture ends at least {needed} bytes before the frame does"
            ),
        }
    }
}

/// Which edition of the protocol a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// DL/T 645-2007 (4-byte DIs, read = 11H).
    Dlt645_2007,
    /// DL/T 645-1997 (2-byte DIs, read = 01H).
    Dlt645_1997,
}

impl Protocol {
    /// `DL/T 645-2007` or `DL/T 645-1997`.
    pub const fn name(self) -> &'static str {
        match self {
            Protocol::Dlt645_2007 => "DL/T 645-2007",
            Protocol::Dlt645_1997 => "DL/T 645-1997",
        }
    }
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
    /// 2007, or 1997 when the control byte has a 1997-only function code.
    pub protocol: Protocol,
    /// The 2-byte data identifier of a 1997 frame.
    pub di_1997: Option<Di1997>,
    /// A read reply (or write) whose DI this codec has no format for: the
    /// value is shown as hex.
    pub unknown_di: bool,
    /// Things that are wrong without making the frame unreadable, e.g. a
    /// read reply with less data than its DI needs.
    pub warnings: Vec<String>,
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
        let located = (bytes[i] == START).then(|| locate(&bytes[i..]));
        if let Some(Err(error)) = &located
            && let Some((reason, span)) = diagnose(&bytes[i..], error)
            && !good_frame_within(bytes, i + 1, i + span)
        {
            if !junk.is_empty() {
                items.push(Item::Junk(std::mem::take(&mut junk)));
            }
            items.push(Item::Rejected(Rejected {
                offset: i,
                bytes: bytes[i..i + span].to_vec(),
                reason,
            }));
            i += span;
            continue;
        }
        let found = located.and_then(Result::ok);
        // A frame-shaped run with a bad checksum may hide a good frame that
        // starts inside it; prefer the good one.
        let found = found.filter(|f| f.checksum_ok || !good_frame_within(bytes, i + 1, i + f.end));
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

/// Whether a frame with a good checksum starts at an index in `from..to`.
fn good_frame_within(bytes: &[u8], from: usize, to: usize) -> bool {
    (from..to.min(bytes.len()))
        .any(|j| bytes[j] == START && matches!(locate(&bytes[j..]), Ok(g) if g.checksum_ok))
}

/// The index of a 16H that closes a frame starting at `buf[0]` with a
/// matching checksum before it, `extra` added to the sum (0x68 when the
/// second start byte is missing).
fn checksummed_end(buf: &[u8], first: usize, extra: u8) -> Option<usize> {
    (first..buf.len().min(first + MAX_DATA_LEN + 2))
        .find(|&k| buf[k] == END && checksum(&buf[..k - 1]).wrapping_add(extra) == buf[k - 1])
}

/// Why the candidate at `buf[0]` (a 68H) failed `locate` with `error`, and
/// how many bytes it spans — or `None` when nothing there looks enough like
/// a frame to be worth a line (a lone 68H in a heartbeat is just junk).
fn diagnose(buf: &[u8], error: &DecodeError) -> Option<(Rejection, usize)> {
    match *error {
        DecodeError::NoSecondStart { found } => {
            // Replaced: the rest is where a frame's would be.
            if let Some(&l) = buf.get(9) {
                let total = 12 + usize::from(l);
                if buf.get(total - 1) == Some(&END) {
                    return Some((
                        Rejection::NoSecondStart {
                            found,
                            missing: false,
                        },
                        total,
                    ));
                }
            }
            // Left out: C at byte 7, L at 8, and a checksum that misses the 68H.
            let l = usize::from(*buf.get(8)?);
            let total = 11 + l;
            let end = checksummed_end(buf, 10, START)?;
            (end == total - 1).then_some((
                Rejection::NoSecondStart {
                    found,
                    missing: true,
                },
                total,
            ))
        }
        DecodeError::NoEnd { found } => {
            let declared = usize::from(buf[9]);
            match checksummed_end(buf, 11, 0) {
                Some(end) => Some((
                    Rejection::LengthMismatch {
                        declared,
                        actual: end - 11,
                    },
                    end + 1,
                )),
                None => Some((Rejection::NoEnd { found }, 12 + declared)),
            }
        }
        DecodeError::Incomplete { needed } => {
            if buf.len() >= 10 {
                // Byte 7 was a 68H; an L larger than the data is a length
                // mismatch, not a cut capture, when the frame closes early.
                if let Some(end) = checksummed_end(buf, 11, 0) {
                    return Some((
                        Rejection::LengthMismatch {
                            declared: usize::from(buf[9]),
                            actual: end - 11,
                        },
                        end + 1,
                    ));
                }
            } else if buf.len() >= 8 && buf[7] != START {
                return None;
            }
            Some((Rejection::Incomplete { needed }, buf.len()))
        }
        DecodeError::NoStart { .. }
        | DecodeError::BadChecksum { .. }
        | DecodeError::UnknownFunction { .. } => None,
    }
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
        protocol: Protocol::Dlt645_2007,
        di_1997: None,
        unknown_di: false,
        warnings: Vec::new(),
        frame,
    };
    if let Some(f97) = Function1997::of(d.frame.control()) {
        describe_1997(&mut d, f97);
        return d;
    }
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
        decode_value(d, di.format(), &di.to_string(), bytes);
    };
    let data = d.frame.data().to_vec();
    match (
        d.frame.function(),
        control.is_reply(),
        control.is_abnormal(),
    ) {
        (_, _, true) => {}
        (Some(Function::Read), true, false) => match d.di {
            Some(di) => set_value(&mut d, di, &data[4..]),
            None => d.warnings.push(format!(
                "read reply too short to carry a DI: {} data bytes",
                data.len()
            )),
        },
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

/// Decodes the value bytes of a DI in `format` into `d`, warning when they
/// are fewer or more than the format takes; without a format the DI is
/// unknown and its bytes are shown in hex.
fn decode_value(d: &mut Described, format: Option<Format>, di: &str, bytes: &[u8]) {
    let Some(format) = format else {
        d.unknown_di = true;
        return;
    };
    let (need, got) = (format.byte_len(), bytes.len());
    if got < need {
        d.warnings.push(format!(
            "data shorter than DI {di} needs: {got} of {need} value bytes"
        ));
    } else if got > need && format.is_fixed_len() {
        d.warnings.push(format!(
            "{} value bytes more than DI {di} needs ({need})",
            got - need
        ));
    }
    match format.decode(bytes) {
        Ok(v) => d.value = Some(v),
        Err(e) => d.value_error = Some(e.to_string()),
    }
}

/// The 1997 reading of a frame: 2-byte DI, 1997 ERR bits.
fn describe_1997(d: &mut Described, function: Function1997) {
    d.protocol = Protocol::Dlt645_1997;
    d.di = None;
    let control = d.frame.control();
    let data = d.frame.data().to_vec();
    if control.is_reply() && control.is_abnormal() {
        d.error = Some(match data.first() {
            Some(&err) => format!("ERR={err:02X} {}", v1997::error_names(err).join(",")),
            None => "abnormal reply without error byte".to_owned(),
        });
        return;
    }
    if !function.carries_di() {
        return;
    }
    d.di_1997 = Di1997::from_le_bytes(&data);
    let Some(di) = d.di_1997 else {
        if control.is_reply() {
            d.warnings.push(format!(
                "read reply too short to carry a DI: {} data bytes",
                data.len()
            ));
        }
        return;
    };
    if control.is_reply() && function == Function1997::Read {
        decode_value(d, di.format(), &di.to_string(), &data[2..]);
    }
}

impl Described {
    /// The function name, or `unknown_XX` for codes outside DL/T 645-2007
    /// and 1997.
    pub fn function_name(&self) -> String {
        if self.protocol == Protocol::Dlt645_1997
            && let Some(f) = Function1997::of(self.frame.control())
        {
            return f.name().to_owned();
        }
        match self.frame.function() {
            Some(f) => f.name().to_owned(),
            None => format!("unknown_{:02X}", self.frame.control().function_code()),
        }
    }

    /// The value bytes of a DI this codec has no format for.
    fn unknown_value_bytes(&self) -> Option<&[u8]> {
        if !self.unknown_di {
            return None;
        }
        let skip = if self.di_1997.is_some() { 2 } else { 4 };
        self.frame.data().get(skip..)
    }

    /// " DI <di> (<name>)", or "(unknown DI)" for one this codec has no
    /// format for (either protocol's identifier).
    fn write_di(&self, out: &mut String, di: impl std::fmt::Display, name: Option<&str>) {
        let _ = write!(out, " DI {di}");
        match name {
            Some(name) => {
                let _ = write!(out, " ({name})");
            }
            None if self.unknown_di => out.push_str(" (unknown DI)"),
            None => {}
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
            self.write_di(&mut out, di, di.name());
        }
        if let Some(di) = self.di_1997 {
            self.write_di(&mut out, di, di.name());
        }
        if let Some(v) = &self.value {
            let _ = write!(out, " = {v}");
        }
        if let Some(bytes) = self.unknown_value_bytes() {
            let _ = write!(out, " = {} (hex, unknown DI)", to_hex(bytes));
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
        if self.protocol == Protocol::Dlt645_1997 {
            out.push_str(" [DL/T 645-1997]");
        } else if f.function().is_none() {
            out.push_str(" [not a DL/T 645-2007 function]");
        }
        for w in &self.warnings {
            let _ = write!(out, "\n  WARNING: {w}");
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
        j.string("protocol", self.protocol.name());
        j.raw("abnormal", bool_text(c.is_abnormal()));
        j.raw("follow_up", bool_text(c.has_follow_up()));
        if let Some(di) = self.di {
            j.string("di", &di.to_string());
            if let Some(name) = di.name() {
                j.string("di_name", name);
            }
        }
        if let Some(di) = self.di_1997 {
            j.string("di", &di.to_string());
            if let Some(name) = di.name() {
                j.string("di_name", name);
            }
        }
        if self.unknown_di {
            j.raw("unknown_di", "true");
        }
        if let Some(v) = &self.value {
            json_value(&mut j, v);
        }
        if let Some(bytes) = self.unknown_value_bytes() {
            j.string("value_hex", &to_hex(bytes));
        }
        if !self.warnings.is_empty() {
            let ws: Vec<String> = self.warnings.iter().map(|w| json_string(w)).collect();
            j.raw("warnings", &format!("[{}]", ws.join(",")));
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
            Item::Rejected(r) => format!(
                "rejected frame at offset {}: {}\n  bytes: {}",
                r.offset,
                r.reason,
                to_hex(&r.bytes)
            ),
            Item::Junk(bytes) => format!("junk ({} bytes): {}", bytes.len(), to_hex(bytes)),
        }
    }

    /// One JSON object; junk is `{"junk":"…hex…"}`, a rejected candidate
    /// `{"rejected":true,"offset":N,"reason":"no_end","message":"…","raw":"…"}`.
    pub fn to_json(&self) -> String {
        match self {
            Item::Frame(d) => d.to_json(),
            Item::Rejected(r) => {
                let mut j = JsonObject::default();
                j.raw("rejected", "true");
                j.raw("offset", &r.offset.to_string());
                j.string("reason", r.reason.code());
                j.string("message", &r.reason.to_string());
                j.string("raw", &to_hex(&r.bytes));
                j.finish()
            }
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
        Value::DateWeekTime { time, weekday } => {
            j.string("value", &time.to_string());
            j.raw("weekday", &weekday.to_string());
        }
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
                Item::Junk(_) | Item::Rejected(_) => None,
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

    /// V01 (read 00000000 from 123456789012) without preamble.
    fn v01() -> Vec<u8> {
        parse_hex("68 12 90 78 56 34 12 68 11 04 33 33 33 33 67 16").unwrap()
    }

    fn rejected(items: &[Item]) -> Vec<&Rejected> {
        items
            .iter()
            .filter_map(|i| match i {
                Item::Rejected(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    /// Fixes the checksum of a frame starting at `bytes[0]` whose 16H is last.
    fn fix_checksum(bytes: &mut [u8]) {
        let n = bytes.len();
        bytes[n - 2] = checksum(&bytes[..n - 2]);
    }

    #[test]
    fn a_wrong_end_byte_is_named_with_its_offset() {
        let mut bytes = parse_hex("FE FE FE FE").unwrap();
        let mut bad = v01();
        bad[15] = 0x17;
        bytes.extend(&bad);
        let items = scan(&bytes);
        let r = rejected(&items);
        assert_eq!(r.len(), 1, "{items:?}");
        assert_eq!(r[0].offset, 4);
        assert_eq!(r[0].reason, Rejection::NoEnd { found: 0x17 });
        assert_eq!(r[0].bytes, bad);
        let json = items.last().unwrap().to_json();
        assert!(
            json.starts_with(r#"{"rejected":true,"offset":4,"reason":"no_end","message":"wrong end byte: 17 where 16 belongs""#),
            "{json}"
        );
    }

    /// `v01()` with its L byte set to `declared` and the checksum the
    /// sender would have computed over what it sent.
    fn v01_with_length(declared: u8) -> Vec<u8> {
        let mut bytes = v01();
        bytes[9] = declared;
        fix_checksum(&mut bytes);
        bytes
    }

    /// Scans `bytes`, whose first rejection must be a length mismatch of
    /// `declared` against v01's four data bytes.
    fn scan_length_mismatch(bytes: &[u8], declared: usize) -> Vec<Item> {
        let items = scan(bytes);
        assert_eq!(
            rejected(&items)[0].reason,
            Rejection::LengthMismatch {
                declared,
                actual: 4
            },
            "{items:?}"
        );
        items
    }

    #[test]
    fn a_length_larger_or_smaller_than_the_data_is_a_mismatch() {
        // L = 5 for four data bytes; the sender's checksum covers what it sent.
        let long = v01_with_length(0x05);
        // Alone (the capture ends where L says one more byte follows) and
        // followed by another frame.
        for tail in [vec![], v01()] {
            let mut bytes = long.clone();
            bytes.extend(&tail);
            let items = scan_length_mismatch(&bytes, 5);
            assert_eq!(frames(&items).len(), usize::from(!tail.is_empty()));
        }
        let items = scan_length_mismatch(&v01_with_length(0x03), 3);
        assert!(
            items[0]
                .to_human()
                .contains("L says 3 data bytes, the frame has 4")
        );
    }

    #[test]
    fn a_missing_second_start_byte_is_named() {
        let mut replaced = v01();
        replaced[7] = 0x00;
        let items = scan(&replaced);
        assert_eq!(
            rejected(&items)[0].reason,
            Rejection::NoSecondStart {
                found: 0x00,
                missing: false
            }
        );
        // Dropped on the way: everything after it a byte early.
        let mut dropped = v01();
        dropped.remove(7);
        let items = scan(&dropped);
        assert_eq!(
            rejected(&items)[0].reason,
            Rejection::NoSecondStart {
                found: 0x11,
                missing: true
            },
            "{items:?}"
        );
        assert_eq!(rejected(&items)[0].bytes.len(), dropped.len());
    }

    #[test]
    fn half_a_frame_is_incomplete_and_a_stray_68_is_just_junk() {
        let items = scan(&v01()[..11]);
        assert_eq!(
            rejected(&items)[0].reason,
            Rejection::Incomplete { needed: 5 }
        );
        assert_eq!(
            items[0].to_json(),
            r#"{"rejected":true,"offset":0,"reason":"incomplete","message":"incomplete: the capture ends at least 5 bytes before the frame does","raw":"68 12 90 78 56 34 12 68 11 04 33"}"#
        );
        // "heartbeat" holds an 'h' (68H) that starts nothing.
        let mut bytes = b"heartbeat".to_vec();
        bytes.extend(v01());
        let items = scan(&bytes);
        assert!(rejected(&items).is_empty(), "{items:?}");
        assert_eq!(frames(&items).len(), 1);
    }

    fn meter() -> crate::Address {
        crate::Address::parse("123456789012").unwrap()
    }

    fn described(frame: &Frame) -> Described {
        let items = scan(&crate::encode(frame));
        frames(&items)[0].clone()
    }

    #[test]
    fn a_read_reply_shorter_than_its_di_needs_is_warned_about() {
        // Voltage takes two bytes; one is sent.
        let short = crate::request::read_reply(meter(), Di::VOLTAGE, &[0x01]).unwrap();
        let d = described(&short);
        assert_eq!(
            d.warnings,
            ["data shorter than DI 02010100 needs: 1 of 2 value bytes"]
        );
        assert!(
            d.to_human()
                .contains("WARNING: data shorter than DI 02010100")
        );
        assert!(
            d.to_json().contains(
                r#""warnings":["data shorter than DI 02010100 needs: 1 of 2 value bytes"]"#
            )
        );
        // Too short to hold even the DI.
        let stub = crate::request::normal_reply(meter(), Function::Read, vec![0x00, 0x01]).unwrap();
        assert_eq!(
            described(&stub).warnings,
            ["read reply too short to carry a DI: 2 data bytes"]
        );
        let fine = crate::request::read_reply(meter(), Di::VOLTAGE, &[0x01, 0x22]).unwrap();
        assert!(described(&fine).warnings.is_empty());
    }

    #[test]
    fn dlt645_1997_frames_are_named_and_decoded() {
        // protocol-notes §1.6: read Ua from 000000000003, and the 100 V reply.
        let request = parse_hex("68 03 00 00 00 00 00 68 01 02 44 E9 03 16").unwrap();
        let items = scan(&request);
        let d = frames(&items)[0];
        assert_eq!(d.protocol, Protocol::Dlt645_1997);
        assert_eq!(d.di_1997, Some(Di1997::VOLTAGE_A));
        assert_eq!(
            d.to_human(),
            "000000000003 C=01 read request DI B611 (phase-A voltage) [DL/T 645-1997]\n  data: 11 B6"
        );
        let reply = parse_hex("68 03 00 00 00 00 00 68 81 04 44 E9 33 34 EC 16").unwrap();
        let items = scan(&reply);
        let json = items[0].to_json();
        assert!(
            json.contains(r#""protocol":"DL/T 645-1997""#)
                && json
                    .contains(r#""di":"B611","di_name":"phase-A voltage","value":100,"unit":"V""#),
            "{json}"
        );
        // 9010 forward active total energy, 1234.56 kWh.
        let energy = Frame::new(
            meter(),
            crate::Control::from_byte(0x81),
            vec![0x10, 0x90, 0x56, 0x34, 0x12, 0x00],
        )
        .unwrap();
        let d = described(&energy);
        assert_eq!(
            d.value.as_ref().map(ToString::to_string).as_deref(),
            Some("1234.56 kWh")
        );
        assert!(
            d.to_human()
                .contains("DI 9010 (forward active total energy) = 1234.56 kWh")
        );
        // A 1997 error reply names the 1997 ERR bits.
        let err = Frame::new(meter(), crate::Control::from_byte(0xC1), vec![0x02]).unwrap();
        assert_eq!(described(&err).error.as_deref(), Some("ERR=02 di_error"));
    }

    #[test]
    fn parameter_and_time_dis_decode_and_unknown_dis_show_hex() {
        let address =
            crate::request::read_reply(meter(), Di::COMM_ADDRESS, &meter().to_wire()).unwrap();
        assert!(
            described(&address)
                .to_human()
                .contains("DI 04000401 (communication address) = 123456789012")
        );
        let number = crate::request::read_reply(
            meter(),
            Di::METER_NUMBER,
            &[0x21, 0x43, 0x65, 0x87, 0x09, 0x20],
        )
        .unwrap();
        let d = described(&number);
        assert!(
            d.to_human()
                .contains("DI 04000402 (meter number) = 200987654321"),
            "{}",
            d.to_human()
        );
        // 0400010C: 2026-12-02 (weekday 3) 14:05:09, wire ss mm hh WW DD MM YY.
        let when = crate::request::read_reply(
            meter(),
            Di::DATE_WEEK_TIME,
            &[0x09, 0x05, 0x14, 0x03, 0x02, 0x12, 0x26],
        )
        .unwrap();
        let d = described(&when);
        assert!(d.warnings.is_empty(), "{:?}", d.warnings);
        assert!(
            d.to_json()
                .contains(r#""value":"2026-12-02 14:05:09","weekday":3"#),
            "{}",
            d.to_json()
        );
        let unknown = crate::request::read_reply(meter(), Di(0x0101_0101), &[0x12, 0x34]).unwrap();
        let d = described(&unknown);
        assert!(d.unknown_di);
        assert!(
            d.to_human()
                .contains("DI 01010101 (unknown DI) = 12 34 (hex, unknown DI)"),
            "{}",
            d.to_human()
        );
        assert!(
            d.to_json()
                .contains(r#""unknown_di":true,"value_hex":"12 34""#),
            "{}",
            d.to_json()
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
