package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// Address groups (Neutron's address-group extension): named lists of
// CIDRs, kept normalized (the network address of each prefix), that
// security group rules name as their remote. An access_as_shared RBAC
// policy (rbac-address-group, rbacshare.go) lets its target project see a
// group and name it in its own rules; only the owner (or an admin)
// changes or deletes it, and to the others it does not exist, as in
// Neutron.

var addressGroupAttrs = append([]attr[model.AddressGroup]{
	stringAttr("name", true, true, func(g *model.AddressGroup) *string { return &g.Name }),
	{name: "description", post: true, put: true, set: func(g *model.AddressGroup, raw json.RawMessage) error {
		s, err := parseString(raw, maxDescriptionLen)
		g.Description = s
		return err
	}},
	{name: "addresses", post: true, set: func(g *model.AddressGroup, raw json.RawMessage) error {
		list, err := parseAddresses(raw, true)
		g.Addresses = list
		return err
	}},
}, projectAttrs(func(g *model.AddressGroup) *string { return &g.ProjectID })...)

// parseAddresses reads a list of CIDRs, normalized and each once. On
// create (strict) each needs its prefix length, as Neutron's subnet_list
// validator wants; add_addresses and remove_addresses take a bare address
// as a host prefix, as Neutron's netaddr does.
func parseAddresses(raw json.RawMessage, strict bool) ([]string, error) {
	var list []string
	if isNull(raw) {
		return []string{}, nil
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("'%s' is not a list", shown(raw))
	}
	out := []string{}
	for _, s := range list {
		p, err := netip.ParsePrefix(s)
		if err != nil && !strict {
			if a, aerr := netip.ParseAddr(s); aerr == nil {
				p, err = netip.PrefixFrom(a, a.BitLen()), nil
			}
		}
		if err != nil {
			if !strings.Contains(s, "/") {
				if _, aerr := netip.ParseAddr(s); aerr == nil {
					return nil, fmt.Errorf("'%s' isn't a recognized IP subnet cidr, '%s/%d' is recommended", s, s, netip.MustParseAddr(s).BitLen())
				}
			}
			return nil, fmt.Errorf("'%s' is not a valid IP subnet", s)
		}
		if n := p.Masked().String(); !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// loadAddressGroup reads a group the caller may see: its own, or one
// shared with its project.
func loadAddressGroup(ctx context.Context, r store.Reader, id string) (model.AddressGroup, error) {
	g, _, err := loadAddressGroupAccess(ctx, r, id)
	return g, err
}

func loadAddressGroupAccess(ctx context.Context, r store.Reader, id string) (model.AddressGroup, access, error) {
	g, err := store.Get[model.AddressGroup](r, store.AddressGroups, id)
	missing := typed(http.StatusNotFound, "AddressGroupNotFound", "Address group %s could not be found.", id)
	if errors.Is(err, store.ErrNotFound) {
		return g, nil, missing
	}
	if err != nil {
		return g, nil, fmt.Errorf("read address group %s: %w", id, err)
	}
	acc, err := readAccess(r)
	if err != nil {
		return g, nil, err
	}
	if !acc.canSeeShared(ctx, id, g.ProjectID) {
		return g, nil, missing
	}
	return g, acc, checkRevision(ctx, r, id, &g)
}

// loadOwnAddressGroup reads a group the caller may change: a group only
// shared with it is not found, as Neutron answers.
func loadOwnAddressGroup(ctx context.Context, r store.Reader, id string) (model.AddressGroup, access, error) {
	g, acc, err := loadAddressGroupAccess(ctx, r, id)
	if err == nil && !canSee(ctx, g.ProjectID) {
		return g, nil, typed(http.StatusNotFound, "AddressGroupNotFound", "Address group %s could not be found.", id)
	}
	return g, acc, err
}

func renderAddressGroup(g *model.AddressGroup) { g.TenantID = g.ProjectID }

func (s *Service) CreateAddressGroup(ctx context.Context, in Attrs) (Result[model.AddressGroup], error) {
	return createOne(ctx, s, in, s.prepareAddressGroup, s.GetAddressGroup)
}

func (s *Service) prepareAddressGroup(ctx context.Context, in Attrs) (pending, error) {
	g := model.AddressGroup{ID: newID(), Addresses: []string{}}
	if err := mustCreate(ctx, "create_address_group"); err != nil {
		return pending{}, err
	}
	if err := decode(&g, addressGroupAttrs, in, opCreate); err != nil {
		return pending{}, err
	}
	return pending{id: g.ID, apply: func(tx store.Txn) error {
		var err error
		if g.ProjectID, err = owner(ctx, "create_address_group", g.ProjectID); err != nil {
			return err
		}
		return tx.Put(store.AddressGroups, g.ID, g)
	}}, nil
}

// UpdateAddressGroup renames or redescribes a group; its addresses change
// through AddAddresses and RemoveAddresses.
func (s *Service) UpdateAddressGroup(ctx context.Context, id string, in Attrs) (Result[model.AddressGroup], error) {
	return s.changeAddressGroup(ctx, id, "update_address_group", func(g *model.AddressGroup) error {
		return decode(g, addressGroupAttrs, in, opUpdate)
	})
}

// AddAddresses adds CIDRs to a group: Neutron's PUT …/add_addresses,
// whose body is {"addresses": […]}. One already in the group refuses the
// whole request (400 AddressesAlreadyExist).
func (s *Service) AddAddresses(ctx context.Context, id string, in Attrs) (Result[model.AddressGroup], error) {
	return s.changeAddressGroup(ctx, id, "add_addresses", func(g *model.AddressGroup) error {
		addrs, err := addressesOf(in)
		if err != nil {
			return err
		}
		if there := slices.DeleteFunc(slices.Clone(addrs), func(a string) bool { return !slices.Contains(g.Addresses, a) }); len(there) > 0 {
			return typed(http.StatusBadRequest, "AddressesAlreadyExist", "Addresses %s already exist in the address group %s.", pyList(there), id)
		}
		g.Addresses = append(g.Addresses, addrs...)
		return nil
	})
}

// RemoveAddresses removes CIDRs from a group; one not in it refuses the
// whole request (404 AddressesNotFound).
func (s *Service) RemoveAddresses(ctx context.Context, id string, in Attrs) (Result[model.AddressGroup], error) {
	return s.changeAddressGroup(ctx, id, "remove_addresses", func(g *model.AddressGroup) error {
		addrs, err := addressesOf(in)
		if err != nil {
			return err
		}
		if missing := slices.DeleteFunc(slices.Clone(addrs), func(a string) bool { return slices.Contains(g.Addresses, a) }); len(missing) > 0 {
			return typed(http.StatusNotFound, "AddressesNotFound", "Addresses %s not found in the address group %s.", pyList(missing), id)
		}
		g.Addresses = slices.DeleteFunc(g.Addresses, func(a string) bool { return slices.Contains(addrs, a) })
		return nil
	})
}

// addressesOf reads the body of add_addresses and remove_addresses.
func addressesOf(in Attrs) ([]string, error) {
	for name := range in {
		if name != "addresses" {
			return nil, badRequest("Unrecognized attribute(s) '%s'", name)
		}
	}
	raw, ok := in["addresses"]
	if !ok {
		return nil, badRequest("Failed to parse request. Required attribute 'addresses' not specified")
	}
	addrs, err := parseAddresses(raw, false)
	if err != nil {
		return nil, badValue("addresses", err.Error())
	}
	return addrs, nil
}

// pyList renders a list as Neutron's messages do: ['a', 'b'].
func pyList(items []string) string {
	return "['" + strings.Join(items, "', '") + "']"
}

func (s *Service) changeAddressGroup(ctx context.Context, id, action string, change func(*model.AddressGroup) error) (Result[model.AddressGroup], error) {
	rev, err := s.store.Update(ctx, func(tx store.Txn) error {
		g, _, err := loadOwnAddressGroup(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := authorize(ctx, action, g.ProjectID); err != nil {
			return err
		}
		if err := change(&g); err != nil {
			return err
		}
		return tx.Put(store.AddressGroups, id, g)
	})
	if err != nil {
		return Result[model.AddressGroup]{}, err
	}
	g, err := s.GetAddressGroup(ctx, id)
	return Result[model.AddressGroup]{g, rev}, err
}

// DeleteAddressGroup deletes a group no rule names (409
// AddressGroupInUse otherwise, as Neutron).
func (s *Service) DeleteAddressGroup(ctx context.Context, id string) (int64, error) {
	return s.store.Update(ctx, func(tx store.Txn) error {
		g, acc, err := loadOwnAddressGroup(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := authorize(ctx, "delete_address_group", g.ProjectID); err != nil {
			return err
		}
		rules, err := rulesNaming(tx, id)
		if err != nil {
			return err
		}
		if len(rules) > 0 {
			return conflict("AddressGroupInUse", "Address group %s is in use on one or more security group rules.", id)
		}
		for _, p := range acc[id] { // its policies go with it
			if err := tx.Delete(store.RBACPolicies, p.ID); err != nil {
				return err
			}
		}
		return tx.Delete(store.AddressGroups, id)
	})
}

func (s *Service) GetAddressGroup(ctx context.Context, id string) (model.AddressGroup, error) {
	var g model.AddressGroup
	err := s.store.View(ctx, func(r store.Reader) error {
		var err error
		g, err = loadAddressGroup(ctx, r, id)
		return err
	})
	renderAddressGroup(&g)
	return g, err
}

// ListAddressGroups returns the address groups the caller may see: its
// own and those shared with it.
func (s *Service) ListAddressGroups(ctx context.Context) ([]model.AddressGroup, error) {
	return listShared(ctx, s.store, store.AddressGroups, func(g *model.AddressGroup) (string, string) { return g.ID, g.ProjectID },
		func(_ access, g *model.AddressGroup) { renderAddressGroup(g) })
}
