package topology

import (
	"reflect"
	"strings"
	"testing"

	"github.com/nsnet/nsnet/internal/client"
	"github.com/nsnet/nsnet/internal/model"
)

// seedHostNAT is seed 000's shape: the host as a network's gateway, its
// uplink, and a published port.
const seedHostNAT = `
name: hn
networks:
  - name: lan
    host_gateway: true
    uplink: eth0
    snat_address: 192.0.2.10
    subnets: [{name: lan-v4, cidr: 192.168.45.0/24, gateway_ip: 192.168.45.2}]
ports:
  - {name: vm-eth0, network: lan, fixed_ips: [{ip_address: 192.168.45.3}]}
published_ports:
  - {protocol: tcp, host_port: 8080, internal_port: 80, port: vm-eth0}
  - {protocol: udp, host_port: 5353, internal_port: 53, internal_ip_address: 192.168.45.3}
`

const markHN = "nsnet:topology=hn"

func hostNATState() State {
	std := model.Standard{Description: markHN}
	gw, uplink, snat := "192.168.45.2", "eth0", "192.0.2.10"
	http, dns80, dns := 8080, 80, 5353
	in53 := 53
	return State{
		Networks: []model.Network{{ID: "n-lan", Name: "lan", AdminStateUp: true, MTU: 1500, PortSecurityEnabled: true,
			HostGateway: true, Uplink: &uplink, SNATAddress: &snat, Standard: std}},
		Subnets: []model.Subnet{{ID: "s-lan", Name: "lan-v4", NetworkID: "n-lan", IPVersion: 4, CIDR: "192.168.45.0/24",
			GatewayIP: &gw, EnableDHCP: true, Standard: std}},
		Ports: []model.Port{{ID: "p-vm", Name: "vm-eth0", NetworkID: "n-lan", AdminStateUp: true, PortSecurityEnabled: true,
			FixedIPs: []model.FixedIP{{SubnetID: "s-lan", IPAddress: "192.168.45.3"}}, Standard: std}},
		PublishedPorts: []model.PublishedPort{
			{ID: "pp-http", Protocol: "tcp", HostPort: &http, InternalPort: &dns80, InternalPortID: "p-vm", InternalIPAddress: "192.168.45.3", Description: markHN},
			{ID: "pp-dns", Protocol: "udp", HostPort: &dns, InternalPort: &in53, InternalIPAddress: "192.168.45.3", Description: markHN},
		},
	}
}

func TestPlanHostNAT(t *testing.T) {
	p, err := PlanApply(mustParse(t, seedHostNAT), State{}, ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"create network lan", "create subnet lan-v4", "create port vm-eth0",
		"create published_port tcp/8080", "create published_port udp/5353"}
	if got := lines(p); !reflect.DeepEqual(got, want) {
		t.Fatalf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for i, body := range map[int]map[string]any{
		0: {"name": "lan", "description": markHN, "nsnet:host_gateway": true, "nsnet:uplink": "eth0", "nsnet:snat_address": "192.0.2.10"},
		3: {"description": markHN, "protocol": "tcp", "host_port": 8080, "internal_port": 80,
			"internal_port_id": Ref{client.Ports, "vm-eth0", ""}, "internal_ip_address": nil},
		4: {"description": markHN, "protocol": "udp", "host_port": 5353, "internal_port": 53,
			"internal_port_id": nil, "internal_ip_address": "192.168.45.3"},
	} {
		if !reflect.DeepEqual(p.Steps[i].Attrs, body) {
			t.Errorf("%s body:\n got %#v\nwant %#v", lines(p)[i], p.Steps[i].Attrs, body)
		}
	}

	// Applied, it changes nothing; edits become updates.
	if p, err := PlanApply(mustParse(t, seedHostNAT), hostNATState(), ApplyOptions{Prune: true}); err != nil || p.Changes() {
		t.Errorf("applying to the state it makes: %v\n%s", err, strings.Join(lines(p), "\n"))
	}
	edited := strings.NewReplacer("uplink: eth0", "uplink: eth1", "snat_address: 192.0.2.10", `snat_address: ""`,
		"internal_port: 80", "internal_port: 81").Replace(seedHostNAT)
	p, err = PlanApply(mustParse(t, edited), hostNATState(), ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"update network lan: nsnet:uplink eth0 → eth1; nsnet:snat_address 192.0.2.10 → ", "unchanged subnet lan-v4",
		"unchanged port vm-eth0", "update published_port tcp/8080: internal_port 80 → 81", "unchanged published_port udp/5353"}
	if got := lines(p); !reflect.DeepEqual(got, want) {
		t.Fatalf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := p.Steps[0].Attrs; got["nsnet:uplink"] != "eth1" || got["nsnet:snat_address"] != nil {
		t.Errorf("network update = %#v", got)
	}
	// Pruned and destroyed like the rest.
	p, err = PlanDestroy(mustParse(t, seedHostNAT), hostNATState())
	if err != nil {
		t.Fatal(err)
	}
	if got := lines(p); got[0] != "delete published_port udp/5353" || got[1] != "delete published_port tcp/8080" {
		t.Errorf("destroy starts with:\n%s", strings.Join(got, "\n"))
	}
}

func TestPublishedFileErrors(t *testing.T) {
	_, err := parse(t, `
name: t
published_ports:
  - {protocol: icmp, host_port: 0, internal_port: 80}
  - {protocol: tcp, host_port: 8080, internal_port: 80, internal_ip_address: 10.0.0.300}
  - {protocol: tcp, host_port: 8080, internal_port: 80, port: p}
`)
	for _, want := range []string{
		`t.yaml:4: published port icmp/0: protocol "icmp": want tcp or udp`,
		"t.yaml:4: published port icmp/0: host_port 0: want 1 through 65535",
		"t.yaml:4: published port icmp/0: needs a port, an internal_ip_address or both",
		"t.yaml:5: published port tcp/8080: internal_ip_address:",
		`t.yaml:6: published port "tcp/8080" is listed twice (first at line 5)`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v\nwant it to contain %q", err, want)
		}
	}
}
