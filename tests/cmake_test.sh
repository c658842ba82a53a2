#!/usr/bin/env bash
# The CMake build, end to end (issue: "consumable by any C++ team"):
#   1. cmake -S . -B BUILD && cmake --build BUILD && ctest --test-dir BUILD
#   2. cmake --install BUILD --prefix PREFIX (a fresh temp dir)
#   3. tests/install/ configured against PREFIX with find_package(mesh),
#      built, run: one call through hello.mesh.internal
#   4. the same program built with `pkg-config mesh` only, run
# Each CTest test and each of steps 2-4 counts as one case; the last line
# is "N passed, N failed". Compiles through ccache when it is installed
# (CCACHE_DIR ~/.cache/mesh-ccache), so a second run is fast.
# Usage: tests/cmake_test.sh (after bazel/setup.sh --with-test-tools)
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$(mktemp -d /tmp/mesh-cmake.XXXXXX)
trap 'rm -rf "$work"' EXIT
# The build tree is the git-ignored .deps/cmake-build of this checkout
# (reconfigured each run), so that ccache's keys do not depend on a temp path.
build=$root/.deps/cmake-build
jobs=$(nproc)
passed=0
failed=0
step() {  # step NAME COMMAND...: one case
  local name=$1; shift
  echo "[cmake] $name" >&2
  if "$@"; then passed=$((passed + 1)); else
    echo "[cmake] FAILED: $name" >&2; failed=$((failed + 1)); fi
}
launcher=()
if command -v ccache >/dev/null; then
  export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/mesh-ccache}
  # Paths relative to the checkout, so that another clone hits the cache.
  export CCACHE_BASEDIR=$root CCACHE_NOHASHDIR=true
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
echo "[cmake] configure + build in $build ($jobs jobs)" >&2
if ! cmake -S . -B "$build" -DMESH_WERROR=ON "${launcher[@]}" >&2 ||
   ! cmake --build "$build" -j "$jobs" >&2; then
  echo "[cmake] the CMake build FAILED"
  echo "0 passed, 1 failed"
  exit 1
fi
ctest_log=$work/ctest.log
ctest --test-dir "$build" -j "$jobs" --output-on-failure 2>&1 | tee "$ctest_log" >&2
ok=$(grep -cE '^ *[0-9]+/[0-9]+ Test +#[0-9]+: .* Passed' "$ctest_log")
all=$(grep -cE '^ *[0-9]+/[0-9]+ Test +#[0-9]+: ' "$ctest_log")
[ "$all" -gt 0 ] || all=1
passed=$((passed + ok))
failed=$((failed + all - ok))

prefix=$work/prefix
step "cmake --install --prefix $prefix" \
  cmake --install "$build" --prefix "$prefix"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
consumer_cmake() {
  cmake -S tests/install -B "$work/consumer" -DCMAKE_PREFIX_PATH="$prefix" \
    "${launcher[@]}" >&2 &&
  cmake --build "$work/consumer" >&2 &&
  mkdir -p "$work/run1" &&
  timeout 60 "$work/consumer/hello" "$(port)" "$work/run1"
}
step "tests/install with find_package(mesh CONFIG REQUIRED)" consumer_cmake
consumer_pkgconfig() {
  local pc
  pc=$(dirname "$(find "$prefix" -name mesh.pc | head -1)")
  mkdir -p "$work/pc" "$work/run2" &&
  g++ -o "$work/pc/hello" tests/install/hello.cc tests/install/header_alone.cc \
    $(PKG_CONFIG_PATH=$pc pkg-config --cflags --libs mesh) \
    -Wl,-rpath,"$(PKG_CONFIG_PATH=$pc pkg-config --variable=libdir mesh)" &&
  timeout 60 "$work/pc/hello" "$(port)" "$work/run2"
}
step "tests/install with pkg-config mesh" consumer_pkgconfig
cd "$root"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
