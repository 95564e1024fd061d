package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nsnet/nsnet/internal/dataplane"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/netns"
	"github.com/nsnet/nsnet/internal/qosmark"
	"github.com/nsnet/nsnet/internal/store"
)

// pass is one convergence pass over one store snapshot.
//
// A full pass reads the host's whole link table (one dump) and every
// namespace with the agent's prefix, deletes what nsnet owns there but the
// store does not want, and ensures every desired object, each Ensure
// reading the kernel before it writes. An incremental pass, run on store
// changes, ensures only the objects whose spec changed since they were last
// programmed or whose last attempt failed, and deletes the objects that
// left the store: its cost follows the size of the change, not of the host.
// Drift behind nsnet's back is repaired by the next full pass.
//
// Neither reads the whole store nor recomputes the whole desired state
// when it can help it: the records are kept decoded, only those the
// store's change log names are read again, and the desired state is
// updated for the records that changed (incremental.go). A full pass
// computes the desired state from every record, as the definition.
type pass struct {
	a     *Agent
	d     *desired
	links *dataplane.Links
	full  bool

	mu      sync.Mutex
	results map[key]status // objects looked at in this pass
	tried   map[key]any    // merged into Agent.tried at the end
	good    map[key]bool
	forget  []key // objects whose kernel state is gone
	// hostNATRan: the host's table was programmed in this pass, so the
	// host-gateway networks, whose status follows it, are visited.
	hostNATRan bool
	// sweepFailed: something left over (see leftovers) is still there;
	// only full passes look for leftovers, so the retry must be one.
	sweepFailed bool
	changes     int
	errors      int
}

// pass runs one pass and reports whether every object ended without error.
// An error means the pass as a whole failed and converged nothing.
func (a *Agent) pass(ctx context.Context, full bool) (clean bool, err error) {
	start := time.Now()
	var ch *changes
	if !full && a.fed && a.pending != nil {
		// idle brought the records to the revision the watch delivered
		// from the store's feed: the pass programs that one, and a
		// newer revision wakes the agent again.
		ch = a.pending
	} else {
		log, _ := a.cfg.Store.(store.ChangeLog)
		err = a.cfg.Store.View(ctx, func(r store.Reader) error {
			var err error
			ch, err = a.records.sync(r, log)
			return err
		})
		if err != nil {
			a.inc.d, a.pending, a.fed = nil, nil, false // the records start over: so does the desired state
			return false, fmt.Errorf("read store: %w", err)
		}
		if a.pending != nil {
			ch.follow(a.pending)
		}
	}
	a.pending, a.fed = nil, false
	d := a.inc.update(&a.records, ch, full, &a.mu)
	// Before any deletion of this pass: what it deletes is not drift.
	a.wanted.Store(wantedOf(d))
	p := &pass{
		a:       a,
		d:       d,
		full:    full,
		results: map[key]status{},
		tried:   map[key]any{},
		good:    map[key]bool{},
	}
	if full {
		if err := a.openHost(); err != nil {
			return false, err
		}
		if p.links, err = dataplane.DumpLinks(a.host); err != nil {
			return false, fmt.Errorf("read host links: %w", err)
		}
	} else {
		p.links = dataplane.NewLinks(a.host)
	}
	p.links.SetNamespace(a.cfg.HostNetns)

	p.removeUnwanted()
	if full {
		p.sweepSubportFilters()
	}
	p.ensureHostNAT()
	p.ensureNetworks()
	p.ensureOverlays()
	p.ensureInstances(ctx)
	p.ensureTrunks()
	// Who is who first: listeners may start answering in this pass.
	a.metadata.SetDirectory(p.d.metadata)
	p.ensureRouters(ctx)
	p.ensureFirewall()
	p.ensureDHCPs(ctx)
	p.ensureMetadata6()
	if err := ctx.Err(); err != nil {
		return false, err
	}
	a.finish(p, time.Since(start))
	return p.errors == 0, nil
}

// needs reports whether object k must be (re)programmed with spec.
func (p *pass) needs(k key, spec any) bool {
	return p.full || !p.a.good[k] || !sameSpec(p.a.tried[k], spec)
}

// isGood reports whether k's kernel state is in place, as of this pass.
func (p *pass) isGood(k key) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ok, seen := p.good[k]; seen {
		return ok
	}
	return p.a.good[k]
}

