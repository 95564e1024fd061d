package service

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// Conntrack helpers are a sub-resource of routers
// (/v2.0/routers/{id}/conntrack_helpers, Neutron's l3-conntrack-helper),
// kept in the router's record: they are deleted with it, and the agent
// reads them with the router it programs. The rules are those of
// Neutron's conntrack helper plugin: the helper must be allowed for the
// protocol (allowed_conntrack_helpers), an identical helper on the same
// router is a 400 BadRequest, and only the router's owner (or an admin)
// sees and changes them.

const cthResource = "conntrack_helper"

// AllowedConntrackHelpers is Neutron's default allowed_conntrack_helpers
// as this kernel's helpers serve it: helper → protocols. Neutron's default
// also lists amanda/tcp, which no kernel helper serves (amanda is UDP).
// nat.HelperKinds is the same list as the router tables offer it; the
// agent's TestConntrackHelpersAgree keeps the two in step.
var AllowedConntrackHelpers = map[string][]string{
	"amanda":     {"udp"},
	"ftp":        {"tcp"},
	"h323":       {"udp", "tcp"},
	"irc":        {"tcp"},
	"netbios-ns": {"udp"},
	"pptp":       {"tcp"},
	"sane":       {"tcp"},
	"sip":        {"udp", "tcp"},
	"snmp":       {"udp"},
	"tftp":       {"udp"},
}

// iptablesProtocols are the protocol names Neutron's API accepts for a
// conntrack helper (neutron-lib's IPTABLES_PROTOCOL_MAP).
var iptablesProtocols = []string{"dccp", "icmp", "ipv6-icmp", "sctp", "tcp", "udp"}

var cthAttrs = append([]attr[cthInput]{
	{name: "id"},
	{name: "protocol", post: true, put: true, set: func(c *cthInput, raw json.RawMessage) error {
		s, err := parseString(raw, maxNameLen)
		if err != nil {
			var n int
			if json.Unmarshal(raw, &n) != nil {
				return err
			}
			s = fmt.Sprint(n)
		}
		s = strings.ToLower(s)
		if !slices.Contains(iptablesProtocols, s) {
			return fmt.Errorf("'%s' is not in ['%s']", s, strings.Join(iptablesProtocols, "', '"))
		}
		c.Protocol = s
		return nil
	}},
	{name: "port", post: true, put: true, set: func(c *cthInput, raw json.RawMessage) error {
		n, err := parseInt(raw)
		if err != nil {
			return err
		}
		if n < 1 || n > 65535 {
			return fmt.Errorf("%d is not in range 1 through 65535", n)
		}
		c.Port = n
		return nil
	}},
	{name: "helper", post: true, put: true, set: func(c *cthInput, raw json.RawMessage) error {
		s, err := parseString(raw, 64)
		c.Helper = s
		return err
	}},
}, projectAttrs(func(c *cthInput) *string { return &c.project })...)

// cthInput is a conntrack helper body; project is what the body named,
// which must be the router's.
type cthInput struct {
	model.ConntrackHelper
	project string
}

// check is Neutron's _check_conntrack_helper_constraints.
func (c *cthInput) check() error {
	protos, ok := AllowedConntrackHelpers[c.Helper]
	if !ok {
		return typed(http.StatusBadRequest, "ConntrackHelperNotAllowed", "Conntrack Helper %s is not allowed.", c.Helper)
	}
	if !slices.Contains(protos, c.Protocol) {
		return typed(http.StatusBadRequest, "InvalidProtocolForHelper",
			"Conntrack Helper %s does not support: %s. Supported protocols are: %s", c.Helper, c.Protocol, strings.Join(protos, ", "))
	}
	return nil
}

// CreateConntrackHelper adds a conntrack helper to router routerID.
func (s *Service) CreateConntrackHelper(ctx context.Context, routerID string, in Attrs) (Result[model.ConntrackHelper], error) {
	if err := mustCreate(ctx, "create_router_conntrack_helper"); err != nil {
		return Result[model.ConntrackHelper]{}, err
	}
	req := cthInput{ConntrackHelper: model.ConntrackHelper{ID: newID()}}
	if err := decode(&req, cthAttrs, in, opCreate); err != nil {
		return Result[model.ConntrackHelper]{}, err
	}
	for _, name := range []string{"protocol", "port", "helper"} {
		if _, ok := in[name]; !ok {
			return Result[model.ConntrackHelper]{}, badRequest("Failed to parse request. Required attribute '%s' not specified", name)
		}
	}
	if err := req.check(); err != nil {
		return Result[model.ConntrackHelper]{}, err
	}
	rev, err := s.store.Update(ctx, func(tx store.Txn) error {
		r, err := loadRouter(ctx, tx, routerID)
		if err != nil {
			return err
		}
		if err := authorize(ctx, "create_router_conntrack_helper", r.ProjectID); err != nil {
			return err
		}
		if req.project != "" && req.project != r.ProjectID && !caller(ctx).IsAdmin() {
			return badRequest("Specifying 'project_id' or 'tenant_id' other than the authenticated project in request requires admin privileges")
		}
		r.Helpers = slices.Clone(r.Helpers) // a retry starts from the stored record
		return putConntrackHelper(tx, &r, req.ConntrackHelper)
	})
	if err != nil {
		return Result[model.ConntrackHelper]{}, err
	}
	h, err := s.GetConntrackHelper(ctx, routerID, req.ID)
	return Result[model.ConntrackHelper]{h, rev}, err
}

