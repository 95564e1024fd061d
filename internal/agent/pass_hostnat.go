package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/nsnet/nsnet/internal/dataplane"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/nat"
	"github.com/nsnet/nsnet/internal/store"
)

// The networks' reconciler: a network is its bridge, with its gateway
// addresses when the host is its gateway and its uplink, keyed
// store.Networks/<id>. Desired: d.networks. Ensure: ensureNetworks, after
// the host NAT, which a host-gateway network's status follows. Delete:
// the bridge, last (its ports and VXLAN device go before it). Discover:
// bridges with a network's alias that no network accounts for under that
// name.
type networkReconciler struct{}

func (networkReconciler) kind() store.Kind                    { return store.Networks }
func (networkReconciler) objects(d *desired, f func(string))  { eachID(d.networks, f) }
func (networkReconciler) wanted(d *desired) func(string) bool { return inMap(d.networks) }
func (networkReconciler) same(a, b any) bool                  { return sameAs(a, b, sameNetwork) }
func (networkReconciler) ensure(_ context.Context, p *pass)   { p.ensureNetworks() }

// watch: a bridge, and the gateway addresses on it.
func (networkReconciler) watch(d *desired, w *wantedKernel) {
	for _, n := range d.networks {
		w.aliases[n.Bridge.Alias] = true
		for _, g := range n.Gateway {
			w.addrs[g.Addr()] = true
		}
	}
}

func (networkReconciler) gone(p *pass, id string, spec any) (deletion, bool) {
	if _, ok := p.d.networks[id]; ok {
		return deletion{}, false
	}
	s := spec.(networkSpec)
	return p.linkDeletion(key{store.Networks, id}, s.Bridge.Name, s.Bridge.Alias), true
}

func (networkReconciler) discover(p *pass, f *found) []deletion {
	return p.linkLeftovers(f, "network", store.Networks, func(id, name string) bool {
		n, ok := p.d.networks[id]
		return ok && n.Bridge.Name == name
	})
}

func (p *pass) ensureNetworks() {
	for _, id := range sortedKeys(p.d.networks) {
		spec := p.d.networks[id]
		if !p.needs(key{store.Networks, id}, spec) && !(spec.HostGateway && p.hostNATRan) {
			continue
		}
		p.ensureNetwork(id, spec)
	}
}

// ensureNetwork programs one network's bridge, its gateway addresses when
// the host is its gateway, and its uplink.
//
// An uplink is the user's interface, not nsnet's: one that is missing (or
// that nsnet refuses to take) leaves the network in ERROR with the reason
// but its bridge programmed, so that its ports still work; the spec is
// recorded without the uplink, so the next pass (a retry, as the pass is
// not clean) looks again and attaches it once it appears. Only an uplink
// this agent attached (one its recorded spec names) is ever released.
func (p *pass) ensureNetwork(id string, spec networkSpec) {
	k := key{store.Networks, id}
	old, _ := p.a.tried[k].(networkSpec)
	changed, err := dataplane.EnsureBridge(p.links, spec.Bridge)
	if err == nil && (spec.HostGateway || len(old.Gateway) > 0) {
		var c bool
		c, err = dataplane.EnsureLinkAddrs(p.links, spec.Bridge.Name, spec.Bridge.Alias, spec.Gateway)
		changed = changed || c
	}
	if err == nil && old.Bridged && old.Uplink != "" && (old.Uplink != spec.Uplink || !spec.Bridged) {
		var c bool
		c, err = dataplane.ReleaseUplink(p.links, old.Uplink, spec.Bridge.Name)
		changed = changed || c
	}
	if err != nil {
		// The old uplink may still be attached: the retry releases it.
		tried := spec
		tried.Uplink, tried.Bridged = old.Uplink, old.Bridged
		p.record(k, tried, changed, err, status{})
		return
	}
	ok := hostGatewayStatus(status{model.StatusActive, ""}, spec, p.a.hostNATErr)
	c, problem := p.ensureUplink(spec)
	changed = changed || c
	if problem != nil {
		ok = status{model.StatusError, problem.Error()}
		spec.Uplink = "" // not attached: look again next pass
		p.mu.Lock()
		p.errors++
		p.mu.Unlock()
	}
	p.record(k, spec, changed, nil, ok)
}

