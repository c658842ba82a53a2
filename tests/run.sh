#!/usr/bin/env bash
# Builds mesh and runs every test. Installs what is missing first (Debian
# packages, the xDS protos: bazel/setup.sh). The last line is
# "N passed, N failed", counting test cases (a target that fails to build or
# has no per-case report counts as one failed case). Just before it, each
# failed target is listed again with the first lines of its failures.
#
# Also runs the fuzzers for MESH_FUZZ_SECONDS each (default 30; 0 skips),
# the benchmark suite's short mode as a smoke test (MESH_BENCH_SMOKE=0 skips),
# and with MESH_SANITIZERS=1 (set by .ci/run) every test again under ASan +
# UBSan and the concurrency-heavy ones (tag "tsan") under ThreadSanitizer.
#
# Usage: tests/run.sh [extra bazel test flags]
set -uo pipefail
cd "$(dirname "$0")/.."
bazel/setup.sh --with-test-tools || { echo "0 passed, 1 failed"; exit 1; }

passed=0
failed=0
# What failed, and where, printed again just before the totals (CI shows a
# long log's head and tail only).
failure_summary=$(mktemp)
# run_pass LABEL BAZEL_TEST_ARGS...: runs the tests and adds their cases to
# passed/failed, per target from the JUnit XML Bazel writes (gtest's own
# for C++ tests).
# summarize_failure LABEL TARGET STATUS: the target's failed cases and the
# first lines of each failure or sanitizer report, into $failure_summary.
summarize_failure() {
  local path=${2#//}
  local log="bazel-testlogs/${path/://}/test.log"
  {
    echo "[$1] $2 $3"
    if [ -f "$log" ]; then
      grep -E -A6 'Failure$|ERROR: AddressSanitizer|WARNING: ThreadSanitizer|runtime error:|^\[  FAILED  \] [A-Za-z]' \
        "$log" | head -40 | sed 's/^/    /'
    fi
  } >> "$failure_summary"
}
run_pass() {
  local label=$1; shift
  local log=/tmp/mesh-tests.$$.log
  echo "[tests] $label: bazel test $*" >&2
  bazel test "$@" --keep_going --nocache_test_results 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]} pass_failed=0
  while read -r target status; do
    path=${target#//}
    xml="bazel-testlogs/${path/://}/test.xml"
    if [ "$status" = PASSED ] || [ "$status" = FAILED ] || [ "$status" = FLAKY ]; then
      if [ -f "$xml" ]; then
        cases=$(grep -c '<testcase' "$xml")
        bad=$(grep -c '<failure' "$xml")
        [ "$cases" -eq 0 ] && cases=1
        if [ "$status" != PASSED ] && [ "$bad" -eq 0 ]; then bad=1; fi
        [ "$status" != PASSED ] && summarize_failure "$label" "$target" "$status"
        passed=$((passed + cases - bad))
        pass_failed=$((pass_failed + bad))
        continue
      fi
    fi
    pass_failed=$((pass_failed + 1))  # NO STATUS, FAILED TO BUILD, TIMEOUT...
    summarize_failure "$label" "$target" "$status"
  done < <(grep -E '^//[^ ]+ +(PASSED|FAILED|FLAKY|TIMEOUT|NO STATUS|FAILED TO BUILD|INCOMPLETE)' \
             "$log" | awk '{print $1, $2}')
  rm -f "$log"
  if [ "$rc" -ne 0 ] && [ "$pass_failed" -eq 0 ]; then
    pass_failed=1  # Bazel failed before any test ran (e.g. a build error).
  fi
  failed=$((failed + pass_failed))
}

run_pass "all tests" //... "$@"

# The unit and end-to-end tests again under AddressSanitizer +
# UndefinedBehaviorSanitizer (MESH_SANITIZERS=1; .ci/run sets it). Their
# cases count again: a sanitizer report fails the case.
if [ "${MESH_SANITIZERS:-0}" = 1 ]; then
  run_pass "ASan + UBSan" --config=asan //tests/... "$@"
  # The concurrency-heavy tests (control plane, watchers, health checker,
  # the library's start/stop, the admin server; tag "tsan") under
  # ThreadSanitizer. docs/reliability.md says why not the end-to-end ones.
  run_pass "TSan" --config=tsan --test_tag_filters=tsan --build_tests_only \
    //tests/... "$@"
fi

# The CMake build (tests/cmake_test.sh: build, CTest, install, the consumer
# project in tests/install/ with find_package and with pkg-config; every
# case counts) and the check that both builds list every source
# (tests/build_drift_test.sh, one case). MESH_CMAKE=0 skips the first.
if tests/build_drift_test.sh; then passed=$((passed + 1)); else
  failed=$((failed + 1)); echo "[tests] build drift" >> "$failure_summary"; fi
if [ "${MESH_CMAKE:-1}" = 1 ]; then
  echo "[tests] CMake: tests/cmake_test.sh" >&2
  cmake_log=$(mktemp)
  tests/cmake_test.sh 2> >(tail -60 >&2) | tee "$cmake_log"
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$cmake_log" | tail -1)
  if [ -n "$line" ]; then
    passed=$((passed + $(echo "$line" | awk '{print $1}')))
    cfailed=$(echo "$line" | awk '{print $3}')
  else
    cfailed=1
  fi
  failed=$((failed + cfailed))
  [ "$cfailed" -gt 0 ] && echo "[cmake] tests/cmake_test.sh: $cfailed failed (see its log above)" >> "$failure_summary"
  rm -f "$cmake_log"
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
# The benchmark suite in its short mode: a smoke test that the harness
# works (every path, failover, cold start, micro-benchmarks ran and no
# closed-loop call failed), never a timing assertion. One test.
# MESH_BENCH_SMOKE=0 skips it.
if [ "${MESH_BENCH_SMOKE:-1}" = 1 ]; then
  echo "[tests] benchmark suite, short mode: bench/suite.sh --short" >&2
  bench_log=$(mktemp)
  if bench/suite.sh --short > "$bench_log" 2>&1; then
    passed=$((passed + 1))
    grep -E '^\| (1|16) \| ' "$bench_log" | head -20
  else
    tail -40 "$bench_log"
    echo "[tests] the benchmark suite's short mode FAILED"
    failed=$((failed + 1))
  fi
  rm -f "$bench_log"
fi
if [ -s "$failure_summary" ]; then
  echo "[tests] what failed:"
  cat "$failure_summary"
fi
rm -f "$failure_summary"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
