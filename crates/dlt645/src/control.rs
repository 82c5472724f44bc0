//! The control byte C: direction, abnormal flag, follow-up flag, function.

use std::fmt;

/// DL/T 645-2007 function codes (control byte bits D4..D0), protocol-notes §1.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Function {
    /// 03H security authentication; the reference profile's recharge (DI 070102FF).
    Security = 0x03,
    /// 08H broadcast time (to 99…99, never answered).
    BroadcastTime = 0x08,
    /// 11H read data.
    Read = 0x11,
    /// 12H read follow-up data.
    ReadFollowUp = 0x12,
    /// 13H read communication address (AA×6, one meter per bus).
    ReadAddress = 0x13,
    /// 14H write data.
    Write = 0x14,
    /// 15H write communication address.
    WriteAddress = 0x15,
    /// 16H freeze.
    Freeze = 0x16,
    /// 17H change baud rate.
    ChangeBaud = 0x17,
    /// 18H change password.
    ChangePassword = 0x18,
    /// 19H maximum-demand clear.
    ClearDemand = 0x19,
    /// 1AH meter clear.
    ClearMeter = 0x1A,
    /// 1BH event clear.
    ClearEvents = 0x1B,
    /// 1CH trip / close / alarm / keep-power control.
    RelayControl = 0x1C,
    /// 1DH multi-function terminal output.
    MultiFunctionOutput = 0x1D,
}

impl Function {
    /// Every function code this codec knows, for tables and property tests.
    pub const ALL: [Function; 15] = [
        Function::Security,
        Function::BroadcastTime,
        Function::Read,
        Function::ReadFollowUp,
        Function::ReadAddress,
        Function::Write,
        Function::WriteAddress,
        Function::Freeze,
        Function::ChangeBaud,
        Function::ChangePassword,
        Function::ClearDemand,
        Function::ClearMeter,
        Function::ClearEvents,
        Function::RelayControl,
        Function::MultiFunctionOutput,
    ];

    /// The 5-bit code.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The function for a 5-bit code, if the codec knows it.
    pub fn from_code(code: u8) -> Option<Function> {
        Self::ALL.into_iter().find(|f| f.code() == code)
    }

    /// A short English name, used by [`crate::describe`] and the JSON output.
    pub const fn name(self) -> &'static str {
        match self {
            Function::Security => "security",
            Function::BroadcastTime => "broadcast_time",
            Function::Read => "read",
            Function::ReadFollowUp => "read_follow_up",
            Function::ReadAddress => "read_address",
            Function::Write => "write",
            Function::WriteAddress => "write_address",
            Function::Freeze => "freeze",
            Function::ChangeBaud => "change_baud",
            Function::ChangePassword => "change_password",
            Function::ClearDemand => "clear_demand",
            Function::ClearMeter => "clear_meter",
            Function::ClearEvents => "clear_events",
            Function::RelayControl => "relay_control",
            Function::MultiFunctionOutput => "multi_function_output",
        }
    }
}

/// The control byte C.
///
/// Any byte is representable so that captures with unknown function codes can
/// still be shown; [`crate::decode`] rejects unknown functions.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Control(u8);

impl Control {
    /// D7: set on frames from the meter.
    pub const REPLY_BIT: u8 = 0x80;
    /// D6: set on abnormal (error) replies.
    pub const ABNORMAL_BIT: u8 = 0x40;
    /// D5: set when follow-up frames exist.
    pub const FOLLOW_UP_BIT: u8 = 0x20;
    /// D4..D0.
    pub const FUNCTION_MASK: u8 = 0x1F;

    /// Wraps a raw control byte.
    pub const fn from_byte(byte: u8) -> Self {
        Control(byte)
    }

    /// The raw byte.
    pub const fn byte(self) -> u8 {
        self.0
    }

    /// The control byte of a master's request for `function`.
    pub const fn request(function: Function) -> Self {
        Control(function.code())
    }

    /// The control byte of a meter's normal reply for `function` (e.g. 91H).
    pub const fn normal_reply(function: Function) -> Self {
        Control(function.code() | Self::REPLY_BIT)
    }

    /// The control byte of a meter's abnormal reply for `function` (e.g. D1H).
    pub const fn abnormal_reply(function: Function) -> Self {
        Control(function.code() | Self::REPLY_BIT | Self::ABNORMAL_BIT)
    }

    /// The same control byte with the follow-up flag set (e.g. 91H → B1H).
    pub const fn with_follow_up(self) -> Self {
        Control(self.0 | Self::FOLLOW_UP_BIT)
    }

    /// The 5-bit function code, known or not.
    pub const fn function_code(self) -> u8 {
        self.0 & Self::FUNCTION_MASK
    }

    /// The function, or `None` for codes this codec does not know.
    pub fn function(self) -> Option<Function> {
        Function::from_code(self.function_code())
    }

    /// Whether the frame comes from a meter (D7).
    pub const fn is_reply(self) -> bool {
        self.0 & Self::REPLY_BIT != 0
    }

    /// Whether this is an abnormal reply (D6).
    pub const fn is_abnormal(self) -> bool {
        self.0 & Self::ABNORMAL_BIT != 0
    }

    /// Whether follow-up frames exist (D5).
    pub const fn has_follow_up(self) -> bool {
        self.0 & Self::FOLLOW_UP_BIT != 0
    }

    /// Whether `self` is a plausible reply to a request with control `request`:
    /// same function, reply bit set. Protocol-notes §1.5 asks for this check.
    pub const fn answers(self, request: Control) -> bool {
        self.is_reply() && self.function_code() == request.function_code()
    }
}

impl fmt::Debug for Control {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Control({:02X})", self.0)
    }
}

impl fmt::Display for Control {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02X}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits() {
        let c = Control::from_byte(0xB1);
        assert!(c.is_reply() && c.has_follow_up() && !c.is_abnormal());
        assert_eq!(c.function(), Some(Function::Read));
        assert_eq!(Control::normal_reply(Function::Read).byte(), 0x91);
        assert_eq!(Control::abnormal_reply(Function::RelayControl).byte(), 0xDC);
        assert_eq!(
            Control::normal_reply(Function::Read)
                .with_follow_up()
                .byte(),
            0xB1
        );
        assert!(Control::from_byte(0xD1).answers(Control::request(Function::Read)));
        assert!(!Control::from_byte(0x11).answers(Control::request(Function::Read)));
        assert_eq!(Control::from_byte(0x05).function(), None);
    }

    #[test]
    fn every_code_round_trips() {
        for f in Function::ALL {
            assert_eq!(Function::from_code(f.code()), Some(f));
            assert_eq!(Control::request(f).function(), Some(f));
        }
    }
}
