#!/usr/bin/env bash
# The mesh demo: one mesh hostname (greeter.mesh.internal) served from three
# clusters in two regions, and a client in cluster-1 that calls it through
# the mesh library. Shows locality-aware routing, failover with no failed
# call when the local instances die, failback when they return, live config
# edits (a good one applied, a bad one rejected), and routing rules (a 90/10
# canary between two versions and a header pin). Every call is mutual TLS
# with SPIFFE identities from a throwaway CA made at start, and the greeter
# servers admit only the identities their authorization policy names.
#
# Installs what is missing (bazel/setup.sh), builds, runs, stops every
# process it started (by PID) and exits 0 if no call failed.
# Usage: examples/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bazel/setup.sh --with-etcd

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
say "building the example (bazel build //examples/greeter:all //:meshctl)"
bazel build //examples/greeter:all //:meshctl 2>&1 |
  grep -E '^(ERROR|FAILED)' || true
BIN=bazel-bin/examples/greeter
MESH_BIN=bazel-bin/mesh/cli/meshctl
[ -x $BIN/greeter_server ] && [ -x $BIN/greeter_client ] && [ -x $MESH_BIN ] ||
  { echo "build failed: run 'bazel build //examples/greeter:all //:meshctl'"; exit 1; }

WORK=$(mktemp -d /tmp/mesh-demo-XXXXXX)
source tests/testlib.sh  # PIDS, stop_started, free_port
cleanup() {
  stop_started
  [ "${MESH_DEMO_KEEP:-0}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT

say "identities: a throwaway CA and one SPIFFE certificate per workload (meshctl dev-certs)"
mkdir -m 0700 "$WORK/certs"
$MESH_BIN dev-certs --dir "$WORK/certs" --trust-domain example.org \
  greeter greeter-client intruder | sed 's/^/   /'
ID() {  # ID NAME: the security flags of workload NAME
  echo "--cert=$WORK/certs/$1.pem --key=$WORK/certs/$1.key --bundle=$WORK/certs/ca.pem"
}

C1="region: us-east, zone: us-east-a, cluster: cluster-1"
C2="region: us-east, zone: us-east-b, cluster: cluster-2"
C3="region: eu-west, zone: eu-west-a, cluster: cluster-3"
write_config() {  # write_config CLUSTER1_EXTRA [PORT_OF_127.0.1.1]
  cat > "$WORK/mesh.yaml.tmp" <<YAML
apiVersion: mesh/v1
trustDomain: example.org
services:
  - name: greeter
    hostname: greeter.mesh.internal
    authorization:
      allow:
        - callers: [spiffe://example.org/ns/default/sa/greeter-client]
    endpoints:
      - {address: 127.0.1.1, port: ${2:-50051}$1, locality: {$C1}}
      - {address: 127.0.1.2, port: 50051$1, locality: {$C1}}
      - {address: 127.0.2.1, port: 50051, locality: {$C2}}
      - {address: 127.0.3.1, port: 50051, locality: {$C3}}
YAML
  mv "$WORK/mesh.yaml.tmp" "$WORK/mesh.yaml"  # Atomic replace.
}
write_config ""

declare -A SERVER_PID
start_server() {  # start_server NAME IP LOCALITY
  $BIN/greeter_server --config="$WORK/mesh.yaml" --listen="$2:50051" \
    --locality="$3" --name="$1" $(ID greeter) > "$WORK/$1.log" 2>&1 &
  SERVER_PID[$1]=$!
  PIDS+=($!)
}
await_serving() {  # await_serving NAME: until its log says it serves
  for _ in $(seq 1 200); do
    grep -q "serving" "$WORK/$1.log" 2>/dev/null && return 0
    kill -0 "${SERVER_PID[$1]}" 2>/dev/null ||
      { echo "server $1 exited:"; cat "$WORK/$1.log"; exit 1; }
    sleep 0.05
  done
  echo "server $1 did not start serving:"; cat "$WORK/$1.log"; exit 1
}

say "one hostname, three clusters (config: $WORK/mesh.yaml)"
echo "   cluster-1  us-east/us-east-a  127.0.1.1:50051 127.0.1.2:50051  <- the client runs here"
echo "   cluster-2  us-east/us-east-b  127.0.2.1:50051                  (same region)"
echo "   cluster-3  eu-west/eu-west-a  127.0.3.1:50051                  (another region)"
start_server c1-a 127.0.1.1 us-east/us-east-a/cluster-1
start_server c1-b 127.0.1.2 us-east/us-east-a/cluster-1
start_server c2 127.0.2.1 us-east/us-east-b/cluster-2
start_server c3 127.0.3.1 eu-west/eu-west-a/cluster-3
for s in c1-a c1-b c2 c3; do await_serving $s; done
echo "   4 greeter servers serving"

say "client in cluster-1: batches of 20 calls to greeter.mesh.internal every 100 ms"
# The client's admin endpoint (metrics, status, live status page).
ADMIN=127.0.0.1:$(free_port)
MESH_LOG_QUIET=1 $BIN/greeter_client --config="$WORK/mesh.yaml" $(ID greeter-client) \
  --admin="$ADMIN" \
  --locality=us-east/us-east-a/cluster-1 --batches=1500 --batch_size=20 \
  --interval_ms=100 > "$WORK/client.log" 2>&1 &
CLIENT=$!
PIDS+=($CLIENT)

SHOWN=0
CLIENT_LOG="$WORK/client.log"
show_client() {  # print client lines not shown yet
  local n
  n=$(wc -l < "$CLIENT_LOG")
  if [ "$n" -gt "$SHOWN" ]; then
    sed -n "$((SHOWN + 1)),${n}p" "$CLIENT_LOG" | sed 's/^/   [client] /'
    SHOWN=$n
  fi
}
# await N PATTERN: until N client lines after this point match PATTERN
# (at most 60 s).
await() {
  local start=$SHOWN want=$1 pattern=$2 t0
  t0=$(date +%s%N)
  for _ in $(seq 1 600); do
    show_client
    if [ "$(tail -n +"$((start + 1))" "$CLIENT_LOG" | grep -cE "$pattern")" -ge "$want" ]; then
      WAITED_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
      return 0
    fi
    kill -0 $CLIENT 2>/dev/null || { echo "client exited"; exit 1; }
    sleep 0.1
  done
  echo "timed out waiting for: $pattern"; exit 1
}
ONLY_C1='served by us-east/us-east-a/cluster-1=20'
ONLY_C2='served by us-east/us-east-b/cluster-2=20'

say "step 1: all healthy -> every call stays in cluster-1 (mTLS, identity greeter-client)"
await 5 "$ONLY_C1"
echo "   (live status page while the demo runs: http://$ADMIN/ ; or: meshctl status $ADMIN)"
echo "   a caller with a valid certificate of the same CA but another identity (intruder):"
MESH_LOG_QUIET=1 $BIN/greeter_client --config="$WORK/mesh.yaml" $(ID intruder) \
  --locality=us-east/us-east-a/cluster-1 --batches=1 --batch_size=5 \
  --interval_ms=0 2>&1 | grep '^batch' | sed 's/^/     /' || true
echo "   (7 = PERMISSION_DENIED: the greeter policy allows only greeter-client)"

say "step 2: kill -9 both cluster-1 instances -> calls go straight to cluster-2 (same region)"
{ kill -9 "${SERVER_PID[c1-a]}" "${SERVER_PID[c1-b]}"
  wait "${SERVER_PID[c1-a]}" "${SERVER_PID[c1-b]}"; } 2>/dev/null || true
await 1 "$ONLY_C2"
echo "   first batch entirely on cluster-2 ${WAITED_MS} ms after the kill (batches are ~100 ms apart)"
await 12 "$ONLY_C2"
echo "   no gateway, no sidecar: the client dials 127.0.2.1 itself"

say "step 3: restart cluster-1 -> traffic returns"
start_server c1-a 127.0.1.1 us-east/us-east-a/cluster-1
start_server c1-b 127.0.1.2 us-east/us-east-a/cluster-1
await_serving c1-a; await_serving c1-b
await 1 "$ONLY_C1"
echo "   first batch entirely back in cluster-1 ${WAITED_MS} ms after the servers were up"
await 4 "$ONLY_C1"

say "step 4: edit the config: drain cluster-1 for maintenance (health: DRAINING)"
write_config ", health: DRAINING"
await 5 "$ONLY_C2"
echo "   config applied live; cluster-1 receives no new calls"

say "step 5: a bad edit (port 70000) is rejected; the last good config stays in force"
write_config "" 70000
await 5 "$ONLY_C2"
echo "   meshctl validate says:"
$MESH_BIN validate "$WORK/mesh.yaml" 2>&1 | sed 's/^/     /' || true

say "step 6: fix the config -> cluster-1 serves again"
write_config ""
await 5 "$ONLY_C1"

say "step 7: routing rules: cluster-1 runs v1 (127.0.1.1) and v2 (127.0.1.2); send 10% to v2 (canary), and pin x-version: v2 callers to v2"
cat > "$WORK/mesh.yaml.tmp" <<YAML
apiVersion: mesh/v1
trustDomain: example.org
services:
  - name: greeter
    hostname: greeter.mesh.internal
    authorization:
      allow:
        - callers: [spiffe://example.org/ns/default/sa/greeter-client]
    subsets:
      - {name: v1, labels: {version: v1}}
      - {name: v2, labels: {version: v2}}
    routes:
      - name: pin-v2
        match: {headers: [{name: x-version, exact: v2}]}
        to: {subset: v2}
      - name: canary
        split: [{subset: v1, weight: 90}, {subset: v2, weight: 10}]
    endpoints:
      - {address: 127.0.1.1, port: 50051, labels: {version: v1}, locality: {$C1}}
      - {address: 127.0.1.2, port: 50051, labels: {version: v2}, locality: {$C1}}
      - {address: 127.0.2.1, port: 50051, labels: {version: v1}, locality: {$C2}}
      - {address: 127.0.3.1, port: 50051, labels: {version: v1}, locality: {$C3}}
YAML
mv "$WORK/mesh.yaml.tmp" "$WORK/mesh.yaml"
await 2 "served by us-east/us-east-a/cluster-1=20"
echo "   a second client, 2000 calls, counting replies by instance (c1-a = v1, c1-b = v2):"
MESH_LOG_QUIET=1 $BIN/greeter_client --config="$WORK/mesh.yaml" $(ID greeter-client) \
  --locality=us-east/us-east-a/cluster-1 --show=instance --batches=1 \
  --batch_size=2000 --interval_ms=0 2>&1 | grep '^batch' | sed 's/^/     /'
echo "   the same with the header x-version: v2:"
MESH_LOG_QUIET=1 $BIN/greeter_client --config="$WORK/mesh.yaml" $(ID greeter-client) \
  --locality=us-east/us-east-a/cluster-1 --show=instance --batches=1 \
  --batch_size=200 --interval_ms=0 --header=x-version=v2 2>&1 |
  grep '^batch' | sed 's/^/     /'
echo "   (ask the mesh why: meshctl explain --config mesh.yaml --from us-east/us-east-a/cluster-1 --method /mesh.examples.Greeter/SayHello greeter.mesh.internal)"

say "what the client's mesh reports (meshctl status $ADMIN)"
$MESH_BIN status "$ADMIN" | sed 's/^/   /' || true

kill -TERM $CLIENT
wait $CLIENT && client_rc=0 || client_rc=$?
show_client
say "result of steps 1-7"
grep '^total:' "$CLIENT_LOG" | sed 's/^/   /'
if [ "$client_rc" -eq 0 ]; then
  echo "   zero failed calls through two failovers and four config edits, all over mTLS"
else
  echo "   some calls failed (see above)"
fi
[ "${MESH_DEMO_DISCOVERY:-1}" = 1 ] || exit "$client_rc"

say "step 8: discovery: a real etcd; servers register themselves (no endpoint in the config)"
ETCD_PORT=$(free_port); ETCD_PEER=$(free_port)
ETCD=127.0.0.1:$ETCD_PORT
etcd --name demo --data-dir "$WORK/etcd" \
  --listen-client-urls "http://$ETCD" --advertise-client-urls "http://$ETCD" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER" \
  --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
  --initial-cluster "demo=http://127.0.0.1:$ETCD_PEER" > "$WORK/etcd.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do  # Until it answers (at most 10 s).
  $MESH_BIN get --etcd "$ETCD" > /dev/null 2>&1 && break
  sleep 0.1
done
$MESH_BIN get --etcd "$ETCD" > /dev/null || { echo "etcd did not start:"; cat "$WORK/etcd.log"; exit 1; }
echo "   etcd $ETCD (pid ${PIDS[-1]}, data in $WORK/etcd)"
cat > "$WORK/discovery.yaml" <<YAML
apiVersion: mesh/v1
trustDomain: example.org
services:
  - name: greeter
    hostname: greeter.mesh.internal
    authorization:
      allow:
        - callers: [spiffe://example.org/ns/default/sa/greeter-client]
    # No endpoints: the servers register themselves in etcd.
YAML
echo "   config $WORK/discovery.yaml: service greeter, no endpoints"
# start_registered NAME IP LOCALITY: a server that registers itself.
start_registered() {
  $BIN/greeter_server --config="$WORK/discovery.yaml" --etcd="$ETCD" \
    --register --service=greeter --listen="$2:50052" --locality="$3" --name="$1" \
    $(ID greeter) > "$WORK/$1.log" 2>&1 &
  SERVER_PID[$1]=$!
  PIDS+=($!)
}
# await_registered IP: until etcd holds its instance (at most 20 s).
await_registered() {
  for _ in $(seq 1 200); do
    $MESH_BIN get --etcd "$ETCD" | grep -q "^#   default/greeter/$1:50052 " && return 0
    sleep 0.1
  done
  echo "$1 did not register"; exit 1
}
# await_gone IP: until etcd no longer holds its instance (at most 20 s).
await_gone() {
  for _ in $(seq 1 200); do
    $MESH_BIN get --etcd "$ETCD" | grep -q "^#   default/greeter/$1:50052 " || return 0
    sleep 0.1
  done
  echo "$1 is still registered"; exit 1
}
start_registered d2 127.0.2.11 us-east/us-east-b/cluster-2
await_registered 127.0.2.11
echo "   d2 (cluster-2, 127.0.2.11:50052) registered itself:"
$MESH_BIN get --etcd "$ETCD" | grep '^#   ' | sed 's/^/   /'
MESH_LOG_QUIET=1 $BIN/greeter_client --config="$WORK/discovery.yaml" \
  --etcd="$ETCD" $(ID greeter-client) --admin="$ADMIN" \
  --locality=us-east/us-east-a/cluster-1 --batches=1500 --batch_size=20 \
  --interval_ms=100 > "$WORK/client2.log" 2>&1 &
CLIENT=$!
PIDS+=($CLIENT)
CLIENT_LOG="$WORK/client2.log"
SHOWN=0
echo "   a client in cluster-1 (no instance there yet) finds it with no config edit:"
await 3 "$ONLY_C2"
start_registered d1-a 127.0.1.11 us-east/us-east-a/cluster-1
start_registered d1-b 127.0.1.12 us-east/us-east-a/cluster-1
await_registered 127.0.1.11; await_registered 127.0.1.12
echo "   d1-a and d1-b (cluster-1) registered: the client moves to its own cluster"
await 3 "$ONLY_C1"

say "step 9: rolling restart of every instance under load (SIGTERM: DRAINING, 1 s, shutdown, deregister)"
for s in d1-a:127.0.1.11:us-east/us-east-a/cluster-1 \
         d1-b:127.0.1.12:us-east/us-east-a/cluster-1 \
         d2:127.0.2.11:us-east/us-east-b/cluster-2; do
  IFS=: read -r name ip loc <<< "$s"
  t0=$(date +%s%N)
  kill -TERM "${SERVER_PID[$name]}"
  wait "${SERVER_PID[$name]}" || true
  echo "   $name drained and stopped in $(( ($(date +%s%N) - t0) / 1000000 )) ms; starting it again"
  start_registered "$name" "$ip" "$loc"
  await_registered "$ip"
done
await 3 "$ONLY_C1"
echo "   every instance restarted; batches with a failed call so far: $(grep -c 'FAILED:' "$CLIENT_LOG" || true)"

say "step 10: kill -9 d1-a: its agent revokes the lease, it leaves every client's routing"
kill -9 "${SERVER_PID[d1-a]}"
wait "${SERVER_PID[d1-a]}" 2>/dev/null || true
t0=$(date +%s%N)
await_gone 127.0.1.11
echo "   gone from etcd $(( ($(date +%s%N) - t0) / 1000000 )) ms after the kill (had its agent died too: within the TTL, 10 s)"
await 3 "$ONLY_C1"
$MESH_BIN get --etcd "$ETCD" | grep '^#   ' | sed 's/^/   /'
echo "   what the client's mesh says about its endpoints (meshctl status):"
$MESH_BIN status "$ADMIN" | grep -E '^(instances|registration|held|ignored|source) ' | sed 's/^/     /' || true

kill -TERM $CLIENT
wait $CLIENT && client2_rc=0 || client2_rc=$?
show_client
say "result"
grep '^total:' "$WORK/client.log" | sed 's/^/   steps 1-7:  /'
grep '^total:' "$WORK/client2.log" | sed 's/^/   steps 8-10: /'
if [ "$client_rc" -eq 0 ] && [ "$client2_rc" -eq 0 ]; then
  echo "   zero failed calls through failovers, config edits, a rolling restart and a kill -9, all over mTLS"
  exit 0
fi
echo "   some calls failed (see above)"
exit 1
