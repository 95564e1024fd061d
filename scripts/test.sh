#!/usr/bin/env bash
# Runs nsnet's whole test suite: unit tests, then the end-to-end tests, which
# need root and build real topologies inside namespaces they create and remove,
# then the conformance gate (scripts/conformance.sh: OpenStack's own API suites).
#
#   sudo scripts/test.sh            everything
#   sudo scripts/test.sh -run Seed  extra arguments go to `go test`, and only it runs
set -euo pipefail
source "$(dirname "$0")/deps.sh"
require_root "$@"
ensure_packages
ensure_go
cd "$NSNET_ROOT"

echo "==> go vet"
go vet ./...
echo "==> go test"
# -p 2: the machines have two cores; e2e tests each run their own daemon.
# The output is kept, and on failure its failures are repeated at the end:
# CI shows only the last lines, and a failed test's daemon log comes after
# the assertion that failed it.
out="$(mktemp -t nsnet-test.XXXXXX)"
if ! go test -count=1 -p 2 -timeout 25m "$@" ./... 2>&1 | tee "$out"; then
	echo "==> failures (the whole output is in $out)"
	grep -E -- '^\s*--- FAIL|^FAIL|^panic:|^\s+[a-z_0-9]+_test\.go:[0-9]+: ' "$out" |
		grep -v -- '_test\.go:[0-9]*: daemon log: ' | cut -c1-500 | tail -n 100
	exit 1
fi
rm -f "$out"

# Each fuzz target runs for a bounded number of inputs on top of its seed
# corpus (which the plain `go test` above already ran): a count, not a
# duration, because a duration races Go's fuzz coordinator at its deadline
# and fails with a bare "context deadline exceeded" on a loaded machine
# (go.dev/issue/75804, fixed in Go 1.27). NSNET_FUZZTIME=0 skips this.
fuzztime="${NSNET_FUZZTIME:-50000x}"
if [[ $# -eq 0 && "$fuzztime" != 0 ]]; then
	for target in internal/api:FuzzWrites internal/ipam:FuzzPools internal/topology:FuzzParse internal/dhcp:FuzzReply internal/nameserver:FuzzAnswer internal/nameserver:FuzzFastAnswer internal/radv:FuzzSolicitation internal/dhcp6:FuzzReply; do
		echo "==> fuzz ${target#*:} for $fuzztime"
		go test -run '^$' -fuzz "^${target#*:}\$" -fuzztime "$fuzztime" "./${target%%:*}"
	done
fi

# OpenStack's tempest, neutron-tempest-plugin and gophercloud acceptance
# suites against a real Keystone: the gate of the Networking API.
# NSNET_CONFORMANCE=0 skips it.
if [[ $# -eq 0 && "${NSNET_CONFORMANCE:-1}" != 0 ]]; then
	echo "==> conformance"
	bash scripts/conformance.sh
fi
