#!/usr/bin/env bash
# The nsnet demo, on a fresh Debian 12 machine as root.
#
#   scripts/demo.sh           seed 004's picture: an upstream "internet"
#                             namespace, an external network, two projects
#                             (alpha, beta) with the same CIDR, each with a
#                             router doing SNAT, DHCP, metadata and a security
#                             group for ping and HTTP; a floating IP in alpha,
#                             a port forward in beta; traffic inside out and
#                             outside in, a trace with every NAT rewrite, and
#                             the URL of the topology view
#   scripts/demo.sh bridge    the quick one: red, green and blue on one bridge
#                             (examples/seed-bridge.yaml), pinging each other
#   scripts/demo.sh down      remove everything either made
#
# (sudo in front of each when not root.) It builds nsnet and starts a daemon
# whose "host" is a namespace of its own, with its own state, socket and
# namespace prefix: it never changes this machine's links, routes or
# firewall, and `down` finds everything by those names. NSNET_DEMO (default
# nsnet-demo) names all of them; NSNET_DEMO_LISTEN (default 127.0.0.1:9797)
# is where the API, with tokens for the projects, and /ui/ listen.
set -euo pipefail
source "$(dirname "$0")/deps.sh"
require_root "$@"
cd "$NSNET_ROOT"

DEMO=${NSNET_DEMO:-nsnet-demo}
LISTEN=${NSNET_DEMO_LISTEN:-127.0.0.1:9797}
STATE=/var/lib/$DEMO
RUN=/run/$DEMO
SOCKET=$RUN/nsnet.sock
HOST_NETNS=$DEMO-host
PREFIX=$DEMO-
INTERNET=${PREFIX}internet
PIDFILE=$RUN/daemon.pid
LOG=/var/log/$DEMO.log
NSNET="$NSNET_ROOT/bin/nsnet --socket $SOCKET"

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
# as PROJECT COMMAND...: an nsnet command with PROJECT's token, over TCP.
as() {
  local project=$1; shift
  printf '$ [%s] nsnet %s\n' "$project" "$*" >&2
  NSNET_ENDPOINT=http://$LISTEN NSNET_TOKEN=$(token "$project") "$NSNET_ROOT/bin/nsnet" "$@"
}
token() { awk -v p="$1" '$0 ~ "project_id: " p "," {sub(/.*token: /, ""); sub(/,.*/, ""); print}' "$RUN/tokens.yaml"; }
address() { sed -n 's/.*"floating_ip_address": *"\([^"]*\)".*/\1/p' | head -1; }
in_internet() { printf '$ ip netns exec %s %s\n' "$INTERNET" "$*"; ip netns exec "$INTERNET" "$@"; }

down() {
  # Web servers the demo started inside instances and upstream: each is
  # the leader of a process group of its own.
  if [ -f "$RUN/servers" ]; then
    while read -r pid; do kill -- "-$pid" 2>/dev/null || true; done <"$RUN/servers"
  fi
  if [ -f "$PIDFILE" ]; then
    say "stopping the daemon"
    kill "$(cat "$PIDFILE")" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break; sleep 0.1; done
  fi
  if [ -x bin/nsnet ] && ip netns list | grep -q "^$HOST_NETNS\b"; then
    say "removing what nsnet made"
    bin/nsnet cleanup --host-netns "$HOST_NETNS" --netns-prefix "$PREFIX" >/dev/null || true
  fi
  ip netns delete "$INTERNET" 2>/dev/null || true
  ip netns delete "$HOST_NETNS" 2>/dev/null || true
  rm -rf "$STATE" "$RUN" "$LOG"
  echo "demo removed"
}

