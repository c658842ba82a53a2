#!/usr/bin/env bash
# Where a proxied call's cost goes: the mesh gateway next to nginx
# grpc_pass, one hop each to the same bench_server (docs/benchmarks.md
# "Gateway: where a proxied call's time goes").
#
#   bench/gateway_breakdown.sh [--calls=N] [--top=K] [--skip_callgrind]
#       [--callgrind=grpc-server,gateway,nginx]  (which to profile)
#   GATEWAY_ARGS="--threads=2" bench/gateway_breakdown.sh  (gateway flags)
#
# 1. Context switches per call (voluntary + involuntary, summed over every
#    thread of the proxy, from /proc/PID/task/*/status, and by thread name)
#    and proxy CPU per call, at 1 and 16 in flight, N calls each after a
#    warm-up.
# 2. Instructions per call by function (callgrind, inclusive), each proxy
#    under valgrind with instrumentation switched on only for N calls after
#    a warm-up (callgrind_control), so start-up is not counted.
# Loopback only; every load run is bounded by a call count and a duration.
set -euo pipefail
cd "$(dirname "$0")/.."
CALLS=2000 TOP=25 CALLGRIND=1 PROFILED="grpc-client grpc-server gateway nginx"
for a in "$@"; do
  case $a in
    --calls=*) CALLS=${a#--calls=};;
    --top=*) TOP=${a#--top=};;
    --skip_callgrind) CALLGRIND=0;;
    --callgrind=*) PROFILED=${a#--callgrind=}; PROFILED=${PROFILED//,/ };;
    *) echo "usage: bench/gateway_breakdown.sh [--calls=N] [--top=K] [--skip_callgrind] [--callgrind=LIST]"; exit 2;;
  esac
done
log() { echo "[breakdown] $*" >&2; }
bazel/setup.sh --with-bench-tools
command -v valgrind >/dev/null || apt-get install -y -q valgrind >&2
log "building (bazel build -c opt)"
bazel build -c opt --platform_suffix=opt //bench:loadgen //bench:bench_server \
  //examples/gateway //:mesh_agent 2>&1 | grep -E '^(ERROR|FAILED)' && exit 1
