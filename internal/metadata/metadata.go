// Package metadata is nsnet's instance metadata service, the one Nova
// serves at http://169.254.169.254/ and, since Neutron's Victoria, at
// http://[fe80::a9fe:a9fe]/ on the instance's link: an instance asks, and
// gets its own data only, in OpenStack form (/openstack/latest/meta_data.json,
// network_data.json, user_data) and EC2 form (/latest/meta-data/…,
// /latest/user-data).
//
// It owns identifying the caller and answering it. A caller is the
// instance port holding the request's source address on the network the
// request came from (a router knows it by the qr- address the redirect
// delivered it to; a qdhcp namespace serves one network; an IPv6
// listener on fe80::a9fe:a9fe serves the one network of its interface):
// an address nsnet does not know, on that network, gets 404, never
// another instance's data. Over IPv6 the source is the port's link-local
// address (EUI-64 of its MAC, see LinkLocal) or one of its global ones.
// Listeners are opened inside router and qdhcp namespaces through
// internal/netns. It must not read the store or program the kernel: the
// agent hands it a Directory and each listener its networks.
package metadata

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// RouterPort is the port the router's nft table redirects
// 169.254.169.254:80 to (nat.MetadataPort), as Neutron's does.
const RouterPort = 9697

// Addr is the metadata service's well-known address.
var Addr = netip.MustParseAddr("169.254.169.254")

// Addr6 is its IPv6 address, link-local, as Neutron has it since
// Victoria: an instance reaches it as [fe80::a9fe:a9fe%eth0]:80.
var Addr6 = netip.MustParseAddr("fe80::a9fe:a9fe")

// Prefix6 is how the dataplane configures Addr6 on the interface that
// serves a network (the qdhcp port's, or a router's qr-), as Neutron
// does: a /64 of the link-local prefix, without duplicate address
// detection (nodad), so that it is usable at once. One interface per
// network only: two on one link would be duplicates.
var Prefix6 = netip.PrefixFrom(Addr6, 64)

// Port6 is where the IPv6 service listens: port 80 itself, since IPv6 is
// not NATed (no redirect to RouterPort).
const Port6 = 80

// AvailabilityZone of every nsnet instance.
const AvailabilityZone = "nsnet"

// Instance is what one instance port's metadata holds.
type Instance struct {
	ID        string
	Name      string
	ProjectID string
	Hostname  string // the instance's DNS label
	Domain    string // the network's DNS domain, without the final dot
	UserData  string
	Meta      map[string]string
	SSHKeys   []string
	// LocalIPv4 is the port's IPv4 address (the one the request came
	// from, when it came over IPv4); PublicIPv4 its floating IP, if any.
	// Either may be invalid: none.
	LocalIPv4  netip.Addr
	PublicIPv4 netip.Addr
	Ports      []Port // every port of the instance, in interface order
	DNS        []netip.Addr
}

// Port is one interface of an instance, for network_data.json.
type Port struct {
	ID        string
	MAC       string
	MTU       int
	NetworkID string
	Addrs     []netip.Prefix // IPv4 and IPv6
	Gateway   netip.Addr     // IPv4; invalid: none
	// Gateway6 is the IPv6 default gateway; invalid: none.
	Gateway6 netip.Addr
	// Modes holds the ipv6_address_mode of the subnet of each IPv6
	// address of Addrs ("slaac", "dhcpv6-stateful", "dhcpv6-stateless";
	// absent: static), which network_data.json's type says as Nova does
	// ("ipv6_slaac", …, "ipv6").
	Modes map[netip.Addr]string
}

// Keys are the Directory keys of a port on networkID with MAC mac and
// fixed addresses addrs: each address, and, when it has an IPv6 one, the
// EUI-64 link-local address its instance's kernel derives from the MAC
// (the usual source of a request to Addr6).
func Keys(networkID, mac string, addrs []netip.Addr) ([]Key, error) {
	var keys []Key
	v6 := false
	for _, a := range addrs {
		keys = append(keys, Key{NetworkID: networkID, Addr: a.Unmap().WithZone("")})
		v6 = v6 || a.Is6() && !a.Is4In6()
	}
	if v6 {
		hw, err := net.ParseMAC(mac)
		if err != nil {
			return nil, fmt.Errorf("port MAC %q: %w", mac, err)
		}
		ll, err := LinkLocal(hw)
		if err != nil {
			return nil, err
		}
		keys = append(keys, Key{NetworkID: networkID, Addr: ll})
	}
	return keys, nil
}

