package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	vnetns "github.com/vishvananda/netns"

	"github.com/nsnet/nsnet/internal/dataplane"
	"github.com/nsnet/nsnet/internal/dhcp"
	"github.com/nsnet/nsnet/internal/dhcp6"
	"github.com/nsnet/nsnet/internal/metadata"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/nameserver"
	"github.com/nsnet/nsnet/internal/netns"
	"github.com/nsnet/nsnet/internal/store"
)

// The DHCP reconciler: a network's qdhcp namespace holding its DHCP port,
// with the network's servers (DHCP, DHCPv6, DNS, metadata) on it, keyed
// dhcpKind/<network id>. Desired: d.dhcp. Ensure: ensureDHCPs. Delete:
// the namespace, after closing the servers. Discover: namespaces with the
// agent's prefix and a DHCP marker of this host that no network's DHCP
// is named after. Its status is part of its network's.
type dhcpReconciler struct{}

func (dhcpReconciler) kind() store.Kind                    { return dhcpKind }
func (dhcpReconciler) objects(d *desired, f func(string))  { eachID(d.dhcp, f) }
func (dhcpReconciler) wanted(d *desired) func(string) bool { return inMap(d.dhcp) }
func (dhcpReconciler) same(a, b any) bool                  { return sameAs(a, b, equal[dhcpSpec]) }
func (dhcpReconciler) ensure(ctx context.Context, p *pass) { p.ensureDHCPs(ctx) }
func (dhcpReconciler) whole() store.Kind                   { return store.Networks }

func (dhcpReconciler) gone(p *pass, id string, spec any) (deletion, bool) {
	s := spec.(dhcpSpec)
	if cur, ok := p.d.dhcp[id]; ok && cur.Netns == s.Netns {
		return deletion{}, false
	}
	return p.dhcpDeletion(key{dhcpKind, id}, s), true
}

func (dhcpReconciler) discover(p *pass, f *found) []deletion {
	return p.namespaceLeftovers(f, dataplane.ParseDHCPMarker, func(id string, ns markedNetns) deletion {
		return p.dhcpDeletion(key{dhcpKind, id}, dhcpSpec{Netns: ns.name, Marker: ns.marker})
	})
}

func (dhcpReconciler) namespaces(d *desired, f func(string)) {
	for _, s := range d.dhcp {
		f(s.Netns)
	}
}

// networkServers are the servers of one network, and where their sockets
// are: a namespace replaced or an interface recreated needs new sockets.
// Each server starts on its own, so that one that cannot (a socket that
// does not bind) leaves the others serving, and is tried again on the
// next pass; nil is one not running.
type networkServers struct {
	ino     uint64
	ifindex int
	dhcp    *dhcp.Server
	dhcp6   *dhcp6.Server
	meta    *metadata.Listener
	// dns are the DNS servers by the address they answer on: one per
	// DHCP subnet.
	dns map[netip.Addr]*nameserver.Server
}

// configure hands the servers this pass's view of their network.
func (n *networkServers) configure(svc networkService, leaseTime time.Duration) {
	if n.dhcp != nil {
		cfg := *svc.DHCP
		cfg.LeaseTime = leaseTime
		n.dhcp.SetConfig(&cfg)
	}
	if n.dhcp6 != nil && svc.DHCP6 != nil {
		cfg := *svc.DHCP6
		cfg.LeaseTime = leaseTime
		n.dhcp6.SetConfig(&cfg)
	}
	for _, s := range n.dns {
		s.SetZone(svc.DNS)
	}
}