BIN=$PWD/bazel-bin
WORK=$(mktemp -d /tmp/mesh-breakdown-XXXXXX)
source tests/testlib.sh  # free_port, PIDS, stop_started
source bench/benchlib.sh  # start_bench_server, await_port, cpu_ticks, start_nginx
trap 'stop_started; rm -rf "$WORK"' EXIT
# switches PID: context switches so far, every thread of PID and its children.
switches() {
  local p total=0
  for p in "$1" $(pgrep -P "$1" || true); do
    total=$(( total + $(cat /proc/$p/task/*/status 2>/dev/null |
      awk '/ctxt_switches/ {s += $2} END {print s + 0}') ))
  done
  echo $total
}
# thread_switches PID: "TID NAME SWITCHES" for every thread of PID and of
# its children (nginx's worker).
thread_switches() {
  local t
  for t in /proc/$1/task/* $(for c in $(pgrep -P "$1" || true); do echo /proc/$c/task/*; done); do
    echo "$(basename "$t") $(tr ' ' _ < "$t/comm") $(awk '/ctxt_switches/ {s += $2} END {print s + 0}' "$t/status" 2>/dev/null)"
  done | sort
}
TCK=$(getconf CLK_TCK)

start_bench_server
cat > "$WORK/mesh.yaml" <<YAML
apiVersion: mesh/v1
trustDomain: bench.local
services:
  - name: bench
    hostname: bench.mesh.internal
    endpoints:
      - {address: 127.0.0.1, port: $B, locality: {region: r1, zone: z1, cluster: c1}}
YAML
# start_gateway PORT [WRAP...]: the gateway on PORT; its PID in STARTED.
start_gateway() {
  local port=$1; shift
  cat > "$WORK/gateway-$port.yaml" <<YAML
listen: 127.0.0.1:$port
plaintext: true
allowUnauthenticated: true
routes:
  - {host: "*", destination: bench.mesh.internal}
limits: {maxStreamsPerClient: 10000}
YAML
  MESH_AGENT_PATH=$BIN/mesh/agent/mesh_agent MESH_LOG_QUIET=1 "$@" \
    $BIN/examples/gateway/gateway --gateway_config="$WORK/gateway-$port.yaml" \
    --config="$WORK/mesh.yaml" --plaintext --locality=r1/z1/c1 ${GATEWAY_ARGS:-} > "$WORK/gateway-$port.log" 2>&1 &
  STARTED=$!
  PIDS+=($STARTED)
}
load() {  # load PORT INFLIGHT CALLS WARMUP: one bounded loadgen run
  $BIN/bench/loadgen --target=127.0.0.1:$1 --inflight=$2 --calls=$3 --warmup=$4 \
    --duration_s=300
}

echo "# Gateway vs nginx: context switches and CPU per proxied call"
echo "# command: bench/gateway_breakdown.sh --calls=$CALLS; $(nproc) cores; 1024-byte payload"
echo
echo "| proxy | in flight | context switches/call | proxy CPU µs/call | p50 µs | QPS |"
echo "|---|---|---|---|---|---|"
N=$(free_port); start_nginx nginx "$N" "$B"; NGINX=$STARTED
G=$(free_port); start_gateway "$G"; GATEWAY=$STARTED
await_port "$N"; await_port "$G"
for inflight in 1 16; do
  for p in gateway nginx; do
    if [ $p = gateway ]; then port=$G pid=$GATEWAY; else port=$N pid=$NGINX; fi
    load "$port" "$inflight" 200 0 > /dev/null  # warm-up
    s0=$(switches $pid); t0=$(cpu_ticks $pid); thread_switches $pid > "$WORK/threads0"
    line=$(load "$port" "$inflight" "$CALLS" 0)
    s1=$(switches $pid); t1=$(cpu_ticks $pid); thread_switches $pid > "$WORK/threads1"
    ok=$(echo "$line" | sed -n 's/.* ok=\([0-9]*\).*/\1/p')
    p50=$(echo "$line" | sed -n 's/.*p50_us=\([0-9.]*\).*/\1/p')
    qps=$(echo "$line" | sed -n 's/.*qps=\([0-9.]*\).*/\1/p')
    # The first call (not counted in ok) ran through the proxy too.
    awk -v s=$(( s1 - s0 )) -v t=$(( t1 - t0 )) -v n=$(( ok + 1 )) -v tck=$TCK \
      -v p=$p -v k=$inflight -v p50="$p50" -v qps="$qps" \
      'BEGIN { printf "| %s | %d | %.2f | %.1f | %s | %s |\n", p, k, s / n, t * 1e6 / tck / n, p50, qps }'
    log "$p, $inflight in flight: $line"
    # Which threads switch (names as the kernel has them; a thread that
    # switches less than once per 20 calls is left out).
    join "$WORK/threads0" "$WORK/threads1" | awk -v n=$(( ok + 1 )) '
      { d = ($5 - $3) / n; if (d >= 0.05) by[$2] += d }
      END { for (t in by) printf "%s %.2f\n", t, by[t] }' |
      sort > "$WORK/threads.$p.$inflight"
  done
done
echo
echo "Context switches per call by thread name:"
echo
echo "| proxy | in flight | thread: switches per call |"
echo "|---|---|---|"
for inflight in 1 16; do
  for p in gateway nginx; do
    echo "| $p | $inflight | $(awk '{printf "%s%s: %s", (NR > 1 ? ", " : ""), $1, $2}' "$WORK/threads.$p.$inflight") |"
  done
done
# stop_proxies: every started process but the server.
stop_proxies() {
  local p
  for p in "${PIDS[@]}"; do [ "$p" = "$SERVER" ] || kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do [ "$p" = "$SERVER" ] || wait "$p" 2>/dev/null || true; done
  PIDS=($SERVER)
}
stop_proxies

[ $CALLGRIND = 1 ] || exit 0
# callgrind PROXY INFLIGHT: instructions per call, by function.
callgrind() {
  local proxy=$1 inflight=$2 port out="$WORK/callgrind.$1.$2"
  port=$(free_port)
  local wrap=(valgrind --tool=callgrind --instr-atstart=no --trace-children=yes
              --callgrind-out-file="$out.%p")
  if [ "$proxy" = gateway ]; then
    start_gateway "$port" "${wrap[@]}"
  elif [ "$proxy" = "grpc-server" ]; then
    "${wrap[@]}" $BIN/bench/bench_server --port=$port > /dev/null 2>&1 &
    STARTED=$!; PIDS+=($STARTED)
  else
    # One process (no worker to attach to; it would run as nobody).
    NGINX_EXTRA="master_process off;" PROXY_WRAP="${wrap[*]}" start_nginx "cg-$port" "$port" "$B"
  fi
  local pid=$STARTED
  await_port "$port"
  load "$port" "$inflight" 200 0 > /dev/null  # warm-up, not counted
  # Instrumentation on in the proxy's processes (nginx: master and worker).
  local p
  for p in $pid $(pgrep -P $pid || true); do callgrind_control -i on $p > /dev/null; done
  local line ok
  line=$(load "$port" "$inflight" "$CALLS" 0)
  ok=$(echo "$line" | sed -n 's/.* ok=\([0-9]*\).*/\1/p')
  for p in $pid $(pgrep -P $pid || true); do callgrind_control -i off $p > /dev/null; done
  stop_proxies
  # Every process's profile (gateway: the gateway, not its agent, which
  # does no per-call work; nginx: the worker).
  local files=("$out".*) total=0 f biggest="" most=0
  for f in "${files[@]}"; do
    local n
    n=$(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
    [ -n "$n" ] || n=0
    total=$(( total + n ))
    if [ "$n" -gt "$most" ]; then most=$n; biggest=$f; fi
  done
  echo
  echo "### $proxy, $inflight in flight: $(( total / (ok + 1) )) instructions per call"
  echo
  echo "Inclusive instructions per call, top $TOP functions of the busiest process:"
  echo
  echo '```'
  callgrind_annotate --inclusive=yes --threshold=100 "$biggest" > "$out.txt" 2>/dev/null
  # "1,234 (5.6%)  file:function(args) [/path/lib.so]" -> "per-call  function  lib.so"
  awk -v n=$(( ok + 1 )) -v top="$TOP" '
    /^-+$/ { dashes++; next }
    dashes >= 4 && $1 ~ /^[0-9,]+$/ && shown < top {
      c = $1; gsub(",", "", c)
      lib = ""; if (match($0, /\[[^]]*\]$/)) { lib = substr($0, RSTART + 1, RLENGTH - 2); sub(/.*\//, "", lib) }
      f = $0; sub(/^ *[0-9,]+ +\([^)]*\) +/, "", f); sub(/ \[[^]]*\]$/, "", f); sub(/^[^:]*:/, "", f)
      if (f !~ /^\(below main\)/) sub(/\(.*$/, "", f)
      printf "%9.0f  %-90s %s\n", c / n, substr(f, 1, 90), lib
      shown++
    }' "$out.txt"
  echo '```'
  echo
  echo "Self instructions per call by library (where the work is done):"
  echo
  echo '```'
  callgrind_annotate --threshold=100 "$biggest" 2>/dev/null |
    awk -v n=$(( ok + 1 )) '
      /^-+$/ { dashes++; next }
      dashes >= 4 && $1 ~ /^[0-9,]+$/ {
        c = $1; gsub(",", "", c)
        if (!match($0, /\[[^]]*\]$/)) next  # PROGRAM TOTALS
        lib = substr($0, RSTART + 1, RLENGTH - 2); sub(/.*\//, "", lib)
        by[lib] += c
      }
      END { for (l in by) printf "%9.0f  %s\n", by[l] / n, l }' | sort -rn | head -12
  echo '```'
  rm -f "${files[@]}" "$out.txt"
}
echo
echo "## Instructions per call (callgrind)"
echo
echo "The floor: what gRPC C++ itself costs per call, measured on its own."
echo "A proxy built on it runs one server call and one client call per"
echo "proxied call."
echo
# The client half: loadgen straight to bench_server, N and 2N calls; the
# difference divided by N excludes start-up.
client_instructions() {  # client_instructions INFLIGHT CALLS
  valgrind --tool=callgrind --callgrind-out-file=/dev/null $BIN/bench/loadgen \
    --target=127.0.0.1:$B --inflight=$1 --calls=$2 --warmup=200 --duration_s=300 2>&1 |
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
for inflight in 1 16; do
  [[ " $PROFILED " == *" grpc-client "* ]] || continue
  log "callgrind: a gRPC client alone, $inflight in flight"
  a=$(client_instructions $inflight "$CALLS"); b=$(client_instructions $inflight $(( 2 * CALLS )))
  echo "- gRPC client alone (loadgen, async API), $inflight in flight: $(( (b - a) / CALLS )) instructions per call"
done
for inflight in 1 16; do
  for p in grpc-server gateway nginx; do
    [[ " $PROFILED " == *" $p "* ]] || continue
    log "callgrind: $p, $inflight in flight"
    callgrind $p $inflight
  done
done
