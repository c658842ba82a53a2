#!/usr/bin/env bash
# Builds mesh and runs every test. Installs what is missing first (Debian
# packages, the xDS protos: bazel/setup.sh). The last line is
# "N passed, N failed", counting test cases (a target that fails to build or
# has no per-case report counts as one failed case).
#
# Also runs the fuzzers for MESH_FUZZ_SECONDS each (default 30; 0 skips).
#
# Usage: tests/run.sh [extra bazel test flags]
set -uo pipefail
cd "$(dirname "$0")/.."
bazel/setup.sh --with-test-tools || { echo "0 passed, 1 failed"; exit 1; }

echo "[tests] building and running all tests (bazel test //...)" >&2
bazel test //... --keep_going --nocache_test_results "$@" 2>&1 | tee /tmp/mesh-tests.$$.log
rc=${PIPESTATUS[0]}

passed=0
failed=0
# Per target: the JUnit XML Bazel writes (gtest's own for C++ tests).
while read -r target status; do
  path=${target#//}
  xml="bazel-testlogs/${path/://}/test.xml"
  if [ "$status" = PASSED ] || [ "$status" = FAILED ] || [ "$status" = FLAKY ]; then
    if [ -f "$xml" ]; then
      cases=$(grep -c '<testcase' "$xml")
      bad=$(grep -c '<failure' "$xml")
      [ "$cases" -eq 0 ] && cases=1
      if [ "$status" != PASSED ] && [ "$bad" -eq 0 ]; then bad=1; fi
      passed=$((passed + cases - bad))
      failed=$((failed + bad))
      continue
    fi
  fi
  failed=$((failed + 1))  # NO STATUS, FAILED TO BUILD, TIMEOUT without XML...
done < <(grep -E '^//[^ ]+ +(PASSED|FAILED|FLAKY|TIMEOUT|NO STATUS|FAILED TO BUILD|INCOMPLETE)' \
           /tmp/mesh-tests.$$.log | awk '{print $1, $2}')
rm -f /tmp/mesh-tests.$$.log
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1  # Bazel failed before any test ran (e.g. a build error).
fi

# The fuzzers (config loader, certificate identity parser), each bounded
# (MESH_FUZZ_SECONDS per fuzzer, default 30; 0 skips them); each fuzzer
# that runs clean counts as one passed test.
FUZZ_SECONDS=${MESH_FUZZ_SECONDS:-30}
if [ "$FUZZ_SECONDS" -gt 0 ]; then
  fuzz_log=$(mktemp)
  if tests/fuzz/run.sh "$FUZZ_SECONDS" | tee "$fuzz_log"; then
    passed=$((passed + $(grep -c 'no crash$' "$fuzz_log")))
  else
    echo "[tests] a fuzzer FAILED (see above)"
    passed=$((passed + $(grep -c 'no crash$' "$fuzz_log")))
    failed=$((failed + 1))
  fi
  rm -f "$fuzz_log"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
