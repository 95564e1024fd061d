package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/nsnet/nsnet/internal/dataplane"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/nat"
	"github.com/nsnet/nsnet/internal/netns"
	"github.com/nsnet/nsnet/internal/store"
)

// The routers' reconciler: a router is its qrouter namespace with its
// nsnet NAT and metering tables, its metadata listener and its router
// advertisements, keyed store.Routers/<id>. Desired: d.routers. Ensure:
// the namespace, its ports that need work (qr- before qg-), then the
// rest (ensureRouters). Delete: the namespace, after letting go of the
// sockets the agent holds in it. Discover: namespaces with the agent's
// prefix and a router marker of this host that no router is named after.
type routerReconciler struct{}

func (routerReconciler) kind() store.Kind                    { return store.Routers }
func (routerReconciler) objects(d *desired, f func(string))  { eachID(d.routers, f) }
func (routerReconciler) wanted(d *desired) func(string) bool { return inMap(d.routers) }
func (routerReconciler) same(a, b any) bool                  { return sameAs(a, b, sameRouter) }
func (routerReconciler) ensure(ctx context.Context, p *pass) { p.ensureRouters(ctx) }

func (routerReconciler) gone(p *pass, id string, spec any) (deletion, bool) {
	s := spec.(routerSpec)
	if cur, ok := p.d.routers[id]; ok && cur.Netns == s.Netns {
		return deletion{}, false
	}
	return p.routerDeletion(key{store.Routers, id}, s), true
}

func (routerReconciler) discover(p *pass, f *found) []deletion {
	return p.namespaceLeftovers(f, dataplane.ParseRouterMarker, func(id string, ns markedNetns) deletion {
		return p.routerDeletion(key{store.Routers, id}, routerSpec{Netns: ns.name, Marker: ns.marker})
	})
}

func (routerReconciler) namespaces(d *desired, f func(string)) {
	for _, r := range d.routers {
		f(r.Netns)
	}
}

// The floating IPs' reconciler: a floating IP is addresses on its
// router's gateway port and elements of its router's NAT maps, which the
// router programs; its status follows the router's (finishRouter). It
// has objects, for their statuses, and nothing of its own to program,
// delete or discover.
type floatingIPReconciler struct{ ownState }

func (floatingIPReconciler) kind() store.Kind              { return store.FloatingIPs }
func (floatingIPReconciler) ensure(context.Context, *pass) {}

func (floatingIPReconciler) objects(d *desired, f func(string)) {
	for _, r := range d.routers {
		for _, id := range r.FloatingIPs {
			f(id)
		}
	}
}

func (r floatingIPReconciler) wanted(d *desired) func(string) bool {
	var ids map[string]bool // made on first use: most passes ask about none
	return func(id string) bool {
		if ids == nil {
			ids = map[string]bool{}
			r.objects(d, func(id string) { ids[id] = true })
		}
		return ids[id]
	}
}

// managed counts the floating IPs the routers translate: those ACTIVE.
func (r floatingIPReconciler) managed(a *Agent, d *desired) int {
	active := map[string]bool{}
	r.objects(d, func(id string) {
		if a.statuses[key{store.FloatingIPs, id}].Status == model.StatusActive {
			active[id] = true
		}
	})
	return len(active)
}

// metadataKind names the metadata directory's reconciler.
const metadataKind store.Kind = "metadata"

// The metadata directory: who is who for the metadata service, handed to
// it before the routers and DHCP namespaces, whose listeners may start
// answering in this pass. Not a kernel object, but the state of a service
// nsnet serves, kept by the service.
type metadataReconciler struct{ ownState }

func (metadataReconciler) kind() store.Kind { return metadataKind }

func (metadataReconciler) ensure(_ context.Context, p *pass) {
	p.a.metadata.SetDirectory(p.d.metadata)
}

// routerNAT is the nsnet table of one router namespace, open across
// passes, and the spec last applied to it.
//
// Keeping the spec is what lets an incremental pass send only the change
// (nat.Table.Update): it is not trusted over the kernel, because the Table
// checks the namespace's ruleset generation before every change and reads
// the table again when anyone else committed, and every full pass Applies
// the whole spec.
type routerNAT struct {
	table   *nat.Table
	drift   *driftWatch
	ino     uint64 // the namespace the table's sockets are in
	applied nat.Spec
	ok      bool // applied is in the kernel
	// programmed counts the translations of the last spec the kernel
	// took, for the metrics (read without the pass: see RouterNAT).
	programmed atomic.Pointer[map[string]int]
}

