#!/usr/bin/env bash
# Client instructions per call, counted by callgrind (repeatable, unlike CPU
# time on a shared 2-core machine). Each variant runs alone for N and 2N
# calls; (I(2N) - I(N)) / N removes start-up and warm-up. The mesh agent is a
# child process and is not counted here (its CPU is reported by
# bench/mesh_vs_direct.sh).
# Usage: bench/instructions_per_call.sh [N=1000] [INFLIGHT=1]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
K=${2:-1}
bazel/setup.sh
command -v valgrind >/dev/null || apt-get install -y -q valgrind >&2
bazel build -c opt --platform_suffix=opt //bench:bench_server //bench:mesh_vs_direct //:mesh_agent 2>&1 |
  grep -E '^(ERROR|FAILED)' || true
BIN=$PWD/bazel-bin
out=$(mktemp)
$BIN/bench/bench_server > "$out" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -f "$out"' EXIT
for _ in $(seq 1 100); do [ -s "$out" ] && break; sleep 0.05; done
port=$(head -1 "$out")
count() {  # count CALLS ARGS...: instructions of the client process
  local calls=$1; shift
  MESH_AGENT_PATH=$BIN/mesh/agent/mesh_agent MESH_LOG_QUIET=1 \
    valgrind --tool=callgrind --callgrind-out-file=/dev/null \
    $BIN/bench/mesh_vs_direct --port="$port" --calls="$calls" --inflight="$K" "$@" 2>&1 |
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
echo "# instructions per call (callgrind), $N-call difference, $K in flight, 1024-byte payload"
echo "# command: bench/instructions_per_call.sh $N $K"
echo "| variant | instructions/call | ratio to direct |"
echo "|---|---|---|"
base=""
for v in "direct:--only=direct" "mesh:--only=mesh" "mesh + optional call metrics:--only=mesh+call-metrics" "direct + idle in-process gRPC server:--only=direct --inproc_server"; do
  name=${v%%:*}; args=${v#*:}
  a=$(count "$N" $args); b=$(count "$((2 * N))" $args)
  per=$(( (b - a) / N ))
  [ -n "$base" ] || base=$per
  printf '| %s | %d | %s |\n' "$name" "$per" "$(awk -v p="$per" -v b="$base" 'BEGIN{printf "%.3f", p/b}')"
done
