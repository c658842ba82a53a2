#!/usr/bin/env bash
# The benchmark suite: mesh side by side with a direct channel, proxy hops,
# a sidecar pair and a gateway chain, in one run (docs/benchmarks.md).
#
#   bench/suite.sh            # ~11 minutes on 2 cores; rewrites the suite's
#                             # section of docs/benchmarks.md
#   bench/suite.sh --short    # ~2 minutes: a smoke test of the harness (CI);
#                             # prints the report, leaves the docs alone
#   options: --rounds=N --calls=N (per run, at 1 in flight; 16 in flight
#            runs 4x as many) --out=FILE (write the report there instead)
#
# Every process is started here and stopped by PID at exit. Loopback only;
# every run is bounded by a call count and a duration.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=3 CALLS=10000 SHORT=0 OUT=""
for a in "$@"; do
  case $a in
    --short) SHORT=1;;
    --rounds=*) ROUNDS=${a#--rounds=};;
    --calls=*) CALLS=${a#--calls=};;
    --out=*) OUT=${a#--out=};;
    *) echo "usage: bench/suite.sh [--short] [--rounds=N] [--calls=N] [--out=FILE]"; exit 2;;
  esac
done
COLD_RUNS=15 PHASE=3 RECOVER=8 MICRO_TIME=0.2 PROP_CHANGES=20
DISC_CHANGES=20 DISC_SECONDS=30 DISC_SIZES=10,1000
if [ $SHORT = 1 ]; then
  ROUNDS=1 CALLS=300 COLD_RUNS=3 PHASE=1 RECOVER=3 MICRO_TIME=0.01 PROP_CHANGES=3
  # (A window must hold a keep-alive round, TTL/3; 1000 instances take
  # their setup time, which a smoke test does not need.)
  DISC_CHANGES=2 DISC_SECONDS=5 DISC_SIZES=10,100
fi
COMMAND="bench/suite.sh $*"
log() { echo "[suite] $*" >&2; }

bazel/setup.sh --with-bench-tools
log "building (bazel build -c opt)"
bazel build -c opt --platform_suffix=opt //bench:loadgen //bench:bench_server \
  //bench:failover //bench:cold_start //bench:policy_bench //bench:propagation \
  //examples/gateway //examples/greeter:greeter_server //:meshctl 2>&1 |
  grep -E '^(ERROR|FAILED)' && exit 1
BIN=bazel-bin
WORK=$(mktemp -d /tmp/mesh-suite-XXXXXX)
source tests/testlib.sh  # free_port, PIDS, stop_started
trap 'stop_started; rm -rf "$WORK"' EXIT
source bench/benchlib.sh  # await_port, cpu_ticks, start_nginx, start_haproxy
TCK=$(getconf CLK_TCK)
LAST=$(( $(nproc) - 1 ))

# ---- the servers: plain (most paths) and a mesh mTLS server (mesh-mtls)
start_bench_server taskset -c "$LAST"

mkdir -m 0700 "$WORK/certs"
$BIN/mesh/cli/meshctl dev-certs --dir "$WORK/certs" --trust-domain bench.local \
  greeter loadgen > /dev/null
MTLS=$(free_port)
REFUSED=$(free_port)  # nothing listens: the "local" instance in mesh-remote
cat > "$WORK/mesh.yaml" <<YAML
apiVersion: mesh/v1
trustDomain: bench.local
services:
  - name: bench
    hostname: bench.mesh.internal
    endpoints:
      - {address: 127.0.0.1, port: $B, locality: {region: r1, zone: z1, cluster: c1}}
  - name: remote
    hostname: remote.mesh.internal
    endpoints:
      - {address: 127.0.0.1, port: $REFUSED, locality: {region: r1, zone: z1, cluster: c1}}
      - {address: 127.0.0.1, port: $B, locality: {region: r2, zone: z9, cluster: c9}}
  - name: greeter
    hostname: greeter.mesh.internal
    endpoints:
      - {address: 127.0.0.1, port: $MTLS, locality: {region: r1, zone: z1, cluster: c1}}
