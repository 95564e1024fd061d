package cli

import (
	"testing"

	"github.com/spf13/cobra"

	"github.com/nsnet/nsnet/internal/model"
)

func TestRouterSetBody(t *testing.T) {
	cur := &model.Router{
		ExternalGatewayInfo: &model.ExternalGatewayInfo{NetworkID: "net-0", EnableSNAT: true},
		Routes:              []model.HostRoute{{Destination: "10.9.0.0/16", NextHop: "192.168.24.254"}},
	}
	tests := []bodyCase{
		{args: "", want: `{}`},
		{args: "--external-gateway blue-net", want: `{"external_gateway_info":{"network_id":"net-1"}}`},
		{args: "--external-gateway blue-net --disable-snat --fixed-ip subnet=blue-v4,ip-address=192.168.24.9",
			want: `{"external_gateway_info":{"enable_snat":false,"external_fixed_ips":[{"ip_address":"192.168.24.9","subnet_id":"sub-1"}],"network_id":"net-1"}}`},
		{args: "--enable-snat", want: `{"external_gateway_info":{"enable_snat":true,"network_id":"net-0"}}`},
		{args: "--no-external-gateway", want: `{"external_gateway_info":null}`},
		{args: "--route destination=10.8.0.0/16,gateway=192.168.24.253",
			want: `{"routes":[{"destination":"10.9.0.0/16","nexthop":"192.168.24.254"},{"destination":"10.8.0.0/16","nexthop":"192.168.24.253"}]}`},
		{args: "--no-route", want: `{"routes":[]}`},
		{args: "--no-route --route destination=10.8.0.0/16,gateway=192.168.24.253",
			want: `{"routes":[{"destination":"10.8.0.0/16","nexthop":"192.168.24.253"}]}`},
		{args: "--route destination=10.8.0.0/16", wantErr: "missing gateway="},
		{args: "--external-gateway blue-net --no-external-gateway", wantErr: "contradict"},
		{args: "--external-gateway nope", wantErr: "Network nope could not be found."},
	}
	for _, tt := range tests {
		var f routerFlags
		cmd := parsed(t, func(c *cobra.Command) { f.add(c); f.addSet(c) }, tt.args)
		body, err := f.body(cmd, resolveFrom(t), cur)
		checkBody(t, tt, body, err)
	}
	// On create there is no current gateway to change.
	var f routerFlags
	cmd := parsed(t, f.add, "--disable-snat")
	if _, err := f.body(cmd, resolveFrom(t), nil); err == nil {
		t.Error("--disable-snat without a gateway should be refused")
	}
}
