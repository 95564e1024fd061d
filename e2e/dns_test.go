package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/model"
)

// TestPortDNSName: a port's dns_name (Neutron's dns-integration) is the
// name nsnet's DNS server answers for its address in the network's
// dns_domain, forward and reverse, in place of its instance's name; the
// name dns_assignment shows is the one answered, and a change of dns_name
// reaches the server; a port's own dns_domain is one more name for it.
func TestPortDNSName(t *testing.T) {
	e := Start(t)
	network := jsonOf(t, e.MustNsnet("network", "create", "lab", "--dns-domain", "lab.test.", "-o", "json"))
	e.MustNsnet("subnet", "create", "lab-v4", "--network", "lab", "--subnet-range", "10.44.0.0/24")
	port := func(instance, ip, dnsName string) model.Port {
		inst := jsonOf(t, e.MustNsnet("instance", "create", instance, "-o", "json"))
		body := map[string]any{"network_id": network["id"], "device_id": inst["id"],
			"fixed_ips": []any{map[string]any{"ip_address": ip}}}
		if dnsName != "" {
			body["dns_name"] = dnsName
		}
		return decodePort(t, e.MustAPI("POST", "/v2.0/ports", map[string]any{"port": body})["port"])
	}
	vm1 := port("vm1", "10.44.0.10", "alias")
	vm2 := port("vm2", "10.44.0.20", "")
	if got := vm1.DNSAssignment; len(got) != 1 || got[0] != (model.DNSAssignment{Hostname: "alias", IPAddress: "10.44.0.10", FQDN: "alias.lab.test."}) {
		t.Errorf("vm1's port dns_assignment %+v, want alias.lab.test.", got)
	}
	if got := vm2.DNSAssignment; len(got) != 1 || got[0].FQDN != "vm2.lab.test." {
		t.Errorf("vm2's port dns_assignment %+v, want its instance's name vm2.lab.test.", got)
	}

	dig := func(args ...string) string {
		out, _ := e.In("vm1", append([]string{"dig", "+time=2", "+tries=1", "@10.44.0.254"}, args...)...)
		return out
	}
	answers := func(want map[string]string) func() error {
		return func() error {
			for q, w := range want {
				if out := dig(strings.Fields(q)...); !strings.Contains(out, w) {
					return fmt.Errorf("dig %s: want %q in\n%s", q, w, out)
				}
			}
			return nil
		}
	}
	eventually(t, 20*time.Second, "nsnet's DNS answering dns_name", answers(map[string]string{
		"+short alias.lab.test A": "10.44.0.10",
		"+short -x 10.44.0.10":    "alias.lab.test.",
		"vm1.lab.test A":          "status: NXDOMAIN", // the dns_name replaces the instance's name
		"+short vm2.lab.test A":   "10.44.0.20",       // no dns_name: the instance's name, as before
	}))

	// A fully qualified dns_name in the network's domain.
	vm2 = decodePort(t, e.MustAPI("PUT", "/v2.0/ports/"+vm2.ID, map[string]any{"port": map[string]any{"dns_name": "db.lab.test."}})["port"])
	if got := vm2.DNSAssignment; len(got) != 1 || got[0] != (model.DNSAssignment{Hostname: "db", IPAddress: "10.44.0.20", FQDN: "db.lab.test."}) {
		t.Errorf("vm2's port dns_assignment after the update %+v, want db.lab.test.", got)
	}
	eventually(t, 20*time.Second, "nsnet's DNS answering the new dns_name", answers(map[string]string{
		"+short db.lab.test A": "10.44.0.20",
		"+short -x 10.44.0.20": "db.lab.test.",
		"vm2.lab.test A":       "status: NXDOMAIN",
	}))

	// A port's own dns_domain (dns-domain-ports): nsnet's DNS answers its
	// dns_name there too, that one name only; the reverse stays the
	// network's name.
	vm1 = decodePort(t, e.MustAPI("PUT", "/v2.0/ports/"+vm1.ID, map[string]any{"port": map[string]any{"dns_domain": "Pub.example."}})["port"])
	if vm1.DNSDomain != "pub.example." {
		t.Errorf("vm1's port dns_domain %q, want pub.example.", vm1.DNSDomain)
	}
	eventually(t, 20*time.Second, "nsnet's DNS answering dns_name in the port's domain", answers(map[string]string{
		"+short alias.pub.example A": "10.44.0.10",
		"+short alias.lab.test A":    "10.44.0.10",
		"+short -x 10.44.0.10":       "alias.lab.test.",
	}))
	if out := dig("+short", "+norecurse", "other.pub.example", "A"); strings.Contains(out, "10.44.") {
		t.Errorf("another name in the port's domain answered: %q", out)
	}
}

func decodePort(t *testing.T, body any) model.Port {
	t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	var p model.Port
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatalf("port %s: %v", raw, err)
	}
	return p
}