// record notes the outcome of programming k with spec.
func (p *pass) record(k key, spec any, changed bool, err error, ok status) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tried[k] = spec
	p.good[k] = err == nil
	if changed {
		p.changes++
		p.a.log.Info("programmed", "object", k.String())
	}
	if err != nil {
		p.errors++
		p.results[k] = status{model.StatusError, err.Error()}
		return
	}
	p.results[k] = ok
}

// recordDelete notes the outcome of deleting d's kernel state.
func (p *pass) recordDelete(d deletion, deleted bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k, what := d.k, d.what
	switch {
	case errors.Is(err, dataplane.ErrNotOwned):
		// Someone else's object took the name: nsnet has nothing
		// there any more to delete.
		p.a.log.Warn("not deleting what is not nsnet's", "object", k.String(), "err", err)
		p.forget = append(p.forget, k)
	case err != nil:
		// Stays in tried, so the next pass tries again; a leftover
		// is found again by the next full pass.
		p.errors++
		p.sweepFailed = p.sweepFailed || d.leftover
		p.a.log.Error("delete failed", "object", k.String(), "kernel", what, "err", err)
	default:
		if deleted {
			p.changes++
			p.a.log.Info("deleted", "object", k.String(), "kernel", what)
		}
		p.forget = append(p.forget, k)
	}
}

// deletion is the removal of one object's kernel state.
type deletion struct {
	k    key
	what string // the kernel object: "link tap0123", "namespace red"
	run  func() (deleted bool, err error)
	// leftover: found in the kernel by a full pass (leftovers), not
	// remembered in tried.
	leftover bool
}

// removeUnwanted deletes the kernel state the store no longer wants.
// Namespaces go first, side by side: the kernel destroys them, and the veths
// in them, in batches, whereas deleting veths one by one costs RCU grace
// periods each. The ports left to delete after that are those unplugged
// from instances that stay; then bridges.
func (p *pass) removeUnwanted() {
	dels := p.gone()
	if p.full {
		dels = append(dels, p.leftovers()...)
	}
	seen := map[string]bool{}
	for _, kind := range []store.Kind{store.Routers, dhcpKind, store.Trunks, subportKind, store.Instances, store.Ports, overlayKind, store.Networks} {
		var jobs []func()
		for _, d := range dels {
			if d.k.kind != kind || seen[d.what] {
				continue
			}
			seen[d.what] = true
			jobs = append(jobs, func() {
				deleted, err := d.run()
				p.recordDelete(d, deleted, err)
			})
		}
		parallel(deleteWorkers, jobs)
	}
}

// gone lists the deletions of objects programmed before that the store no
// longer wants, or wants under another name.
func (p *pass) gone() []deletion {
	var dels []deletion
	for k, spec := range p.a.tried {
		switch s := spec.(type) {
		case portSpec:
			if _, ok := p.d.ports[k.id]; !ok {
				dels = append(dels, p.linkDeletion(k, s.Veth.TapName, s.Veth.Alias))
			}
		case instanceSpec:
			if cur, ok := p.d.instances[k.id]; !ok || cur.Netns != s.Netns {
				dels = append(dels, p.namespaceDeletion(k, s.Netns, s.Marker))
			}
		case networkSpec:
			if _, ok := p.d.networks[k.id]; !ok {
				dels = append(dels, p.linkDeletion(k, s.Bridge.Name, s.Bridge.Alias))
			}
		case routerSpec:
			if cur, ok := p.d.routers[k.id]; !ok || cur.Netns != s.Netns {
				dels = append(dels, p.routerDeletion(k, s))
			}
		case dhcpSpec:
			if cur, ok := p.d.dhcp[k.id]; !ok || cur.Netns != s.Netns {
				dels = append(dels, p.dhcpDeletion(k, s))
			}
		case trunkSpec:
			if _, ok := p.d.trunks[k.id]; !ok {
				dels = append(dels, p.trunkDeletion(k, s))
			}
		case overlaySpec:
			if d, ok := p.overlayGone(k, s); ok {
				dels = append(dels, d)
			}
		}
	}
	return dels
}

func (p *pass) linkDeletion(k key, name, alias string) deletion {
	return deletion{k: k, what: "link " + name, run: func() (bool, error) { return dataplane.DeleteLink(p.links, name, alias) }}
}

func (p *pass) namespaceDeletion(k key, name, marker string) deletion {
	return deletion{k: k, what: "namespace " + name, run: func() (bool, error) {
		err := dataplane.DeleteInstanceNetns(name, marker, p.links)
		return err == nil, err
	}}
}

