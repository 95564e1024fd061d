package api_test

import (
	"strings"
	"testing"
)

// hostNAT is the API side of seeds 000–002: a host-gateway network lan
// (192.168.24.0/24) leaving by uplink "up0", an instance port on it, and an
// external network public bridged onto "br-up".
type hostNAT struct {
	lan, port, portIP, public, plain, lan2, overlap string
	// dual is a network with an IPv6 subnet.
	dual string
}

func (h *harness) hostNATFixture() hostNAT {
	h.t.Helper()
	var f hostNAT
	f.lan = h.create("networks", "network", map[string]any{"name": "lan", "nsnet:host_gateway": true, "nsnet:uplink": "up0"})["id"].(string)
	h.create("subnets", "subnet", map[string]any{"network_id": f.lan, "cidr": "192.168.24.0/24"})
	p := h.create("ports", "port", map[string]any{"network_id": f.lan})
	f.port = p["id"].(string)
	f.portIP = p["fixed_ips"].([]any)[0].(map[string]any)["ip_address"].(string)
	f.public = h.create("networks", "network", map[string]any{"name": "public", "router:external": true, "nsnet:uplink": "br-up"})["id"].(string)
	f.plain = h.create("networks", "network", map[string]any{"name": "plain"})["id"].(string)
	h.create("subnets", "subnet", map[string]any{"network_id": f.plain, "cidr": "10.0.0.0/24"})
	f.lan2 = h.create("networks", "network", map[string]any{"name": "lan2", "nsnet:host_gateway": true, "nsnet:uplink": "up0"})["id"].(string)
	f.overlap = h.create("networks", "network", map[string]any{"name": "overlap"})["id"].(string)
	h.create("subnets", "subnet", map[string]any{"network_id": f.overlap, "cidr": "192.168.0.0/16"})
	f.dual = h.create("networks", "network", map[string]any{"name": "dual"})["id"].(string)
	h.create("subnets", "subnet", map[string]any{"network_id": f.dual, "cidr": "10.9.0.0/24"})
	h.create("subnets", "subnet", map[string]any{"network_id": f.dual, "cidr": "2001:db8:9::/64", "ip_version": 6})
	return f
}

func TestHostNATShapes(t *testing.T) {
	h := newHarness(t)
	for _, alias := range []string{"nsnet-uplink", "nsnet-host-nat"} {
		if r := h.do("GET", "/v2.0/extensions/"+alias, nil); r.status != 200 {
			t.Errorf("extension %s: %d", alias, r.status)
		}
	}
	f := h.hostNATFixture()
	n := h.do("GET", "/v2.0/networks/"+f.lan, nil).body["network"].(map[string]any)
	if n["nsnet:host_gateway"] != true || n["nsnet:uplink"] != "up0" || n["nsnet:snat_address"] != nil {
		t.Errorf("host-gateway network = %v", n)
	}
	plain := h.do("GET", "/v2.0/networks/"+f.plain, nil).body["network"].(map[string]any)
	if plain["nsnet:host_gateway"] != false || plain["nsnet:uplink"] != nil {
		t.Errorf("plain network = %v", plain)
	}
	r := h.do("PUT", "/v2.0/networks/"+f.lan, map[string]any{"network": map[string]any{"nsnet:snat_address": "198.51.100.11"}})
	if r.status != 200 || r.body["network"].(map[string]any)["nsnet:snat_address"] != "198.51.100.11" {
		t.Errorf("set snat_address: %d %v", r.status, r.body)
	}
	// Two host-gateway networks may leave by the same uplink (lan2).
	h.create("subnets", "subnet", map[string]any{"network_id": f.lan2, "cidr": "192.168.25.0/24"})

	pp := h.create("nsnet/published-ports", "published_port", map[string]any{"protocol": "tcp", "host_port": 8080,
		"internal_port_id": f.port, "internal_port": 80})
	if pp["internal_ip_address"] != f.portIP || pp["host_port"] != 8080.0 || pp["internal_port"] != 80.0 || pp["project_id"] != "admin" {
		t.Errorf("published port = %v", pp)
	}
	byAddr := h.create("nsnet/published-ports", "published_port", map[string]any{"protocol": "udp", "host_port_range": "5000:5009",
		"internal_ip_address": "192.168.24.50", "internal_port_range": "6000:6009"})
	if byAddr["host_port_range"] != "5000:5009" || byAddr["internal_port_id"] != "" {
		t.Errorf("published range = %v", byAddr)
	}
	if list := h.do("GET", "/v2.0/nsnet/published-ports", nil).body["published_ports"].([]any); len(list) != 2 {
		t.Errorf("list = %v", list)
	}
	// Deleting the port unpublishes what went to it.
	if r := h.do("DELETE", "/v2.0/ports/"+f.port, nil); r.status != 204 {
		t.Fatalf("delete port: %d", r.status)
	}
	if r := h.do("GET", "/v2.0/nsnet/published-ports/"+pp["id"].(string), nil); r.status != 404 {
		t.Errorf("published port outlived its port: %d", r.status)
	}
	if r := h.do("DELETE", "/v2.0/nsnet/published-ports/"+byAddr["id"].(string), nil); r.status != 204 {
		t.Errorf("delete: %d %v", r.status, r.body)
	}
}

