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
	setSecured = "secured" // ifname: ports that are checked
	setMAC     = "mac_ok"  // ifname . ether_addr
	setIP4     = "ip4_ok"  // ifname . ipv4_addr
	setNet4    = "ip4_net" // ifname . ipv4_addr, ranges
	setIP6     = "ip6_ok"  // ifname . ipv6_addr
	setNet6    = "ip6_net" // ifname . ipv6_addr, ranges
	setTagOut  = "tag_out" // ifname : mark (the port's tag)
	setTagIn   = "tag_in"  // ifname : verdict (jump to the port's tagging chain)
	setDrops   = "drops"   // bridge: ifname . reason; inet: tag . reason — counters
)

// Sets of the inet table: two verdict maps from a port's tag to its
// chains, and per port two sets of its rules (tag . proto . port . peer
// address, ranges), so that changing one port's rules rewrites (the
// kernel's pipapo sets are copied on commit) only that port's small sets.
const (
	setEgressPorts  = "egress_ports"  // mark (tag<<16) : jump egress_<tag>
	setIngressPorts = "ingress_ports" // mark (tag) : jump ingress_<tag>
)

func rulesSet4(tag uint16) string { return fmt.Sprintf("rules4_%d", tag) }
func rulesSet6(tag uint16) string { return fmt.Sprintf("rules6_%d", tag) }

// rulesSetDef is the definition of a port's rule sets, by name.
func rulesSetDef(name string) (nfsock.SetDef, bool) {
	switch {
	case strings.HasPrefix(name, "rules4_"):
		return nfsock.SetDef{Name: name, Key: typeRule4, Interval: true}, true
	case strings.HasPrefix(name, "rules6_"):
		return nfsock.SetDef{Name: name, Key: typeRule6, Interval: true}, true
	}
	return nfsock.SetDef{}, false
}

// A port's tag is a number in 1..maxTag. The mark of a bridged packet
// carries the tag of its input port in the high 16 bits and that of its
// output port in the low 16: rules of egress direction are keyed by
// tag<<16, ingress ones by tag, so one set holds both.
const (
	maxTag  = 0xffff
	maskIn  = 0xffff0000
	maskOut = 0x0000ffff
)

var (
	typeIfEther  = nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeEtherAddr)
	typeIfAddr4  = nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeIPAddr)
	typeIfAddr6  = nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeIP6Addr)
	typeIfReason = nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeMark)
	typeTagDrop  = nftables.MustConcatSetType(nftables.TypeMark, nftables.TypeMark)
	typeRule4    = nftables.MustConcatSetType(nftables.TypeMark, nftables.TypeInetProto, nftables.TypeInetService, nftables.TypeIPAddr)
	typeRule6    = nftables.MustConcatSetType(nftables.TypeMark, nftables.TypeInetProto, nftables.TypeInetService, nftables.TypeIP6Addr)
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
	{Name: setDrops, Key: typeIfReason, Counters: true},
}

