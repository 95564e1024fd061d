package api_test

import (
	"slices"
	"testing"

	"github.com/nsnet/nsnet/internal/model"
)

// TestExtraDHCPOpts: extra_dhcp_opts as Neutron's extension has them: on
// create and in every port body (default []), ip_version 4 by default, an
// update merging by name and IP version (null removes), as gophercloud's
// TestPortsWithExtraDHCPOptsCRUD and the tempest tests use them.
func TestExtraDHCPOpts(t *testing.T) {
	h := newHarness(t)
	net := h.create("networks", "network", map[string]any{"name": "n"})["id"].(string)
	h.create("subnets", "subnet", map[string]any{"network_id": net, "cidr": "10.0.0.0/24"})
	type opt = model.ExtraDHCPOpt
	type portBody struct {
		Port model.Port `json:"port"`
	}
	opts := func(r response) []model.ExtraDHCPOpt {
		t.Helper()
		var b portBody
		decodeInto(t, r, &b)
		return b.Port.ExtraDHCPOpts
	}
	plain := h.do("POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net}})
	if o, ok := plain.body["port"].(map[string]any)["extra_dhcp_opts"].([]any); !ok || len(o) != 0 {
		t.Errorf("a port without options shows extra_dhcp_opts %v, want []", plain.body["port"].(map[string]any)["extra_dhcp_opts"])
	}

	created := h.do("POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net, "extra_dhcp_opts": []any{
		map[string]any{"opt_name": "bootfile-name", "opt_value": "pxelinux.0"},
		map[string]any{"opt_name": "tftp-server", "opt_value": "2015::dead", "ip_version": 6},
		map[string]any{"opt_name": "server-ip-address", "opt_value": "123.123.123.45", "ip_version": "4"},
		map[string]any{"opt_name": "skipped", "opt_value": nil},
	}}})
	if created.status != 201 {
		t.Fatalf("create: %d %v", created.status, created.body)
	}
	want := []opt{{OptName: "bootfile-name", OptValue: "pxelinux.0", IPVersion: 4}, {OptName: "tftp-server", OptValue: "2015::dead", IPVersion: 6}, {OptName: "server-ip-address", OptValue: "123.123.123.45", IPVersion: 4}}
	if got := opts(created); !slices.Equal(got, want) {
		t.Errorf("created with %v, want %v", got, want)
	}
	id := created.body["port"].(map[string]any)["id"].(string)

	up := h.do("PUT", "/v2.0/ports/"+id, map[string]any{"port": map[string]any{"name": "x", "extra_dhcp_opts": []any{
		map[string]any{"opt_name": "bootfile-name", "opt_value": nil},
		map[string]any{"opt_name": "tftp-server", "opt_value": "2015::beef", "ip_version": 6},
		map[string]any{"opt_name": "tftp-server", "opt_value": "10.0.0.9"},
		map[string]any{"opt_name": "router", "opt_value": ""},
	}}})
	if up.status != 200 {
		t.Fatalf("update: %d %v", up.status, up.body)
	}
	want = []opt{{OptName: "tftp-server", OptValue: "2015::beef", IPVersion: 6}, {OptName: "server-ip-address", OptValue: "123.123.123.45", IPVersion: 4}, {OptName: "tftp-server", OptValue: "10.0.0.9", IPVersion: 4}, {OptName: "router", OptValue: "", IPVersion: 4}}
	if got := opts(h.do("GET", "/v2.0/ports/"+id, nil)); !slices.Equal(got, want) {
		t.Errorf("after the update: %v, want %v", got, want)
	}

	for _, tc := range []struct {
		name string
		opts any
		msg  string
	}{
		{"not a list", "x", "Invalid input for extra_dhcp_opts. Reason: 'x' is not a list."},
		{"no value", []any{map[string]any{"opt_name": "mtu"}}, "Invalid input for extra_dhcp_opts. Reason: Validation of dictionary's keys failed. Expected keys: {'opt_name', 'opt_value'} Provided keys: {'opt_name'}."},
		{"blank value", []any{map[string]any{"opt_name": "mtu", "opt_value": ""}}, "Invalid input for extra_dhcp_opts. Reason: '' Blank strings are not permitted."},
		{"blank name", []any{map[string]any{"opt_name": " ", "opt_value": "1"}}, "Invalid input for extra_dhcp_opts. Reason: ' ' Blank strings are not permitted."},
		{"bad ip_version", []any{map[string]any{"opt_name": "mtu", "opt_value": "1400", "ip_version": 5}}, "Invalid input for extra_dhcp_opts. Reason: 5 is not in [4, 6]."},
		{"unexpected key", []any{map[string]any{"opt_name": "mtu", "opt_value": "1400", "tag": "x"}}, "Invalid input for extra_dhcp_opts. Reason: Unexpected keys supplied: tag."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do("PUT", "/v2.0/ports/"+id, map[string]any{"port": map[string]any{"extra_dhcp_opts": tc.opts}})
			if typ, msg := neutronError(r); r.status != 400 || typ != "HTTPBadRequest" || msg != tc.msg {
				t.Errorf("%d %s %q, want 400 HTTPBadRequest %q", r.status, typ, msg, tc.msg)
			}
			if got := opts(h.do("GET", "/v2.0/ports/"+id, nil)); !slices.Equal(got, want) {
				t.Errorf("options changed by a refused update: %v", got)
			}
		})
	}
}
