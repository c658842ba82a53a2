#!/usr/bin/env bash
# meshctl validate: exit codes, the summary line, every error on stderr, and
# no crash on random or truncated input.
set -u
MESHCTL=$1
DATA=$(dirname "$2")
fails=0
ERR=$(mktemp /tmp/meshctl_err.XXXXXX)  # Unique: sandboxes share /tmp and PIDs.
trap 'rm -f "$ERR"' EXIT
check() {  # check NAME EXPECTED ACTUAL
  if [ "$2" != "$3" ]; then
    echo "FAIL $1"; echo "  expected: $2"; echo "  actual:   $3"; fails=$((fails + 1))
  else
    echo "ok   $1"
  fi
}
out=$("$MESHCTL" validate "$DATA/good.yaml" 2>"$ERR"); rc=$?
check "valid file exits 0" 0 "$rc"
check "valid file summary" \
  "$DATA/good.yaml: valid (version $(sha256sum "$DATA/good.yaml" | cut -c1-12), trust domain example.org, 1 service(s), 2 endpoint(s))" "$out"
check "valid file writes no stderr" "" "$(cat "$ERR")"

out=$("$MESHCTL" validate "$DATA/good.yaml" "$DATA/bad.yaml" 2>"$ERR"); rc=$?
check "any invalid file exits 1" 1 "$rc"
check "every error on stderr, in file order" \
"$DATA/bad.yaml:7:36: services[0].endpoints[0].port: must be between 1 and 65535, got 99999
$DATA/bad.yaml:8:19: services[0].endpoints[1].address: must be an IPv4 or IPv6 address, got \"not-an-ip\"
$DATA/bad.yaml:8:72: services[0].endpoints[1].colour: unknown field (expected one of: address, port, locality, weight, health, labels)" \
  "$(cat "$ERR")"

# An endpoint set (kind: EndpointSet) is validated as one.
SET=$(mktemp /tmp/meshctl_set.XXXXXX)
printf 'apiVersion: mesh/v1\nkind: EndpointSet\nservice: shop/app1\nendpoints:\n  - {address: 10.0.0.1, port: 80, locality: {region: r1}}\n' > "$SET"
out=$("$MESHCTL" validate "$SET" 2>"$ERR"); rc=$?
check "valid endpoint set exits 0" 0 "$rc"
check "endpoint set summary" "$SET: valid endpoint set (service shop/app1, 1 endpoint(s))" "$out"
printf 'apiVersion: mesh/v1\nkind: EndpointSet\nservice: app1\nendpoints:\n  - {address: 10.0.0.1, port: 0, locality: {region: r1}}\n' > "$SET"
"$MESHCTL" validate "$SET" 2>"$ERR"; rc=$?
check "invalid endpoint set exits 1" 1 "$rc"
check "invalid endpoint set message" \
  "$SET:5:31: endpoints[0].port: must be between 1 and 65535, got 0" "$(cat "$ERR")"
rm -f "$SET"

"$MESHCTL" validate /nonexistent.yaml 2>"$ERR"; rc=$?
check "missing file exits 1" 1 "$rc"
check "missing file message" "/nonexistent.yaml: No such file or directory" "$(cat "$ERR")"
"$MESHCTL" validate >/dev/null 2>&1; check "no files is a usage error" 2 $?
"$MESHCTL" frobnicate >/dev/null 2>&1; check "unknown command is a usage error" 2 $?

# explain: the plan for a caller, with the rule and the numbers.
out=$("$MESHCTL" explain --config="$DATA/spillover.yaml" \
      --from=us-east/us-east-a/cluster-1 greeter.mesh.internal); rc=$?
check "explain exits 0" 0 "$rc"
check "explain shows the spillover priority" \
  "priority 0: spillover: same cluster 93%, same region 7%" \
  "$(echo "$out" | grep '^priority 0')"
check "explain shows the failover priority" \
  "priority 1: elsewhere (failover)" "$(echo "$out" | grep '^priority 1')"
check "explain lists excluded endpoints" \
  "excluded: 10.1.0.3:50051 (UNHEALTHY)" "$(echo "$out" | grep '^excluded')"
out=$("$MESHCTL" explain --config "$DATA/spillover.yaml" \
      --from eu-west/eu-west-a/cluster-3 greeter.mesh.internal)
check "explain depends on the caller's locality" \
  "priority 0: same cluster 100%" "$(echo "$out" | grep "^priority 0")"
"$MESHCTL" explain --config="$DATA/spillover.yaml" --from=a/b/c \
  nope.mesh.internal 2>"$ERR"; rc=$?
check "explain of an unknown hostname exits 1" 1 "$rc"
check "explain of an unknown hostname says so" \
  "meshctl explain: nope.mesh.internal is not a hostname in $DATA/spillover.yaml" \
  "$(cat "$ERR")"
"$MESHCTL" explain greeter.mesh.internal >/dev/null 2>&1
check "explain without --config is a usage error" 2 $?

