package trace

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/netns"
)

// External is a temporary source on an external network: a namespace of
// its own, plugged into the network's bridge by a veth pair, with a free
// address of the network's subnet. It stands for a host of the outside
// world, to trace traffic into floating IPs and port forwards. Remove
// takes all of it away.
type External struct {
	Source
	hostNetns string
}

// ExternalSource builds an External on network (an id) to send to dst:
// namespace <prefix>trace-<random>, interface eth0, holding the highest
// address of the network's first subnet of dst's IP version that no port
// holds and that is not the gateway, with a default route via the
// gateway. An IPv6 address is added without duplicate address detection,
// so that the probe can leave at once; for an IPv6 dst that a router on
// the network routes inside nsnet (ExternalVia), the source also routes
// dst through that router, as an upstream router the admin configured
// would.
func (m *Model) ExternalSource(network string, dst netip.Addr) (ext *External, err error) {
	sub, addr, err := m.freeAddress(network, dst.Is6())
	if err != nil {
		return nil, err
	}
	via, _ := m.ExternalVia(network, dst)
	var r [3]byte
	rand.Read(r[:])
	tag := hex.EncodeToString(r[:])
	ext = &External{hostNetns: m.HostNetns, Source: Source{
		Netns: m.Prefix + "trace-" + tag, Interface: "eth0", Node: "external source " + addr.String(),
		Addr: addr, Network: network, HostEnd: "nstrace-" + tag, Via: via,
	}}
	defer func() {
		if err != nil {
			ext.Remove()
		}
	}()
	if err := netns.Create(ext.Netns); err != nil {
		return ext, err
	}
	host, err := netns.NewHandle(m.HostNetns)
	if err != nil {
		return ext, err
	}
	defer host.Close()
	bridge, err := host.LinkByName(model.BridgeName(network))
	if err != nil {
		return ext, fmt.Errorf("bridge of network %s: %w", m.networkName(network), err)
	}
	fd, err := netns.Open(ext.Netns)
	if err != nil {
		return ext, err
	}
	defer fd.Close()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = ext.HostEnd
	attrs.MasterIndex = bridge.Attrs().Index
	attrs.Flags = net.FlagUp
	if err := host.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: ext.Interface, PeerNamespace: netlink.NsFd(fd)}); err != nil {
		return ext, fmt.Errorf("plug the trace source into network %s: %w", m.networkName(network), err)
	}
	inside, err := netns.NewHandleAt(fd)
	if err != nil {
		return ext, err
	}
	defer inside.Close()
	for _, name := range []string{"lo", ext.Interface} {
		link, err := inside.LinkByName(name)
		if err != nil {
			return ext, err
		}
		if name == ext.Interface {
			a := &netlink.Addr{IPNet: &net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(prefixOf(sub).Bits(), addr.BitLen())}}
			if addr.Is6() {
				a.Flags = unix.IFA_F_NODAD
				// Its link-local address too: neighbour discovery
				// speaks from it.
				if _, err := netns.EnsureSysctl(fd, "net.ipv6.conf."+ext.Interface+".accept_dad", "0"); err != nil {
					return ext, fmt.Errorf("trace source: %w", err)
				}
			}
			if err := inside.AddrAdd(link, a); err != nil {
				return ext, fmt.Errorf("address the trace source: %w", err)
			}
		}
		if err := inside.LinkSetUp(link); err != nil {
			return ext, err
		}
		if name == ext.Interface && sub.GatewayIP != nil {
			if gw, err := netip.ParseAddr(*sub.GatewayIP); err == nil {
				rt := &netlink.Route{LinkIndex: link.Attrs().Index, Gw: gw.AsSlice()}
				if err := inside.RouteAdd(rt); err != nil {
					return ext, fmt.Errorf("default route of the trace source: %w", err)
				}
			}
		}
		if name == ext.Interface && via.IsValid() {
			rt := &netlink.Route{LinkIndex: link.Attrs().Index, Gw: via.AsSlice(),
				Dst: &net.IPNet{IP: dst.AsSlice(), Mask: net.CIDRMask(dst.BitLen(), dst.BitLen())}}
			if err := inside.RouteAdd(rt); err != nil {
				return ext, fmt.Errorf("route of the trace source to %s via %s: %w", dst, via, err)
			}
		}
	}
	return ext, nil
}

// Remove deletes the source's veth pair and namespace.
func (e *External) Remove() error {
	var errs []error
	if h, err := netns.NewHandle(e.hostNetns); err == nil {
		if link, err := h.LinkByName(e.HostEnd); err == nil {
			if err := h.LinkDel(link); err != nil {
				errs = append(errs, fmt.Errorf("delete %s: %w", e.HostEnd, err))
			}
		}
		h.Close()
	} else {
		errs = append(errs, err)
	}
	if err := netns.Delete(e.Netns); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// freeAddress picks the address of an external source on network: the
// highest of its first IPv4 (or IPv6) subnet that is not the gateway and
// that no port holds.
func (m *Model) freeAddress(network string, v6 bool) (*model.Subnet, netip.Addr, error) {
	used := map[netip.Addr]bool{}
	for _, p := range m.Ports {
		for _, ip := range p.FixedIPs {
			if a, err := netip.ParseAddr(ip.IPAddress); err == nil {
				used[a] = true
			}
		}
	}
	for _, f := range m.FloatingIPs {
		if a, err := netip.ParseAddr(f.FloatingIPAddress); err == nil {
			used[a] = true
		}
	}
	for i := range m.Subnets {
		s := &m.Subnets[i]
		prefix := prefixOf(s)
		if s.NetworkID != network || !prefix.IsValid() || prefix.Addr().Is6() != v6 {
			continue
		}
		if s.GatewayIP != nil {
			if gw, err := netip.ParseAddr(*s.GatewayIP); err == nil {
				used[gw] = true
			}
		}
		// Below the broadcast address (IPv4), or the last address
		// (IPv6, which has no broadcast), then down.
		a := lastAddr(prefix)
		if a.Is4() {
			a = a.Prev()
		}
		for ; prefix.Contains(a) && a != prefix.Addr(); a = a.Prev() {
			if !used[a] {
				return s, a, nil
			}
		}
	}
	version := "IPv4"
	if v6 {
		version = "IPv6"
	}
	return nil, netip.Addr{}, fmt.Errorf("network %s has no %s subnet with a free address for a trace source", m.networkName(network), version)
}

// lastAddr is the highest address of p (p masked).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
