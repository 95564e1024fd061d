package firewall

import (
	"fmt"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/nfsock"
)

// TableName is the name of both firewall tables (families bridge and
// inet) in the namespace of the bridges.
const TableName = "nsnet_fw"

// Sets of the bridge table.
const (
	setSecured = "secured"  // ifname: ports that are checked
	setMAC     = "mac_ok"   // ifname . ether_addr
	setIP4     = "ip4_ok"   // ifname . ipv4_addr
	setNet4    = "ip4_net"  // ifname . ipv4_addr, ranges
	setIP6     = "ip6_ok"   // ifname . ipv6_addr
	setNet6    = "ip6_net"  // ifname . ipv6_addr, ranges
	setTagOut  = "tag_out"  // ifname : mark (the port's tag)
	setTagIn   = "tag_in"   // ifname : verdict (jump to the port's tagging chain)
	setIPv6Off = "ipv6_off" // ifname: ports of networks without IPv6 (Port.IPv4Only)
	setDrops   = "drops"    // bridge: ifname . reason; inet: tag . reason — counters
)

// Sets of the inet table. A port's rules are those of its signature:
// ports whose compiled rules are the same (ports of the same security
// groups) share one signature, numbered like tags, whose chains and rule
// sets are the rules' only copy in the kernel. A port added with the
// rules of an existing signature creates no chain, rule or set: it is
// elements of hash sets and maps, among them the two of the verdict maps
// from its tag to its signature's chains.
//
// (Two steps — a data map tag → signature number, then a verdict map
// number → chain — would spare a port's elements their jump, whose commit
// validates the table through every element of the verdict maps. The
// kernel takes it, but nft(8) 1.0.6 cannot print a rule whose verdict
// map key is a map's result: `nft list` aborts in netlink_parse_concat_expr.)
const (
	setEgressPorts  = "egress_ports"  // mark (tag<<16) : goto egress_s<sig>
	setIngressPorts = "ingress_ports" // mark (tag) : goto ingress_s<sig>
	// The port the host routes an IPv4 destination to, through a bridge
	// (Port.Routed): bridge . address : mark (the port's tag), single
	// addresses in dest4 and ranges in dest4_net, which is asked only
	// when dest4 has no answer.
	setDest4    = "dest4"
	setDest4Net = "dest4_net"
	// The conntrack zone of each bridge of Spec.Zoned: ifname : jump
	// zone_<zone>, a chain that sets it (a map to the number itself would
	// need a data byte order nft(8) is told only by user data, which
	// google/nftables cannot write: `nft list` would show it byte-swapped).
	setZones = "zones"
	// Stateless ports (Port.Stateless): their bridge . MAC, so that what
	// they send and what is sent to them is left untracked before
	// conntrack, and their tags (both halves of the mark), so that such
	// packets meet the rules of both ports one by one.
	setStatelessMAC  = "stateless_mac"
	setStatelessTags = "stateless_tags"
)

// Conntrack zones are 16 bits; zone 0, the default, is every interface's
// but the zoned bridges'.
const maxZone = 0xffff

// A signature's rule sets, per direction and family: protocol . port
// (or ICMP type and code) . peer address, ranges.
func rulesSet(sig uint16, dir Direction, v6 bool) string {
	return fmt.Sprintf("r%s%s_%d", famLetter(v6), dirLetter(dir), sig)
}

func famLetter(v6 bool) string {
	if v6 {
		return "6"
	}
	return "4"
}

func dirLetter(dir Direction) string {
	if dir == Egress {
		return "e"
	}
	return "i"
}

// Remote groups (Spec.Groups) have sets of their own in the inet table,
// shared by every port whose rules name them: per family, a hash set of
// the members' single addresses (m4_<group>, m6_<group>: a member coming
// or going is one element, and a hash set is not copied on commit as the
// kernel's interval sets are) and an interval set of the prefixes members
// hold as allowed address pairs (m4r_<group>, m6r_<group>, keyed 0 .
// address: a concatenation, so that the kernel keeps it in a pipapo set,
// whose elements carry their interval's end as nfsock sends it). A
// signature whose rules name a group has, per direction and family, a set
// of what those rules allow from or to the group's members
// (g4e_<sig>_<group>, g6i_…: protocol . port), and its chains look up the
// peer in the group's sets, then the protocol and port in its own.
func memberSet(group string, v6, ranges bool) string {
	f := "m4"
	if v6 {
		f = "m6"
	}
	if ranges {
		f += "r"
	}
	return f + "_" + group
}

func groupRulesSet(sig uint16, group string, dir Direction, v6 bool) string {
	return fmt.Sprintf("g%s%s_%d_%s", famLetter(v6), dirLetter(dir), sig, group)
}

// rulesSetDef is the definition of a signature's rule sets (r4e_, r6i_…,
// and the remote groups' g4e_, g6i_…), by name.
func rulesSetDef(name string) (nfsock.SetDef, bool) {
	prefix, _, ok := strings.Cut(name, "_")
	if !ok || len(prefix) != 3 || prefix[2] != 'e' && prefix[2] != 'i' {
		return nfsock.SetDef{}, false
	}
	switch prefix[:2] {
	case "r4":
		return nfsock.SetDef{Name: name, Key: typeRule4, Interval: true}, true
	case "r6":
		return nfsock.SetDef{Name: name, Key: typeRule6, Interval: true}, true
	case "g4", "g6":
		return nfsock.SetDef{Name: name, Key: typeGroupRule, Interval: true}, true
	}
	return nfsock.SetDef{}, false
}

