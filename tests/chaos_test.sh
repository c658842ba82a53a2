#!/usr/bin/env bash
# Chaos under load, bounded: six mTLS greeter servers in three localities and
# a client in cluster-1 calling at a fixed rate, while a seeded random loop
# kills (SIGKILL), hangs (SIGSTOP, then SIGCONT 1-2 s later) and restarts
# servers, changes the endpoints (drains and un-drains them, changes
# weights), kills the client's control plane (the mesh agent, which the
# library restarts) and kills and restarts etcd. At least one server stays
# up at any time.
#
# The client reads the config document from a file and the endpoints from
# a real etcd (one endpoint set per cluster, published with `meshctl put`),
# so both sources are under chaos: each endpoint change rewrites the file
# (a comment) and puts the cluster's set.
#
# Reports total calls, failed calls by status code, and the longest run of
# batches in which every call failed. Asserts that the only failures are the
# documented ones: calls in flight on a hung server when their deadline
# passes (DEADLINE_EXCEEDED). Kills, restarts, config rewrites, control
# plane restarts and etcd restarts must cost no call.
#
# Usage (from Bazel): chaos_test.sh MESHCTL GREETER_SERVER GREETER_CLIENT
# Environment: MESH_CHAOS_SECONDS (default 20), MESH_CHAOS_SEED (default 7).
set -euo pipefail
MESHCTL=$(realpath "$1") SERVER=$(realpath "$2") CLIENT=$(realpath "$3")
SECONDS_TOTAL=${MESH_CHAOS_SECONDS:-20}
RANDOM=${MESH_CHAOS_SEED:-7}
WORK=$(mktemp -d /tmp/mesh-chaos-XXXXXX)
PIDS=()
declare -A SPID
cleanup() {
  for s in "${!SPID[@]}"; do kill -CONT "${SPID[$s]}" 2>/dev/null || true; done
  for p in "${PIDS[@]}" "${SPID[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}" "${SPID[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK" "${FREE_PORTS_GIVEN:-}"
}
trap cleanup EXIT
source "$(dirname "$0")/testlib.sh"  # free_port
"$MESHCTL" dev-certs --dir "$WORK" --trust-domain example.org greeter greeter-client > /dev/null
PORT=$(free_port)
NAMES=(a1 a2 b1 b2 c1 c2)
declare -A ADDR=([a1]=127.0.11.1 [a2]=127.0.11.2 [b1]=127.0.12.1 [b2]=127.0.12.2 [c1]=127.0.13.1 [c2]=127.0.13.2)
declare -A LOC=([a]="region: us-east, zone: us-east-a, cluster: cluster-1"
                [b]="region: us-east, zone: us-east-b, cluster: cluster-2"
                [c]="region: eu-west, zone: eu-west-a, cluster: cluster-3")
