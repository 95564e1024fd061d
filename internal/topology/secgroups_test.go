package topology

import (
	"reflect"
	"strings"
	"testing"

	"github.com/nsnet/nsnet/internal/model"
)

const sgFile = `
name: seed
networks:
  - name: net
    subnets: [{name: net-v4, cidr: 10.0.0.0/24}]
security_groups:
  - name: admins
  - name: web
    rules:
      - {direction: egress}
      - {protocol: tcp, port_range_min: 22, port_range_max: 22, remote_ip_prefix: 10.0.0.0/24}
      - {protocol: tcp, port_range_min: 8000, port_range_max: 8080, remote_group: admins}
ports:
  - name: web-eth0
    network: net
    security_groups: [web, admins]
    allowed_address_pairs: [{ip_address: 10.0.0.200}]
`

// sgState is nsnet after applying sgFile.
func sgState() State {
	st := State{
		Networks: []model.Network{{ID: "n", Name: "net", AdminStateUp: true, PortSecurityEnabled: true, MTU: 1500,
			Standard: model.Standard{Description: mark}}},
		Subnets: []model.Subnet{{ID: "s", Name: "net-v4", NetworkID: "n", IPVersion: 4, CIDR: "10.0.0.0/24",
			EnableDHCP: true, Standard: model.Standard{Description: mark}}},
		SecurityGroups: []model.SecurityGroup{
			{ID: "g-admins", Name: "admins", Standard: model.Standard{Description: mark}},
			{ID: "g-web", Name: "web", Standard: model.Standard{Description: mark}},
		},
		Ports: []model.Port{{ID: "p", Name: "web-eth0", NetworkID: "n", AdminStateUp: true, PortSecurityEnabled: true,
			MACAddress: "fa:16:3e:00:00:01", SecurityGroups: []string{"g-admins", "g-web"},
			AllowedAddressPairs: []model.AddressPair{{IPAddress: "10.0.0.200", MACAddress: "fa:16:3e:00:00:01"}},
			Standard:            model.Standard{Description: mark}}},
	}
	tcp, cidr, prefix, admins := "tcp", "10.0.0.0/24", "10.0.0.0/24", "g-admins"
	p22, p8000, p8080 := 22, 8000, 8080
	st.SecurityGroupRules = []model.SecurityGroupRule{
		{ID: "r-egress", SecurityGroupID: "g-web", Direction: "egress", EtherType: "IPv4"},
		{ID: "r-ssh", SecurityGroupID: "g-web", Direction: "ingress", EtherType: "IPv4", Protocol: &tcp,
			PortRangeMin: &p22, PortRangeMax: &p22, RemoteIPPrefix: &cidr, NormalizedCIDR: &prefix},
		{ID: "r-admins", SecurityGroupID: "g-web", Direction: "ingress", EtherType: "IPv4", Protocol: &tcp,
			PortRangeMin: &p8000, PortRangeMax: &p8080, RemoteGroupID: &admins},
	}
	return st
}

func TestPlanSecurityGroups(t *testing.T) {
	f := mustParse(t, sgFile)
	p, err := PlanApply(f, State{}, ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"create network net",
		"create subnet net-v4",
		"create security_group admins (its rules are the file's: nsnet's default egress rules are removed)",
		"create security_group web (its rules are the file's: nsnet's default egress rules are removed)",
		"create security_group_rule web: egress",
		"create security_group_rule web: ingress proto 6 port 22 peer 10.0.0.0/24",
		"create security_group_rule web: ingress proto 6 ports 8000:8080 from group admins",
		"create port web-eth0",
	}
	if got := lines(p); !reflect.DeepEqual(got, want) {
		t.Fatalf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Applied, nothing changes.
	if p, err = PlanApply(f, sgState(), ApplyOptions{Prune: true}); err != nil {
		t.Fatal(err)
	}
	if p.Changes() {
		t.Errorf("applying to the state it makes changes:\n%s", strings.Join(lines(p), "\n"))
	}

	// A rule added by hand goes; a port that left a group comes back.
	st := sgState()
	st.SecurityGroupRules = append(st.SecurityGroupRules, model.SecurityGroupRule{ID: "r-extra", SecurityGroupID: "g-web",
		Direction: "ingress", EtherType: "IPv4"})
	st.Ports[0].SecurityGroups = []string{"g-web"}
	if p, err = PlanApply(f, st, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(lines(p), "\n")
	for _, line := range []string{
		"delete security_group_rule web: ingress (not in the file)",
		"update port web-eth0: security_groups [web] → [admins, web]",
	} {
		if !strings.Contains(got, line) {
			t.Errorf("plan lacks %q:\n%s", line, got)
		}
	}

	// Destroy deletes the port before the groups.
	if p, err = PlanDestroy(f, sgState()); err != nil {
		t.Fatal(err)
	}
	got = strings.Join(lines(p), "\n")
	if i, j := strings.Index(got, "delete port web-eth0"), strings.Index(got, "delete security_group web"); i < 0 || j < i {
		t.Errorf("destroy order:\n%s", got)
	}
}

func TestSecurityGroupFileErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"name: t\nsecurity_groups:\n  - name: g\n    rules: [{direction: sideways}]\n", `direction "sideways"`},
		{"name: t\nsecurity_groups:\n  - name: g\n    rules: [{protocol: tcpx}]\n", `protocol "tcpx"`},
		{"name: t\nsecurity_groups:\n  - name: g\n    rules: [{remote_ip_prefix: 2001:db8::/64}]\n", "not of the rule's ethertype"},
		{"name: t\nsecurity_groups:\n  - name: g\n    rules: [{remote_ip_prefix: 10.0.0.0/8, remote_group: g}]\n", "not both"},
		{"name: t\nsecurity_groups:\n  - name: g\n    rules: [{protocol: udp}, {protocol: udp}]\n", "the same rule as rules[0]"},
		{"name: t\nsecurity_groups:\n  - name: g\n  - name: g\n", `security group "g" is listed twice`},
	} {
		_, err := parse(t, tc.src)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want it to contain %q", tc.src, err, tc.want)
		}
	}
}
