package trace

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/nsnet/nsnet/internal/client"
	"github.com/nsnet/nsnet/internal/dataplane"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/netns"
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
	for i := range m.Routers {
		if err := m.hiddenGateway(&m.Routers[i]); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// hiddenGateway adds to the model router r's gateway port and its
// subnets when the caller may not see them: a project member's router
// whose gateway is on the admin's external network. Neutron's policy
// shows the member neither the gateway port (no project's) nor the
// external subnets (not the member's, not shared), only the router's
// external_gateway_info with its addresses. The rest is read from the
// router's namespace, where the trace runs anyway: the port's id (the
// alias of its qg- interface) and MAC, each subnet's prefix (the address
// on qg-) and gateway (the default route's next hop). Nothing is invented:
// what the namespace does not hold stays out of the model.
func (m *Model) hiddenGateway(r *model.Router) error {
	gw := r.ExternalGatewayInfo
	if gw == nil || len(gw.ExternalFixedIPs) == 0 || m.gatewayPort(r.ID) != nil {
		return nil
	}
	name := model.RouterNetns(m.Prefix, r.ID)
	if !netns.Exists(name) {
		return nil // not built (yet): the plan says the router has no route
	}
	h, err := dataplane.OpenNamespace(name)
	if err != nil {
		return err
	}
	defer h.Close()
	links, err := h.Handle.LinkList()
	if err != nil {
		return fmt.Errorf("router %s: list links in %s: %w", routerLabel(r), name, err)
	}
	var qg netlink.Link
	var id string
	for _, l := range links {
		if kind, portID, ok := dataplane.ParseAlias(l.Attrs().Alias); ok && kind == "port" && l.Attrs().Name == model.RouterGatewayName(portID) {
			qg, id = l, portID
		}
	}
	if qg == nil {
		return nil
	}
	addrs, err := h.Handle.AddrList(qg, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("router %s: addresses of %s: %w", routerLabel(r), qg.Attrs().Name, err)
	}
	routes, err := h.Handle.RouteList(qg, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("router %s: routes of %s: %w", routerLabel(r), qg.Attrs().Name, err)
	}
	m.Ports = append(m.Ports, model.Port{ID: id, NetworkID: gw.NetworkID, DeviceID: r.ID, DeviceOwner: model.DeviceOwnerRouterGateway,
		MACAddress: qg.Attrs().HardwareAddr.String(), FixedIPs: gw.ExternalFixedIPs, AdminStateUp: true})
	for _, ip := range gw.ExternalFixedIPs {
		a, err := netip.ParseAddr(ip.IPAddress)
		if err != nil || m.subnet(ip.SubnetID) != nil {
			continue
		}
		var prefix netip.Prefix
		for _, ad := range addrs {
			if p, ok := netipPrefix(ad.IPNet); ok && p.Addr() == a {
				prefix = p.Masked()
			}
		}
		if !prefix.IsValid() {
			continue
		}
		sub := model.Subnet{ID: ip.SubnetID, NetworkID: gw.NetworkID, CIDR: prefix.String(), IPVersion: 4}
		if a.Is6() {
			sub.IPVersion = 6
		}
		for _, rt := range routes {
			hop, ok := netip.AddrFromSlice(rt.Gw)
			if ok && (rt.Dst == nil || isDefaultRoute(rt.Dst)) && hop.Unmap().Is4() == a.Is4() {
				s := hop.Unmap().String()
				sub.GatewayIP = &s
			}
		}
		m.Subnets = append(m.Subnets, sub)
	}
	return nil
}

func netipPrefix(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), ok
}

func isDefaultRoute(n *net.IPNet) bool {
	ones, _ := n.Mask.Size()
	return ones == 0
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
