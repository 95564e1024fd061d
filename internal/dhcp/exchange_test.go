package dhcp

import (
	"log/slog"
	"net/netip"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
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
