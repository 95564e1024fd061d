package nat

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/nfsock"
)

// Conntrack helpers (Neutron's l3-conntrack-helper): a router assigns a
// kernel helper (ftp, tftp, sip…) to new connections of a protocol and
// port, so that the helper opens the related connections the protocol
// negotiates inside its payload, and rewrites the addresses in it when
// the connection is NATed (an FTP client behind SNAT sending PORT).
//
// The layout keeps its rules fixed: every helper the kernel offers is a
// ct helper object and a one-rule chain that assigns it, made with the
// table; which protocol and port gets which helper is an element of the
// verdict map conntrack_helpers, looked up first in prerouting. Adding a
// helper to a router is one element. The rule sits in the nat chain, which
// sees exactly the first packet of each connection, before the connection
// is confirmed and before its NAT binding is made (the helper must be
// known then: the NAT core gives helped connections the sequence
// adjustment their rewritten payloads need).

// HelperKind is one conntrack helper the layout offers: its Neutron name
// and protocol, and the kernel's name of the helper for that protocol.
type HelperKind struct {
	Name     string
	Protocol Protocol
	Kernel   string
}

// object is the name of the ct helper object of k ("ftp-tcp").
func (k HelperKind) object() string { return k.Name + "-" + k.Protocol.String() }

// chain is the name of the chain that assigns k.
func (k HelperKind) chain() string { return "helper_" + k.Name + "_" + k.Protocol.String() }

// HelperKinds are the helpers every table offers: Neutron's default
// allowed_conntrack_helpers, for the protocols this kernel's helpers
// serve. The kernel's amanda helper is UDP only (Neutron's default lists
// amanda/tcp, which no kernel helper serves), and H.323 is two helpers:
// RAS on UDP, Q.931 on TCP.
var HelperKinds = []HelperKind{
	{"amanda", UDP, "amanda"},
	{"ftp", TCP, "ftp"},
	{"h323", UDP, "RAS"},
	{"h323", TCP, "Q.931"},
	{"irc", TCP, "irc"},
	{"netbios-ns", UDP, "netbios-ns"},
	{"pptp", TCP, "pptp"},
	{"sane", TCP, "sane"},
	{"sip", UDP, "sip"},
	{"sip", TCP, "sip"},
	{"snmp", UDP, "snmp"},
	{"tftp", UDP, "tftp"},
}

// Helper assigns conntrack helper Name to new connections of Protocol to
// Port.
type Helper struct {
	Name     string
	Protocol Protocol
	Port     uint16
}

func (h Helper) String() string { return fmt.Sprintf("%s %s/%d", h.Name, h.Protocol, h.Port) }

func (h Helper) kind() (HelperKind, bool) {
	i := slices.IndexFunc(HelperKinds, func(k HelperKind) bool { return k.Name == h.Name && k.Protocol == h.Protocol })
	if i < 0 {
		return HelperKind{}, false
	}
	return HelperKinds[i], true
}

const (
	setHelpers     = "conntrack_helpers"
	commentHelpers = "conntrack helpers"
)

// ruleHelpers jumps, by meta l4proto . th dport, to the chain that
// assigns the protocol's helper. IPv4 and IPv6 alike.
var ruleHelpers = []expr.Any{
	&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
	&expr.Payload{DestRegister: 9, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
	&expr.Lookup{SourceRegister: 1, DestRegister: 0, IsDestRegSet: true, SetName: setHelpers},
}

// helperChains are the chains that assign each helper.
func helperChains() []nfsock.ChainDef {
	var defs []nfsock.ChainDef
	for _, k := range HelperKinds {
		defs = append(defs, nfsock.ChainDef{Name: k.chain(),
			Rules:    [][]expr.Any{{&expr.Objref{Type: unix.NFT_OBJECT_CT_HELPER, Name: k.object()}}},
			Comments: []string{helperComment(k)}})
	}
	return defs
}

func helperComment(k HelperKind) string { return "conntrack helper " + k.object() }

// queueHelperObjects queues the ct helper objects of every kind. Adding
// one that exists changes nothing, so it is queued before any batch that
// (re)writes the chains that reference them.
func queueHelperObjects(c *nfsock.Conn) {
	for _, k := range HelperKinds {
		c.AddObj(&nftables.NamedObj{Table: table, Name: k.object(), Type: nftables.ObjTypeCtHelper,
			Obj: &expr.CtHelper{Name: k.Kernel, L4Proto: uint8(k.Protocol)}})
	}
}

func helperElem(h Helper, k HelperKind) nfsock.Element {
	return nfsock.Element{Key: nfsock.Concat(proto(h.Protocol), port(h.Port)), Chain: k.chain()}
}

// decodeHelpers reads the conntrack_helpers map back.
func decodeHelpers(es elements) (hs []Helper, undecoded int) {
	for _, e := range es {
		i := slices.IndexFunc(HelperKinds, func(k HelperKind) bool { return k.chain() == e.Chain })
		if len(e.Key) != 8 || i < 0 || e.GoTo || Protocol(e.Key[0]) != HelperKinds[i].Protocol {
			undecoded++
			continue
		}
		hs = append(hs, Helper{HelperKinds[i].Name, HelperKinds[i].Protocol, binary.BigEndian.Uint16(e.Key[4:6])})
	}
	return hs, undecoded
}

func compareHelpers(a, b Helper) int {
	return cmp.Or(cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.Port, b.Port), cmp.Compare(a.Name, b.Name))
}

// validateHelpers: known helpers, a port, one helper per protocol and
// port (a connection has one).
func validateHelpers(hs []Helper, bad func(string, ...any)) {
	seen := map[[2]int]Helper{}
	for _, h := range hs {
		if _, ok := h.kind(); !ok {
			bad("conntrack helper %s: no such helper for %s", h, h.Protocol)
		}
		if h.Port == 0 {
			bad("conntrack helper %s: port 0", h)
		}
		k := [2]int{int(h.Protocol), int(h.Port)}
		if o, ok := seen[k]; ok && o != h {
			bad("conntrack helpers %s and %s claim the same connections", o, h)
		}
		seen[k] = h
	}
}
