#!/usr/bin/env bash
# One hop in front of a gRPC server: the mesh gateway vs nginx grpc_pass.
# Same plain gRPC server (bench_server), same client (load_client), 1 KB
# unary calls on loopback, plaintext on both sides of the hop (so neither
# pays for TLS) and no caller authentication (the gateway with
# allowUnauthenticated: true; nginx checks nothing either). Variants run
# interleaved in rounds: direct (the baseline), nginx, gateway; at 1 and 16
# calls in flight. Reports medians (min-max) of client p50/p99 and CPU per
# call for the client and for the hop process (nginx master+worker; the
# gateway with its mesh agent), and each as a ratio to the same round's
# direct or nginx figure.
# Usage: bench/gateway_vs_nginx.sh [--rounds=N] [--calls=N]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=3 CALLS=20000
for a in "$@"; do
  case $a in
    --rounds=*) ROUNDS=${a#--rounds=};;
    --calls=*) CALLS=${a#--calls=};;
    *) echo "usage: bench/gateway_vs_nginx.sh [--rounds=N] [--calls=N]"; exit 2;;
  esac
done
bazel/setup.sh --with-bench-tools
bazel build -c opt --platform_suffix=opt //bench:load_client //bench:bench_server \
  //examples/gateway 2>&1 | grep -E '^(ERROR|FAILED)' || true
BIN=bazel-bin
WORK=$(mktemp -d /tmp/mesh-gw-bench-XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
free_port() {
  local p
  while :; do
    p=$(( 20000 + RANDOM % 30000 ))
    ss -Hltn "sport = :$p" | grep -q . || { echo $p; return; }
  done
}
# cpu_ticks PID...: user+system clock ticks of the processes and their
# children (the gateway's agent, nginx's worker).
cpu_ticks() {
  local total=0 p
  for p in "$@" $(for q in "$@"; do pgrep -P "$q" || true; done); do
    [ -r /proc/$p/stat ] || continue
    total=$(( total + $(awk '{sub(/.*\) /, ""); print $12 + $13}' /proc/$p/stat) ))
  done
  echo $total
}
TCK=$(getconf CLK_TCK)

$BIN/bench/bench_server > "$WORK/server.port" &
PIDS+=($!)
for _ in $(seq 200); do [ -s "$WORK/server.port" ] && break; sleep 0.05; done
BACKEND=$(head -1 "$WORK/server.port")

NGINX_PORT=$(free_port)
mkdir -p "$WORK/nginx"
cat > "$WORK/nginx/nginx.conf" <<NGINX
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  upstream backend { server 127.0.0.1:$BACKEND; keepalive 16; }
  server {
    listen 127.0.0.1:$NGINX_PORT http2;
    location / { grpc_pass grpc://backend; }
  }
}
NGINX
nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" -g 'daemon off;' &
NGINX_PID=$!
PIDS+=($NGINX_PID)

GW_PORT=$(free_port)
cat > "$WORK/mesh.yaml" <<YAML
apiVersion: mesh/v1
trustDomain: bench.local
services:
  - name: bench
    hostname: bench.mesh.internal
    endpoints:
      - {address: 127.0.0.1, port: $BACKEND, locality: {region: r1}}
YAML
cat > "$WORK/gateway.yaml" <<YAML
listen: 127.0.0.1:$GW_PORT
plaintext: true
allowUnauthenticated: true
routes:
  - {host: "*", destination: bench.mesh.internal}
limits: {maxStreamsPerClient: 1000}
YAML
MESH_LOG_QUIET=1 $BIN/examples/gateway/gateway --gateway_config="$WORK/gateway.yaml" \
  --config="$WORK/mesh.yaml" --plaintext --locality=r1 > "$WORK/gateway.log" 2>&1 &
GW_PID=$!
PIDS+=($GW_PID)
for _ in $(seq 400); do grep -q "listening on" "$WORK/gateway.log" && break; sleep 0.05; done
grep -q "listening on" "$WORK/gateway.log" || { cat "$WORK/gateway.log"; exit 1; }

# run VARIANT INFLIGHT: one measurement; prints "p50 p99 client_cpu hop_cpu"
# (microseconds; hop CPU per call, 0 for direct).
run() {
  local target hop=() line t0 t1
  case $1 in
    direct) target=127.0.0.1:$BACKEND;;
    nginx) target=127.0.0.1:$NGINX_PORT; hop=($NGINX_PID);;
    gateway) target=127.0.0.1:$GW_PORT; hop=($GW_PID);;
  esac
  t0=$( [ ${#hop[@]} -gt 0 ] && cpu_ticks "${hop[@]}" || echo 0)
  line=$($BIN/bench/load_client --target="$target" --authority=api.example.test \
         --calls="$CALLS" --inflight="$2")
  t1=$( [ ${#hop[@]} -gt 0 ] && cpu_ticks "${hop[@]}" || echo 0)
  # The warm-up calls (500) ran too: hop CPU is over calls + 500.
  echo "$line" | awk -v d=$(( t1 - t0 )) -v tck="$TCK" -v n=$(( CALLS + 500 )) '{
    for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    if (v["failed"] != 0) { print "FAILED " $0 > "/dev/stderr"; exit 1 }
    printf "%.1f %.1f %.1f %.1f\n", v["p50_us"], v["p99_us"], v["cpu_us_per_call"], d * 1e6 / tck / n }'
}

echo "[bench] $ROUNDS rounds x {direct, nginx, gateway} x {1, 16} in flight, $CALLS calls each" >&2
RESULTS="$WORK/results"
: > "$RESULTS"
for r in $(seq "$ROUNDS"); do
  for inflight in 1 16; do
    for v in direct nginx gateway; do
      echo "$r $inflight $v $(run $v $inflight)" >> "$RESULTS"
      echo "[bench] round $r, $inflight in flight, $v: $(tail -1 "$RESULTS" | cut -d' ' -f4-)" >&2
    done
  done
done

# Report: per (inflight, variant) medians and ranges; ratios per round.
python3 - "$RESULTS" <<'PY'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1])]
data = {}
for r, inf, v, p50, p99, ccpu, hcpu in rows:
    data.setdefault((int(inf), v), {})[int(r)] = tuple(map(float, (p50, p99, ccpu, hcpu)))
def med(xs): return st.median(xs)
def fmt(xs): return f"{med(xs):.0f} ({min(xs):.0f}-{max(xs):.0f})"
def ratio(a, b, i): return [a[r][i] / b[r][i] for r in a if b[r][i] > 0]
print("| in flight | path | p50 µs | p99 µs | client CPU µs/call | hop CPU µs/call | p50 vs direct | p50 vs nginx | hop CPU vs nginx |")
print("|---|---|---|---|---|---|---|---|---|")
for inf in (1, 16):
    d, n = data[(inf, "direct")], data[(inf, "nginx")]
    for v in ("direct", "nginx", "gateway"):
        x = data[(inf, v)]
        col = lambda i: [x[r][i] for r in x]
        hop = fmt(col(3)) if v != "direct" else "-"
        vs_n = f"{med(ratio(x, n, 0)):.2f}×" if v == "gateway" else "-"
        hop_n = f"{med(ratio(x, n, 3)):.2f}×" if v == "gateway" else "-"
        print(f"| {inf} | {v} | {fmt(col(0))} | {fmt(col(1))} | {fmt(col(2))} | {hop} | {med(ratio(x, d, 0)):.2f}× | {vs_n} | {hop_n} |")
PY
