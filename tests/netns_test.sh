#!/usr/bin/env bash
# Clusters as real network hosts: three network namespaces created by this
# test (addresses exist only inside them), cluster-1 joined to cluster-2 and
# cluster-3 by veth pairs. A greeter server runs in each cluster and a
# client in cluster-1 calls greeter.mesh.internal through the mesh.
#   1. healthy: calls stay in cluster-1;
#   2. cluster-1's server killed: calls go to cluster-2, straight to its
#      address (the peer the client saw; there is no gateway);
#   3. cluster-2's link cut (veth down): calls move to cluster-3;
#   4. link restored: calls return to cluster-2;
#   5. cluster-1's server back: calls return to cluster-1.
# Only calls in flight on the cut link may fail (DEADLINE_EXCEEDED, the
# documented cost of a silent link loss); they are counted and reported.
# Everything is torn down at exit, also on failure. Needs root.
# Usage (from Bazel): netns_test.sh GREETER_SERVER GREETER_CLIENT
set -euo pipefail
SERVER=$(realpath "$1") CLIENT=$(realpath "$2")
[ "$(id -u)" = 0 ] || { echo "FAIL: needs root for ip netns"; exit 1; }
command -v ip >/dev/null || { echo "FAIL: ip (iproute2) is missing"; exit 1; }
T=m$$                      # Unique prefix: namespaces and links of this run.
NS1=${T}c1 NS2=${T}c2 NS3=${T}c3
WORK=$(mktemp -d /tmp/mesh-netns-XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  for n in $NS1 $NS2 $NS3; do ip netns del "$n" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

for n in $NS1 $NS2 $NS3; do
  ip netns add "$n"
  ip -n "$n" link set lo up
done
# cluster-1 <-> cluster-2: 10.77.12.0/24; cluster-1 <-> cluster-3: 10.77.13.0/24.
ip link add ${T}a2 type veth peer name ${T}b2
ip link set ${T}a2 netns $NS1
ip link set ${T}b2 netns $NS2
ip -n $NS1 addr add 10.77.12.1/24 dev ${T}a2
ip -n $NS2 addr add 10.77.12.2/24 dev ${T}b2
ip link add ${T}a3 type veth peer name ${T}b3
ip link set ${T}a3 netns $NS1
ip link set ${T}b3 netns $NS3
ip -n $NS1 addr add 10.77.13.1/24 dev ${T}a3
ip -n $NS3 addr add 10.77.13.3/24 dev ${T}b3
for l in "$NS1 ${T}a2" "$NS2 ${T}b2" "$NS1 ${T}a3" "$NS3 ${T}b3"; do
  set -- $l; ip -n "$1" link set "$2" up
done
ip -n $NS1 addr add 10.77.1.1/32 dev lo   # cluster-1's own server address

cat > "$WORK/mesh.yaml" <<YAML
apiVersion: mesh/v1
trustDomain: example.org
services:
  - name: greeter
    hostname: greeter.mesh.internal
    endpoints:
      - {address: 10.77.1.1, port: 50051, locality: {region: us-east, zone: us-east-a, cluster: cluster-1}}
      - {address: 10.77.12.2, port: 50051, locality: {region: us-east, zone: us-east-b, cluster: cluster-2}}
      - {address: 10.77.13.3, port: 50051, locality: {region: eu-west, zone: eu-west-a, cluster: cluster-3}}
YAML
declare -A SPID
start_server() {  # start_server NAME NETNS ADDRESS
  ip netns exec "$2" "$SERVER" --config="$WORK/mesh.yaml" --listen="$3:50051" \
    --name="$1" --plaintext > "$WORK/$1.log" 2>&1 &
  SPID[$1]=$!
  PIDS+=($!)
  for _ in $(seq 1 200); do
    grep -q "serving" "$WORK/$1.log" && return 0
    sleep 0.05
  done
  echo "FAIL: server $1 did not start"; cat "$WORK/$1.log"; exit 1
}
start_server c1 $NS1 10.77.1.1
start_server c2 $NS2 10.77.12.2
start_server c3 $NS3 10.77.13.3

# 200 ms deadlines: a call stuck on a cut link fails fast, and enough of
# them in a second let outlier detection eject the endpoint.
MESH_LOG_QUIET=1 ip netns exec $NS1 "$CLIENT" --config="$WORK/mesh.yaml" \
  --plaintext --locality=us-east/us-east-a/cluster-1 --show=peer \
  --batches=3000 --batch_size=10 --interval_ms=20 --deadline_ms=200 \
  > "$WORK/client.log" 2>&1 &
CLIENT_PID=$!
PIDS+=($CLIENT_PID)
mark=0
# await NAME PATTERN: 3 consecutive batches after the mark match PATTERN
# (at most 30 s); then moves the mark.
await() {
  local t0=$(date +%s%N)
  for _ in $(seq 1 300); do
    if tail -n +$((mark + 1)) "$WORK/client.log" | grep '^batch' |
        awk -v p="$2" '$0 ~ p { n++; if (n >= 3) { found = 1; exit } next } { n = 0 }
                       END { exit !found }'; then
      echo "ok: $1 ($(( ($(date +%s%N) - t0) / 1000000 )) ms)"
      mark=$(wc -l < "$WORK/client.log")
      return 0
    fi
    kill -0 $CLIENT_PID 2>/dev/null || { echo "FAIL: client exited"; cat "$WORK/client.log"; exit 1; }
    sleep 0.1
  done
  echo "FAIL: $1: no 3 batches matching: $2"; tail -20 "$WORK/client.log"; exit 1
}
failures() {  # failed calls in the lines from $1 to $2
  sed -n "$1,$2p" "$WORK/client.log" | { grep -o 'FAILED: .*' || true; } |
    { grep -oE ' x[0-9]+' || true; } | tr -d ' x' | awk '{ s += $1 } END { print s + 0 }'
}
C1="served by ipv4:10.77.1.1:50051=10"
C2="served by ipv4:10.77.12.2:50051=10"
C3="served by ipv4:10.77.13.3:50051=10"

await "healthy: calls stay in cluster-1" "$C1"
kill -9 "${SPID[c1]}"; wait "${SPID[c1]}" 2>/dev/null || true
start=$mark
await "cluster-1 down: calls go straight to cluster-2's address" "$C2"
f2=$(failures $((start + 1)) "$mark")
ip -n $NS1 link set ${T}a2 down
start=$mark
await "cluster-2's link cut: calls move to cluster-3" "$C3"
f3=$(failures $((start + 1)) "$mark")
f3_codes=$(sed -n "$((start + 1)),${mark}p" "$WORK/client.log" |
           { grep -o 'FAILED: .*' || true; } | { grep -oE '(^FAILED: |, )[0-9]+ ' || true; } |
           { grep -oE '[0-9]+' || true; } | sort -u | tr '\n' ' ')
ip -n $NS1 link set ${T}a2 up
start=$mark
await "link restored: calls return to cluster-2" "$C2"
f4=$(failures $((start + 1)) "$mark")
start_server c1 $NS1 10.77.1.1
start=$mark
await "cluster-1 back: calls return to cluster-1" "$C1"
f5=$(failures $((start + 1)) "$mark")
echo "failed calls: $f2 on the kill, $f3 on the link cut (codes: ${f3_codes:-none}), $f4 on restore, $f5 on failback"
fails=0
[ "$f2" -eq 0 ] || { echo "FAIL: calls failed when cluster-1 died"; fails=1; }
[ "$f4" -eq 0 ] || { echo "FAIL: calls failed when the link came back"; fails=1; }
[ "$f5" -eq 0 ] || { echo "FAIL: calls failed on failback"; fails=1; }
for c in $f3_codes; do
  [ "$c" = 4 ] || { echo "FAIL: a call on the cut link failed with code $c (only 4 = DEADLINE_EXCEEDED is expected)"; fails=1; }
done
[ $fails -eq 0 ] && echo "ok: only calls in flight on the cut link failed"
[ $fails -eq 0 ]
