package service

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// Published ports (/v2.0/nsnet/published-ports, the nsnet-host-nat
// extension) send connections to a protocol and host port on any address
// of the host to an address on a network whose gateway is the host: the
// host NAT of seeds 000 and 002, docker's -p 8080:80. Host ports are the
// host's, shared by every project, so only an admin publishes them.

const ppResource = "published_port"

// ppInput is a published port body before it is checked as a whole.
type ppInput struct {
	model.PublishedPort
}

var ppAttrs = append([]attr[ppInput]{
	stringAttr("description", true, true, func(pp *ppInput) *string { return &pp.Description }),
	protocolAttr(func(pp *ppInput) *string { return &pp.Protocol }),
	internalIPAttr(false, func(pp *ppInput) *string { return &pp.InternalIPAddress }),
	{name: "internal_port_id", post: true, put: true, set: func(pp *ppInput, raw json.RawMessage) error {
		if isNull(raw) {
			pp.InternalPortID = ""
			return nil
		}
		s, err := parseString(raw, maxNameLen)
		pp.InternalPortID = s
		return err
	}},
	portAttr("host_port", func(pp *ppInput) **int { return &pp.HostPort }),
	portAttr("internal_port", func(pp *ppInput) **int { return &pp.InternalPort }),
	rangeAttr("host_port_range", func(pp *ppInput) *string { return &pp.HostPortRange }),
	rangeAttr("internal_port_range", func(pp *ppInput) *string { return &pp.InternalPortRange }),
}, projectAttrs(func(pp *ppInput) *string { return &pp.ProjectID })...)

// CreatePublishedPort publishes a host port.
func (s *Service) CreatePublishedPort(ctx context.Context, in Attrs) (Result[model.PublishedPort], error) {
	pp := ppInput{model.PublishedPort{ID: newID()}}
	if !caller(ctx).IsAdmin() {
		return Result[model.PublishedPort]{}, denied("create_published_port")
	}
	if err := decode(&pp, ppAttrs, in, opCreate); err != nil {
		return Result[model.PublishedPort]{}, err
	}
	project, err := owner(ctx, "create_published_port", pp.ProjectID)
	if err != nil {
		return Result[model.PublishedPort]{}, err
	}
	pp.ProjectID = project
	rev, err := s.store.Update(ctx, func(tx store.Txn) error {
		// A retry starts again from the request (see store.Update): the
		// internal address is resolved from the port as it is now.
		pp := pp
		return putPublished(ctx, tx, &pp, in)
	})
	if err != nil {
		return Result[model.PublishedPort]{}, err
	}
	return s.ppResult(ctx, pp.ID, rev)
}

// UpdatePublishedPort applies the attributes of a PUT.
func (s *Service) UpdatePublishedPort(ctx context.Context, id string, in Attrs) (Result[model.PublishedPort], error) {
	rev, err := s.store.Update(ctx, func(tx store.Txn) error {
		cur, err := loadPublished(ctx, tx, id)
		if err != nil {
			return err
		}
		if !caller(ctx).IsAdmin() {
			return denied("update_published_port")
		}
		pp := ppInput{cur}
		if err := decode(&pp, ppAttrs, in, opUpdate); err != nil {
			return err
		}
		return putPublished(ctx, tx, &pp, in)
	})
	if err != nil {
		return Result[model.PublishedPort]{}, err
	}
	return s.ppResult(ctx, id, rev)
}

// putPublished checks pp as a whole (its ports, its internal address on a
// host-gateway network, no other published port on the same host
// protocol and port) and stores it.
func putPublished(ctx context.Context, tx store.Txn, pp *ppInput, given Attrs) error {
	host, err := pickPorts(&pp.HostPort, &pp.HostPortRange, "host", given, ppResource)
	if err != nil {
		return err
	}
	in, err := pickPorts(&pp.InternalPort, &pp.InternalPortRange, "internal", given, ppResource)
	if err != nil {
		return err
	}
	if in.size() != host.size() {
		// Port by port, as nat publishes them: no N-to-1.
		return badResource(ppResource, "The host ports (%s) and internal ports (%s) must be as many", host, in)
	}
	if err := resolveInternal(ctx, tx, pp); err != nil {
		return err
	}
	all, err := store.List[model.PublishedPort](tx, store.PublishedPorts)
	if err != nil {
		return err
	}
	for _, o := range all {
		if o.ID == pp.ID || o.Protocol != pp.Protocol {
			continue
		}
		if oh := publishedHostPorts(&o); oh.overlaps(host) {
			return conflict("PublishedPortInUse", "Host port %s %s is already published by %s (%s).", pp.Protocol, host, o.ID, oh)
		}
	}
	return tx.Put(store.PublishedPorts, pp.ID, pp.PublishedPort)
}

