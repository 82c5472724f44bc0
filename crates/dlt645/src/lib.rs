//! Sans-IO DL/T 645-2007 codec: bytes in, frames out. No tokio.
//!
//! The crate is split the way a frame is read:
//! - [`Address`], [`Control`] and [`Frame`] are the link layer; [`encode`] and
//!   [`decode`] turn one frame into bytes and back, [`StreamDecoder`] finds
//!   frames in a TCP byte stream that also carries `FE` preambles, gateway
//!   heartbeats and garbage.
//! - [`Di`] names the data identifiers of the reference meter profile
//!   (`shared/spec/meter-profile.md`), [`value`] holds the typed codecs for
//!   their values (BCD with sign bit, date/time, status word 3, recharge).
//! - [`request`] builds the frames a head-end sends and the replies a meter
//!   sends back; [`describe`] explains captured bytes to a human or as JSON.
//!
//! Frames hold their data **without** the +33H wire offset; the offset is
//! added by [`encode`] and removed by [`decode`], so every other layer works
//! with the plain bytes the standard's tables talk about.
//!
//! All values are integers (hundredths of kWh, tenths of volts, ...), never
//! floats, so that a value read from a meter compares exactly with what the
//! database holds.

// Outside tests a panic is a bug we chose to keep: an `expect` with its
// reason under a local `allow`, or a type that makes the case impossible
// (crates/dormwatt/tests/workspace_lints.rs checks every crate says so).
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod address;
mod control;
pub mod describe;
mod di;
mod error;
mod frame;
pub mod request;
mod stream;
pub mod v1997;
pub mod value;
mod wire;

pub use address::{Address, AddressError};
pub use control::{Control, Function};
pub use di::Di;
pub use error::{DecodeError, ErrorFlags, FrameError, SecurityErrorFlags};
pub use frame::{
    DATA_OFFSET, END, Frame, MAX_DATA_LEN, MIN_FRAME_LEN, PREAMBLE, PREAMBLE_LEN, START, checksum,
    decode, encode, encode_into,
};
pub use stream::{StreamDecoder, StreamStats};
pub use wire::{BITS_PER_BYTE, Baud, wire_time, wire_time_us};
