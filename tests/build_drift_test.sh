#!/usr/bin/env bash
# The two builds must not drift: every .cc under mesh/ and examples/ is in
# CMakeLists.txt and in its folder's BUILD.bazel (one exception below).
# Prints what is missing where; exit 1 if anything is.
set -uo pipefail
cd "$(dirname "$0")/.."
# Bazel only: LeakSanitizer/TSan suppressions for the sanitizer passes.
BAZEL_ONLY="mesh/common/sanitizer_suppressions.cc"
missing=0
while read -r f; do
  dir=$(dirname "$f")
  base=$(basename "$f")
  if ! grep -q "\"$base\"" "$dir/BUILD.bazel" 2>/dev/null; then
    echo "$f: not in $dir/BUILD.bazel"; missing=1
  fi
  case " $BAZEL_ONLY " in *" $f "*) continue;; esac
  if ! grep -qE "(^|[[:space:]])$f([[:space:]]|\)|$)" CMakeLists.txt; then
    echo "$f: not in CMakeLists.txt"; missing=1
  fi
done < <(find mesh examples -name '*.cc' | sort)
[ $missing = 0 ] && echo "build drift: every source is in both builds"
exit $missing
