package dhcp

import (
	"bytes"
	"log/slog"
	"net"
	"net/netip"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// BenchmarkExchange is the server's work for one DISCOVER besides its
// system calls: parse it, decide the OFFER, encode it into an IPv4/UDP
// packet for the client's hardware address.
func BenchmarkExchange(b *testing.B) {
	s := &Server{log: slog.New(slog.DiscardHandler), ifname: "bench"}
	s.SetConfig(testConfig())
	discover := packet(b, dhcpv4.MessageTypeDiscover, knownMAC).ToBytes()
	b.ReportAllocs()
	for b.Loop() {
		req, reply := s.handle(discover)
		if reply == nil {
			b.Fatal("no reply")
		}
		_ = udp4(server, netip.MustParseAddr("10.0.0.5"), 67, 68, reply.ToBytes())
		_ = req
	}
}

// TestNewReplyAsLibrary: newReply gives the very reply
// dhcpv4.NewReplyFromRequest does, byte for byte, whatever the request
// carries that a reply copies.
func TestNewReplyAsLibrary(t *testing.T) {
	ip := func(s string) net.IP { return net.ParseIP(s).To4() }
	tests := []struct {
		name string
		mods []dhcpv4.Modifier
	}{
		{"plain", nil},
		{"broadcast flag", []dhcpv4.Modifier{dhcpv4.WithBroadcast(true)}},
		{"ciaddr", []dhcpv4.Modifier{dhcpv4.WithClientIP(ip("10.0.0.5"))}},
		{"client identifier", []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClientIdentifier([]byte{1, 0xfa, 0x16, 0x3e, 0, 0, 1}))}},
		{"relayed", []dhcpv4.Modifier{dhcpv4.WithGatewayIP(ip("10.0.1.1")),
			dhcpv4.WithOption(dhcpv4.OptRelayAgentInfo(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(1), []byte("circuit"))))}},
		{"other hardware", []dhcpv4.Modifier{dhcpv4.WithHWType(iana.HWTypeIEEE802)}},
		{"a reply as request", []dhcpv4.Modifier{dhcpv4.WithReply(packet(t, dhcpv4.MessageTypeOffer, knownMAC))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := packet(t, dhcpv4.MessageTypeRequest, knownMAC, tt.mods...)
			mods := []dhcpv4.Modifier{dhcpv4.WithMessageType(dhcpv4.MessageTypeAck), dhcpv4.WithYourIP(ip("10.0.0.5"))}
			want, err := dhcpv4.NewReplyFromRequest(req, mods...)
			if err != nil {
				t.Fatal(err)
			}
			if got := newReply(req, mods...); !bytes.Equal(got.ToBytes(), want.ToBytes()) {
				t.Errorf("reply\n%v\nwant\n%v", got.Summary(), want.Summary())
			}
		})
	}
}
