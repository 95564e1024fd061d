package agent

import (
	"fmt"

	"github.com/nsnet/nsnet/internal/dataplane"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// The overlay's reconciler: a network's VXLAN device with its forwarding
// and neighbour entries (overlaySpec, computed in hosts.go) is one
// object, keyed overlayKind/<network id>. Desired: d.overlay. Ensure:
// ensureOverlays, after the bridges it is a port of. Delete: a device no
// longer wanted goes with its entries (overlayGone). Discover: a full pass
// deletes nsnet's VXLAN devices that no desired network accounts for
// (overlayLeftover). Its status is part of its network's, as DHCP's is.

// overlayKind keys a network's VXLAN device in the agent's bookkeeping.
const overlayKind store.Kind = "vxlan"

// ensureOverlays programs the VXLAN devices of the networks present here
// whose spec changed or whose last attempt failed: the device, then its
// forwarding entries, then its neighbour entries. Each Ensure reads the
// kernel first, so a full pass repairs an entry deleted by hand.
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
		changed, err := p.ensureOverlay(spec)
		p.record(k, spec, changed, err, status{model.StatusActive, ""})
	}
}

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

// overlayGone is the deletion of a device programmed before, when its
// network is no longer here (or no longer has one) or wants another name.
func (p *pass) overlayGone(k key, s overlaySpec) (deletion, bool) {
	if cur, ok := p.d.overlay[k.id]; ok && cur.VXLAN.Name == s.VXLAN.Name {
		return deletion{}, false
	}
	return p.linkDeletion(k, s.VXLAN.Name, s.VXLAN.Alias), true
}

// overlayLeftover is the deletion of a VXLAN device found in the kernel
// with nsnet's alias that no desired network accounts for.
func (p *pass) overlayLeftover(id, name, alias string) (deletion, bool) {
	if o, ok := p.d.overlay[id]; ok && o.VXLAN.Name == name {
		return deletion{}, false
	}
	return p.linkDeletion(key{overlayKind, id}, name, alias), true
}
