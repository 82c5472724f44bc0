//! Builders for the frames a head-end sends and the replies a meter sends.
//!
//! Builders whose data always fits (at most 255 bytes) return a [`Frame`];
//! those that take caller-sized data return `Result`.

use crate::value::{
    MeterDateTime, OperatorCode, Password, Recharge, RechargeReply, RelayControl, WriteData,
};
use crate::{
    Address, Baud, Control, Di, ErrorFlags, Frame, FrameError, Function, SecurityErrorFlags,
};

/// A frame whose data is known to fit: the callers below pass at most a few
/// dozen bytes, so the length check cannot fail.
fn small(address: Address, control: Control, data: Vec<u8>) -> Frame {
    debug_assert!(data.len() <= crate::MAX_DATA_LEN);
    Frame::new(address, control, data).unwrap_or_else(|_| unreachable!("small data fits L"))
}

/// 11H: read `di` from the meter at `address`.
pub fn read_request(address: Address, di: Di) -> Frame {
    small(
        address,
        Control::request(Function::Read),
        di.to_le_bytes().to_vec(),
    )
}

/// 12H: read follow-up frame `seq` of `di`.
pub fn read_follow_up_request(address: Address, di: Di, seq: u8) -> Frame {
    let mut data = di.to_le_bytes().to_vec();
    data.push(seq);
    small(address, Control::request(Function::ReadFollowUp), data)
}

/// 13H: read the address of the only meter on the bus (AA×6, L = 0).
pub fn read_address_request() -> Frame {
    small(
        Address::WILDCARD,
        Control::request(Function::ReadAddress),
        Vec::new(),
    )
}

/// 14H: write `value` (already encoded in the DI's format) to `di`.
pub fn write_request(address: Address, write: &WriteData) -> Result<Frame, FrameError> {
    Frame::new(address, Control::request(Function::Write), write.to_wire())
}

/// 15H: set the address of the only meter on the bus to `new_address`.
pub fn write_address_request(new_address: Address) -> Frame {
    small(
        Address::WILDCARD,
        Control::request(Function::WriteAddress),
        new_address.to_wire().to_vec(),
    )
}

/// 08H: broadcast time `ss mm hh DD MM YY` to 99…99 (no meter replies).
pub fn broadcast_time_request(time: MeterDateTime) -> Frame {
    small(
        Address::BROADCAST,
        Control::request(Function::BroadcastTime),
        time.to_wire_seconds().to_vec(),
    )
}

/// 16H: freeze. `when` is the four plain bytes `mm hh DD MM` (99 = every);
/// pass [`Address::BROADCAST`] for the unanswered broadcast form.
pub fn freeze_request(address: Address, when: [u8; 4]) -> Frame {
    small(address, Control::request(Function::Freeze), when.to_vec())
}

/// 17H: change the baud rate (feature byte Z as a bit field).
pub fn change_baud_request(address: Address, baud: Baud) -> Frame {
    small(
        address,
        Control::request(Function::ChangeBaud),
        vec![baud.feature_byte()],
    )
}

/// 18H: change the password of `new.level`: DI 04000C(level+1) + old + new.
pub fn change_password_request(
    address: Address,
    old: Password,
    new: Password,
) -> Result<Frame, FrameError> {
    let di = Di::password(new.level).ok_or_else(|| {
        FrameError::OutOfRange(format!("password level {} is not 0..=9", new.level))
    })?;
    let mut data = di.to_le_bytes().to_vec();
    data.extend(old.to_wire());
    data.extend(new.to_wire());
    Ok(small(
        address,
        Control::request(Function::ChangePassword),
        data,
    ))
}

/// 19H / 1AH: maximum-demand clear or meter clear: `PA P0P1P2 | C0..C3`.
/// `function` must be [`Function::ClearDemand`] or [`Function::ClearMeter`].
pub fn clear_request(
    address: Address,
    function: Function,
    password: Password,
    operator: OperatorCode,
) -> Result<Frame, FrameError> {
    if !matches!(function, Function::ClearDemand | Function::ClearMeter) {
        return Err(FrameError::OutOfRange(format!(
            "{} is not a clear command",
            function.name()
        )));
    }
    let mut data = password.to_wire().to_vec();
    data.extend(operator.to_wire());
    Ok(small(address, Control::request(function), data))
}

