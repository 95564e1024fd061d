package agent

import (
	"errors"
	"fmt"

	vnetns "github.com/vishvananda/netns"

	"github.com/nsnet/nsnet/internal/dataplane"
	"github.com/nsnet/nsnet/internal/netns"
	"github.com/nsnet/nsnet/internal/radv"
)

// routerAdverts are the router advertisement servers of one router, by
// interface name, and the namespace their sockets are in.
type routerAdverts struct {
	ino     uint64
	servers map[string]*advertiser
}

// advertiser is one interface's server, the link it was started on (a
// qr- veth recreated needs a new socket) and what it advertises.
type advertiser struct {
	ifindex int
	srv     *radv.Server
	cfg     *radv.Config
}

// close stops every server, each with its final advertisement (router
// lifetime 0), so that instances drop the router at once.
func (r *routerAdverts) close() {
	for _, a := range r.servers {
		a.srv.Close()
	}
}

// leave stops every server without a final advertisement: the agent is
// stopping, the router stays and goes on routing, and the next agent
// advertises for it (restarts touch nothing, IPv6 default routes too).
func (r *routerAdverts) leave() {
	for _, a := range r.servers {
		a.srv.Leave()
	}
}

// ensureAdverts makes router id's advertisement servers those of this
// pass, in ns as it is now: a server per advertising qr- port, started
// where missing or on a link that is not the one it was started on,
// stopped for a port that no longer advertises, and given its
// configuration when that changed.
func (p *pass) ensureAdverts(id string, ns *dataplane.Namespace) error {
	want := p.d.adverts[id]
	cur, ok := p.a.adverts.get(id)
	if !ok && len(want) == 0 {
		return nil
	}
	ino, err := netns.Inode(ns.Name)
	if err != nil {
		return err
	}
	if ok && cur.ino != ino {
		// The namespace was replaced: the sockets are in the old one.
		p.a.adverts.close(id)
		ok = false
	}
	if !ok {
		cur = &routerAdverts{ino: ino, servers: map[string]*advertiser{}}
		p.a.adverts.set(id, cur)
	}
	var errs []error
	for ifname, a := range cur.servers {
		spec, wanted := want[ifname]
		if wanted {
			ifindex, err := dataplane.LinkIndex(ns, ifname, spec.Alias)
			if err == nil && ifindex == a.ifindex {
				continue
			}
		}
		a.srv.Close()
		delete(cur.servers, ifname)
	}
	for _, ifname := range sortedKeys(want) {
		spec := want[ifname]
		a := cur.servers[ifname]
		if a == nil {
			ifindex, err := dataplane.LinkIndex(ns, ifname, spec.Alias)
			if err == nil && ifindex == 0 {
				err = fmt.Errorf("link %s is missing", ifname)
			}
			var srv *radv.Server
			if err == nil {
				srv, err = radv.Listen(vnetns.NsHandle(ns.Fd()), ifname, p.a.log.With("router", id, "interface", ifname))
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("router advertisements on %s: %w", ifname, err))
				continue
			}
			a = &advertiser{ifindex: ifindex, srv: srv}
			cur.servers[ifname] = a
		}
		if !sameAdvert(a.cfg, spec.Config) {
			a.srv.SetConfig(spec.Config)
			a.cfg = spec.Config
		}
	}
	if len(cur.servers) == 0 {
		p.a.adverts.close(id)
	}
	return errors.Join(errs...)
}

// configureAdverts hands router id's running servers this pass's
// configurations, for a router that needs no other work, and reports
// whether that was all: false when a server must start or stop, which
// takes the router's namespace (ensureAdverts).
func (p *pass) configureAdverts(id string) bool {
	want := p.d.adverts[id]
	cur, ok := p.a.adverts.get(id)
	if !ok {
		return len(want) == 0
	}
	if len(cur.servers) != len(want) {
		return false
	}
	for ifname := range want {
		if cur.servers[ifname] == nil {
			return false
		}
	}
	for ifname, a := range cur.servers {
		if cfg := want[ifname].Config; !sameAdvert(a.cfg, cfg) {
			a.srv.SetConfig(cfg)
			a.cfg = cfg
		}
	}
	return true
}
