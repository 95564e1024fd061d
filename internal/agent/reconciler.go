package agent

import (
	"context"

	"github.com/nsnet/nsnet/internal/dataplane"
	"github.com/nsnet/nsnet/internal/store"
)

// A reconciler programs one kind of kernel object: bridges, namespaces,
// veths, VXLAN devices, a table. The pass knows no kind by name: it walks
// reconcilers, the registry, and asks each for its part. Adding a kind is
// one file with its reconciler (its spec, computed by the pure desired
// state, and the functions below) and one line in reconcilers.
//
// Objects are keyed {kind, id} in the agent's bookkeeping: tried (the spec
// last programmed), good (whether that worked) and the statuses. A kind
// that keeps its own state instead (one table per host: host NAT, the
// firewall) embeds ownState and only ensures.
//
// A kind may also be: part of another (isPart: its status is that
// object's), made of namespaces (holdsNamespaces), seen by the drift
// watches (watched, drift.go), or counted in the health otherwise than
// by good (countsManaged).
type reconciler interface {
	// kind keys this kind's objects.
	kind() store.Kind
	// objects calls f with the id of every object of this kind d wants
	// that has a status of its own (shown by the API, counted in the
	// agent's health); wanted tells one id from them. Both only read d.
	objects(d *desired, f func(id string))
	wanted(d *desired) func(id string) bool
	// same reports whether two specs of this kind ask for the same kernel
	// state: false for anything not a spec of this kind (nil: never
	// programmed). It runs for every object on every pass, hence no
	// reflection.
	same(a, b any) bool
	// ensure programs, in order, the objects of this kind that need it
	// (pass.needs), and records each outcome (pass.record). It runs after
	// the kinds before it in reconcilers, whose outcomes it may read
	// (pass.isGood).
	ensure(ctx context.Context, p *pass)
	// gone is the deletion of object id, programmed before with spec,
	// when d no longer wants it, or wants it under another kernel name.
	gone(p *pass, id string, spec any) (deletion, bool)
	// discover lists, in a full pass, the deletions of what the kernel
	// holds of this kind with nsnet's marks that no object of d accounts
	// for: state of objects deleted while the agent was down, or left by
	// a crash.
	discover(p *pass, f *found) []deletion
}

// reconcilers is the registry, in the order the pass ensures the kinds:
// a kind comes after those it needs (a port after its network's bridge, a
// trunk after its parent's tap, the firewall after the ports it filters).
// Deletions run it backwards, so what holds others goes before what it
// holds: a namespace before the veths in it (the kernel destroys those
// with it, in batches, where deleting veths one by one costs an RCU grace
// period each), a veth or VXLAN device before its bridge.
var reconcilers = []reconciler{
	hostNATReconciler{},
	networkReconciler{},
	overlayReconciler{},
	portReconciler{},
	instanceReconciler{},
	subportReconciler{},
	trunkReconciler{},
	metadataReconciler{},
	routerReconciler{},
	floatingIPReconciler{},
	firewallReconciler{},
	dhcpReconciler{},
	metadata6Reconciler{},
}

// reconcilerOf is the registry by kind.
var reconcilerOf = func() map[store.Kind]reconciler {
	m := make(map[store.Kind]reconciler, len(reconcilers))
	for _, r := range reconcilers {
		if _, dup := m[r.kind()]; dup {
			panic("agent: two reconcilers of kind " + string(r.kind()))
		}
		m[r.kind()] = r
	}
	return m
}()

// isPart is a reconciler whose objects have no resource of their own in
// the API: each is part of the object of kind whole with the same id,
// whose status includes it (a network's DHCP namespace and VXLAN device
// are the network's).
type isPart interface {
	whole() store.Kind
}

// wholeOf is the whole of each part kind, partsOf the part kinds of each
// whole, in registry order.
var wholeOf, partsOf = func() (map[store.Kind]store.Kind, map[store.Kind][]store.Kind) {
	whole, parts := map[store.Kind]store.Kind{}, map[store.Kind][]store.Kind{}
	for _, r := range reconcilers {
		if p, ok := r.(isPart); ok {
			whole[r.kind()] = p.whole()
			parts[p.whole()] = append(parts[p.whole()], r.kind())
		}
	}
	return whole, parts
}()

