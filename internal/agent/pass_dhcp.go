package agent

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	vnetns "github.com/vishvananda/netns"

	"github.com/nsnet/nsnet/internal/dataplane"
	"github.com/nsnet/nsnet/internal/dhcp"
	"github.com/nsnet/nsnet/internal/metadata"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/nameserver"
	"github.com/nsnet/nsnet/internal/netns"
	"github.com/nsnet/nsnet/internal/store"
)

// networkServers are the servers of one network, and where their sockets
// are: a namespace replaced or an interface recreated needs new sockets.
type networkServers struct {
	ino     uint64
	ifindex int
	dhcp    *dhcp.Server
	dns     *nameserver.Server
	meta    *metadata.Listener
	// dnsAddrs are the addresses dns listens on.
	dnsAddrs []netip.Addr
}

// configure hands the servers this pass's view of their network.
func (n *networkServers) configure(svc networkService, leaseTime time.Duration) {
	cfg := *svc.DHCP
	cfg.LeaseTime = leaseTime
	n.dhcp.SetConfig(&cfg)
	n.dns.SetZone(svc.DNS)
}

func (n *networkServers) close() {
	if n.dhcp != nil {
		n.dhcp.Close()
	}
	if n.dns != nil {
		n.dns.Close()
	}
	if n.meta != nil {
		n.meta.Close()
	}
}

// ensureDHCPs programs the qdhcp namespace and DHCP port of each network
// that needs it, then makes sure every network's servers run, in the
// namespace as it is now, with the configuration of this pass.
func (p *pass) ensureDHCPs(ctx context.Context) {
	var jobs []func()
	for _, id := range sortedKeys(p.d.dhcp) {
		spec := p.d.dhcp[id]
		k, pk := key{dhcpKind, id}, key{store.Ports, spec.PortID}
		if srv, ok := p.a.servers.get(id); ok && !p.needs(k, spec) && !p.needs(pk, p.d.ports[spec.PortID]) {
			srv.configure(p.d.services[id], p.a.cfg.DHCPLeaseTime)
			continue
		}
		jobs = append(jobs, func() {
			if ctx.Err() == nil {
				p.ensureDHCP(id, spec)
			}
		})
	}
	parallel(workers, jobs)
}

// ensureDHCP programs one network's namespace and DHCP port and (re)starts
// its servers.
func (p *pass) ensureDHCP(networkID string, spec dhcpSpec) {
	k, pk := key{dhcpKind, networkID}, key{store.Ports, spec.PortID}
	port := p.d.ports[spec.PortID]
	ns, changed, err := p.ensureDHCPNetns(networkID, spec)
	if err != nil {
		err = fmt.Errorf("namespace %s: %w", spec.Netns, err)
		p.record(pk, port, false, err, status{})
		p.record(k, spec, changed, err, status{})
		return
	}
	defer ns.Close()
	if !p.isGood(key{store.Networks, networkID}) {
		err := fmt.Errorf("network %s is not programmed", networkID)
		p.record(pk, port, false, err, status{})
		p.record(k, spec, changed, err, status{})
		return
	}
	c, err := dataplane.EnsureVethPort(p.links, ns, port.Veth)
	ok := status{model.StatusActive, ""}
	if !port.Veth.Up {
		ok = status{model.StatusDown, ""}
	}
	p.record(pk, port, c, err, ok)
	if err != nil {
		p.record(k, spec, changed, err, status{})
		return
	}
	started, err := p.ensureServers(networkID, ns, port.Veth)
	if started {
		p.a.log.Info("DHCP and DNS servers started", "network", networkID, "netns", spec.Netns)
	}
	// Starting the daemon's own servers changes nothing in the kernel: a
	// restart that finds the namespace as it left it changed nothing.
	p.record(k, spec, changed || c, err, status{model.StatusActive, ""})
}

// ensureServers starts network id's servers in ns on the DHCP port's
// interface, unless they already run there, and hands them this pass's
// configuration.
func (p *pass) ensureServers(networkID string, ns *dataplane.Namespace, veth dataplane.PortSpec) (started bool, err error) {
	ino, err := netns.Inode(ns.Name)
	if err != nil {
		return false, err
	}
	ifindex, err := dataplane.LinkIndex(ns, veth.IfName, veth.Alias)
	if err != nil {
		return false, err
	}
	svc := p.d.services[networkID]
	cur, ok := p.a.servers.get(networkID)
	if !ok || cur.ino != ino || cur.ifindex != ifindex || !slices.Equal(cur.dnsAddrs, svc.Listen) {
		p.a.servers.close(networkID)
		log := p.a.log.With("network", networkID)
		cur = &networkServers{ino: ino, ifindex: ifindex, dnsAddrs: svc.Listen}
		if cur.dhcp, err = dhcp.Listen(vnetns.NsHandle(ns.Fd()), veth.IfName, log); err != nil {
			return false, err
		}
		if cur.dns, err = nameserver.Listen(vnetns.NsHandle(ns.Fd()), svc.Listen, p.a.cfg.DNSUpstreams, log); err != nil {
			cur.close()
			return false, err
		}
		if cur.meta, err = p.a.metadata.Listen(vnetns.NsHandle(ns.Fd()), netip.AddrPortFrom(metadata.Addr, 80)); err != nil {
			cur.close()
			return false, err
		}
		cur.meta.SetNetworks(map[netip.Addr]string{{}: networkID})
		p.a.servers.set(networkID, cur)
		started = true
	}
	cur.configure(svc, p.a.cfg.DHCPLeaseTime)
	return started, nil
}

// ensureDHCPNetns ensures a network's qdhcp namespace, replacing a
// leftover.
func (p *pass) ensureDHCPNetns(networkID string, spec dhcpSpec) (*dataplane.Namespace, bool, error) {
	ensure := func() (*dataplane.Namespace, bool, error) { return dataplane.EnsureDHCPNetns(spec.Netns, spec.Marker) }
	return p.ensureOwnNetns(spec.Netns, ensure, func() { p.a.servers.close(networkID) })
}

func (p *pass) dhcpDeletion(k key, spec dhcpSpec) deletion {
	return deletion{k: k, what: "namespace " + spec.Netns, run: func() (bool, error) {
		p.a.servers.close(k.id)
		err := dataplane.DeleteInstanceNetns(spec.Netns, spec.Marker, p.links)
		return err == nil, err
	}}
}