/// 1BH: event clear: `PA P0P1P2 | C0..C3 | DI` (FFFFFFFF = all events).
pub fn clear_events_request(
    address: Address,
    password: Password,
    operator: OperatorCode,
    events: Di,
) -> Frame {
    let mut data = password.to_wire().to_vec();
    data.extend(operator.to_wire());
    data.extend(events.to_le_bytes());
    small(address, Control::request(Function::ClearEvents), data)
}

/// 1CH: relay control (trip, close, alarm, keep-power).
pub fn relay_request(address: Address, control: &RelayControl) -> Frame {
    small(
        address,
        Control::request(Function::RelayControl),
        control.to_wire(),
    )
}

/// 03H: the reference profile's plain-text recharge.
pub fn recharge_request(address: Address, recharge: &Recharge) -> Result<Frame, FrameError> {
    Ok(small(
        address,
        Control::request(Function::Security),
        recharge.to_wire()?,
    ))
}

/// A normal reply to `function` with `data` (e.g. 91H with DI + value,
/// 94H/9CH with no data).
pub fn normal_reply(
    address: Address,
    function: Function,
    data: Vec<u8>,
) -> Result<Frame, FrameError> {
    Frame::new(address, Control::normal_reply(function), data)
}

/// 91H: the normal reply to a read of `di` with the encoded `value`.
pub fn read_reply(address: Address, di: Di, value: &[u8]) -> Result<Frame, FrameError> {
    let mut data = di.to_le_bytes().to_vec();
    data.extend_from_slice(value);
    normal_reply(address, Function::Read, data)
}

/// An abnormal reply with the one-byte ERR (e.g. D1H, DCH).
pub fn error_reply(address: Address, function: Function, err: ErrorFlags) -> Frame {
    small(address, Control::abnormal_reply(function), vec![err.0])
}

/// C3H: the abnormal reply to a 03H command, with the two-byte SERR.
pub fn security_error_reply(address: Address, serr: SecurityErrorFlags) -> Frame {
    small(
        address,
        Control::abnormal_reply(Function::Security),
        serr.to_le_bytes().to_vec(),
    )
}

/// 83H: the normal reply to a recharge.
pub fn recharge_reply(address: Address, reply: &RechargeReply) -> Result<Frame, FrameError> {
    normal_reply(address, Function::Security, reply.to_wire()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_set_control_and_data() {
        let a = Address::parse("123456789012").unwrap();
        assert_eq!(read_request(a, Di::VOLTAGE).control().byte(), 0x11);
        assert_eq!(read_address_request().address(), Address::WILDCARD);
        assert_eq!(change_baud_request(a, Baud::B9600).data(), [0x20]);
        let pw = Password {
            level: 2,
            code: 0x123456,
        };
        let f = change_password_request(
            a,
            pw,
            Password {
                level: 4,
                code: 0x111111,
            },
        )
        .unwrap();
        assert_eq!(f.di(), Some(Di(0x0400_0C05)));
        assert!(clear_request(a, Function::Read, pw, OperatorCode(0)).is_err());
        assert_eq!(
            clear_request(a, Function::ClearMeter, pw, OperatorCode(0))
                .unwrap()
                .data()
                .len(),
            8
        );
        let f = security_error_reply(a, SecurityErrorFlags::REPEAT_RECHARGE);
        assert_eq!(f.control().byte(), 0xC3);
        assert_eq!(
            f.security_error(),
            Some(SecurityErrorFlags::REPEAT_RECHARGE)
        );
        let f = error_reply(a, Function::Read, ErrorFlags::NO_DATA);
        assert_eq!(f.error_flags(), Some(ErrorFlags::NO_DATA));
        assert_eq!(f.di(), None);
        assert!(read_reply(a, Di::VOLTAGE, &[0; 252]).is_err());
    }
}
