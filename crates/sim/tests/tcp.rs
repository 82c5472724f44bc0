//! The simulator over real TCP: every bus of the reference campus answers,
//! bus timing follows protocol-notes §4, bad input is dropped.

use std::time::Duration;

use dlt645::value::{OperatorCode, Password, WriteData};
use dlt645::{
    Address, Di, ErrorFlags, Frame, StreamDecoder, checksum, encode, request, wire_time_us,
};
use sim::{Fleet, GatewayMode, SimConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Real-time bound on waiting for one reply; generous because it only
/// guards against a hung test, never decides a result.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

struct Client {
    stream: TcpStream,
    decoder: StreamDecoder,
}

impl Client {
    async fn connect(addr: std::net::SocketAddr) -> Self {
        Self {
            stream: TcpStream::connect(addr).await.expect("connect"),
            decoder: StreamDecoder::new(),
        }
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    async fn send(&mut self, frame: &Frame) {
        self.send_raw(&encode(frame)).await;
    }

    async fn recv(&mut self) -> Frame {
        let mut buf = [0u8; 512];
        loop {
            while let Some(item) = self.decoder.next_frame() {
                if let Ok(f) = item {
                    return f;
                }
            }
            let n = tokio::time::timeout(REPLY_TIMEOUT, self.stream.read(&mut buf))
                .await
                .expect("reply in time")
                .expect("read");
            assert!(n > 0, "gateway closed the connection");
            self.decoder.push(&buf[..n]);
        }
    }
}

fn server() -> GatewayMode {
    GatewayMode::Server {
        host: [127, 0, 0, 1].into(),
        base_port: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reference_campus_answers_on_every_bus() {
    let plan = domain::campus::reference_plan();
    let fleet = Fleet::from_plan(
        &plan,
        SimConfig {
            speed: 50.0,
            ..SimConfig::default()
        },
    );
    assert_eq!(fleet.meter_count(), domain::campus::REFERENCE_METERS + 48);
    let running = fleet.start(server()).await.expect("start");
    let addresses = fleet.addresses();
    let mut tasks = Vec::new();
    for (ep, buses) in running.endpoints().iter().zip(addresses) {
        let addr = ep.listen.expect("server mode binds");
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            // One request per bus, all at once: the buses of a gateway run
            // in parallel, so each answers its own request.
            for bus in &buses {
                c.send(&request::read_request(bus[0], Di::COMBINED_ACTIVE_ENERGY))
                    .await;
            }
            let mut seen = Vec::new();
            for _ in &buses {
                let r = c.recv().await;
                assert_eq!(r.control().byte(), 0x91);
                assert_eq!(r.di(), Some(Di::COMBINED_ACTIVE_ENERGY));
                assert_eq!(r.payload().len(), 4);
                seen.push(r.address());
            }
            let mut want: Vec<Address> = buses.iter().map(|b| b[0]).collect();
            want.sort();
            seen.sort();
            assert_eq!(seen, want);
            buses.len()
        }));
    }
    let mut polled = 0;
    for t in tasks {
        polled += t.await.expect("gateway task");
    }
    assert_eq!(polled, fleet.bus_count());
    assert!(polled >= 40, "{polled} buses");
}

#[tokio::test]
async fn bus_timing_matches_the_wire_time_bound() {
    const K: usize = 16;
    let plan = sim::synthetic_plan(K);
    let fleet = Fleet::from_plan(
        &plan,
        SimConfig {
            // Slow enough that scheduler overshoot (real ms, multiplied by
            // the speed on the virtual clock) stays far below the 10 %.
            speed: 2.0,
            reply_delay_ms: 20,
            reply_jitter_ms: 0,
            reply_preamble: 4,
            ..SimConfig::default()
        },
    );
    assert_eq!(fleet.bus_count(), 1);
    let running = fleet.start(server()).await.expect("start");
    let mut c = Client::connect(running.endpoints()[0].listen.expect("bound")).await;
    let meters = fleet.addresses()[0][0].clone();
    assert_eq!(meters.len(), K);
    let clock = fleet.clock().clone();
    let t0 = clock.now_us();
    for &m in &meters {
        c.send(&request::read_request(m, Di::COMBINED_ACTIVE_ENERGY))
            .await;
        let r = c.recv().await;
        assert_eq!(r.address(), m);
    }
    let elapsed_us = clock.now_us() - t0;
    // §4: T_txn = T_frame(req, 4 FE) + Td + T_frame(resp, 4 FE), 11 bits/byte.
    let txn_us = wire_time_us(4 + 16, 2400) + 20_000 + wire_time_us(4 + 20, 2400);
    assert_eq!(txn_us, 221_667);
    let bound_us = (K as u64 * txn_us) as i64;
    eprintln!("{K} reads: {elapsed_us} µs on the sim clock, bound {bound_us} µs");
    assert!(
        elapsed_us >= bound_us,
        "{elapsed_us} µs is faster than the wire allows ({bound_us} µs)"
    );
    assert!(
        elapsed_us * 10 <= bound_us * 11,
        "{elapsed_us} µs is more than 1.1 × {bound_us} µs"
    );
}

#[tokio::test]
async fn overlapping_requests_on_one_bus_garble_both() {
    let plan = sim::synthetic_plan(2);
    let fleet = Fleet::from_plan(
        &plan,
        SimConfig {
            speed: 20.0,
            ..SimConfig::default()
        },
    );
    let running = fleet.start(server()).await.expect("start");
    let mut c = Client::connect(running.endpoints()[0].listen.expect("bound")).await;
    let m = fleet.addresses()[0][0].clone();
    // Two requests back to back: the second starts while the first is
    // still on the line, so neither meter's reply comes back...
    c.send(&request::read_request(m[0], Di::REMAINING_ENERGY))
        .await;
    c.send(&request::read_request(m[1], Di::REMAINING_ENERGY))
        .await;
    // ...and the next, well separated request is the first to be answered.
    fleet.clock().sleep_ms(2_000).await;
    c.send(&request::read_request(m[1], Di::VOLTAGE)).await;
    let r = c.recv().await;
    assert_eq!((r.address(), r.di()), (m[1], Some(Di::VOLTAGE)));
}

#[tokio::test]
async fn bad_input_is_dropped_and_errors_are_answered() {
    let plan = sim::synthetic_plan(3);
    let fleet = Fleet::from_plan(
        &plan,
        SimConfig {
            speed: 20.0,
            ..SimConfig::default()
        },
    );
    let running = fleet.start(server()).await.expect("start");
    let mut c = Client::connect(running.endpoints()[0].listen.expect("bound")).await;
    let m = fleet.addresses()[0][0][0];
    let good = request::read_request(m, Di::REMAINING_ENERGY);

    // Each bad frame is sent before a good one; a bus answers in order, so
    // if the first reply is the good one's, the bad frame got no reply.
    let mut bad_cs = encode(&good);
    let n = bad_cs.len();
    bad_cs[n - 2] = bad_cs[n - 2].wrapping_add(1);
    let wrong_addr = request::read_request(
        Address::parse("209999999999").unwrap(),
        Di::REMAINING_ENERGY,
    );
    // Function 05 does not exist in DL/T 645-2007.
    let mut unknown_fn = encode(&good);
    unknown_fn[12] = 0x05;
    let cs = checksum(&unknown_fn[4..n - 2]);
    unknown_fn[n - 2] = cs;
    // A read with L = 5: wrong length for a plain read.
    let wrong_len = Frame::new(m, good.control(), vec![0x00, 0x01, 0x90, 0x00, 0x01]).unwrap();
    for bad in [bad_cs, encode(&wrong_addr), unknown_fn, encode(&wrong_len)] {
        c.send_raw(&bad).await;
        fleet.clock().sleep_ms(1_500).await;
        c.send(&request::read_request(m, Di::TIME)).await;
        let r = c.recv().await;
        assert_eq!(r.di(), Some(Di::TIME), "a bad frame was answered: {r:?}");
    }

    // Unknown DI: ERR bit1 "no such data".
    c.send(&request::read_request(m, Di(0x0400_0999))).await;
    let r = c.recv().await;
    assert_eq!(r.control().byte(), 0xD1);
    assert_eq!(r.error_flags(), Some(ErrorFlags::NO_DATA));

    // Wrong password: ERR bit2 and nothing changes.
    let before = fleet.inspect(&m.to_string()).unwrap().params;
    let w = WriteData {
        di: Di::ALARM_ENERGY_1,
        password: Password {
            level: 2,
            code: 0x654321,
        },
        operator: OperatorCode(1),
        value: dlt645::value::Bcd::ENERGY.encode(4200).unwrap(),
    };
    c.send(&request::write_request(m, &w).unwrap()).await;
    let r = c.recv().await;
    assert_eq!(r.control().byte(), 0xD4);
    assert_eq!(r.error_flags(), Some(ErrorFlags::PASSWORD));
    assert_eq!(fleet.inspect(&m.to_string()).unwrap().params, before);

    // The right password writes.
    let w = WriteData {
        password: Password {
            level: 2,
            code: 0x123456,
        },
        ..w
    };
    c.send(&request::write_request(m, &w).unwrap()).await;
    let r = c.recv().await;
    assert_eq!(r.control().byte(), 0x94);
    assert_eq!(
        fleet
            .inspect(&m.to_string())
            .unwrap()
            .params
            .alarm1_centikwh,
        4200
    );
}

#[tokio::test]
async fn client_mode_registers_then_serves_and_heartbeats() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plan = sim::synthetic_plan(4);
    let fleet = Fleet::from_plan(
        &plan,
        SimConfig {
            speed: 100.0,
            heartbeat_period_ms: 30_000,
            ..SimConfig::default()
        },
    );
    let _running = fleet
        .start(GatewayMode::Client {
            headend: listener.local_addr().unwrap(),
        })
        .await
        .unwrap();
    let (stream, _) = tokio::time::timeout(REPLY_TIMEOUT, listener.accept())
        .await
        .expect("gateway dials in")
        .unwrap();
    let mut c = Client {
        stream,
        decoder: StreamDecoder::new(),
    };
    let name = fleet.gateways()[0].name.clone();
    let mut reg = vec![0u8; name.len()];
    tokio::time::timeout(REPLY_TIMEOUT, c.stream.read_exact(&mut reg))
        .await
        .expect("registration in time")
        .unwrap();
    assert_eq!(reg, name.as_bytes());
    let m = fleet.addresses()[0][0][1];
    c.send(&request::read_request(m, Di::PURCHASE_COUNT)).await;
    let r = c.recv().await;
    assert_eq!((r.address(), r.di()), (m, Some(Di::PURCHASE_COUNT)));
    // Heartbeats come every 30 virtual s (0.3 real s at 100x).
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(REPLY_TIMEOUT, c.stream.read(&mut buf))
        .await
        .expect("heartbeat in time")
        .unwrap();
    assert_eq!(&buf[..n.min(4)], b"DWHB");
}