// memberSetDef is the definition of a remote group's member sets, by name.
func memberSetDef(name string) (nfsock.SetDef, bool) {
	switch {
	case strings.HasPrefix(name, "m4_"):
		return nfsock.SetDef{Name: name, Key: nftables.TypeIPAddr}, true
	case strings.HasPrefix(name, "m6_"):
		return nfsock.SetDef{Name: name, Key: nftables.TypeIP6Addr}, true
	case strings.HasPrefix(name, "m4r_"):
		return nfsock.SetDef{Name: name, Key: typeMember4, Interval: true}, true
	case strings.HasPrefix(name, "m6r_"):
		return nfsock.SetDef{Name: name, Key: typeMember6, Interval: true}, true
	}
	return nfsock.SetDef{}, false
}

// memberSetDefs are a group's four member sets.
func memberSetDefs(group string) []nfsock.SetDef {
	var out []nfsock.SetDef
	for _, v6 := range []bool{false, true} {
		for _, ranges := range []bool{false, true} {
			d, _ := memberSetDef(memberSet(group, v6, ranges))
			out = append(out, d)
		}
	}
	return out
}

// A port's tag is a number in 1..maxTag. The mark of a bridged packet
// carries the tag of its input port in bits 16..30 and that of its output
// port in bits 0..14: rules of egress direction are keyed by tag<<16,
// ingress ones by tag, so one set holds both. The two bits left say how a
// packet met the host's own stack (see the input and output chains of
// both tables):
//
//   - markRouted: the packet went up from a bridge port to the host (to
//     be routed, or delivered to it). Its mark is the bridge input
//     chain's: the input port's tag, and no output port yet.
//   - markAdmitted: the host sends the packet into a bridge (routed or
//     its own) and the inet table admitted it for the port it goes to;
//     without it, the bridge output chain lets it reach no secured port.
const (
	maxTag       = 0x7fff
	maskIn       = 0x7fff0000
	maskOut      = 0x00007fff
	markRouted   = 0x00008000
	markAdmitted = 0x80000000
)

var (
	typeIfEther   = nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeEtherAddr)
	typeIfAddr4   = nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeIPAddr)
	typeIfAddr6   = nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeIP6Addr)
	typeIfReason  = nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeMark)
	typeTagDrop   = nftables.MustConcatSetType(nftables.TypeMark, nftables.TypeMark)
	typeRule4     = nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService, nftables.TypeIPAddr)
	typeRule6     = nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService, nftables.TypeIP6Addr)
	typeGroupRule = nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService)
	typeMember4   = nftables.MustConcatSetType(nftables.TypeMark, nftables.TypeIPAddr)
	typeMember6   = nftables.MustConcatSetType(nftables.TypeMark, nftables.TypeIP6Addr)
)

var bridgeSets = []nfsock.SetDef{
	{Name: setSecured, Key: nftables.TypeIFName},
	{Name: setMAC, Key: typeIfEther},
	{Name: setIP4, Key: typeIfAddr4},
	{Name: setNet4, Key: typeIfAddr4, Interval: true},
	{Name: setIP6, Key: typeIfAddr6},
	{Name: setNet6, Key: typeIfAddr6, Interval: true},
	{Name: setTagOut, Key: nftables.TypeIFName, Data: &nftables.TypeMark},
	{Name: setTagIn, Key: nftables.TypeIFName, Data: &nftables.TypeVerdict},
	{Name: setIPv6Off, Key: nftables.TypeIFName},
	{Name: setDrops, Key: typeIfReason, Counters: true},
}

var inetSets = []nfsock.SetDef{
	{Name: setEgressPorts, Key: nftables.TypeMark, Data: &nftables.TypeVerdict},
	{Name: setIngressPorts, Key: nftables.TypeMark, Data: &nftables.TypeVerdict},
	{Name: setDest4, Key: typeIfAddr4, Data: &nftables.TypeMark},
	{Name: setDest4Net, Key: typeIfAddr4, Data: &nftables.TypeMark, Interval: true},
	{Name: setZones, Key: nftables.TypeIFName, Data: &nftables.TypeVerdict},
	{Name: setStatelessMAC, Key: typeIfEther},
	{Name: setStatelessTags, Key: nftables.TypeMark},
	{Name: setDrops, Key: typeTagDrop, Counters: true},
}

// Registers: 1..4 are the 16-byte ones; 8..23 the 4-byte ones, 8..11
// aliasing register 1. Concatenated keys are loaded field after field
// from register 8, each field rounded up to 4 bytes.
const (
	reg1    = 1
	reg2    = 2
	reg32At = 8
)

func meta(key expr.MetaKey, reg uint32) *expr.Meta { return &expr.Meta{Key: key, Register: reg} }

func cmpEq(reg uint32, data []byte) *expr.Cmp {
	return &expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: data}
}

func payload(base expr.PayloadBase, offset, length, reg uint32) *expr.Payload {
	return &expr.Payload{DestRegister: reg, Base: base, Offset: offset, Len: length}
}

func lookup(set string, invert bool) *expr.Lookup {
	return &expr.Lookup{SourceRegister: reg1, SetName: set, Invert: invert}
}

func verdict(kind expr.VerdictKind) *expr.Verdict { return &expr.Verdict{Kind: kind} }

func jump(chain string) *expr.Verdict { return &expr.Verdict{Kind: expr.VerdictJump, Chain: chain} }

func u32(v uint32) []byte { return binaryutil.NativeEndian.PutUint32(v) }

func be16(v uint16) []byte { return binaryutil.BigEndian.PutUint16(v) }

