package topology

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nsnet/nsnet/internal/model"
)

// fresh is a new project's nsnet: nothing but its default security group.
var fresh = State{SecurityGroups: []model.SecurityGroup{{ID: "sg-default", Name: "default", Stateful: true}}}

// TestExamplesPlan: every file in examples/ parses, validates and plans
// onto a fresh nsnet, so that an example cannot rot between the e2e runs
// that apply some of them.
func TestExamplesPlan(t *testing.T) {
	files, err := filepath.Glob("../../examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no examples found")
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			r, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			f, err := Parse(r, path)
			if err != nil {
				t.Fatal(err)
			}
			st := fresh
			if filepath.Base(path) == "seed-004-two-projects.yaml" {
				// A project's part of seed 004 reaches the admin's
				// external network, seed-004-external.yaml's.
				st.Networks = []model.Network{{ID: "net-public", Name: "public", RouterExternal: true}}
			}
			p, err := PlanApply(f, st, ApplyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !p.Changes() {
				t.Error("plans no change onto a fresh nsnet")
			}
		})
	}
}

// TestDualStackExamplePlan: the IPv6 subnet of examples/dual-stack.yaml
// goes to the API as ip_version 6 with its modes.
func TestDualStackExamplePlan(t *testing.T) {
	r, err := os.Open("../../examples/dual-stack.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	f, err := Parse(r, "dual-stack.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := PlanApply(f, fresh, ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range p.Steps {
		if s.Name != "private-v6" {
			continue
		}
		if s.Attrs["ip_version"] != 6 || s.Attrs["ipv6_ra_mode"] != "slaac" || s.Attrs["ipv6_address_mode"] != "slaac" || s.Attrs["cidr"] != "2001:db8:10::/64" {
			t.Errorf("private-v6 body %v", s.Attrs)
		}
		return
	}
	t.Error("no step for subnet private-v6")
}