start_daemon() {
  ensure_packages
  ensure_go
  say "building nsnet"
  run go build -o bin/nsnet ./cmd/nsnet
  if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    say "the demo daemon is already running (pid $(cat "$PIDFILE"))"
    return
  fi
  mkdir -p "$RUN" "$STATE"
  if [ ! -f "$RUN/tokens.yaml" ]; then
    # The projects' tokens: who may do what over TCP (root on the unix
    # socket is the admin).
    umask 077
    cat >"$RUN/tokens.yaml" <<YAML
- {token: $(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'), project_id: admin, user_id: root, roles: [admin]}
- {token: $(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'), project_id: alpha, project_name: Alpha, user_id: alice, roles: [member]}
- {token: $(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'), project_id: beta, project_name: Beta, user_id: bob, roles: [member]}
YAML
    umask 022
  fi
  say "starting the daemon (log: $LOG)"
  bin/nsnet daemon --state-dir "$STATE" --socket "$SOCKET" --host-netns "$HOST_NETNS" --netns-prefix "$PREFIX" \
    --listen "$LISTEN" --tokens "$RUN/tokens.yaml" >"$LOG" 2>&1 &
  echo $! >"$PIDFILE"
  for _ in $(seq 150); do $NSNET status >/dev/null 2>&1 && break; sleep 0.1; done
  $NSNET status >/dev/null || { cat "$LOG"; exit 1; }
}

# serve NETNS-COMMAND... DIR: a web server of its own process group,
# killed by down.
serve() {
  local dir=${*: -1}
  set -- "${@:1:$#-1}"
  setsid "$@" python3 -m http.server 80 --directory "$dir" >/dev/null 2>&1 &
  echo $! >>"$RUN/servers"
}

bridge() {
  start_daemon
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
  ip netns list                                  # ${PREFIX}red, ${PREFIX}green, ${PREFIX}blue
  ip -n $HOST_NETNS -d link show type bridge     # the network's bridge, nsb-…
  ip -n $HOST_NETNS link show type veth          # tap… ends, each "master nsb-…"
  ip -n ${PREFIX}red addr show eth0; ip -n ${PREFIX}red route
  nsnet network show bridge -o json
  nsnet explain network bridge
Tear down:
  scripts/demo.sh down
MSG
}

main() {
  start_daemon
  say "the outside world: namespace $INTERNET, cabled to the host as the external network's uplink"
  if ! ip netns list | grep -q "^$INTERNET\b"; then
    run ip netns add "$INTERNET"
    run ip link add uplink netns "$HOST_NETNS" type veth peer name eth0 netns "$INTERNET"
    run ip -n "$INTERNET" addr add 198.51.100.1/24 dev eth0    # the external subnet's gateway
    run ip -n "$INTERNET" addr add 203.0.113.1/32 dev lo       # a far host
    run ip -n "$INTERNET" link set eth0 up
    run ip -n "$INTERNET" link set lo up
    mkdir -p "$RUN/www/internet"
    echo "hello from the internet (203.0.113.1)" >"$RUN/www/internet/index.html"
    serve ip netns exec "$INTERNET" "$RUN/www/internet"
  fi

  say "the admin's external network (examples/seed-004-external.yaml)"
  run $NSNET apply -f examples/seed-004-external.yaml
  run $NSNET network set public --uplink uplink >/dev/null

  for p in alpha beta; do
    say "project $p: the same private network 10.0.0.0/24, a router with SNAT, web and db (examples/seed-004-two-projects.yaml)"
    as $p apply -f examples/seed-004-two-projects.yaml
    say "project $p: DHCP clients configure the instances; metadata through the router"
    for vm in web db; do
      as $p exec $vm -- udhcpc -q -n -i eth0 -s /etc/udhcpc/default.script >/dev/null
    done
    as $p exec web -- ip -4 -br addr show eth0
    as $p exec web -- curl -s --max-time 5 http://169.254.169.254/latest/meta-data/hostname; echo
    mkdir -p "$RUN/www/$p"
    echo "hello from $p's web" >"$RUN/www/$p/index.html"
    serve env NSNET_ENDPOINT=http://$LISTEN NSNET_TOKEN=$(token $p) bin/nsnet exec web -- "$RUN/www/$p"
  done

  say "alpha's web gets a floating IP (1:1 NAT); beta publishes its web as a port forward :8080 → :80"
  # (Run again, the demo keeps the ones it made.)
  alpha_fip=$(as alpha floating ip list -o json | address)
  if [ -z "$alpha_fip" ]; then
    alpha_fip=$(as alpha floating ip create public --port web-eth0 -o json | address)
  fi
  beta_fip=$(as beta floating ip list -o json | address)
  if [ -z "$beta_fip" ]; then
    beta_fip=$(as beta floating ip create public -o json | address)
    as beta floating ip port forwarding create "$beta_fip" --port web-eth0 --internal-ip-address 10.0.0.10 \
      --internal-protocol-port 80 --external-protocol-port 8080 --protocol tcp >/dev/null
  fi
  as alpha floating ip list
  as beta floating ip list

  say "what nsnet made: two routers, two DHCP namespaces, four instances, same addresses"
  run $NSNET router list
  run $NSNET instance list
  run ip netns list

  say "inside out: both projects' web reach the internet, SNATed by their routers"
  as alpha exec web -- ping -c 2 203.0.113.1
  as beta exec db -- curl -s --max-time 5 http://203.0.113.1/
  say "outside in: the internet reaches alpha's web by its floating IP, beta's by the port forward"
  in_internet curl -s --max-time 5 "http://$alpha_fip/"
  in_internet curl -s --max-time 5 "http://$beta_fip:8080/"

  say "trace: every hop and NAT rewrite, out (SNAT to the floating IP) and in (the port forward's DNAT)"
  # As the admin: a project sees neither the external subnet nor its
  # router's gateway port, which a trace plans its path with.
  alpha_web=$(as alpha instance show web -o json | sed -n 's/^  "id": "\(.*\)",$/\1/p')
  run $NSNET trace "$alpha_web" 203.0.113.1 --tcp 80
  run $NSNET trace --from-external public "$beta_fip" --tcp 8080

  cat <<MSG

The topology view: http://$LISTEN/ui/?token=$(token admin)
Each project's own, with its token: alpha $(token alpha), beta $(token beta)

Explore (every object is a plain kernel object):
  alias nsnet='$NSNET'                       # root on the socket: the admin, every project
  NSNET_ENDPOINT=http://$LISTEN NSNET_TOKEN=$(token alpha) bin/nsnet router show router
  nsnet explain router <id>; nsnet explain network public
  ip netns exec ${PREFIX}qrouter-<id> nft list table inet nsnet
Tear down:
  scripts/demo.sh down
MSG
}

case "${1:-}" in
  down) down ;;
  bridge) bridge ;;
  ""|up) main ;;
  *) echo "usage: $0 [up|bridge|down]" >&2; exit 2 ;;
esac