// leftovers lists the deletions of what the kernel holds with nsnet's
// marks that no desired object accounts for: state of objects deleted while
// the agent was down, or left by a crash. It only looks at links in the
// host namespace and at namespaces with the agent's prefix and host marker.
func (p *pass) leftovers() []deletion {
	var dels []deletion
	for alias, link := range p.links.Owned() {
		name := link.Attrs().Name
		kind, id, _ := dataplane.ParseAlias(alias)
		switch kind {
		case "port":
			if ps, ok := p.d.ports[id]; !ok || ps.Veth.TapName != name {
				dels = append(dels, p.linkDeletion(key{store.Ports, id}, name, alias))
			}
		case "network":
			if n, ok := p.d.networks[id]; !ok || n.Bridge.Name != name {
				dels = append(dels, p.linkDeletion(key{store.Networks, id}, name, alias))
			}
		case "subport":
			if v, ok := p.d.subports[id]; !ok || v.VLAN.Name != name && v.VLAN.Peer != name {
				dels = append(dels, p.linkDeletion(key{subportKind, id}, name, alias))
			}
		case "vxlan":
			if d, ok := p.overlayLeftover(id, name, alias); ok {
				dels = append(dels, d)
			}
		}
	}
	dels = append(dels, p.leftoverNamespaces()...)
	for i := range dels {
		dels[i].leftover = true
	}
	return dels
}

func (p *pass) leftoverNamespaces() []deletion {
	names, err := netns.List()
	if err != nil {
		p.sweepFailedOn()
		p.a.log.Error("list namespaces", "err", err)
		return nil
	}
	wanted := map[string]bool{p.a.cfg.HostNetns: true}
	for _, inst := range p.d.instances {
		wanted[inst.Netns] = true
	}
	for _, r := range p.d.routers {
		wanted[r.Netns] = true
	}
	for _, s := range p.d.dhcp {
		wanted[s.Netns] = true
	}
	var dels []deletion
	for _, name := range names {
		if wanted[name] || !strings.HasPrefix(name, p.a.cfg.NetnsPrefix) {
			continue
		}
		if !netns.Exists(name) {
			// The mount point of a creation that died (SIGKILL) before
			// it mounted the namespace.
			if removed, err := netns.RemoveStale(name); err != nil {
				// Maybe a creation under way; if not, a retry
				// removes it once it is old enough to tell.
				p.a.log.Debug("mount point without a namespace", "path", netns.Path(name), "err", err)
				p.sweepFailedOn()
			} else if removed {
				p.a.log.Info("removed the mount point of an unfinished namespace", "path", netns.Path(name))
			}
			continue
		}
		marker, err := dataplane.ReadMarker(name)
		if err != nil {
			continue // vanished, or not something nsnet could have made
		}
		if id, host, ok := dataplane.ParseInstanceMarker(marker); ok && host == p.a.markerHost {
			dels = append(dels, p.namespaceDeletion(key{store.Instances, id}, name, marker))
		}
		if id, host, ok := dataplane.ParseRouterMarker(marker); ok && host == p.a.markerHost {
			dels = append(dels, p.routerDeletion(key{store.Routers, id}, routerSpec{Netns: name, Marker: marker}))
		}
		if id, host, ok := dataplane.ParseDHCPMarker(marker); ok && host == p.a.markerHost {
			dels = append(dels, p.dhcpDeletion(key{dhcpKind, id}, dhcpSpec{Netns: name, Marker: marker}))
		}
	}
	return dels
}

// sweepFailedOn notes a leftover the sweep could not look at or remove.
func (p *pass) sweepFailedOn() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.errors++
	p.sweepFailed = true
}

// parallel runs jobs, at most n at a time, and waits for them.
func parallel(n int, jobs []func()) {
	if len(jobs) == 1 {
		jobs[0]()
		return
	}
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for _, job := range jobs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			job()
		}()
	}
	wg.Wait()
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