func TestHostNATBadInputIsRefusedWithoutChange(t *testing.T) {
	h := newHarness(t)
	f := h.hostNATFixture()
	h.create("nsnet/published-ports", "published_port", map[string]any{"protocol": "tcp", "host_port": 8080, "internal_port_id": f.port, "internal_port": 80})
	network := func(attrs map[string]any) map[string]any { return map[string]any{"network": attrs} }
	published := func(attrs map[string]any) map[string]any {
		body := map[string]any{"protocol": "tcp", "host_port": 9090, "internal_port_id": f.port, "internal_port": 80}
		for k, v := range attrs {
			if v == nil {
				delete(body, k)
			} else {
				body[k] = v
			}
		}
		return map[string]any{"published_port": body}
	}
	lan, plain := "/v2.0/networks/"+f.lan, "/v2.0/networks/"+f.plain
	pp := "/v2.0/nsnet/published-ports"
	cases := []refusal{
		// nsnet:uplink
		{"uplink too long", "POST", "/v2.0/networks", network(map[string]any{"router:external": true, "nsnet:uplink": "a-very-long-name0"}), 400, "HTTPBadRequest", "Invalid input for nsnet:uplink. Reason: 'a-very-long-name0' is longer than the 15 characters"},
		{"uplink with a slash", "PUT", "/v2.0/networks/" + f.public, network(map[string]any{"nsnet:uplink": "eth0/1"}), 400, "HTTPBadRequest", "Invalid input for nsnet:uplink. Reason: 'eth0/1' is not a valid interface name"},
		{"uplink with whitespace", "PUT", "/v2.0/networks/" + f.public, network(map[string]any{"nsnet:uplink": "eth 0"}), 400, "HTTPBadRequest", "Invalid input for nsnet:uplink. Reason: 'eth 0' is not a valid interface name: it contains whitespace"},
		{"uplink empty", "PUT", "/v2.0/networks/" + f.public, network(map[string]any{"nsnet:uplink": ""}), 400, "HTTPBadRequest", "Invalid input for nsnet:uplink"},
		{"uplink not a string", "PUT", "/v2.0/networks/" + f.public, network(map[string]any{"nsnet:uplink": 7}), 400, "HTTPBadRequest", "Invalid input for nsnet:uplink"},
		{"uplink on a tenant network", "PUT", plain, network(map[string]any{"nsnet:uplink": "eth1"}), 400, "InvalidInput", "nsnet:uplink needs a router:external network"},
		{"uplink bridged twice", "POST", "/v2.0/networks", network(map[string]any{"router:external": true, "nsnet:uplink": "br-up"}), 409, "UplinkInUse", "br-up"},
		{"bridged uplink routed by a host gateway", "PUT", lan, network(map[string]any{"nsnet:uplink": "br-up"}), 409, "UplinkInUse", "br-up"},
		{"making the uplink's network internal", "PUT", "/v2.0/networks/" + f.public, network(map[string]any{"router:external": false}), 400, "InvalidInput", "nsnet:uplink needs"},
		// nsnet:host_gateway
		{"host gateway not a bool", "PUT", plain, network(map[string]any{"nsnet:host_gateway": "maybe"}), 400, "HTTPBadRequest", "Invalid input for nsnet:host_gateway. Reason: 'maybe' cannot be converted to boolean"},
		{"host gateway on an external network", "PUT", "/v2.0/networks/" + f.public, network(map[string]any{"nsnet:host_gateway": true}), 400, "InvalidInput", "nsnet:host_gateway cannot be set on a router:external network"},
		{"host gateway off under a published port", "PUT", lan, network(map[string]any{"nsnet:host_gateway": false, "nsnet:uplink": nil}), 409, "HostGatewayInUse", f.portIP},
		{"host gateway subnet overlapping another's", "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": f.lan2, "cidr": "192.168.24.128/25"}},
			400, "InvalidInput", "overlaps subnet"},
		{"host gateway on a network overlapping another's", "PUT", "/v2.0/networks/" + f.overlap, network(map[string]any{"nsnet:host_gateway": true}), 400, "InvalidInput", "overlaps subnet"},
		// The host routes and translates IPv4 only (docs/NAT.md).
		{"IPv6 subnet on a host gateway network", "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": f.lan, "cidr": "2001:db8:24::/64", "ip_version": 6}},
			400, "InvalidInput", "Invalid input for operation: ip_version 6 is not supported on a network with nsnet:host_gateway"},
		{"IPv6 SLAAC subnet on a host gateway network", "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": f.lan2, "cidr": "2001:db8:25::/64", "ip_version": 6,
			"ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"}}, 400, "InvalidInput", "ip_version 6 is not supported on a network with nsnet:host_gateway"},
		{"host gateway on a network with an IPv6 subnet", "PUT", "/v2.0/networks/" + f.dual, network(map[string]any{"nsnet:host_gateway": true}), 400, "InvalidInput",
			"nsnet:host_gateway cannot be set on a network with an IPv6 subnet (2001:db8:9::/64)"},
		// nsnet:snat_address
		{"snat address not an address", "PUT", lan, network(map[string]any{"nsnet:snat_address": "1.2.3"}), 400, "HTTPBadRequest", "Invalid input for nsnet:snat_address. Reason: '1.2.3' is not a valid IP address"},
		{"snat address IPv6", "PUT", lan, network(map[string]any{"nsnet:snat_address": "2001:db8::1"}), 400, "HTTPBadRequest", "Invalid input for nsnet:snat_address. Reason: '2001:db8::1' is not an IPv4 address"},
		{"snat address without host gateway", "PUT", plain, network(map[string]any{"nsnet:snat_address": "198.51.100.11"}), 400, "InvalidInput", "nsnet:snat_address needs nsnet:host_gateway and nsnet:uplink"},
		// published ports
		{"published protocol", "POST", pp, published(map[string]any{"protocol": "icmp"}), 400, "HTTPBadRequest", "Invalid input for protocol. Reason: 'icmp' is not in ['tcp', 'udp']"},
		{"published without protocol", "POST", pp, published(map[string]any{"protocol": nil}), 400, "HTTPBadRequest", "Required attribute 'protocol' not specified"},
		{"published host port 0", "POST", pp, published(map[string]any{"host_port": 0}), 400, "HTTPBadRequest", "Invalid input for host_port. Reason: '0' is not in range 1 through 65535"},
		{"published host port too big", "POST", pp, published(map[string]any{"host_port": 70000}), 400, "HTTPBadRequest", "Invalid input for host_port"},
		{"published without host port", "POST", pp, published(map[string]any{"host_port": nil}), 400, "BadRequest", "You must specify either host_port or host_port_range"},
		{"published port and range", "POST", pp, published(map[string]any{"host_port_range": "9000:9001"}), 400, "BadRequest", "You cannot specify both host_port and host_port_range"},
		{"published bad range", "POST", pp, published(map[string]any{"host_port": nil, "host_port_range": "9:1"}), 400, "HTTPBadRequest", "Invalid input for host_port_range"},
		{"published ranges differ", "POST", pp, published(map[string]any{"host_port": nil, "host_port_range": "9000:9002", "internal_port": nil, "internal_port_range": "80:81"}), 400, "BadRequest", "The host ports (9000:9002) and internal ports (80:81) must be as many"},
		{"published range to one port", "POST", pp, published(map[string]any{"host_port": nil, "host_port_range": "9000:9002"}), 400, "BadRequest", "must be as many"},
		{"published without internal port", "POST", pp, published(map[string]any{"internal_port": nil}), 400, "BadRequest", "You must specify either internal_port or internal_port_range"},
		{"published to an unknown port", "POST", pp, published(map[string]any{"internal_port_id": "nope"}), 404, "PortNotFound", "Port nope could not be found."},
		{"published to nothing", "POST", pp, published(map[string]any{"internal_port_id": nil}), 400, "BadRequest", "You must specify either internal_port_id or internal_ip_address"},
		{"published to an address not the port's", "POST", pp, published(map[string]any{"internal_ip_address": "192.168.24.99"}), 400, "BadRequest", "is not a fixed IP of port"},
		{"published to a network the host does not gateway", "POST", pp, published(map[string]any{"internal_port_id": nil, "internal_ip_address": "10.0.0.5"}), 400, "BadRequest", "is not on a subnet of a network with nsnet:host_gateway"},
		{"published IPv6 address", "POST", pp, published(map[string]any{"internal_ip_address": "2001:db8::5"}), 400, "HTTPBadRequest", "Invalid input for internal_ip_address"},
		{"published host port taken", "POST", pp, published(map[string]any{"host_port": 8080}), 409, "PublishedPortInUse", "tcp 8080:8080 is already published"},
		{"published range over a taken port", "POST", pp, published(map[string]any{"host_port": nil, "host_port_range": "8000:8099", "internal_port": nil, "internal_port_range": "1000:1099"}), 409, "PublishedPortInUse", "already published"},
		{"published unknown attribute", "POST", pp, published(map[string]any{"colour": "red"}), 400, "HTTPBadRequest", "Unrecognized attribute(s) 'colour'"},
		{"unknown published port", "DELETE", pp + "/nope", nil, 404, "PublishedPortNotFound", "Published port nope could not be found."},
	}
	h.checkRefusals(t, cases)
	// UDP 8080 is another port than TCP 8080.
	r := h.do("POST", pp, published(map[string]any{"protocol": "udp", "host_port": 8080}))
	if r.status != 201 {
		t.Errorf("udp 8080 beside tcp 8080: %d %v", r.status, r.body)
	}
	if !strings.Contains(r.body["published_port"].(map[string]any)["protocol"].(string), "udp") {
		t.Errorf("published = %v", r.body)
	}
}

