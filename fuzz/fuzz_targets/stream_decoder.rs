//! Feeds arbitrary bytes, cut into arbitrary pieces, to the stream decoder,
//! the strict decoder and the lenient scanner. Properties beyond "no panic":
//! the stream buffer stays bounded, every frame found re-encodes and decodes
//! to itself, and the scanner loses no byte.
#![no_main]

use dlt645::describe::{Item, scan};
use dlt645::{StreamDecoder, decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&cut_seed, bytes)) = input.split_first() else {
        return;
    };
    // Piece sizes 1..=64 derived from the first byte, cycling, so one input
    // exercises both byte-by-byte and larger TCP reads.
    let mut decoder = StreamDecoder::new();
    let mut rest = bytes;
    let mut cut = usize::from(cut_seed);
    while !rest.is_empty() {
        let n = (cut % 64 + 1).min(rest.len());
        cut = cut.wrapping_mul(31).wrapping_add(7);
        decoder.push(&rest[..n]);
        rest = &rest[n..];
        while let Some(item) = decoder.next_frame() {
            if let Ok(frame) = item {
                let (again, used) = decode(&encode(&frame)).expect("own encoding decodes");
                assert_eq!(again, frame);
                assert_eq!(used, encode(&frame).len());
            }
        }
        assert!(decoder.buffered_len() <= StreamDecoder::CAPACITY);
    }

    if let Ok((frame, used)) = decode(bytes) {
        assert!(used <= bytes.len());
        assert!(frame.data().len() <= 255);
    }

    let mut rebuilt = Vec::with_capacity(bytes.len());
    for item in scan(bytes) {
        match item {
            Item::Junk(junk) => rebuilt.extend(junk),
            Item::Frame(described) => {
                let _ = described.to_json();
                rebuilt.extend(described.raw);
            }
        }
    }
    assert_eq!(rebuilt, bytes);
});