YAML
MESH_LOG_QUIET=1 taskset -c "$LAST" $BIN/examples/greeter/greeter_server \
  --config="$WORK/mesh.yaml" --listen="127.0.0.1:$MTLS" --locality=r1/z1/c1 \
  --cert="$WORK/certs/greeter.pem" --key="$WORK/certs/greeter.key" \
  --bundle="$WORK/certs/ca.pem" > "$WORK/mtls-server.log" 2>&1 &
MTLS_PID=$!
PIDS+=($MTLS_PID)

# ---- the proxies
N=$(free_port); start_nginx nginx "$N" "$B"; NGINX_PID=$STARTED
H=$(free_port); start_haproxy haproxy "$H" "$B"; HAPROXY_PID=$STARTED
S2=$(free_port); start_nginx sidecar-server "$S2" "$B"; SIDECAR2_PID=$STARTED
S1=$(free_port); start_nginx sidecar-client "$S1" "$S2"; SIDECAR1_PID=$STARTED
G2=$(free_port); start_haproxy gateway-remote "$G2" "$B"; GW2_PID=$STARTED
G1=$(free_port); start_haproxy gateway-local "$G1" "$G2"; GW1_PID=$STARTED
GW=$(free_port)
cat > "$WORK/gateway.yaml" <<YAML
listen: 127.0.0.1:$GW
plaintext: true
allowUnauthenticated: true
routes:
  - {host: "*", destination: bench.mesh.internal}
limits: {maxStreamsPerClient: 10000}
YAML
MESH_LOG_QUIET=1 $BIN/examples/gateway/gateway --gateway_config="$WORK/gateway.yaml" \
  --config="$WORK/mesh.yaml" --plaintext --locality=r1/z1/c1 > "$WORK/gateway.log" 2>&1 &
MESHGW_PID=$!
PIDS+=($MESHGW_PID)
for p in $N $H $S1 $S2 $G1 $G2 $GW; do await_port "$p"; done
for _ in $(seq 400); do grep -q serving "$WORK/mtls-server.log" && break; sleep 0.05; done

