# Shell helpers for the tests (sourced, with the test in tests/).

# free_port: a loopback TCP port nothing listens on (the kernel may still
# give it to someone else before the caller binds; loopback tests accept
# that).
free_port() {
  local p
  while :; do
    p=$(( 20000 + RANDOM % 30000 ))
    ss -Hltn "sport = :$p" | grep -q . || { echo $p; return; }
  done
}
