#!/usr/bin/env bash
# The conformance gate: OpenStack's own Networking API suites run against
# nsnet, the way OpenStack gates Neutron (issue 14).
#
#   scripts/conformance.sh                    all three suites, gated
#   scripts/conformance.sh tempest plugin     some of them
#   scripts/conformance.sh --filter REGEX     only the tests whose ids match
#   scripts/conformance.sh --update           rewrite conformance/*.pass
#   scripts/conformance.sh --keep             keep the logs and results, passed or not
#
# It builds, as plain processes on 127.0.0.1 that it starts and stops itself
# (the machines have no systemd), a small cloud: MariaDB, Keystone (Debian's,
# under uwsgi) and the nsnet daemon validating tokens with Keystone and listed
# in its catalog as the network service, with an external network. The daemon
# runs in a host namespace of its own with its own name prefix, so the
# machine's namespaces, routes and firewall stay as they are. Then it runs,
# one after another:
#
#   tempest       Debian's tempest: tempest.api.network
#   plugin        Debian's neutron-tempest-plugin: neutron_tempest_plugin.api
#   gophercloud   gophercloud's networking acceptance tests (the version in
#                 go.mod, from the Go module proxy)
#
# conformance/SUITE.pass lists the tests that must pass, one id per line,
# sorted. conformance/gophercloud.exclude lists, each with its reason, the
# gophercloud tests of extensions nsnet does not list that run without
# asking (tempest's skip themselves): they are not run, and count as
# skipped. The gate fails when one of them does not; tests that pass and are
# not listed are printed, to be added (--update rewrites the lists of the
# suites it ran with exactly what passed). The last lines are one per suite:
#   tempest: N passed, N failed, N skipped of M
# where M is every test the suite lists; a test in a class that failed or
# was skipped as a whole counts as that, and one that never reported, failed.
set -euo pipefail
source "$(dirname "$0")/deps.sh"
require_root "$@"

update= filter= keep= suites=()
while [ $# -gt 0 ]; do
	case "$1" in
	--update) update=1 ;;
	--keep) keep=1 ;;
	--filter) filter=$2; shift ;;
	tempest | plugin | gophercloud) suites+=("$1") ;;
	*) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
	esac
	shift
