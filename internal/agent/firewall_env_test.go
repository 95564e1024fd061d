package agent

import (
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// TestFirewallQuietFullPass: security groups whose rules say the same
// thing more than once — a port in two groups with the same automatic
// egress rules, a remote group whose members on two networks of the same
// CIDR share an address — are programmed once, and the full passes that
// follow find the tables intact: nothing is rebuilt, every port stays
// ACTIVE.
func TestFirewallQuietFullPass(t *testing.T) {
	group := func(id string) model.SecurityGroup { return model.SecurityGroup{ID: id, Name: id, Stateful: true} }
	egress := func(id, group string) model.SecurityGroupRule {
		return model.SecurityGroupRule{ID: id, SecurityGroupID: group, Direction: model.DirectionEgress, EtherType: model.EtherTypeIPv4}
	}
	fromMembers := func(id, group string) model.SecurityGroupRule {
		return model.SecurityGroupRule{ID: id, SecurityGroupID: group, Direction: model.DirectionIngress, EtherType: model.EtherTypeIPv4, RemoteGroupID: ptr(group)}
	}
	secured := func(records []any, groups ...string) []any {
		p := records[1].(model.Port)
		p.PortSecurityEnabled, p.SecurityGroups = true, groups
		return []any{records[0], p}
	}
	net1 := l3network(1, "10.5.0.0/24", "10.5.0.1", false)
	net2 := l3network(3, "10.5.0.0/24", "10.5.0.1", false)
	base := []any{group("default"), egress("r-egress", "default"), fromMembers("r-members", "default")}
	tests := []struct {
		name    string
		records []any
		ping    [2]string // instance, address it reaches
	}{
		{"a port in two groups with the same egress rules",
			append(append(append(append(net1.records(), base...), group("admins"), egress("r-admins-egress", "admins")),
				secured(net1.vm(10, "vm1", "10.5.0.10"), "default")...),
				secured(net1.vm(11, "vm2", "10.5.0.11"), "default", "admins")...),
			[2]string{"vm1", "10.5.0.11"}},
		{"one address on two networks of the same CIDR",
			append(append(append(append(net1.records(), net2.records()...), base...),
				secured(net1.vm(10, "vm1", "10.5.0.10"), "default")...),
				secured(net2.vm(11, "vm2", "10.5.0.10"), "default")...),
			[2]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 100*time.Millisecond)
			e.converge(e.put(tt.records...))
			if tt.ping[0] != "" {
				if err := ping(e.ns(tt.ping[0]), tt.ping[1]); err != nil {
					t.Error(err)
				}
			}
			changes := e.agent.Health().Changes
			e.waitFullPasses(3)
			if h := e.agent.Health(); h.Changes != changes || len(h.Errors) > 0 {
				t.Errorf("quiet full passes changed %d objects and left errors %v, want none", h.Changes-changes, h.Errors)
			}
			for _, r := range tt.records {
				if p, ok := r.(model.Port); ok {
					e.wantStatus(store.Ports, p.ID, model.StatusActive)
				}
			}
		})
	}
}
