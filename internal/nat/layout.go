package nat

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
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

var ruleMetadata = ruleDef{"metadata service: 169.254.169.254:80 from qr- to local port 9697", concatExprs(ipv4(), []expr.Any{
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
})}

const (
	setFloatingDNAT = "floating_dnat"
	setFloatingSNAT = "floating_snat"
	setPortForward  = "port_forward"
	setPublish      = "publish"
	setSNAT         = "snat_to"
	setMasquerade   = "masquerade_from"
	setHairpin      = "hairpin"
)

// setDef is one set or map of the layout.
type setDef struct {
	name     string
	key      nftables.SetDatatype
	data     nftables.SetDatatype // maps only
	interval bool
}

func (d setDef) isMap() bool { return d.data.Name != "" }

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
var layoutSets = []setDef{
	{name: setFloatingDNAT, key: nftables.TypeIPAddr, data: nftables.TypeIPAddr},
	{name: setFloatingSNAT, key: typeIfAddr, data: nftables.TypeIPAddr},
	{name: setPortForward, key: typeForwardKey, data: typeAddrPort},
	{name: setPublish, key: typePublishKey, data: typeAddrPort},
	{name: setSNAT, key: typeIfAddr, data: nftables.TypeIPAddr, interval: true},
	{name: setMasquerade, key: typeIfAddr, interval: true},
	{name: setHairpin, key: typeIfAddr, interval: true},
}

func (d setDef) nft(t *nftables.Table) *nftables.Set {
	s := &nftables.Set{
		Table:         t,
		Name:          d.name,
		KeyType:       d.key,
		Interval:      d.interval,
		Concatenation: d.interval && len(nftables.ConcatSetTypeElements(d.key)) > 1,
		KeyByteOrder:  binaryutil.BigEndian,
	}
	if d.isMap() {
		s.IsMap = true
		s.DataType = d.data
	}
	return s
}

// matches reports whether the live set s is the one d defines.
func (d setDef) matches(s *nftables.Set) bool {
	return s.KeyType.Name == d.key.Name && s.KeyType.Bytes == d.key.Bytes &&
		s.IsMap == d.isMap() && (!d.isMap() || s.DataType.Name == d.data.Name && s.DataType.Bytes == d.data.Bytes) &&
		s.Interval == d.interval && !s.Anonymous && !s.Constant && !s.HasTimeout && !s.Dynamic
}

// chainDef is one chain of the table.
type chainDef struct {
	name     string
	hook     *nftables.ChainHook // nil: a regular chain
	priority *nftables.ChainPriority
	rules    []ruleDef
}

// ruleDef is one rule: what it does, in words (its comment in `nft list`),
// and its expressions.
type ruleDef struct {
	comment string
	exprs   []expr.Any
}

var layoutChains = []chainDef{
	{name: MetadataChain, rules: []ruleDef{ruleMetadata}},
	{name: "prerouting", hook: nftables.ChainHookPrerouting, priority: nftables.ChainPriorityNATDest, rules: []ruleDef{
		{"metadata service", []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: MetadataChain}}},
		ruleForwardDNAT,
		ruleFloatingDNAT,
		{"published ports", concatExprs(
			ipv4(),
			[]expr.Any{
				&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
				&expr.Payload{DestRegister: 9, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
				&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: setPublish},
				&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 9},
			})},
	}},
	{name: "output", hook: nftables.ChainHookOutput, priority: nftables.ChainPriorityNATDest, rules: []ruleDef{
		ruleForwardDNAT,
		ruleFloatingDNAT,
	}},
	{name: "postrouting", hook: nftables.ChainHookPostrouting, priority: nftables.ChainPriorityNATSource, rules: []ruleDef{
		{"hairpin: DNATed back out of the subnet it came from", concatExprs(
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
			})},
		{"floating IPs, outbound", concatExprs(ipv4(), oifSaddr(), []expr.Any{
			&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: setFloatingSNAT},
			&expr.NAT{Type: expr.NATTypeSourceNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1},
		})},
		{"SNAT", concatExprs(ipv4(), oifSaddr(), []expr.Any{
			&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: setSNAT},
			&expr.NAT{Type: expr.NATTypeSourceNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, FullyRandom: true},
		})},
		{"masquerade", concatExprs(ipv4(), oifSaddr(), []expr.Any{
			&expr.Lookup{SourceRegister: 1, SetName: setMasquerade},
			&expr.Masq{FullyRandom: true},
		})},
	}},
}

// ruleForwardDNAT translates ip daddr . meta l4proto . th dport through
// the port_forward map into address . port.
var ruleForwardDNAT = ruleDef{"port forwarding", concatExprs(ipv4(), []expr.Any{
	&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
	&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 9},
	&expr.Payload{DestRegister: 10, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
	&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: setPortForward},
	&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 9},
})}

// ruleFloatingDNAT translates ip daddr through the floating_dnat map.
var ruleFloatingDNAT = ruleDef{"floating IPs, inbound", concatExprs(ipv4(), []expr.Any{
	&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
	&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: setFloatingDNAT},
	&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1},
})}

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

// fingerprintType is the userdata TLV type that carries a rule's
// fingerprint. nft shows only the comment TLV (type 0) and skips types it
// does not know.
const fingerprintType userdata.Type = 0x4e // 'N'

// userData is what a rule of def carries: its comment, for people, and the
// fingerprint of its expressions, so that a later Apply can tell whether
// the live rule is this one without trusting the kernel to echo every
// attribute back exactly as sent (it adds flags of its own to nat
// expressions, for one).
func (def ruleDef) userData() []byte {
	ud := userdata.AppendString(nil, userdata.TypeComment, def.comment)
	return userdata.AppendString(ud, fingerprintType, def.fingerprint())
}

func (def ruleDef) fingerprint() string {
	h := sha256.New()
	for _, e := range def.exprs {
		b, err := expr.Marshal(byte(nftables.TableFamilyINet), e)
		if err != nil {
			panic(fmt.Sprintf("nat: layout rule %q does not marshal: %v", def.comment, err))
		}
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// liveFingerprint is the fingerprint a live rule carries, or "".
func liveFingerprint(r *nftables.Rule) string {
	fp, _ := userdata.GetString(r.UserData, fingerprintType)
	return fp
}

// liveComment is the comment of a live rule, or "".
func liveComment(r *nftables.Rule) string {
	c, _ := userdata.GetString(r.UserData, userdata.TypeComment)
	return c
}

func (c chainDef) nft(t *nftables.Table) *nftables.Chain {
	ch := &nftables.Chain{Table: t, Name: c.name}
	if c.hook != nil {
		accept := nftables.ChainPolicyAccept
		ch.Hooknum, ch.Priority, ch.Type, ch.Policy = c.hook, c.priority, nftables.ChainTypeNAT, &accept
	}
	return ch
}

// matches reports whether the live chain ch is the one c defines.
func (c chainDef) matches(ch *nftables.Chain) bool {
	if c.hook == nil {
		return ch.Hooknum == nil
	}
	return ch.Hooknum != nil && *ch.Hooknum == *c.hook &&
		ch.Priority != nil && *ch.Priority == *c.priority &&
		ch.Type == nftables.ChainTypeNAT &&
		(ch.Policy == nil || *ch.Policy == nftables.ChainPolicyAccept)
}
