package agent

import (
	"context"
	"fmt"

	"github.com/nsnet/nsnet/internal/dataplane"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// The overlay's reconciler: a network's VXLAN device with its forwarding
// and neighbour entries (overlaySpec, computed in hosts.go) is one
// object, keyed overlayKind/<network id>. Desired: d.overlay. Ensure:
// ensureOverlays, after the bridges it is a port of. Delete: a device no
// longer wanted goes with its entries. Discover: a full pass deletes
// nsnet's VXLAN devices that no desired network accounts for. Its status
// is part of its network's, as DHCP's is.
type overlayReconciler struct{}

func (overlayReconciler) kind() store.Kind                    { return overlayKind }
func (overlayReconciler) objects(d *desired, f func(string))  { eachID(d.overlay, f) }
func (overlayReconciler) wanted(d *desired) func(string) bool { return inMap(d.overlay) }
func (overlayReconciler) same(a, b any) bool                  { return sameAs(a, b, sameOverlay) }
func (overlayReconciler) ensure(_ context.Context, p *pass)   { p.ensureOverlays() }
func (overlayReconciler) whole() store.Kind                   { return store.Networks }

// watch: a VXLAN device, and its forwarding entries.
func (overlayReconciler) watch(d *desired, w *wantedKernel) {
	for _, o := range d.overlay {
		w.aliases[o.VXLAN.Alias] = true
		for _, e := range o.FDB {
			w.fdb[e.String()] = true
		}
	}
}

// gone is the deletion of a device programmed before, when its network is
// no longer here (or no longer has one) or wants another name.
func (overlayReconciler) gone(p *pass, id string, spec any) (deletion, bool) {
	s := spec.(overlaySpec)
	if cur, ok := p.d.overlay[id]; ok && cur.VXLAN.Name == s.VXLAN.Name {
		return deletion{}, false
	}
	return p.linkDeletion(key{overlayKind, id}, s.VXLAN.Name, s.VXLAN.Alias), true
}

// discover: the VXLAN devices with nsnet's alias that no desired network
// accounts for.
func (overlayReconciler) discover(p *pass, f *found) []deletion {
	return p.linkLeftovers(f, "vxlan", overlayKind, func(id, name string) bool {
		o, ok := p.d.overlay[id]
		return ok && o.VXLAN.Name == name
	})
}

// overlayKind keys a network's VXLAN device in the agent's bookkeeping.
const overlayKind store.Kind = "vxlan"

// ensureOverlays programs the VXLAN devices of the networks present here
// whose spec changed or whose last attempt failed: the device, then its
// forwarding entries, then its neighbour entries.
//
// A full pass, or an object whose last attempt failed, reads the kernel
// first (each Ensure dumps the device's tables), so it repairs an entry
// deleted by hand. An incremental pass whose device was programmed with
// the spec tried last, and is good, on a bridge this pass left alone,
// applies only the difference between that spec and the new one: a port
// joining a network of a thousand costs its own entries, not a dump of
// the thousand. Drift is the full pass's, as everywhere in the agent.
func (p *pass) ensureOverlays() {
	for _, id := range sortedKeys(p.d.overlay) {
		spec := p.d.overlay[id]
		k := key{overlayKind, id}
		if !p.needs(k, spec) {
			continue
		}
		if !p.isGood(key{store.Networks, id}) {
			p.record(k, spec, false, fmt.Errorf("network %s is not programmed", id), status{})
			continue
		}
		var changed bool
		var err error
		if was, ok := p.a.tried[k].(overlaySpec); ok && !p.full && p.a.good[k] && was.VXLAN == spec.VXLAN && !p.programmed(key{store.Networks, id}) {
			if changed, err = p.updateOverlay(was, spec); err != nil {
				// The device is not what was said it is: read it and
				// make it right, as a full pass would.
				p.a.log.Info("overlay change failed, programming it whole", "network", id, "error", err)
				var c bool
				c, err = p.ensureOverlay(spec)
				changed = changed || c
			}
		} else {
			changed, err = p.ensureOverlay(spec)
		}
		p.record(k, spec, changed, err, status{model.StatusActive, ""})
	}
}

// programmed reports whether k was programmed in this pass: a network's
// bridge made anew has lost its ports, the VXLAN device among them, which
// only the whole ensure puts back.
func (p *pass) programmed(k key) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.tried[k]
	return ok
}

// ensureOverlay reads the device and its tables and makes them spec.
func (p *pass) ensureOverlay(spec overlaySpec) (changed bool, err error) {
	v := spec.VXLAN
	c, err := dataplane.EnsureVXLAN(p.links, v)
	changed = c
	if err != nil {
		return changed, err
	}
	if c, err = dataplane.EnsureFDB(p.links, v.Name, v.Alias, spec.FDB); err != nil {
		return changed || c, err
	}
	changed = changed || c
	c, err = dataplane.EnsureNeighbours(p.links, v.Name, v.Alias, spec.Neigh)
	return changed || c, err
}

// updateOverlay changes the entries of a device programmed with was, whose
// device itself is the same, to spec's.
func (p *pass) updateOverlay(was, spec overlaySpec) (changed bool, err error) {
	v := spec.VXLAN
	return dataplane.UpdateEntries(p.links, v.Name, v.Alias, dataplane.L2Entries{FDB: was.FDB, Neigh: was.Neigh},
		dataplane.L2Entries{FDB: spec.FDB, Neigh: spec.Neigh})
}
