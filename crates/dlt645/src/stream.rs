//! Finding frames in a byte stream that arrives in arbitrary pieces.

use crate::frame::{Located, frame_at, locate};
use crate::{DecodeError, Frame, PREAMBLE, START};

/// Counters kept by a [`StreamDecoder`], for logs and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Frames returned.
    pub frames: u64,
    /// Errors returned (bad checksum, unknown function).
    pub errors: u64,
    /// Bytes skipped as garbage (heartbeats, registration prefixes, noise);
    /// `FE` preamble bytes are not counted.
    pub skipped_bytes: u64,
    /// Bytes thrown away unread because the buffer was full.
    pub dropped_bytes: u64,
}

/// A resynchronising DL/T 645 frame finder for TCP byte streams.
///
/// Feed it whatever a socket read returns with [`StreamDecoder::push`] and
/// then call [`StreamDecoder::next_frame`] until it returns `None`. It skips
/// any number of `FE`, and after garbage (gateway heartbeats, registration
/// prefixes, line noise) it slides one byte at a time until a whole frame
/// checks out, as protocol-notes §1.5 prescribes.
///
/// Memory is bounded: the buffer never holds more than
/// [`StreamDecoder::CAPACITY`] bytes; when a push would overflow it, the oldest
/// bytes are dropped (counted in [`StreamStats::dropped_bytes`]). A caller that
/// drains after every push never loses anything, since a frame is at most 267
/// bytes long.
#[derive(Debug, Clone, Default)]
pub struct StreamDecoder {
    buf: Vec<u8>,
    /// Bytes before `pos` are consumed; compacted on the next push.
    pos: usize,
    stats: StreamStats,
}

impl StreamDecoder {
    /// The most bytes held at once: room for many maximal frames plus a
    /// 40-byte gateway prefix each, yet small enough to scan cheaply.
    pub const CAPACITY: usize = 4096;

    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.drain(..self.pos);
        self.pos = 0;
        if bytes.len() >= Self::CAPACITY {
            let keep = &bytes[bytes.len() - Self::CAPACITY..];
            self.stats.dropped_bytes += (self.buf.len() + bytes.len() - keep.len()) as u64;
            self.buf.clear();
            self.buf.extend_from_slice(keep);
            return;
        }
        let overflow = (self.buf.len() + bytes.len()).saturating_sub(Self::CAPACITY);
        if overflow > 0 {
            self.buf.drain(..overflow);
            self.stats.dropped_bytes += overflow as u64;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next frame, an error for a frame-shaped run of bytes that fails its
    /// checksum or names an unknown function, or `None` when more bytes are
    /// needed. Garbage is skipped silently (see [`StreamDecoder::stats`]).
    pub fn next_frame(&mut self) -> Option<Result<Frame, DecodeError>> {
        loop {
            let rest = &self.buf[self.pos..];
            let Some(start) = rest.iter().position(|&b| b == START) else {
                self.skip(rest.len());
                return None;
            };
            self.skip(start);
            match locate(&self.buf[self.pos..]) {
                Ok(found) if found.checksum_ok => return Some(self.take(found)),
                Ok(found) => {
                    // Slide one byte only: the real frame may start inside
                    // this false one (a heartbeat that happens to hold 68H).
                    self.skip(1);
                    self.stats.errors += 1;
                    return Some(Err(DecodeError::BadChecksum {
                        found: found.found,
                        computed: found.computed,
                    }));
                }
                Err(DecodeError::Incomplete { .. }) => {
                    // A stray 68H followed by a large L would otherwise hold
                    // back a real frame until L bytes arrive: if a complete
                    // frame already sits further on, the candidate was garbage.
                    let later = self.complete_frame_after(self.pos + 1)?;
                    self.skip(later - self.pos);
                }
                Err(_) => self.skip(1),
            }
        }
    }

    /// Discards everything buffered, e.g. after a request timed out, so that
    /// a late reply fragment cannot pair with the next request.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.pos = 0;
    }

