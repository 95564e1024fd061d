package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// L3 metering (Neutron's metering extension, with
// metering_source_and_destination_fields): labels and their rules, which
// Neutron's policy keeps to admins. A label counts, in every router of
// its project (every router when shared), the gateway traffic its rules
// match; the agent keeps those counters (see the agent's meter pass).

const maxLongDescriptionLen = 1024

var meteringLabelAttrs = append([]attr[model.MeteringLabel]{
	stringAttr("name", true, false, func(l *model.MeteringLabel) *string { return &l.Name }),
	{name: "description", post: true, set: func(l *model.MeteringLabel, raw json.RawMessage) error {
		s, err := parseString(raw, maxLongDescriptionLen)
		l.Description = s
		return err
	}},
	boolAttr("shared", true, false, func(l *model.MeteringLabel) *bool { return &l.Shared }),
}, projectAttrs(func(l *model.MeteringLabel) *string { return &l.ProjectID })...)

// prefixAttr reads one of a rule's IP prefixes: null for none, otherwise a
// CIDR normalized to its network address, as Neutron's netaddr does.
func prefixAttr(name string, field func(*model.MeteringLabelRule) **string) attr[model.MeteringLabelRule] {
	return attr[model.MeteringLabelRule]{name: name, post: true, set: func(r *model.MeteringLabelRule, raw json.RawMessage) error {
		if isNull(raw) {
			*field(r) = nil
			return nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return fmt.Errorf("'%s' is not a valid IP subnet", shown(raw))
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return fmt.Errorf("'%s' is not a valid IP subnet", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		n := p.Masked().String()
		*field(r) = &n
		return nil
	}}
}

var meteringRuleAttrs = append([]attr[model.MeteringLabelRule]{
	{name: "metering_label_id", post: true, required: true, set: func(r *model.MeteringLabelRule, raw json.RawMessage) error {
		s, err := parseString(raw, maxNameLen)
		r.MeteringLabelID = s
		return err
	}},
	{name: "direction", post: true, required: true, set: func(r *model.MeteringLabelRule, raw json.RawMessage) error {
		var s string
		if json.Unmarshal(raw, &s) != nil || s != "ingress" && s != "egress" {
			return fmt.Errorf("%s is not in valid_values", shown(raw))
		}
		r.Direction = s
		return nil
	}},
	boolAttr("excluded", true, false, func(r *model.MeteringLabelRule) *bool { return &r.Excluded }),
	prefixAttr("remote_ip_prefix", func(r *model.MeteringLabelRule) **string { return &r.RemoteIPPrefix }),
	prefixAttr("source_ip_prefix", func(r *model.MeteringLabelRule) **string { return &r.SourceIPPrefix }),
	prefixAttr("destination_ip_prefix", func(r *model.MeteringLabelRule) **string { return &r.DestinationIPPrefix }),
}, projectAttrs(func(r *model.MeteringLabelRule) *string { return &r.ProjectID })...)

// adminOnly is Neutron's policy for metering: only admins see labels and
// rules (others get 404 and empty lists) or change them (403).
func adminOnly(ctx context.Context, action string) error {
	if !caller(ctx).IsAdmin() {
		return denied(action)
	}
	return nil
}

func loadMeteringLabel(ctx context.Context, r store.Reader, id string) (model.MeteringLabel, error) {
	l, err := store.Get[model.MeteringLabel](r, store.MeteringLabels, id)
	if errors.Is(err, store.ErrNotFound) || err == nil && !caller(ctx).IsAdmin() {
		return l, typed(http.StatusNotFound, "MeteringLabelNotFound", "Metering label '%s' does not exist.", id)
	}
	if err != nil {
		return l, fmt.Errorf("read metering label %s: %w", id, err)
	}
	l.TenantID = l.ProjectID
	return l, nil
}

func loadMeteringRule(ctx context.Context, r store.Reader, id string) (model.MeteringLabelRule, error) {
	m, err := store.Get[model.MeteringLabelRule](r, store.MeteringLabelRules, id)
	if errors.Is(err, store.ErrNotFound) || err == nil && !caller(ctx).IsAdmin() {
		return m, typed(http.StatusNotFound, "MeteringLabelRuleNotFound", "Metering label rule '%s' does not exist.", id)
	}
	if err != nil {
		return m, fmt.Errorf("read metering label rule %s: %w", id, err)
	}
	m.TenantID = m.ProjectID
	return m, nil
}

func (s *Service) CreateMeteringLabel(ctx context.Context, in Attrs) (Result[model.MeteringLabel], error) {
	return createOne(ctx, s, in, s.prepareMeteringLabel, s.GetMeteringLabel)
}

func (s *Service) prepareMeteringLabel(ctx context.Context, in Attrs) (pending, error) {
	if err := adminOnly(ctx, "create_metering_label"); err != nil {
		return pending{}, err
	}
	l := model.MeteringLabel{ID: newID()}
	if err := decode(&l, meteringLabelAttrs, in, opCreate); err != nil {
		return pending{}, err
	}
	return pending{id: l.ID, apply: func(tx store.Txn) error {
		var err error
		if l.ProjectID, err = owner(ctx, "create_metering_label", l.ProjectID); err != nil {
			return err
		}
		return tx.Put(store.MeteringLabels, l.ID, l)
	}}, nil
}

// UpdateMeteringLabel refuses every attribute: Neutron's labels are
// read-only once made.
func (s *Service) UpdateMeteringLabel(ctx context.Context, id string, in Attrs) (Result[model.MeteringLabel], error) {
	l, err := s.GetMeteringLabel(ctx, id)
	if err != nil {
		return Result[model.MeteringLabel]{}, err
	}
	if err := decode(&l, meteringLabelAttrs, in, opUpdate); err != nil {
		return Result[model.MeteringLabel]{}, err
	}
	// Nothing to change: the label as it is, no new revision.
	return Result[model.MeteringLabel]{Object: l}, nil
}

// DeleteMeteringLabel deletes a label and its rules, as Neutron's
// cascade does.
func (s *Service) DeleteMeteringLabel(ctx context.Context, id string) (int64, error) {
	return s.store.Update(ctx, func(tx store.Txn) error {
		if _, err := loadMeteringLabel(ctx, tx, id); err != nil {
			return err
		}
		if err := adminOnly(ctx, "delete_metering_label"); err != nil {
			return err
		}
		rules, err := store.List[model.MeteringLabelRule](tx, store.MeteringLabelRules)
		if err != nil {
			return err
		}
		for _, r := range rules {
			if r.MeteringLabelID == id {
				if err := tx.Delete(store.MeteringLabelRules, r.ID); err != nil {
					return err
				}
			}
		}
		return tx.Delete(store.MeteringLabels, id)
	})
}

func (s *Service) GetMeteringLabel(ctx context.Context, id string) (model.MeteringLabel, error) {
	var l model.MeteringLabel
	err := s.store.View(ctx, func(r store.Reader) error {
		var err error
		l, err = loadMeteringLabel(ctx, r, id)
		return err
	})
	return l, err
}

func (s *Service) ListMeteringLabels(ctx context.Context) ([]model.MeteringLabel, error) {
	out := []model.MeteringLabel{}
	if !caller(ctx).IsAdmin() {
		return out, nil
	}
	err := s.store.View(ctx, func(r store.Reader) error {
		all, err := store.List[model.MeteringLabel](r, store.MeteringLabels)
		for i := range all {
			all[i].TenantID = all[i].ProjectID
		}
		out = all
		return err
	})
	return out, err
}

func (s *Service) CreateMeteringLabelRule(ctx context.Context, in Attrs) (Result[model.MeteringLabelRule], error) {
	return createOne(ctx, s, in, s.prepareMeteringRule, s.GetMeteringLabelRule)
}

func (s *Service) prepareMeteringRule(ctx context.Context, in Attrs) (pending, error) {
	if err := adminOnly(ctx, "create_metering_label_rule"); err != nil {
		return pending{}, err
	}
	m := model.MeteringLabelRule{ID: newID()}
	if err := decode(&m, meteringRuleAttrs, in, opCreate); err != nil {
		return pending{}, err
	}
	if m.RemoteIPPrefix != nil && (m.SourceIPPrefix != nil || m.DestinationIPPrefix != nil) {
		return pending{}, typed(http.StatusBadRequest, "Invalid",
			"Cannot use 'remote-ip-prefix' in conjunction with 'source-ip-prefix' or 'destination-ip-prefix'.")
	}
	if m.RemoteIPPrefix == nil && m.SourceIPPrefix == nil && m.DestinationIPPrefix == nil {
		return pending{}, typed(http.StatusBadRequest, "Invalid",
			"You must define at least one of the following parameters 'remote_ip_address', or 'source_ip_prefix' or 'destination_ip_prefix'.")
	}
	if err := sameFamily(m.SourceIPPrefix, m.DestinationIPPrefix); err != nil {
		return pending{}, err
	}
	return pending{id: m.ID, apply: func(tx store.Txn) error {
		label, err := loadMeteringLabel(ctx, tx, m.MeteringLabelID)
		if err != nil {
			return err
		}
		m.ProjectID = label.ProjectID
		if m.RemoteIPPrefix != nil {
			if err := checkOverlap(tx, m); err != nil {
				return err
			}
		}
		return tx.Put(store.MeteringLabelRules, m.ID, m)
	}}, nil
}

// sameFamily refuses a rule whose source and destination prefixes are of
// different IP versions: no packet could match it.
func sameFamily(src, dst *string) error {
	if src == nil || dst == nil {
		return nil
	}
	if netip.MustParsePrefix(*src).Addr().Is4() != netip.MustParsePrefix(*dst).Addr().Is4() {
		return typed(http.StatusBadRequest, "Invalid", "source_ip_prefix %s and destination_ip_prefix %s are not of the same IP version.", *src, *dst)
	}
	return nil
}

// checkOverlap is Neutron's check that a label's remote_ip_prefix rules
// of one direction and kind (excluded or not) do not overlap.
func checkOverlap(r store.Reader, m model.MeteringLabelRule) error {
	rules, err := store.List[model.MeteringLabelRule](r, store.MeteringLabelRules)
	if err != nil {
		return err
	}
	p := netip.MustParsePrefix(*m.RemoteIPPrefix)
	for _, o := range rules {
		if o.MeteringLabelID != m.MeteringLabelID || o.Direction != m.Direction || o.Excluded != m.Excluded || o.RemoteIPPrefix == nil {
			continue
		}
		if netip.MustParsePrefix(*o.RemoteIPPrefix).Overlaps(p) {
			return conflict("MeteringLabelRuleOverlaps", "Metering label rule with remote_ip_prefix '%s' overlaps another.", *m.RemoteIPPrefix)
		}
	}
	return nil
}

// UpdateMeteringLabelRule refuses every attribute but the source and
// destination prefixes, which Neutron lets a rule change.
func (s *Service) UpdateMeteringLabelRule(ctx context.Context, id string, in Attrs) (Result[model.MeteringLabelRule], error) {
	var put []attr[model.MeteringLabelRule]
	for _, a := range meteringRuleAttrs {
		a.put = a.name == "source_ip_prefix" || a.name == "destination_ip_prefix"
		put = append(put, a)
	}
	rev, err := s.store.Update(ctx, func(tx store.Txn) error {
		m, err := loadMeteringRule(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := adminOnly(ctx, "update_metering_label_rule"); err != nil {
			return err
		}
		if err := decode(&m, put, in, opUpdate); err != nil {
			return err
		}
		if m.RemoteIPPrefix != nil && (m.SourceIPPrefix != nil || m.DestinationIPPrefix != nil) {
			return typed(http.StatusBadRequest, "Invalid",
				"Cannot use 'remote-ip-prefix' in conjunction with 'source-ip-prefix' or 'destination-ip-prefix'.")
		}
		if m.RemoteIPPrefix == nil && m.SourceIPPrefix == nil && m.DestinationIPPrefix == nil {
			return typed(http.StatusBadRequest, "Invalid",
				"You must define at least one of the following parameters 'remote_ip_address', or 'source_ip_prefix' or 'destination_ip_prefix'.")
		}
		if err := sameFamily(m.SourceIPPrefix, m.DestinationIPPrefix); err != nil {
			return err
		}
		return tx.Put(store.MeteringLabelRules, id, m)
	})
	if err != nil {
		return Result[model.MeteringLabelRule]{}, err
	}
	m, err := s.GetMeteringLabelRule(ctx, id)
	return Result[model.MeteringLabelRule]{m, rev}, err
}

func (s *Service) DeleteMeteringLabelRule(ctx context.Context, id string) (int64, error) {
	return s.store.Update(ctx, func(tx store.Txn) error {
		if _, err := loadMeteringRule(ctx, tx, id); err != nil {
			return err
		}
		if err := adminOnly(ctx, "delete_metering_label_rule"); err != nil {
			return err
		}
		return tx.Delete(store.MeteringLabelRules, id)
	})
}

func (s *Service) GetMeteringLabelRule(ctx context.Context, id string) (model.MeteringLabelRule, error) {
	var m model.MeteringLabelRule
	err := s.store.View(ctx, func(r store.Reader) error {
		var err error
		m, err = loadMeteringRule(ctx, r, id)
		return err
	})
	return m, err
}

func (s *Service) ListMeteringLabelRules(ctx context.Context) ([]model.MeteringLabelRule, error) {
	out := []model.MeteringLabelRule{}
	if !caller(ctx).IsAdmin() {
		return out, nil
	}
	err := s.store.View(ctx, func(r store.Reader) error {
		all, err := store.List[model.MeteringLabelRule](r, store.MeteringLabelRules)
		for i := range all {
			all[i].TenantID = all[i].ProjectID
		}
		out = all
		return err
	})
	return out, err
}
