package trace

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/nsnet/nsnet/internal/dataplane"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/netns"
)

// KindUnderlay is a host's interface to the underlay, where a VXLAN hop's
// outer packet travels between two hosts' VTEPs.
const KindUnderlay = "underlay"

// EndRemote: the way out goes on on another host, which this trace cannot
// see.
const EndRemote = "remote"

// Tunnel is a VXLAN hop: the outer packet's addresses and port, and the
// network's VNI.
type Tunnel struct {
	Local  netip.Addr `json:"local"`  // this host's VTEP
	Remote netip.Addr `json:"remote"` // the other host's
	VNI    uint32     `json:"vni"`
	Port   uint16     `json:"port"` // UDP destination port
	// RemoteNetns is the namespace of the host that holds Remote, ""
	// when this machine has none.
	RemoteNetns string `json:"remote_netns,omitempty"`
}

func (t Tunnel) String() string {
	s := fmt.Sprintf("VXLAN vni %d, %s > %s port %d", t.VNI, t.Local, t.Remote, t.Port)
	if t.RemoteNetns != "" {
		return s + ", to the host in " + t.RemoteNetns
	}
	return s + ", to a host this trace cannot see"
}

// AcrossHosts follows the plan over the overlay: a hop out of the host's
// bridge to a port whose tap is not on this host is where the frame
// leaves through the network's VXLAN device, to the VTEP its forwarding
// entry for the port's MAC names (or, without one, the only VTEP it
// replicates to). The hop becomes the VXLAN device and the underlay
// interface towards that VTEP; then, if a namespace on this machine holds
// the VTEP address (labs run hosts as namespaces), that host's underlay
// interface, its VXLAN device of the same VNI and the port's tap there,
// and the rest of the plan as it was; else the plan ends there (End
// EndRemote): the rest is on a host this trace cannot see. It reads the
// kernel, and changes nothing in it; a plan that crosses no tunnel is
// returned as it was.
func (m *Model) AcrossHosts(plan *Plan) ([]Tunnel, error) {
	var tunnels []Tunnel
	for i := 0; i < len(plan.Hops); i++ {
		h := plan.Hops[i]
		if h.Kind != KindBridge || h.Ingress || h.Netns != m.HostNetns || h.Network == "" {
			continue
		}
		hops, tun, ok, err := m.tunnel(h)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		tunnels = append(tunnels, tun)
		rest := plan.Hops[i+1:]
		if tun.RemoteNetns == "" {
			rest = nil
			plan.End = EndRemote
			plan.EndDetail = fmt.Sprintf("leaves this host through VXLAN vni %d (UDP port %d) to VTEP %s, on a host this trace cannot see: the rest of the way is there", tun.VNI, tun.Port, tun.Remote)
		}
		plan.Hops = append(append(append([]Hop{}, plan.Hops[:i]...), hops...), rest...)
		i += len(hops) - 1
	}
	return tunnels, nil
}

