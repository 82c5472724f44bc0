//! One frame: `[FE…] 68 A0..A5 68 C L DATA CS 16`.

use crate::{
    Address, Control, DecodeError, Di, ErrorFlags, FrameError, Function, SecurityErrorFlags,
};

/// The wake-up preamble byte.
pub const PREAMBLE: u8 = 0xFE;
/// How many preamble bytes masters send before a frame (protocol-notes §1.1).
pub const PREAMBLE_LEN: usize = 4;
/// The start byte, sent twice: before and after the address.
pub const START: u8 = 0x68;
/// The end byte.
pub const END: u8 = 0x16;
/// Added to every data byte on the wire (mod 256), subtracted on receipt.
pub const DATA_OFFSET: u8 = 0x33;
/// L is one byte.
pub const MAX_DATA_LEN: usize = 255;
/// A frame without preamble and without data: 68 + 6 + 68 + C + L + CS + 16.
pub const MIN_FRAME_LEN: usize = 12;

/// A DL/T 645-2007 frame with its data field in plain form (the +33H wire
/// offset already removed).
///
/// The fields are private so that a `Frame` always fits on the wire (at most
/// 255 data bytes); build one with [`Frame::new`] or the builders in
/// [`crate::request`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Frame {
    address: Address,
    control: Control,
    data: Vec<u8>,
}

impl Frame {
    /// A frame from its parts; `data` is plain (without the +33H offset).
    pub fn new(address: Address, control: Control, data: Vec<u8>) -> Result<Frame, FrameError> {
        if data.len() > MAX_DATA_LEN {
            return Err(FrameError::DataTooLong(data.len()));
        }
        Ok(Frame {
            address,
            control,
            data,
        })
    }

    /// The meter address (the addressee of a request, the sender of a reply).
    pub const fn address(&self) -> Address {
        self.address
    }

    /// The control byte.
    pub const fn control(&self) -> Control {
        self.control
    }

    /// The plain data field (without the +33H offset).
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Takes the plain data field out of the frame.
    pub fn into_data(self) -> Vec<u8> {
        self.data
    }

    /// The function, or `None` for an unknown code (only possible for frames
    /// built by hand or shown by [`crate::describe`]; [`decode`] rejects them).
    pub fn function(&self) -> Option<Function> {
        self.control.function()
    }

    /// The data identifier, for the frames whose data field starts with one:
    /// read requests and normal read replies, follow-up reads, writes,
    /// password changes and 03H security commands and their normal replies.
    /// `None` for abnormal replies and the other functions.
    pub fn di(&self) -> Option<Di> {
        if self.control.is_abnormal() {
            return None;
        }
        let carries_di = matches!(
            self.function(),
            Some(
                Function::Read
                    | Function::ReadFollowUp
                    | Function::Write
                    | Function::ChangePassword
                    | Function::Security
            )
        );
        // A write's normal reply has L = 0 and so no DI.
        if !carries_di || self.data.len() < 4 {
            return None;
        }
        Di::from_le_bytes(&self.data[..4])
    }

    /// The data after the 4-byte DI (for frames where [`Frame::di`] is `Some`),
    /// otherwise the whole data field.
    pub fn payload(&self) -> &[u8] {
        if self.di().is_some() {
            &self.data[4..]
        } else {
            &self.data
        }
    }

    /// The ERR byte of an abnormal reply to anything but a 03H command.
    pub fn error_flags(&self) -> Option<ErrorFlags> {
        let c = self.control;
        if !(c.is_reply() && c.is_abnormal()) || self.function() == Some(Function::Security) {
            return None;
        }
        self.data.first().map(|&b| ErrorFlags(b))
    }

    /// The 2-byte SERR word of an abnormal reply to a 03H command.
    pub fn security_error(&self) -> Option<SecurityErrorFlags> {
        let c = self.control;
        if !(c.is_reply() && c.is_abnormal()) || self.function() != Some(Function::Security) {
            return None;
        }
        match self.data[..] {
            [lo, hi, ..] => Some(SecurityErrorFlags(u16::from_le_bytes([lo, hi]))),
            // One-byte SERR seen from firmware that answers 03H like other
            // commands: keep the bits rather than dropping the error.
            [lo] => Some(SecurityErrorFlags(u16::from(lo))),
            [] => None,
        }
    }

