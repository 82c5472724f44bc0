//! Codec throughput, in frames per second, for docs/BENCHMARKS.md.
//!
//! ```text
//! cargo run --release -p dlt645 --example bench
//! ```
//!
//! One "round trip" = encode a frame to bytes (with the 4×FE preamble) and
//! decode those bytes back into a `Frame`; the same operation
//! `scripts/interop/bench_pypi_codec.py` times for the PyPI dlt645 3.2.0
//! codec (`build_frame` + `deserialize`). A plain `Instant` loop rather than
//! criterion keeps the dev-dependencies small; each figure is the best of
//! five runs to damp scheduler noise.

use std::hint::black_box;
use std::time::Instant;

use dlt645::request::{read_reply, read_request};
use dlt645::value::Bcd;
use dlt645::{Address, Di, Frame, StreamDecoder, decode, encode, encode_into};

const ROUNDS: usize = 5;

fn best_rate(frames_per_run: usize, mut run: impl FnMut()) -> f64 {
    (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            run();
            frames_per_run as f64 / start.elapsed().as_secs_f64()
        })
        .fold(0.0, f64::max)
}

fn round_trip(name: &str, frame: &Frame, n: usize) {
    let rate = best_rate(n, || {
        for _ in 0..n {
            let bytes = encode(black_box(frame));
            let (decoded, _) = decode(black_box(&bytes)).expect("own encoding");
            black_box(decoded);
        }
    });
    println!(
        "round_trip {name:<22} {:>12.0} frames/s ({} bytes)",
        rate,
        encode(frame).len()
    );
}

fn main() {
    let meter = Address::parse("123456789012").expect("address");
    let request = read_request(meter, Di::COMBINED_ACTIVE_ENERGY);
    let reply = read_reply(
        meter,
        Di::COMBINED_ACTIVE_ENERGY,
        &Bcd::SIGNED_ENERGY.encode(123_456).expect("fits"),
    )
    .expect("fits");
    let big = read_reply(meter, Di::LAST_DAILY_FREEZE_ENERGY, &[0x11; 200]).expect("fits");
    let n = 1_000_000;
    round_trip("read request (V01)", &request, n);
    round_trip("read reply (V02)", &reply, n);
    round_trip("204-byte data reply", &big, n / 10);

    // Stream decoding: replies with gateway junk between them, fed in
    // 64-byte TCP-like pieces.
    let mut stream = Vec::new();
    let frames = 10_000;
    for i in 0..frames {
        if i % 10 == 0 {
            stream.extend_from_slice(b"DWHB");
        }
        encode_into(&reply, i % 5, &mut stream);
    }
    let rate = best_rate(frames, || {
        let mut decoder = StreamDecoder::new();
        let mut count = 0;
        for piece in stream.chunks(64) {
            decoder.push(piece);
            while let Some(item) = decoder.next_frame() {
                black_box(item.expect("clean stream"));
                count += 1;
            }
        }
        assert_eq!(count, frames);
    });
    println!(
        "stream_decoder {:<18} {:>12.0} frames/s (64-byte pieces, junk every 10th)",
        "read replies", rate
    );
}
