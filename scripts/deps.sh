#!/usr/bin/env bash
# Installs what nsnet's build, demo and tests need on Debian 12, and nothing
# that is already there. Sourced by demo.sh, test.sh and .ci/run.
#
#   ensure_packages   Debian packages: iproute2, ping, nft, curl, iperf3, the OpenStack CLI,
#                     Keystone, Prometheus, Chromium and etcd (for the tests that run real ones) …; given
#                     command:package pairs, those instead (conformance.sh's)
#   ensure_go         a Go toolchain as new as go.mod asks for; when the machine
#                     has none, it comes from the Go module proxy (golang.org/toolchain).

NSNET_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# command:package pairs; a package is installed only when its command is
# missing (a command that is an absolute path is a file that must exist).
NSNET_PACKAGES=(
  ip:iproute2
  ping:iputils-ping
  nft:nftables
  curl:curl
  tcpdump:tcpdump
  unzip:unzip
  openstack:python3-openstackclient
  iptables-nft-restore:iptables
  ipset:ipset
  keystone-manage:keystone
  uwsgi_python3:uwsgi-plugin-python3
  iperf3:iperf3
  dhclient:isc-dhcp-client
  rdisc6:ndisc6
  udhcpc:udhcpc
  dig:bind9-dnsutils
  dnsmasq:dnsmasq-base
  dnsperf:dnsperf
  /usr/sbin/perfdhcp:kea-admin
  conntrack:conntrack
  /usr/bin/prometheus:prometheus
  /usr/bin/chromium:chromium
  etcd:etcd-server
)

ensure_packages() {
  local missing=() pair
  [ $# -gt 0 ] || set -- "${NSNET_PACKAGES[@]}"
  for pair in "$@"; do
    case "$pair" in
      /*) [ -e "${pair%%:*}" ] || missing+=("${pair#*:}") ;;
      *) command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}") ;;
    esac
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "==> installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Packages such as keystone would start their service on install; the
  # tests start their own, so keep the machine's init out of it.
  local policy=/usr/sbin/policy-rc.d made_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
  fi
  local rc=0
  # Several checkouts may install at once on one machine: wait for dpkg's lock.
  { apt-get update -qq && apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends ca-certificates "${missing[@]}" >/dev/null; } || rc=$?
  if [ -n "$made_policy" ]; then rm -f "$policy"; fi
  return $rc
}

go_wanted() { awk '/^go /{print $2; exit}' "$NSNET_ROOT/go.mod"; }

# version_ge A B: is Go version A at least B?
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -1)" = "$2" ]; }

ensure_go() {
  local want have
  want=$(go_wanted)
  for dir in /usr/local/go/bin /usr/local/go-nsnet/bin; do
    case ":$PATH:" in *":$dir:"*) ;; *) [ -x "$dir/go" ] && PATH="$dir:$PATH" ;; esac
  done
  export PATH
  if command -v go >/dev/null 2>&1; then
    have=$(go env GOVERSION 2>/dev/null | sed 's/^go//')
    if [ -n "$have" ] && version_ge "$have" "$want"; then return 0; fi
  fi
  echo "==> fetching Go $want from the Go module proxy"
  local proxy=${GOPROXY:-https://proxy.golang.org}
  proxy=${proxy%%,*}
  local zip=/tmp/go-toolchain-$want.zip
  curl -fsSL -o "$zip" "$proxy/golang.org/toolchain/@v/v0.0.1-go$want.linux-amd64.zip"
  rm -rf /tmp/go-toolchain-unpack /usr/local/go-nsnet
  unzip -q "$zip" -d /tmp/go-toolchain-unpack
  mv "/tmp/go-toolchain-unpack/golang.org/toolchain@v0.0.1-go$want.linux-amd64" /usr/local/go-nsnet
  chmod +x /usr/local/go-nsnet/bin/* /usr/local/go-nsnet/pkg/tool/*/* 2>/dev/null || true
  rm -rf "$zip" /tmp/go-toolchain-unpack
  PATH=/usr/local/go-nsnet/bin:$PATH
  export PATH
  go version
}

require_root() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "nsnet needs root: it creates network namespaces, bridges and veths. Run: sudo $0 $*" >&2
    exit 1
  fi
}
