package dhcp6

import (
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/nsnet/nsnet/internal/pmap"
)

var (
	knownMAC   = net.HardwareAddr{0xfa, 0x16, 0x3e, 0, 0, 1}
	infoMAC    = net.HardwareAddr{0xfa, 0x16, 0x3e, 0, 0, 2} // a port on stateless subnets only
	unknownMAC = net.HardwareAddr{0xfa, 0x16, 0x3e, 0, 0, 9}
	serverMAC  = net.HardwareAddr{0xfa, 0x16, 0x3e, 0, 0, 0xfe}
	server     = ServerDUID(serverMAC)
	other      = ServerDUID(net.HardwareAddr{0xfa, 0x16, 0x3e, 0, 0, 0xfd})
	portAddr   = netip.MustParseAddr("2001:db8:1::5")
	dnsAddr    = netip.MustParseAddr("2001:db8:1::53")
	linkLocal  = netip.MustParseAddr("fe80::f816:3eff:fe00:1") // knownMAC's EUI-64
	unknownLL  = netip.MustParseAddr("fe80::f816:3eff:fe00:9")
)

func testConfig() *Config {
	return &Config{
		LeaseTime: time.Hour,
		Subnets: []Subnet{
			{Prefix: netip.MustParsePrefix("2001:db8:1::/64"), DNS: []netip.Addr{dnsAddr}},
			{Prefix: netip.MustParsePrefix("2001:db8:2::/64"), DNS: []netip.Addr{netip.MustParseAddr("2001:db8:2::53"), dnsAddr}},
		},
		Domain: "nsnet.test.",
		Hosts: pmap.From(map[string]Host{
			knownMAC.String(): {Addrs: []netip.Addr{portAddr}},
			infoMAC.String():  {},
		}),
	}
}

var iaid = [4]byte{0, 0, 0, 7}

// msg builds a client message: its type, a client identifier and the
// given options.
func msg(t testing.TB, typ dhcpv6.MessageType, duid dhcpv6.DUID, opts ...dhcpv6.Option) *dhcpv6.Message {
	t.Helper()
	m, err := dhcpv6.NewMessage()
	if err != nil {
		t.Fatal(err)
	}
	m.MessageType = typ
	if duid != nil {
		m.AddOption(dhcpv6.OptClientID(duid))
	}
	for _, o := range opts {
		m.AddOption(o)
	}
	return m
}

func duidLL(mac net.HardwareAddr) dhcpv6.DUID {
	return &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: mac}
}

func duidLLT(mac net.HardwareAddr) dhcpv6.DUID {
	return &dhcpv6.DUIDLLT{HWType: iana.HWTypeEthernet, Time: 12345, LinkLayerAddr: mac}
}

var duidUUID = &dhcpv6.DUIDUUID{UUID: [16]byte{1, 2, 3}}

func ia(addrs ...netip.Addr) *dhcpv6.OptIANA {
	o := &dhcpv6.OptIANA{IaId: iaid}
	for _, a := range addrs {
		o.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: a.AsSlice(), PreferredLifetime: time.Hour, ValidLifetime: time.Hour})
	}
	return o
}

// iaView is what one IA_NA of a reply says.
type iaView struct {
	addrs  []string // address/valid lifetime
	status iana.StatusCode
}

func view(t testing.TB, reply *dhcpv6.Message) []iaView {
	t.Helper()
	var out []iaView
	for _, o := range reply.Options.IANA() {
		if o.IaId != iaid {
			t.Errorf("IA_NA with IAID %v, want the client's %v", o.IaId, iaid)
		}
		v := iaView{status: iana.StatusSuccess}
		for _, a := range o.Options.Addresses() {
			v.addrs = append(v.addrs, a.IPv6Addr.String()+"/"+a.ValidLifetime.String())
		}
		if s := o.Options.Status(); s != nil {
			v.status = s.StatusCode
		}
		out = append(out, v)
	}
	return out
}