    /// Whether `self` is a reply to `request` by the checks of protocol-notes
    /// §1.5: the reply bit is set and the function matches; the address equals
    /// the polled one unless the request used wildcard bytes (then it must
    /// match the pattern); a normal reply that carries a DI echoes the
    /// request's DI. Abnormal replies carry no DI, so only the first two apply.
    pub fn is_reply_to(&self, request: &Frame) -> bool {
        if !self.control.answers(request.control) {
            return false;
        }
        let address_ok = if request.address.has_wildcard() {
            request.address.matches(self.address)
        } else {
            self.address == request.address
        };
        let di_ok = match (self.di(), request.di()) {
            (Some(reply), Some(asked)) => reply == asked,
            _ => true,
        };
        address_ok && di_ok
    }

    /// Length on the wire without preamble.
    pub fn wire_len(&self) -> usize {
        MIN_FRAME_LEN + self.data.len()
    }
}

/// The checksum: the sum mod 256 of the bytes from the first 68H up to the
/// byte before CS (the preamble is excluded).
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |sum, &b| sum.wrapping_add(b))
}

/// Encodes `frame` with the standard four-byte `FE` preamble that masters
/// send; this is the form of every vector in protocol-notes §5.
pub fn encode(frame: &Frame) -> Vec<u8> {
    let mut out = Vec::with_capacity(PREAMBLE_LEN + frame.wire_len());
    encode_into(frame, PREAMBLE_LEN, &mut out);
    out
}

/// Appends `frame` to `out` after `preamble_len` `FE` bytes (meters send 0
/// to 4; use 0 for the bare frame).
pub fn encode_into(frame: &Frame, preamble_len: usize, out: &mut Vec<u8>) {
    out.reserve(preamble_len + frame.wire_len());
    out.extend(std::iter::repeat_n(PREAMBLE, preamble_len));
    let start = out.len();
    out.push(START);
    out.extend_from_slice(&frame.address.to_wire());
    out.push(START);
    out.push(frame.control.byte());
    // Frame::new guarantees at most MAX_DATA_LEN bytes.
    out.push(u8::try_from(frame.data.len()).unwrap_or(u8::MAX));
    out.extend(frame.data.iter().map(|b| b.wrapping_add(DATA_OFFSET)));
    let cs = checksum(&out[start..]);
    out.push(cs);
    out.push(END);
}

/// Where a structurally complete frame sits in a buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Located {
    /// Index of the first 68H.
    pub start: usize,
    /// Bytes from the start of the buffer to just past the 16H.
    pub end: usize,
    /// Whether the checksum byte matches.
    pub checksum_ok: bool,
    /// The checksum byte in the frame.
    pub found: u8,
    /// The checksum computed from the bytes.
    pub computed: u8,
}

/// Checks the frame structure at the start of `buf` (after any `FE`):
/// both start bytes, the length, the end byte. The checksum is reported,
/// not enforced, so that [`crate::describe`] can show damaged frames.
pub(crate) fn locate(buf: &[u8]) -> Result<Located, DecodeError> {
    let start = buf.iter().take_while(|&&b| b == PREAMBLE).count();
    let frame = &buf[start..];
    match frame.first() {
        None => {
            return Err(DecodeError::Incomplete {
                needed: MIN_FRAME_LEN,
            });
        }
        Some(&START) => {}
        Some(&found) => return Err(DecodeError::NoStart { found }),
    }
    if frame.len() < 10 {
        return Err(DecodeError::Incomplete {
            needed: MIN_FRAME_LEN - frame.len(),
        });
    }
    if frame[7] != START {
        return Err(DecodeError::NoSecondStart { found: frame[7] });
    }
    let total = MIN_FRAME_LEN + usize::from(frame[9]);
    if frame.len() < total {
        return Err(DecodeError::Incomplete {
            needed: total - frame.len(),
        });
    }
    if frame[total - 1] != END {
        return Err(DecodeError::NoEnd {
            found: frame[total - 1],
        });
    }
    let found = frame[total - 2];
    let computed = checksum(&frame[..total - 2]);
    Ok(Located {
        start,
        end: start + total,
        checksum_ok: found == computed,
        found,
        computed,
    })
}

/// Builds the frame at `located`, whatever its checksum or function code.
pub(crate) fn frame_at(buf: &[u8], located: &Located) -> Frame {
    let frame = &buf[located.start..located.end];
    let mut address = [0u8; 6];
    address.copy_from_slice(&frame[1..7]);
    let data = frame[10..frame.len() - 2]
        .iter()
        .map(|b| b.wrapping_sub(DATA_OFFSET))
        .collect();
    Frame {
        address: Address::from_wire(address),
        control: Control::from_byte(frame[8]),
        data,
    }
}