// LinkLocal is the IPv6 link-local address the kernel of an instance
// gives an interface with MAC mac (modified EUI-64, RFC 4291 appendix A):
// the source of its requests to Addr6, and so a Directory key of the
// port.
func LinkLocal(mac net.HardwareAddr) (netip.Addr, error) {
	if len(mac) != 6 {
		return netip.Addr{}, fmt.Errorf("MAC %q: want 6 bytes for an EUI-64 link-local address", mac)
	}
	b := [16]byte{0: 0xfe, 1: 0x80}
	b[8], b[9], b[10] = mac[0]^0x02, mac[1], mac[2]
	b[11], b[12] = 0xff, 0xfe
	b[13], b[14], b[15] = mac[3], mac[4], mac[5]
	return netip.AddrFrom16(b), nil
}

// Directory maps each (network, address) to the instance port holding it.
type Directory map[Key]*Instance

// Key is an address on a network.
type Key struct {
	NetworkID string
	Addr      netip.Addr
}

// Response is one answer: a status and a body with its type.
type Response struct {
	Status      int
	ContentType string
	Body        []byte
}

func text(s string) Response { return Response{200, "text/plain; charset=utf-8", []byte(s)} }

var notFound = Response{404, "text/plain; charset=utf-8", []byte("404 Not Found\n")}

// Answer is the response to a GET of path by inst (nil: nobody nsnet
// knows). It is pure: every path is matched exactly, so that no path can
// reach another instance's data or anything but these documents.
func Answer(inst *Instance, path string) Response {
	if inst == nil {
		return notFound
	}
	switch path {
	case "/":
		return text("latest\n")
	case "/openstack", "/openstack/":
		return text("latest\n")
	case "/openstack/latest", "/openstack/latest/":
		docs := "meta_data.json\nnetwork_data.json\n"
		if inst.UserData != "" {
			docs += "user_data\n"
		}
		return text(docs)
	case "/openstack/latest/meta_data.json":
		return jsonResponse(inst.openStackMeta())
	case "/openstack/latest/network_data.json":
		return jsonResponse(inst.networkData())
	case "/openstack/latest/user_data", "/latest/user-data":
		if inst.UserData == "" {
			return notFound
		}
		return Response{200, "application/octet-stream", []byte(inst.UserData)}
	case "/latest", "/latest/":
		return text("meta-data/\nuser-data\n")
	case "/latest/meta-data", "/latest/meta-data/":
		return text(strings.Join(ec2Keys, "\n") + "\n")
	}
	if key, ok := strings.CutPrefix(path, "/latest/meta-data/"); ok {
		if v, ok := inst.ec2(key); ok {
			return text(v)
		}
	}
	return notFound
}

var ec2Keys = []string{"ami-launch-index", "hostname", "instance-id", "local-hostname", "local-ipv4", "placement/", "public-hostname", "public-ipv4", "public-keys/"}

// ec2 is one EC2 meta-data value.
func (inst *Instance) ec2(key string) (string, bool) {
	switch key {
	case "ami-launch-index":
		return "0", true
	case "instance-id":
		return ec2ID(inst.ID), true
	case "hostname", "local-hostname", "public-hostname":
		return inst.fqdn(), true
	case "local-ipv4":
		if !inst.LocalIPv4.IsValid() {
			return "", true
		}
		return inst.LocalIPv4.String(), true
	case "public-ipv4":
		if !inst.PublicIPv4.IsValid() {
			return "", true
		}
		return inst.PublicIPv4.String(), true
	case "placement", "placement/":
		return "availability-zone\n", true
	case "placement/availability-zone":
		return AvailabilityZone, true
	case "public-keys", "public-keys/":
		var b strings.Builder
		for i := range inst.SSHKeys {
			fmt.Fprintf(&b, "%d=key-%d\n", i, i)
		}
		return b.String(), true
	}
	if rest, ok := strings.CutPrefix(key, "public-keys/"); ok {
		for i, k := range inst.SSHKeys {
			if rest == fmt.Sprintf("%d/openssh-key", i) {
				return k + "\n", true
			}
			if rest == fmt.Sprintf("%d", i) || rest == fmt.Sprintf("%d/", i) {
				return "openssh-key\n", true
			}
		}
	}
	return "", false
}