func TestReply(t *testing.T) {
	rapid := &dhcpv6.OptionGeneric{OptionCode: dhcpv6.OptionRapidCommit}
	sid := dhcpv6.OptServerID(server)
	otherSID := dhcpv6.OptServerID(other)
	stale := netip.MustParseAddr("2001:db8:1::77")
	bound := []iaView{{addrs: []string{"2001:db8:1::5/1h0m0s"}, status: iana.StatusSuccess}}
	tests := []struct {
		name   string
		req    *dhcpv6.Message
		src    netip.Addr
		rapid  bool // Config.RapidCommit
		want   dhcpv6.MessageType
		ias    []iaView
		status iana.StatusCode // top-level status; 0 with none expected too
	}{
		{"solicit by DUID-LL", msg(t, dhcpv6.MessageTypeSolicit, duidLL(knownMAC), ia()), unknownLL, false,
			dhcpv6.MessageTypeAdvertise, bound, 0},
		{"solicit by DUID-LLT", msg(t, dhcpv6.MessageTypeSolicit, duidLLT(knownMAC), ia()), unknownLL, false,
			dhcpv6.MessageTypeAdvertise, bound, 0},
		{"solicit with a DUID-UUID: MAC from the EUI-64 source", msg(t, dhcpv6.MessageTypeSolicit, duidUUID, ia()), linkLocal, false,
			dhcpv6.MessageTypeAdvertise, bound, 0},
		{"solicit with a DUID-UUID: MAC from the client link-layer address option",
			msg(t, dhcpv6.MessageTypeSolicit, duidUUID, ia(), dhcpv6.OptClientLinkLayerAddress(iana.HWTypeEthernet, knownMAC)),
			netip.MustParseAddr("fe80::1234:5678:9abc:def0"), false, dhcpv6.MessageTypeAdvertise, bound, 0},
		{"solicit whose DUID-LLT names another instance's interface", msg(t, dhcpv6.MessageTypeSolicit, duidLLT(unknownMAC), ia()), linkLocal, false,
			dhcpv6.MessageTypeAdvertise, bound, 0},
		{"solicit from an unknown client", msg(t, dhcpv6.MessageTypeSolicit, duidLL(unknownMAC), ia()), unknownLL, false,
			dhcpv6.MessageTypeNone, nil, 0},
		{"solicit from a port with no stateful address", msg(t, dhcpv6.MessageTypeSolicit, duidLL(infoMAC), ia()), unknownLL, false,
			dhcpv6.MessageTypeNone, nil, 0},
		{"solicit without a client identifier", msg(t, dhcpv6.MessageTypeSolicit, nil, ia()), linkLocal, false,
			dhcpv6.MessageTypeNone, nil, 0},
		{"solicit with a server identifier", msg(t, dhcpv6.MessageTypeSolicit, duidLL(knownMAC), ia(), sid), linkLocal, false,
			dhcpv6.MessageTypeNone, nil, 0},
		{"rapid commit allowed", msg(t, dhcpv6.MessageTypeSolicit, duidLL(knownMAC), ia(), rapid), linkLocal, true,
			dhcpv6.MessageTypeReply, bound, 0},
		{"rapid commit not allowed", msg(t, dhcpv6.MessageTypeSolicit, duidLL(knownMAC), ia(), rapid), linkLocal, false,
			dhcpv6.MessageTypeAdvertise, bound, 0},
		{"request", msg(t, dhcpv6.MessageTypeRequest, duidLL(knownMAC), ia(portAddr), sid), linkLocal, false,
			dhcpv6.MessageTypeReply, bound, 0},
		{"request to another server", msg(t, dhcpv6.MessageTypeRequest, duidLL(knownMAC), ia(portAddr), otherSID), linkLocal, false,
			dhcpv6.MessageTypeNone, nil, 0},
		{"request without a server identifier", msg(t, dhcpv6.MessageTypeRequest, duidLL(knownMAC), ia(portAddr)), linkLocal, false,
			dhcpv6.MessageTypeNone, nil, 0},
		{"request by a deleted port", msg(t, dhcpv6.MessageTypeRequest, duidLL(unknownMAC), ia(portAddr), sid), unknownLL, false,
			dhcpv6.MessageTypeReply, []iaView{{status: iana.StatusNoAddrsAvail}}, 0},
		{"renew", msg(t, dhcpv6.MessageTypeRenew, duidLL(knownMAC), ia(portAddr), sid), linkLocal, false,
			dhcpv6.MessageTypeReply, bound, 0},
		{"renew of an address the port no longer has", msg(t, dhcpv6.MessageTypeRenew, duidLL(knownMAC), ia(stale), sid), linkLocal, false,
			dhcpv6.MessageTypeReply, []iaView{{addrs: []string{"2001:db8:1::5/1h0m0s", "2001:db8:1::77/0s"}, status: iana.StatusSuccess}}, 0},
		{"renew by a deleted port", msg(t, dhcpv6.MessageTypeRenew, duidLL(unknownMAC), ia(stale), sid), unknownLL, false,
			dhcpv6.MessageTypeReply, []iaView{{status: iana.StatusNoBinding}}, 0},
		{"rebind", msg(t, dhcpv6.MessageTypeRebind, duidLL(knownMAC), ia(portAddr)), linkLocal, false,
			dhcpv6.MessageTypeReply, bound, 0},
		{"rebind by a deleted port", msg(t, dhcpv6.MessageTypeRebind, duidLL(unknownMAC), ia(stale)), unknownLL, false,
			dhcpv6.MessageTypeReply, []iaView{{addrs: []string{"2001:db8:1::77/0s"}, status: iana.StatusSuccess}}, 0},
		{"rebind of another network's address by an unknown client",
			msg(t, dhcpv6.MessageTypeRebind, duidLL(unknownMAC), ia(netip.MustParseAddr("2001:db8:99::1"))), unknownLL, false,
			dhcpv6.MessageTypeNone, nil, 0},
		{"rebind with a server identifier", msg(t, dhcpv6.MessageTypeRebind, duidLL(knownMAC), ia(portAddr), sid), linkLocal, false,
			dhcpv6.MessageTypeNone, nil, 0},
		{"confirm on link", msg(t, dhcpv6.MessageTypeConfirm, duidLL(knownMAC), ia(portAddr)), linkLocal, false,
			dhcpv6.MessageTypeReply, nil, iana.StatusSuccess},
		{"confirm off link", msg(t, dhcpv6.MessageTypeConfirm, duidLL(knownMAC), ia(netip.MustParseAddr("2001:db8:99::1"))), linkLocal, false,
			dhcpv6.MessageTypeReply, nil, iana.StatusNotOnLink},
		{"confirm without addresses", msg(t, dhcpv6.MessageTypeConfirm, duidLL(knownMAC), ia()), linkLocal, false,
			dhcpv6.MessageTypeNone, nil, 0},
		{"information-request from anyone", msg(t, dhcpv6.MessageTypeInformationRequest, duidLL(unknownMAC)), unknownLL, false,
			dhcpv6.MessageTypeReply, nil, 0},
		{"information-request without a client identifier", msg(t, dhcpv6.MessageTypeInformationRequest, nil), unknownLL, false,
			dhcpv6.MessageTypeReply, nil, 0},
		{"information-request to another server", msg(t, dhcpv6.MessageTypeInformationRequest, duidLL(knownMAC), otherSID), linkLocal, false,
			dhcpv6.MessageTypeNone, nil, 0},
		{"information-request with an IA", msg(t, dhcpv6.MessageTypeInformationRequest, duidLL(knownMAC), ia()), linkLocal, false,
			dhcpv6.MessageTypeNone, nil, 0},
		{"release", msg(t, dhcpv6.MessageTypeRelease, duidLL(knownMAC), ia(portAddr), sid), linkLocal, false,
			dhcpv6.MessageTypeReply, nil, iana.StatusSuccess},
		{"release to another server", msg(t, dhcpv6.MessageTypeRelease, duidLL(knownMAC), ia(portAddr), otherSID), linkLocal, false,
			dhcpv6.MessageTypeNone, nil, 0},
		{"decline", msg(t, dhcpv6.MessageTypeDecline, duidLL(knownMAC), ia(portAddr), sid), linkLocal, false,
			dhcpv6.MessageTypeReply, nil, iana.StatusSuccess},
		{"a server's message", msg(t, dhcpv6.MessageTypeAdvertise, duidLL(knownMAC), ia(portAddr), sid), linkLocal, false,
			dhcpv6.MessageTypeNone, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.RapidCommit = tt.rapid
			reply := cfg.Reply(tt.req, tt.src, server)
			if tt.want == dhcpv6.MessageTypeNone {
				if reply != nil {
					t.Fatalf("answered %v, want silence", reply.MessageType)
				}
				return
			}
			if reply == nil {
				t.Fatalf("no answer, want %v", tt.want)
			}
			// What the client reads is the wire form.
			parsed, err := dhcpv6.MessageFromBytes(reply.ToBytes())
			if err != nil {
				t.Fatalf("reply does not parse: %v", err)
			}
			if parsed.MessageType != tt.want {
				t.Fatalf("answered %v, want %v", parsed.MessageType, tt.want)
			}
			if parsed.TransactionID != tt.req.TransactionID {
				t.Errorf("transaction %v, want the request's %v", parsed.TransactionID, tt.req.TransactionID)
			}
			if sid := parsed.Options.ServerID(); sid == nil || !sid.Equal(server) {
				t.Errorf("server identifier %v, want %v", sid, server)
			}
			if cid := tt.req.Options.ClientID(); cid != nil {
				if got := parsed.Options.ClientID(); got == nil || !got.Equal(cid) {
					t.Errorf("client identifier %v, want %v", got, cid)
				}
			}
			if got := view(t, parsed); !slices.EqualFunc(got, tt.ias, func(a, b iaView) bool {
				return a.status == b.status && slices.Equal(a.addrs, b.addrs)
			}) {
				t.Errorf("IA_NAs %+v, want %+v", got, tt.ias)
			}
			var status iana.StatusCode
			if s := parsed.Options.Status(); s != nil {
				status = s.StatusCode
			}
			if status != tt.status {
				t.Errorf("status %v, want %v", status, tt.status)
			}
			if (parsed.GetOneOption(dhcpv6.OptionRapidCommit) != nil) != (tt.rapid && tt.want == dhcpv6.MessageTypeReply &&
				tt.req.MessageType == dhcpv6.MessageTypeSolicit) {
				t.Errorf("rapid commit option: %v", parsed.GetOneOption(dhcpv6.OptionRapidCommit))
			}
		})
	}
}

