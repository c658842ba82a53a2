#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan + libFuzzer) and runs
# each for a bounded time on its seed corpus. Exits non-zero on any crash,
# leak, UB report or timeout; prints the number of executions.
# Usage: tests/fuzz/run.sh [SECONDS_PER_TARGET=30]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_PER_TARGET=${1:-30}
# bazel/setup.sh installs these; this keeps the script usable on its own.
for p in clang libclang-rt-14-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
    { echo "[fuzz] installing $p" >&2; apt-get update -q >&2;
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$p" >&2; }
done
OUT=$(mktemp -d /tmp/mesh-fuzz-XXXXXX)
trap 'rm -rf "$OUT"' EXIT
ABSL=$(pkg-config --libs absl_strings absl_str_format absl_status absl_statusor \
  absl_synchronization absl_time absl_hash absl_raw_hash_set)
CXX="clang++ -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I."
# The library sources each fuzzer needs, from the Bazel target that runs
# its corpus as a regression test (so the two never disagree).
sources() {
  bazel query "kind('source file', deps($1))" 2>/dev/null |
    grep '^//mesh/.*\.cc$' | sed 's|^//||; s|:|/|'
}
echo "[fuzz] building config_fuzzer and svid_fuzzer" >&2
$CXX tests/fuzz/config_fuzzer.cc $(sources //tests/fuzz:config_corpus_test) \
  -lyaml -lre2 -lcrypto $ABSL -o "$OUT/config_fuzzer"
$CXX tests/fuzz/svid_fuzzer.cc $(sources //tests/fuzz:svid_corpus_test) \
  -lcrypto $ABSL -o "$OUT/svid_fuzzer"
# fuzz NAME CORPUS_DIR...: run NAME on a scratch copy of the seeds.
fuzz() {
  local name=$1; shift
  mkdir -p "$OUT/corpus-$name"
  for d in "$@"; do
    find "$d" -maxdepth 1 -type f -exec cp -t "$OUT/corpus-$name/" {} +
  done
  echo "[fuzz] $name for ${SECONDS_PER_TARGET}s" >&2
  "$OUT/$name" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 \
    -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
    "$OUT/corpus-$name" > "$OUT/$name.log" 2>&1 || { tail -60 "$OUT/$name.log"; exit 1; }
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$OUT/$name.log")
  echo "$name: $runs executions in ${SECONDS_PER_TARGET}s, no crash"
}
# The config fuzzer's seeds are the committed corpus plus the test configs
# and the bad-input corpus.
fuzz config_fuzzer tests/fuzz/corpus/config tests/testdata tests/testdata/bad
fuzz svid_fuzzer tests/fuzz/corpus/svid