var inetSets = []nfsock.SetDef{
	{Name: setEgressPorts, Key: nftables.TypeMark, Data: &nftables.TypeVerdict},
	{Name: setIngressPorts, Key: nftables.TypeMark, Data: &nftables.TypeVerdict},
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

var bridgeChains = []nfsock.ChainDef{
	{Name: "prerouting", Hook: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRef(-300), Rules: [][]expr.Any{
		{meta(expr.MetaKeyIIFNAME, reg1), lookup(setSecured, false), jump("antispoof")},
	}},
	{Name: "antispoof", Rules: [][]expr.Any{
		all(ifAnd(expr.PayloadBaseLLHeader, 6, 6), []expr.Any{lookup(setMAC, true)}, bridgeDrop(reasonMAC)),
		all(etherType(ethARP), []expr.Any{jump("arp")}),
		all(etherType(ethIPv4), []expr.Any{jump("ip4")}),
		all(etherType(ethIPv6), []expr.Any{jump("ip6")}),
	}},
	{Name: "arp", Rules: [][]expr.Any{
		// sender hardware address (offset 8) and sender IP (offset 14) of
		// an Ethernet/IPv4 ARP packet
		all(ifAnd(expr.PayloadBaseNetworkHeader, 8, 6), []expr.Any{lookup(setMAC, true)}, bridgeDrop(reasonARP)),
		{payload(expr.PayloadBaseNetworkHeader, 14, 4, reg1), cmpEq(reg1, make([]byte, 4)), verdict(expr.VerdictReturn)},
		all(ifAnd(expr.PayloadBaseNetworkHeader, 14, 4), []expr.Any{lookup(setIP4, false), verdict(expr.VerdictReturn)}),
		all(ifAnd(expr.PayloadBaseNetworkHeader, 14, 4), []expr.Any{lookup(setNet4, false), verdict(expr.VerdictReturn)}),
		bridgeDrop(reasonARP),
	}},
	{Name: "ip4", Rules: [][]expr.Any{
		all(l4(unix.IPPROTO_UDP), transport(0, be16(67)), bridgeDrop(reasonDHCP)),
		// DHCP client traffic from the port's MAC, whatever its source
		// address, as Neutron's OVS firewall allows: before the port has
		// an address (0.0.0.0), and from an address the port no longer
		// holds, so that its renewal reaches the server and is refused.
		all(l4(unix.IPPROTO_UDP), transport(0, be16(68)), transport(2, be16(67)), []expr.Any{verdict(expr.VerdictReturn)}),
		all(ifAnd(expr.PayloadBaseNetworkHeader, 12, 4), []expr.Any{lookup(setIP4, false), verdict(expr.VerdictReturn)}),
		all(ifAnd(expr.PayloadBaseNetworkHeader, 12, 4), []expr.Any{lookup(setNet4, false), verdict(expr.VerdictReturn)}),
		bridgeDrop(reasonIP),
	}},
	{Name: "ip6", Rules: [][]expr.Any{
		all(l4(unix.IPPROTO_ICMPV6), transport(0, []byte{134}), bridgeDrop(reasonRA)),
		all(l4(unix.IPPROTO_UDP), transport(0, be16(547)), bridgeDrop(reasonDHCP)),
		all([]expr.Any{payload(expr.PayloadBaseNetworkHeader, 8, 16, reg1), cmpEq(reg1, make([]byte, 16))},
			l4(unix.IPPROTO_ICMPV6), []expr.Any{verdict(expr.VerdictReturn)}),
		all(ifAnd(expr.PayloadBaseNetworkHeader, 8, 16), []expr.Any{lookup(setIP6, false), verdict(expr.VerdictReturn)}),
		all(ifAnd(expr.PayloadBaseNetworkHeader, 8, 16), []expr.Any{lookup(setNet6, false), verdict(expr.VerdictReturn)}),
		bridgeDrop(reasonIP),
	}},
	// Before br_netfilter hands the packet to the inet family (priority
	// 0): the mark carries the ports' tags there.
	{Name: "forward", Hook: nftables.ChainHookForward, Priority: nftables.ChainPriorityRef(-200), Rules: [][]expr.Any{
		{&expr.Immediate{Register: reg1, Data: u32(0)}, &expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: reg1}},
		{meta(expr.MetaKeyOIFNAME, reg1),
			&expr.Lookup{SourceRegister: reg1, DestRegister: reg1, IsDestRegSet: true, SetName: setTagOut},
			&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: reg1}},
		{meta(expr.MetaKeyIIFNAME, reg1),
			&expr.Lookup{SourceRegister: reg1, DestRegister: 0, IsDestRegSet: true, SetName: setTagIn}},
	}},
}

// tagChain is the chain of the port with tag: it ors the tag into the high
// half of the mark (mask and xor: (mark & 0xffff) ^ tag<<16).
func tagChain(tag uint16) nfsock.ChainDef {
	return nfsock.ChainDef{Name: tagChainName(tag), Rules: [][]expr.Any{{
		meta(expr.MetaKeyMARK, reg1),
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: u32(maskOut), Xor: u32(uint32(tag) << 16)},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: reg1},
	}}}
}

func tagChainName(tag uint16) string { return fmt.Sprintf("tag_%d", tag) }

// tagged loads meta mark & mask into the first key register.
func tagged(mask uint32) []expr.Any {
	return []expr.Any{
		meta(expr.MetaKeyMARK, reg32At),
		&expr.Bitwise{SourceRegister: reg32At, DestRegister: reg32At, Len: 4, Mask: u32(mask), Xor: u32(0)},
	}
}

func nfproto(p byte) []expr.Any {
	return []expr.Any{meta(expr.MetaKeyNFPROTO, reg1), cmpEq(reg1, []byte{p})}
}

// portChains are the chains of the port with tag in the inet table,
// reached by goto from the egress and ingress chains: one lookup in the
// port's rule sets per family and kind of protocol (the key is tag .
// l4proto . destination port, or ICMP type and code . peer address); a
// match returns to the forward chain, no match counts and drops.
func portChains(tag uint16) []nfsock.ChainDef {
	return []nfsock.ChainDef{
		{Name: egressChainName(tag), Rules: all2(ruleLookups(tag, maskIn, 16, 24),
			[][]expr.Any{inetDrop(maskIn, reasonEgress)})},
		{Name: ingressChainName(tag), Rules: all2(ruleLookups(tag, maskOut, 12, 8),
			[][]expr.Any{inetDrop(maskOut, reasonIngress)})},
	}
}

