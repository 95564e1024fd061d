package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nsnet/nsnet/internal/dataplane"
	"github.com/nsnet/nsnet/internal/dataplane/dpspec"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// Trunks, wired as Linux bridge's trunk driver does it: the instance has
// the parent port as its link and sends each subport's traffic on it
// tagged with the subport's VLAN id; on the host, each subport has an
// interface in its network's bridge that takes that traffic untagged (see
// dataplane.VLANSpec for how, without 802.1Q devices). That interface is
// the subport's on the host: the firewall filters it as it filters a tap
// (firewallSpec).

// The trunks' reconciler: a trunk whose parent is plugged here is its
// subports' interfaces and the tagging filters on its parent's tap, keyed
// store.Trunks/<id>. Desired: d.trunks. Ensure: ensureTrunks, after the
// instances' ports (the parents). Delete: its subports' interfaces.
// Discover: the subports' (see subportReconciler).
type trunkReconciler struct{ noDiscovery }

func (trunkReconciler) kind() store.Kind                    { return store.Trunks }
func (trunkReconciler) objects(d *desired, f func(string))  { eachID(d.trunks, f) }
func (trunkReconciler) wanted(d *desired) func(string) bool { return inMap(d.trunks) }
func (trunkReconciler) same(a, b any) bool                  { return sameAs(a, b, sameTrunk) }
func (trunkReconciler) ensure(_ context.Context, p *pass)   { p.ensureTrunks() }

func (trunkReconciler) gone(p *pass, id string, spec any) (deletion, bool) {
	if _, ok := p.d.trunks[id]; ok {
		return deletion{}, false
	}
	return p.trunkDeletion(key{store.Trunks, id}, spec.(trunkSpec)), true
}

// The subports' reconciler: a wired subport's interface on the host is
// its trunk's (the trunk programs and deletes it, and its status is the
// trunk's); what a full pass finds of subports that went while the agent
// was down is theirs: their veths (discover), and their filters on a
// parent's tap that stays, which are not links (swept in ensure, after
// every deletion). It comes before trunks in the registry, so that a
// trunk's deletion goes before the leftovers'.
type subportReconciler struct{}

func (subportReconciler) kind() store.Kind               { return subportKind }
func (subportReconciler) objects(*desired, func(string)) {}
func (subportReconciler) wanted(*desired) func(string) bool {
	return func(string) bool { return false }
}
func (subportReconciler) same(a, b any) bool                       { return false }
func (subportReconciler) gone(*pass, string, any) (deletion, bool) { return deletion{}, false }

func (subportReconciler) watch(d *desired, w *wantedKernel) {
	for _, sp := range d.subports {
		w.aliases[sp.VLAN.Alias] = true
	}
}

func (subportReconciler) ensure(_ context.Context, p *pass) {
	if p.full {
		p.sweepSubportFilters()
	}
}

func (subportReconciler) discover(p *pass, f *found) []deletion {
	return p.linkLeftovers(f, "subport", subportKind, func(id, name string) bool {
		v, ok := p.d.subports[id]
		return ok && (v.VLAN.Name == name || v.VLAN.Peer == name)
	})
}

// subportKind names the subports' reconciler, and the deletion of a
// subport's veth found by a full pass that no wanted subport accounts for.
const subportKind store.Kind = "subports"

// subportIface is a wired subport's interface on this host.
type subportIface struct {
	VLAN      dataplane.VLANSpec
	NetworkID string
	// NetworkIPv6: its network has an IPv6 subnet (see
	// dpspec.PortSpec.NetworkIPv6).
	NetworkIPv6 bool
}

// addTrunks adds the specs of the trunks whose parent is plugged into an
// instance on this host. It is pure, as computeDesired.
func addTrunks(d *desired, s *snapshot, networks map[string]model.Network, has6 map[string]bool) {
	ports := make(map[string]*model.Port, len(s.ports))
	for i := range s.ports {
		ports[s.ports[i].ID] = &s.ports[i]
	}
	instanceHost := hostOfInstance(placementOf(s).instances)
	for _, t := range s.trunks {
		parent, ok := d.ports[t.PortID]
		if !ok || parent.InstanceID == "" {
			// Its parent's host reports it (DOWN, as Neutron does for
			// a trunk whose parent is not bound).
			if pp := ports[t.PortID]; pp == nil && s.self.owns("") || pp != nil && s.self.reportsPort(*pp, instanceHost) {
				d.fixed[key{store.Trunks, t.ID}] = status{model.TrunkStatusDown, ""}
			}
			continue
		}
		spec := trunkSpec{ParentID: t.PortID}
		subs := slices.Clone(t.SubPorts)
		slices.SortFunc(subs, func(a, b model.SubPort) int { return strings.Compare(a.PortID, b.PortID) })
		for _, sp := range subs {
			p := ports[sp.PortID]
			if p == nil {
				spec.Unwired = append(spec.Unwired, fmt.Sprintf("subport %s: its port is missing", sp.PortID))
				continue
			}
			if _, plugged := d.ports[sp.PortID]; plugged {
				// Its own veth is its interface on the host, and the one
				// the firewall filters: a second, unfiltered, would not do.
				spec.Unwired = append(spec.Unwired, fmt.Sprintf("subport %s: it is plugged into an instance of its own", sp.PortID))
				continue
			}
			n, ok := d.networks[p.NetworkID]
			if !ok {
				spec.Unwired = append(spec.Unwired, fmt.Sprintf("subport %s: its network is missing", sp.PortID))
				continue
			}
			if mtu := networkMTU(networks[p.NetworkID]); mtu > parent.Veth.MTU {
				spec.Unwired = append(spec.Unwired, fmt.Sprintf("subport %s: MTU %d of its network exceeds the parent's %d", sp.PortID, mtu, parent.Veth.MTU))
				continue
			}
			v := dpspec.VLANSpec{
				Name:   model.SubportName(sp.PortID),
				Peer:   model.SubportPeerName(sp.PortID),
				Parent: parent.Veth.TapName,
				VID:    sp.SegmentationID,
				Bridge: n.Bridge.Name,
				Alias:  dpspec.SubportAlias(sp.PortID),
				MTU:    networkMTU(networks[p.NetworkID]),
				Up:     parent.Veth.Up && p.AdminStateUp,
			}
			spec.VLANs = append(spec.VLANs, v)
			d.subports[sp.PortID] = subportIface{VLAN: v, NetworkID: p.NetworkID, NetworkIPv6: has6[p.NetworkID]}
		}
		d.trunks[t.ID] = spec
	}
}