func all(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// l4 matches the IP protocol (meta l4proto).
func l4(proto byte) []expr.Any {
	return []expr.Any{meta(expr.MetaKeyL4PROTO, reg1), cmpEq(reg1, []byte{proto})}
}

// transport matches a transport header field of length bytes at offset.
func transport(offset uint32, value []byte) []expr.Any {
	return []expr.Any{
		payload(expr.PayloadBaseTransportHeader, offset, uint32(len(value)), reg1),
		cmpEq(reg1, value),
	}
}

// arpFrame matches an ARP frame by its EtherType in the Ethernet header,
// as nft(8) does before an arp field.
func arpFrame() []expr.Any {
	return []expr.Any{payload(expr.PayloadBaseLLHeader, 12, 2, reg1), cmpEq(reg1, be16(ethARP))}
}

// etherType matches the frame's protocol in a bridge chain.
func etherType(t uint16) []expr.Any {
	return []expr.Any{meta(expr.MetaKeyPROTOCOL, reg1), cmpEq(reg1, be16(t))}
}

// countDrop counts the packet in the drops set under key (loaded at
// register 1 by load) and reason, then drops it.
func countDrop(load []expr.Any, reasonReg uint32, reason uint32) []expr.Any {
	return all(load, []expr.Any{
		&expr.Immediate{Register: reasonReg, Data: u32(reason)},
		&expr.Dynset{SrcRegKey: reg1, SetName: setDrops, Operation: unix.NFT_DYNSET_OP_UPDATE,
			Exprs: []expr.Any{&expr.Counter{}}},
		verdict(expr.VerdictDrop),
	})
}

// bridgeDrop counts a drop of reason against the input port.
func bridgeDrop(reason uint32) []expr.Any {
	return countDrop([]expr.Any{meta(expr.MetaKeyIIFNAME, reg1)}, reg2, reason)
}

// ifAnd loads iifname . <field> for a lookup: the name fills register 1,
// the field starts at register 2.
func ifAnd(base expr.PayloadBase, offset, length uint32) []expr.Any {
	return []expr.Any{meta(expr.MetaKeyIIFNAME, reg1), payload(base, offset, length, reg2)}
}

const (
	ethARP  = 0x0806
	ethIPv4 = 0x0800
	ethIPv6 = 0x86dd
)

// ICMPv6 types the firewall names.
const (
	icmp6MLDReport  = 131
	icmp6RS         = 133
	icmp6RA         = 134
	icmp6NS         = 135
	icmp6NA         = 136
	icmp6MLD2Report = 143
	dhcp6ClientPort = 546
	dhcp6ServerPort = 547
	dhcp4ClientPort = 68
	dhcp4ServerPort = 67
)

// unspecified are the rules of the antispoof_ip6 chain for a packet from
// ::, which only duplicate address detection sends: its neighbour
// solicitation from a port of a network without IPv6 is dropped
// (ipv6Off); an MLD report or a neighbour solicitation to a link-scope
// multicast group (ff02::/16) passes; any other packet from :: is a
// spoofed source.
func unspecified() [][]expr.Any {
	out := [][]expr.Any{all(fromUnspecified(), l4(unix.IPPROTO_ICMPV6), transport(0, []byte{icmp6NS}), ipv6Off())}
	for _, t := range []byte{icmp6MLDReport, icmp6NS, icmp6MLD2Report} {
		out = append(out, all(
			fromUnspecified(),
			[]expr.Any{payload(expr.PayloadBaseNetworkHeader, 24, 2, reg1), cmpEq(reg1, be16(0xff02))},
			l4(unix.IPPROTO_ICMPV6), transport(0, []byte{t}), []expr.Any{verdict(expr.VerdictReturn)}))
	}
	return out
}

// fromUnspecified matches an IPv6 packet from ::.
func fromUnspecified() []expr.Any {
	return []expr.Any{payload(expr.PayloadBaseNetworkHeader, 8, 16, reg1), cmpEq(reg1, make([]byte, 16))}
}

// ipv6Off counts and drops a packet whose input port is in the ipv6_off
// set, a port of a network without IPv6: its router solicitations and
// duplicate address detection's probes, which nothing there answers and
// the bridge would copy to every port (no MLD querier, so no snooping
// keeps multicast to its listeners). Per port, not per bridge: the set
// is keyed like the others of a port, so a port's elements come and go
// together, and a bridge's router and DHCP ports, unsecured, never reach
// this chain anyway. The lookup comes last in its rules, so that only
// those two kinds of packet pay it; the count is an update of the drops
// set on the drop path only, as for the other reasons.
func ipv6Off() []expr.Any {
	return all([]expr.Any{meta(expr.MetaKeyIIFNAME, reg1), lookup(setIPv6Off, false)}, bridgeDrop(reasonIPv6Off))
}

var bridgeChains = []nfsock.ChainDef{
	{Name: "prerouting", Hook: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRef(-300), Rules: [][]expr.Any{
		{meta(expr.MetaKeyIIFNAME, reg1), lookup(setSecured, false), jump("antispoof")},
	}},
	{Name: "antispoof", Rules: [][]expr.Any{
		all(ifAnd(expr.PayloadBaseLLHeader, 6, 6), []expr.Any{lookup(setMAC, true)}, bridgeDrop(reasonMAC)),
		all(etherType(ethARP), []expr.Any{jump("antispoof_arp")}),
		all(etherType(ethIPv4), []expr.Any{jump("antispoof_ip4")}),
		all(etherType(ethIPv6), []expr.Any{jump("antispoof_ip6")}),
	}, Comments: []string{"spoofed_mac: source MAC not the port's"}},
	{Name: "antispoof_arp", Rules: [][]expr.Any{
		// sender hardware address (offset 8) and sender IP (offset 14) of
		// an Ethernet/IPv4 ARP packet. Each rule checks the EtherType
		// again, as nft(8) does for arp saddr: then nft names the fields,
		// and reads back what it prints (explain replays these tables).
		all(arpFrame(), ifAnd(expr.PayloadBaseNetworkHeader, 8, 6), []expr.Any{lookup(setMAC, true)}, bridgeDrop(reasonARP)),
		all(arpFrame(), []expr.Any{payload(expr.PayloadBaseNetworkHeader, 14, 4, reg1), cmpEq(reg1, make([]byte, 4)), verdict(expr.VerdictReturn)}),
		all(arpFrame(), ifAnd(expr.PayloadBaseNetworkHeader, 14, 4), []expr.Any{lookup(setIP4, false), verdict(expr.VerdictReturn)}),
		all(arpFrame(), ifAnd(expr.PayloadBaseNetworkHeader, 14, 4), []expr.Any{lookup(setNet4, false), verdict(expr.VerdictReturn)}),
		bridgeDrop(reasonARP),
	}, Comments: []string{"spoofed_arp: sender MAC not the port's", "", "", "", "spoofed_arp: sender address not the port's"}},
	{Name: "antispoof_ip4", Rules: [][]expr.Any{
		all(l4(unix.IPPROTO_UDP), transport(0, be16(dhcp4ServerPort)), bridgeDrop(reasonDHCP)),
		// DHCP client traffic from the port's MAC, whatever its source
		// address, as Neutron's OVS firewall allows: before the port has
		// an address (0.0.0.0), and from an address the port no longer
		// holds, so that its renewal reaches the server and is refused.
		all(l4(unix.IPPROTO_UDP), transport(0, be16(dhcp4ClientPort)), transport(2, be16(dhcp4ServerPort)), []expr.Any{verdict(expr.VerdictReturn)}),
		// The EtherType again, as nft(8) checks it for ip saddr (see
		// antispoof_arp).
		all(etherType(ethIPv4), ifAnd(expr.PayloadBaseNetworkHeader, 12, 4), []expr.Any{lookup(setIP4, false), verdict(expr.VerdictReturn)}),
		all(etherType(ethIPv4), ifAnd(expr.PayloadBaseNetworkHeader, 12, 4), []expr.Any{lookup(setNet4, false), verdict(expr.VerdictReturn)}),
		bridgeDrop(reasonIP),
	}, Comments: []string{"dhcp_server: DHCP server traffic from an instance", "", "", "", "spoofed_ip: source address not the port's"}},
	// IPv6 as Neutron's firewalls have it: router advertisements (RA
	// guard) and DHCPv6 server traffic from an instance dropped; a
	// neighbour advertisement only for an address the port owns (the
	// IPv6 form of a forged ARP reply, which would steal another's
	// traffic); from the unspecified address only what duplicate
	// address detection sends (Neutron's ICMPV6_ALLOWED_UNSPEC_ADDR_TYPES:
	// MLD reports and neighbour solicitations, to link-scope multicast);
	// else the source is one of the port's addresses, its pairs or the
	// EUI-64 link-local address of one of its MACs.
	{Name: "antispoof_ip6", Rules: all2([][]expr.Any{
		all(l4(unix.IPPROTO_ICMPV6), transport(0, []byte{icmp6RA}), bridgeDrop(reasonRA)),
		all(l4(unix.IPPROTO_ICMPV6), transport(0, []byte{icmp6RS}), ipv6Off()),
		all(l4(unix.IPPROTO_UDP), transport(0, be16(dhcp6ServerPort)), bridgeDrop(reasonDHCP)),
		all(l4(unix.IPPROTO_ICMPV6), transport(0, []byte{icmp6NA}), []expr.Any{jump("nd_target")}),
	}, unspecified(), [][]expr.Any{
		all(etherType(ethIPv6), ifAnd(expr.PayloadBaseNetworkHeader, 8, 16), []expr.Any{lookup(setIP6, false), verdict(expr.VerdictReturn)}),
		all(etherType(ethIPv6), ifAnd(expr.PayloadBaseNetworkHeader, 8, 16), []expr.Any{lookup(setNet6, false), verdict(expr.VerdictReturn)}),
		bridgeDrop(reasonIP),
	}), Comments: []string{"router_advertisement: RA from an instance (RA guard)", ipv6OffComment, "dhcp_server: DHCPv6 server traffic from an instance",
		"", ipv6OffComment, "", "", "", "", "", "spoofed_ip: source address not the port's"}},
	// nd_target: the target address of a neighbour advertisement (at
	// offset 8 of the ICMPv6 header) is one the port may send from.
	{Name: "nd_target", Rules: [][]expr.Any{
		all(ifAnd(expr.PayloadBaseTransportHeader, 8, 16), []expr.Any{lookup(setIP6, false), verdict(expr.VerdictReturn)}),
		all(ifAnd(expr.PayloadBaseTransportHeader, 8, 16), []expr.Any{lookup(setNet6, false), verdict(expr.VerdictReturn)}),
		bridgeDrop(reasonND),
	}, Comments: []string{"", "", "spoofed_nd: neighbour advertisement for an address the port does not own"}},
	// Before br_netfilter hands the packet to the inet family (priority
	// 0): the mark carries the ports' tags there.
	{Name: "forward", Hook: nftables.ChainHookForward, Priority: nftables.ChainPriorityRef(-200), Rules: [][]expr.Any{
		// A port in hairpin mode (host-gateway networks, so that an
		// instance reaches its own published port) gets its own
		// broadcasts and multicasts back: a flooded frame going out to
		// the secured port whose MAC sent it is dropped, uncounted.
		{meta(expr.MetaKeyPKTTYPE, reg1),
			&expr.Range{Op: expr.CmpOpEq, Register: reg1, FromData: []byte{unix.PACKET_BROADCAST}, ToData: []byte{unix.PACKET_MULTICAST}},
			meta(expr.MetaKeyOIFNAME, reg1), payload(expr.PayloadBaseLLHeader, 6, 6, reg2),
			lookup(setMAC, false), verdict(expr.VerdictDrop)},
		setMark(0),
		{meta(expr.MetaKeyOIFNAME, reg1),
			&expr.Lookup{SourceRegister: reg1, DestRegister: reg1, IsDestRegSet: true, SetName: setTagOut},
			&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: reg1}},
		{meta(expr.MetaKeyIIFNAME, reg1),
			&expr.Lookup{SourceRegister: reg1, DestRegister: 0, IsDestRegSet: true, SetName: setTagIn}},
	}},
	// A frame going up from a port to the host's own stack (a host-gateway
	// network's traffic to the gateway, routed or not): the input port's
	// tag, and markRouted, so that the inet chains know the mark is ours
	// and check the packet's way out themselves.
	{Name: "input", Hook: nftables.ChainHookInput, Priority: nftables.ChainPriorityRef(-200), Rules: [][]expr.Any{
		setMark(markRouted),
		{meta(expr.MetaKeyIIFNAME, reg1),
			&expr.Lookup{SourceRegister: reg1, DestRegister: 0, IsDestRegSet: true, SetName: setTagIn}},
	}},
	// A packet the host's stack sends into a bridge (routed into it, or
	// the host's own) has passed the inet family's forward or output hook
	// before the bridge chose the port: it reaches a secured port only if
	// the inet table admitted it (markAdmitted). Other frames (ARP) pass.
	{Name: "output", Hook: nftables.ChainHookOutput, Priority: nftables.ChainPriorityRef(-200), Rules: [][]expr.Any{
		{meta(expr.MetaKeyOIFNAME, reg1), lookup(setSecured, true), verdict(expr.VerdictAccept)},
		all(markAnd(markAdmitted, expr.CmpOpNeq), []expr.Any{verdict(expr.VerdictAccept)}),
		{meta(expr.MetaKeyPROTOCOL, reg1), cmpNeq(reg1, be16(ethIPv4)), cmpNeq(reg1, be16(ethIPv6)), verdict(expr.VerdictAccept)},
		countDrop([]expr.Any{meta(expr.MetaKeyOIFNAME, reg1)}, reg2, reasonIngress),
	}, Comments: []string{"", "", "", "ingress_denied: from the host, not admitted by the port's rules"}},
}

