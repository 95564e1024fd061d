package service

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// Port forwardings are a sub-resource of floating IPs
// (/v2.0/floatingips/{id}/port_forwardings), with the rules of Neutron's
// port forwarding plugin: every error but "not found" and the two
// association conflicts is a 400 BadRequest naming port_forwarding.

const pfResource = "port_forwarding"

// pfInput is a port forwarding body before it is checked as a whole.
type pfInput struct {
	model.PortForwarding
}

// portRange is an inclusive range of TCP/UDP ports.
type portRange struct{ first, last int }

func (r portRange) size() int                 { return r.last - r.first }
func (r portRange) String() string            { return fmt.Sprintf("%d:%d", r.first, r.last) }
func (r portRange) overlaps(o portRange) bool { return max(r.first, o.first) <= min(r.last, o.last) }
func singlePort(p int) portRange              { return portRange{p, p} }

func checkPortNumber(p int) error {
	if p < 1 || p > 65535 {
		return fmt.Errorf("'%d' is not in range 1 through 65535", p)
	}
	return nil
}

func parsePortRange(s string) (portRange, error) {
	first, last, found := strings.Cut(s, ":")
	if !found {
		last = first
	}
	a, err1 := strconv.Atoi(first)
	b, err2 := strconv.Atoi(last)
	if err1 != nil || err2 != nil || checkPortNumber(a) != nil || checkPortNumber(b) != nil || b < a {
		return portRange{}, fmt.Errorf("'%s' is not a valid port range: want PORT or FIRST:LAST, ports 1 through 65535", s)
	}
	return portRange{a, b}, nil
}

// portAttr is a TCP/UDP port attribute (external_port, host_port, …).
func portAttr[T any](name string, field func(*T) **int) attr[T] {
	return attr[T]{name: name, post: true, put: true, set: func(pf *T, raw json.RawMessage) error {
		if isNull(raw) {
			*field(pf) = nil
			return nil
		}
		n, err := parseInt(raw)
		if err != nil {
			return err
		}
		if err := checkPortNumber(n); err != nil {
			return err
		}
		*field(pf) = &n
		return nil
	}}
}

// rangeAttr is a port range attribute, "FIRST:LAST".
func rangeAttr[T any](name string, field func(*T) *string) attr[T] {
	return attr[T]{name: name, post: true, put: true, set: func(pf *T, raw json.RawMessage) error {
		if isNull(raw) {
			*field(pf) = ""
			return nil
		}
		s, err := parseString(raw, maxNameLen)
		if err != nil {
			var n int
			if json.Unmarshal(raw, &n) != nil {
				return err
			}
			s = strconv.Itoa(n)
		}
		r, err := parsePortRange(s)
		*field(pf) = r.String()
		return err
	}}
}

// protocolAttr is the required protocol of a forwarding: tcp or udp.
func protocolAttr[T any](field func(*T) *string) attr[T] {
	return attr[T]{name: "protocol", post: true, put: true, required: true, set: func(obj *T, raw json.RawMessage) error {
		s, err := parseString(raw, maxNameLen)
		if err != nil {
			return err
		}
		s = strings.ToLower(s)
		if s != "tcp" && s != "udp" {
			return fmt.Errorf("'%s' is not in ['tcp', 'udp']", s)
		}
		*field(obj) = s
		return nil
	}}
}

// internalIPAttr is the IPv4 address a forwarding goes to; one that is
// not required may be null ("").
func internalIPAttr[T any](required bool, field func(*T) *string) attr[T] {
	return attr[T]{name: "internal_ip_address", post: true, put: true, required: required, set: func(obj *T, raw json.RawMessage) error {
		if !required && isNull(raw) {
			*field(obj) = ""
			return nil
		}
		s, err := parseString(raw, maxNameLen)
		if err != nil {
			return err
		}
		a, err := parseAddr(s)
		if err == nil && !a.Is4() {
			err = fmt.Errorf("'%s' is not an IPv4 address", s)
		}
		*field(obj) = a.String()
		return err
	}}
}

