# Shell helpers for the benchmark scripts (sourced by bench/suite.sh and
# bench/gateway_breakdown.sh; they need WORK and tests/testlib.sh's PIDS).

await_port() {  # await_port PORT: until something listens there (60 s)
  for _ in $(seq 1200); do
    ss -Hltn "sport = :$1" | grep -q . && return 0
    sleep 0.05
  done
  echo "nothing listens on port $1" >&2; exit 1
}
# cpu_ticks PID...: user+system clock ticks of the processes and their
# children (nginx workers, the gateway's agent).
cpu_ticks() {
  local total=0 p
  for p in "$@" $(for q in "$@"; do pgrep -P "$q" || true; done); do
    [ -r /proc/$p/stat ] || continue
    total=$(( total + $(awk '{sub(/.*\) /, ""); print $12 + $13}' /proc/$p/stat) ))
  done
  echo $total
}

# start_bench_server [PREFIX...]: bench/bench_server (behind PREFIX, e.g.
# taskset -c 1), its PID in SERVER (and PIDS), its port in B. Needs BIN.
start_bench_server() {
  "$@" $BIN/bench/bench_server > "$WORK/server.port" &
  SERVER=$!
  PIDS+=($SERVER)
  for _ in $(seq 200); do [ -s "$WORK/server.port" ] && break; sleep 0.05; done
  B=$(head -1 "$WORK/server.port")
  [ -n "$B" ] || { echo "bench_server did not start" >&2; exit 1; }
}

# The proxies the benchmarks compare against.
# start_nginx / start_haproxy NAME LISTEN_PORT UPSTREAM_PORT: one proxy
# process; its PID in STARTED (and in PIDS, to be stopped at exit).
# NGINX_EXTRA, if set, goes into nginx.conf's main block.
# PROXY_WRAP, if set, is put before the command (e.g. a valgrind line).
start_nginx() {
  mkdir -p "$WORK/$1"
  cat > "$WORK/$1/nginx.conf" <<NGINX
worker_processes 1;
${NGINX_EXTRA:-}
pid $WORK/$1/nginx.pid;
error_log $WORK/$1/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK/$1/body;
  proxy_temp_path $WORK/$1/proxy;
  fastcgi_temp_path $WORK/$1/fastcgi;
  uwsgi_temp_path $WORK/$1/uwsgi;
  scgi_temp_path $WORK/$1/scgi;
  upstream up { server 127.0.0.1:$3; keepalive 32; }
  server {
    listen 127.0.0.1:$2 http2;
    location / { grpc_pass grpc://up; }
  }
}
NGINX
  ${PROXY_WRAP:-} nginx -c "$WORK/$1/nginx.conf" -p "$WORK/$1" -g 'daemon off;' \
    > "$WORK/$1/stdout.log" 2>&1 &
  STARTED=$!
  PIDS+=($STARTED)
}
start_haproxy() {
  cat > "$WORK/$1.cfg" <<HAPROXY
global
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend in
  bind 127.0.0.1:$2 proto h2
  default_backend out
backend out
  server s1 127.0.0.1:$3 proto h2
HAPROXY
  ${PROXY_WRAP:-} haproxy -f "$WORK/$1.cfg" -db > "$WORK/$1.log" 2>&1 &
  STARTED=$!
  PIDS+=($STARTED)
}