// natTables are the open tables of routers, by router id.
type natTables struct {
	mu sync.Mutex
	m  map[string]*routerNAT
	// applies and updates count the whole-spec and element-level
	// changes, for tests and health.
	applies, updates int64
}

func (n *natTables) get(id string) *routerNAT {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.m[id]
}

func (n *natTables) set(id string, r *routerNAT) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if r == nil {
		delete(n.m, id)
		return
	}
	n.m[id] = r
}

// close closes router id's table, if open: its sockets would keep a
// deleted namespace alive.
func (n *natTables) close(id string) {
	n.mu.Lock()
	r := n.m[id]
	delete(n.m, id)
	n.mu.Unlock()
	r.close()
}

func (r *routerNAT) close() {
	if r != nil {
		r.table.Close()
		r.drift.Close()
	}
}

func (n *natTables) closeAll() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for id, r := range n.m {
		r.close()
		delete(n.m, id)
	}
}

// counts returns how many Applies and Updates the tables had.
func (n *natTables) counts() (applies, updates int64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.applies, n.updates
}

func (n *natTables) count(update bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if update {
		n.updates++
	} else {
		n.applies++
	}
}

// routerWork is one router and those of its ports that need work.
type routerWork struct {
	id    string
	spec  routerSpec
	ports []string // qr- first, then qg-
	all   []string // every port of the router
}

// ensureRouters programs routers, their ports and NAT, several at once.
func (p *pass) ensureRouters(ctx context.Context) {
	var jobs []func()
	for _, w := range p.routerWork() {
		jobs = append(jobs, func() {
			if ctx.Err() == nil {
				p.ensureRouter(w)
			}
		})
	}
	parallel(workers, jobs)
}

func (p *pass) routerWork() []routerWork {
	ports, all := map[string][]string{}, map[string][]string{}
	for id, ps := range p.d.ports {
		if ps.RouterID == "" {
			continue
		}
		all[ps.RouterID] = append(all[ps.RouterID], id)
		if p.needs(key{store.Ports, id}, ps) {
			ports[ps.RouterID] = append(ports[ps.RouterID], id)
		}
	}
	var work []routerWork
	for _, id := range sortedKeys(p.d.routers) {
		spec := p.d.routers[id]
		if len(ports[id]) == 0 && !p.needs(key{store.Routers, id}, spec) && p.configureAdverts(id) {
			continue
		}
		ids := ports[id]
		slices.SortFunc(ids, func(x, y string) int {
			gx, gy := p.d.ports[x].Gateway, p.d.ports[y].Gateway
			switch {
			case gx != gy && gx:
				return 1
			case gx != gy:
				return -1
			}
			return compareIfNames(p.d.ports[x].Veth.IfName, p.d.ports[y].Veth.IfName)
		})
		work = append(work, routerWork{id: id, spec: spec, ports: ids, all: all[id]})
	}
	return work
}

// ensureRouter programs one router: its namespace, the ports that need
// it (qr- before qg-, so static routes find their next hops), then its
// NAT. The router is ACTIVE once all three are in the kernel, and its
// floating IPs with it: their addresses are on qg- and in the nat maps.
func (p *pass) ensureRouter(w routerWork) {
	k := key{store.Routers, w.id}
	ns, changed, err := p.ensureRouterNetns(w.id, w.spec)
	if err != nil {
		err = fmt.Errorf("namespace %s: %w", w.spec.Netns, err)
		for _, id := range w.ports {
			p.record(key{store.Ports, id}, p.d.ports[id], false, fmt.Errorf("router %s: %w", w.id, err), status{})
		}
		p.finishRouter(k, w, changed, err)
		return
	}
	defer ns.Close()
	for _, id := range w.ports {
		p.ensureRouterPort(ns, id)
	}
	// Every port counts, also those that needed no work this pass.
	var errs []error
	slices.Sort(w.all)
	for _, id := range w.all {
		if !p.isGood(key{store.Ports, id}) {
			errs = append(errs, fmt.Errorf("port %s (%s) is not programmed", id, p.d.ports[id].Veth.IfName))
		}
	}
	c, err := p.ensureNAT(w.id, ns, w.spec.NAT.Spec())
	if err != nil {
		errs = append(errs, fmt.Errorf("nat: %w", err))
	}
	if err := p.ensureMetadataListener(w.id, ns); err != nil {
		errs = append(errs, fmt.Errorf("metadata: %w", err))
	}
	if err := p.ensureAdverts(w.id, ns); err != nil {
		errs = append(errs, err)
	}
	m, err := p.ensureMeter(w.id, ns, w.spec.Meter)
	if err != nil {
		errs = append(errs, fmt.Errorf("metering: %w", err))
	}
	p.finishRouter(k, w, changed || c || m, errors.Join(errs...))
}

