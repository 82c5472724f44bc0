//! Every test vector of protocol-notes §5, as a table: each row is decoded,
//! re-encoded byte for byte, compared with the frame our builders make from
//! the row's meaning, and (for replies) its value is decoded.

use dlt645::request::{
    broadcast_time_request, error_reply, normal_reply, read_address_request,
    read_follow_up_request, read_reply, read_request, relay_request, write_request,
};
use dlt645::value::{
    Bcd, Format, MeterDateTime, OperatorCode, Password, RelayCommand, RelayControl, StatusWord3,
    Value, WriteData,
};
use dlt645::{Address, Di, ErrorFlags, Frame, Function, PREAMBLE_LEN, decode, encode, encode_into};

fn hex(text: &str) -> Vec<u8> {
    text.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("hex byte"))
        .collect()
}

fn meter() -> Address {
    Address::parse("123456789012").unwrap()
}

fn number(raw: i64, bcd: Bcd) -> Value {
    Value::Number { raw, bcd }
}

fn reply(di: Di, value: Value) -> Frame {
    read_reply(
        meter(),
        di,
        &value.to_wire_as(Format::of(di).unwrap()).unwrap(),
    )
    .unwrap()
}

fn relay(command: RelayCommand) -> Frame {
    relay_request(
        meter(),
        &RelayControl {
            password: Password {
                level: 0x02,
                code: 0x12_3456,
            },
            operator: OperatorCode(0x1234_5678),
            command,
            reserved: 0,
            valid_until: MeterDateTime::new(2025, 12, 31, 23, 59, 59).unwrap(),
        },
    )
}

fn date(y: u16, mo: u8, d: u8, h: u8, mi: u8, s: u8) -> MeterDateTime {
    MeterDateTime::new(y, mo, d, h, mi, s).unwrap()
}

