package agent

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	vnetns "github.com/vishvananda/netns"

	"github.com/nsnet/nsnet/internal/dataplane"
	"github.com/nsnet/nsnet/internal/metadata"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/netns"
	"github.com/nsnet/nsnet/internal/store"
)

// Metadata over IPv6 (Neutron since Victoria): an instance asks
// http://[fe80::a9fe:a9fe%eth0]/. The address is link-local, so one
// interface on each network with IPv6 carries it (two on one link would
// be duplicates): the qr- port of a router that serves an IPv6 subnet of
// the network, else the network's DHCP port. Its port spec carries
// metadata.Prefix6 like any address (added without DAD, removed when the
// network loses IPv6), and a listener per network answers on it: the
// listeners are this file's reconciler.

// metadata6Spec is where network's IPv6 metadata service answers: the
// port carrying metadata.Prefix6, its interface and namespace.
type metadata6Spec struct {
	PortID string
	Netns  string
	IfName string
	Alias  string
}

// addMetadata6 picks, for every network with an IPv6 subnet, the port
// that serves its IPv6 metadata, and gives that port metadata.Prefix6. It
// runs once routers' and DHCP ports' specs are computed.
func addMetadata6(d *desired, subnetsOf map[string][]model.Subnet) {
	qr := map[string][]string{} // network → qr- ports with IPv6, up first, then by id
	for id, ps := range d.ports {
		if ps.RouterID != "" && !ps.Gateway && slices.ContainsFunc(ps.Veth.Addrs, isGlobal6) {
			qr[ps.NetworkID] = append(qr[ps.NetworkID], id)
		}
	}
	for _, network := range sortedKeys(d.networks) {
		if !slices.ContainsFunc(subnetsOf[network], func(sn model.Subnet) bool { return sn.IPVersion == 6 }) {
			continue
		}
		var port string
		if ids := qr[network]; len(ids) > 0 {
			slices.SortFunc(ids, func(a, b string) int {
				if ua, ub := d.ports[a].Veth.Up, d.ports[b].Veth.Up; ua != ub {
					if ua {
						return -1
					}
					return 1
				}
				return strings.Compare(a, b)
			})
			port = ids[0]
		} else if s, ok := d.dhcp[network]; ok {
			port = s.PortID
		}
		ps, ok := d.ports[port]
		if !ok {
			continue // no router on its IPv6 and no DHCP: nothing serves it
		}
		// A copy: portVeth's slice may be shared with other specs.
		ps.Veth.Addrs = append(slices.Clip(ps.Veth.Addrs), metadata.Prefix6)
		d.ports[port] = ps
		d.metadata6[network] = metadata6Spec{PortID: port, Netns: ps.Netns, IfName: ps.Veth.IfName, Alias: ps.Veth.Alias}
	}
}

// isGlobal6 reports whether a is an IPv6 address beyond the link: one of
// a subnet's.
func isGlobal6(a netip.Prefix) bool { return a.Addr().Is6() && !a.Addr().IsLinkLocalUnicast() }

// metadata6Listener is one network's listener on [fe80::a9fe:a9fe%if]:80,
// and where it was opened: a namespace replaced or a link recreated needs
// a new socket.
type metadata6Listener struct {
	spec    metadata6Spec
	ino     uint64
	ifindex int
	l       *metadata.Listener
}

func (m *metadata6Listener) close() { m.l.Close() }

// metadata6Kind names the IPv6 metadata listeners' reconciler.
const metadata6Kind store.Kind = "metadata6"

// The IPv6 metadata listeners' reconciler: sockets, kept by the agent
// (Agent.metadata6), on the ports of routers and DHCP namespaces, after
// which it comes.
type metadata6Reconciler struct{ ownState }

func (metadata6Reconciler) kind() store.Kind                  { return metadata6Kind }
func (metadata6Reconciler) ensure(_ context.Context, p *pass) { p.ensureMetadata6() }

// ensureMetadata6 makes the IPv6 metadata listeners those of this pass:
// one per network of d.metadata6, on its port's link as it is now. It
// runs after routers and DHCP, whose ports carry the address. Incremental
// passes only look at a network whose spec changed or whose port was
// (re)programmed in this pass; full passes look at every one.
func (p *pass) ensureMetadata6() {
	for id, cur := range p.a.metadata6.snapshot() {
		if spec, ok := p.d.metadata6[id]; !ok || spec != cur.spec {
			p.a.metadata6.close(id)
		}
	}
	for _, id := range sortedKeys(p.d.metadata6) {
		spec := p.d.metadata6[id]
		pk := key{store.Ports, spec.PortID}
		cur, running := p.a.metadata6.get(id)
		p.mu.Lock()
		_, touched := p.tried[pk]
		good := p.good[pk]
		p.mu.Unlock()
		if running && !p.full && !touched {
			continue
		}
		if touched && !good {
			continue // the port is in error already; its retry comes back here
		}
		if err := p.ensureMetadata6Listener(id, spec, cur); err != nil {
			// The port serves the network's metadata: it is not
			// done until it does.
			p.record(pk, p.d.ports[spec.PortID], false, fmt.Errorf("metadata on [%s%%%s]: %w", metadata.Addr6, spec.IfName, err), status{})
		}
	}
}

// ensureMetadata6Listener (re)opens network id's listener unless cur
// runs on spec's link as it is now.
func (p *pass) ensureMetadata6Listener(id string, spec metadata6Spec, cur *metadata6Listener) error {
	ns, err := dataplane.OpenNamespace(spec.Netns)
	if err != nil {
		return err
	}
	defer ns.Close()
	ino, err := netns.Inode(spec.Netns)
	if err != nil {
		return err
	}
	ifindex, err := dataplane.LinkIndex(ns, spec.IfName, spec.Alias)
	if err == nil && ifindex == 0 {
		err = fmt.Errorf("link %s is missing", spec.IfName)
	}
	if err != nil {
		return err
	}
	if cur != nil && cur.ino == ino && cur.ifindex == ifindex {
		return nil
	}
	p.a.metadata6.close(id)
	l, err := p.a.metadata.ListenLinkLocal(vnetns.NsHandle(ns.Fd()), spec.IfName, id)
	if err != nil {
		return err
	}
	p.a.metadata6.set(id, &metadata6Listener{spec: spec, ino: ino, ifindex: ifindex, l: l})
	p.a.log.Info("metadata listener started", "network", id, "netns", spec.Netns, "interface", spec.IfName, "address", metadata.Addr6)
	return nil
}

// closeMetadata6In closes the IPv6 metadata listeners in namespace name,
// which is about to go: their sockets would keep it alive.
func (a *Agent) closeMetadata6In(name string) {
	for id, cur := range a.metadata6.snapshot() {
		if cur.spec.Netns == name {
			a.metadata6.close(id)
		}
	}
}
