#!/usr/bin/env bash
# Installs what building and testing mesh needs on Debian bookworm, as root,
# with only Debian's packages and the npm registry reachable. Idempotent: it
# installs only what is missing and re-extracts the protos only when the pinned
# version changes. Usage: bazel/setup.sh [--with-test-tools] [--with-bench-tools] [--with-etcd]
# (--with-test-tools also installs what only the tests need: chromium for the
# status page test, iproute2 for the network-namespace test, etcd-server for
# the etcd tests, cmake and ccache for the CMake build's test;
# --with-bench-tools what the benchmarks compare against: nginx, haproxy;
# --with-etcd etcd-server alone, for the demo's discovery part.)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[setup] %s\n' "$*" >&2; }

PACKAGES=(
  bazel-bootstrap bazel-rules-java bazel-platforms
  g++ pkg-config
  libgrpc++-dev protobuf-compiler protobuf-compiler-grpc libprotobuf-dev
  libabsl-dev libc-ares-dev libssl-dev libyaml-dev libyaml-cpp-dev libre2-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  clang libclang-rt-14-dev
  openssl procps
  golang-etcd-server-dev
)

# Only the tests need these (tests/run.sh asks for them).
TEST_PACKAGES=(chromium iproute2 etcd-server dnsmasq-base cmake ccache)
# The demo's discovery part needs etcd (--with-etcd).
ETCD_PACKAGES=(etcd-server)
# Only the benchmarks need these (a proxy to compare a hop with).
BENCH_PACKAGES=(nginx haproxy libfyaml-dev)
for flag in "$@"; do
  case $flag in
    --with-test-tools) PACKAGES+=("${TEST_PACKAGES[@]}");;
    --with-bench-tools) PACKAGES+=("${BENCH_PACKAGES[@]}");;
    --with-etcd) PACKAGES+=("${ETCD_PACKAGES[@]}");;
    *) say "unknown flag $flag (usage: bazel/setup.sh [--with-test-tools] [--with-bench-tools] [--with-etcd])"; exit 2;;
  esac
done

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
    missing+=("$p")
done
# npm may come with a Node.js that is not Debian's (it then conflicts with
# Debian's npm package): only install it when there is no npm command.
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  # nginx and haproxy are only run by the benchmarks, on their own configs:
  # keep their packages from starting system services (on ports 80/...)
  # while they install, with a policy-rc.d that we add and remove.
  policy=/usr/sbin/policy-rc.d
  added_policy=0
  if [ ! -e $policy ]; then
    printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy && added_policy=1
  fi
  rc=0
  apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 || rc=$?
  [ $added_policy = 1 ] && rm -f $policy
  [ $rc = 0 ] || exit $rc
fi

# The Envoy xDS API protos: Debian has no package for them. The npm package
# @grpc/grpc-js-xds ships them under package/deps. Pinned by version and hash.
XDS_NPM=@grpc/grpc-js-xds@1.14.1
XDS_SHA256=fd27db4119c139d5b59e8fe99d109bed04bff491302743ae3bf096667105c607
DEST=.deps/xds-protos
if [ "$(cat "$DEST/.stamp" 2>/dev/null || true)" != "$XDS_SHA256" ]; then
  say "fetching xDS protos from npm package $XDS_NPM"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "$XDS_NPM" >/dev/null)
  tgz=$(ls "$tmp"/*.tgz)
  echo "$XDS_SHA256  $tgz" | sha256sum -c --quiet - ||
    { say "checksum mismatch for $XDS_NPM"; exit 1; }
  tar xzf "$tgz" -C "$tmp"
  rm -rf "$DEST"
  mkdir -p "$DEST"
  d="$tmp/package/deps"
  cp -r "$d/envoy-api/envoy" "$d/xds/xds" "$d/xds/udpa" "$d/googleapis/google" \
        "$d/protoc-gen-validate/validate" "$DEST/"
  # The bundled validate.proto lacks StringRules.ignore_empty (field 26),
  # which envoy/config/core/v3/protocol.proto uses. Add it before the end of
  # the StringRules message.
  v="$DEST/validate/validate.proto"
  end=$(awk '/^message StringRules \{/{f=1} f&&/^}/{print NR; exit}' "$v")
  sed -i "${end}i\\    optional bool ignore_empty = 26;" "$v"
  echo 'workspace(name = "xds_protos")' > "$DEST/WORKSPACE"
  echo "$XDS_SHA256" > "$DEST/.stamp"
  say "xDS protos ready in $DEST"
fi

# The etcd v3 API protos, from Debian's golang-etcd-server-dev, without the
# gogoproto and google.api.http options (Go and REST-gateway annotations:
# they do not change the wire format, and would need two more proto trees).
ETCD_SRC=/usr/share/gocode/src/go.etcd.io/etcd
ETCD_VERSION=$(dpkg-query -W -f='${Version}' golang-etcd-server-dev)
DEST=.deps/etcd-protos
if [ "$(cat "$DEST/.stamp" 2>/dev/null || true)" != "$ETCD_VERSION" ]; then
  say "extracting the etcd protos from golang-etcd-server-dev $ETCD_VERSION"
  rm -rf "$DEST"
  for f in etcdserver/etcdserverpb/rpc.proto mvcc/mvccpb/kv.proto auth/authpb/auth.proto; do
    mkdir -p "$DEST/etcd/$(dirname $f)"
    python3 - "$ETCD_SRC/$f" "$DEST/etcd/$f" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
text = re.sub(r'import "(gogoproto/gogo|google/api/annotations)\.proto";\n', "", text)
text = re.sub(r'option \(gogoproto\.[^;]*;\n', "", text)
# option (google.api.http) = { ... }; with nested braces.
while True:
    start = text.find("option (google.api.http) = {")
    if start < 0:
        break
    i, depth = text.index("{", start), 0
    while True:
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 1
        if depth == 0:
            break
    text = text[:start] + text[text.index(";", i) + 1:]
text = re.sub(r'\s*\[\(gogoproto\.[^\]]*\]', "", text)
open(sys.argv[2], "w").write(text)
PY
  done
  echo 'workspace(name = "etcd_protos")' > "$DEST/WORKSPACE"
  echo "$ETCD_VERSION" > "$DEST/.stamp"
  say "etcd protos ready in $DEST"
fi