// tunnel is what replaces hop h (out of a bridge to a port's tap) when
// the tap is on another host: the hops of the VXLAN tunnel to it, and the
// tunnel. ok is false when the tap is on this host, or no VXLAN device
// knows where it is.
func (m *Model) tunnel(h Hop) (hops []Hop, tun Tunnel, ok bool, err error) {
	var port *model.Port
	for i := range m.Ports {
		if model.TapName(m.Ports[i].ID) == h.Interface {
			port = &m.Ports[i]
		}
	}
	mac, _ := net.ParseMAC(portMAC(port))
	if port == nil || mac == nil {
		return nil, tun, false, nil
	}
	ns, err := dataplane.OpenNamespace(h.Netns)
	if err != nil {
		return nil, tun, false, err
	}
	defer ns.Close()
	links, err := ns.Handle.LinkList()
	if err != nil {
		return nil, tun, false, fmt.Errorf("list links in %s: %w", nsLabel(h.Netns), err)
	}
	var vx *netlink.Vxlan
	for _, l := range links {
		if l.Attrs().Name == h.Interface {
			return nil, tun, false, nil // the port is here
		}
		if v, isVX := l.(*netlink.Vxlan); isVX && l.Attrs().Alias == dataplane.VXLANAlias(h.Network) {
			vx = v
		}
	}
	if vx == nil {
		return nil, tun, false, nil
	}
	fdb, err := dataplane.FDBEntries(dataplane.NewLinks(ns.Handle), vx.Attrs().Name, vx.Attrs().Alias)
	if err != nil {
		return nil, tun, false, err
	}
	var flood []netip.Addr
	for _, e := range fdb {
		switch {
		case bytes.Equal(e.MAC, mac):
			tun.Remote = e.Dst
		case bytes.Equal(e.MAC, dataplane.FloodMAC):
			flood = append(flood, e.Dst)
		}
	}
	if !tun.Remote.IsValid() && len(flood) == 1 {
		tun.Remote = flood[0]
	}
	if !tun.Remote.IsValid() {
		return nil, tun, false, nil
	}
	tun.VNI, tun.Port = uint32(vx.VxlanId), uint16(vx.Port)
	tun.Local, _ = netip.AddrFromSlice(vx.SrcAddr)
	tun.Local = tun.Local.Unmap()
	routes, err := ns.Handle.RouteGet(tun.Remote.AsSlice())
	if err != nil || len(routes) == 0 {
		return nil, tun, false, fmt.Errorf("%s: no route to VTEP %s for %s: %w", nsLabel(h.Netns), tun.Remote, vx.Attrs().Name, err)
	}
	underlay := ""
	for _, l := range links {
		if l.Attrs().Index == routes[0].LinkIndex {
			underlay = l.Attrs().Name
		}
	}
	if !tun.Local.IsValid() {
		tun.Local, _ = netip.AddrFromSlice(routes[0].Src)
		tun.Local = tun.Local.Unmap()
	}
	node := fmt.Sprintf("underlay, VTEP %s", tun.Local)
	hops = []Hop{
		{Netns: h.Netns, Interface: vx.Attrs().Name, Kind: KindBridge, Node: h.Node, Network: h.Network},
		{Netns: h.Netns, Interface: underlay, Kind: KindUnderlay, Node: node},
	}
	remote, err := vtepHost(tun.Remote, h.Netns, h.Interface)
	if err != nil || remote == nil || remote.vxlan(tun.VNI) == "" {
		return hops, tun, true, err
	}
	tun.RemoteNetns = remote.netns
	hops = append(hops,
		Hop{Netns: remote.netns, Interface: remote.underlay, Kind: KindUnderlay, Node: fmt.Sprintf("underlay, VTEP %s", tun.Remote), Ingress: true},
		Hop{Netns: remote.netns, Interface: remote.vxlan(tun.VNI), Kind: KindBridge, Node: h.Node, Ingress: true, Network: h.Network},
		Hop{Netns: remote.netns, Interface: h.Interface, Kind: KindBridge, Node: h.Node, Network: h.Network},
	)
	return hops, tun, true, nil
}

func portMAC(p *model.Port) string {
	if p == nil {
		return ""
	}
	return p.MACAddress
}

// remoteHost is a host namespace on this machine that holds a VTEP.
type remoteHost struct {
	netns, underlay string
	vxlans          map[uint32]string // VNI → device
}

func (r *remoteHost) vxlan(vni uint32) string { return r.vxlans[vni] }

// vtepHost finds the namespace, other than from, that holds address vtep
// on one of its interfaces, has a VXLAN device and the port's tap: nil
// when there is none on this machine. (The tap's name, from the port's
// id, tells the host apart from another lab's with the same addresses.)
func vtepHost(vtep netip.Addr, from, tap string) (*remoteHost, error) {
	names, err := netns.List()
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		if name == from {
			continue
		}
		h, err := remoteIn(name, vtep, tap)
		if err != nil || h != nil {
			return h, err
		}
	}
	return nil, nil
}

func remoteIn(name string, vtep netip.Addr, tap string) (*remoteHost, error) {
	ns, err := dataplane.OpenNamespace(name)
	if err != nil {
		return nil, nil // gone meanwhile, or not a namespace: not the host
	}
	defer ns.Close()
	addrs, err := ns.Handle.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("addresses of namespace %s: %w", name, err)
	}
	idx := -1
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == vtep {
			idx = a.LinkIndex
		}
	}
	if idx < 0 {
		return nil, nil
	}
	links, err := ns.Handle.LinkList()
	if err != nil {
		return nil, fmt.Errorf("links of namespace %s: %w", name, err)
	}
	h := &remoteHost{netns: name, vxlans: map[uint32]string{}}
	hasTap := false
	for _, l := range links {
		hasTap = hasTap || l.Attrs().Name == tap
		if l.Attrs().Index == idx {
			h.underlay = l.Attrs().Name
		}
		if v, ok := l.(*netlink.Vxlan); ok {
			h.vxlans[uint32(v.VxlanId)] = l.Attrs().Name
		}
	}
	if len(h.vxlans) == 0 || !hasTap {
		return nil, nil
	}
	return h, nil
}