func (p *pass) instanceWork() []instanceWork {
	ports := map[string][]string{}
	for id, ps := range p.d.ports {
		if p.needs(key{store.Ports, id}, ps) {
			ports[ps.InstanceID] = append(ports[ps.InstanceID], id)
		}
	}
	var work []instanceWork
	for _, id := range sortedKeys(p.d.instances) {
		spec := p.d.instances[id]
		if len(ports[id]) == 0 && !p.needs(key{store.Instances, id}, spec) {
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
// The namespace is checked even when only a port changed: the port needs
// it open, and opening it verifies it is still nsnet's.
func (p *pass) ensureInstance(w instanceWork) {
	ns, changed, err := p.ensureNetns(w.spec)
	if err == nil {
		var c bool
		c, err = netns.EnsureEtcFile(w.spec.Netns, "resolv.conf", w.spec.ResolvConf, func(cur []byte) bool {
			// Once a DHCP client wrote it, the file is the client's.
			return !w.spec.DHCPClient || bytes.HasPrefix(cur, []byte(resolvConfMark))
		})
		changed = changed || c
		if err == nil {
			// The DSCP marks of its ports' QoS policies (none: no table).
			c, err = qosmark.Ensure(w.spec.Netns, p.d.dscp[w.id])
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
		spec := p.d.ports[id]
		k := key{store.Ports, id}
		if !p.isGood(key{store.Networks, spec.NetworkID}) {
			p.record(k, spec, false, fmt.Errorf("network %s is not programmed", spec.NetworkID), status{})
			continue
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

// ensureNetns ensures an instance's namespace. A namespace of that name
// with this agent's marker for another instance is nsnet's own leftover (an
// instance deleted, another created under its name): it is replaced.
func (p *pass) ensureNetns(spec instanceSpec) (*dataplane.Namespace, bool, error) {
	ns, changed, err := dataplane.EnsureInstanceNetns(spec.Netns, spec.Marker)
	var no *dataplane.NotOwnedError
	if !errors.As(err, &no) {
		return ns, changed, err
	}
	if _, host, ok := dataplane.ParseInstanceMarker(no.Mark); !ok || host != p.a.markerHost {
		return nil, false, err
	}
	p.a.log.Info("replacing leftover namespace", "namespace", spec.Netns, "marker", no.Mark)
	if err := dataplane.DeleteInstanceNetns(spec.Netns, no.Mark, p.links); err != nil {
		return nil, false, err
	}
	ns, _, err = dataplane.EnsureInstanceNetns(spec.Netns, spec.Marker)
	return ns, true, err
}

// finish publishes a pass: what was programmed, statuses, health, and the
// revision the kernel now reflects.
func (a *Agent) finish(p *pass, took time.Duration) {
	for k, spec := range p.tried {
		a.tried[k] = spec
		a.good[k] = p.good[k]
	}
	for _, k := range p.forget {
		if _, still := p.tried[k]; !still {
			delete(a.tried, k)
			delete(a.good, k)
		}
	}
	if p.full {
		a.resweep = p.sweepFailed
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	var want map[key]status
	if verifyStatuses != nil {
		want = a.statusesOf(p)
	}
	touched, all := a.inc.touched, a.inc.all
	a.inc.touched, a.inc.all = nil, false
	if !p.full && !all {
		a.updateStatusesLocked(p, touched)
	} else {
		a.statuses, a.errored = a.statusesOf(p), nil
		for k, st := range a.statuses {
			a.markErrorLocked(k, st)
		}
	}
	if verifyStatuses != nil {
		verifyStatuses(a.statuses, want)
	}
	managed := a.managedLocked(p.d)
	a.names = p.d.names

	now := time.Now()
	h := &a.health
	h.LastPass, h.LastPassDuration, h.LastPassFull = now, took.String(), p.full
	if p.full {
		h.LastFullPass = now
		h.FullPasses++
	}
	h.Passes++
	h.Changes += int64(p.changes)
	h.Revision = p.d.rev
	h.Managed = managed
	h.Errors = a.objectErrorsLocked()

	a.converged = p.d.rev
	close(a.convergedCh)
	a.convergedCh = make(chan struct{})
	a.log.Debug("pass done", "full", p.full, "revision", p.d.rev, "took", took, "changes", p.changes, "errors", p.errors)
}

// verifyStatuses, when set (by tests), is given the statuses a pass
// updated in place and those statusesOf computes from scratch, which must
// be equal.
var verifyStatuses func(got, want map[key]status)

// statusesOf computes every status after pass p: the objects p looked at
// get their result, the other desired ones keep theirs (BUILD when they
// have none yet), the fixed ones theirs.
func (a *Agent) statusesOf(p *pass) map[key]status {
	statuses := make(map[key]status, len(a.statuses))
	keep := func(k key) {
		st, ok := p.results[k]
		if !ok {
			st, ok = a.statuses[k]
		}
		if !ok {
			st = status{Status: model.StatusBuild}
		}
		if prev := a.statuses[k]; st.Status == model.StatusError && prev != st && verifyStatuses == nil {
			a.log.Warn("object in error", "object", k.String(), "reason", st.Reason)
		}
		statuses[k] = st
	}
	for id := range p.d.networks {
		keep(key{store.Networks, id})
	}
	for id := range p.d.instances {
		keep(key{store.Instances, id})
	}
	for id := range p.d.ports {
		keep(key{store.Ports, id})
	}
	for id := range p.d.dhcp {
		keep(key{dhcpKind, id})
	}
	for id := range p.d.trunks {
		keep(key{store.Trunks, id})
	}
	for id := range p.d.overlay {
		keep(key{overlayKind, id})
	}
	for id, r := range p.d.routers {
		keep(key{store.Routers, id})
		for _, f := range r.FloatingIPs {
			keep(key{store.FloatingIPs, f})
		}
	}
	for k, st := range p.d.fixed {
		statuses[k] = st
	}
	return statuses
}

// updateStatusesLocked updates the statuses in place after an incremental
// pass, as statusesOf would compute them: only the keys the desired
// state's update touched and those p looked at can have changed.
func (a *Agent) updateStatusesLocked(p *pass, touched map[key]bool) {
	var floating map[string]bool // floating IPs of routers
	desired := func(k key) bool {
		switch k.kind {
		case store.Networks:
			_, ok := p.d.networks[k.id]
			return ok
		case store.Instances:
			_, ok := p.d.instances[k.id]
			return ok
		case store.Ports:
			_, ok := p.d.ports[k.id]
			return ok
		case dhcpKind:
			_, ok := p.d.dhcp[k.id]
			return ok
		case store.Trunks:
			_, ok := p.d.trunks[k.id]
			return ok
		case overlayKind:
			_, ok := p.d.overlay[k.id]
			return ok
		case store.Routers:
			_, ok := p.d.routers[k.id]
			return ok
		case store.FloatingIPs:
			if floating == nil {
				floating = map[string]bool{}
				for _, r := range p.d.routers {
					for _, f := range r.FloatingIPs {
						floating[f] = true
					}
				}
			}
			return floating[k.id]
		}
		return false
	}
	update := func(k key) {
		prev, had := a.statuses[k]
		if st, ok := p.d.fixed[k]; ok {
			a.statuses[k] = st
		} else if desired(k) {
			st, ok := p.results[k]
			if !ok {
				st, ok = prev, had
			}
			if !ok {
				st = status{Status: model.StatusBuild}
			}
			if st.Status == model.StatusError && prev != st && verifyStatuses == nil {
				a.log.Warn("object in error", "object", k.String(), "reason", st.Reason)
			}
			a.statuses[k] = st
		} else {
			delete(a.statuses, k)
		}
		a.markErrorLocked(k, a.statuses[k])
	}
	for k := range touched {
		update(k)
	}
	for k := range p.results {
		if !touched[k] {
			update(k)
		}
	}
}

// markErrorLocked keeps a.errored, the keys in ERROR, up to date with k's
// status st.
func (a *Agent) markErrorLocked(k key, st status) {
	if st.Status == model.StatusError {
		if a.errored == nil {
			a.errored = map[key]bool{}
		}
		a.errored[k] = true
	} else {
		delete(a.errored, k)
	}
}

// managedLocked counts the objects the kernel has, per kind: the desired
// ones programmed without error, and the floating IPs their routers
// translate.
func (a *Agent) managedLocked(d *desired) map[string]int {
	managed := map[string]int{}
	count := func(k key) {
		if a.good[k] {
			managed[string(k.kind)]++
		}
	}
	for id := range d.networks {
		count(key{store.Networks, id})
	}
	for id := range d.instances {
		count(key{store.Instances, id})
	}
	for id := range d.ports {
		count(key{store.Ports, id})
	}
	for id := range d.dhcp {
		count(key{dhcpKind, id})
	}
	for id := range d.trunks {
		count(key{store.Trunks, id})
	}
	for id := range d.overlay {
		count(key{overlayKind, id})
	}
	active := map[string]bool{}
	for id, r := range d.routers {
		count(key{store.Routers, id})
		for _, f := range r.FloatingIPs {
			count(key{store.FloatingIPs, f})
			if a.statuses[key{store.FloatingIPs, f}].Status == model.StatusActive {
				active[f] = true
			}
		}
	}
	if len(active) > 0 {
		managed[string(store.FloatingIPs)] += len(active)
	}
	return managed
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
