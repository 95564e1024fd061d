package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/nsnet/nsnet/internal/dataplane"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/netns"
	"github.com/nsnet/nsnet/internal/qosmark"
	"github.com/nsnet/nsnet/internal/store"
)

// The instances' reconciler: an instance is its namespace (with its
// resolv.conf and DSCP table), keyed store.Instances/<id>. Desired:
// d.instances. Ensure: the namespace, then the instance's ports that need
// work in it (ensureInstances). Delete: the namespace, which takes its
// veths with it. Discover: namespaces with the agent's prefix and an
// instance marker of this host that no instance is named after.
type instanceReconciler struct{}

func (instanceReconciler) kind() store.Kind                    { return store.Instances }
func (instanceReconciler) objects(d *desired, f func(string))  { eachID(d.instances, f) }
func (instanceReconciler) wanted(d *desired) func(string) bool { return inMap(d.instances) }

func (instanceReconciler) same(a, b any) bool { return sameAs(a, b, equal[instanceSpec]) }

func (instanceReconciler) ensure(ctx context.Context, p *pass) { p.ensureInstances(ctx) }

func (instanceReconciler) gone(p *pass, id string, spec any) (deletion, bool) {
	s := spec.(instanceSpec)
	if cur, ok := p.d.instances[id]; ok && cur.Netns == s.Netns {
		return deletion{}, false
	}
	return p.namespaceDeletion(key{store.Instances, id}, s.Netns, s.Marker), true
}

func (instanceReconciler) discover(p *pass, f *found) []deletion {
	return p.namespaceLeftovers(f, dataplane.ParseInstanceMarker, func(id string, ns markedNetns) deletion {
		return p.namespaceDeletion(key{store.Instances, id}, ns.name, ns.marker)
	})
}

func (instanceReconciler) namespaces(d *desired, f func(string)) {
	for _, inst := range d.instances {
		f(inst.Netns)
	}
}

// The ports' reconciler: a plugged port is its veth, keyed
// store.Ports/<id>. Desired: d.ports. Ensure: none of its own; the object
// a port is plugged into (an instance, a router, a network's DHCP
// namespace) programs it in its namespace, after the namespace. Delete:
// the veth, once its namespace is gone (ports come before the kinds that
// hold them in the registry). Discover: veths with a port's alias that no
// port accounts for under that name.
type portReconciler struct{}

func (portReconciler) kind() store.Kind                    { return store.Ports }
func (portReconciler) objects(d *desired, f func(string))  { eachID(d.ports, f) }
func (portReconciler) wanted(d *desired) func(string) bool { return inMap(d.ports) }

func (portReconciler) same(a, b any) bool { return sameAs(a, b, samePort) }

func (portReconciler) ensure(context.Context, *pass) {}

// watch: a veth, and a router port's addresses (instances' are not
// watched).
func (portReconciler) watch(d *desired, w *wantedKernel) {
	for _, p := range d.ports {
		w.aliases[p.Veth.Alias] = true
		if p.RouterID == "" {
			continue
		}
		for _, a := range p.Veth.Addrs {
			w.addrs[a.Addr()] = true
		}
		for _, a := range p.Floating {
			w.addrs[a] = true
		}
	}
}

func (portReconciler) gone(p *pass, id string, spec any) (deletion, bool) {
	if _, ok := p.d.ports[id]; ok {
		return deletion{}, false
	}
	s := spec.(portSpec)
	return p.linkDeletion(key{store.Ports, id}, s.Veth.TapName, s.Veth.Alias), true
}

func (portReconciler) discover(p *pass, f *found) []deletion {
	return p.linkLeftovers(f, "port", store.Ports, func(id, name string) bool {
		ps, ok := p.d.ports[id]
		return ok && ps.Veth.TapName == name
	})
}

// instanceWork is one instance and those of its ports that need work.
type instanceWork struct {
	id    string
	spec  instanceSpec
	ports []string // in interface order
}

