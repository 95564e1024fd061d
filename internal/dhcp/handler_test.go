package dhcp

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/nsnet/nsnet/internal/pmap"
)

var (
	knownMAC   = net.HardwareAddr{0xfa, 0x16, 0x3e, 0, 0, 1}
	unknownMAC = net.HardwareAddr{0xfa, 0x16, 0x3e, 0, 0, 9}
	server     = netip.MustParseAddr("10.0.0.254")
)

func testConfig() *Config {
	return &Config{
		LeaseTime: time.Hour,
		Subnets: []Subnet{{
			Prefix:   netip.MustParsePrefix("10.0.0.0/24"),
			ServerIP: server,
			Router:   netip.MustParseAddr("10.0.0.1"),
			DNS:      []netip.Addr{server},
			Domain:   "nsnet.internal.",
			Routes:   []Route{{netip.MustParsePrefix("192.168.50.0/24"), netip.MustParseAddr("10.0.0.10")}},
			MTU:      1400,
		}},
		Hosts: pmap.From(map[string]Host{knownMAC.String(): {IP: netip.MustParseAddr("10.0.0.5"), Hostname: "vm1", Subnet: 0}}),
	}
}

func packet(t testing.TB, typ dhcpv4.MessageType, mac net.HardwareAddr, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	p, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithMessageType(typ), dhcpv4.WithHwAddr(mac)}, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReply(t *testing.T) {
	ip := func(s string) net.IP { return net.ParseIP(s).To4() }
	tests := []struct {
		name   string
		req    *dhcpv4.DHCPv4
		want   dhcpv4.MessageType // MessageTypeNone: no answer
		yiaddr string
	}{
		{"discover from a port", packet(t, dhcpv4.MessageTypeDiscover, knownMAC), dhcpv4.MessageTypeOffer, "10.0.0.5"},
		{"discover from an unknown MAC", packet(t, dhcpv4.MessageTypeDiscover, unknownMAC), dhcpv4.MessageTypeNone, ""},
		{"request after our offer", packet(t, dhcpv4.MessageTypeRequest, knownMAC,
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(server.AsSlice())),
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip("10.0.0.5")))), dhcpv4.MessageTypeAck, "10.0.0.5"},
		{"request after another server's offer", packet(t, dhcpv4.MessageTypeRequest, knownMAC,
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(ip("10.0.0.253"))),
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip("10.0.0.5")))), dhcpv4.MessageTypeNone, ""},
		{"renewal", packet(t, dhcpv4.MessageTypeRequest, knownMAC, dhcpv4.WithClientIP(ip("10.0.0.5"))),
			dhcpv4.MessageTypeAck, "10.0.0.5"},
		{"renewal of an address the port no longer has", packet(t, dhcpv4.MessageTypeRequest, knownMAC,
			dhcpv4.WithClientIP(ip("10.0.0.7"))), dhcpv4.MessageTypeNak, ""},
		{"init-reboot with a wrong address", packet(t, dhcpv4.MessageTypeRequest, knownMAC,
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip("10.0.0.6")))), dhcpv4.MessageTypeNak, ""},
		{"renewal by a deleted port", packet(t, dhcpv4.MessageTypeRequest, unknownMAC, dhcpv4.WithClientIP(ip("10.0.0.8"))),
			dhcpv4.MessageTypeNak, ""},
		{"unknown client on another network", packet(t, dhcpv4.MessageTypeRequest, unknownMAC,
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip("172.16.0.8")))), dhcpv4.MessageTypeNone, ""},
		{"inform", packet(t, dhcpv4.MessageTypeInform, knownMAC, dhcpv4.WithClientIP(ip("10.0.0.5"))), dhcpv4.MessageTypeAck, "0.0.0.0"},
		{"release", packet(t, dhcpv4.MessageTypeRelease, knownMAC, dhcpv4.WithClientIP(ip("10.0.0.5"))), dhcpv4.MessageTypeNone, ""},
	}
	cfg := testConfig()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reply := cfg.Reply(tt.req)
			if tt.want == dhcpv4.MessageTypeNone {
				if reply != nil {
					t.Fatalf("answered %v, want silence", reply.MessageType())
				}
				return
			}
			if reply == nil {
				t.Fatalf("no answer, want %v", tt.want)
			}
			if reply.MessageType() != tt.want {
				t.Fatalf("answered %v, want %v", reply.MessageType(), tt.want)
			}
			if tt.yiaddr != "" && reply.YourIPAddr.String() != tt.yiaddr {
				t.Errorf("yiaddr %v, want %s", reply.YourIPAddr, tt.yiaddr)
			}
			if reply.TransactionID != tt.req.TransactionID {
				t.Errorf("xid %v, want the request's %v", reply.TransactionID, tt.req.TransactionID)
			}
		})
	}
}

