package trace

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"

	"github.com/nsnet/nsnet/internal/client"
	"github.com/nsnet/nsnet/internal/model"
)

// LoadModel reads everything a trace plans with through the API, as the
// client's caller sees it: `nsnet trace` and the web view's trace share it,
// so that both plan from the same model.
func LoadModel(ctx context.Context, c *client.Client) (*Model, error) {
	raw, err := c.Status(ctx)
	if err != nil {
		return nil, err
	}
	var status struct {
		Daemon struct {
			Netns  string `json:"host_netns"`
			Prefix string `json:"netns_prefix"`
		} `json:"daemon"`
	}
	if err := json.Unmarshal(raw, &status); err != nil {
		return nil, fmt.Errorf("decode status: %w", err)
	}
	m := &Model{HostNetns: status.Daemon.Netns, Prefix: status.Daemon.Prefix, PortForwardings: map[string][]model.PortForwarding{}}
	if m.Networks, err = client.List[model.Network](ctx, c, client.Networks, nil); err != nil {
		return nil, err
	}
	if m.Subnets, err = client.List[model.Subnet](ctx, c, client.Subnets, nil); err != nil {
		return nil, err
	}
	if m.Ports, err = client.List[model.Port](ctx, c, client.Ports, nil); err != nil {
		return nil, err
	}
	if m.Instances, err = client.List[model.Instance](ctx, c, client.Instances, nil); err != nil {
		return nil, err
	}
	if m.Routers, err = client.List[model.Router](ctx, c, client.Routers, nil); err != nil {
		return nil, err
	}
	if m.FloatingIPs, err = client.List[model.FloatingIP](ctx, c, client.FloatingIPs, nil); err != nil {
		return nil, err
	}
	if m.SecurityGroups, err = client.List[model.SecurityGroup](ctx, c, client.SecurityGroups, nil); err != nil {
		return nil, err
	}
	if m.PublishedPorts, err = client.List[model.PublishedPort](ctx, c, client.PublishedPorts, nil); err != nil {
		return nil, err
	}
	for _, f := range m.FloatingIPs {
		pfs, err := client.List[model.PortForwarding](ctx, c, client.PortForwardings(f.ID), nil)
		if err != nil {
			return nil, err
		}
		m.PortForwardings[f.ID] = pfs
	}
	return m, nil
}

// ResolveDestination is a trace's DST: an address, or an instance's first
// IPv4 address (IPv6 with v6).
func ResolveDestination(ctx context.Context, c *client.Client, m *Model, ref string, v6 bool) (netip.Addr, error) {
	if a, err := netip.ParseAddr(ref); err == nil {
		if a.Zone() != "" || a.Is6() && a.IsLinkLocalUnicast() {
			return netip.Addr{}, fmt.Errorf("destination %s: a link-local address is not traced (it names no port of the model)", a)
		}
		return a.Unmap(), nil
	}
	inst, err := client.Find[model.Instance](ctx, c, client.Instances, ref)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("destination %q is neither an IP address nor an instance: %w", ref, err)
	}
	version := "IPv4"
	if v6 {
		version = "IPv6"
	}
	for _, p := range m.Ports {
		if p.DeviceID != inst.ID {
			continue
		}
		for _, ip := range p.FixedIPs {
			if a, err := netip.ParseAddr(ip.IPAddress); err == nil && a.Is6() == v6 {
				return a, nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("instance %s has no %s address", inst.Name, version)
}