# explain --label: routes only for some callers (match.source).
out=$("$MESHCTL" explain --config "$DATA/source-routes.yaml" --from r/z/c1 \
      --label track=canary --method /mesh.examples.Greeter/SayHello greeter.mesh.internal)
check "a labelled caller takes the route for its label" \
  "route: canary-callers (line 10), matching callers with label track=canary" \
  "$(echo "$out" | grep '^route:')"
out=$("$MESHCTL" explain --config "$DATA/source-routes.yaml" --from r/z/c1 \
      --method /mesh.examples.Greeter/SayHello greeter.mesh.internal)
check "another caller is told the route is not for it" \
  "not for this caller: route canary-callers (line 10), only for callers with label track=canary" \
  "$(echo "$out" | grep '^not for this caller')"
check "and takes the next one" \
  "route: everyone-else (line 13), matching every call" \
  "$(echo "$out" | grep '^route:')"

# explain --method/--header: which route a call takes, and where it goes.
out=$("$MESHCTL" explain --config "$DATA/routes.yaml" \
      --from us-east/us-east-a/cluster-1 --method /mesh.examples.Greeter/SayHello \
      --header X-Version=v2 greeter.mesh.internal)
check "a header pin selects its route" \
  'route: pin-v2 (line 10), matching x-version == "v2"' \
  "$(echo "$out" | grep '^route:')"
check "the pinned route goes to its subset" "-> default/greeter/v2" \
  "$(echo "$out" | grep '^->')"
out=$("$MESHCTL" explain --config "$DATA/routes.yaml" \
      --from us-east/us-east-a/cluster-1 --method /mesh.examples.Greeter/SayHello \
      greeter.mesh.internal)
check "a percentage route is reported as possible" \
  "may first match route try-v2 (5% of calls)" "$(echo "$out" | grep '^may')"
check "the split shows both destinations with weights" \
  "-> default/greeter/v1 (90%)
-> default/greeter/v2 (10%)" "$(echo "$out" | grep '^->')"
out=$("$MESHCTL" explain --config "$DATA/routes.yaml" --from a/b/c \
      --method /other.Svc/Call greeter.mesh.internal)
check "an unmatched method takes the default route" \
  "route: default (no route matches /other.Svc/Call): the whole service" \
  "$(echo "$out" | grep '^route:')"

# dev-certs: a CA and SVIDs that openssl itself verifies, with the right
# SPIFFE ID and a private key only the owner can read.
certs=$(mktemp -d)
out=$("$MESHCTL" dev-certs --dir "$certs" --trust-domain example.org \
      --namespace shop greeter 2>&1)
check "dev-certs names the identity it issued" \
  "$certs/greeter.pem: spiffe://example.org/ns/shop/sa/greeter" \
  "$(echo "$out" | head -1)"
check "the SVID verifies against the CA" "$certs/greeter.pem: OK" \
  "$(openssl verify -CAfile "$certs/ca.pem" "$certs/greeter.pem" 2>&1)"
check "the SVID carries the SPIFFE ID as its URI SAN" \
  "URI:spiffe://example.org/ns/shop/sa/greeter" \
  "$(openssl x509 -in "$certs/greeter.pem" -noout -ext subjectAltName | tail -1 | tr -d ' ')"
check "the private key is mode 0600" "600" "$(stat -c %a "$certs/greeter.key")"
"$MESHCTL" dev-certs --dir "$certs" greeter >/dev/null 2>&1; rc=$?
check "dev-certs without --trust-domain is a usage error" 2 "$rc"
rm -rf "$certs"

# Never crashes: 300 pseudo-random files (fixed seed, so reproducible) and
# every 7th-byte truncation of a good file. Exit 0 or 1 only; never a signal.
tmp=$(mktemp -d)
crashes=0
for i in $(seq 1 300); do
  openssl enc -aes-128-ctr -nosalt -pass "pass:seed$i" -pbkdf2 \
    < /dev/zero 2>/dev/null | head -c $((i * 13)) > "$tmp/r$i.yaml"
  "$MESHCTL" validate "$tmp/r$i.yaml" >/dev/null 2>&1; rc=$?
  [ $rc -le 1 ] || { echo "crash (exit $rc) on random input $i"; crashes=$((crashes + 1)); }
done
size=$(stat -c %s "$DATA/good.yaml")
for n in $(seq 0 7 "$size"); do
  head -c "$n" "$DATA/good.yaml" > "$tmp/t.yaml"
  "$MESHCTL" validate "$tmp/t.yaml" >/dev/null 2>&1; rc=$?
  [ $rc -le 1 ] || { echo "crash (exit $rc) on truncation at $n"; crashes=$((crashes + 1)); }
done
rm -rf "$tmp" "$ERR"
check "no crash on random or truncated input" 0 "$crashes"
[ $fails -eq 0 ]