const ipv6OffComment = "ipv6_off: router/DAD solicitation from a port of a network without IPv6"

// setMark sets the packet mark to v.
func setMark(v uint32) []expr.Any {
	return []expr.Any{&expr.Immediate{Register: reg1, Data: u32(v)}, &expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: reg1}}
}

// markAnd compares mark & mask with 0 by op (CmpOpEq: none of mask's
// bits set, CmpOpNeq: some).
func markAnd(mask uint32, op expr.CmpOp) []expr.Any {
	return []expr.Any{
		meta(expr.MetaKeyMARK, reg1),
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: u32(mask), Xor: u32(0)},
		&expr.Cmp{Op: op, Register: reg1, Data: u32(0)},
	}
}

func cmpNeq(reg uint32, data []byte) *expr.Cmp {
	return &expr.Cmp{Op: expr.CmpOpNeq, Register: reg, Data: data}
}

// tagChain is the chain of the port with tag: it puts the tag in the
// input port's bits of the mark (mask and xor: (mark & ^maskIn) ^ tag<<16).
func tagChain(tag uint16) nfsock.ChainDef {
	return nfsock.ChainDef{Name: tagChainName(tag), Rules: [][]expr.Any{{
		meta(expr.MetaKeyMARK, reg1),
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: u32(^uint32(maskIn)), Xor: u32(uint32(tag) << 16)},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: reg1},
	}}}
}