// ensureInstances programs instances and their ports, several instances
// at once.
func (p *pass) ensureInstances(ctx context.Context) {
	var jobs []func()
	for _, w := range p.instanceWork() {
		jobs = append(jobs, func() {
			if ctx.Err() == nil {
				p.ensureInstance(w)
			}
		})
	}
	parallel(workers, jobs)
}

// instanceWork lists the instances to program, in id order, each with
// its ports that need work. After a change it looks at the instances and
// ports the change reached (pass.candidates), not at every one the host
// has.
func (p *pass) instanceWork() []instanceWork {
	ports := map[string][]string{}
	portIDs, every := p.candidates(store.Ports)
	instanceIDs, _ := p.candidates(store.Instances)
	if every {
		portIDs, instanceIDs = make(map[string]bool, len(p.d.ports)), make(map[string]bool, len(p.d.instances))
		for id := range p.d.ports {
			portIDs[id] = true
		}
		for id := range p.d.instances {
			instanceIDs[id] = true
		}
	}
	for id := range portIDs {
		if ps, ok := p.d.ports[id]; ok && ps.InstanceID != "" && p.needs(key{store.Ports, id}, ps) {
			ports[ps.InstanceID] = append(ports[ps.InstanceID], id)
			instanceIDs[ps.InstanceID] = true
		}
	}
	var work []instanceWork
	for _, id := range sortedKeys(instanceIDs) {
		spec, ok := p.d.instances[id]
		if !ok || len(ports[id]) == 0 && !p.needs(key{store.Instances, id}, spec) {
			continue
		}
		ids := ports[id]
		slices.SortFunc(ids, func(x, y string) int {
			return compareIfNames(p.d.ports[x].Veth.IfName, p.d.ports[y].Veth.IfName)
		})
		work = append(work, instanceWork{id: id, spec: spec, ports: ids})
	}
	return work
}

// ensureInstance programs one instance's namespace, then its ports in it.
// The namespace is looked at even when only a port changed: the port
// needs it open. Opening it verifies it is still nsnet's; one the agent
// keeps open from an earlier pass is still the same namespace under its
// name, verified again by full passes (ensureNetns).
func (p *pass) ensureInstance(w instanceWork) {
	ns, changed, err := p.ensureNetns(w.spec)
	// An instance programmed as it is, whose marks its ports do not
	// change, has its resolv.conf and DSCP table: a port plugged into it
	// needs only its namespace (drift is the full pass's).
	settled := !p.needs(key{store.Instances, w.id}, w.spec) && !p.marksChange(w)
	if err == nil && !settled {
		var c bool
		c, err = netns.EnsureEtcFile(w.spec.Netns, "resolv.conf", w.spec.ResolvConf, func(cur []byte) bool {
			// Once a DHCP client wrote it, the file is the client's.
			return !w.spec.DHCPClient || bytes.HasPrefix(cur, []byte(resolvConfMark))
		})
		changed = changed || c
		if err == nil {
			// The DSCP marks of its ports' QoS policies (none: no table).
			c, err = p.ensureDSCP(w.id, w.spec.Netns, ns)
			changed = changed || c
		}
		if err != nil {
			ns.Close()
		}
	}
	p.record(key{store.Instances, w.id}, w.spec, changed, err, status{model.StatusActive, ""})
	if err != nil {
		for _, id := range w.ports {
			p.record(key{store.Ports, id}, p.d.ports[id], false, fmt.Errorf("instance %s: %w", w.spec.Name, err), status{})
		}
		return
	}
	defer ns.Close()
	for _, id := range w.ports {
		if p.yielded() {
			// An instance can have dozens of ports: the rest, in
			// order, are the continuing pass's (yield.go).
			return
		}
		spec := p.d.ports[id]
		k := key{store.Ports, id}
		if !p.isGood(key{store.Networks, spec.NetworkID}) {
			p.record(k, spec, false, fmt.Errorf("network %s is not programmed", spec.NetworkID), status{})
			continue
		}
		if plugHook != nil {
			plugHook(p, spec.Veth.TapName)
		}
		changed, err := dataplane.EnsureVethPort(p.links, ns, spec.Veth)
		if err == nil {
			var c bool
			c, err = dataplane.EnsurePortQos(p.links, ns, spec.Veth.TapName, spec.Veth.IfName, spec.Veth.Alias, spec.Qos)
			changed = changed || c
		}
		if old, ok := p.a.tried[k].(portSpec); ok && err == nil && spec.Veth.DHCPClient && !old.Veth.DHCPClient {
			// Static until now: the addresses nsnet set go, once.
			var c bool
			c, err = dataplane.DropPortAddrs(ns, spec.Veth.IfName, spec.Veth.Alias, old.Veth.Addrs)
			changed = changed || c
		}
		ok := status{model.StatusActive, ""}
		if !spec.Veth.Up {
			ok = status{model.StatusDown, ""}
		}
		p.record(k, spec, changed, err, ok)
	}
}

