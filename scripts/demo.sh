#!/usr/bin/env bash
# The nsnet demo, on a fresh Debian 12 machine as root:
#   builds nsnet, starts the daemon (embedded store, its own host namespace),
#   applies examples/seed-bridge.yaml (red, green, blue on one bridge) and
#   shows the instances pinging each other.
#
#   sudo scripts/demo.sh          set up and run the demo
#   sudo scripts/demo.sh down     tear it all down again
set -euo pipefail
source "$(dirname "$0")/deps.sh"
require_root "$@"
cd "$NSNET_ROOT"

# The demo's daemon keeps its state and socket apart from a real install's,
# and its "host" is a namespace of its own: it never changes this machine's
# own links, routes or firewall.
DEMO_DIR=/var/lib/nsnet-demo
SOCKET=/run/nsnet-demo/nsnet.sock
HOST_NETNS=nsnet-demo-host
PIDFILE=/run/nsnet-demo/daemon.pid
LOG=/var/log/nsnet-demo.log
NSNET="$NSNET_ROOT/bin/nsnet --socket $SOCKET"

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

down() {
  if [ -S "$SOCKET" ]; then
    say "destroying the demo topology"
    $NSNET destroy -f examples/seed-bridge.yaml || true
  fi
  if [ -f "$PIDFILE" ]; then
    say "stopping the daemon"
    kill "$(cat "$PIDFILE")" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break; sleep 0.1; done
    rm -f "$PIDFILE"
  fi
  ip netns delete "$HOST_NETNS" 2>/dev/null || true
  rm -rf "$DEMO_DIR"
  echo "demo removed"
}

if [ "${1:-}" = down ]; then down; exit 0; fi

ensure_packages
ensure_go
say "building nsnet"
run go build -o bin/nsnet ./cmd/nsnet

if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
  say "the demo daemon is already running (pid $(cat "$PIDFILE"))"
else
  say "starting the daemon (log: $LOG)"
  mkdir -p "$(dirname "$SOCKET")"
  bin/nsnet daemon --state-dir "$DEMO_DIR" --socket "$SOCKET" --host-netns "$HOST_NETNS" >"$LOG" 2>&1 &
  echo $! >"$PIDFILE"
  for _ in $(seq 100); do $NSNET status >/dev/null 2>&1 && break; sleep 0.1; done
  $NSNET status >/dev/null || { cat "$LOG"; exit 1; }
fi

say "applying examples/seed-bridge.yaml"
run $NSNET apply -f examples/seed-bridge.yaml
say "what nsnet made"
run $NSNET instance list
run $NSNET port list
say "red pings green, green pings blue"
run $NSNET exec red -- ping -c 3 192.168.24.11
run $NSNET exec green -- ping -c 3 192.168.24.12
say "red learnt green's MAC"
run $NSNET exec red -- ip neigh show 192.168.24.11

cat <<MSG

Explore (every object is a plain kernel object):
  alias nsnet='$NSNET'
  ip netns list                                  # red, green, blue
  ip -n $HOST_NETNS -d link show type bridge     # the network's bridge, nsb-…
  ip -n $HOST_NETNS link show type veth          # tap… ends, each "master nsb-…"
  ip -n red addr show eth0; ip -n red route
  nsnet network show bridge -o json
  nsnet status
Tear down:
  sudo scripts/demo.sh down
MSG
