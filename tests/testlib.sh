# Shell helpers for the tests, the demos and the benchmarks (sourced).

# free_port: a loopback TCP port nothing listens on, and not one this
# script was given before (several may be asked for before anything listens
# on them). The kernel may still give it to someone else before the caller
# binds; loopback tests accept that.
# (The file is made when this is sourced, so the $(...) subshells that call
# it share it; not named by $$: tests in Bazel's sandboxes share /tmp and
# may have the same PID. stop_started removes it.)
FREE_PORTS_GIVEN=$(mktemp /tmp/mesh-ports.XXXXXX)
free_port() {
  local p
  while :; do
    p=$(( 20000 + RANDOM % 30000 ))
    grep -qx "$p" "$FREE_PORTS_GIVEN" 2>/dev/null && continue
    ss -Hltn "sport = :$p" | grep -q . || { echo "$p" >> "$FREE_PORTS_GIVEN"; echo $p; return; }
  done
}

# Processes a script starts go in PIDS (PIDS+=($!)); stop_started stops them
# (SIGTERM) and reaps them, e.g. from an EXIT trap.
PIDS=()
stop_started() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -f "$FREE_PORTS_GIVEN"
}