done
[ ${#suites[@]} -gt 0 ] || suites=(tempest plugin gophercloud)
if [ -n "$filter" ] && [ -n "$update" ]; then
	echo "--update rewrites whole lists: it cannot go with --filter" >&2
	exit 2
fi

CONFORMANCE_PACKAGES=(
	ip:iproute2
	curl:curl
	jq:jq
	keystone-manage:keystone
	uwsgi_python3:uwsgi-plugin-python3
	/usr/lib/python3/dist-packages/pymysql:python3-pymysql
	mariadbd:mariadb-server
	tempest:tempest
	/usr/lib/python3/dist-packages/neutron_tempest_plugin:neutron-tempest-plugin
	subunit2csv:python3-subunit
)
ensure_packages "${CONFORMANCE_PACKAGES[@]}"
ensure_go
cd "$NSNET_ROOT"

started=$SECONDS
work=$(mktemp -d -t nsnet-conformance.XXXXXX)
prefix=nsc$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')-
host_netns=${prefix}host
groups=() # process groups started here (setsid), stopped in reverse order
failed=   # set when the gate fails, to keep the logs

say() { printf '==> %s\n' "$*"; }

# stop_group ends a process group: TERM, up to 10 s for it to go, then KILL.
stop_group() {
	local pgid=$1
	kill -TERM -- "-$pgid" 2>/dev/null || return 0
	for _ in $(seq 100); do
		kill -0 -- "-$pgid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL -- "-$pgid" 2>/dev/null || true
}

cleanup() {
	local rc=$? i ns
	trap - EXIT INT TERM
	set +e
	for ((i = ${#groups[@]} - 1; i >= 0; i--)); do stop_group "${groups[i]}"; done
	# The daemon is gone; what it made in the kernel goes the way users
	# remove it, then its host namespace and anything left with its prefix.
	if [ -x "$work/nsnet" ]; then
		"$work/nsnet" cleanup --socket "$work/nsnet.sock" --host-netns "$host_netns" --netns-prefix "$prefix" >/dev/null 2>&1
	fi
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
		case "$ns" in "$prefix"*)
			[ "$ns" = "$host_netns" ] || echo "conformance: namespace $ns was left behind; removing it" >&2
			ip netns delete "$ns"
			;;
		esac
	done
	if [ "$rc" -ne 0 ] || [ -n "$failed" ] || [ -n "$keep" ]; then
		local logs
		logs=$(mktemp -d -t nsnet-conformance-logs.XXXXXX)
		cp "$work"/*.log "$work"/*.results "$logs"/ 2>/dev/null
		for suite in tempest plugin; do
			for f in tempest.log run.out results.subunit; do
				[ -f "$work/$suite/$f" ] && cp "$work/$suite/$f" "$logs/$suite-$f"
			done
		done
		cp "$work/gophercloud.json" "$logs"/ 2>/dev/null
		echo "conformance: the logs (nsnet, keystone, mariadb, the suites' results) are in $logs" >&2
	fi
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for DESCRIPTION SECONDS COMMAND...: run COMMAND until it succeeds.
wait_for() {
	local what=$1 deadline=$((SECONDS + $2))
	shift 2
	until "$@" >/dev/null 2>&1; do
		if [ $SECONDS -ge $deadline ]; then
			echo "conformance: $what did not happen within the time allowed" >&2
			return 1
		fi
		sleep 0.2
	done
}

# start LOG COMMAND...: run COMMAND in a process group of its own (so that
# stopping it reaches its children too) with its output in LOG.
start() {
	local log=$1
	shift
	setsid "$@" >"$log" 2>&1 </dev/null &
	groups+=("$!")
}

secret() { od -An -N12 -tx1 /dev/urandom | tr -d ' \n'; }

# --- the cloud ---------------------------------------------------------------

say "building nsnet"
go build -o "$work/nsnet" ./cmd/nsnet

say "starting MariaDB"
db=$work/mariadb
db_port=$(free_port)
mkdir -p "$db"
mariadb-install-db --no-defaults --datadir="$db/data" --user=root --skip-test-db >"$work/mariadb-install.log" 2>&1
# A throwaway database: durability traded for speed.
start "$work/mariadb.log" mariadbd --no-defaults --datadir="$db/data" --user=root \
	--socket="$db/mysqld.sock" --port="$db_port" --bind-address=127.0.0.1 --pid-file="$db/mysqld.pid" \
	--skip-log-bin --innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0 --innodb-buffer-pool-size=128M \
	--skip-name-resolve --max-connections=500
wait_for "MariaDB answering" 60 mariadb --no-defaults -S "$db/mysqld.sock" -u root -e 'SELECT 1'
db_password=$(secret)
mariadb --no-defaults -S "$db/mysqld.sock" -u root <<EOF
CREATE DATABASE keystone;
CREATE USER 'keystone'@'localhost' IDENTIFIED BY '$db_password';
GRANT ALL PRIVILEGES ON keystone.* TO 'keystone'@'localhost';
EOF

say "starting Keystone"
# As e2e/keystone_test.go runs it (a uwsgi process running Debian's WSGI
# file, Connection: close), but on MariaDB: tempest's parallel workers
# lock sqlite ("database is locked").
ks=$work/keystone
mkdir -p "$ks"
ks_addr=127.0.0.1:$(free_port)
KS_URL=http://$ks_addr/v3
admin_password=$(secret)
cat >"$ks/keystone.conf" <<EOF
[DEFAULT]
use_stderr = true
[database]
connection = mysql+pymysql://keystone:$db_password@localhost/keystone?unix_socket=$db/mysqld.sock&charset=utf8
[identity]
# bcrypt's cheapest cost: the suites create a user for every test class.
password_hash_rounds = 4
[token]
provider = fernet
expiration = 7200
[fernet_tokens]
key_repository = $ks/fernet-keys
[fernet_receipts]
key_repository = $ks/fernet-receipts
[credential]
key_repository = $ks/credential-keys
[oslo_policy]
policy_dirs = /etc/keystone/policy.d
EOF
for args in "db_sync" \
	"fernet_setup --keystone-user root --keystone-group root" \
	"credential_setup --keystone-user root --keystone-group root" \
	"bootstrap --bootstrap-password $admin_password --bootstrap-region-id RegionOne --bootstrap-admin-url $KS_URL --bootstrap-public-url $KS_URL --bootstrap-internal-url $KS_URL"; do
	# shellcheck disable=SC2086 # args are words
	(cd "$ks" && keystone-manage --config-file "$ks/keystone.conf" $args) >>"$work/keystone-manage.log" 2>&1
done
start "$work/keystone.log" env OS_KEYSTONE_CONFIG_FILES="$ks/keystone.conf" \
	uwsgi --plugins python3 --http-socket "$ks_addr" --wsgi-file /usr/bin/keystone-wsgi-public \
	--add-header "Connection: close" --master --processes 2 --threads 1 --lazy-apps \
	--buffer-size 65535 --die-on-term --no-orphans --chdir "$ks"
wait_for "Keystone answering" 60 curl -fsS "$KS_URL"

# admin_token logs Keystone's admin in and prints a project-scoped token.
admin_token() {
	curl -fsS -D - -o /dev/null -H 'Content-Type: application/json' "$KS_URL/auth/tokens" -d "$(jq -n --arg pw "$admin_password" '{auth: {
		identity: {methods: ["password"], password: {user: {name: "admin", domain: {name: "Default"}, password: $pw}}},
		scope: {project: {name: "admin", domain: {name: "Default"}}}}}')" |
		awk 'tolower($1) == "x-subject-token:" { sub(/\r$/, "", $2); print $2 }'
}
token=$(admin_token)
ks_post() { curl -fsS -H "X-Auth-Token: $token" -H 'Content-Type: application/json' "$KS_URL/$1" -d "$2"; }

say "starting nsnet"
nsnet_addr=127.0.0.1:$(free_port)
service_id=$(ks_post services '{"service": {"type": "network", "name": "nsnet"}}' | jq -r .service.id)
ks_post endpoints "$(jq -n --arg s "$service_id" --arg u "http://$nsnet_addr" \
	'{endpoint: {service_id: $s, interface: "public", region_id: "RegionOne", url: $u}}')" >/dev/null
# Keystone's admin is also nsnet's service user: its admin role lets it
# validate other users' tokens.
start "$work/nsnet.log" env OS_PASSWORD="$admin_password" "$work/nsnet" daemon \
	--state-dir "$work/nsnet-state" --socket "$work/nsnet.sock" \
	--host-netns "$host_netns" --netns-prefix "$prefix" \
	--listen "$nsnet_addr" --keystone-url "$KS_URL" --keystone-username admin --keystone-project admin
wait_for "nsnet answering" 60 curl -fsS --unix-socket "$work/nsnet.sock" http://nsnet/nsnet/status

# The admin's OpenStack credentials, as every client below reads them.
export OS_AUTH_URL=$KS_URL OS_USERNAME=admin OS_PASSWORD=$admin_password OS_PROJECT_NAME=admin \
	OS_USER_DOMAIN_NAME=Default OS_PROJECT_DOMAIN_NAME=Default OS_DOMAIN_NAME=Default \
	OS_IDENTITY_API_VERSION=3 OS_REGION_NAME=RegionOne
# The external network, owned by the admin's project, found through the
# catalog (no uplink: the suites send no traffic beyond it). Its subnet is
# a documentation range and serves no DHCP, as devstack's public subnet.
"$work/nsnet" network create public --external -o json >"$work/public.json"
public_id=$(jq -r .id "$work/public.json")
"$work/nsnet" subnet create public-subnet --network public --subnet-range 198.51.100.0/24 --no-dhcp >/dev/null
extensions=$(curl -fsS -H "X-Auth-Token: $token" "http://$nsnet_addr/v2.0/extensions" | jq -r '[.extensions[].alias] | sort | join(",")')
say "nsnet lists ${extensions//,/ }"
say "the cloud is up after $((SECONDS - started)) s"

# --- results -----------------------------------------------------------------

summaries=()

# gate SUITE: compares $work/SUITE.results ("id status" for every test the
# suite lists, status pass, fail or skip) with conformance/SUITE.pass.
gate() {
	local suite=$1 list=conformance/$1.pass results=$work/$1.results
	local passes=$work/$1.passes listed=$work/$1.listed regressed new n
	awk '$2 == "pass" { print $1 }' "$results" | LC_ALL=C sort >"$passes"
	touch "$list"
	if [ -n "$filter" ]; then
		awk '{ print $1 }' "$results" | LC_ALL=C sort >"$work/$suite.selected"
		LC_ALL=C comm -12 "$list" "$work/$suite.selected" >"$listed"
	else
		cp "$list" "$listed"
	fi
	regressed=$(LC_ALL=C comm -23 "$listed" "$passes")
	new=$(LC_ALL=C comm -13 "$listed" "$passes")
	if [ -n "$regressed" ]; then
		n=$(wc -l <<<"$regressed")
		if [ -n "$update" ]; then
			echo "$suite: $n tests no longer pass; dropped from $list:"
		else
			echo "$suite: $n tests of $list did not pass:"
			failed=1
		fi
		awk 'NR == FNR { want[$1]; next } $1 in want { print "  " $1 " (" $2 ")" }' <(echo "$regressed") "$results"
	fi
	if [ -n "$new" ]; then
		if [ -n "$update" ]; then
			echo "$suite: $(wc -l <<<"$new") new passes, added to $list:"
		else
			echo "$suite: $(wc -l <<<"$new") tests pass that $list does not list; add them (or run with --update):"
		fi
		sed 's/^/  /' <<<"$new"
	fi
	[ -z "$update" ] || cp "$passes" "$list"
	summaries+=("$(awk -v s="$suite" '{ n[$2]++ } END {
		printf "%s: %d passed, %d failed, %d skipped of %d\n", s, n["pass"], n["fail"], n["skip"], NR }' "$results")")
}

# --- tempest and its plugin ---------------------------------------------------

# Debian's tempest sleeps 10 s before every subnet delete (a patch of its
# own, for clouds that tear ports down late); with thousands of them that is
# most of a run. The test processes load this on start (PYTHONPATH) and
# delete at once, without touching the package.
mkdir -p "$work/python" "$work/home"
cat >"$work/python/sitecustomize.py" <<'EOF'
try:
    from tempest.lib.services.network import subnets_client
except ImportError:
    pass
else:
    def delete_subnet(self, subnet_id):
        return self.delete_resource('/subnets/%s' % subnet_id)

    subnets_client.SubnetsClient.delete_subnet = delete_subnet
EOF

# tempest_run SUITE REGEX: a fresh tempest workspace for SUITE with
# dynamic credentials (admin in [auth], as devstack sets it up), then the
# tests whose ids match REGEX, two workers.
tempest_run() {
	local suite=$1 regex=$2 ws=$work/$1 t0=$SECONDS
	say "$suite: $regex"
	(cd "$work/home" && HOME=$work/home tempest init "$ws" >/dev/null)
	local port_security=false
	[[ ",$extensions," == *,port-security,* ]] && port_security=true
	cat >"$ws/etc/tempest.conf" <<EOF
[DEFAULT]
log_file = tempest.log
log_dir = $ws
[auth]
use_dynamic_credentials = true
create_isolated_networks = true
admin_username = admin
admin_password = $admin_password
admin_project_name = admin
admin_domain_name = Default
default_credentials_domain_name = Default
[identity]
uri_v3 = $KS_URL
auth_version = v3
region = RegionOne
[identity-feature-enabled]
api_v2 = false
[service_available]
neutron = true
nova = false
glance = false
cinder = false
swift = false
[network]
public_network_id = $public_id
floating_network_name = public
[network-feature-enabled]
api_extensions = $extensions
port_security = $port_security
ipv6_subnet_attributes = true
[neutron_plugin_options]
# nsnet's one availability zone (docs/AGENTS.md), as devstack configures a
# single-zone cloud.
agent_availability_zone = nova
# The network types nsnet's provider extension has (docs/OVERLAY.md).
available_type_drivers = flat,local,vxlan
[validation]
run_validation = false
[oslo_concurrency]
lock_path = $ws/tempest_lock
EOF
	local env=(env HOME="$work/home" PYTHONPATH="$work/python")
	(cd "$ws" && "${env[@]}" tempest run --list-tests --regex "$regex") | grep -E '^[a-z_]+\.' >"$ws/all"
	if [ -n "$filter" ]; then
		sed 's/\[.*\]$//' "$ws/all" | paste - "$ws/all" | FILTER=$filter awk '$1 ~ ENVIRON["FILTER"] { print $2 }' >"$ws/selected"
	else
		cp "$ws/all" "$ws/selected"
	fi
	if [ ! -s "$ws/selected" ]; then
		# tempest refuses an empty list; the suite has nothing to gate.
		say "$suite: no test matches the filter"
		: >"$work/$suite.results"
		gate "$suite"
		return
	fi
	(cd "$ws" && "${env[@]}" tempest run --load-list "$ws/selected" --concurrency 2 >"$ws/run.out" 2>&1) || true
	(cd "$ws" && stestr last --subunit >"$ws/results.subunit") || true
	subunit2csv <"$ws/results.subunit" >"$ws/results.csv" || true
	python3 - "$suite" "$ws/selected" "$ws/results.csv" >"$work/$suite.results" <<'EOF'
# Every test listed, with its status: its own result; else that of its
# class's setUpClass (a class skipped or failed as a whole reports once);
# else failed (it never reported). Ids lose their [id-…,tags] suffix.
import csv, re, sys

def plain(test_id):
    return re.sub(r'\[.*\]$', '', test_id)

suite, listing, results = sys.argv[1:]
status = {}
with open(results, newline='') as f:
    for row in csv.DictReader(f):
        test, result = row['test'], row['status']
        verdict = {'success': 'pass', 'xfail': 'pass', 'skip': 'skip'}.get(result, 'fail')
        m = re.match(r'(setUpClass|tearDownClass) \((.*)\)$', test)
        if m:
            if m.group(1) == 'setUpClass':
                status.setdefault(m.group(2), verdict)
            elif verdict == 'fail':
                print(suite + ': the cleanup of class ' + m.group(2) + ' failed', file=sys.stderr)
            continue
        status[plain(test)] = verdict
for line in open(listing):
    test = plain(line.strip())
    cls = test.rsplit('.', 1)[0]
    print(test, status.get(test) or status.get(cls) or 'fail')
EOF
	say "$suite: done in $((SECONDS - t0)) s"
	gate "$suite"
}

# --- gophercloud --------------------------------------------------------------

gophercloud_run() {
	local t0=$SECONDS version dir
	version=$(go list -m -f '{{.Version}}' github.com/gophercloud/gophercloud/v2)
	say "gophercloud $version: internal/acceptance/openstack/networking/v2/..."
	dir=$(go mod download -json "github.com/gophercloud/gophercloud/v2@$version" | jq -r .Dir)
	cp -r "$dir" "$work/gophercloud"
	chmod -R u+w "$work/gophercloud"
	local pkgs=./internal/acceptance/openstack/networking/v2/...
	local strip=github.com/gophercloud/gophercloud/v2/internal/acceptance/openstack/
	# The acceptance tests' environment: the admin (clients.RequireAdmin
	# goes by OS_USERNAME), the release (master: nsnet follows the newest
	# API), the external network. Compute's image and flavors are required
	# by AcceptanceTestChoicesFromEnv but used by no networking test.
	local env=(env OS_BRANCH=master OS_POOL_NAME=public OS_EXTGW_ID="$public_id" OS_NETWORK_NAME=public
		OS_IMAGE_ID=none OS_FLAVOR_ID=none-1 OS_FLAVOR_ID_RESIZE=none-2)
	(cd "$work/gophercloud" && go test -tags acceptance -list . -json $pkgs) |
		jq -r --arg strip "$strip" 'select(.Action == "output" and (.Output | test("^Test"))) |
			(.Package | ltrimstr($strip)) + "." + (.Output | rtrimstr("\n"))' | LC_ALL=C sort >"$work/gophercloud.all"
	# Excluded tests (see conformance/gophercloud.exclude) are not run.
	local skip='^$'
	grep -v -e '^#' -e '^$' conformance/gophercloud.exclude | LC_ALL=C sort >"$work/gophercloud.excluded"
	if [ -s "$work/gophercloud.excluded" ]; then
		skip="^($(sed 's/.*\.//' "$work/gophercloud.excluded" | paste -sd '|'))\$"
	fi
	local run=.
	if [ -n "$filter" ]; then
		grep -E -- "$filter" "$work/gophercloud.all" >"$work/gophercloud.selected" || true
		run="^($(sed 's/.*\.//' "$work/gophercloud.selected" | paste -sd '|'))\$"
	else
		cp "$work/gophercloud.all" "$work/gophercloud.selected"
	fi
	(cd "$work/gophercloud" && "${env[@]}" go test -tags acceptance -json -count=1 -p 2 -timeout 15m -run "$run" -skip "$skip" $pkgs) \
		>"$work/gophercloud.json" 2>"$work/gophercloud-build.log" || true
	# Top-level tests only: a subtest's result is part of its test's.
	jq -r --arg strip "$strip" 'select(.Test != null and (.Test | contains("/") | not) and
		(.Action == "pass" or .Action == "fail" or .Action == "skip")) |
		(.Package | ltrimstr($strip)) + "." + .Test + " " + .Action' "$work/gophercloud.json" >"$work/gophercloud.reported"
	awk 'FILENAME == ARGV[1] { excluded[$1] = 1; next } FILENAME == ARGV[2] { status[$1] = $2; next }
		{ print $1, (($1 in excluded) ? "skip" : ($1 in status) ? status[$1] : "fail") }' \
		"$work/gophercloud.excluded" "$work/gophercloud.reported" "$work/gophercloud.selected" >"$work/gophercloud.results"
	say "gophercloud: done in $((SECONDS - t0)) s"
	gate gophercloud
}

for suite in "${suites[@]}"; do
	case "$suite" in
	tempest) tempest_run tempest '^tempest\.api\.network\.' ;;
	plugin) tempest_run plugin '^neutron_tempest_plugin\.api\.' ;;
	gophercloud) gophercloud_run ;;
	esac
done

say "conformance took $((SECONDS - started)) s"
printf '%s\n' "${summaries[@]}"
[ -z "$failed" ]
