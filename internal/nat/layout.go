package nat

import (
	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/nfsock"
)

// TableName is the name of nsnet's table in every namespace, in family
// inet.
const TableName = "nsnet"

// MetadataChain is the regular chain prerouting jumps to first: it
// redirects requests to the metadata service (169.254.169.254:80) that
// come in on a router's internal (qr-) interface to the router's own port
// MetadataPort, where the daemon listens, as Neutron's
// "-d 169.254.169.254/32 -p tcp --dport 80 -j REDIRECT --to-ports 9697"
// does. Being jumped to before any DNAT, it sees metadata requests before
// a port forward could claim them; the redirect keeps the source address,
// by which the service knows the caller.
const MetadataChain = "metadata"

// MetadataPort is the local port metadata requests are redirected to.
const MetadataPort = 9697

// routerInterfacePrefix starts the name of every router interface
// (model.RouterInterfacePrefix).
const routerInterfacePrefix = "qr-"

// ruleMetadata is the rule of MetadataChain.
var ruleMetadata = concatExprs(ipv4(), []expr.Any{
	&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
	&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte(routerInterfacePrefix)},
	&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
	&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{169, 254, 169, 254}},
	&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
	&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
	&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
	&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(80)},
	&expr.Immediate{Register: 1, Data: binaryutil.BigEndian.PutUint16(MetadataPort)},
	&expr.Redir{RegisterProtoMin: 1},
})

const (
	setFloatingDNAT = "floating_dnat"
	setFloatingSNAT = "floating_snat"
	setPortForward  = "port_forward"
	setPublish      = "publish"
	setSNAT         = "snat_to"
	setMasquerade   = "masquerade_from"
	setHairpin      = "hairpin"
)

var (
	typeIfAddr     = nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeIPAddr)
	typeAddrPort   = nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService)
	typeForwardKey = nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService)
	typePublishKey = nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService)
)

// layoutSets are the sets of the table. Hash maps (no interval) hold what
// grows with the number of floating IPs and forwards: their lookup and
// their insertion cost the same at ten entries as at ten thousand. The
// interval sets (the kernel's pipapo) hold per-subnet data, a handful of
// entries.
var layoutSets = []nfsock.SetDef{
	{Name: setFloatingDNAT, Key: nftables.TypeIPAddr, Data: &nftables.TypeIPAddr},
	{Name: setFloatingSNAT, Key: typeIfAddr, Data: &nftables.TypeIPAddr},
	{Name: setPortForward, Key: typeForwardKey, Data: &typeAddrPort},
	{Name: setPublish, Key: typePublishKey, Data: &typeAddrPort},
	{Name: setSNAT, Key: typeIfAddr, Data: &nftables.TypeIPAddr, Interval: true},
	{Name: setMasquerade, Key: typeIfAddr, Interval: true},
	{Name: setHairpin, Key: typeIfAddr, Interval: true},
	{Name: setHelpers, Key: typePublishKey, Data: &nftables.TypeVerdict},
}

const commentMetadata = "metadata service: 169.254.169.254:80 from qr- to local port 9697"

// layoutChains are the chains of the table. Each rule has a comment, which
// says what it does in `nft list` and names it in Inspect and Script.
var layoutChains = append([]nfsock.ChainDef{
	{Name: MetadataChain, Rules: [][]expr.Any{ruleMetadata}, Comments: []string{commentMetadata}},
	{Name: "prerouting", Type: nftables.ChainTypeNAT, Hook: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest,
		Comments: []string{commentHelpers, "metadata service", "port forwarding", "floating IPs, inbound", "published ports"},
		Rules: [][]expr.Any{
			ruleHelpers,
			{&expr.Verdict{Kind: expr.VerdictJump, Chain: MetadataChain}},
			ruleForwardDNAT,
			ruleFloatingDNAT,
			concatExprs(ipv4(), []expr.Any{
				&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
				&expr.Payload{DestRegister: 9, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
				&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: setPublish},
				&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 9},
			}),
		}},
	{Name: "output", Type: nftables.ChainTypeNAT, Hook: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest,
		Comments: []string{"port forwarding", "floating IPs, inbound"},
		Rules:    [][]expr.Any{ruleForwardDNAT, ruleFloatingDNAT}},
	{Name: "postrouting", Type: nftables.ChainTypeNAT, Hook: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource,
		Comments: []string{"hairpin: DNATed back out of the subnet it came from", "floating IPs, outbound", "SNAT", "masquerade"},
		Rules: [][]expr.Any{
			concatExprs(
				[]expr.Any{
					&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
					&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
						Mask: binaryutil.NativeEndian.PutUint32(ipsDstNAT), Xor: make([]byte, 4)},
					&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
				},
				ipv4(), oifSaddr(),
				[]expr.Any{
					&expr.Lookup{SourceRegister: 1, SetName: setHairpin},
					&expr.Masq{},
				}),
			concatExprs(ipv4(), oifSaddr(), []expr.Any{
				&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: setFloatingSNAT},
				&expr.NAT{Type: expr.NATTypeSourceNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1},
			}),
			concatExprs(ipv4(), oifSaddr(), []expr.Any{
				&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: setSNAT},
				&expr.NAT{Type: expr.NATTypeSourceNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, FullyRandom: true},
			}),
			concatExprs(ipv4(), oifSaddr(), []expr.Any{
				&expr.Lookup{SourceRegister: 1, SetName: setMasquerade},
				&expr.Masq{FullyRandom: true},
			}),
		}},
}, helperChains()...)

// ruleForwardDNAT translates ip daddr . meta l4proto . th dport through
// the port_forward map into address . port.
var ruleForwardDNAT = concatExprs(ipv4(), []expr.Any{
	&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
	&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 9},
	&expr.Payload{DestRegister: 10, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
	&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: setPortForward},
	&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 9},
})

// ruleFloatingDNAT translates ip daddr through the floating_dnat map.
var ruleFloatingDNAT = concatExprs(ipv4(), []expr.Any{
	&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
	&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: setFloatingDNAT},
	&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1},
})

// ipsDstNAT is conntrack's IPS_DST_NAT status bit: the connection was
// DNATed ("ct status dnat").
const ipsDstNAT = 1 << 5

// ipv4 matches IPv4 packets: in an inet table, IPv6 ones reach the same
// chains, and the IPv4 header offsets below would read nonsense from them.
func ipv4() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
	}
}

// oifSaddr loads the key oifname . ip saddr: the name into registers
// 1 (all 16 bytes of the first 128-bit register), the address into 2.
func oifSaddr() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Payload{DestRegister: 2, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
	}
}

func concatExprs(parts ...[]expr.Any) []expr.Any {
	var all []expr.Any
	for _, p := range parts {
		all = append(all, p...)
	}
	return all
}