func tagChainName(tag uint16) string { return fmt.Sprintf("tag_%d", tag) }

func nfproto(p byte) []expr.Any {
	return []expr.Any{meta(expr.MetaKeyNFPROTO, reg1), cmpEq(reg1, []byte{p})}
}

// sigChains are the chains of signature sig in the inet table, reached by
// goto from the egress and ingress chains: one lookup in the signature's
// rule sets per family and kind of protocol (the key is l4proto .
// destination port, or ICMP type and code . peer address), then for each
// remote group its rules of that direction name (ingress, egress: sorted
// names), the peer in the group's member sets and the rest of the key in
// the signature's set for the group; a match returns to the forward
// chain, no match counts (against the port's tag, still in the mark) and
// drops.
func sigChains(sig uint16, ingress, egress []string) []nfsock.ChainDef {
	return []nfsock.ChainDef{
		{Name: egressChainName(sig), Rules: all2(ruleLookups(sig, Egress, 16, 24),
			groupLookups(sig, egress, Egress, 16, 24), [][]expr.Any{inetDrop(maskIn, reasonEgress)})},
		{Name: ingressChainName(sig), Rules: all2(ruleLookups(sig, Ingress, 12, 8),
			groupLookups(sig, ingress, Ingress, 12, 8), [][]expr.Any{inetDrop(maskOut, reasonIngress)})},
	}
}

