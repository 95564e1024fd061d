#!/usr/bin/env bash
# Runs nsnet's whole test suite: unit tests, then the end-to-end tests, which
# need root and build real topologies inside namespaces they create and remove.
#
#   sudo scripts/test.sh            everything
#   sudo scripts/test.sh -run Seed  extra arguments go to `go test`
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
go test -count=1 -p 2 -timeout 20m "$@" ./...
if [ $# -eq 0 ]; then
  echo "==> fuzz (bounded)"
  # The DHCP and DNS handlers must survive any datagram; the seed corpora
  # are in the tests (f.Add) and new finds land in testdata/fuzz.
  go test -run '^$' -fuzz '^FuzzReply$' -fuzztime 10s ./internal/dhcp
  go test -run '^$' -fuzz '^FuzzAnswer$' -fuzztime 10s ./internal/nameserver
fi
