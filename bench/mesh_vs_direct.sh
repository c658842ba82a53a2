#!/usr/bin/env bash
# Runs the mesh-vs-direct benchmark: starts bench_server, runs the client,
# stops the server by PID. Extra flags go to mesh_vs_direct (e.g. --rounds=3
# --calls=5000 for a quick check).
# Usage: bench/mesh_vs_direct.sh [--rounds=N] [--calls=N] [--payload=BYTES]
set -euo pipefail
cd "$(dirname "$0")/.."
bazel/setup.sh
bazel build -c opt --platform_suffix=opt //bench:bench_server //bench:mesh_vs_direct 2>&1 |
  grep -E '^(ERROR|FAILED)' || true
BIN=bazel-bin/bench
out=$(mktemp)
# Pinned: the server on the last core, the client on the first, so that
# their threads do not compete (see docs/benchmarks.md).
LAST=$(( $(nproc) - 1 ))
taskset -c "$LAST" $BIN/bench_server > "$out" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -f "$out"' EXIT
for _ in $(seq 1 100); do [ -s "$out" ] && break; sleep 0.05; done
port=$(head -1 "$out")
[ -n "$port" ] || { echo "bench_server did not start"; exit 1; }
echo "# $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), gRPC $(dpkg-query -W -f='${Version}' libgrpc++1.51 2>/dev/null), server pinned to core $LAST, client to core 0"
echo "# command: bench/mesh_vs_direct.sh $*"
MESH_LOG_QUIET=1 taskset -c 0 $BIN/mesh_vs_direct --port="$port" "$@"
