"""Runs the PyPI dlt645 3.2.0 meter simulator on 127.0.0.1 for the interop
check, with known values, and prints `PORT <n>` once it listens.

Usage: python pysim_server.py NAMEPLATE_ADDRESS [PORT]

dlt645 3.2.0 takes address strings in *wire* order (protocol-notes §5
discrepancy 5), so the nameplate address is reversed byte-wise here.
"""

import sys
import time

import dlt645
from dlt645 import MeterServerService

ENERGY_KWH = 1234.56  # DI 00000000
VOLTAGE_V = 220.1  # DI 02010100


def wire_order(nameplate: str) -> str:
    pairs = [nameplate[i : i + 2] for i in range(0, 12, 2)]
    return "".join(reversed(pairs))


def main() -> None:
    nameplate = sys.argv[1]
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    dlt645.disable_logging()
    server = MeterServerService.new_tcp_server("127.0.0.1", port, timeout=5.0)
    server.set_address(wire_order(nameplate))
    if not server.set_00(0x00000000, ENERGY_KWH):
        sys.exit("could not set energy")
    if not server.set_02(0x02010100, VOLTAGE_V):
        sys.exit("could not set voltage")
    if not server.start():
        sys.exit("simulator did not start")
    print(f"PORT {server.server.port}", flush=True)
    # The shell script kills this process when done; bound it anyway.
    time.sleep(300)


if __name__ == "__main__":
    main()
