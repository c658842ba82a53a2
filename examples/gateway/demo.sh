#!/usr/bin/env bash
# The gateway demo: a client outside the mesh (plain gRPC, TLS, an API key)
# calls greeter.mesh.internal through the mesh gateway; the gateway is a mesh
# workload in cluster-1 with its own SPIFFE identity, calling the greeter
# servers over mTLS. Killing cluster-1's greeter moves the gateway's calls
# straight to cluster-2 with no failed call outside; restarting it brings
# them back. A caller without a key is refused; a caller with a JWT (signed
# here with the openssl command line) is admitted, and a tampered one is not.
#
# Installs what is missing, builds, runs, stops every process it started
# (by PID) and exits 0 if no outside call failed.
# Usage: examples/gateway/demo.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
bazel/setup.sh

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
say "building (bazel build //examples/gateway:all //examples/greeter:greeter_server //:meshctl)"
bazel build //examples/gateway:all //examples/greeter:greeter_server //:meshctl 2>&1 |
  grep -E '^(ERROR|FAILED)' || true
BIN=bazel-bin/examples
MESHCTL=bazel-bin/mesh/cli/meshctl
WORK=$(mktemp -d /tmp/mesh-gateway-demo-XXXXXX)
source tests/testlib.sh  # free_port, PIDS, stop_started
trap 'stop_started; rm -rf "$WORK"' EXIT

say "certificates: SPIFFE identities for greeter and gateway, a TLS certificate for api.example.test"
mkdir -m 0700 "$WORK/certs"
$MESHCTL dev-certs --dir "$WORK/certs" --trust-domain example.org \
  --server-name api.example.test greeter gateway | sed 's/^/   /'
ID() { echo "--cert=$WORK/certs/$1.pem --key=$WORK/certs/$1.key --bundle=$WORK/certs/ca.pem"; }

