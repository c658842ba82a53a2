#!/bin/bash
# Propagation of a config change to routing, and memory per endpoint
# (bench/propagation.cc), at 1k and 10k endpoints: the config file (rename)
# and etcd (put of one cluster's endpoint set). Starts its own etcd on
# loopback (stopped by PID at exit) and prints a Markdown table.
#
#   bench/propagation.sh [--changes=N] [--raw]   (default 20; about 45 s)
#
# --raw prints bench/propagation's own lines (for bench/suite.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/testlib.sh
CHANGES=20 RAW=0
for a in "$@"; do
  case "$a" in
    --changes=*) CHANGES="${a#*=}" ;;
    --raw) RAW=1 ;;
    *) echo "usage: bench/propagation.sh [--changes=N] [--raw]" >&2; exit 2 ;;
  esac
done
[ -x /usr/bin/etcd ] || { echo "etcd-server is not installed (bazel/setup.sh --with-test-tools)" >&2; exit 2; }
echo "building bench/propagation (-c opt)..." >&2
# The same configuration as bench/suite.sh, so that they share outputs.
bazel build -c opt --platform_suffix=opt //bench:propagation >&2
BIN=$(bazel info -c opt --platform_suffix=opt bazel-bin 2>/dev/null)/bench/propagation
WORK=$(mktemp -d /tmp/mesh-propagation.XXXXXX)
trap 'stop_started; rm -rf "$WORK"' EXIT
CLIENT=$(free_port); PEER=$(free_port)
/usr/bin/etcd --name=p --data-dir="$WORK/etcd" \
  --listen-client-urls="http://127.0.0.1:$CLIENT" --advertise-client-urls="http://127.0.0.1:$CLIENT" \
  --listen-peer-urls="http://127.0.0.1:$PEER" --initial-advertise-peer-urls="http://127.0.0.1:$PEER" \
  --initial-cluster="p=http://127.0.0.1:$PEER" --log-level=error > "$WORK/etcd.log" 2>&1 &
PIDS+=($!)
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
run() {  # MODE N
  local extra=()
  [ "$1" = etcd ] && extra=(--etcd="127.0.0.1:$CLIENT")
  echo "propagation $1 $2 endpoints, $CHANGES changes..." >&2
  "$BIN" --endpoints="$2" --changes="$CHANGES" --dir="$WORK" "${extra[@]}" 2>"$WORK/err.log" \
    | grep -E '^(propagation|etcd-put) ' || { tail -5 "$WORK/err.log" >&2; exit 1; }
}
{
  run file 1000; run file 10000; run etcd 1000; run etcd 10000
} > "$WORK/out"
if [ $RAW = 1 ]; then cat "$WORK/out"; exit 0; fi
echo "| source | endpoints | p50 | p99 | max | of which etcd put (p50) | client memory per endpoint (RSS) | of which heap in use | agent memory per endpoint (RSS) |"
echo "|---|---|---|---|---|---|---|---|---|"
awk '
  $1 == "etcd-put" { put[$2] = $3; next }
  { row[NR] = $0 }
  END {
    for (i = 1; i <= NR; i++) {
      if (!(i in row)) continue
      split(row[i], f, " ")
      p = (f[2] == "etcd" && (f[3] in put)) ? sprintf("%.1f ms", put[f[3]]) : "-"
      cm = f[7] < 0 ? "-" : sprintf("%.1f KB", f[7] / 1024)
      am = f[8] < 0 ? "-" : sprintf("%.1f KB", f[8] / 1024)
      hm = f[9] < 0 ? "-" : sprintf("%.1f KB", f[9] / 1024)
      printf "| %s | %d | %.1f ms | %.1f ms | %.1f ms | %s | %s | %s | %s |\n", f[2], f[3], f[4], f[5], f[6], p, cm, hm, am
    }
  }' "$WORK/out"
