#!/usr/bin/env bash
# mTLS vs plaintext: what SPIFFE mTLS and per-call authorization cost on the
# data path, and what a new connection (TLS handshake) costs. Two
# greeter_servers (mesh servers: one mTLS with the default authorization
# policy, one plaintext) and, per round and mode, separate client processes
# (the mode is fixed per process), interleaved with alternating order.
# Reports medians with min-max and per-round ratios to plaintext, for the
# client and for the server process.
# Usage: bench/mtls_cost.sh [--rounds=N] [--calls=N] [--handshakes=N]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=5 CALLS=20000 HANDSHAKES=200
for a in "$@"; do
  case $a in
    --rounds=*) ROUNDS=${a#--rounds=};;
    --calls=*) CALLS=${a#--calls=};;
    --handshakes=*) HANDSHAKES=${a#--handshakes=};;
    *) echo "usage: bench/mtls_cost.sh [--rounds=N] [--calls=N] [--handshakes=N]"; exit 2;;
  esac
done
bazel/setup.sh
bazel build -c opt --platform_suffix=opt //bench:mtls_cost \
  //examples/greeter:greeter_server //:meshctl 2>&1 | grep -E '^(ERROR|FAILED)' || true
BIN=bazel-bin
WORK=$(mktemp -d /tmp/mesh-mtls-cost-XXXXXX)
source tests/testlib.sh  # PIDS, stop_started, free_port
cleanup() {
  stop_started
  rm -rf "$WORK"
}
trap cleanup EXIT
$BIN/mesh/cli/meshctl dev-certs --dir "$WORK" --trust-domain bench.local \
  bench-server bench-client > /dev/null
LAST=$(( $(nproc) - 1 ))
declare -A PORT SPID
for mode in mtls plaintext; do
  PORT[$mode]=$(free_port)
  cat > "$WORK/$mode.yaml" <<YAML
apiVersion: mesh/v1
trustDomain: bench.local
services:
  - name: greeter
    hostname: greeter.mesh.internal
    identity: spiffe://bench.local/ns/default/sa/bench-server
    endpoints:
      - {address: 127.0.0.1, port: ${PORT[$mode]}, locality: {region: r}}
YAML
  if [ $mode = mtls ]; then
    sec="--cert=$WORK/bench-server.pem --key=$WORK/bench-server.key --bundle=$WORK/ca.pem"
  else
    sec="--plaintext"
  fi
  taskset -c "$LAST" $BIN/examples/greeter/greeter_server \
    --config="$WORK/$mode.yaml" --listen="127.0.0.1:${PORT[$mode]}" $sec \
    > "$WORK/server-$mode.log" 2>&1 &
  SPID[$mode]=$!
  PIDS+=($!)
done
for mode in mtls plaintext; do
  for _ in $(seq 1 200); do
    grep -q "serving" "$WORK/server-$mode.log" && break
    sleep 0.05
  done
  grep -q "serving" "$WORK/server-$mode.log" ||
    { echo "server $mode did not start:"; cat "$WORK/server-$mode.log"; exit 1; }
done
cpu_of() {  # utime+stime of PID in microseconds
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); split($0, f, " ");
    printf "%.0f", (f[12] + f[13]) * 1e6 / hz }' "/proc/$1/stat"
}
echo "# $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), gRPC $(dpkg-query -W -f='${Version}' libgrpc++1.51 2>/dev/null), OpenSSL $(openssl version | cut -d' ' -f2); servers pinned to core $LAST, clients to core 0"
echo "# command: bench/mtls_cost.sh $*"
res="$WORK/results"
for r in $(seq 1 "$ROUNDS"); do
  order="plaintext mtls"; [ $((r % 2)) -eq 0 ] && order="mtls plaintext"
  for mode in $order; do
    for inflight in 1 16; do
      s0=$(cpu_of "${SPID[$mode]}")
      line=$(MESH_LOG_QUIET=1 taskset -c 0 $BIN/bench/mtls_cost --mode=$mode 2>>"$WORK/clients.log" \
        --port="${PORT[$mode]}" --certs="$WORK" --calls="$CALLS" --inflight=$inflight) ||
        { echo "client ($mode) failed:"; cat "$WORK/clients.log"; exit 1; }
      s1=$(cpu_of "${SPID[$mode]}")
      # The server also served the client's 1000 warm-up calls.
      echo "$r $line server_cpu_us_per_call=$(( (s1 - s0) / (CALLS + 1000) ))" >> "$res"
    done
    s0=$(cpu_of "${SPID[$mode]}")
    line=$(MESH_LOG_QUIET=1 taskset -c 0 $BIN/bench/mtls_cost --mode=$mode 2>>"$WORK/clients.log" \
      --port="${PORT[$mode]}" --certs="$WORK" --handshakes="$HANDSHAKES") ||
      { echo "client ($mode) failed:"; cat "$WORK/clients.log"; exit 1; }
    s1=$(cpu_of "${SPID[$mode]}")
    echo "$r $line server_cpu_us_per_connection=$(( (s1 - s0) / (HANDSHAKES + 20) ))" >> "$res"
  done
done
grep -q "failed=[1-9]" "$res" && { echo "some calls failed:"; grep "failed=[1-9]" "$res"; exit 1; }
# Per round, mtls/plaintext for each measure; then medians (min-max).
awk '
  { r = $1; mode = $2; kind = $3; key = kind
    for (i = 4; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    if (kind == "load") key = kind "/" f["inflight"]
    keys[key] = 1
    if (kind == "load") { n = split("cpu_us_per_call p50_us p99_us server_cpu_us_per_call", ms, " ") }
    else { n = split("cpu_us_per_connection p50_us server_cpu_us_per_connection", ms, " ") }
    for (i = 1; i <= n; i++) { v[key, ms[i], mode, r] = f[ms[i]]; measures[key] = measures[key] " " ms[i] }
    rounds[r] = 1 }
  function sortv(a, k,   i, j, t) { for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t } }
  END {
    print "| measure | plaintext (median) | mTLS (median) | mTLS / plaintext: median (min-max) |"
    print "|---|---|---|---|"
    split("load/1 load/16 connect", order, " ")
    for (o = 1; o <= 3; o++) { key = order[o]; n = split(measures[key], ms, " "); delete seen
      for (i = 1; i <= n; i++) { m = ms[i]; if (m in seen) continue; seen[m] = 1
        k = 0; delete pl; delete mt; delete ra
        for (r in rounds) { k++; pl[k] = v[key, m, "plaintext", r]; mt[k] = v[key, m, "mtls", r]
          ra[k] = (pl[k] > 0) ? mt[k] / pl[k] : 0 }
        sortv(pl, k); sortv(mt, k); sortv(ra, k); mid = int((k + 1) / 2)
        label = (key == "connect") ? "new connection: " m : "in flight " substr(key, 6) ": " m
        printf "| %s | %.1f | %.1f | %.2f (%.2f-%.2f) |\n", label, pl[mid], mt[mid], ra[mid], ra[1], ra[k] } } }' "$res"
echo
echo "$ROUNDS rounds x $CALLS calls (1 KB payload) per mode and concurrency, $HANDSHAKES new connections per mode and round; 0 failed calls"