// ensureDSCP makes the DSCP table of instance id's namespace ns (named
// netns) hold the marks of its ports (none: no table). The table is read
// back only when it may differ: in a full pass (drift), or when the marks
// are not those this agent last gave it. A namespace just made has none.
func (p *pass) ensureDSCP(id, netns string, ns *dataplane.Namespace) (changed bool, err error) {
	want := p.d.dscp[id]
	last, known := p.a.dscpTables[id]
	if ns.Fresh {
		last, known = nil, true
	}
	if known && maps.Equal(last, want) && (ns.Fresh || !p.full) {
		if ns.Fresh {
			p.noteDSCP(id, want, true)
		}
		return false, nil
	}
	changed, err = qosmark.Ensure(netns, want)
	p.noteDSCP(id, want, err == nil)
	return changed, err
}

// noteDSCP records the DSCP marks instance id's table holds now, if
// known: its programming did not fail.
func (p *pass) noteDSCP(id string, marks map[string]uint8, known bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dscpTables == nil {
		p.dscpTables = map[string]map[string]uint8{}
	}
	p.dscpTables[id] = nil
	if known {
		p.dscpTables[id] = map[string]uint8{}
		maps.Copy(p.dscpTables[id], marks)
	}
}

// marksChange reports whether the ports of w that need work change the
// instance's DSCP marks (d.dscp) from what was last programmed: a port's
// mark, or the interface it is on, is not what it was.
func (p *pass) marksChange(w instanceWork) bool {
	for _, id := range w.ports {
		spec := p.d.ports[id]
		old, ok := p.a.tried[key{store.Ports, id}].(portSpec)
		if !ok {
			if spec.Marked {
				return true
			}
			continue
		}
		if old.Marked != spec.Marked || old.DSCP != spec.DSCP || old.Marked && old.Veth.IfName != spec.Veth.IfName {
			return true
		}
	}
	return false
}

// plugHook, when set (by tests), is called before an instance's port is
// programmed, with its tap.
var plugHook func(p *pass, tap string)

// ensureNetns ensures an instance's namespace. A namespace of that name
// with this agent's marker for another instance is nsnet's own leftover (an
// instance deleted, another created under its name): it is replaced.
func (p *pass) ensureNetns(spec instanceSpec) (*dataplane.Namespace, bool, error) {
	// A full pass checks a namespace kept open from an earlier pass as
	// it would one it opens (drift); an incremental one knows it nsnet's.
	ns, changed, err := p.a.instanceNS.EnsureInstance(spec.Netns, spec.Marker, p.full)
	var no *dataplane.NotOwnedError
	if !errors.As(err, &no) {
		return ns, changed, err
	}
	if _, host, ok := dataplane.ParseInstanceMarker(no.Mark); !ok || host != p.a.markerHost {
		return nil, false, err
	}
	p.a.log.Info("replacing leftover namespace", "namespace", spec.Netns, "marker", no.Mark)
	p.a.instanceNS.Forget(spec.Netns)
	if err := dataplane.DeleteInstanceNetns(spec.Netns, no.Mark, p.links); err != nil {
		return nil, false, err
	}
	ns, _, err = p.a.instanceNS.EnsureInstance(spec.Netns, spec.Marker, p.full)
	return ns, true, err
}
