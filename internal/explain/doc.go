// Package explain turns what nsnet built for a router, a network or an
// instance into the ip, sysctl and nft commands that would build the same
// by hand, in dependency order and grouped by object: the walkthroughs'
// step tables, for any topology.
//
// It reads the live kernel — namespaces, links (veth pairs and where their
// peers are, bridges, masters, MACs, MTUs, state, aliases), addresses,
// routes, the sysctls nsnet sets, and the nft table through
// nat.Table.Inspect — and the store, through the API client, only to name
// things (a router's name to its namespace, a tap to its port, network and
// instance). It never writes to either. Every explanation is
// self-contained: it starts with the namespaces and bridges its object
// hangs on, so that its commands, run on a host without them, build it.
package explain