/// (id, wire bytes, the frame our builders make for the row's meaning,
/// the value a reply carries when its DI is known).
fn table() -> Vec<(&'static str, &'static str, Frame, Option<Value>)> {
    let m = meter();
    vec![
        (
            "V01",
            "FE FE FE FE 68 12 90 78 56 34 12 68 11 04 33 33 33 33 67 16",
            read_request(m, Di::COMBINED_ACTIVE_ENERGY),
            None,
        ),
        (
            "V02",
            "FE FE FE FE 68 12 90 78 56 34 12 68 91 08 33 33 33 33 89 67 45 33 53 16",
            reply(
                Di::COMBINED_ACTIVE_ENERGY,
                number(123_456, Bcd::SIGNED_ENERGY),
            ),
            Some(number(123_456, Bcd::SIGNED_ENERGY)),
        ),
        (
            "V03a",
            "FE FE FE FE 68 12 90 78 56 34 12 68 11 04 33 33 34 33 68 16",
            read_request(m, Di::FORWARD_ACTIVE_ENERGY),
            None,
        ),
        (
            "V03b",
            "FE FE FE FE 68 12 90 78 56 34 12 68 91 08 33 33 34 33 3B 49 56 33 F9 16",
            reply(Di::FORWARD_ACTIVE_ENERGY, number(231_608, Bcd::ENERGY)),
            Some(number(231_608, Bcd::ENERGY)),
        ),
        (
            "V04a",
            "FE FE FE FE 68 12 90 78 56 34 12 68 11 04 33 34 34 35 6B 16",
            read_request(m, Di::VOLTAGE),
            None,
        ),
        (
            "V04b",
            "FE FE FE FE 68 12 90 78 56 34 12 68 91 06 33 34 34 35 34 55 76 16",
            reply(Di::VOLTAGE, number(2201, Bcd::VOLTAGE)),
            Some(number(2201, Bcd::VOLTAGE)),
        ),
        (
            "V05a",
            "FE FE FE FE 68 12 90 78 56 34 12 68 11 04 33 34 35 35 6C 16",
            read_request(m, Di::CURRENT),
            None,
        ),
        (
            "V05b",
            "FE FE FE FE 68 12 90 78 56 34 12 68 91 07 33 34 35 35 56 84 33 FC 16",
            reply(Di::CURRENT, number(5123, Bcd::CURRENT)),
            Some(number(5123, Bcd::CURRENT)),
        ),
        (
            "X6",
            "FE FE FE FE 68 12 90 78 56 34 12 68 91 07 33 34 35 35 56 84 B3 7C 16",
            reply(Di::CURRENT, number(-5123, Bcd::CURRENT)),
            Some(number(-5123, Bcd::CURRENT)),
        ),
        (
            "V06a",
            "FE FE FE FE 68 12 90 78 56 34 12 68 11 04 33 33 36 35 6C 16",
            read_request(m, Di::ACTIVE_POWER),
            None,
        ),
        (
            "V06b",
            "FE FE FE FE 68 12 90 78 56 34 12 68 91 07 33 33 36 35 B3 45 34 1B 16",
            reply(Di::ACTIVE_POWER, number(11_280, Bcd::POWER)),
            Some(number(11_280, Bcd::POWER)),
        ),
        (
            "V07a",
            "FE FE FE FE 68 12 90 78 56 34 12 68 11 04 33 34 C3 33 F8 16",
            read_request(m, Di::REMAINING_ENERGY),
            None,
        ),
        (
            "V07b",
            "FE FE FE FE 68 12 90 78 56 34 12 68 91 08 33 34 C3 33 83 68 33 33 CD 16",
            reply(Di::REMAINING_ENERGY, number(3550, Bcd::ENERGY)),
            Some(number(3550, Bcd::ENERGY)),
        ),
        (
            "X3",
            "FE FE FE FE 68 12 90 78 56 34 12 68 11 04 33 35 C3 33 F9 16",
            read_request(m, Di::REMAINING_MONEY),
            None,
        ),
        (
            "V08",
            "FE FE FE FE 68 12 90 78 56 34 12 68 D1 01 35 8D 16",
            error_reply(m, Function::Read, ErrorFlags::NO_DATA),
            None,
        ),
        (
            "V09a",
            "FE FE FE FE 68 AA AA AA AA AA AA 68 13 00 DF 16",
            read_address_request(),
            None,
        ),
        (
            "V09b",
            "FE FE FE FE 68 12 90 78 56 34 12 68 93 06 45 C3 AB 89 67 45 07 16",
            normal_reply(m, Function::ReadAddress, m.to_wire().to_vec()).unwrap(),
            None,
        ),
        (
            "V10",
            "FE FE FE FE 68 12 90 78 56 34 12 68 1C 10 35 89 67 45 AB 89 67 45 4D 33 8C 8C 56 64 45 58 EB 16",
            relay(RelayCommand::Trip),
            None,
        ),
        (
            "V11",
            "FE FE FE FE 68 12 90 78 56 34 12 68 1C 10 35 89 67 45 AB 89 67 45 4E 33 8C 8C 56 64 45 58 EC 16",
            relay(RelayCommand::CloseAllowed),
            None,
        ),
        (
            "V12a",
            "FE FE FE FE 68 12 90 78 56 34 12 68 9C 00 22 16",
            normal_reply(m, Function::RelayControl, Vec::new()).unwrap(),
            None,
        ),
        (
            "V12b",
            "FE FE FE FE 68 12 90 78 56 34 12 68 DC 01 37 9A 16",
            error_reply(m, Function::RelayControl, ErrorFlags::PASSWORD),
            None,
        ),
        (
            "V13a",
            "FE FE FE FE 68 12 90 78 56 34 12 68 11 04 36 38 33 37 73 16",
            read_request(m, Di::STATUS_WORD_3),
            None,
        ),
        (
            "V13b",
            "FE FE FE FE 68 12 90 78 56 34 12 68 91 06 36 38 33 37 83 34 AC 16",
            reply(Di::STATUS_WORD_3, Value::StatusWord3(StatusWord3(0x0150))),
            Some(Value::StatusWord3(StatusWord3(0x0150))),
        ),
        (
            "V14",
            "FE FE FE FE 68 99 99 99 99 99 99 68 08 06 33 33 3B 34 3C 58 DD 16",
            broadcast_time_request(date(2025, 9, 1, 8, 0, 0)),
            None,
        ),
        (
            "V15a",
            "FE FE FE FE 68 12 90 78 56 34 12 68 11 04 34 33 39 38 73 16",
            read_request(m, Di::LAST_DAILY_FREEZE_TIME),
            None,
        ),
        (
            "X1",
            "FE FE FE FE 68 12 90 78 56 34 12 68 91 09 34 33 39 38 33 33 34 3C 58 26 16",
            reply(
                Di::LAST_DAILY_FREEZE_TIME,
                Value::DateTime(date(2025, 9, 1, 0, 0, 0)),
            ),
            Some(Value::DateTime(date(2025, 9, 1, 0, 0, 0))),
        ),
        (
            "V15b",
            "FE FE FE FE 68 12 90 78 56 34 12 68 11 04 34 34 39 38 74 16",
            read_request(m, Di::LAST_DAILY_FREEZE_ENERGY),
            None,
        ),
        (
            "X2",
            "FE FE FE FE 68 12 90 78 56 34 12 68 91 18 34 34 39 38 33 43 56 33 33 33 33 33 33 43 56 33 33 33 33 33 33 33 33 33 6A 16",
            reply(
                Di::LAST_DAILY_FREEZE_ENERGY,
                Value::EnergyBlock(vec![231_000, 0, 231_000, 0, 0]),
            ),
            Some(Value::EnergyBlock(vec![231_000, 0, 231_000, 0, 0])),
        ),
        (
            "X4",
            "FE FE FE FE 68 12 90 78 56 34 12 68 91 08 34 34 33 37 34 34 3C 58 ED 16",
            reply(
                Di::DATE,
                Value::Date {
                    date: date(2025, 9, 1, 0, 0, 0),
                    weekday: 1,
                },
            ),
            Some(Value::Date {
                date: date(2025, 9, 1, 0, 0, 0),
                weekday: 1,
            }),
        ),
        (
            "X5",
            "FE FE FE FE 68 12 90 78 56 34 12 68 91 07 35 34 33 37 38 33 3B 97 16",
            reply(
                Di::TIME,
                Value::Time {
                    hour: 8,
                    minute: 0,
                    second: 5,
                },
            ),
            Some(Value::Time {
                hour: 8,
                minute: 0,
                second: 5,
            }),
        ),
        (
            "X7",
            "FE FE FE FE 68 12 90 78 56 34 12 68 12 05 34 34 39 38 34 AA 16",
            read_follow_up_request(m, Di::LAST_DAILY_FREEZE_ENERGY, 1),
            None,
        ),
        (
            "V17a",
            "FE FE FE FE 68 12 90 78 56 34 12 68 14 10 34 42 33 37 35 89 67 45 AB 89 67 45 33 43 33 33 B0 16",
            write_request(
                m,
                &WriteData {
                    di: Di::ALARM_ENERGY_1,
                    password: Password {
                        level: 0x02,
                        code: 0x12_3456,
                    },
                    operator: OperatorCode(0x1234_5678),
                    value: Bcd::ENERGY.encode(1000).unwrap(),
                },
            )
            .unwrap(),
            None,
        ),
        (
            "V17b",
            "FE FE FE FE 68 12 90 78 56 34 12 68 94 00 1A 16",
            normal_reply(m, Function::Write, Vec::new()).unwrap(),
            None,
        ),
    ]
}

