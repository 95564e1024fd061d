package api_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/nsnet/nsnet/internal/model"
)

// portDNS is the dns-integration part of a port body.
type portDNS struct {
	DNSName       string                `json:"dns_name"`
	DNSDomain     string                `json:"dns_domain"`
	DNSAssignment []model.DNSAssignment `json:"dns_assignment"`
}

func decodePortDNS(t *testing.T, body any) portDNS {
	t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	var p portDNS
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatalf("port body %s: %v", raw, err)
	}
	return p
}

// TestPortDNSName follows Neutron's dns-integration on ports: dns_name
// validated as neutron-lib validates it (with the network's dns_domain in
// the place of neutron.conf's), lower-cased, and dns_assignment giving
// each address its name in nsnet's DNS: dns_name, else the instance's
// name, else host-<address>.
func TestPortDNSName(t *testing.T) {
	h := newHarness(t)
	net := h.create("networks", "network", map[string]any{"name": "dns", "dns_domain": "example.org."})["id"].(string)
	h.create("subnets", "subnet", map[string]any{"network_id": net, "cidr": "10.5.0.0/24", "enable_dhcp": false})
	inst := h.create("instances", "instance", map[string]any{"name": "Web"})["id"].(string)

	h.checkRefusals(t, []refusal{
		{"an empty label", "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net, "dns_name": "a..b"}},
			400, "HTTPBadRequest", "Invalid input for dns_name. Reason: 'a..b' not a valid PQDN or FQDN. Reason: Encountered an empty component."},
		{"a hyphen at the end", "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net, "dns_name": "a-"}},
			400, "HTTPBadRequest", "Name 'a-' must not start or end with a hyphen"},
		{"an underscore", "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net, "dns_name": "a_b"}},
			400, "HTTPBadRequest", "Name 'a_b' must be 1-63 characters long, each of which can only be alphanumeric or a hyphen"},
		{"a numeric TLD", "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net, "dns_name": "a.123"}},
			400, "HTTPBadRequest", "TLD '123' must not be all numeric"},
		{"a FQDN in another domain", "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net, "dns_name": "a.example.com."}},
			400, "HTTPBadRequest", "The dns_name passed is a FQDN. Its higher level labels must be equal to the dns_domain of network " + net},
		{"the domain alone", "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net, "dns_name": "example.org."}},
			400, "HTTPBadRequest", "It must also include one or more valid DNS labels to the left of 'example.org.'"},
		{"a PQDN too long with the domain", "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net,
			"dns_name": strings.Repeat(strings.Repeat("a", 60)+".", 4) + "a"}}, 400, "HTTPBadRequest", "The dns_name passed is a PQDN and its size is '245'"},
		{"a port domain not fully qualified", "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net, "dns_domain": "test.org"}},
			400, "HTTPBadRequest", "Invalid input for dns_domain. Reason: 'test.org' is not a FQDN."},
		{"a port domain with an empty label", "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net, "dns_domain": "a..org."}},
			400, "HTTPBadRequest", "'a..org.' not a valid PQDN or FQDN. Reason: Encountered an empty component"},
		{"a port domain with no room for a host", "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net,
			"dns_domain": strings.Repeat(strings.Repeat("a", 63)+".", 3) + strings.Repeat("b", 61) + "."}}, 400, "HTTPBadRequest", "contains 254 characters. Adding a sub-domain will cause it to exceed the maximum length of a FQDN of '255'"},
		{"not a string", "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net, "dns_name": 1}},
			400, "HTTPBadRequest", "Invalid input for dns_name"},
	})

	for _, tc := range []struct {
		name     string
		attrs    map[string]any
		wantName string
		wantHost string // "" means host-<address>
		wantFQDN string // "" means <host>.example.org.

	}{
		{"no dns_name", map[string]any{}, "", "", ""},
		{"a label, lower-cased", map[string]any{"dns_name": "D1"}, "d1", "d1", ""},
		{"a FQDN in the domain", map[string]any{"dns_name": "d2.example.org."}, "d2.example.org.", "d2", "d2.example.org."},
		{"an instance's port", map[string]any{"device_id": inst}, "", "web", ""},
		{"an instance's port with a dns_name", map[string]any{"device_id": inst, "dns_name": "d3"}, "d3", "d3", ""},
		// The port's own domain is where nsnet also answers the name;
		// dns_assignment stays in the network's, as in Neutron.
		{"a port domain, lower-cased", map[string]any{"dns_name": "d4", "dns_domain": "Test.ORG."}, "d4", "d4", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			attrs := map[string]any{"network_id": net}
			for k, v := range tc.attrs {
				attrs[k] = v
			}
			created := h.create("ports", "port", attrs)
			id := created["id"].(string)
			ip := created["fixed_ips"].([]any)[0].(map[string]any)["ip_address"].(string)
			host := tc.wantHost
			if host == "" {
				host = "host-" + strings.ReplaceAll(ip, ".", "-")
			}
			fqdn := tc.wantFQDN
			if fqdn == "" {
				fqdn = host + ".example.org."
			}
			wantDomain := ""
			if d, ok := tc.attrs["dns_domain"].(string); ok {
				wantDomain = strings.ToLower(d)
			}
			want := portDNS{DNSName: tc.wantName, DNSDomain: wantDomain, DNSAssignment: []model.DNSAssignment{{Hostname: host, IPAddress: ip, FQDN: fqdn}}}
			shown := h.do("GET", "/v2.0/ports/"+id, nil)
			listed := h.do("GET", "/v2.0/ports?id="+id, nil)
			for what, body := range map[string]any{"create": created, "show": shown.body["port"], "list": listed.body["ports"].([]any)[0]} {
				if got := decodePortDNS(t, body); got.DNSName != want.DNSName || got.DNSDomain != want.DNSDomain || !slices.Equal(got.DNSAssignment, want.DNSAssignment) {
					t.Errorf("%s: %+v, want %+v", what, got, want)
				}
			}
			r := h.do("PUT", "/v2.0/ports/"+id, map[string]any{"port": map[string]any{"dns_name": "renamed"}})
			if got := decodePortDNS(t, r.body["port"]); r.status != 200 || got.DNSName != "renamed" || len(got.DNSAssignment) != 1 ||
				got.DNSAssignment[0].Hostname != "renamed" || got.DNSAssignment[0].FQDN != "renamed.example.org." {
				t.Errorf("update to renamed: %d %+v", r.status, got)
			}
		})
	}
}
