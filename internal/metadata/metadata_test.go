package metadata

import (
	"net/netip"
	"strings"
	"testing"
)

func TestAnswer(t *testing.T) {
	inst := &Instance{
		ID: "8f3c2a10-1111-2222-3333-444455556666", Name: "web", Hostname: "web", Domain: "nsnet.internal",
		UserData: "#!/bin/sh\n", Meta: map[string]string{"role": "db"}, SSHKeys: []string{"ssh-ed25519 AAAA k"},
		LocalIPv4: netip.MustParseAddr("10.0.0.5"), PublicIPv4: netip.MustParseAddr("198.51.100.7"),
	}
	tests := []struct {
		path   string
		status int
		body   string // substring of the body
	}{
		{"/openstack/latest/meta_data.json", 200, `"uuid": "8f3c2a10-1111-2222-3333-444455556666"`},
		{"/openstack/latest/meta_data.json", 200, `"role": "db"`},
		{"/openstack/latest/user_data", 200, "#!/bin/sh"},
		{"/openstack/latest/", 200, "user_data"},
		{"/latest/meta-data/", 200, "instance-id"},
		{"/latest/meta-data/instance-id", 200, "i-8f3c2a10"},
		{"/latest/meta-data/hostname", 200, "web.nsnet.internal"},
		{"/latest/meta-data/local-ipv4", 200, "10.0.0.5"},
		{"/latest/meta-data/public-ipv4", 200, "198.51.100.7"},
		{"/latest/meta-data/public-keys/0/openssh-key", 200, "ssh-ed25519 AAAA k"},
		{"/latest/meta-data/public-keys/1/openssh-key", 404, ""},
		{"/latest/user-data", 200, "#!/bin/sh"},
		{"/openstack/latest/../latest/user_data", 404, ""},
		{"/openstack/latest/meta_data.json/", 404, ""},
		{"//openstack/latest/meta_data.json", 404, ""},
		{"/etc/passwd", 404, ""},
	}
	for _, tt := range tests {
		r := Answer(inst, tt.path)
		if r.Status != tt.status || !strings.Contains(string(r.Body), tt.body) {
			t.Errorf("GET %s: %d %q, want %d containing %q", tt.path, r.Status, r.Body, tt.status, tt.body)
		}
	}
	if r := Answer(nil, "/openstack/latest/meta_data.json"); r.Status != 404 {
		t.Errorf("unknown caller: %d", r.Status)
	}
	if r := Answer(&Instance{ID: "x"}, "/openstack/latest/user_data"); r.Status != 404 {
		t.Errorf("no user data: %d", r.Status)
	}
}