// UpdateConntrackHelper applies the attributes of a PUT.
func (s *Service) UpdateConntrackHelper(ctx context.Context, routerID, id string, in Attrs) (Result[model.ConntrackHelper], error) {
	for _, name := range []string{"project_id", "tenant_id"} {
		if _, ok := in[name]; ok {
			return Result[model.ConntrackHelper]{}, badRequest("Cannot update read-only attribute %s", name)
		}
	}
	rev, err := s.store.Update(ctx, func(tx store.Txn) error {
		r, cur, err := loadConntrackHelper(ctx, tx, routerID, id)
		if err != nil {
			return err
		}
		if err := authorize(ctx, "update_router_conntrack_helper", r.ProjectID); err != nil {
			return err
		}
		req := cthInput{ConntrackHelper: cur}
		if err := decode(&req, cthAttrs, in, opUpdate); err != nil {
			return err
		}
		if err := req.check(); err != nil {
			return err
		}
		r.Helpers = slices.Clone(r.Helpers)
		return putConntrackHelper(tx, &r, req.ConntrackHelper)
	})
	if err != nil {
		return Result[model.ConntrackHelper]{}, err
	}
	h, err := s.GetConntrackHelper(ctx, routerID, id)
	return Result[model.ConntrackHelper]{h, rev}, err
}

// putConntrackHelper stores h (new or changed) in router r. Neutron
// refuses a duplicate (same router, protocol, port and helper) with its
// BadRequest; nsnet also refuses a second helper for the same protocol
// and port, which Neutron's database takes but no kernel can honour: a
// connection has one helper.
func putConntrackHelper(tx store.Txn, r *model.Router, h model.ConntrackHelper) error {
	for _, o := range r.Helpers {
		if o.ID == h.ID || o.Protocol != h.Protocol || o.Port != h.Port {
			continue
		}
		if o.Helper == h.Helper {
			return badResource(cthResource,
				"A duplicate conntrack helper entry with same attributes already exists, conflicting values are {'router_id': '%s', 'protocol': '%s', 'port': %d, 'helper': '%s'}",
				r.ID, h.Protocol, h.Port, h.Helper)
		}
		return badResource(cthResource, "Conntrack helper %s already handles %s port %d on router %s: a connection has one helper",
			o.Helper, h.Protocol, h.Port, r.ID)
	}
	if i := slices.IndexFunc(r.Helpers, func(o model.ConntrackHelper) bool { return o.ID == h.ID }); i >= 0 {
		r.Helpers[i] = h
	} else {
		r.Helpers = append(r.Helpers, h)
	}
	return tx.Put(store.Routers, r.ID, *r)
}

// DeleteConntrackHelper deletes one conntrack helper of router routerID.
func (s *Service) DeleteConntrackHelper(ctx context.Context, routerID, id string) (int64, error) {
	return s.store.Update(ctx, func(tx store.Txn) error {
		r, _, err := loadConntrackHelper(ctx, tx, routerID, id)
		if err != nil {
			return err
		}
		if err := authorize(ctx, "delete_router_conntrack_helper", r.ProjectID); err != nil {
			return err
		}
		r.Helpers = slices.DeleteFunc(slices.Clone(r.Helpers), func(o model.ConntrackHelper) bool { return o.ID == id })
		return tx.Put(store.Routers, r.ID, r)
	})
}

// GetConntrackHelper returns one conntrack helper of router routerID.
func (s *Service) GetConntrackHelper(ctx context.Context, routerID, id string) (model.ConntrackHelper, error) {
	var h model.ConntrackHelper
	err := s.store.View(ctx, func(r store.Reader) error {
		var err error
		_, h, err = loadConntrackHelper(ctx, r, routerID, id)
		return err
	})
	return h, err
}

// ListConntrackHelpers returns the conntrack helpers of router routerID.
func (s *Service) ListConntrackHelpers(ctx context.Context, routerID string) ([]model.ConntrackHelper, error) {
	var out []model.ConntrackHelper
	err := s.store.View(ctx, func(r store.Reader) error {
		rt, err := loadRouter(ctx, r, routerID)
		out = slices.Clone(rt.Helpers)
		return err
	})
	if out == nil {
		out = []model.ConntrackHelper{}
	}
	return out, err
}

// loadConntrackHelper reads router routerID for the caller and its helper
// id; a helper of another router is not found.
func loadConntrackHelper(ctx context.Context, r store.Reader, routerID, id string) (model.Router, model.ConntrackHelper, error) {
	rt, err := loadRouter(ctx, r, routerID)
	if err != nil {
		return rt, model.ConntrackHelper{}, err
	}
	i := slices.IndexFunc(rt.Helpers, func(h model.ConntrackHelper) bool { return h.ID == id })
	if i < 0 {
		return rt, model.ConntrackHelper{}, typed(http.StatusNotFound, "ConntrackHelperNotFound", "Conntrack Helper %s could not be found.", id)
	}
	return rt, rt.Helpers[i], nil
}