declare -A EXTRA
declare -A ACTIONS
# The config document (the file; the servers' config too) and the
# endpoints (etcd, one set per cluster, put only while etcd is up).
REV=0
write_config() {
  REV=$((REV + 1))
  {
    echo "# revision $REV"
    echo "apiVersion: mesh/v1"
    echo "trustDomain: example.org"
    echo "services:"
    echo "  - name: greeter"
    echo "    hostname: greeter.mesh.internal"
  } > "$WORK/mesh.yaml.tmp"
  mv "$WORK/mesh.yaml.tmp" "$WORK/mesh.yaml"
  [ -n "${ETCD_PID:-}" ] || return 0
  for c in a b c; do
    {
      echo "apiVersion: mesh/v1"
      echo "kind: EndpointSet"
      echo "service: greeter"
      echo "endpoints:"
      for n in "${NAMES[@]}"; do
        [ "${n:0:1}" = "$c" ] || continue
        echo "  - {address: ${ADDR[$n]}, port: $PORT${EXTRA[$n]:-}, locality: {${LOC[$c]}}}"
      done
    } > "$WORK/set-$c.yaml"
    # etcd may be restarting: the put is then skipped (counted below).
    "$MESHCTL" put --etcd "127.0.0.1:$ETCD_PORT" "$WORK/set-$c.yaml" > /dev/null 2>&1 ||
      ACTIONS[put_skipped]=$(( ${ACTIONS[put_skipped]:-0} + 1 ))
  done
}
ETCD_PORT=$(free_port) ETCD_PEER=$(free_port) ETCD_PID=""
start_etcd() {
  /usr/bin/etcd --name=chaos --data-dir="$WORK/etcd" \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER" --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER" \
    --initial-cluster="chaos=http://127.0.0.1:$ETCD_PEER" --log-level=error >> "$WORK/etcd.log" 2>&1 &
  ETCD_PID=$!
  PIDS+=($ETCD_PID)
}
etcd_healthy() {  # etcd's /health over bash's /dev/tcp (the refusals unsaid)
  { exec 3<>"/dev/tcp/127.0.0.1/$ETCD_PORT"; } 2>/dev/null || return 1
  printf 'GET /health HTTP/1.0\r\n\r\n' >&3
  grep -q '"health":"true"' <&3; local rc=$?
  exec 3<&-
  return $rc
}
etcd_died() {  # an etcd this script did not kill has exited: say why, fail
  echo "FAIL: etcd (pid $ETCD_PID, client port $ETCD_PORT, peer port $ETCD_PEER) exited by itself; its log:"
  tail -20 "$WORK/etcd.log"
  exit 1
}
start_etcd
for _ in $(seq 1 300); do etcd_healthy && break; kill -0 "$ETCD_PID" 2>/dev/null || etcd_died; sleep 0.05; done
etcd_healthy || { echo "FAIL: etcd did not become healthy in 15 s; its log:"; tail -20 "$WORK/etcd.log"; exit 1; }
write_config
id() { echo "--cert=$WORK/$1.pem --key=$WORK/$1.key --bundle=$WORK/ca.pem"; }
declare -A STATE   # up | down | hung
start_server() {
  # The endpoints are in etcd: the server reads them too, to know (and
  # check) which service its address belongs to.
  "$SERVER" --config="$WORK/mesh.yaml" --listen="${ADDR[$1]}:$PORT" --name="$1" \
    --service=greeter --etcd="127.0.0.1:$ETCD_PORT" \
    $(id greeter) > "$WORK/$1.log" 2>&1 &
  SPID[$1]=$!
  STATE[$1]=up
}
for n in "${NAMES[@]}"; do start_server "$n"; done
for n in "${NAMES[@]}"; do
  for _ in $(seq 1 200); do grep -q serving "$WORK/$n.log" && break; sleep 0.05; done
done
MESH_LOG_QUIET=1 "$CLIENT" --config="$WORK/mesh.yaml" --etcd="127.0.0.1:$ETCD_PORT" $(id greeter-client) \
  --locality=us-east/us-east-a/cluster-1 --batches=100000 --batch_size=10 \
  --interval_ms=20 --deadline_ms=1000 > "$WORK/client.log" 2>&1 &
CLIENT_PID=$!
PIDS+=($CLIENT_PID)
for _ in $(seq 1 100); do grep -q '^batch 3:' "$WORK/client.log" && break; sleep 0.1; done