func egressChainName(tag uint16) string  { return fmt.Sprintf("egress_%d", tag) }
func ingressChainName(tag uint16) string { return fmt.Sprintf("ingress_%d", tag) }

// ruleLookups are the lookups of one port's chain of one direction: the
// peer is at peer4 (IPv4) or peer6 (IPv6) in the network header.
func ruleLookups(tag uint16, mask uint32, peer4, peer6 uint32) [][]expr.Any {
	var out [][]expr.Any
	for _, fam := range []struct {
		proto   byte
		icmp    byte
		addrOff uint32
		addrLen uint32
		set     string
	}{
		{unix.NFPROTO_IPV4, unix.IPPROTO_ICMP, peer4, 4, rulesSet4(tag)},
		{unix.NFPROTO_IPV6, unix.IPPROTO_ICMPV6, peer6, 16, rulesSet6(tag)},
	} {
		key := func(portOffset uint32) []expr.Any {
			return all(tagged(mask), []expr.Any{
				meta(expr.MetaKeyL4PROTO, reg32At+1),
				payload(expr.PayloadBaseTransportHeader, portOffset, 2, reg32At+2),
				payload(expr.PayloadBaseNetworkHeader, fam.addrOff, fam.addrLen, reg32At+3),
				&expr.Lookup{SourceRegister: reg32At, SetName: fam.set},
				verdict(expr.VerdictReturn),
			})
		}
		notICMP := []expr.Any{meta(expr.MetaKeyL4PROTO, reg1), &expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: []byte{fam.icmp}}}
		out = append(out,
			all(nfproto(fam.proto), notICMP, key(2)),
			all(nfproto(fam.proto), l4(fam.icmp), key(0)),
		)
	}
	return out
}

// toPort goes to the chain of the port whose tag is mark & mask, through
// the verdict map ports. A goto: the port chain's return goes back to the
// forward chain.
func toPort(mask uint32, ports string) []expr.Any {
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
// Neutron's iptables firewall: DHCP and IPv6 neighbour discovery and MLD.
func always(dhcpSport, dhcpDport uint16) [][]expr.Any {
	ret := []expr.Any{verdict(expr.VerdictReturn)}
	return [][]expr.Any{
		all(l4(unix.IPPROTO_UDP), transport(0, be16(dhcpSport)), transport(2, be16(dhcpDport)), ret),
		all(l4(unix.IPPROTO_ICMPV6), []expr.Any{
			payload(expr.PayloadBaseTransportHeader, 0, 1, reg1),
			&expr.Range{Op: expr.CmpOpEq, Register: reg1, FromData: []byte{130}, ToData: []byte{136}},
		}, ret),
		all(l4(unix.IPPROTO_ICMPV6), transport(0, []byte{143}), ret),
	}
}

var inetChains = []nfsock.ChainDef{
	{Name: "forward", Hook: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Rules: [][]expr.Any{
		{&expr.Ct{Register: reg1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
				Mask: u32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED | expr.CtStateBitUNTRACKED), Xor: u32(0)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: u32(0)},
			verdict(expr.VerdictAccept)},
		{meta(expr.MetaKeyMARK, reg1), cmpEq(reg1, u32(0)), verdict(expr.VerdictAccept)},
		{&expr.Ct{Register: reg1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: u32(expr.CtStateBitINVALID), Xor: u32(0)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: u32(0)},
			jump("invalid")},
		{meta(expr.MetaKeyMARK, reg1),
			&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: u32(maskIn), Xor: u32(0)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: u32(0)}, jump("egress")},
		{meta(expr.MetaKeyMARK, reg1),
			&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: u32(maskOut), Xor: u32(0)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: u32(0)}, jump("ingress")},
	}},
	// invalid: counted against the destination port if it is secured,
	// else the source port (the mark is not 0 here).
	{Name: "invalid", Rules: [][]expr.Any{
		all([]expr.Any{
			meta(expr.MetaKeyMARK, reg1),
			&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: u32(maskOut), Xor: u32(0)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: u32(0)},
		}, inetDrop(maskOut, reasonInvalid)),
		inetDrop(maskIn, reasonInvalid),
	}},
	// egress: the peer is the destination (IPv4 daddr at 16, IPv6 at 24)
	{Name: "egress", Rules: all2(always(68, 67), [][]expr.Any{toPort(maskIn, setEgressPorts), inetDrop(maskIn, reasonEgress)})},
	// ingress: the peer is the source (IPv4 saddr at 12, IPv6 at 8)
	{Name: "ingress", Rules: all2(always(67, 68), [][]expr.Any{toPort(maskOut, setIngressPorts), inetDrop(maskOut, reasonIngress)})},
}

func all2(parts ...[][]expr.Any) [][]expr.Any {
	var out [][]expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
