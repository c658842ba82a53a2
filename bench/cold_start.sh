#!/usr/bin/env bash
# Cold start: from main() to the first successful call, direct vs mesh,
# interleaved, N runs each (default 15); prints medians and min-max.
# Usage: bench/cold_start.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-15}
bazel/setup.sh
bazel build -c opt --platform_suffix=opt //bench:bench_server //bench:cold_start 2>&1 |
  grep -E '^(ERROR|FAILED)' || true
BIN=bazel-bin/bench
work=$(mktemp -d)
$BIN/bench_server > "$work/port" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do [ -s "$work/port" ] && break; sleep 0.05; done
port=$(head -1 "$work/port")
cat > "$work/mesh.yaml" <<YAML
apiVersion: mesh/v1
trustDomain: bench.local
services:
  - name: greeter
    hostname: greeter.mesh.internal
    endpoints:
      - {address: 127.0.0.1, port: $port, locality: {region: r, zone: z, cluster: c}}
YAML
for i in $(seq 1 "$RUNS"); do
  for mode in direct mesh; do
    MESH_LOG_QUIET=1 $BIN/cold_start --mode=$mode --port="$port" \
      --config="$work/mesh.yaml" >> "$work/$mode"
  done
done
echo "# cold start, main() to first successful call, $RUNS runs each, interleaved"
echo "# command: bench/cold_start.sh $RUNS"
echo "| variant | median ms | min-max ms |"
echo "|---|---|---|"
for mode in direct mesh; do
  sort -n "$work/$mode" | awk -v m=$mode '{a[NR]=$1} END {
    printf "| %s | %.1f | %.1f-%.1f |\n", m, a[int((NR+1)/2)]/1000, a[1]/1000, a[NR]/1000 }'
done