#[tokio::test]
async fn silent_gateway_drops_requests_and_reset_closes_the_connection() {
    let plan = sim::synthetic_plan(2);
    let fleet = Fleet::from_plan(
        &plan,
        SimConfig {
            speed: 50.0,
            ..SimConfig::default()
        },
    );
    let running = fleet.start(server()).await.expect("start");
    let addr = running.endpoints()[0].listen.expect("bound");
    let gw = fleet.gateways()[0].name.clone();
    let m = fleet.addresses()[0][0][0];
    let mut c = Client::connect(addr).await;
    fleet.silence_gateway(&gw, 10_000).unwrap();
    c.send(&request::read_request(m, Di::REMAINING_ENERGY))
        .await;
    fleet.clock().sleep_ms(12_000).await;
    c.send(&request::read_request(m, Di::TIME)).await;
    let r = c.recv().await;
    assert_eq!(r.di(), Some(Di::TIME), "the silent gateway answered: {r:?}");

    fleet.reset_gateway(&gw).unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(REPLY_TIMEOUT, c.stream.read(&mut buf))
        .await
        .expect("reset in time");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    // A new connection works.
    let mut c = Client::connect(addr).await;
    c.send(&request::read_request(m, Di::TIME)).await;
    assert_eq!(c.recv().await.address(), m);
}

