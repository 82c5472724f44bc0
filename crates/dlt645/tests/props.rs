//! Property tests: round trips through every codec layer, and random bytes
//! that must never panic the decoders or grow their memory.

use dlt645::describe::{Item, scan};
use dlt645::value::{
    Bcd, MeterDateTime, OperatorCode, Password, Recharge, RechargeReply, RelayCommand,
    RelayControl, StatusWord3,
};
use dlt645::{Address, Control, Frame, Function, StreamDecoder, decode, encode_into};
use proptest::prelude::*;

fn address() -> impl Strategy<Value = Address> {
    any::<[u8; 6]>().prop_map(Address::from_wire)
}

fn control() -> impl Strategy<Value = Control> {
    (
        proptest::sample::select(Function::ALL.to_vec()),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(f, reply, abnormal, follow)| {
            let mut byte = f.code();
            if reply {
                byte |= Control::REPLY_BIT;
            }
            if abnormal {
                byte |= Control::ABNORMAL_BIT;
            }
            if follow {
                byte |= Control::FOLLOW_UP_BIT;
            }
            Control::from_byte(byte)
        })
}

fn frame() -> impl Strategy<Value = Frame> {
    (
        address(),
        control(),
        proptest::collection::vec(any::<u8>(), 0..=255),
    )
        .prop_map(|(a, c, d)| Frame::new(a, c, d).expect("at most 255 bytes"))
}

fn date_time() -> impl Strategy<Value = MeterDateTime> {
    (
        2000u16..=2099,
        1u8..=12,
        1u8..=31,
        0u8..24,
        0u8..60,
        0u8..60,
    )
        .prop_filter_map("real dates only", |(y, mo, d, h, mi, s)| {
            MeterDateTime::new(y, mo, d, h, mi, s).ok()
        })
}

/// Bytes that can never start a frame, so a stream of frames and this junk
/// must decode to exactly the frames.
fn junk() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        any::<u8>().prop_filter("not a start byte", |b| *b != 0x68),
        0..50,
    )
}