// ec2ID is the EC2 form of an instance id: i- and 8 hex digits of it.
func ec2ID(id string) string {
	hex := strings.ReplaceAll(id, "-", "")
	if len(hex) > 8 {
		hex = hex[:8]
	}
	return "i-" + hex
}

func (inst *Instance) fqdn() string {
	if inst.Domain == "" {
		return inst.Hostname
	}
	return inst.Hostname + "." + inst.Domain
}

func (inst *Instance) openStackMeta() any {
	keys := map[string]string{}
	var list []map[string]string
	for i, k := range inst.SSHKeys {
		name := fmt.Sprintf("key-%d", i)
		keys[name] = k
		list = append(list, map[string]string{"name": name, "type": "ssh", "data": k})
	}
	meta := inst.Meta
	if meta == nil {
		meta = map[string]string{}
	}
	out := map[string]any{
		"uuid":              inst.ID,
		"name":              inst.Name,
		"hostname":          inst.fqdn(),
		"availability_zone": AvailabilityZone,
		"project_id":        inst.ProjectID,
		"launch_index":      0,
		"meta":              meta,
		"public_keys":       keys,
	}
	if len(list) > 0 {
		out["keys"] = list
	}
	return out
}

// networkData is network_data.json: a link per port, its addresses as
// static networks, and the DNS servers.
func (inst *Instance) networkData() any {
	links, networks := []any{}, []any{}
	for _, p := range inst.Ports {
		link := "tap" + shortID(p.ID)
		links = append(links, map[string]any{"id": link, "type": "phy", "ethernet_mac_address": p.MAC, "mtu": p.MTU, "vif_id": p.ID})
		first4, first6 := true, true
		for _, a := range p.Addrs {
			n := map[string]any{
				"id": fmt.Sprintf("network%d", len(networks)), "link": link,
				"ip_address": a.Addr().String(), "netmask": netmask(a),
				"network_id": p.NetworkID, "routes": []any{},
			}
			if a.Addr().Is4() {
				n["type"] = "ipv4"
				if first4 && p.Gateway.IsValid() {
					n["routes"] = []any{map[string]any{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": p.Gateway.String()}}
				}
				first4 = false
			} else {
				n["type"] = "ipv6"
				if mode := p.Modes[a.Addr()]; mode != "" {
					n["type"] = "ipv6_" + mode
				}
				if first6 && p.Gateway6.IsValid() {
					n["routes"] = []any{map[string]any{"network": "::", "netmask": "::", "gateway": p.Gateway6.String()}}
				}
				first6 = false
			}
			networks = append(networks, n)
		}
	}
	services := []any{}
	for _, d := range inst.DNS {
		services = append(services, map[string]any{"type": "dns", "address": d.String()})
	}
	return map[string]any{"links": links, "networks": networks, "services": services}
}

// netmask is the mask of a's prefix length in a's family: 255.255.255.0,
// ffff:ffff:ffff:ffff::.
func netmask(a netip.Prefix) string {
	ip := a.Addr().AsSlice()
	m := net.CIDRMask(a.Bits(), len(ip)*8)
	addr, _ := netip.AddrFromSlice(m)
	return addr.String()
}

func shortID(id string) string {
	if len(id) > 11 {
		return id[:11]
	}
	return id
}

func jsonResponse(v any) Response {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return Response{500, "text/plain; charset=utf-8", []byte(err.Error())}
	}
	return Response{200, "application/json", append(b, '\n')}
}