# ---- closed loop: every path, interleaved in rounds
# run PATH INFLIGHT: prints the loadgen line plus server_cpu= proxy_cpu=
# (µs per call).
run() {
  local args=() server=$SERVER proxies=() calls=$CALLS
  [ "$2" -gt 1 ] && calls=$(( CALLS * 4 ))
  case $1 in
    direct) args=(--target=127.0.0.1:$B);;
    mesh) args=(--mesh_config="$WORK/mesh.yaml" --mesh_host=bench.mesh.internal --plaintext --locality=r1/z1/c1);;
    mesh-mtls) server=$MTLS_PID
      args=(--mesh_config="$WORK/mesh.yaml" --mesh_host=greeter.mesh.internal --locality=r1/z1/c1
            --cert="$WORK/certs/loadgen.pem" --key="$WORK/certs/loadgen.key" --bundle="$WORK/certs/ca.pem");;
    nginx) args=(--target=127.0.0.1:$N); proxies=($NGINX_PID);;
    haproxy) args=(--target=127.0.0.1:$H); proxies=($HAPROXY_PID);;
    gateway) args=(--target=127.0.0.1:$GW); proxies=($MESHGW_PID);;
    sidecars) args=(--target=127.0.0.1:$S1); proxies=($SIDECAR1_PID $SIDECAR2_PID);;
    chain) args=(--target=127.0.0.1:$G1); proxies=($GW1_PID $GW2_PID);;
    mesh-remote) args=(--mesh_config="$WORK/mesh.yaml" --mesh_host=remote.mesh.internal --plaintext --locality=r1/z1/c1);;
  esac
  local s0 p0 s1 p1 line
  s0=$(cpu_ticks "$server"); p0=$( [ ${#proxies[@]} -gt 0 ] && cpu_ticks "${proxies[@]}" || echo 0)
  line=$(MESH_LOG_QUIET=1 taskset -c 0 $BIN/bench/loadgen "${args[@]}" --calls="$calls" \
         --inflight="$2" --warmup=200 --duration_s=120 || true)
  s1=$(cpu_ticks "$server"); p1=$( [ ${#proxies[@]} -gt 0 ] && cpu_ticks "${proxies[@]}" || echo 0)
  # The warm-up (200 calls and the first call) ran on the servers and
  # proxies too.
  awk -v s=$(( s1 - s0 )) -v p=$(( p1 - p0 )) -v tck="$TCK" -v n=$(( calls + 201 )) -v l="$line" \
    'BEGIN { printf "%s server_cpu=%.1f proxy_cpu=%.1f\n", l, s * 1e6 / tck / n, p * 1e6 / tck / n }'
}
PATHS="direct mesh mesh-mtls nginx haproxy gateway sidecars chain mesh-remote"
RESULTS="$WORK/closed"
: > "$RESULTS"
for r in $(seq "$ROUNDS"); do
  for inflight in 1 16; do
    for p in $PATHS; do
      line=$(run "$p" "$inflight")
      echo "round=$r inflight=$inflight path=$p $line" >> "$RESULTS"
      log "round $r/$ROUNDS, $inflight in flight, $p: $(echo "$line" | grep -o 'p50_us=[^ ]*\|cpu_us_per_call=[^ ]*\|failed=[^ ]*' | tr '\n' ' ')"
    done
  done
done

# ---- F: failover and failback
: > "$WORK/failover"
for r in $(seq "$ROUNDS"); do
  for kind in refused killed hung; do
    log "failover round $r/$ROUNDS: $kind"
    MESH_LOG_QUIET=1 $BIN/bench/failover --server=$BIN/bench/bench_server --kind=$kind \
      --phase_s=$PHASE --recover_s=$RECOVER | sed "s/^/round=$r /" >> "$WORK/failover" || true
  done
done

# ---- G: cold start, main() to the first successful call
log "cold start: $COLD_RUNS runs each"
cat > "$WORK/cold.yaml" <<YAML
apiVersion: mesh/v1
trustDomain: bench.local
services:
  - name: greeter
    hostname: greeter.mesh.internal
    endpoints:
      - {address: 127.0.0.1, port: $B, locality: {region: r1, zone: z1, cluster: c1}}
YAML
: > "$WORK/cold"
for i in $(seq "$COLD_RUNS"); do
  for mode in direct mesh; do
    echo "mode=$mode us=$(MESH_LOG_QUIET=1 $BIN/bench/cold_start --mode=$mode --port="$B" \
      --config="$WORK/cold.yaml")" >> "$WORK/cold"
  done
done

# ---- micro-benchmarks of the pure stages (Google Benchmark)
log "micro-benchmarks (policy_bench)"
$BIN/bench/policy_bench --benchmark_min_time=$MICRO_TIME --benchmark_format=csv \
  2>/dev/null > "$WORK/micro.csv"

# ---- config propagation and memory per endpoint (its own etcd)
log "propagation (bench/propagation.sh)"
bench/propagation.sh --changes=$PROP_CHANGES --raw > "$WORK/propagation" 2>"$WORK/propagation.log" ||
  { tail -5 "$WORK/propagation.log" >&2; }

# ---- registration: discovery, drain, registry load (its own etcd)
log "discovery (bench/discovery.sh)"
bench/discovery.sh --changes=$DISC_CHANGES --seconds=$DISC_SECONDS --sizes=$DISC_SIZES > "$WORK/discovery.md" \
  2>"$WORK/discovery.log" || { tail -5 "$WORK/discovery.log" >&2; }

# ---- the harness checks itself: every run produced figures, no call failed
# in the closed-loop runs (timings are never asserted).
problems=()
want=$(( ROUNDS * 2 * $(echo $PATHS | wc -w) ))
[ "$(grep -c ' ok=[1-9]' "$RESULTS")" = "$want" ] ||
  problems+=("closed loop: $(grep -c ' ok=[1-9]' "$RESULTS") of $want runs produced results")
grep -qE ' (failed|dropped)=[1-9]' "$RESULTS" &&
  problems+=("closed loop: failed calls in: $(grep -E ' (failed|dropped)=[1-9]' "$RESULTS" | grep -o 'path=[^ ]*' | sort -u | tr '\n' ' ')")
[ "$(grep -c 'failover_ms=' "$WORK/failover")" = $(( ROUNDS * 3 )) ] ||
  problems+=("failover: $(grep -c 'failover_ms=' "$WORK/failover") of $(( ROUNDS * 3 )) runs")
[ "$(grep -cE 'us=[0-9]+$' "$WORK/cold")" = $(( COLD_RUNS * 2 )) ] ||
  problems+=("cold start: $(grep -cE 'us=[0-9]+$' "$WORK/cold") of $(( COLD_RUNS * 2 )) runs")
[ "$(grep -c '^propagation ' "$WORK/propagation")" = 4 ] ||
  problems+=("propagation: $(grep -c '^propagation ' "$WORK/propagation") of 4 runs")
[ "$(grep -cE '^\| [0-9]+ \| [0-9]+ ms \|' "$WORK/discovery.md")" = "$(echo "${DISC_SIZES//,/ }" | wc -w)" ] &&
  [ "$(grep -cE '^\| 1000 \| [0-9]+ \| ' "$WORK/discovery.md")" = 1 ] ||
  problems+=("discovery: not every run produced figures (see bench/discovery.sh)")
grep -qE '\| [1-9][0-9]* of [0-9]+ \|$' "$WORK/discovery.md" &&
  problems+=("discovery: calls failed during the add-and-drain rounds")
[ "$(grep -c '^"BM_' "$WORK/micro.csv")" -ge 20 ] ||
  problems+=("micro-benchmarks: $(grep -c '^"BM_' "$WORK/micro.csv") results")

# ---- the report
REPORT="$WORK/report.md"
python3 bench/suite_report.py --closed "$RESULTS" --failover "$WORK/failover" \
  --cold "$WORK/cold" --micro "$WORK/micro.csv" --command "$COMMAND" \
  --propagation "$WORK/propagation" \
  --rounds "$ROUNDS" --calls "$CALLS" > "$REPORT"
{
  echo
  echo "### I: registration: discovery, drain, registry load (bench/discovery.sh)"
  echo
  echo "Discovery: a registering server's start to the first call it answers;"
  echo "drain: SIGTERM to the last new call it answers (docs/benchmarks.md,"
  echo "\"Discovery, drain and the registry's load\", says how)."
  echo
  cat "$WORK/discovery.md"
} >> "$REPORT"
# The report's shape (the scale issue found a cold start heading over the
# propagation table, and that section twice): each section once, in order,
# each heading over its own table.
if ! shape=$(python3 - "$REPORT" <<'PY'
import sys
lines = open(sys.argv[1]).read().split("\n")
want = [("### F: failover", "| failure |"), ("### G: cold start", "| variant |"),
        ("### H: config propagation", "| source | endpoints |"),
        ("### Pure stages", "| benchmark |"), ("### I: registration", "|")]
heads = [i for i, l in enumerate(lines) if l.startswith("### ")]
bad = []
order = [next((w for w, _ in want if lines[i].startswith(w)), lines[i]) for i in heads]
if order != [w for w, _ in want]:
    bad.append("sections %s, expected %s" % (order, [w for w, _ in want]))
for i in heads:
    for head, table in want:
        if lines[i].startswith(head):
            first = next((l for l in lines[i + 1:] if l.startswith("|") or l.startswith("### ")), "")
            if not first.startswith(table):
                bad.append("%r is followed by %r" % (head, first[:60]))
print("; ".join(bad))
sys.exit(1 if bad else 0)
PY
); then
  problems+=("the report's sections are out of shape: $shape")
fi
if [ -n "$OUT" ]; then
  cp "$REPORT" "$OUT"
elif [ $SHORT = 1 ]; then
  cat "$REPORT"
else
  python3 - "$REPORT" docs/benchmarks.md <<'PY'
import sys
report, doc = open(sys.argv[1]).read(), sys.argv[2]
text = open(doc).read()
begin, end = "<!-- suite:begin -->", "<!-- suite:end -->"
block = begin + "\n" + report.rstrip() + "\n" + end
if begin in text and end in text:
    text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
else:
    title, _, rest = text.partition("\n")
    text = title + "\n\n" + block + "\n" + rest
open(doc, "w").write(text)
PY
  log "docs/benchmarks.md rewritten (the suite's section)"
fi
if [ ${#problems[@]} -gt 0 ]; then
  for p in "${problems[@]}"; do log "HARNESS PROBLEM: $p"; done
  exit 1
fi
log "done"