var pfAttrs = append([]attr[pfInput]{
	stringAttr("description", true, true, func(pf *pfInput) *string { return &pf.Description }),
	protocolAttr(func(pf *pfInput) *string { return &pf.Protocol }),
	internalIPAttr(true, func(pf *pfInput) *string { return &pf.InternalIPAddress }),
	{name: "internal_port_id", post: true, put: true, required: true, set: func(pf *pfInput, raw json.RawMessage) error {
		s, err := parseString(raw, maxNameLen)
		pf.InternalPortID = s
		return err
	}},
	portAttr("external_port", func(pf *pfInput) **int { return &pf.ExternalPort }),
	portAttr("internal_port", func(pf *pfInput) **int { return &pf.InternalPort }),
	rangeAttr("external_port_range", func(pf *pfInput) *string { return &pf.ExternalPortRange }),
	rangeAttr("internal_port_range", func(pf *pfInput) *string { return &pf.InternalPortRange }),
}, projectAttrs(func(pf *pfInput) *string { return &pf.ProjectID })...)

// ports returns the external and internal ranges of pf, normalising a
// range of one port to the port itself, and checks that exactly one form
// of each was given and that they relate N to N or N to 1.
func (pf *pfInput) ports(given Attrs) (ext, in portRange, err error) {
	ext, err = pickPorts(&pf.ExternalPort, &pf.ExternalPortRange, "external", given, pfResource)
	if err != nil {
		return
	}
	in, err = pickPorts(&pf.InternalPort, &pf.InternalPortRange, "internal", given, pfResource)
	if err != nil {
		return
	}
	if in.size() > 0 && in.size() != ext.size() {
		err = badResource(pfResource, "Invalid ranges of internal and/or external ports. The relation between internal and external ports must be N-N or 1-N")
	}
	return
}

// pickPorts settles a port/port_range pair: the one the request gave wins
// over the stored other (an update may switch forms).
func pickPorts(port **int, rng *string, side string, given Attrs, resource string) (portRange, error) {
	_, portGiven := given[side+"_port"]
	_, rangeGiven := given[side+"_port_range"]
	switch {
	case portGiven && rangeGiven && *port != nil && *rng != "":
		return portRange{}, badResource(resource, "You cannot specify both %s_port and %s_port_range", side, side)
	case portGiven && *port != nil:
		*rng = ""
	case rangeGiven && *rng != "":
		*port = nil
	}
	if *rng != "" {
		r, _ := parsePortRange(*rng)
		if r.size() == 0 {
			*port, *rng = &r.first, ""
		}
		return r, nil
	}
	if *port == nil {
		return portRange{}, badResource(resource, "You must specify either %s_port or %s_port_range", side, side)
	}
	return singlePort(**port), nil
}

// CreatePortForwarding adds a port forwarding to floating IP fipID.
func (s *Service) CreatePortForwarding(ctx context.Context, fipID string, in Attrs) (Result[model.PortForwarding], error) {
	pf := pfInput{model.PortForwarding{ID: newID(), FloatingIPID: fipID}}
	if err := mustCreate(ctx, "create_floatingip_port_forwarding"); err != nil {
		return Result[model.PortForwarding]{}, err
	}
	if err := decode(&pf, pfAttrs, in, opCreate); err != nil {
		return Result[model.PortForwarding]{}, err
	}
	rev, err := s.store.Update(ctx, func(tx store.Txn) error {
		fip, err := loadFloatingIP(ctx, tx, fipID)
		if err != nil {
			return err
		}
		if err := authorize(ctx, "create_floatingip_port_forwarding", fip.ProjectID); err != nil {
			return err
		}
		pf := pf // a retry starts again from the request (see store.Update)
		pf.ProjectID = fip.ProjectID
		return s.putForwarding(ctx, tx, &fip, &pf, in)
	})
	if err != nil {
		return Result[model.PortForwarding]{}, err
	}
	return s.pfResult(ctx, fipID, pf.ID, rev)
}

// UpdatePortForwarding applies the attributes of a PUT.
func (s *Service) UpdatePortForwarding(ctx context.Context, fipID, id string, in Attrs) (Result[model.PortForwarding], error) {
	rev, err := s.store.Update(ctx, func(tx store.Txn) error {
		fip, cur, err := loadForwarding(ctx, tx, fipID, id)
		if err != nil {
			return err
		}
		if err := authorize(ctx, "update_floatingip_port_forwarding", fip.ProjectID); err != nil {
			return err
		}
		pf := pfInput{cur}
		if err := decode(&pf, pfAttrs, in, opUpdate); err != nil {
			return err
		}
		return s.putForwarding(ctx, tx, &fip, &pf, in)
	})
	if err != nil {
		return Result[model.PortForwarding]{}, err
	}
	return s.pfResult(ctx, fipID, id, rev)
}

