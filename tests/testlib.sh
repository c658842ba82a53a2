# Shell helpers for the tests, the demos and the benchmarks (sourced).

# free_port: a loopback TCP port no socket uses, and not one this script
# was given before (several may be asked for before anything listens on
# them). Ports come from below the kernel's ephemeral range
# (ip_local_port_range), which it never gives an outgoing connection: a
# port inside it can become the local end of any process's connect()
# between this check and the caller's bind, and a Go server (etcd) then
# fails with "address already in use" (one chaos run's etcd never came up
# on 49574). Another test may still pick the same port before the caller
# binds; loopback tests accept that. $SRANDOM, not $RANDOM: a script that
# seeds RANDOM (the chaos test) must not get the same ports every run.
# (The file is made when this is sourced, so the $(...) subshells that call
# it share it; not named by $$: tests in Bazel's sandboxes share /tmp and
# may have the same PID. stop_started removes it.)
FREE_PORTS_GIVEN=$(mktemp /tmp/mesh-ports.XXXXXX)
FREE_PORT_HI=$(( $(cut -f1 /proc/sys/net/ipv4/ip_local_port_range) - 1 ))
FREE_PORT_LO=$(( FREE_PORT_HI > 22000 ? 20000 : 1024 ))
free_port() {
  local p
  while :; do
    p=$(( FREE_PORT_LO + SRANDOM % (FREE_PORT_HI - FREE_PORT_LO + 1) ))
    grep -qx "$p" "$FREE_PORTS_GIVEN" 2>/dev/null && continue
    ss -Htan "sport = :$p" | grep -q . || { echo "$p" >> "$FREE_PORTS_GIVEN"; echo $p; return; }
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
