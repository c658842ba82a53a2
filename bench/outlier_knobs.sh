#!/bin/bash
# What each outlierDetection knob does to a hung server's failover and
# failback (bench/failover --kind=hung: the local server is SIGSTOPped, its
# port open, nothing answers; then SIGCONT). Each setting runs ROUNDS times
# side by side in one run, the built-in defaults first as the baseline;
# prints a Markdown table of medians (docs/benchmarks.md, "Outlier
# detection knobs").
#
#   bench/outlier_knobs.sh [--rounds=N]   (default 3; about 6 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=3
for a in "$@"; do
  case "$a" in
    --rounds=*) ROUNDS="${a#*=}" ;;
    *) echo "usage: bench/outlier_knobs.sh [--rounds=N]" >&2; exit 2 ;;
  esac
done
echo "building bench/failover and bench_server (-c opt)..." >&2
bazel build -c opt --platform_suffix=opt //bench:failover //bench:bench_server >&2
BIN=$(bazel info -c opt --platform_suffix=opt bazel-bin 2>/dev/null)/bench
SETTINGS=(
  ""
  "{interval: 250ms}"
  "{interval: 3s}"
  "{failurePercentage: {requestVolume: 100}}"
  "{baseEjectionTime: 2s}"
  "{baseEjectionTime: 10s}"
)
OUT=$(mktemp /tmp/mesh-outlier-knobs.XXXXXX)
trap 'rm -f "$OUT"' EXIT
for r in $(seq 1 "$ROUNDS"); do
  for s in "${SETTINGS[@]}"; do
    echo "round $r/$ROUNDS: ${s:-built-in defaults}" >&2
    line=$(MESH_LOG_QUIET=1 "$BIN/failover" --server="$BIN/bench_server" --kind=hung \
      --phase_s=4 --recover_s=14 ${s:+--outlier="$s"} | tail -1) || true
    echo "setting=${s:-defaults} $line" >> "$OUT"
  done
done
echo "| outlierDetection | hung failover (median) | failed calls (all rounds) | failback after SIGCONT (median) | failback failed calls |"
echo "|---|---|---|---|---|"
python3 - "$OUT" <<'PY'
import re, statistics, sys
rows = {}
order = []
for line in open(sys.argv[1]):
    m = re.match(r'setting=(.*?) (kind=.*)$', line.strip())
    if not m:
        continue
    s, rest = m.group(1), m.group(2)
    f = dict(kv.split('=', 1) for kv in rest.split() if '=' in kv)
    if s not in rows:
        rows[s] = []
        order.append(s)
    rows[s].append(f)
def med(fs, k):
    v = [float(x[k]) for x in fs if k in x and float(x[k]) >= 0]
    return "%.0f ms" % statistics.median(v) if v else "-"
def total(fs, k):
    return str(sum(int(x.get(k, 0)) for x in fs))
for s in order:
    fs = rows[s]
    print("| %s | %s | %s | %s | %s |" % (
        "built-in defaults" if s == "defaults" else "`%s`" % s,
        med(fs, "failover_ms"), total(fs, "failed"),
        med(fs, "failback_ms"), total(fs, "failback_failed")))
PY