    /// How many unconsumed bytes are buffered.
    pub fn buffered_len(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The counters so far.
    pub fn stats(&self) -> StreamStats {
        self.stats
    }

    fn take(&mut self, found: Located) -> Result<Frame, DecodeError> {
        // `found` is relative to `pos`.
        let frame = frame_at(&self.buf[self.pos..], &found);
        self.pos += found.end;
        match frame.function() {
            Some(_) => {
                self.stats.frames += 1;
                Ok(frame)
            }
            None => {
                self.stats.errors += 1;
                Err(DecodeError::UnknownFunction {
                    code: frame.control().function_code(),
                    control: frame.control().byte(),
                })
            }
        }
    }

    /// Index of the first 68H at or after `from` that begins a complete frame
    /// with a good checksum.
    fn complete_frame_after(&self, from: usize) -> Option<usize> {
        (from..self.buf.len()).find(|&i| {
            self.buf[i] == START && matches!(locate(&self.buf[i..]), Ok(f) if f.checksum_ok)
        })
    }

    fn skip(&mut self, n: usize) {
        let skipped = &self.buf[self.pos..self.pos + n];
        self.stats.skipped_bytes += skipped.iter().filter(|&&b| b != PREAMBLE).count() as u64;
        self.pos += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Address, Di, encode, request::read_request};

    fn frame(n: u8) -> Frame {
        let address = Address::parse(&format!("1234567890{n:02}")).unwrap();
        read_request(address, Di::REMAINING_ENERGY)
    }

    fn drain(decoder: &mut StreamDecoder) -> Vec<Result<Frame, DecodeError>> {
        std::iter::from_fn(|| decoder.next_frame()).collect()
    }

    #[test]
    fn byte_by_byte_with_garbage_between() {
        let mut stream = b"www.usr.cn".to_vec(); // a registration prefix
        stream.extend(encode(&frame(1)));
        stream.extend([0x68, 0x00, 0x16, 0x68]); // noise that looks like frame edges
        stream.extend(encode(&frame(2)));
        stream.extend(b"heartbeat");
        let mut decoder = StreamDecoder::new();
        let mut frames = Vec::new();
        for &b in &stream {
            decoder.push(&[b]);
            frames.extend(drain(&mut decoder));
        }
        let frames: Vec<Frame> = frames.into_iter().filter_map(Result::ok).collect();
        assert_eq!(frames, [frame(1), frame(2)]);
        // "heartbeat" starts with 'h' = 68H, so it stays buffered as a
        // possible frame start until more bytes prove otherwise.
        assert_eq!(decoder.stats().skipped_bytes, 10 + 4);
        assert_eq!(decoder.buffered_len(), 9);
        assert_eq!(decoder.stats().frames, 2);
    }

    #[test]
    fn stray_start_with_large_length_does_not_hold_back_a_frame() {
        // 68 + 6 bytes + 68 + C + L=FF: a candidate wanting 267 bytes.
        let mut stream = vec![0x68, 1, 2, 3, 4, 5, 6, 0x68, 0x91, 0xFF];
        stream.extend(encode(&frame(3)));
        let mut decoder = StreamDecoder::new();
        decoder.push(&stream);
        assert_eq!(decoder.next_frame(), Some(Ok(frame(3))));
        assert_eq!(decoder.next_frame(), None);
    }

    #[test]
    fn largest_frame_byte_by_byte() {
        let address = Address::parse("123456789012").unwrap();
        // Plain 35H is 68H on the wire: every data byte looks like a start.
        let big = crate::request::read_reply(address, Di::VOLTAGE, &[0x35; 251]).unwrap();
        assert_eq!(big.data().len(), 255);
        let mut decoder = StreamDecoder::new();
        let mut got = Vec::new();
        for &b in encode(&big).iter().chain(encode(&big).iter()) {
            decoder.push(&[b]);
            got.extend(drain(&mut decoder));
        }
        assert_eq!(got, [Ok(big.clone()), Ok(big)]);
    }

    #[test]
    fn bad_checksum_is_reported_then_skipped() {
        let mut bad = encode(&frame(4));
        let cs = bad.len() - 2;
        bad[cs] ^= 0xFF;
        bad.extend(encode(&frame(5)));
        let mut decoder = StreamDecoder::new();
        decoder.push(&bad);
        assert!(matches!(
            decoder.next_frame(),
            Some(Err(DecodeError::BadChecksum { .. }))
        ));
        assert_eq!(decoder.next_frame(), Some(Ok(frame(5))));
        assert_eq!(decoder.next_frame(), None);
        assert_eq!(decoder.stats().errors, 1);
    }

    #[test]
    fn buffer_is_bounded() {
        let mut decoder = StreamDecoder::new();
        for _ in 0..10 {
            decoder.push(&[0x68; 1000]);
            assert!(decoder.buffered_len() <= StreamDecoder::CAPACITY);
        }
        decoder.push(&vec![0x00; 3 * StreamDecoder::CAPACITY]);
        assert!(decoder.buffered_len() <= StreamDecoder::CAPACITY);
        assert!(decoder.stats().dropped_bytes > 0);
        assert_eq!(decoder.next_frame(), None);
        assert_eq!(decoder.buffered_len(), 0);
        // Still works afterwards.
        decoder.push(&encode(&frame(6)));
        assert_eq!(decoder.next_frame(), Some(Ok(frame(6))));
    }
}