func (n *networkServers) close() {
	if n.dhcp != nil {
		n.dhcp.Close()
	}
	if n.dhcp6 != nil {
		n.dhcp6.Close()
	}
	for _, s := range n.dns {
		s.Close()
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
	if len(started) > 0 {
		p.a.log.Info("servers started", "network", networkID, "netns", spec.Netns, "servers", started)
	}
	// Starting the daemon's own servers changes nothing in the kernel: a
	// restart that finds the namespace as it left it changed nothing.
	p.record(k, spec, changed || c, err, status{model.StatusActive, ""})
}

// ensureServers starts those of network id's servers that do not run yet
// in ns on the DHCP port's interface, stops the DNS servers of addresses
// the port no longer has, and hands the servers this pass's
// configuration. It reports what it started, and why a server could not
// start: one subnet's DNS, say, leaving the other subnets served.
func (p *pass) ensureServers(networkID string, ns *dataplane.Namespace, veth dataplane.PortSpec) (started []string, err error) {
	ino, err := netns.Inode(ns.Name)
	if err != nil {
		return nil, err
	}
	ifindex, err := dataplane.LinkIndex(ns, veth.IfName, veth.Alias)
	if err != nil {
		return nil, err
	}
	svc := p.d.services[networkID]
	cur, ok := p.a.servers.get(networkID)
	if !ok || cur.ino != ino || cur.ifindex != ifindex {
		p.a.servers.close(networkID)
		cur = &networkServers{ino: ino, ifindex: ifindex, dns: map[netip.Addr]*nameserver.Server{}}
		p.a.servers.set(networkID, cur)
	}
	log := p.a.log.With("network", networkID)
	handle := vnetns.NsHandle(ns.Fd())
	var failed []string
	if cur.dhcp == nil {
		if cur.dhcp, err = dhcp.Listen(handle, veth.IfName, log); err != nil {
			failed = append(failed, "DHCP: "+err.Error())
		} else {
			cur.dhcp.CountInto(&p.a.dhcpCounts)
			started = append(started, "DHCP")
		}
	}
	switch {
	case svc.DHCP6 == nil && cur.dhcp6 != nil:
		// The network's last DHCPv6 subnet went.
		cur.dhcp6.Close()
		cur.dhcp6 = nil
	case svc.DHCP6 != nil && cur.dhcp6 == nil:
		if cur.dhcp6, err = dhcp6.Listen(handle, veth.IfName, log); err != nil {
			failed = append(failed, "DHCPv6: "+err.Error())
		} else {
			cur.dhcp6.CountInto(&p.a.dhcp6Counts)
			started = append(started, "DHCPv6")
		}
	}
	if cur.meta == nil {
		if cur.meta, err = p.a.metadata.Listen(handle, netip.AddrPortFrom(metadata.Addr, 80)); err != nil {
			failed = append(failed, "metadata: "+err.Error())
		} else {
			cur.meta.SetNetworks(map[netip.Addr]string{{}: networkID})
			started = append(started, "metadata")
		}
	}
	for a, s := range cur.dns {
		if !slices.ContainsFunc(svc.Listen, func(l dnsAddr) bool { return l.Addr == a }) {
			s.Close()
			delete(cur.dns, a)
		}
	}
	for _, l := range svc.Listen {
		if cur.dns[l.Addr] != nil {
			continue
		}
		s, err := nameserver.Listen(handle, l.Addr, p.a.cfg.DNSUpstreams, log)
		if err != nil {
			failed = append(failed, fmt.Sprintf("subnet %s: DNS on %s: %v", l.Subnet, l.Addr, err))
			continue
		}
		s.CountInto(&p.a.dnsCounts)
		cur.dns[l.Addr] = s
		started = append(started, "DNS on "+l.Addr.String())
	}
	cur.configure(svc, p.a.cfg.DHCPLeaseTime)
	if len(failed) > 0 {
		return started, errors.New(strings.Join(failed, "; "))
	}
	return started, nil
}

// ensureDHCPNetns ensures a network's qdhcp namespace, replacing a
// leftover.
func (p *pass) ensureDHCPNetns(networkID string, spec dhcpSpec) (*dataplane.Namespace, bool, error) {
	ensure := func() (*dataplane.Namespace, bool, error) { return dataplane.EnsureDHCPNetns(spec.Netns, spec.Marker) }
	return p.ensureOwnNetns(spec.Netns, ensure, func() { p.a.servers.close(networkID); p.a.closeMetadata6In(spec.Netns) })
}

func (p *pass) dhcpDeletion(k key, spec dhcpSpec) deletion {
	return deletion{k: k, what: "namespace " + spec.Netns, run: func() (bool, error) {
		p.a.servers.close(k.id)
		p.a.closeMetadata6In(spec.Netns)
		err := dataplane.DeleteInstanceNetns(spec.Netns, spec.Marker, p.links)
		return err == nil, err
	}}
}