/// Decodes one frame at the start of `buf`, skipping any number of leading
/// `FE`. Returns the frame and the number of bytes consumed (preamble
/// included), so the caller can continue after it.
///
/// Strict: the first non-`FE` byte must be 68H, and the checksum, end byte and
/// function code must be right. For byte streams with garbage between frames
/// use [`crate::StreamDecoder`].
pub fn decode(buf: &[u8]) -> Result<(Frame, usize), DecodeError> {
    let located = locate(buf)?;
    if !located.checksum_ok {
        return Err(DecodeError::BadChecksum {
            found: located.found,
            computed: located.computed,
        });
    }
    let frame = frame_at(buf, &located);
    if frame.function().is_none() {
        return Err(DecodeError::UnknownFunction {
            code: frame.control.function_code(),
            control: frame.control.byte(),
        });
    }
    Ok((frame, located.end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v01() -> Vec<u8> {
        vec![
            0xFE, 0xFE, 0xFE, 0xFE, 0x68, 0x12, 0x90, 0x78, 0x56, 0x34, 0x12, 0x68, 0x11, 0x04,
            0x33, 0x33, 0x33, 0x33, 0x67, 0x16,
        ]
    }

    #[test]
    fn decodes_and_reencodes_v01() {
        let bytes = v01();
        let (frame, used) = decode(&bytes).unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(frame.address().to_string(), "123456789012");
        assert_eq!(frame.di(), Some(Di::COMBINED_ACTIVE_ENERGY));
        assert_eq!(encode(&frame), bytes);
    }

    #[test]
    fn typed_errors() {
        let mut bad = v01();
        bad[18] = 0x68;
        assert_eq!(
            decode(&bad),
            Err(DecodeError::BadChecksum {
                found: 0x68,
                computed: 0x67
            })
        );
        let mut bad = v01();
        bad[19] = 0x17;
        assert_eq!(decode(&bad), Err(DecodeError::NoEnd { found: 0x17 }));
        assert_eq!(
            decode(&v01()[..10]),
            Err(DecodeError::Incomplete { needed: 6 })
        );
        assert_eq!(
            decode(&v01()[..19]),
            Err(DecodeError::Incomplete { needed: 1 })
        );
        assert_eq!(
            decode(&[0xFE, 0x00]),
            Err(DecodeError::NoStart { found: 0x00 })
        );
        let mut bad = v01();
        bad[11] = 0x00;
        assert_eq!(
            decode(&bad),
            Err(DecodeError::NoSecondStart { found: 0x00 })
        );
        // Function 05 is not DL/T 645-2007; fix up the checksum so only C is wrong.
        let mut bad = v01();
        bad[12] = 0x05;
        bad[18] = checksum(&bad[4..18]);
        assert_eq!(
            decode(&bad),
            Err(DecodeError::UnknownFunction {
                code: 0x05,
                control: 0x05
            })
        );
    }

    #[test]
    fn reply_matching() {
        use crate::request::{error_reply, read_address_request, read_reply, read_request};
        let meter = Address::parse("123456789012").unwrap();
        let other = Address::parse("123456789013").unwrap();
        let request = read_request(meter, Di::VOLTAGE);
        assert!(
            read_reply(meter, Di::VOLTAGE, &[0x01, 0x22])
                .unwrap()
                .is_reply_to(&request)
        );
        assert!(
            !read_reply(other, Di::VOLTAGE, &[0x01, 0x22])
                .unwrap()
                .is_reply_to(&request)
        );
        assert!(
            !read_reply(meter, Di::CURRENT, &[0; 3])
                .unwrap()
                .is_reply_to(&request)
        );
        assert!(error_reply(meter, Function::Read, ErrorFlags::NO_DATA).is_reply_to(&request));
        assert!(!error_reply(meter, Function::Write, ErrorFlags::NO_DATA).is_reply_to(&request));
        assert!(!request.is_reply_to(&request));
        let address_reply =
            crate::request::normal_reply(meter, Function::ReadAddress, meter.to_wire().to_vec())
                .unwrap();
        assert!(address_reply.is_reply_to(&read_address_request()));
    }

    #[test]
    fn too_long_data_is_refused() {
        let err = Frame::new(Address::BROADCAST, Control::from_byte(0x11), vec![0; 256]);
        assert_eq!(err, Err(FrameError::DataTooLong(256)));
        assert!(Frame::new(Address::BROADCAST, Control::from_byte(0x11), vec![0; 255]).is_ok());
    }
}
