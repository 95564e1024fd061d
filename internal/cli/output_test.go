package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/nsnet/nsnet/internal/model"
)

const portJSON = `{"id":"p1","name":"red-eth0","status":"ACTIVE","mac_address":"fa:16:3e:00:00:01",` +
	`"fixed_ips":[{"subnet_id":"s1","ip_address":"192.168.24.10"},{"subnet_id":"s2","ip_address":"10.0.0.5"}],` +
	`"device_id":"i1","device_owner":"compute:nsnet","admin_state_up":true,"security_groups":[],` +
	`"nsnet:interface_name":"eth0","description":"","tags":[],"revision_number":2,"binding:host_id":null}`

func TestPrintObject(t *testing.T) {
	tests := []struct {
		format string
		want   string
	}{
		{
			format: formatTable,
			want: `FIELD                 VALUE
admin_state_up        true
binding:host_id       
description           
device_id             i1
device_owner          compute:nsnet
fixed_ips             ip_address='192.168.24.10', subnet_id='s1'
                      ip_address='10.0.0.5', subnet_id='s2'
id                    p1
mac_address           fa:16:3e:00:00:01
name                  red-eth0
nsnet:interface_name  eth0
revision_number       2
security_groups       
status                ACTIVE
tags                  
`,
		},
		{
			// The API object, in the API's key order, indented.
			format: formatJSON,
			want: `{
  "id": "p1",
  "name": "red-eth0",
  "status": "ACTIVE",
  "mac_address": "fa:16:3e:00:00:01",
  "fixed_ips": [
    {
      "subnet_id": "s1",
      "ip_address": "192.168.24.10"
    },
    {
      "subnet_id": "s2",
      "ip_address": "10.0.0.5"
    }
  ],
  "device_id": "i1",
  "device_owner": "compute:nsnet",
  "admin_state_up": true,
  "security_groups": [],
  "nsnet:interface_name": "eth0",
  "description": "",
  "tags": [],
  "revision_number": 2,
  "binding:host_id": null
}
`,
		},
		{
			format: formatYAML,
			want: `id: p1
name: red-eth0
status: ACTIVE
mac_address: fa:16:3e:00:00:01
fixed_ips:
  - subnet_id: s1
    ip_address: 192.168.24.10
  - subnet_id: s2
    ip_address: 10.0.0.5
device_id: i1
device_owner: compute:nsnet
admin_state_up: true
security_groups: []
nsnet:interface_name: eth0
description: ""
tags: []
revision_number: 2
binding:host_id: null
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			var buf bytes.Buffer
			if err := printObject(&buf, tt.format, json.RawMessage(portJSON)); err != nil {
				t.Fatal(err)
			}
			if buf.String() != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", buf.String(), tt.want)
			}
		})
	}
}

func TestYAMLQuotesWhatWouldChangeType(t *testing.T) {
	out, err := jsonToYAML([]byte(`{"a":"true","b":"1500","c":"null","d":"","e":"plain","f":1500,"g":"10:20","h":"- x"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := "a: \"true\"\nb: \"1500\"\nc: \"null\"\nd: \"\"\ne: plain\nf: 1500\ng: 10:20\nh: '- x'\n"
	if string(out) != want {
		t.Errorf("got:\n%s\nwant:\n%s", out, want)
	}
}

func TestPrintList(t *testing.T) {
	raws := []json.RawMessage{
		json.RawMessage(`{"id":"n1","name":"blue","status":"ACTIVE","mtu":1500,"subnets":["s1","s2"]}`),
		json.RawMessage(`{"id":"n2","name":"","status":"BUILD","mtu":9000,"subnets":[]}`),
	}
	items := []model.Network{{ID: "n1", Name: "blue", Subnets: []string{"s1", "s2"}}, {ID: "n2", Subnets: []string{}}}
	cols := []column[model.Network]{
		{"ID", func(n model.Network) string { return n.ID }},
		{"NAME", func(n model.Network) string { return n.Name }},
		{"SUBNETS", func(n model.Network) string { return strings.Join(n.Subnets, ", ") }},
	}
	var buf bytes.Buffer
	if err := printTable(&buf, items, cols); err != nil {
		t.Fatal(err)
	}
	want := "ID  NAME  SUBNETS\nn1  blue  s1, s2\nn2        \n"
	if buf.String() != want {
		t.Errorf("table:\n%q\nwant:\n%q", buf.String(), want)
	}

	buf.Reset()
	if err := printRawList(&buf, formatJSON, raws); err != nil {
		t.Fatal(err)
	}
	var back []map[string]any
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil || len(back) != 2 || back[0]["name"] != "blue" {
		t.Errorf("json list = %s (%v)", buf.String(), err)
	}

	buf.Reset()
	if err := printRawList(&buf, formatJSON, nil); err != nil || buf.String() != "[]\n" {
		t.Errorf("empty json list = %q, %v; want [] so that scripts can iterate", buf.String(), err)
	}
	buf.Reset()
	if err := printRawList(&buf, formatYAML, nil); err != nil || buf.String() != "[]\n" {
		t.Errorf("empty yaml list = %q, %v", buf.String(), err)
	}
}

func TestPrintStatus(t *testing.T) {
	raw := json.RawMessage(`{
		"daemon": {"version": "0.1.0", "pid": 42, "listen": "", "uptime_seconds": 3600},
		"agent": {"converged": false, "revision": 7, "last_pass": {"duration_ms": 12.5, "errors": ["port p1: File exists", "x"]}},
		"healthy": false
	}`)
	var buf bytes.Buffer
	if err := printStatus(&buf, raw); err != nil {
		t.Fatal(err)
	}
	// Each section is aligned on its own.
	want := `healthy  false

AGENT:
  converged              false
  last_pass.duration_ms  12.5
  last_pass.errors       port p1: File exists, x
  revision               7

DAEMON:
  listen          
  pid             42
  uptime_seconds  3600
  version         0.1.0
`
	if buf.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", buf.String(), want)
	}
}

// TestPrintStatusInError: the agent's errors are counted in its section
// and listed below it by type, name and id, with the reason.
func TestPrintStatusInError(t *testing.T) {
	raw := json.RawMessage(`{
		"agent": {"revision": 7, "errors": [
			{"type": "network", "id": "0e1f", "name": "lab", "reason": "subnet s2 (10.42.2.0/24): DNS on 10.42.2.254: address already in use"},
			{"type": "port", "id": "9c3a", "reason": "instance blue: namespace exists"},
			{"type": "pass", "reason": "read store: timeout"}]}
	}`)
	var buf bytes.Buffer
	if err := printStatus(&buf, raw); err != nil {
		t.Fatal(err)
	}
	want := `AGENT:
  errors    3
  revision  7

IN ERROR:
  TYPE     NAME  ID    REASON
  network  lab   0e1f  subnet s2 (10.42.2.0/24): DNS on 10.42.2.254: address already in use
  port           9c3a  instance blue: namespace exists
  pass                 read store: timeout
`
	if buf.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", buf.String(), want)
	}
}

func TestIDNamesLabel(t *testing.T) {
	names := idNames{"c6ae0175-fc11-427f-87de-6e8b66a9635b": "public", "n2": "", "n3": "lan"}
	for _, tc := range []struct{ id, want string }{
		{"c6ae0175-fc11-427f-87de-6e8b66a9635b", "public (c6ae0175)"},
		{"n2", "n2"},       // no name: the id
		{"n3", "lan (n3)"}, // a short id whole
		{"gone", "gone"},   // not visible: the id
		{"", ""},
	} {
		if got := names.label(tc.id); got != tc.want {
			t.Errorf("label(%q) = %q, want %q", tc.id, got, tc.want)
		}
	}
}

func TestRouterInterfaces(t *testing.T) {
	ports := []model.Port{
		{ID: "aaaa1111-0000-0000-0000-000000000000", NetworkID: "net-private", DeviceOwner: model.DeviceOwnerRouterInterface, Status: "ACTIVE",
			FixedIPs: []model.FixedIP{{SubnetID: "sub-private", IPAddress: "10.0.0.1"}}},
		{ID: "bbbb2222-0000-0000-0000-000000000000", NetworkID: "net-public", DeviceOwner: model.DeviceOwnerRouterGateway, Status: "ACTIVE",
			FixedIPs: []model.FixedIP{{SubnetID: "sub-public", IPAddress: "198.51.100.2"}}},
	}
	got := routerInterfaces(ports, idNames{"sub-private": "private-v4", "sub-public": "public-v4"}, idNames{"net-private": "private", "net-public": "public"})
	want := []any{
		map[string]any{"interface": "qg-bbbb2222-00", "ips": "198.51.100.2 in public-v4 (sub-publ)", "network": "public (net-publ)", "status": "ACTIVE"},
		map[string]any{"interface": "qr-aaaa1111-00", "ips": "10.0.0.1 in private-v4 (sub-priv)", "network": "private (net-priv)", "status": "ACTIVE"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("routerInterfaces:\n got %v\nwant %v", got, want)
	}
}
