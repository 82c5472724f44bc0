//! Reads DIs from a DL/T 645 meter (or simulator, or gateway) over TCP with
//! this crate's codec, printing one JSON line per reply.
//!
//! ```text
//! cargo run -p dlt645 --example read_tcp -- 127.0.0.1:8899 --meter 123456789012 00000000 02010100
//! cargo run -p dlt645 --example read_tcp -- 127.0.0.1:8899 --discover
//! ```
//!
//! Used by `scripts/interop-dlt645.sh` against the PyPI `dlt645` simulator.
//! Exits 1 if any DI got no normal reply. Plain `std::net`: the crate is
//! sans-IO and this example must not pull tokio in.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use dlt645::describe::{describe, to_hex};
use dlt645::request::{read_address_request, read_request};
use dlt645::{Address, Di, Frame, StreamDecoder, encode};

const USAGE: &str =
    "usage: read_tcp HOST:PORT (--discover | --meter ADDRESS DI...) [--timeout-ms N]";

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("read_tcp: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<bool, String> {
    let mut args = std::env::args().skip(1);
    let target = args.next().ok_or(USAGE)?;
    let mut meter = None;
    let mut discover = false;
    let mut timeout = Duration::from_secs(3);
    let mut dis = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--meter" => {
                let text = args.next().ok_or(USAGE)?;
                meter = Some(Address::parse(&text).map_err(|e| e.to_string())?);
            }
            "--discover" => discover = true,
            "--timeout-ms" => {
                let ms: u64 = args
                    .next()
                    .ok_or(USAGE)?
                    .parse()
                    .map_err(|e| format!("{e}"))?;
                timeout = Duration::from_millis(ms);
            }
            di => dis.push(Di(
                u32::from_str_radix(di, 16).map_err(|e| format!("DI {di:?}: {e}"))?
            )),
        }
    }
    let mut stream = TcpStream::connect(&target).map_err(|e| format!("connect {target}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut decoder = StreamDecoder::new();

    if discover {
        let reply = transact(&mut stream, &mut decoder, &read_address_request(), timeout)?;
        return Ok(match reply {
            Some(frame) if !frame.control().is_abnormal() => {
                println!("address {}", frame.address());
                true
            }
            other => {
                eprintln!("read_tcp: no address reply: {other:?}");
                false
            }
        });
    }

    let meter = meter.ok_or(USAGE)?;
    let mut all_ok = true;
    for di in dis {
        let request = read_request(meter, di);
        match transact(&mut stream, &mut decoder, &request, timeout)? {
            Some(reply) => {
                let ok = reply.is_reply_to(&request)
                    && !reply.control().is_abnormal()
                    && reply.di() == Some(di);
                all_ok &= ok;
                let mut raw = Vec::new();
                dlt645::encode_into(&reply, 0, &mut raw);
                println!("{}", describe(reply, raw, true).to_json());
            }
            None => {
                eprintln!("read_tcp: no reply for DI {di} within {timeout:?}");
                all_ok = false;
            }
        }
    }
    Ok(all_ok)
}

/// Sends `request` and waits for the first reply frame, skipping anything
/// that is not a reply (our own echo on a shared bus, heartbeats).
fn transact(
    stream: &mut TcpStream,
    decoder: &mut StreamDecoder,
    request: &Frame,
    timeout: Duration,
) -> Result<Option<Frame>, String> {
    decoder.clear();
    let bytes = encode(request);
    eprintln!("TX {}", to_hex(&bytes));
    stream.write_all(&bytes).map_err(|e| format!("send: {e}"))?;
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 512];
    loop {
        while let Some(item) = decoder.next_frame() {
            match item {
                Ok(frame) if frame.control().is_reply() => {
                    eprintln!("RX {}", to_hex(&encode(&frame)[dlt645::PREAMBLE_LEN..]));
                    return Ok(Some(frame));
                }
                Ok(_) => {}
                Err(e) => eprintln!("read_tcp: skipped: {e}"),
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        match stream.read(&mut buf) {
            Ok(0) => return Err("connection closed by peer".to_owned()),
            Ok(n) => decoder.push(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(format!("receive: {e}")),
        }
    }
}
