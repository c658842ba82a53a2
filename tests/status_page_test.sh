#!/usr/bin/env bash
# The status page in a real browser: the demo's topology (greeter in three
# clusters, four mTLS servers) and a client with its admin endpoint on; the
# page is loaded in headless Chromium, its rendered DOM checked for the
# destination and each of its localities, and a screenshot taken (kept in
# the test's outputs: bazel-testlogs/tests/status_page_test/test.outputs/).
# Usage (from Bazel): status_page_test.sh MESHCTL GREETER_SERVER GREETER_CLIENT
set -euo pipefail
MESHCTL=$(realpath "$1") SERVER=$(realpath "$2") CLIENT=$(realpath "$3")
CHROMIUM=$(command -v chromium || true)
[ -n "$CHROMIUM" ] || { echo "FAIL: chromium is not installed (bazel/setup.sh --with-test-tools installs it)"; exit 1; }
WORK=$(mktemp -d /tmp/mesh-page-XXXXXX)
OUT=${TEST_UNDECLARED_OUTPUTS_DIR:-$WORK}
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK" "${FREE_PORTS_GIVEN:-}"
}
trap cleanup EXIT
fails=0
check() {  # check NAME COMMAND...
  if "${@:2}"; then echo "ok: $1"; else echo "FAIL: $1"; fails=$((fails + 1)); fi
}
source "$(dirname "$0")/testlib.sh"  # free_port

"$MESHCTL" dev-certs --dir "$WORK" --trust-domain example.org greeter greeter-client > /dev/null
PORT=$(free_port)
C1="region: us-east, zone: us-east-a, cluster: cluster-1"
C2="region: us-east, zone: us-east-b, cluster: cluster-2"
C3="region: eu-west, zone: eu-west-a, cluster: cluster-3"
cat > "$WORK/mesh.yaml" <<YAML
apiVersion: mesh/v1
trustDomain: example.org
services:
  - name: greeter
    hostname: greeter.mesh.internal
    endpoints:
      - {address: 127.0.1.1, port: $PORT, locality: {$C1}}
      - {address: 127.0.1.2, port: $PORT, locality: {$C1}}
      - {address: 127.0.2.1, port: $PORT, locality: {$C2}}
      - {address: 127.0.3.1, port: $PORT, locality: {$C3}}
YAML
id() { echo "--cert=$WORK/$1.pem --key=$WORK/$1.key --bundle=$WORK/ca.pem"; }
for s in 127.0.1.1 127.0.1.2 127.0.2.1 127.0.3.1; do
  "$SERVER" --config="$WORK/mesh.yaml" --listen="$s:$PORT" $(id greeter) \
    > "$WORK/server-$s.log" 2>&1 &
  PIDS+=($!)
done
ADMIN=127.0.0.1:$(free_port)
MESH_LOG_QUIET=1 "$CLIENT" --config="$WORK/mesh.yaml" $(id greeter-client) \
  --locality=us-east/us-east-a/cluster-1 --admin="$ADMIN" --batches=300 \
  --batch_size=10 --interval_ms=50 > "$WORK/client.log" 2>&1 &
PIDS+=($!)
# Until the client's calls show up in its admin endpoint (at most 20 s).
for _ in $(seq 1 200); do
  "$MESHCTL" status "$ADMIN" 2>/dev/null | grep -q "us-east/us-east-a/cluster-1 .* [1-9][0-9]* " && break
  sleep 0.1
done
"$MESHCTL" status "$ADMIN" | tee "$WORK/status.txt"
check "meshctl status shows cluster-1 serving" grep -q "^  0    us-east/us-east-a/cluster-1 " "$WORK/status.txt"

flags=(--headless --no-sandbox --disable-gpu --no-first-run
       --disable-background-networking --disable-component-update --disable-sync
       --disable-dev-shm-usage --user-data-dir="$WORK/chrome"
       --virtual-time-budget=3000 --window-size=1280,800)
timeout 60 "$CHROMIUM" "${flags[@]}" --dump-dom "http://$ADMIN/" > "$WORK/dom.html" 2> "$WORK/chrome-dom.log" || true
timeout 60 "$CHROMIUM" "${flags[@]}" --screenshot="$OUT/status_page.png" "http://$ADMIN/" > /dev/null 2> "$WORK/chrome-shot.log" || true
check "the page rendered the destination" grep -q 'data-destination="greeter.mesh.internal"' "$WORK/dom.html"
for loc in us-east/us-east-a/cluster-1 us-east/us-east-b/cluster-2 eu-west/eu-west-a/cluster-3; do
  check "the page shows locality $loc" grep -q "data-locality=\"$loc\"" "$WORK/dom.html"
done
check "the page shows the identity" grep -q "mTLS spiffe://example.org/ns/default/sa/greeter-client" "$WORK/dom.html"
check "cluster-1 is marked as serving" grep -q '<tr class="serving" data-locality="us-east/us-east-a/cluster-1">' "$WORK/dom.html"
size=$(stat -c %s "$OUT/status_page.png" 2>/dev/null || echo 0)
check "a screenshot was taken ($size bytes)" [ "$size" -gt 10000 ]
if [ $fails -ne 0 ]; then
  echo "--- dom"; head -c 3000 "$WORK/dom.html"; echo; echo "--- chromium"; tail -20 "$WORK/chrome-dom.log"
fi
[ $fails -eq 0 ]