#[test]
fn every_vector_decodes_reencodes_and_matches_our_builders() {
    let rows = table();
    assert_eq!(rows.len(), 33);
    for (id, wire, built, value) in rows {
        let bytes = hex(wire);
        let (frame, used) = decode(&bytes).unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(used, bytes.len(), "{id}: consumed");
        assert_eq!(encode(&frame), bytes, "{id}: re-encode");
        assert_eq!(frame, built, "{id}: builder");
        if let Some(expected) = value {
            let di = frame.di().unwrap_or_else(|| panic!("{id}: DI"));
            let format = Format::of(di).unwrap_or_else(|| panic!("{id}: format of {di}"));
            assert_eq!(
                format.decode(frame.payload()).unwrap(),
                expected,
                "{id}: value"
            );
        }
    }
}

#[test]
fn x8_is_v01_without_preamble() {
    let bytes = hex("68 12 90 78 56 34 12 68 11 04 33 33 33 33 67 16");
    let (frame, used) = decode(&bytes).unwrap();
    assert_eq!(used, 16);
    assert_eq!(frame, read_request(meter(), Di::COMBINED_ACTIVE_ENERGY));
    let mut out = Vec::new();
    encode_into(&frame, 0, &mut out);
    assert_eq!(out, bytes);
    let mut with = Vec::new();
    encode_into(&frame, PREAMBLE_LEN, &mut with);
    assert_eq!(with[PREAMBLE_LEN..], bytes[..]);
}

#[test]
fn dlt645_1997_vector_is_rejected_as_unknown_function() {
    // protocol-notes §1.6: a 1997 read (C = 01) is well formed but not 2007.
    let bytes = hex("68 03 00 00 00 00 00 68 01 02 44 E9 03 16");
    assert_eq!(
        decode(&bytes),
        Err(dlt645::DecodeError::UnknownFunction {
            code: 0x01,
            control: 0x01
        })
    );
}

#[test]
fn third_party_capture_decodes() {
    // unsurper/dlt645go vector from protocol-notes §3.3: 0.02 kWh.
    let bytes = hex("68 76 02 02 47 02 02 68 91 08 33 33 34 33 35 33 33 33 C9 16");
    let (frame, _) = decode(&bytes).unwrap();
    assert_eq!(frame.address().to_string(), "020247020276");
    assert_eq!(frame.di(), Some(Di::FORWARD_ACTIVE_ENERGY));
    assert_eq!(Bcd::ENERGY.decode(frame.payload()).unwrap(), 2);
}

#[test]
fn relay_payload_decodes_back() {
    let frame = relay(RelayCommand::Trip);
    let control = RelayControl::from_wire(frame.data()).unwrap();
    assert_eq!(control.command, RelayCommand::Trip);
    assert_eq!(control.valid_until, date(2025, 12, 31, 23, 59, 59));
    assert_eq!(control.password.to_wire(), [0x02, 0x56, 0x34, 0x12]);
}