up_count() { local c=0; for n in "${NAMES[@]}"; do [ "${STATE[$n]}" = up ] && c=$((c + 1)); done; echo $c; }
hung_until=()
end=$(( $(date +%s) + SECONDS_TOTAL ))
while [ "$(date +%s)" -lt "$end" ]; do
  n=${NAMES[$((RANDOM % 6))]}
  case $((RANDOM % 7)) in
    0) if [ "${STATE[$n]}" = up ] && [ "$(up_count)" -gt 1 ]; then
         kill -9 "${SPID[$n]}"; wait "${SPID[$n]}" 2>/dev/null || true
         STATE[$n]=down; ACTIONS[kill]=$(( ${ACTIONS[kill]:-0} + 1 )); fi ;;
    1) if [ "${STATE[$n]}" = up ] && [ "$(up_count)" -gt 1 ]; then
         kill -STOP "${SPID[$n]}"; STATE[$n]=hung
         hung_until+=("$n:$(( $(date +%s%N) / 1000000 + 1000 + RANDOM % 1000 ))")
         ACTIONS[hang]=$(( ${ACTIONS[hang]:-0} + 1 )); fi ;;
    2) if [ "${STATE[$n]}" = down ]; then
         start_server "$n"; ACTIONS[restart]=$(( ${ACTIONS[restart]:-0} + 1 )); fi ;;
    3) if [ -z "${EXTRA[$n]:-}" ]; then EXTRA[$n]=", health: DRAINING"; else EXTRA[$n]=""; fi
       # Never drain everything that is up.
       drained_up=0; for m in "${NAMES[@]}"; do
         [ "${STATE[$m]}" = up ] && [ -z "${EXTRA[$m]:-}" ] && drained_up=$((drained_up + 1)); done
       [ "$drained_up" -gt 0 ] || EXTRA[$n]=""
       write_config; ACTIONS[config]=$(( ${ACTIONS[config]:-0} + 1 )) ;;
    4) EXTRA[$n]=", weight: $((1 + RANDOM % 5))"; write_config
       ACTIONS[config]=$(( ${ACTIONS[config]:-0} + 1 )) ;;
    5) agent=$(pgrep -P $CLIENT_PID | head -1 || true)
       if [ -n "$agent" ]; then kill -9 "$agent"; ACTIONS[agent]=$(( ${ACTIONS[agent]:-0} + 1 )); fi ;;
    6) kill -9 "$ETCD_PID" 2>/dev/null || etcd_died; wait "$ETCD_PID" 2>/dev/null || true
       start_etcd; ACTIONS[etcd_restart]=$(( ${ACTIONS[etcd_restart]:-0} + 1 )) ;;
  esac
  # Wake hung servers whose time has come.
  now=$(( $(date +%s%N) / 1000000 )); keep=()
  for h in "${hung_until[@]}"; do
    if [ "${h#*:}" -le "$now" ]; then
      kill -CONT "${SPID[${h%%:*}]}"; STATE[${h%%:*}]=up
    else keep+=("$h"); fi
  done
  hung_until=("${keep[@]}")
  sleep 0.$((3 + RANDOM % 5))   # The chaos rate: one action every 0.3-0.7 s.
done
for h in "${hung_until[@]}"; do kill -CONT "${SPID[${h%%:*}]}"; STATE[${h%%:*}]=up; done
kill -TERM $CLIENT_PID; wait $CLIENT_PID 2>/dev/null || true

set +o pipefail  # Below, a grep that finds nothing is an answer, not an error.
total=$(grep -o '^total: [0-9]*' "$WORK/client.log" | grep -o '[0-9]*$')
codes=$(grep -o 'FAILED: .*' "$WORK/client.log" | sed 's/ \[config.*//' | tr ',' '\n' |
        sed -n 's/^\(FAILED: \| \)\([0-9]*\) .* x\([0-9]*\)$/\2 \3/p' |
        awk '{ n[$1] += $2 } END { for (c in n) printf "%s:%d ", c, n[c] }')
worst=$(grep '^batch' "$WORK/client.log" | awk '/ 0 ok;/ { r++; if (r > m) m = r; next } { r = 0 } END { print m + 0 }')
echo "chaos for ${SECONDS_TOTAL}s (seed ${MESH_CHAOS_SEED:-7}): $(for a in "${!ACTIONS[@]}"; do printf '%s=%s ' "$a" "${ACTIONS[$a]}"; done)"
echo "calls: ${total:-0}; failed by code: ${codes:-none}; longest run of all-failed batches: $worst (x ~20 ms + deadlines)"
fails=0
[ "${total:-0}" -gt 0 ] || { echo "FAIL: no calls made"; fails=1; }
for kv in $codes; do
  [ "${kv%%:*}" = 4 ] || { echo "FAIL: ${kv#*:} calls failed with code ${kv%%:*}; only 4 (DEADLINE_EXCEEDED, in flight on a hung server) is allowed"; fails=1; }
done
[ $fails -eq 0 ] && echo "ok: the only failures were calls in flight on hung servers"
if [ $fails -ne 0 ]; then grep 'FAILED' "$WORK/client.log" | head -20; fi
[ $fails -eq 0 ]