#[tokio::test]
async fn random_tcp_resets_follow_the_fault_rate() {
    let plan = sim::synthetic_plan(1);
    let fleet = Fleet::from_plan(
        &plan,
        SimConfig {
            speed: 50.0,
            faults: sim::FaultConfig {
                tcp_reset: 1.0,
                ..sim::FaultConfig::default()
            },
            ..SimConfig::default()
        },
    );
    let running = fleet.start(server()).await.expect("start");
    let mut c = Client::connect(running.endpoints()[0].listen.expect("bound")).await;
    let m = fleet.addresses()[0][0][0];
    c.send(&request::read_request(m, Di::TIME)).await;
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(REPLY_TIMEOUT, c.stream.read(&mut buf))
        .await
        .expect("reset in time");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
}

#[tokio::test]
async fn extra_latency_delays_replies_on_the_virtual_clock() {
    let plan = sim::synthetic_plan(1);
    let fleet = Fleet::from_plan(
        &plan,
        SimConfig {
            speed: 20.0,
            reply_delay_ms: 20,
            reply_jitter_ms: 0,
            faults: sim::FaultConfig {
                latency: 1.0,
                latency_ms_max: 5_000,
                ..sim::FaultConfig::default()
            },
            ..SimConfig::default()
        },
    );
    let running = fleet.start(server()).await.expect("start");
    let mut c = Client::connect(running.endpoints()[0].listen.expect("bound")).await;
    let m = fleet.addresses()[0][0][0];
    let clock = fleet.clock().clone();
    let t0 = clock.now_us();
    for _ in 0..5 {
        c.send(&request::read_request(m, Di::TIME)).await;
        assert_eq!(c.recv().await.di(), Some(Di::TIME));
    }
    let txn_us = (wire_time_us(20, 2400) + 20_000 + wire_time_us(23, 2400)) as i64;
    let extra_us = clock.now_us() - t0 - 5 * txn_us;
    // Uniform 0–5 s per reply: five of them add seconds, never more than 25.
    assert!((1_000_000..=26_000_000).contains(&extra_us), "{extra_us}");
}

