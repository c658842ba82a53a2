#!/bin/bash
# Registration benchmarks (bench/discovery.cc): discovery latency (a new
# registering server's start to the first call it answers) and drain
# (SIGTERM to the last new call it answers, and the calls that failed) with
# 10 and 1000 registered instances; and the registry's load with 1000
# simulated registrants at the default TTL (10 s): keep-alives per second,
# etcd's CPU against its idle CPU measured first in the same run, the
# following client agent's CPU, the registrants' own CPU. Starts its own
# etcd on loopback (stopped by PID at exit) and prints Markdown tables.
#
#   bench/discovery.sh [--changes=N] [--seconds=S] [--sizes=10,1000] [--raw]
#   (defaults 20 rounds, 30 s windows, 10 and 1000 instances; about 3
#   minutes)
#
# --raw prints bench/discovery's own lines.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/testlib.sh
CHANGES=20 SECONDS_=30 RAW=0 SIZES=10,1000
for a in "$@"; do
  case "$a" in
    --changes=*) CHANGES="${a#*=}" ;;
    --seconds=*) SECONDS_="${a#*=}" ;;
    --sizes=*) SIZES="${a#*=}" ;;
    --raw) RAW=1 ;;
    *) echo "usage: bench/discovery.sh [--changes=N] [--seconds=S] [--sizes=N,N...] [--raw]" >&2; exit 2 ;;
  esac
done
[ -x /usr/bin/etcd ] || { echo "etcd-server is not installed (bazel/setup.sh --with-test-tools)" >&2; exit 2; }
echo "building bench/discovery and the greeter server (-c opt)..." >&2
bazel build -c opt --platform_suffix=opt //bench:discovery //examples/greeter:greeter_server >&2
OUT=$(bazel info -c opt --platform_suffix=opt bazel-bin 2>/dev/null)
WORK=$(mktemp -d /tmp/mesh-discovery.XXXXXX)
trap 'stop_started; rm -rf "$WORK"' EXIT
CLIENT=$(free_port); PEER=$(free_port)
/usr/bin/etcd --name=d --data-dir="$WORK/etcd" \
  --listen-client-urls="http://127.0.0.1:$CLIENT" --advertise-client-urls="http://127.0.0.1:$CLIENT" \
  --listen-peer-urls="http://127.0.0.1:$PEER" --initial-advertise-peer-urls="http://127.0.0.1:$PEER" \
  --initial-cluster="d=http://127.0.0.1:$PEER" --log-level=error > "$WORK/etcd.log" 2>&1 &
ETCD_PID=$!
PIDS+=($ETCD_PID)
healthy() {  # etcd's /health, over bash's /dev/tcp (no curl needed)
  exec 3<>"/dev/tcp/127.0.0.1/$CLIENT" 2>/dev/null || return 1
  printf 'GET /health HTTP/1.0\r\n\r\n' >&3
  grep -q '"health":"true"' <&3; local rc=$?
  exec 3<&-
  return $rc
}
for _ in $(seq 100); do
  healthy && break
  sleep 0.1  # Polls another process.
done
B="$OUT/bench/discovery"
run() {  # ARGS...
  "$B" --etcd="127.0.0.1:$CLIENT" "$@" 2>"$WORK/err.log" |
    grep -E "^(discovery|drain|registry) " || { echo "bench/discovery $* failed:" >&2; tail -5 "$WORK/err.log" >&2; exit 1; }
  grep '^failed calls' "$WORK/err.log" >&2 || true
}
{
  for n in ${SIZES//,/ }; do
    echo "discovery and drain, $n registered instances, $CHANGES rounds..." >&2
    run --server="$OUT/examples/greeter/greeter_server" --instances=$n --changes="$CHANGES"
  done
  echo "registry load, 1000 registrants, ${SECONDS_} s (after ${SECONDS_} s idle)..." >&2
  run --registry --instances=1000 --seconds="$SECONDS_" --etcd_pid=$ETCD_PID
} > "$WORK/out"
if [ $RAW = 1 ]; then cat "$WORK/out"; exit 0; fi
echo "| registered instances | discovery p50 | p99 | max | drain: SIGTERM to last new call, p50 | p99 | max | failed calls |"
echo "|---|---|---|---|---|---|---|---|"
awk '$1 == "discovery" { d[$2] = $0 } $1 == "drain" { r[$2] = $0 }
  END { for (n in d) { split(d[n], a, " "); split(r[n], b, " ")
    printf "| %d | %.0f ms | %.0f ms | %.0f ms | %.0f ms | %.0f ms | %.0f ms | %d of %d |\n", n, a[3], a[4], a[5], b[3], b[4], b[5], b[6], b[7] } }' "$WORK/out" | sort -t'|' -k2 -n
echo
echo "| registrants (TTL 10 s) | keep-alives/s | etcd CPU | etcd CPU idle (baseline) | client agent CPU | registrants' CPU |"
echo "|---|---|---|---|---|---|"
awk '$1 == "registry" { printf "| %d | %.0f | %.1f %% | %.1f %% | %.2f %% | %.1f %% |\n", $2, $4, $5, $6, $7, $8 }' "$WORK/out"