// finishRouter records the router's outcome and its floating IPs'.
func (p *pass) finishRouter(k key, w routerWork, changed bool, err error) {
	ok := status{model.StatusActive, ""}
	switch {
	case w.spec.Problem != "":
		ok = status{model.StatusError, w.spec.Problem}
	case !w.spec.Up:
		ok = status{model.StatusDown, ""}
	}
	p.record(k, w.spec, changed, err, ok)
	fip := ok
	switch {
	case err != nil:
		fip = status{model.StatusError, fmt.Sprintf("router %s: %v", w.id, err)}
	case !w.spec.Up:
		fip = status{model.StatusDown, ""}
	case w.spec.Problem != "":
		// The static routes are wrong, not the translation.
		fip = status{model.StatusActive, ""}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, id := range w.spec.FloatingIPs {
		p.results[key{store.FloatingIPs, id}] = fip
	}
}

func (p *pass) ensureRouterPort(ns *dataplane.Namespace, id string) {
	spec := p.d.ports[id]
	k := key{store.Ports, id}
	if !p.isGood(key{store.Networks, spec.NetworkID}) {
		p.record(k, spec, false, fmt.Errorf("network %s is not programmed", spec.NetworkID), status{})
		return
	}
	var changed bool
	var err error
	if add, remove, ok := p.floatingOnly(k, spec); ok {
		changed, err = dataplane.UpdateGatewayAddrs(ns, spec.Veth.IfName, spec.Veth.Alias, add, remove)
	} else if spec.Gateway {
		changed, err = dataplane.EnsureRouterGateway(p.links, ns, dataplane.GatewaySpec{Port: spec.Veth, FloatingIPs: spec.Floating})
	} else {
		changed, err = dataplane.EnsureVethPort(p.links, ns, spec.Veth)
	}
	ok := status{model.StatusActive, ""}
	if !spec.Veth.Up {
		ok = status{model.StatusDown, ""}
	}
	p.record(k, spec, changed, err, ok)
}

// floatingOnly reports whether, in an incremental pass, the only change
// to gateway port k since it was last programmed (successfully) is its
// floating addresses, and which: those are added and removed alone
// (dataplane.UpdateGatewayAddrs), at a cost that does not grow with the
// addresses the port already has. Full passes always ensure the whole
// port, which repairs anything done behind nsnet's back.
func (p *pass) floatingOnly(k key, spec portSpec) (add, remove []netip.Addr, ok bool) {
	if p.full || !spec.Gateway || !p.a.good[k] {
		return nil, nil, false
	}
	old, isPort := p.a.tried[k].(portSpec)
	if !isPort || !old.Gateway {
		return nil, nil, false
	}
	old.Floating = spec.Floating
	if !samePort(old, spec) {
		return nil, nil, false
	}
	remove, add = listDelta(p.a.tried[k].(portSpec).Floating, spec.Floating)
	return add, remove, true
}

// ensureRouterNetns ensures a router's namespace, replacing a leftover.
func (p *pass) ensureRouterNetns(id string, spec routerSpec) (*dataplane.Namespace, bool, error) {
	ensure := func() (*dataplane.Namespace, bool, error) {
		return dataplane.EnsureRouterNetns(spec.Netns, spec.Marker)
	}
	return p.ensureOwnNetns(spec.Netns, ensure, func() {
		p.a.nat.close(id)
		p.a.metaListeners.close(id)
		p.a.adverts.close(id)
		p.a.closeMetadata6In(spec.Netns)
	})
}

// ensureOwnNetns ensures a namespace with ensure, replacing one of this
// agent's that carries the marker of another object (a leftover: an
// object deleted, another created under its name); release first lets go
// of what the agent holds in the old one.
func (p *pass) ensureOwnNetns(name string, ensure func() (*dataplane.Namespace, bool, error), release func()) (*dataplane.Namespace, bool, error) {
	ns, changed, err := ensure()
	var no *dataplane.NotOwnedError
	if !errors.As(err, &no) || !p.ownMarker(no.Mark) {
		return ns, changed, err
	}
	p.a.log.Info("replacing leftover namespace", "namespace", name, "marker", no.Mark)
	release()
	if err := dataplane.DeleteInstanceNetns(name, no.Mark, p.links); err != nil {
		return nil, false, err
	}
	ns, _, err = ensure()
	return ns, true, err
}

// ownMarker reports whether marker is one this agent puts on namespaces.
func (p *pass) ownMarker(marker string) bool {
	if _, host, ok := dataplane.ParseRouterMarker(marker); ok {
		return host == p.a.markerHost
	}
	if _, host, ok := dataplane.ParseDHCPMarker(marker); ok {
		return host == p.a.markerHost
	}
	_, host, ok := dataplane.ParseInstanceMarker(marker)
	return ok && host == p.a.markerHost
}

// ensureNAT converges a router's nsnet table to spec.
//
// The rule: a full pass, a table not yet applied (new, reopened, or whose
// last change failed) and a change of anything but floating IPs and port
// forwards (subnets, gateway, SNAT) Apply the whole spec, which reads and
// diffs the table. Otherwise, on an incremental pass, the floating IPs and
// forwards added and removed since the last applied spec go to Update,
// whose cost is the change's alone: one floating IP added to a router
// with thousands is two map elements.
func (p *pass) ensureNAT(id string, ns *dataplane.Namespace, spec nat.Spec) (changed bool, err error) {
	ino, err := netns.Inode(ns.Name)
	if err != nil {
		return false, err
	}
	r := p.a.nat.get(id)
	if r != nil && r.ino != ino {
		// The namespace was replaced: the sockets are in the old one.
		p.a.nat.close(id)
		r = nil
	}
	if r == nil {
		t, err := nat.Open(ns.Name, p.a.log)
		if err != nil {
			return false, err
		}
		w, err := p.a.watchDrift(ns.Name, routerTables)
		if err != nil {
			t.Close()
			return false, err
		}
		r = &routerNAT{table: t, drift: w, ino: ino}
		p.a.nat.set(id, r)
	}
	var res nat.Result
	change, incremental := natChange(r, spec)
	switch {
	case incremental && !p.full:
		if isEmpty(change.Add) && isEmpty(change.Remove) {
			return false, nil
		}
		res, err = r.table.Update(change)
		p.a.nat.count(true)
	default:
		res, err = r.table.Apply(spec)
		p.a.nat.count(false)
	}
	r.ok = err == nil
	if err != nil {
		return false, err
	}
	r.applied = spec
	r.programmed.Store(natCounts(spec))
	if res.Rebuilt || len(res.Rewritten) > 0 {
		p.a.log.Warn("nat table repaired", "router", id, "rebuilt", res.Rebuilt, "rewritten", res.Rewritten)
	}
	return res.Changed(), nil
}

// natChange is the floating IPs and forwards that turn the last applied
// spec into spec, and whether that is the whole difference.
func natChange(r *routerNAT, spec nat.Spec) (nat.Change, bool) {
	a := r.applied
	if !r.ok || !slices.Equal(a.SNAT, spec.SNAT) || !slices.Equal(a.Masquerade, spec.Masquerade) ||
		!slices.Equal(a.Hairpin, spec.Hairpin) || !slices.Equal(a.Publish, spec.Publish) || !slices.Equal(a.Helpers, spec.Helpers) {
		return nat.Change{}, false
	}
	var c nat.Change
	c.Remove.FloatingIPs, c.Add.FloatingIPs = listDelta(a.FloatingIPs, spec.FloatingIPs)
	c.Remove.PortForwards, c.Add.PortForwards = listDelta(a.PortForwards, spec.PortForwards)
	return c, true
}

// listDelta returns the entries only in old and those only in cur.
func listDelta[T comparable](old, cur []T) (removed, added []T) {
	in := make(map[T]bool, len(cur))
	for _, e := range cur {
		in[e] = true
	}
	was := make(map[T]bool, len(old))
	for _, e := range old {
		was[e] = true
		if !in[e] {
			removed = append(removed, e)
		}
	}
	for _, e := range cur {
		if !was[e] {
			added = append(added, e)
		}
	}
	return removed, added
}

func isEmpty(s nat.Spec) bool {
	return len(s.SNAT)+len(s.Masquerade)+len(s.Hairpin)+len(s.FloatingIPs)+len(s.PortForwards)+len(s.Publish)+len(s.Helpers) == 0
}

func (p *pass) routerDeletion(k key, spec routerSpec) deletion {
	return deletion{k: k, what: "namespace " + spec.Netns, run: func() (bool, error) {
		p.a.nat.close(k.id)
		p.a.metaListeners.close(k.id)
		p.a.adverts.close(k.id)
		p.a.metered.set(k.id, false)
		p.a.closeMetadata6In(spec.Netns)
		err := dataplane.DeleteRouterNetns(spec.Netns, spec.Marker, p.links)
		return err == nil, err
	}}
}