proptest! {
    #[test]
    fn frames_round_trip(frame in frame(), preamble in 0usize..=4) {
        let mut bytes = Vec::new();
        encode_into(&frame, preamble, &mut bytes);
        let (decoded, used) = decode(&bytes).expect("own encoding decodes");
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(decoded, frame);
    }

    #[test]
    fn stream_recovers_every_frame_through_junk_and_any_split(
        parts in proptest::collection::vec((junk(), frame(), 0usize..=4), 1..8),
        tail in junk(),
        cuts in proptest::collection::vec(1usize..64, 1..40),
    ) {
        let mut stream = Vec::new();
        for (junk, frame, preamble) in &parts {
            stream.extend_from_slice(junk);
            encode_into(frame, *preamble, &mut stream);
        }
        stream.extend_from_slice(&tail);
        let mut decoder = StreamDecoder::new();
        let mut got = Vec::new();
        let mut rest = &stream[..];
        let mut cut = cuts.iter().cycle();
        while !rest.is_empty() {
            let n = (*cut.next().expect("cycle")).min(rest.len());
            decoder.push(&rest[..n]);
            rest = &rest[n..];
            while let Some(item) = decoder.next_frame() {
                got.push(item.expect("no false frames in 68-free junk"));
            }
        }
        let want: Vec<Frame> = parts.into_iter().map(|(_, f, _)| f).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn random_bytes_never_panic_or_grow_the_stream_decoder(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 0..20),
    ) {
        let mut decoder = StreamDecoder::new();
        for chunk in &chunks {
            decoder.push(chunk);
            prop_assert!(decoder.buffered_len() <= StreamDecoder::CAPACITY);
            while decoder.next_frame().is_some() {}
        }
    }

    #[test]
    fn stream_of_start_bytes_and_lengths_stays_bounded(
        chunks in proptest::collection::vec(
            proptest::collection::vec(proptest::sample::select(vec![0x68u8, 0x16, 0xFE, 0xFF, 0x00]), 0..700),
            0..12,
        ),
    ) {
        let mut decoder = StreamDecoder::new();
        for chunk in &chunks {
            decoder.push(chunk);
            while decoder.next_frame().is_some() {}
            prop_assert!(decoder.buffered_len() <= StreamDecoder::CAPACITY);
        }
    }

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok((frame, used)) = decode(&bytes) {
            prop_assert!(used <= bytes.len());
            prop_assert!(frame.data().len() <= 255);
        }
    }

    #[test]
    fn scan_is_lossless(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let mut again = Vec::new();
        for item in scan(&bytes) {
            match item {
                Item::Junk(j) => again.extend(j),
                Item::Rejected(r) => {
                    // The offset names where its bytes are.
                    prop_assert_eq!(r.offset, again.len());
                    let _ = item_text(&r);
                    again.extend(r.bytes);
                }
                Item::Frame(d) => {
                    let _ = d.to_json();
                    let _ = d.to_human();
                    again.extend(d.raw);
                }
            }
        }
        prop_assert_eq!(again, bytes);
    }

    #[test]
    fn bcd_round_trips(raw in any::<i64>(), which in 0usize..8) {
        let formats = [Bcd::ENERGY, Bcd::SIGNED_ENERGY, Bcd::VOLTAGE, Bcd::CURRENT, Bcd::POWER,
            Bcd::POWER_FACTOR, Bcd::COUNT, Bcd::SMALL_COUNT];
        let bcd = formats[which];
        let raw = if bcd.signed { raw % (bcd.max() + 1) } else { (raw % (bcd.max() + 1)).abs() };
        let bytes = bcd.encode(raw).expect("in range");
        prop_assert_eq!(bytes.len(), usize::from(bcd.bytes));
        prop_assert_eq!(bcd.decode(&bytes).expect("own encoding"), raw);
    }

    #[test]
    fn bcd_refuses_out_of_range(extra in 1i64..1_000_000) {
        prop_assert!(Bcd::ENERGY.encode(Bcd::ENERGY.max() + extra).is_err());
        prop_assert!(Bcd::CURRENT.encode(-(Bcd::CURRENT.max() + extra)).is_err());
        prop_assert!(Bcd::ENERGY.encode(-extra).is_err());
    }

    #[test]
    fn date_times_round_trip(t in date_time()) {
        prop_assert_eq!(MeterDateTime::from_wire_seconds(&t.to_wire_seconds()).expect("valid"), t);
        let minutes = MeterDateTime::from_wire_minutes(&t.to_wire_minutes()).expect("valid");
        prop_assert_eq!((minutes.year(), minutes.month(), minutes.day(), minutes.hour(), minutes.minute()),
            (t.year(), t.month(), t.day(), t.hour(), t.minute()));
        let (date, weekday) = MeterDateTime::from_wire_date(&t.to_wire_date()).expect("valid");
        prop_assert_eq!(weekday, t.weekday());
        prop_assert_eq!(date.day(), t.day());
    }

    #[test]
    fn recharge_round_trips(
        operator in any::<u32>(), energy in any::<u32>(), count in any::<u32>(),
        mac1 in any::<[u8; 4]>(), customer in 0u64..=Recharge::CUSTOMER_MAX, mac2 in any::<[u8; 4]>(),
        remaining in 0i64..=99_999_999,
    ) {
        let r = Recharge { operator: OperatorCode(operator), energy_centikwh: energy, purchase_count: count,
            mac1, customer, mac2 };
        let wire = r.to_wire().expect("customer fits");
        prop_assert_eq!(wire.len(), Recharge::LEN);
        prop_assert_eq!(Recharge::from_wire(&wire).expect("own encoding"), r);
        let reply = RechargeReply { remaining_centikwh: remaining, purchase_count: count };
        prop_assert_eq!(RechargeReply::from_wire(&reply.to_wire().expect("fits")).expect("own"), reply);
    }

    #[test]
    fn relay_control_round_trips(
        level in any::<u8>(), code in 0u32..0x100_0000, operator in any::<u32>(),
        command in proptest::sample::select(RelayCommand::ALL.to_vec()), reserved in any::<u8>(),
        valid_until in date_time(),
    ) {
        let r = RelayControl { password: Password { level, code }, operator: OperatorCode(operator),
            command, reserved, valid_until };
        prop_assert_eq!(RelayControl::from_wire(&r.to_wire()).expect("own encoding"), r);
    }

    #[test]
    fn status_word_round_trips(bits in any::<u16>()) {
        let s = StatusWord3(bits);
        prop_assert_eq!(StatusWord3::from_wire(&s.to_wire()).expect("two bytes"), s);
        prop_assert_eq!(s.relay_open(), bits & 0x10 != 0);
        prop_assert_eq!(s.locked_out(), bits & 0x8000 != 0);
    }
}

fn item_text(r: &dlt645::describe::Rejected) -> (String, String) {
    let item = Item::Rejected(r.clone());
    (item.to_human(), item.to_json())
}
