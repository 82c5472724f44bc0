"""Checks the JSON lines `read_tcp` printed against expectations.

Usage: python check_reads.py MODE < read_tcp-output

MODE `pysim`: the PyPI simulator was loaded with 1234.56 kWh and 220.1 V, so
the replies must decode to exactly those values and be byte-identical to
protocol-notes §5 V02 / V04b (address 123456789012, no preamble).
MODE `values`: print `energy voltage` from the replies for a cross-check.
"""

import json
import sys

V02 = "68 12 90 78 56 34 12 68 91 08 33 33 33 33 89 67 45 33 53 16"
V04B = "68 12 90 78 56 34 12 68 91 06 33 34 34 35 34 55 76 16"


def main() -> None:
    mode = sys.argv[1]
    replies = {}
    for line in sys.stdin:
        line = line.strip()
        if line.startswith("{"):
            obj = json.loads(line)
            replies[obj.get("di")] = obj
    energy, voltage = replies.get("00000000"), replies.get("02010100")
    if energy is None or voltage is None:
        sys.exit(f"missing replies: {sorted(replies)}")
    if mode == "pysim":
        problems = []
        if energy["value"] != 1234.56:
            problems.append(f"energy {energy['value']} != 1234.56")
        if voltage["value"] != 220.1:
            problems.append(f"voltage {voltage['value']} != 220.1")
        if energy["raw"] != V02:
            problems.append(f"energy reply {energy['raw']} != V02")
        if voltage["raw"] != V04B:
            problems.append(f"voltage reply {voltage['raw']} != V04b")
        if not (energy["checksum_ok"] and voltage["checksum_ok"]):
            problems.append("checksum")
        if problems:
            sys.exit("; ".join(problems))
        print(f"energy {energy['value']} kWh, voltage {voltage['value']} V, bytes identical to V02/V04b")
    else:
        print(energy["value"], voltage["value"])


if __name__ == "__main__":
    main()