// groupLookups are the rules of one signature chain for the remote groups
// it names: per group, family and kind of protocol, the peer (at peer4 or
// peer6 in the network header) among the group's single addresses, or
// among its ranges, and then l4proto . port in the signature's set of the
// group's rules.
func groupLookups(sig uint16, groups []string, dir Direction, peer4, peer6 uint32) [][]expr.Any {
	var out [][]expr.Any
	for _, g := range groups {
		for _, fam := range []struct {
			v6      bool
			proto   byte
			icmp    byte
			addrOff uint32
			addrLen uint32
		}{
			{false, unix.NFPROTO_IPV4, unix.IPPROTO_ICMP, peer4, 4},
			{true, unix.NFPROTO_IPV6, unix.IPPROTO_ICMPV6, peer6, 16},
		} {
			member := func(ranges bool) []expr.Any {
				if !ranges {
					return []expr.Any{
						payload(expr.PayloadBaseNetworkHeader, fam.addrOff, fam.addrLen, reg1),
						lookup(memberSet(g, fam.v6, false), false),
					}
				}
				// The key's first field is 0: meta mark & 0 rather than
				// an immediate 0, which nft(8) can neither print nor
				// read (explain's script rebuilds this rule).
				return []expr.Any{
					meta(expr.MetaKeyMARK, reg32At),
					&expr.Bitwise{SourceRegister: reg32At, DestRegister: reg32At, Len: 4, Mask: u32(0), Xor: u32(0)},
					payload(expr.PayloadBaseNetworkHeader, fam.addrOff, fam.addrLen, reg32At+1),
					&expr.Lookup{SourceRegister: reg32At, SetName: memberSet(g, fam.v6, true)},
				}
			}
			key := func(portOffset uint32) []expr.Any {
				return []expr.Any{
					meta(expr.MetaKeyL4PROTO, reg32At),
					payload(expr.PayloadBaseTransportHeader, portOffset, 2, reg32At+1),
					&expr.Lookup{SourceRegister: reg32At, SetName: groupRulesSet(sig, g, dir, fam.v6)},
					verdict(expr.VerdictReturn),
				}
			}
			notICMP := []expr.Any{meta(expr.MetaKeyL4PROTO, reg1), cmpNeq(reg1, []byte{fam.icmp})}
			for _, ranges := range []bool{false, true} {
				out = append(out,
					all(nfproto(fam.proto), notICMP, member(ranges), key(2)),
					all(nfproto(fam.proto), l4(fam.icmp), member(ranges), key(0)),
				)
			}
		}
	}
	return out
}

func egressChainName(sig uint16) string  { return fmt.Sprintf("egress_s%d", sig) }
func ingressChainName(sig uint16) string { return fmt.Sprintf("ingress_s%d", sig) }

// ruleLookups are the lookups of one signature chain of direction dir:
// the peer is at peer4 (IPv4) or peer6 (IPv6) in the network header.
func ruleLookups(sig uint16, dir Direction, peer4, peer6 uint32) [][]expr.Any {
	var out [][]expr.Any
	for _, fam := range []struct {
		proto   byte
		icmp    byte
		addrOff uint32
		addrLen uint32
		set     string
	}{
		{unix.NFPROTO_IPV4, unix.IPPROTO_ICMP, peer4, 4, rulesSet(sig, dir, false)},
		{unix.NFPROTO_IPV6, unix.IPPROTO_ICMPV6, peer6, 16, rulesSet(sig, dir, true)},
	} {
		key := func(portOffset uint32) []expr.Any {
			return []expr.Any{
				meta(expr.MetaKeyL4PROTO, reg32At),
				payload(expr.PayloadBaseTransportHeader, portOffset, 2, reg32At+1),
				payload(expr.PayloadBaseNetworkHeader, fam.addrOff, fam.addrLen, reg32At+2),
				&expr.Lookup{SourceRegister: reg32At, SetName: fam.set},
				verdict(expr.VerdictReturn),
			}
		}
		notICMP := []expr.Any{meta(expr.MetaKeyL4PROTO, reg1), cmpNeq(reg1, []byte{fam.icmp})}
		out = append(out,
			all(nfproto(fam.proto), notICMP, key(2)),
			all(nfproto(fam.proto), l4(fam.icmp), key(0)),
		)
	}
	return out
}

// toSig goes to the chain of the signature of the port whose tag is mark
// & mask, through the verdict map ports. A goto: the chain's return goes
// back to the forward chain.
func toSig(mask uint32, ports string) []expr.Any {
	return []expr.Any{
		meta(expr.MetaKeyMARK, reg1),
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: u32(mask), Xor: u32(0)},
		&expr.Lookup{SourceRegister: reg1, DestRegister: 0, IsDestRegSet: true, SetName: ports},
	}
}

// inetDrop counts a drop of reason against the port whose tag is in mark
// & mask.
func inetDrop(mask uint32, reason uint32) []expr.Any {
	load := []expr.Any{
		meta(expr.MetaKeyMARK, reg1),
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: u32(mask), Xor: u32(0)},
	}
	return countDrop(load, reg32At+1, reason)
}

// always are what every port may exchange whatever its rules, as in
// Neutron's firewalls: DHCP and DHCPv6 between client and server (egress
// from the client's port to the server's, ingress the other way: a
// server's answer to a multicast solicitation is no reply to conntrack),
// and IPv6 neighbour discovery and MLD (which conntrack leaves untracked,
// so that they pass before these: kept for a kernel that tracks them).
// Servers among the instances are dropped by the bridge table before.
func always(dir Direction) [][]expr.Any {
	ret := []expr.Any{verdict(expr.VerdictReturn)}
	dhcp := func(family byte, client, server uint16) []expr.Any {
		sport, dport := client, server
		if dir == Ingress {
			sport, dport = server, client
		}
		return all(nfproto(family), l4(unix.IPPROTO_UDP), transport(0, be16(sport)), transport(2, be16(dport)), ret)
	}
	return [][]expr.Any{
		dhcp(unix.NFPROTO_IPV4, dhcp4ClientPort, dhcp4ServerPort),
		dhcp(unix.NFPROTO_IPV6, dhcp6ClientPort, dhcp6ServerPort),
		all(l4(unix.IPPROTO_ICMPV6), []expr.Any{
			payload(expr.PayloadBaseTransportHeader, 0, 1, reg1),
			&expr.Range{Op: expr.CmpOpEq, Register: reg1, FromData: []byte{130}, ToData: []byte{136}},
		}, ret),
		all(l4(unix.IPPROTO_ICMPV6), transport(0, []byte{icmp6MLD2Report}), ret),
	}
}

