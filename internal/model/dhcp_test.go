package model

import (
	"net/netip"
	"testing"
)

// TestPortHostname: the name of a port's address in nsnet's DNS, by
// precedence: dns_name, the instance's name, the port's name, Neutron's
// host-<address>.
func TestPortHostname(t *testing.T) {
	v4, v6 := netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("2001:db8::5")
	for _, tc := range []struct {
		name     string
		port     Port
		instance string
		addr     netip.Addr
		want     string
	}{
		{"nothing", Port{}, "", v4, "host-10-0-0-5"},
		{"nothing, IPv6", Port{}, "", v6, "host-2001-db8--5"},
		{"a port name not a label", Port{Name: "my port"}, "", v4, "host-10-0-0-5"},
		{"a port name", Port{Name: "Web"}, "", v4, "web"},
		{"an instance's port", Port{Name: "web", DeviceOwner: DeviceOwnerCompute}, "VM1", v4, "vm1"},
		{"an instance name not a label", Port{Name: "web", DeviceOwner: DeviceOwnerCompute}, "vm_1", v4, "web"},
		{"an instance name on another owner's port", Port{DeviceOwner: "network:router_interface"}, "vm1", v4, "host-10-0-0-5"},
		{"a dns_name", Port{Name: "web", DNSName: "alias", DeviceOwner: DeviceOwnerCompute}, "vm1", v4, "alias"},
		{"a dotted PQDN", Port{DNSName: "a.b"}, "", v4, "a.b"},
		{"a FQDN in the domain", Port{DNSName: "a.b.lab.test."}, "", v4, "a.b"},
		{"a FQDN of a domain since changed", Port{DNSName: "a.old.test."}, "", v4, "a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := PortHostname(tc.port, tc.addr, tc.instance, "lab.test."); got != tc.want {
				t.Errorf("PortHostname = %q, want %q", got, tc.want)
			}
		})
	}
}
