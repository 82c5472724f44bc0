"""Reads energy (00000000) and voltage (02010100) with the PyPI dlt645 3.2.0
client from a DL/T 645 TCP endpoint and prints one JSON object.

Usage: python pyclient_read.py HOST PORT NAMEPLATE_ADDRESS

Exits 1 if either read fails. The address is passed in wire order because
dlt645 3.2.0 does not reverse address strings (protocol-notes §5, 5).
"""

import json
import sys

import dlt645
from dlt645 import MeterClientService


def wire_order(nameplate: str) -> str:
    pairs = [nameplate[i : i + 2] for i in range(0, 12, 2)]
    return "".join(reversed(pairs))


def main() -> None:
    host, port, nameplate = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    dlt645.disable_logging()
    client = MeterClientService.new_tcp_client(host, port, timeout=5.0)
    if not client.set_address(wire_order(nameplate)):
        sys.exit("bad address")
    energy = client.read_00(0x00000000)
    voltage = client.read_02(0x02010100)
    client.disconnect() if hasattr(client, "disconnect") else None
    result = {
        "energy_kwh": None if energy is None else energy.value,
        "voltage_v": None if voltage is None else voltage.value,
    }
    print(json.dumps(result))
    if energy is None or voltage is None:
        sys.exit(1)


if __name__ == "__main__":
    main()
