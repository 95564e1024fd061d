// Package nat owns the nsnet nftables table of one network namespace
// (`table inet nsnet`, one per namespace): the NAT of a router — default
// SNAT, floating IPs, port forwarding, hairpin — and host NAT — masquerade
// or SNAT out of an uplink, published ports.
//
// The table is built from a declarative Spec and converged by diff against
// the live table, never flushed and rebuilt:
//
//   - Its rules are fixed. Every address, port and interface name lives in
//     a set or a map, so what a Spec changes is set elements, and neither
//     the per-packet cost nor the cost of adding one floating IP grows
//     with their number: a lookup in a hash map, one element to add.
//   - The first Apply creates the table, its chains, sets and rules in one
//     atomic batch. Later ones send, in one atomic batch, the element
//     deletions and additions that make the live sets equal to the Spec's
//     (and rewrite a chain only if its rules differ from the layout, which
//     happens when someone edited them or nsnet's layout changed).
//     Established connections keep their conntrack entries, and with them
//     their NAT bindings, whatever the batch does — except those a removed
//     floating IP, forward or published port translated, which are
//     forgotten so that the removal takes effect at once.
//   - What the kernel holds is the truth: an Apply reads the live table.
//     Reading ten thousand elements costs more than adding one, so a Table
//     remembers what it last read or wrote together with the nftables
//     ruleset generation of the namespace, which the kernel bumps on every
//     commit by anyone. While the generation is unchanged the memory is
//     exactly the kernel's state and the read is skipped; once it moved,
//     the next call reads everything again.
//   - Apply takes the whole Spec, so it costs time linear in the Spec's
//     size in memory (validating and diffing ten thousand floating IPs
//     takes milliseconds) however small the change. Update takes only the
//     change (one floating IP associated) and costs the same at ten
//     floating IPs as at ten thousand: an agent that knows what changed
//     calls Update, and Apply at start and on resync.
//
// Layout (see layout.go for the exact rules):
//
//	chain prerouting  (nat, dstnat): conntrack helpers by protocol and port
//	                  (a verdict map into helper_* chains, helpers.go);
//	                  jump metadata; port forwards; floating
//	                  IPs; published ports on local addresses
//	chain output      (nat, dstnat): port forwards; floating IPs — so the
//	                  namespace itself reaches them
//	chain postrouting (nat, srcnat): hairpin masquerade; floating IPs out;
//	                  SNAT to fixed addresses; masquerade
//	chain metadata    (regular): 169.254.169.254:80 from qr-* → local :9697
//	                  (169.254.169.254:80 → local port 9697)
//
// Only the table named nsnet of family inet is ever read, changed or
// deleted; everything else in the namespace's ruleset is left alone. The
// package never execs nft: it speaks netlink through google/nftables, on
// sockets created inside the namespace by internal/netns.
package nat