// TestHostNATPolicy: the host attributes and published ports change the
// host, not a project's world: an admin's alone.
func TestHostNATPolicy(t *testing.T) {
	h := newTenants(t, nil)
	net := h.create(owner, "networks", "network", map[string]any{"name": "net"})
	lan := h.create(admin, "networks", "network", map[string]any{"name": "lan", "nsnet:host_gateway": true})
	h.create(admin, "subnets", "subnet", map[string]any{"network_id": lan, "cidr": "192.168.24.0/24"})
	for _, tc := range []struct {
		name, method, path string
		body               any
	}{
		{"uplink on create", "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"router:external": false, "nsnet:uplink": "eth0"}}},
		{"host gateway on create", "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"nsnet:host_gateway": true}}},
		{"host gateway on update", "PUT", "/v2.0/networks/" + net, map[string]any{"network": map[string]any{"nsnet:host_gateway": true}}},
		{"snat address on update", "PUT", "/v2.0/networks/" + net, map[string]any{"network": map[string]any{"nsnet:snat_address": "198.51.100.9"}}},
		{"publish a host port", "POST", "/v2.0/nsnet/published-ports", map[string]any{"published_port": map[string]any{
			"protocol": "tcp", "host_port": 8080, "internal_ip_address": "192.168.24.10", "internal_port": 80}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.as(owner, tc.method, tc.path, tc.body)
			if typ, msg := neutronError(r); r.status != 403 || typ != "PolicyNotAuthorized" {
				t.Errorf("got %d %s %q, want 403 PolicyNotAuthorized", r.status, typ, msg)
			}
		})
	}
}
