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

# The hosting mesh avoids: the same direct channel, with and without an idle
# sync gRPC server in the client process (as a naive embedded control plane
# would run), in separate processes, interleaved, 16 calls in flight.
ROUNDS=5
CALLS=20000
for a in "$@"; do
  case $a in --rounds=*) ROUNDS=${a#--rounds=};; --calls=*) CALLS=${a#--calls=};; esac
done
echo
echo "# why the control plane is not in the application's process: direct channel, 16 in flight, $ROUNDS rounds x $CALLS calls, separate processes"
echo "| variant | CPU us/call (median) | p50 us (median) | CPU ratio | p50 ratio |"
echo "|---|---|---|---|---|"
res=$(mktemp)
for r in $(seq 1 "$ROUNDS"); do
  for extra in "" "--inproc_server"; do
    MESH_LOG_QUIET=1 taskset -c 0 $BIN/mesh_vs_direct --port="$port" --only=direct \
      --calls="$CALLS" --inflight=16 $extra | grep '^direct' >> "$res"
  done
done
awk '
  { v=$1; for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    n[v]++; cpu[v, n[v]] = f["cpu_us_per_call"]; p50[v, n[v]] = f["p50_us"] }
  function med(a, v, k,   i, j, t, x) { for (i = 1; i <= k; i++) x[i] = a[v, i]
    for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (x[j] < x[i]) { t = x[i]; x[i] = x[j]; x[j] = t }
    return x[int((k + 1) / 2)] }
  END { bc = med(cpu, "direct", n["direct"]); bp = med(p50, "direct", n["direct"])
    for (v in n) { c = med(cpu, v, n[v]); p = med(p50, v, n[v])
      printf "| %s | %.1f | %.0f | %.2f | %.2f |\n", v, c, p, c / bc, p / bp } }' "$res" | sort
rm -f "$res"
