#!/bin/sh
# The cost of one /metrics scrape (docs/BENCHMARKS.md "Metrics scrape").
# Usage: scripts/metrics-scrape-cost.sh PORT, against a running
#   dormwatt --database-url URL --listen 127.0.0.1:PORT demo --history-days 0
# (the reference campus, the simulator and the head-end polling).
# 10 scrapes 6 s apart (the 5 s gauge cache has expired, so the database
# queries run), then 20 back to back (cached); each line: seconds bytes.
set -eu
P=$1
echo "cold:"
for i in $(seq 10); do
    curl -s -o /dev/null -w '%{time_total} %{size_download}\n' "http://127.0.0.1:$P/metrics"
    sleep 6
done
echo "warm:"
for i in $(seq 20); do
    curl -s -o /dev/null -w '%{time_total} %{size_download}\n' "http://127.0.0.1:$P/metrics"
done