// ensureUplink attaches a bridged uplink, and checks that a routed one
// exists, for the status to say so when it does not.
func (p *pass) ensureUplink(spec networkSpec) (changed bool, err error) {
	switch {
	case spec.Uplink == "":
		return false, nil
	case spec.Bridged:
		changed, err = dataplane.AttachUplink(p.links, spec.Uplink, spec.Bridge.Name, spec.Bridge.Alias)
		if errors.Is(err, dataplane.ErrNoUplink) {
			err = fmt.Errorf("%w; it is attached to the bridge when it appears", err)
		}
		return changed, err
	}
	link, err := p.links.Get(spec.Uplink)
	if err == nil && link == nil {
		err = fmt.Errorf("uplink %s %w; its NAT applies when it appears", spec.Uplink, dataplane.ErrNoUplink)
	}
	return false, err
}

// hostNATKind names the host NAT's reconciler: the host's one nsnet
// table, whose applied spec the agent keeps (hostNATApplied).
const hostNATKind store.Kind = "hostnat"

// The host NAT's reconciler: the host's table, first: it needs nothing,
// and the host-gateway networks' statuses follow it.
type hostNATReconciler struct{ ownState }

func (hostNATReconciler) kind() store.Kind                  { return hostNATKind }
func (hostNATReconciler) ensure(_ context.Context, p *pass) { p.ensureHostNAT() }

// ensureHostNAT programs the host's share of host NAT: forwarding on, and
// the host's nsnet table, Applied like a router's (ensureNAT); without
// any host-gateway network or published port, no table. It runs before
// the networks, which it does not need (the table names interfaces, it
// does not look them up): when it ran, every host-gateway network is
// visited after it, and is ACTIVE only if it worked.
func (p *pass) ensureHostNAT() {
	spec := p.d.hostNAT
	if !p.full && p.a.hostNATDone && sameHostNAT(p.a.hostNATApplied, spec) {
		return
	}
	err := p.applyHostNAT(spec)
	p.hostNATRan = true
	p.a.hostNATDone, p.a.hostNATApplied, p.a.hostNATErr = err == nil, spec, ""
	if err != nil {
		p.errors++
		p.a.hostNATErr = fmt.Sprintf("host NAT: %v", err)
		p.a.log.Error("host NAT", "err", err)
	}
}

func (p *pass) applyHostNAT(spec hostNATSpec) error {
	name := p.a.cfg.HostNetns
	if !spec.Wanted {
		p.a.nat.close(hostNATKey)
		if p.full || p.a.hostNATApplied.Wanted {
			if _, err := nat.DeleteTable(name); err != nil {
				return fmt.Errorf("delete the host's nsnet table: %w", err)
			}
		}
		return nil
	}
	ns, err := dataplane.OpenNamespace(name)
	if err != nil {
		return err
	}
	defer ns.Close()
	// Forwarding stays on once nsnet turned it on: the host may forward
	// for other reasons, and nsnet did not record how it found it.
	if _, err := dataplane.EnsureSysctls(ns, dataplane.HostNATSysctls); err != nil {
		return err
	}
	_, err = p.ensureNAT(hostNATKey, ns, spec.NAT)
	return err
}

// hostGatewayStatus is the status of network id given the host NAT's
// outcome: a host-gateway network is not ACTIVE while the host's table is
// not programmed.
func hostGatewayStatus(st status, spec networkSpec, natErr string) status {
	if spec.HostGateway && natErr != "" && st.Status == model.StatusActive {
		return status{model.StatusError, natErr}
	}
	return st
}
