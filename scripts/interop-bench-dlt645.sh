#!/usr/bin/env bash
# Codec throughput of our dlt645 crate and of the PyPI dlt645 3.2.0 codec,
# measured in one run on the same machine (docs/BENCHMARKS.md, "DL/T 645 codec").
#
# Usage: bash scripts/interop-bench-dlt645.sh
# Environment: PYTHON, INTEROP_VENV as for scripts/interop-dlt645.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT

# shellcheck source=lib/pinned-venv.sh
source "$ROOT/scripts/lib/pinned-venv.sh"
pinned_venv "${INTEROP_VENV:-$workdir/venv}" dlt645 3.2.0

echo "# machine: $(nproc) cores, $(uname -sr), $(rustc --version), $("$PY" --version)"
echo "## ours: cargo run --release -p dlt645 --example bench"
cargo run --quiet --release -p dlt645 --example bench
echo "## PyPI dlt645 3.2.0: python scripts/interop/bench_pypi_codec.py"
"$PY" scripts/interop/bench_pypi_codec.py