// TestLeaseOptions: what a client is told with its address.
func TestLeaseOptions(t *testing.T) {
	reply := testConfig().Reply(packet(t, dhcpv4.MessageTypeDiscover, knownMAC))
	if got := net.IP(reply.SubnetMask()).String(); got != "255.255.255.0" {
		t.Errorf("mask %s", got)
	}
	if r := reply.Router(); len(r) != 1 || r[0].String() != "10.0.0.1" {
		t.Errorf("router %v", r)
	}
	if d := reply.DNS(); len(d) != 1 || d[0].String() != "10.0.0.254" {
		t.Errorf("dns %v", d)
	}
	if reply.DomainName() != "nsnet.internal" || reply.HostName() != "vm1" {
		t.Errorf("domain %q hostname %q", reply.DomainName(), reply.HostName())
	}
	if got := reply.IPAddressLeaseTime(0); got != time.Hour {
		t.Errorf("lease %v", got)
	}
	if mtu := reply.Options.Get(dhcpv4.OptionInterfaceMTU); len(mtu) != 2 || int(mtu[0])<<8|int(mtu[1]) != 1400 {
		t.Errorf("mtu option %v", mtu)
	}
	// RFC 3442: with option 121, the default route must be in it too.
	routes := reply.ClasslessStaticRoute()
	if len(routes) != 2 || routes[0].String() != "route to 192.168.50.0/24 via 10.0.0.10" || routes[1].String() != "route to 0.0.0.0/0 via 10.0.0.1" {
		t.Errorf("classless routes %v", routes)
	}
	if sid := reply.ServerIdentifier(); sid.String() != "10.0.0.254" {
		t.Errorf("server id %v", sid)
	}
}

// TestDestination: RFC 2131 4.1's choice. An OFFER or ACK to a client
// without an address goes to the address offered at the client's
// hardware address, not broadcast (a broadcast reply reaches and wakes
// every client on the network); a client asking for broadcast, a NAK and
// anything without an Ethernet address to send to are broadcast.
func TestDestination(t *testing.T) {
	cfg := testConfig()
	tests := []struct {
		name   string
		req    *dhcpv4.DHCPv4
		wantIP string
		wantHW net.HardwareAddr
	}{
		{"offer", packet(t, dhcpv4.MessageTypeDiscover, knownMAC), "10.0.0.5", knownMAC},
		{"selecting ack", packet(t, dhcpv4.MessageTypeRequest, knownMAC,
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.0.0.5"))),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(server.AsSlice()))), "10.0.0.5", knownMAC},
		{"offer, broadcast asked", packet(t, dhcpv4.MessageTypeDiscover, knownMAC, dhcpv4.WithBroadcast(true)), "255.255.255.255", nil},
		{"offer, not Ethernet", packet(t, dhcpv4.MessageTypeDiscover, knownMAC, dhcpv4.WithHWType(iana.HWTypeIEEE802)), "255.255.255.255", nil},
		{"renewal ack", packet(t, dhcpv4.MessageTypeRequest, knownMAC, dhcpv4.WithClientIP(net.ParseIP("10.0.0.5"))), "10.0.0.5", nil},
		{"nak", packet(t, dhcpv4.MessageTypeRequest, knownMAC, dhcpv4.WithClientIP(net.ParseIP("10.0.0.7"))), "255.255.255.255", nil},
		{"nak, no address yet", packet(t, dhcpv4.MessageTypeRequest, knownMAC,
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.0.0.7")))), "255.255.255.255", nil},
		{"relayed", packet(t, dhcpv4.MessageTypeDiscover, knownMAC, dhcpv4.WithGatewayIP(net.ParseIP("10.0.0.1"))), "10.0.0.1", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reply := cfg.Reply(tt.req)
			if reply == nil {
				t.Fatal("no reply")
			}
			d := destination(tt.req, reply)
			if d.addr.IP.String() != tt.wantIP || d.hw.String() != tt.wantHW.String() {
				t.Errorf("to %v at %q, want %s at %q", d.addr, d.hw, tt.wantIP, tt.wantHW)
			}
			wantPort := 68
			if tt.name == "relayed" {
				wantPort = 67
			}
			if d.addr.Port != wantPort {
				t.Errorf("to port %d, want %d", d.addr.Port, wantPort)
			}
		})
	}
}

// FuzzReply: no input makes the handler panic, and every answer it gives
// is a well-formed reply that parses back.
func FuzzReply(f *testing.F) {
	for _, p := range []*dhcpv4.DHCPv4{
		packet(f, dhcpv4.MessageTypeDiscover, knownMAC),
		packet(f, dhcpv4.MessageTypeRequest, knownMAC, dhcpv4.WithClientIP(net.ParseIP("10.0.0.5"))),
		packet(f, dhcpv4.MessageTypeRequest, unknownMAC, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.0.0.9")))),
		packet(f, dhcpv4.MessageTypeInform, knownMAC),
	} {
		f.Add(p.ToBytes())
	}
	cfg := testConfig()
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := dhcpv4.FromBytes(data)
		if err != nil {
			return
		}
		reply := cfg.Reply(req)
		if reply == nil {
			return
		}
		if reply.OpCode != dhcpv4.OpcodeBootReply {
			t.Fatalf("reply with opcode %v", reply.OpCode)
		}
		if _, err := dhcpv4.FromBytes(reply.ToBytes()); err != nil {
			t.Fatalf("reply does not parse: %v", err)
		}
		destination(req, reply)
	})
}