// putForwarding checks pf against its floating IP, its internal port and
// the floating IP's other forwardings, then stores it and gives the
// floating IP the router that translates it.
func (s *Service) putForwarding(ctx context.Context, tx store.Txn, fip *model.FloatingIP, pf *pfInput, given Attrs) error {
	ext, in, err := pf.ports(given)
	if err != nil {
		return err
	}
	if fip.PortID != nil {
		return conflict("FloatingIPPortAlreadyAssociated",
			"Cannot associate floating IP %s (%s) with port %s using fixed IP %s, as that fixed IP already has a floating IP on external network %s.",
			fip.FloatingIPAddress, fip.ID, pf.InternalPortID, pf.InternalIPAddress, fip.FloatingNetworkID)
	}
	port, err := loadOwnPort(ctx, tx, pf.InternalPortID)
	if err != nil {
		return err
	}
	fixed, err := internalFixedIP(&port, pf.InternalIPAddress)
	if err != nil {
		return err
	}
	if err := checkPortHasNoFloatingIP(tx, pf, &port); err != nil {
		return err
	}
	router, err := routerFor(tx, fip.FloatingNetworkID, &port, fixed)
	if err != nil {
		return badResource(pfResource,
			"External network %s is not reachable from subnet %s. Cannot set Port forwarding for port %s with Floating IP %s",
			fip.FloatingNetworkID, fixed.SubnetID, port.ID, fip.ID)
	}
	if fip.RouterID != nil && *fip.RouterID != router {
		return badResource(pfResource, "The Floating IP %s had been set on router %s, the internal Neutron port %s can not reach it",
			fip.ID, *fip.RouterID, port.ID)
	}
	if err := checkCollisions(tx, pf, ext, in); err != nil {
		return err
	}
	if fip.RouterID == nil {
		fip.RouterID = &router
		if err := tx.Put(store.FloatingIPs, fip.ID, *fip); err != nil {
			return err
		}
	}
	return tx.Put(store.PortForwardings, pf.ID, pf.PortForwarding)
}

func internalFixedIP(port *model.Port, addr string) (model.FixedIP, error) {
	for _, ip := range port.FixedIPs {
		if ip.IPAddress == addr {
			return ip, nil
		}
	}
	var have []string
	for _, ip := range port.FixedIPs {
		have = append(have, ip.IPAddress)
	}
	return model.FixedIP{}, badResource(pfResource,
		"Requested internal IP address %s is not suitable for internal neutron port %s, as its fixed_ips are [%s]",
		addr, port.ID, strings.Join(have, ", "))
}

// checkPortHasNoFloatingIP: a port with a 1:1 floating IP takes no port
// forwardings (Neutron's PortHasBindingFloatingIP).
func checkPortHasNoFloatingIP(r store.Reader, pf *pfInput, port *model.Port) error {
	fips, err := fipsOfPort(r, port.ID)
	if err != nil {
		return err
	}
	for _, f := range fips {
		if f.PortID != nil && *f.PortID == port.ID {
			return conflict("PortHasBindingFloatingIP",
				"Cannot create port forwarding to floating IP %s (%s) with port %s using fixed IP %s, as that port already has a binding floating IP.",
				f.FloatingIPAddress, f.ID, port.ID, pf.InternalIPAddress)
		}
	}
	return nil
}

// checkCollisions refuses overlapping external ports on the same floating
// IP and protocol, and overlapping internal ports on the same internal
// address and protocol, with Neutron's message.
func checkCollisions(r store.Reader, pf *pfInput, ext, in portRange) error {
	// Only the floating IP's forwardings and the internal port's can
	// collide: the indexes name them.
	onFIP, err := forwardingsOf(r, pf.FloatingIPID)
	if err != nil {
		return err
	}
	toPort, err := forwardingsTo(r, pf.InternalPortID)
	if err != nil {
		return err
	}
	for _, o := range append(onFIP, toPort...) {
		if o.ID == pf.ID || o.Protocol != pf.Protocol {
			continue
		}
		oext, oin := forwardingRanges(&o)
		if o.FloatingIPID == pf.FloatingIPID && oext.overlaps(ext) {
			return collision("external_port_range", oext, ext)
		}
		if o.InternalPortID == pf.InternalPortID && o.InternalIPAddress == pf.InternalIPAddress && oin.overlaps(in) {
			return collision("internal_port_range", oin, in)
		}
	}
	return nil
}

