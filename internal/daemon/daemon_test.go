package daemon

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/service"
)

// TestServiceConfig: a VTEP address is multi-host mode, where vxlan
// networks leave VXLAN's 50 bytes of the physnet MTU; one box keeps all of
// it. The host's facts reach the service.
func TestServiceConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want service.Config
	}{
		{"one box", Config{PhysnetMTU: 1500, NetnsPrefix: "p-"},
			service.Config{PhysnetMTU: 1500, NetnsPrefix: "p-", Host: "h", HostID: service.HostUUID("h"), AgentDownTime: service.DefaultAgentDownTime}},
		{"multi-host", Config{PhysnetMTU: 9000, VTEPAddress: netip.MustParseAddr("192.0.2.7"), Roles: []string{"compute"},
			AvailabilityZone: "az1", AgentDownTime: 6 * time.Second},
			service.Config{PhysnetMTU: 9000, TunnelOverhead: 50, VTEPAddress: "192.0.2.7", Roles: []string{"compute"},
				AvailabilityZone: "az1", Host: "h", HostID: service.HostUUID("h"), AgentDownTime: 6 * time.Second}},
	} {
		if got := serviceConfig(tc.cfg, "h"); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.name, got, tc.want)
		}
	}
}
