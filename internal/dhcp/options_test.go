package dhcp

import (
	"bytes"
	"net"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// TestExtraOptions: a port's extra options, named as Neutron hands them to
// dnsmasq (or by code), reach the client encoded as dnsmasq encodes them.
func TestExtraOptions(t *testing.T) {
	tests := []struct {
		name string
		opt  Option
		code uint8
		want []byte // nil: the option is not sent
	}{
		{"tftp-server", Option{"tftp-server", "123.123.123.123"}, 66, []byte("123.123.123.123")},
		{"bootfile-name", Option{"bootfile-name", "pxelinux.0"}, 67, []byte("pxelinux.0")},
		{"option: prefix", Option{"option:bootfile-name", "pxelinux.0"}, 67, []byte("pxelinux.0")},
		{"ntp servers", Option{"ntp-server", "10.0.0.7,10.0.0.8"}, 42, []byte{10, 0, 0, 7, 10, 0, 0, 8}},
		{"mtu replaces the network's", Option{"mtu", "1300"}, 26, []byte{0x05, 0x14}},
		{"dns replaces the subnet's", Option{"dns-server", "192.0.2.53"}, 6, []byte{192, 0, 2, 53}},
		{"blank router: no default route", Option{"router", ""}, 3, nil},
		{"domain-search", Option{"domain-search", "a.example,b.example"}, 119,
			[]byte("\x01a\x07example\x00\x01b\x07example\x00")},
		{"classless routes", Option{"classless-static-route", "192.168.0.0/16,10.0.0.9,0.0.0.0/0,10.0.0.1"}, 121,
			[]byte{16, 192, 168, 10, 0, 0, 9, 0, 10, 0, 0, 1}},
		{"code of an address option", Option{"150", "10.0.0.5"}, 150, []byte{10, 0, 0, 5}},
		{"code of a string option", Option{"67", "boot.ipxe"}, 67, []byte("boot.ipxe")},
		{"unknown code, number", Option{"224", "300"}, 224, []byte{0x01, 0x2c}},
		{"unknown code, hex", Option{"225", "01:02:ff"}, 225, []byte{1, 2, 0xff}},
		{"unknown code, text", Option{"226", "hello"}, 226, []byte("hello")},
		{"quoted string", Option{"root-path", `"/srv/root"`}, 17, []byte("/srv/root")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			h, _ := cfg.Hosts.Get(knownMAC.String())
			h.Options = []Option{tc.opt}
			cfg.Hosts = cfg.Hosts.Set(knownMAC.String(), h)
			reply := cfg.Reply(packet(t, dhcpv4.MessageTypeDiscover, knownMAC))
			if reply == nil {
				t.Fatal("no offer")
			}
			got := reply.Options.Get(dhcpv4.GenericOptionCode(tc.code))
			if tc.want == nil && reply.Options.Has(dhcpv4.GenericOptionCode(tc.code)) || !bytes.Equal(got, tc.want) {
				t.Errorf("option %d = %v (present %v), want %v", tc.code, got, reply.Options.Has(dhcpv4.GenericOptionCode(tc.code)), tc.want)
			}
		})
	}
}

// TestExtraOptionsHeader: server-ip-address is the header's siaddr, and
// bootfile-name and tftp-server fill file and sname too (PXE); options
// dnsmasq would not take are left out, the others still sent.
func TestExtraOptionsHeader(t *testing.T) {
	cfg := testConfig()
	h, _ := cfg.Hosts.Get(knownMAC.String())
	h.Options = []Option{
		{"server-ip-address", "123.123.123.45"},
		{"bootfile-name", "pxelinux.0"},
		{"tftp-server", "tftp.example"},
		{"test_option_1", "test_value_1"}, // accepted by the API, unknown to dnsmasq
		{"mtu", "not a number"},
		{"0", "1"},
	}
	cfg.Hosts = cfg.Hosts.Set(knownMAC.String(), h)
	reply := cfg.Reply(packet(t, dhcpv4.MessageTypeDiscover, knownMAC))
	if reply == nil {
		t.Fatal("no offer")
	}
	if !reply.ServerIPAddr.Equal(net.IPv4(123, 123, 123, 45)) {
		t.Errorf("siaddr = %v, want 123.123.123.45", reply.ServerIPAddr)
	}
	if reply.BootFileName != "pxelinux.0" || reply.ServerHostName != "tftp.example" {
		t.Errorf("file %q sname %q", reply.BootFileName, reply.ServerHostName)
	}
	if mtu := reply.Options.Get(dhcpv4.OptionInterfaceMTU); !bytes.Equal(mtu, []byte{0x05, 0x78}) {
		t.Errorf("a bad mtu option replaced the network's: %v", mtu)
	}
	if reply.Options.Has(dhcpv4.GenericOptionCode(255)) {
		t.Errorf("server-ip-address sent as an option")
	}
}