func collision(key string, existing, requested portRange) *Error {
	return badResource(pfResource, "There is a port collision with the %s. The following ranges collides: %s and %s",
		key, existing, requested)
}

// forwardingRanges reads a stored forwarding's ranges.
func forwardingRanges(pf *model.PortForwarding) (ext, in portRange) {
	read := func(port *int, rng string) portRange {
		if port != nil {
			return singlePort(*port)
		}
		r, _ := parsePortRange(rng)
		return r
	}
	return read(pf.ExternalPort, pf.ExternalPortRange), read(pf.InternalPort, pf.InternalPortRange)
}

// DeletePortForwarding deletes one port forwarding of floating IP fipID.
func (s *Service) DeletePortForwarding(ctx context.Context, fipID, id string) (int64, error) {
	return s.store.Update(ctx, func(tx store.Txn) error {
		fip, pf, err := loadForwarding(ctx, tx, fipID, id)
		if err != nil {
			return err
		}
		if err := authorize(ctx, "delete_floatingip_port_forwarding", fip.ProjectID); err != nil {
			return err
		}
		return deleteForwarding(tx, pf)
	})
}

// deleteForwarding deletes pf; the last forwarding of a floating IP that
// is not associated takes the floating IP's router with it, as in Neutron.
func deleteForwarding(tx store.Txn, pf model.PortForwarding) error {
	if err := tx.Delete(store.PortForwardings, pf.ID); err != nil {
		return err
	}
	rest, err := forwardingsOf(tx, pf.FloatingIPID)
	if err != nil || len(rest) > 0 {
		return err
	}
	fip, err := store.Get[model.FloatingIP](tx, store.FloatingIPs, pf.FloatingIPID)
	if err != nil || fip.PortID != nil {
		return err
	}
	fip.RouterID = nil
	return tx.Put(store.FloatingIPs, fip.ID, fip)
}

// GetPortForwarding returns one port forwarding of floating IP fipID.
func (s *Service) GetPortForwarding(ctx context.Context, fipID, id string) (model.PortForwarding, error) {
	var pf model.PortForwarding
	err := s.store.View(ctx, func(r store.Reader) error {
		var err error
		_, pf, err = loadForwarding(ctx, r, fipID, id)
		return err
	})
	pf.FloatingIPID = "" // in the path, not in the body
	return pf, err
}

// ListPortForwardings returns the port forwardings of floating IP fipID.
func (s *Service) ListPortForwardings(ctx context.Context, fipID string) ([]model.PortForwarding, error) {
	var out []model.PortForwarding
	err := s.store.View(ctx, func(r store.Reader) error {
		if _, err := loadFloatingIP(ctx, r, fipID); err != nil {
			return err
		}
		var err error
		out, err = forwardingsOf(r, fipID)
		return err
	})
	for i := range out {
		out[i].FloatingIPID = "" // in the path, not in the body
	}
	return out, err
}

func (s *Service) pfResult(ctx context.Context, fipID, id string, rev int64) (Result[model.PortForwarding], error) {
	pf, err := s.GetPortForwarding(ctx, fipID, id)
	return Result[model.PortForwarding]{pf, rev}, err
}

// loadForwarding reads floating IP fipID for the caller and its forwarding
// id; a forwarding of another floating IP is not found.
func loadForwarding(ctx context.Context, r store.Reader, fipID, id string) (model.FloatingIP, model.PortForwarding, error) {
	fip, err := loadFloatingIP(ctx, r, fipID)
	if err != nil {
		return fip, model.PortForwarding{}, err
	}
	pf, err := store.Get[model.PortForwarding](r, store.PortForwardings, id)
	if err == store.ErrNotFound || err == nil && pf.FloatingIPID != fipID {
		return fip, pf, typed(http.StatusNotFound, "PortForwardingNotFound", "Port Forwarding %s could not be found.", id)
	}
	return fip, pf, err
}