C1="region: us-east, zone: us-east-a, cluster: cluster-1"
C2="region: us-east, zone: us-east-b, cluster: cluster-2"
cat > "$WORK/mesh.yaml" <<YAML
apiVersion: mesh/v1
trustDomain: example.org
services:
  - name: greeter
    hostname: greeter.mesh.internal
    authorization:
      allow:
        - callers: [spiffe://example.org/ns/default/sa/gateway]
    endpoints:
      - {address: 127.0.1.1, port: 50061, locality: {$C1}}
      - {address: 127.0.2.1, port: 50061, locality: {$C2}}
YAML
API_KEY=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
# A JWT issuer of our own, with the openssl command line: an RSA key, its
# JWKS, and an RS256 token for the gateway's audience.
b64url() { basenc --base64url -w0 | tr -d '='; }
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/issuer.key" 2>/dev/null
MODULUS=$(openssl rsa -in "$WORK/issuer.key" -noout -modulus | cut -d= -f2)
N=$(printf "$(echo "$MODULUS" | sed 's/../\\x&/g')" | b64url)
echo "{\"keys\": [{\"kty\": \"RSA\", \"kid\": \"demo-1\", \"use\": \"sig\", \"n\": \"$N\", \"e\": \"AQAB\"}]}" \
  > "$WORK/jwks.json"
jwt() {  # jwt CLAIMS_JSON: an RS256 token signed with the issuer's key
  local input
  input="$(printf '{"alg":"RS256","kid":"demo-1","typ":"JWT"}' | b64url).$(printf %s "$1" | b64url)"
  echo "$input.$(printf %s "$input" | openssl dgst -sha256 -sign "$WORK/issuer.key" | b64url)"
}
TOKEN=$(jwt "{\"iss\":\"https://login.example.test\",\"sub\":\"app-7\",\"aud\":\"api.example.test\",\"exp\":$(( $(date +%s) + 600 )),\"scope\":\"greet\"}")
GW_PORT=$(free_port)
cat > "$WORK/gateway.yaml" <<YAML
listen: 127.0.0.1:$GW_PORT
tls: {certificate: $WORK/certs/server.pem, privateKey: $WORK/certs/server.key}
apiKeys:
  - {client: partner-a, sha256: $(printf %s "$API_KEY" | sha256sum | cut -d' ' -f1)}
jwt:
  jwksFile: $WORK/jwks.json
  issuer: https://login.example.test
  audiences: [api.example.test]
  claimHeaders: {sub: x-user}
routes:
  - {host: api.example.test, methodPrefix: /mesh.examples.Greeter/, destination: greeter.mesh.internal}
limits: {maxMessageBytes: 1048576, maxStreamsPerClient: 50, callsPerSecondPerClient: 500, burstPerClient: 1000}
YAML

declare -A SERVER_PID
start_server() {  # start_server NAME IP LOCALITY
  $BIN/greeter/greeter_server --config="$WORK/mesh.yaml" --listen="$2:50061" \
    --locality="$3" --name="$1" $(ID greeter) > "$WORK/$1.log" 2>&1 &
  SERVER_PID[$1]=$!
  PIDS+=($!)
}
await_log() {  # await_log FILE PATTERN
  for _ in $(seq 1 400); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "timed out waiting for '$2' in $1:"; cat "$1"; exit 1
}
say "greeter in cluster-1 (127.0.1.1) and cluster-2 (127.0.2.1); the gateway runs in cluster-1"
start_server c1 127.0.1.1 us-east/us-east-a/cluster-1
start_server c2 127.0.2.1 us-east/us-east-b/cluster-2
await_log "$WORK/c1.log" serving
await_log "$WORK/c2.log" serving
MESH_LOG_QUIET=1 $BIN/gateway/gateway --gateway_config="$WORK/gateway.yaml" \
  --config="$WORK/mesh.yaml" --locality=us-east/us-east-a/cluster-1 $(ID gateway) \
  > "$WORK/gateway.log" 2>&1 &
GW_PID=$!
PIDS+=($GW_PID)
await_log "$WORK/gateway.log" "listening on"
grep "listening on" "$WORK/gateway.log" | sed 's/^/   /'

say "a caller without an API key"
$BIN/gateway/outside_client --gateway=127.0.0.1:$GW_PORT --authority=api.example.test \
  --ca="$WORK/certs/ca.pem" --batches=1 --batch_size=3 --interval_ms=0 |
  grep '^batch' | sed 's/^/   /' || true
echo "   (16 = UNAUTHENTICATED)"

# The same token with its claims swapped for others (sub: admin), keeping the
# signature.
FORGED="${TOKEN%%.*}.$(printf '{"iss":"https://login.example.test","sub":"admin","aud":"api.example.test","exp":%d}' $(( $(date +%s) + 600 )) | b64url).${TOKEN##*.}"
say "a caller with a JWT (RS256, signed above with openssl), then one with forged claims"
$BIN/gateway/outside_client --gateway=127.0.0.1:$GW_PORT --authority=api.example.test \
  --ca="$WORK/certs/ca.pem" --bearer="$TOKEN" --batches=1 --batch_size=3 --interval_ms=0 |
  grep '^batch' | sed 's/^/   /'
$BIN/gateway/outside_client --gateway=127.0.0.1:$GW_PORT --authority=api.example.test \
  --ca="$WORK/certs/ca.pem" --bearer="$FORGED" --batches=1 --batch_size=1 --interval_ms=0 |
  grep '^batch' | sed 's/^/   /' || true
await_log "$WORK/gateway.log" "bearer token refused"
echo "   the gateway's log says why (the caller is not told):"
grep -m1 "bearer token refused" "$WORK/gateway.log" | sed 's/^/   /'

say "an outside client: TLS to api.example.test with its key, batches of 20 calls every 100 ms"
$BIN/gateway/outside_client --gateway=127.0.0.1:$GW_PORT --authority=api.example.test \
  --ca="$WORK/certs/ca.pem" --api_key="$API_KEY" --batches=600 --batch_size=20 \
  --interval_ms=100 > "$WORK/client.log" 2>&1 &
CLIENT=$!
PIDS+=($CLIENT)
SHOWN=0
await() {  # await N PATTERN: N new client lines matching PATTERN (60 s max)
  local start=$SHOWN n
  for _ in $(seq 1 600); do
    n=$(wc -l < "$WORK/client.log")
    if [ "$n" -gt "$SHOWN" ]; then
      sed -n "$((SHOWN + 1)),${n}p" "$WORK/client.log" | sed 's/^/   [outside] /'
      SHOWN=$n
    fi
    if [ "$(tail -n +"$((start + 1))" "$WORK/client.log" | grep -cE "$2")" -ge "$1" ]; then
      return 0
    fi
    kill -0 $CLIENT 2>/dev/null || { echo "client exited"; exit 1; }
    sleep 0.1
  done
  echo "timed out waiting for: $2"; exit 1
}
await 3 'served by us-east/us-east-a/cluster-1=20'

say "kill -9 cluster-1's greeter: the gateway's calls go straight to cluster-2"
{ kill -9 "${SERVER_PID[c1]}"; wait "${SERVER_PID[c1]}"; } 2>/dev/null || true
await 3 'served by us-east/us-east-b/cluster-2=20'

say "restart cluster-1's greeter: calls come back"
start_server c1 127.0.1.1 us-east/us-east-a/cluster-1
await 3 'served by us-east/us-east-a/cluster-1=20'

kill -TERM $CLIENT 2>/dev/null || true
wait $CLIENT 2>/dev/null || true
FAILED=$(grep -c 'FAILED' "$WORK/client.log" || true)
kill -TERM $GW_PID; wait $GW_PID 2>/dev/null || true
say "summary"
grep 'gateway stats' "$WORK/gateway.log" | tail -1 | sed 's/^/   /'
echo "   outside batches with a failed call: $FAILED"
[ "$FAILED" -eq 0 ]
