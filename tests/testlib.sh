# Shell helpers for the tests, the demos and the benchmarks (sourced).

# free_port: a loopback TCP port nothing listens on, and not one this
# script was given before (several may be asked for before anything listens
# on them). The kernel may still give it to someone else before the caller
# binds; loopback tests accept that.
# ($$ is the sourcing script's, also in the $(...) subshells that call it;
# stop_started removes the file.)
FREE_PORTS_GIVEN=/tmp/mesh-ports.$$
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
