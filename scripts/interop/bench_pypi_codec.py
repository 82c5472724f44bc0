"""Codec throughput of the PyPI dlt645 3.2.0 package, in frames per second,
measured the same way as `cargo run --release -p dlt645 --example bench`:
one round trip = build a frame (4×FE preamble) and parse it back.

Usage: python bench_pypi_codec.py   (inside a virtualenv with dlt645==3.2.0)
"""

import struct
import time

import dlt645
from dlt645 import DLT645Protocol

ROUNDS = 5
ADDR = bytes([0x12, 0x90, 0x78, 0x56, 0x34, 0x12])


def best_rate(n, fn):
    best = 0.0
    for _ in range(ROUNDS):
        start = time.perf_counter()
        fn(n)
        best = max(best, n / (time.perf_counter() - start))
    return best


def round_trip(name, ctrl, data, n):
    def run(count):
        for _ in range(count):
            raw = DLT645Protocol.build_frame(ADDR, ctrl, data)
            DLT645Protocol.deserialize(raw)

    raw_len = len(DLT645Protocol.build_frame(ADDR, ctrl, data))
    print(f"round_trip {name:<22} {best_rate(n, run):>12.0f} frames/s ({raw_len} bytes)")


def main():
    dlt645.disable_logging()
    di = struct.pack("<I", 0x00000000)
    round_trip("read request (V01)", 0x11, di, 20_000)
    round_trip("read reply (V02)", 0x91, di + bytes([0x56, 0x34, 0x12, 0x00]), 20_000)
    round_trip("204-byte data reply", 0x91, struct.pack("<I", 0x05060101) + bytes([0x11] * 200), 2_000)


if __name__ == "__main__":
    main()