// ctState matches the packet's conntrack state against any of bits.
func ctState(bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: reg1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: u32(bits), Xor: u32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: u32(0)},
	}
}

const ctSeen = expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED | expr.CtStateBitUNTRACKED

// Link kinds (meta iifkind/oifkind, which google/nftables does not name):
// a packet that comes from or goes to a bridge device itself, rather than
// one of its ports.
const (
	metaIIFKIND expr.MetaKey = 26 // NFT_META_IIFKIND
	metaOIFKIND expr.MetaKey = 27 // NFT_META_OIFKIND
)

// isBridge matches a packet whose input (key metaIIFKIND) or output
// (metaOIFKIND) device is a bridge. A device without a kind (a physical
// NIC) matches neither this nor anything else: rules use it positively.
func isBridge(key expr.MetaKey) []expr.Any {
	return []expr.Any{meta(key, reg1), cmpEq(reg1, []byte("bridge\x00"))}
}

// Goto another chain of the table.
func goTo(chain string) *expr.Verdict { return &expr.Verdict{Kind: expr.VerdictGoto, Chain: chain} }

// destLookup sets the mark to the tag of the port that the host routes
// the packet's IPv4 destination to, through its output bridge, from map
// set (no match: the mark stays).
func destLookup(set string) []expr.Any {
	return all(nfproto(unix.NFPROTO_IPV4), []expr.Any{
		meta(expr.MetaKeyOIFNAME, reg1), payload(expr.PayloadBaseNetworkHeader, 16, 4, reg2),
		&expr.Lookup{SourceRegister: reg1, DestRegister: reg1, IsDestRegSet: true, SetName: set},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: reg1},
	})
}