#[tokio::test]
async fn dropping_the_running_fleet_closes_connections() {
    let plan = sim::synthetic_plan(1);
    let fleet = Fleet::from_plan(&plan, SimConfig::default());
    let running = fleet.start(server()).await.expect("start");
    let mut c = Client::connect(running.endpoints()[0].listen.expect("bound")).await;
    drop(running);
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(REPLY_TIMEOUT, c.stream.read(&mut buf))
        .await
        .expect("closed in time");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
}

#[tokio::test]
async fn buses_of_one_gateway_run_in_parallel() {
    const K: usize = 8;
    // 128 meters: two full buses behind one gateway.
    let plan = sim::synthetic_plan(128);
    let fleet = Fleet::from_plan(
        &plan,
        SimConfig {
            // Slow enough that scheduler overshoot (real ms, multiplied by
            // the speed on the virtual clock) stays far below the 10 %.
            speed: 2.0,
            reply_delay_ms: 20,
            reply_jitter_ms: 0,
            ..SimConfig::default()
        },
    );
    assert_eq!(fleet.gateways()[0].buses.len(), 2);
    let running = fleet.start(server()).await.expect("start");
    let mut c = Client::connect(running.endpoints()[0].listen.expect("bound")).await;
    let buses = fleet.addresses()[0].clone();
    let clock = fleet.clock().clone();
    let t0 = clock.now_us();
    // One request outstanding per bus; the next for a bus goes out when
    // that bus's reply arrives.
    let mut next = [1usize, 1];
    c.send(&request::read_request(
        buses[0][0],
        Di::COMBINED_ACTIVE_ENERGY,
    ))
    .await;
    c.send(&request::read_request(
        buses[1][0],
        Di::COMBINED_ACTIVE_ENERGY,
    ))
    .await;
    for _ in 0..2 * K {
        let r = c.recv().await;
        let b = usize::from(buses[1].contains(&r.address()));
        if next[b] < K {
            c.send(&request::read_request(
                buses[b][next[b]],
                Di::COMBINED_ACTIVE_ENERGY,
            ))
            .await;
            next[b] += 1;
        }
    }
    let elapsed_us = clock.now_us() - t0;
    let one_bus_us = (K as u64 * (wire_time_us(20, 2400) + 20_000 + wire_time_us(24, 2400))) as i64;
    eprintln!("2 × {K} reads: {elapsed_us} µs, one bus {one_bus_us} µs");
    // Two buses' worth of reads in about one bus's time.
    assert!(elapsed_us >= one_bus_us, "{elapsed_us} < {one_bus_us}");
    assert!(
        elapsed_us * 10 <= one_bus_us * 11,
        "{elapsed_us} vs {one_bus_us}"
    );
}