// holdsNamespaces is a reconciler whose objects are namespaces with the
// agent's prefix. A full pass reads the marker of each such namespace that
// no desired object is named after (found.namespaces), for the
// reconcilers' discover to recognise their own.
type holdsNamespaces interface {
	namespaces(d *desired, f func(name string))
}

// countsManaged is a reconciler whose objects are counted in the agent's
// health other than by good (managedLocked).
type countsManaged interface {
	managed(a *Agent, d *desired) int
}

// found is what a full pass found in the kernel with nsnet's marks, read
// once for every reconciler's discover.
type found struct {
	// links are the host namespace's links with nsnet's alias, by the
	// alias's kind ("port", "network", ...).
	links map[string][]ownedLink
	// namespaces are the namespaces with the agent's prefix that no
	// desired object is named after, with their markers.
	namespaces []markedNetns
}

// ownedLink is a link with nsnet's alias.
type ownedLink struct {
	id, name, alias string
}

// markedNetns is a namespace with its marker.
type markedNetns struct {
	name, marker string
}

// eachID and inMap are objects and wanted of a kind whose desired objects
// are one map of the desired state, by id.
func eachID[S any](m map[string]S, f func(id string)) {
	for id := range m {
		f(id)
	}
}

func inMap[S any](m map[string]S) func(id string) bool {
	return func(id string) bool {
		_, ok := m[id]
		return ok
	}
}

// sameAs is a kind's same from the comparison of its spec type.
func sameAs[S any](a, b any, eq func(a, b S) bool) bool {
	x, ok := a.(S)
	if !ok {
		return false
	}
	y, ok := b.(S)
	return ok && eq(x, y)
}

// equal compares comparable specs.
func equal[S comparable](a, b S) bool { return a == b }

// ownState is embedded by a kind that keeps its own state across passes
// (the spec it applied, an open table) instead of tried: it has no objects
// with statuses, nothing to delete object by object, nothing to discover.
type ownState struct{}

func (ownState) objects(*desired, func(string))           {}
func (ownState) wanted(*desired) func(string) bool        { return func(string) bool { return false } }
func (ownState) same(a, b any) bool                       { return false }
func (ownState) gone(*pass, string, any) (deletion, bool) { return deletion{}, false }
func (ownState) discover(*pass, *found) []deletion        { return nil }

// noDiscovery is embedded by a kind that has nothing of its own in the
// kernel to find: what it programs is another kind's.
type noDiscovery struct{}

func (noDiscovery) discover(*pass, *found) []deletion { return nil }

// linkLeftovers are the deletions of the links of alias kind kind whose
// object d does not want under that name (want says whether it does).
func (p *pass) linkLeftovers(f *found, kind string, k store.Kind, want func(id, name string) bool) []deletion {
	var dels []deletion
	for _, l := range f.links[kind] {
		if !want(l.id, l.name) {
			dels = append(dels, p.linkDeletion(key{k, l.id}, l.name, l.alias))
		}
	}
	return dels
}

// findOwned reads what the kernel holds with nsnet's marks: the links
// in the host namespace, and the namespaces with the agent's prefix that
// no desired object is named after.
func (p *pass) findOwned() *found {
	f := &found{links: map[string][]ownedLink{}}
	for alias, link := range p.links.Owned() {
		kind, id, _ := dataplane.ParseAlias(alias)
		f.links[kind] = append(f.links[kind], ownedLink{id: id, name: link.Attrs().Name, alias: alias})
	}
	wanted := map[string]bool{p.a.cfg.HostNetns: true}
	for _, r := range reconcilers {
		if h, ok := r.(holdsNamespaces); ok {
			h.namespaces(p.d, func(name string) { wanted[name] = true })
		}
	}
	f.namespaces = p.markedNamespaces(wanted)
	return f
}