// sweepSubportFilters, in a full pass, deletes the filters of subports
// that went while the agent was down: their veth pairs are leftovers
// (subportReconciler.discover), but their filters on a parent's tap that
// stays are not links.
func (p *pass) sweepSubportFilters() {
	wanted := map[[2]string]bool{} // link, subport alias
	for _, sp := range p.d.subports {
		wanted[[2]string{sp.VLAN.Parent, sp.VLAN.Alias}] = true
		wanted[[2]string{sp.VLAN.Peer, sp.VLAN.Alias}] = true
	}
	deleted, err := dataplane.SweepSubportFilters(p.links, func(link, alias string) bool { return wanted[[2]string{link, alias}] })
	p.mu.Lock()
	defer p.mu.Unlock()
	if deleted {
		p.changes++
		p.a.log.Info("deleted filters of subports that are gone")
	}
	if err != nil {
		p.errors++
		p.sweepFailed = true
		p.a.log.Error("sweep subport filters", "err", err)
	}
}

// ensureTrunks programs the trunks whose spec changed, and those whose
// parent was programmed in this pass: a tap made again lost its filters
// with it. It runs after the instances' ports.
func (p *pass) ensureTrunks() {
	for _, id := range sortedKeys(p.d.trunks) {
		spec := p.d.trunks[id]
		k, parent := key{store.Trunks, id}, key{store.Ports, spec.ParentID}
		_, parentRan := p.results[parent]
		if !p.needs(k, spec) && !parentRan {
			continue
		}
		if !p.isGood(parent) {
			p.record(k, spec, false, fmt.Errorf("parent port %s is not programmed", spec.ParentID), status{})
			continue
		}
		changed, err := p.ensureTrunk(k, spec)
		ok := status{model.TrunkStatusActive, ""}
		if len(spec.Unwired) > 0 {
			ok = status{model.TrunkStatusDegraded, strings.Join(spec.Unwired, "; ")}
		}
		p.record(k, spec, changed, err, ok)
	}
}

// ensureTrunk deletes the interfaces of subports the trunk no longer
// has (first: a VLAN id may have passed to another subport), then
// ensures the others.
func (p *pass) ensureTrunk(k key, spec trunkSpec) (changed bool, err error) {
	var errs []error
	if old, ok := p.a.tried[k].(trunkSpec); ok {
		for _, v := range old.VLANs {
			if slices.ContainsFunc(spec.VLANs, func(w dataplane.VLANSpec) bool { return w.Name == v.Name && w.Parent == v.Parent && w.VID == v.VID }) {
				continue
			}
			deleted, err := dataplane.DeleteVLAN(p.links, v)
			changed = changed || deleted
			if err != nil && !errors.Is(err, dataplane.ErrNotOwned) {
				errs = append(errs, err)
			}
		}
	}
	for _, v := range spec.VLANs {
		c, err := dataplane.EnsureVLAN(p.links, v)
		changed = changed || c
		if err != nil {
			errs = append(errs, fmt.Errorf("subport VLAN %d: %w", v.VID, err))
		}
	}
	return changed, errors.Join(errs...)
}

// trunkDeletion removes the subports' interfaces of a trunk the store no longer
// has here (deleted, or its parent unplugged).
func (p *pass) trunkDeletion(k key, s trunkSpec) deletion {
	names := make([]string, len(s.VLANs))
	for i, v := range s.VLANs {
		names[i] = v.Name
	}
	return deletion{k: k, what: "links " + strings.Join(names, ","), run: func() (bool, error) {
		var deleted bool
		var errs []error
		for _, v := range s.VLANs {
			d, err := dataplane.DeleteVLAN(p.links, v)
			deleted = deleted || d
			errs = append(errs, err)
		}
		return deleted, errors.Join(errs...)
	}}
}