// TestReplyOptions: what a client is told with its address, and what a
// stateless client is told.
func TestReplyOptions(t *testing.T) {
	cfg := testConfig()
	tests := []struct {
		name   string
		req    *dhcpv6.Message
		dns    []string
		t1, t2 time.Duration
	}{
		// The servers of the port's subnet only.
		{"stateful", msg(t, dhcpv6.MessageTypeRequest, duidLL(knownMAC), ia(portAddr), dhcpv6.OptServerID(server)),
			[]string{"2001:db8:1::53"}, 30 * time.Minute, 52*time.Minute + 30*time.Second},
		// The client's subnet is unknown: every subnet's, once each.
		{"stateless", msg(t, dhcpv6.MessageTypeInformationRequest, duidLL(infoMAC)),
			[]string{"2001:db8:1::53", "2001:db8:2::53"}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reply, err := dhcpv6.MessageFromBytes(cfg.Reply(tt.req, linkLocal, server).ToBytes())
			if err != nil {
				t.Fatal(err)
			}
			var dns []string
			for _, d := range reply.Options.DNS() {
				dns = append(dns, d.String())
			}
			if !slices.Equal(dns, tt.dns) {
				t.Errorf("DNS %v, want %v", dns, tt.dns)
			}
			if l := reply.Options.DomainSearchList(); l == nil || !slices.Equal(l.Labels, []string{"nsnet.test"}) {
				t.Errorf("domain search list %v", l)
			}
			if tt.t1 != 0 {
				ia := reply.Options.OneIANA()
				if ia == nil || ia.T1 != tt.t1 || ia.T2 != tt.t2 {
					t.Fatalf("IA_NA %v, want T1 %v T2 %v", ia, tt.t1, tt.t2)
				}
			} else if len(reply.Options.IANA()) != 0 {
				t.Errorf("stateless reply with an IA_NA: %v", reply.Options.IANA())
			}
		})
	}
}