// resolveInternal settles where pp sends connections: the internal port's
// address (its first IPv4 fixed IP when none was given, one of its fixed
// IPs otherwise), or an address alone; either way on a subnet of a
// network whose gateway is the host, which is what translates it.
func resolveInternal(ctx context.Context, r store.Reader, pp *ppInput) error {
	if pp.InternalPortID != "" {
		port, err := loadOwnPort(ctx, r, pp.InternalPortID)
		if err != nil {
			return err
		}
		if pp.InternalIPAddress == "" {
			for _, ip := range port.FixedIPs {
				if a, err := netip.ParseAddr(ip.IPAddress); err == nil && a.Is4() {
					pp.InternalIPAddress = a.String()
					break
				}
			}
			if pp.InternalIPAddress == "" {
				return badResource(ppResource, "Port %s has no IPv4 fixed IP to publish", port.ID)
			}
		} else if _, err := internalFixedIP(&port, pp.InternalIPAddress); err != nil {
			return badResource(ppResource, "internal_ip_address %s is not a fixed IP of port %s", pp.InternalIPAddress, port.ID)
		}
	}
	if pp.InternalIPAddress == "" {
		return badResource(ppResource, "You must specify either internal_port_id or internal_ip_address")
	}
	a := netip.MustParseAddr(pp.InternalIPAddress)
	networks, err := store.List[model.Network](r, store.Networks)
	if err != nil {
		return err
	}
	subnets, err := store.List[model.Subnet](r, store.Subnets)
	if err != nil {
		return err
	}
	hostGateway := map[string]bool{}
	for _, n := range networks {
		hostGateway[n.ID] = n.HostGateway
	}
	for _, sn := range subnets {
		if p, err := netip.ParsePrefix(sn.CIDR); err == nil && p.Contains(a) && hostGateway[sn.NetworkID] {
			return nil
		}
	}
	return badResource(ppResource, "internal_ip_address %s is not on a subnet of a network with %s: the host cannot reach it", a, attrHostGateway)
}

// publishedHostPorts reads a stored published port's host ports.
func publishedHostPorts(pp *model.PublishedPort) portRange {
	if pp.HostPort != nil {
		return singlePort(*pp.HostPort)
	}
	r, _ := parsePortRange(pp.HostPortRange)
	return r
}

// DeletePublishedPort unpublishes a host port.
func (s *Service) DeletePublishedPort(ctx context.Context, id string) (int64, error) {
	return s.store.Update(ctx, func(tx store.Txn) error {
		if _, err := loadPublished(ctx, tx, id); err != nil {
			return err
		}
		if !caller(ctx).IsAdmin() {
			return denied("delete_published_port")
		}
		return tx.Delete(store.PublishedPorts, id)
	})
}

// GetPublishedPort returns one published port.
func (s *Service) GetPublishedPort(ctx context.Context, id string) (model.PublishedPort, error) {
	var pp model.PublishedPort
	err := s.store.View(ctx, func(r store.Reader) error {
		var err error
		pp, err = loadPublished(ctx, r, id)
		return err
	})
	return pp, err
}

// ListPublishedPorts returns the published ports the caller may see.
func (s *Service) ListPublishedPorts(ctx context.Context) ([]model.PublishedPort, error) {
	return listVisible(ctx, s.store, store.PublishedPorts, func(pp *model.PublishedPort) string { return pp.ProjectID }, func(*model.PublishedPort) {})
}

func (s *Service) ppResult(ctx context.Context, id string, rev int64) (Result[model.PublishedPort], error) {
	pp, err := s.GetPublishedPort(ctx, id)
	return Result[model.PublishedPort]{pp, rev}, err
}

func loadPublished(ctx context.Context, r store.Reader, id string) (model.PublishedPort, error) {
	pp, err := load(ctx, r, store.PublishedPorts, "PublishedPort", id, func(pp *model.PublishedPort) string { return pp.ProjectID })
	if e := AsError(err); e != nil && e.Status == http.StatusNotFound {
		return pp, typed(http.StatusNotFound, "PublishedPortNotFound", "Published port %s could not be found.", id)
	}
	return pp, err
}

// deletePublishedTo deletes the published ports to port portID, which is
// being deleted (as port forwardings go with their internal port).
func deletePublishedTo(tx store.Txn, portID string) error {
	all, err := store.List[model.PublishedPort](tx, store.PublishedPorts)
	if err != nil {
		return err
	}
	var errs []error
	for _, pp := range all {
		if pp.InternalPortID == portID {
			errs = append(errs, tx.Delete(store.PublishedPorts, pp.ID))
		}
	}
	return errors.Join(errs...)
}