// The inet table checks each new connection against the rules of the
// ports it leaves and enters. Bridged between two ports, br_netfilter
// hands it to forward with both ports' tags in the mark. Between a port
// and the host's own stack (a host-gateway network, whose gateway address
// is on the bridge), it meets forward, input or output with only what the
// bridge knew before: the input port's tag (bridge input chain); the port
// it goes to is found from its destination (dest4), and the bridge output
// chain lets it reach that port only once admitted here.
var inetChains = []nfsock.ChainDef{
	// Before conntrack (priority raw): a packet from a zoned bridge
	// (bridged, through br_netfilter, whose iifname is the bridge) or
	// sent by the host into one is tracked in the bridge's zone, both
	// directions of a bridged connection alike. Any other stays in zone 0.
	//
	// A frame from or to a stateless port (its MAC as source or
	// destination, on its bridge: bridged frames show the bridge as
	// iifname here) is left untracked: its rules judge every packet.
	{Name: "zone_in", Hook: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRaw, Rules: [][]expr.Any{
		// (An Ethernet frame, as nft(8) checks before ether saddr: so
		// that `nft list` names the field and reads it back.)
		all(etherDevice(), ifAnd(expr.PayloadBaseLLHeader, 6, 6), []expr.Any{lookup(setStatelessMAC, false), &expr.Notrack{}, verdict(expr.VerdictAccept)}),
		all(etherDevice(), ifAnd(expr.PayloadBaseLLHeader, 0, 6), []expr.Any{lookup(setStatelessMAC, false), &expr.Notrack{}, verdict(expr.VerdictAccept)}),
		{meta(expr.MetaKeyIIFNAME, reg1), &expr.Lookup{SourceRegister: reg1, DestRegister: 0, IsDestRegSet: true, SetName: setZones}},
	}},
	{Name: "zone_out", Hook: nftables.ChainHookOutput, Priority: nftables.ChainPriorityRaw, Rules: [][]expr.Any{
		{meta(expr.MetaKeyOIFNAME, reg1), &expr.Lookup{SourceRegister: reg1, DestRegister: 0, IsDestRegSet: true, SetName: setZones}},
	}},
	{Name: "forward", Hook: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Rules: [][]expr.Any{
		all(isBridge(metaIIFKIND), markAnd(markRouted, expr.CmpOpEq), []expr.Any{goTo("bridged")}),
		all(isBridge(metaIIFKIND), []expr.Any{goTo("routed")}),
		// From elsewhere (the uplink) into a bridge: whatever mark the
		// packet has is not the firewall's.
		all(isBridge(metaOIFKIND), setMark(0), []expr.Any{goTo("routed")}),
	}},
	{Name: "bridged", Rules: [][]expr.Any{
		all(ctState(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), []expr.Any{verdict(expr.VerdictAccept)}),
		{meta(expr.MetaKeyMARK, reg1), cmpEq(reg1, u32(0)), verdict(expr.VerdictAccept)},
		all(ctState(expr.CtStateBitUNTRACKED), []expr.Any{goTo("untracked")}),
		all(ctState(expr.CtStateBitINVALID), []expr.Any{jump("invalid")}),
		all(markAnd(maskIn, expr.CmpOpNeq), []expr.Any{jump("egress")}),
		all(markAnd(maskOut, expr.CmpOpNeq), []expr.Any{jump("ingress")}),
	}},
	// untracked: neighbour discovery and MLD, which conntrack leaves
	// untracked, pass; so does anything else untracked between ports
	// that are not stateless. A packet from or to a stateless port (left
	// untracked by zone_in) meets the rules of both ports, every packet:
	// replies need rules of their own.
	{Name: "untracked", Rules: [][]expr.Any{
		all(statelessTag(maskIn), []expr.Any{goTo("stateless")}),
		all(statelessTag(maskOut), []expr.Any{goTo("stateless")}),
		{verdict(expr.VerdictAccept)},
	}},
	{Name: "stateless", Rules: [][]expr.Any{
		all(markAnd(maskIn, expr.CmpOpNeq), []expr.Any{jump("egress")}),
		all(markAnd(maskOut, expr.CmpOpNeq), []expr.Any{jump("ingress")}),
	}},
	// routed: forwarded by the host, from a port (markRouted, its tag in
	// the mark), into a bridge, or both.
	{Name: "routed", Rules: [][]expr.Any{
		all(ctState(ctSeen), []expr.Any{goTo("routed_seen")}),
		all(markAnd(maskIn, expr.CmpOpNeq), []expr.Any{jump("from_port")}),
		all(isBridge(metaOIFKIND), []expr.Any{goTo("to_bridge")}),
		setMark(0), // leaving the bridges: the firewall's mark stays behind
	}},
	{Name: "routed_seen", Rules: [][]expr.Any{
		all(isBridge(metaOIFKIND), setMark(markAdmitted), []expr.Any{verdict(expr.VerdictAccept)}),
		setMark(0),
	}},
	// to_bridge: a new connection the host sends into a bridge meets the
	// ingress rules of the port holding its destination, if a secured
	// one does; the bridge output chain drops it at any other secured
	// port.
	{Name: "to_bridge", Rules: [][]expr.Any{
		setMark(0),
		destLookup(setDest4),
		all([]expr.Any{meta(expr.MetaKeyMARK, reg1), cmpEq(reg1, u32(0))}, destLookup(setDest4Net)),
		{meta(expr.MetaKeyMARK, reg1), cmpEq(reg1, u32(0)), verdict(expr.VerdictAccept)},
		all(ctState(expr.CtStateBitINVALID), []expr.Any{jump("invalid")}),
		{jump("ingress")},
		setMark(markAdmitted),
	}},
	// from_port: a new connection from a port to the host's stack meets
	// the port's egress rules.
	{Name: "from_port", Rules: [][]expr.Any{
		all(ctState(expr.CtStateBitINVALID), []expr.Any{jump("invalid")}),
		{jump("egress")},
	}},
	{Name: "input", Hook: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Rules: [][]expr.Any{
		all(ctState(ctSeen), []expr.Any{verdict(expr.VerdictAccept)}),
		all(isBridge(metaIIFKIND), markAnd(maskIn, expr.CmpOpNeq), []expr.Any{goTo("from_port")}),
	}},
	{Name: "output", Hook: nftables.ChainHookOutput, Priority: nftables.ChainPriorityFilter, Rules: [][]expr.Any{
		all(isBridge(metaOIFKIND), ctState(ctSeen), setMark(markAdmitted), []expr.Any{verdict(expr.VerdictAccept)}),
		// The bridge's own IGMP reports (it joins multicast groups,
		// with or without an address) pass like its MLD ones, which
		// conntrack leaves untracked.
		all(isBridge(metaOIFKIND), l4(unix.IPPROTO_IGMP), setMark(markAdmitted), []expr.Any{verdict(expr.VerdictAccept)}),
		all(isBridge(metaOIFKIND), []expr.Any{goTo("to_bridge")}),
	}},
	// invalid: counted against the destination port if it is secured,
	// else the source port (the mark is not 0 here).
	{Name: "invalid", Rules: [][]expr.Any{
		all(markAnd(maskOut, expr.CmpOpNeq), inetDrop(maskOut, reasonInvalid)),
		inetDrop(maskIn, reasonInvalid),
	}},
	// egress: the peer is the destination (IPv4 daddr at 16, IPv6 at 24)
	{Name: "egress", Rules: all2(always(Egress), [][]expr.Any{toSig(maskIn, setEgressPorts), inetDrop(maskIn, reasonEgress)})},
	// ingress: the peer is the source (IPv4 saddr at 12, IPv6 at 8)
	{Name: "ingress", Rules: all2(always(Ingress), [][]expr.Any{toSig(maskOut, setIngressPorts), inetDrop(maskOut, reasonIngress)})},
}

// etherDevice matches a packet from an Ethernet device (meta iiftype
// ether), as bridges are.
func etherDevice() []expr.Any {
	return []expr.Any{meta(expr.MetaKeyIIFTYPE, reg1), cmpEq(reg1, binaryutil.NativeEndian.PutUint16(unix.ARPHRD_ETHER))}
}

// statelessTag matches a packet whose mark & mask is the tag of a
// stateless port.
func statelessTag(mask uint32) []expr.Any {
	return []expr.Any{
		meta(expr.MetaKeyMARK, reg1),
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: u32(mask), Xor: u32(0)},
		lookup(setStatelessTags, false),
	}
}

// zoneChain is the chain of conntrack zone z, reached through the zones
// map: it sets the zone of a packet not tracked yet (the kernel leaves a
// tracked one's alone).
func zoneChain(z uint16) nfsock.ChainDef {
	return nfsock.ChainDef{Name: zoneChainName(z), Rules: [][]expr.Any{{
		&expr.Immediate{Register: reg1, Data: binaryutil.NativeEndian.PutUint16(z)},
		&expr.Ct{Key: expr.CtKeyZONE, Register: reg1, SourceRegister: true},
	}}}
}

func zoneChainName(z uint16) string { return fmt.Sprintf("zone_%d", z) }

func all2(parts ...[][]expr.Any) [][]expr.Any {
	var out [][]expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