func TestClientMACs(t *testing.T) {
	tests := []struct {
		name string
		req  *dhcpv6.Message
		src  netip.Addr
		want []string
	}{
		{"DUID-LL, then the EUI-64 source", msg(t, dhcpv6.MessageTypeSolicit, duidLL(knownMAC)), unknownLL,
			[]string{knownMAC.String(), unknownMAC.String()}},
		{"DUID-LLT of another hardware type is no MAC",
			msg(t, dhcpv6.MessageTypeSolicit, &dhcpv6.DUIDLLT{HWType: iana.HWTypeIEEE802, LinkLayerAddr: knownMAC}), netip.MustParseAddr("fe80::1"),
			nil},
		{"link-layer address option", msg(t, dhcpv6.MessageTypeSolicit, duidUUID, dhcpv6.OptClientLinkLayerAddress(iana.HWTypeEthernet, infoMAC)),
			netip.MustParseAddr("fe80::1"), []string{infoMAC.String()}},
		{"a global source is no EUI-64 link-local", msg(t, dhcpv6.MessageTypeSolicit, duidUUID), netip.MustParseAddr("2001:db8::f816:3eff:fe00:1"),
			nil},
		{"a zone is ignored", msg(t, dhcpv6.MessageTypeSolicit, duidUUID), linkLocal.WithZone("eth0"), []string{knownMAC.String()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, m := range clientMACs(tt.req, tt.src) {
				got = append(got, m.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("clientMACs = %v, want %v", got, tt.want)
			}
		})
	}
}

// FuzzReply: no datagram makes the server's handling panic, and every
// answer it gives is a reply or advertisement that parses back, carries
// our server identifier and the request's transaction.
func FuzzReply(f *testing.F) {
	sid := dhcpv6.OptServerID(server)
	for _, m := range []*dhcpv6.Message{
		msg(f, dhcpv6.MessageTypeSolicit, duidLLT(knownMAC), ia()),
		msg(f, dhcpv6.MessageTypeRequest, duidLL(knownMAC), ia(portAddr), sid),
		msg(f, dhcpv6.MessageTypeRenew, duidLL(unknownMAC), ia(portAddr), sid),
		msg(f, dhcpv6.MessageTypeRebind, duidUUID, ia(portAddr)),
		msg(f, dhcpv6.MessageTypeConfirm, duidLL(knownMAC), ia(portAddr)),
		msg(f, dhcpv6.MessageTypeInformationRequest, duidLL(infoMAC)),
		msg(f, dhcpv6.MessageTypeRelease, duidLL(knownMAC), ia(portAddr), sid),
	} {
		f.Add(m.ToBytes(), linkLocal.AsSlice())
	}
	cfg := testConfig()
	cfg.RapidCommit = true
	f.Fuzz(func(t *testing.T, data, src []byte) {
		from, _ := netip.AddrFromSlice(src)
		reply, req, err := answer(cfg, data, from, server)
		if err != nil || reply == nil {
			return
		}
		if reply.MessageType != dhcpv6.MessageTypeReply && reply.MessageType != dhcpv6.MessageTypeAdvertise {
			t.Fatalf("answered with a %v", reply.MessageType)
		}
		parsed, err := dhcpv6.MessageFromBytes(reply.ToBytes())
		if err != nil {
			t.Fatalf("reply does not parse: %v", err)
		}
		if parsed.TransactionID != req.TransactionID {
			t.Fatalf("transaction %v, want %v", parsed.TransactionID, req.TransactionID)
		}
		if s := parsed.Options.ServerID(); s == nil || !s.Equal(server) {
			t.Fatalf("server identifier %v", s)
		}
		// Only a port's own addresses are ever given with a lifetime.
		for _, ia := range parsed.Options.IANA() {
			for _, a := range ia.Options.Addresses() {
				if a.ValidLifetime != 0 && !a.IPv6Addr.Equal(portAddr.AsSlice()) {
					t.Fatalf("gave %v, which is no port's", a.IPv6Addr)
				}
			}
		}
	})
}
