package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// Protocol numbers the firewall treats specially.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
)

// portProtocols are the protocols whose rules may name ports.
var portProtocols = []int{ProtoTCP, ProtoUDP, 33, 132, 136}

var securityGroupAttrs = append([]attr[model.SecurityGroup]{
	stringAttr("name", true, true, func(g *model.SecurityGroup) *string { return &g.Name }),
	stringAttr("description", true, true, func(g *model.SecurityGroup) *string { return &g.Description }),
	// Neutron's stateful-security-group extension: a stateless group's
	// ports are not tracked by conntrack, and its rules judge every
	// packet, replies too (UpdateSecurityGroup refuses the change on a
	// group in use, checkPortSecurity a port mixing both kinds).
	{name: "stateful", post: true, put: true, set: func(g *model.SecurityGroup, raw json.RawMessage) error {
		b, err := parseBool(raw)
		g.Stateful = b
		return err
	}},
}, projectAttrs(func(g *model.SecurityGroup) *string { return &g.ProjectID })...)

// ruleInput is a rule body before it is checked as a whole.
type ruleInput struct {
	model.SecurityGroupRule
	protocol int // -1: any
}

func optionalInt(field func(*ruleInput) **int) func(*ruleInput, json.RawMessage) error {
	return func(r *ruleInput, raw json.RawMessage) error {
		if isNull(raw) {
			*field(r) = nil
			return nil
		}
		n, err := parseInt(raw)
		if err != nil {
			return err
		}
		*field(r) = &n
		return nil
	}
}

var ruleAttrs = append([]attr[ruleInput]{
	{name: "security_group_id", post: true, required: true, set: func(r *ruleInput, raw json.RawMessage) error {
		s, err := parseString(raw, maxNameLen)
		r.SecurityGroupID = s
		return err
	}},
	{name: "direction", post: true, required: true, set: func(r *ruleInput, raw json.RawMessage) error {
		s, err := parseString(raw, maxNameLen)
		if err == nil && s != model.DirectionIngress && s != model.DirectionEgress {
			err = fmt.Errorf("%s is not in valid_values", s)
		}
		r.Direction = s
		return err
	}},
	{name: "ethertype", post: true, set: func(r *ruleInput, raw json.RawMessage) error {
		s, err := parseString(raw, maxNameLen)
		if err != nil {
			return err
		}
		switch strings.ToLower(s) {
		case "ipv4":
			r.EtherType = model.EtherTypeIPv4
		case "ipv6":
			r.EtherType = model.EtherTypeIPv6
		default:
			return typed(http.StatusBadRequest, "SecurityGroupRuleInvalidEtherType",
				"Security group rule for ethertype '%s' not supported. Allowed values are ['IPv4', 'IPv6'].", s)
		}
		return nil
	}},
	{name: "protocol", post: true, set: func(r *ruleInput, raw json.RawMessage) error {
		r.protocol = -1
		r.Protocol = nil
		if isNull(raw) {
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
		if s == "" || strings.EqualFold(s, "any") {
			return nil
		}
		if n, ok := model.IPProtocols[strings.ToLower(s)]; ok {
			s = strings.ToLower(s)
			r.protocol = n
		} else if n, err := strconv.Atoi(s); err == nil && n >= 0 && n <= 255 {
			r.protocol = n
		} else {
			names := make([]string, 0, len(model.IPProtocols))
			for k := range model.IPProtocols {
				names = append(names, k)
			}
			sort.Strings(names)
			return typed(http.StatusBadRequest, "SecurityGroupRuleInvalidProtocol",
				"Security group rule protocol %s not supported. Only protocol values [None, %s] and integer representations [0 to 255] are supported.",
				s, strings.Join(names, ", "))
		}
		r.Protocol = &s
		return nil
	}},
	{name: "port_range_min", post: true, set: optionalInt(func(r *ruleInput) **int { return &r.PortRangeMin })},
	{name: "port_range_max", post: true, set: optionalInt(func(r *ruleInput) **int { return &r.PortRangeMax })},
	{name: "remote_ip_prefix", post: true, set: func(r *ruleInput, raw json.RawMessage) error {
		if isNull(raw) {
			r.RemoteIPPrefix = nil
			return nil
		}
		v, err := parseString(raw, maxNameLen)
		if err != nil {
			return err
		}
		s := v
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil || a.Zone() != "" {
				return fmt.Errorf("'%s' is not a valid IP subnet", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		shownPrefix := p.String()
		r.RemoteIPPrefix = &shownPrefix
		return nil
	}},
	{name: "remote_group_id", post: true, set: func(r *ruleInput, raw json.RawMessage) error {
		v, err := optionalString(raw, nil)
		r.RemoteGroupID = v
		return err
	}},
	{name: "remote_address_group_id", post: true, set: func(r *ruleInput, raw json.RawMessage) error {
		v, err := optionalString(raw, nil)
		r.RemoteAddressGroupID = v
		return err
	}},
	stringAttr("description", true, true, func(r *ruleInput) *string { return &r.Description }),
}, projectAttrs(func(r *ruleInput) *string { return &r.ProjectID })...)

// ipv6OnlyProtocols are the IPv6 extension headers and ICMPv6 (ipv6-encap,
// -route, -frag, -icmp, -nonxt, -opts): Neutron refuses them, by name or
// number, on an IPv4 rule.
var ipv6OnlyProtocols = []int{41, 43, 44, ProtoICMPv6, 59, 60}

// checkRule checks a decoded rule as a whole, the way Neutron's
// _validate_security_group_rule does, and fills normalized_cidr.
func checkRule(r *ruleInput) error {
	if r.EtherType == "" {
		r.EtherType = model.EtherTypeIPv4
	}
	if r.RemoteAddressGroupID != nil && (r.RemoteIPPrefix != nil || r.RemoteGroupID != nil) {
		return typed(http.StatusBadRequest, "SecurityGroupMultipleRemoteEntites",
			"Only either one of remote_ip_prefix or remote_group_id or remote_address_group_id may be provided.")
	}
	if r.RemoteIPPrefix != nil && r.RemoteGroupID != nil {
		return typed(http.StatusBadRequest, "SecurityGroupRemoteGroupAndRemoteIpPrefix",
			"Only remote_ip_prefix or remote_group_id may be provided.")
	}
	if r.RemoteIPPrefix != nil {
		p := netip.MustParsePrefix(*r.RemoteIPPrefix)
		if p.Addr().Is4() != (r.EtherType == model.EtherTypeIPv4) {
			return typed(http.StatusBadRequest, "SecurityGroupRuleParameterConflict",
				"Conflicting value ethertype %s for CIDR %s", r.EtherType, *r.RemoteIPPrefix)
		}
		normalized := p.Masked().String()
		r.NormalizedCIDR = &normalized
	}
	if r.EtherType == model.EtherTypeIPv6 && r.Protocol != nil && (*r.Protocol == "icmp" || *r.Protocol == "icmpv6") {
		// Neutron takes the names icmp and icmpv6 on an IPv6 rule as
		// legacy spellings of ipv6-icmp and stores that name: the rule
		// filters ICMPv6.
		name := "ipv6-icmp"
		r.Protocol, r.protocol = &name, ProtoICMPv6
	}
	if r.protocol == ProtoICMP && r.EtherType == model.EtherTypeIPv6 ||
		slices.Contains(ipv6OnlyProtocols, r.protocol) && r.EtherType == model.EtherTypeIPv4 {
		return typed(http.StatusBadRequest, "SecurityGroupEthertypeConflictWithProtocol",
			"Invalid ethertype %s for protocol %s.", r.EtherType, *r.Protocol)
	}
	lo, hi := r.PortRangeMin, r.PortRangeMax
	if lo == nil && hi == nil {
		return nil
	}
	switch {
	case r.protocol == -1:
		return typed(http.StatusBadRequest, "SecurityGroupProtocolRequiredWithPorts",
			"Must also specify protocol if port range is given.")
	case r.protocol == ProtoICMP || r.protocol == ProtoICMPv6:
		// For ICMP the "ports" are the type (min) and the code (max).
		if lo == nil {
			return typed(http.StatusBadRequest, "SecurityGroupMissingIcmpType",
				"ICMP code (port-range-max) %d is provided but ICMP type (port-range-min) is missing.", *hi)
		}
		for field, v := range map[string]*int{"type": lo, "code": hi} {
			if v != nil && (*v < 0 || *v > 255) {
				return typed(http.StatusBadRequest, "SecurityGroupInvalidIcmpValue",
					"Invalid value for ICMP %s (port_range_min/port_range_max) %d. It must be 0 to 255.", field, *v)
			}
		}
		return nil
	case !slices.Contains(portProtocols, r.protocol):
		return typed(http.StatusBadRequest, "SecurityGroupInvalidProtocolForPort",
			"Invalid protocol %s for port range, only supported for TCP, UDP, UDPLITE, SCTP and DCCP.", *r.Protocol)
	}
	for _, v := range []*int{lo, hi} {
		if v != nil && (*v < 1 || *v > 65535) {
			return typed(http.StatusBadRequest, "SecurityGroupInvalidPortValue",
				"Invalid value for port %d. It must be 1 to 65535.", *v)
		}
	}
	// One end missing is a range Neutron refuses as it refuses min > max.
	if lo == nil || hi == nil || *lo > *hi {
		return typed(http.StatusBadRequest, "SecurityGroupInvalidPortRange",
			"For TCP/UDP protocols, port_range_min must be <= port_range_max")
	}
	return nil
}

// sameRule reports whether two rules of one group allow the same traffic
// (Neutron's duplicate check: everything but id and description).
func sameRule(a, b *model.SecurityGroupRule) bool {
	eqInt := func(x, y *int) bool { return x == nil && y == nil || x != nil && y != nil && *x == *y }
	eqStr := func(x, y *string) bool { return x == nil && y == nil || x != nil && y != nil && *x == *y }
	return a.SecurityGroupID == b.SecurityGroupID && a.Direction == b.Direction &&
		a.EtherType == b.EtherType && a.ProtocolNumber() == b.ProtocolNumber() &&
		eqInt(a.PortRangeMin, b.PortRangeMin) && eqInt(a.PortRangeMax, b.PortRangeMax) &&
		eqStr(a.NormalizedCIDR, b.NormalizedCIDR) && eqStr(a.RemoteGroupID, b.RemoteGroupID) &&
		eqStr(a.RemoteAddressGroupID, b.RemoteAddressGroupID)
}

// CreateSecurityGroup creates a group with Neutron's two default egress
// rules (any IPv4, any IPv6).
func (s *Service) CreateSecurityGroup(ctx context.Context, in Attrs) (Result[model.SecurityGroup], error) {
	return createOne(ctx, s, in, s.prepareSecurityGroup, s.GetSecurityGroup)
}

// CreateSecurityGroups creates several in one transaction (Neutron's bulk create).
func (s *Service) CreateSecurityGroups(ctx context.Context, in []Attrs) (Results[model.SecurityGroup], error) {
	return createMany(ctx, s, in, s.prepareSecurityGroup, s.GetSecurityGroup)
}

func (s *Service) prepareSecurityGroup(ctx context.Context, in Attrs) (pending, error) {
	g := model.SecurityGroup{ID: newID(), Stateful: true}
	if err := mustCreate(ctx, "create_security_group"); err != nil {
		return pending{}, err
	}
	if err := decode(&g, securityGroupAttrs, in, opCreate); err != nil {
		return pending{}, err
	}
	if g.Name == model.DefaultSecurityGroupName {
		return pending{}, typed(http.StatusConflict, "SecurityGroupDefaultAlreadyExists",
			"Default security group already exists.")
	}
	return pending{id: g.ID, apply: func(tx store.Txn) error {
		g := g // a retry starts again from the request (see store.Update)
		g.Tags = slices.Clone(g.Tags)
		var err error
		if g.ProjectID, err = owner(ctx, "create_security_group", g.ProjectID); err != nil {
			return err
		}
		if _, err := s.ensureDefaultGroup(tx, g.ProjectID); err != nil {
			return err
		}
		if err := s.checkQuota(tx, g.ProjectID, quotaSecurityGroup); err != nil {
			return err
		}
		// Its two egress rules count too.
		if err := s.checkQuotaFor(tx, g.ProjectID, quotaSecurityGroupRule, 2); err != nil {
			return err
		}
		return s.putGroup(tx, &g, false)
	}}, nil
}

// putGroup writes a new group and its default rules: egress to anywhere
// for both ethertypes and, for the default group, ingress from members.
func (s *Service) putGroup(tx store.Txn, g *model.SecurityGroup, isDefault bool) error {
	g.Touch(s.now())
	g.Rules = nil
	if err := tx.Put(store.SecurityGroups, g.ID, g); err != nil {
		return err
	}
	for _, ethertype := range []string{model.EtherTypeIPv4, model.EtherTypeIPv6} {
		rules := []model.SecurityGroupRule{{Direction: model.DirectionEgress, EtherType: ethertype}}
		if isDefault {
			self := g.ID
			rules = append(rules, model.SecurityGroupRule{Direction: model.DirectionIngress, EtherType: ethertype, RemoteGroupID: &self})
		}
		for _, r := range rules {
			r.ID, r.SecurityGroupID, r.ProjectID, r.BelongsToDefaultSG = newID(), g.ID, g.ProjectID, isDefault
			r.CreatedAt, r.UpdatedAt = g.CreatedAt, g.UpdatedAt
			if err := tx.Put(store.SecurityGroupRules, r.ID, r); err != nil {
				return err
			}
		}
	}
	return nil
}

// ensureDefaultGroup returns the id of project's default group, creating
// it on first use as Neutron does (outside the project's quota).
func (s *Service) ensureDefaultGroup(tx store.Txn, project string) (string, error) {
	if id, err := defaultGroupOf(tx, project); err != nil || id != "" {
		return id, err
	}
	g := model.SecurityGroup{ID: newID(), Name: model.DefaultSecurityGroupName, ProjectID: project,
		Stateful: true, Standard: model.Standard{Description: "Default security group"}}
	return g.ID, s.putGroup(tx, &g, true)
}

// defaultGroupOf is the id of project's default group, "" if it has none
// yet, found through the index of default groups: no other group is read.
func defaultGroupOf(r store.Reader, project string) (string, error) {
	ids, err := indexedIDs(r, defaultGroupPrefix(project))
	if err != nil || len(ids) == 0 {
		return "", err
	}
	return ids[0], nil
}

// UpdateSecurityGroup renames or redescribes a group; the default group
// keeps its name.
func (s *Service) UpdateSecurityGroup(ctx context.Context, id string, in Attrs) (Result[model.SecurityGroup], error) {
	rev, err := s.store.Update(ctx, func(tx store.Txn) error {
		cur, err := loadGroup(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := authorize(ctx, "update_security_group", cur.ProjectID); err != nil {
			return err
		}
		g := cur
		if err := decode(&g, securityGroupAttrs, in, opUpdate); err != nil {
			return err
		}
		if cur.Name == model.DefaultSecurityGroupName && g.Name != cur.Name {
			return conflict("SecurityGroupCannotUpdateDefault", "Updating default security group not allowed.")
		}
		if g.Name == model.DefaultSecurityGroupName && cur.Name != g.Name {
			return conflict("SecurityGroupDefaultAlreadyExists", "Default security group already exists.")
		}
		if g.Stateful != cur.Stateful {
			// As Neutron: a group's ports would otherwise mix kinds, and
			// their live connections change meaning.
			ports, err := portsInGroup(tx, id)
			if err != nil {
				return err
			}
			if len(ports) > 0 {
				return conflict("SecurityGroupInUse", "Security Group %s in use.", id)
			}
		}
		g.Touch(s.now())
		g.Rules = nil
		return tx.Put(store.SecurityGroups, id, g)
	})
	if err != nil {
		return Result[model.SecurityGroup]{}, err
	}
	return s.groupResult(ctx, id, rev)
}

// DeleteSecurityGroup deletes a group no port uses, its rules, and the
// rules of other groups that name it as their remote group (Neutron's
// foreign key cascades the same way).
func (s *Service) DeleteSecurityGroup(ctx context.Context, id string) (int64, error) {
	return s.store.Update(ctx, func(tx store.Txn) error {
		g, err := loadGroup(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := authorize(ctx, "delete_security_group", g.ProjectID); err != nil {
			return err
		}
		if g.Name == model.DefaultSecurityGroupName && !caller(ctx).IsAdmin() {
			return conflict("SecurityGroupCannotRemoveDefault", "Insufficient rights for removing default security group.")
		}
		ports, err := portsInGroup(tx, id)
		if err != nil {
			return err
		}
		if len(ports) > 0 {
			return conflict("SecurityGroupInUse", "Security Group %s in use.", id)
		}
		rules, err := store.List[model.SecurityGroupRule](tx, store.SecurityGroupRules)
		if err != nil {
			return err
		}
		for _, r := range rules {
			if r.SecurityGroupID == id || r.RemoteGroupID != nil && *r.RemoteGroupID == id {
				if err := tx.Delete(store.SecurityGroupRules, r.ID); err != nil {
					return err
				}
			}
		}
		if err := deleteObjectPolicies(tx, id); err != nil {
			return err
		}
		return tx.Delete(store.SecurityGroups, id)
	})
}

// GetSecurityGroup returns one group with its rules.
func (s *Service) GetSecurityGroup(ctx context.Context, id string) (model.SecurityGroup, error) {
	var g model.SecurityGroup
	err := s.store.View(ctx, func(r store.Reader) error {
		var err error
		if g, err = loadGroup(ctx, r, id); err != nil {
			return err
		}
		acc, err := readAccess(r)
		if err != nil {
			return err
		}
		rules, err := rulesOfGroup(r, id)
		for i := range rules {
			renderRule(&rules[i])
		}
		renderGroup(ctx, &g, map[string][]model.SecurityGroupRule{id: rules}, acc)
		return err
	})
	return g, err
}

// ListSecurityGroups lists the groups the caller may see. Like Neutron's,
// it first creates the caller's default group if the project has none.
func (s *Service) ListSecurityGroups(ctx context.Context) ([]model.SecurityGroup, error) {
	if c := caller(ctx); c.CanWrite() && c.ProjectID != "" {
		if _, err := s.store.Update(ctx, func(tx store.Txn) error {
			_, err := s.ensureDefaultGroup(tx, c.ProjectID)
			return err
		}); err != nil {
			return nil, err
		}
	}
	var out []model.SecurityGroup
	err := s.store.View(ctx, func(r store.Reader) error {
		all, err := store.List[model.SecurityGroup](r, store.SecurityGroups)
		if err != nil {
			return err
		}
		acc, err := readAccess(r)
		if err != nil {
			return err
		}
		rules, err := rulesByGroup(r)
		for i := range all {
			if acc.canSeeGroup(ctx, &all[i]) {
				renderGroup(ctx, &all[i], rules, acc)
				out = append(out, all[i])
			}
		}
		return err
	})
	return out, err
}

func rulesByGroup(r store.Reader) (map[string][]model.SecurityGroupRule, error) {
	all, err := store.List[model.SecurityGroupRule](r, store.SecurityGroupRules)
	out := map[string][]model.SecurityGroupRule{}
	for _, rule := range all {
		renderRule(&rule)
		out[rule.SecurityGroupID] = append(out[rule.SecurityGroupID], rule)
	}
	return out, err
}

// renderGroup fills what a group shows but does not store: its rules, and
// shared, which is Neutron's: whether a policy shares it with the caller's
// project.
func renderGroup(ctx context.Context, g *model.SecurityGroup, rules map[string][]model.SecurityGroupRule, acc access) {
	g.TenantID = g.ProjectID
	g.Shared = acc.grants(g.ID, model.ActionAccessAsShared, caller(ctx).ProjectID)
	g.Rules = rules[g.ID]
	if g.Rules == nil {
		g.Rules = []model.SecurityGroupRule{}
	}
}

func renderRule(r *model.SecurityGroupRule) { r.TenantID = r.ProjectID }

func (s *Service) groupResult(ctx context.Context, id string, rev int64) (Result[model.SecurityGroup], error) {
	g, err := s.GetSecurityGroup(ctx, id)
	return Result[model.SecurityGroup]{g, rev}, err
}

// loadGroup reads a group the caller may see: its project's, or one
// shared with it (rbac-security-groups); 404 otherwise.
func loadGroup(ctx context.Context, r store.Reader, id string) (model.SecurityGroup, error) {
	g, err := store.Get[model.SecurityGroup](r, store.SecurityGroups, id)
	if errors.Is(err, store.ErrNotFound) {
		return g, notFound("SecurityGroup", id)
	}
	if err != nil {
		return g, fmt.Errorf("read security group %s: %w", id, err)
	}
	acc, err := readAccess(r)
	if err != nil {
		return g, err
	}
	if !acc.canSeeGroup(ctx, &g) {
		return g, notFound("SecurityGroup", id)
	}
	return g, checkRevision(ctx, r, id, &g)
}

// CreateSecurityGroupRule adds a rule to a group the caller may change.
func (s *Service) CreateSecurityGroupRule(ctx context.Context, in Attrs) (Result[model.SecurityGroupRule], error) {
	return createOne(ctx, s, in, s.prepareSecurityGroupRule, s.GetSecurityGroupRule)
}

// CreateSecurityGroupRules creates several in one transaction (Neutron's bulk create).
func (s *Service) CreateSecurityGroupRules(ctx context.Context, in []Attrs) (Results[model.SecurityGroupRule], error) {
	return createMany(ctx, s, in, s.prepareSecurityGroupRule, s.GetSecurityGroupRule)
}

func (s *Service) prepareSecurityGroupRule(ctx context.Context, in Attrs) (pending, error) {
	r := ruleInput{SecurityGroupRule: model.SecurityGroupRule{ID: newID()}, protocol: -1}
	if err := mustCreate(ctx, "create_security_group_rule"); err != nil {
		return pending{}, err
	}
	if err := decode(&r, ruleAttrs, in, opCreate); err != nil {
		return pending{}, err
	}
	if err := checkRule(&r); err != nil {
		return pending{}, err
	}
	return pending{id: r.ID, apply: func(tx store.Txn) error {
		r := r // a retry starts again from the request (see store.Update)
		g, err := loadGroup(ctx, tx, r.SecurityGroupID)
		if err != nil {
			return err
		}
		if err := authorize(ctx, "create_security_group_rule", g.ProjectID); err != nil {
			return err
		}
		// An admin may add a rule of its own (or any) project to another
		// project's group, as in Neutron; the group's owner sees it.
		if r.ProjectID != "" && r.ProjectID != g.ProjectID && !caller(ctx).IsAdmin() {
			return invalidInput("Rule project %s does not match the project %s of security group %s", r.ProjectID, g.ProjectID, g.ID)
		}
		if r.ProjectID == "" {
			r.ProjectID = g.ProjectID
		}
		r.BelongsToDefaultSG = g.Name == model.DefaultSecurityGroupName
		if r.RemoteGroupID != nil {
			if _, err := loadGroup(ctx, tx, *r.RemoteGroupID); err != nil {
				return err
			}
		}
		if r.RemoteAddressGroupID != nil {
			if _, err := loadAddressGroup(ctx, tx, *r.RemoteAddressGroupID); err != nil {
				return err
			}
		}
		existing, err := rulesOfGroup(tx, r.SecurityGroupID)
		if err != nil {
			return err
		}
		for i := range existing {
			if sameRule(&existing[i], &r.SecurityGroupRule) {
				return conflict("SecurityGroupRuleExists", "Security group rule already exists. Rule id is %s.", existing[i].ID)
			}
		}
		if err := s.checkQuota(tx, r.ProjectID, quotaSecurityGroupRule); err != nil {
			return err
		}
		now := s.now()
		std := model.Standard{}
		std.Touch(now)
		r.CreatedAt, r.UpdatedAt = std.CreatedAt, std.UpdatedAt
		if err := tx.Put(store.SecurityGroupRules, r.ID, r.SecurityGroupRule); err != nil {
			return err
		}
		return bumpRevision[model.SecurityGroup](s, tx, store.SecurityGroups, r.SecurityGroupID)
	}}, nil
}

// UpdateSecurityGroupRule changes a rule's description, the only attribute
// Neutron lets a client change.
func (s *Service) UpdateSecurityGroupRule(ctx context.Context, id string, in Attrs) (Result[model.SecurityGroupRule], error) {
	rev, err := s.store.Update(ctx, func(tx store.Txn) error {
		cur, err := loadRule(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := authorizeRule(ctx, tx, "update_security_group_rule", &cur); err != nil {
			return err
		}
		r := ruleInput{SecurityGroupRule: cur, protocol: cur.ProtocolNumber()}
		if err := decode(&r, ruleAttrs, in, opUpdate); err != nil {
			return err
		}
		r.RevisionNumber++
		r.UpdatedAt = s.now().UTC().Format("2006-01-02T15:04:05Z")
		return tx.Put(store.SecurityGroupRules, id, r.SecurityGroupRule)
	})
	if err != nil {
		return Result[model.SecurityGroupRule]{}, err
	}
	return s.ruleResult(ctx, id, rev)
}

// DeleteSecurityGroupRule removes a rule; the agent also deletes the
// connections it allowed.
func (s *Service) DeleteSecurityGroupRule(ctx context.Context, id string) (int64, error) {
	return s.store.Update(ctx, func(tx store.Txn) error {
		r, err := loadRule(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := authorizeRule(ctx, tx, "delete_security_group_rule", &r); err != nil {
			return err
		}
		if err := tx.Delete(store.SecurityGroupRules, id); err != nil {
			return err
		}
		return bumpRevision[model.SecurityGroup](s, tx, store.SecurityGroups, r.SecurityGroupID)
	})
}

// GetSecurityGroupRule returns one rule.
func (s *Service) GetSecurityGroupRule(ctx context.Context, id string) (model.SecurityGroupRule, error) {
	return getOne(ctx, s.store, id, loadRule, renderRule)
}

// ListSecurityGroupRules lists the rules the caller may see: its own and
// those of its groups.
func (s *Service) ListSecurityGroupRules(ctx context.Context) ([]model.SecurityGroupRule, error) {
	return listWhere(ctx, s.store, store.SecurityGroupRules,
		func(r store.Reader, rule *model.SecurityGroupRule) (bool, error) { return canSeeRule(ctx, r, rule) },
		func(_ store.Reader, rule *model.SecurityGroupRule) error { renderRule(rule); return nil })
}

// canSeeRule: a rule is its project's and its group's owner's to see
// (Neutron's get_security_group_rule: admin_or_owner or sg_owner).
func canSeeRule(ctx context.Context, r store.Reader, rule *model.SecurityGroupRule) (bool, error) {
	if canSee(ctx, rule.ProjectID) {
		return true, nil
	}
	g, err := store.Get[model.SecurityGroup](r, store.SecurityGroups, rule.SecurityGroupID)
	if err != nil {
		return false, fmt.Errorf("read security group %s: %w", rule.SecurityGroupID, err)
	}
	return canSee(ctx, g.ProjectID), nil
}

// authorizeRule lets the rule's project and its group's owner change it.
func authorizeRule(ctx context.Context, r store.Reader, action string, rule *model.SecurityGroupRule) error {
	if err := authorize(ctx, action, rule.ProjectID); err == nil {
		return nil
	}
	g, err := store.Get[model.SecurityGroup](r, store.SecurityGroups, rule.SecurityGroupID)
	if err != nil {
		return fmt.Errorf("read security group %s: %w", rule.SecurityGroupID, err)
	}
	return authorize(ctx, action, g.ProjectID)
}

func (s *Service) ruleResult(ctx context.Context, id string, rev int64) (Result[model.SecurityGroupRule], error) {
	r, err := s.GetSecurityGroupRule(ctx, id)
	return Result[model.SecurityGroupRule]{r, rev}, err
}

func loadRule(ctx context.Context, r store.Reader, id string) (model.SecurityGroupRule, error) {
	rule, err := store.Get[model.SecurityGroupRule](r, store.SecurityGroupRules, id)
	if errors.Is(err, store.ErrNotFound) {
		return rule, notFound("SecurityGroupRule", id)
	}
	if err != nil {
		return rule, fmt.Errorf("read security group rule %s: %w", id, err)
	}
	ok, err := canSeeRule(ctx, r, &rule)
	if err == nil && !ok {
		err = notFound("SecurityGroupRule", id)
	}
	return rule, err
}

// checkPortSecurity resolves and checks a port's security groups, address
// pairs and port_security_enabled together, as Neutron's portsecurity and
// allowedaddresspairs extensions do. groupsSet says the request named
// security_groups; a new port without them gets its project's default
// group when it has port security and an address.
func (s *Service) checkPortSecurity(ctx context.Context, tx store.Txn, p *portInput, creating bool) error {
	if p.DeviceOwner != "" && p.Port.IsTrusted() {
		if p.groupsSet && len(p.SecurityGroups) > 0 {
			return invalidInput("Ports owned by %s carry no security groups", p.DeviceOwner)
		}
		p.SecurityGroups = []string{}
		return nil
	}
	if !p.PortSecurityEnabled {
		if p.groupsSet && len(p.SecurityGroups) > 0 {
			return typed(http.StatusBadRequest, "PortSecurityAndIPRequiredForSecurityGroups",
				"Port security must be enabled and port must have an IP address in order to use security groups.")
		}
		if len(p.SecurityGroups) > 0 {
			return conflict("PortSecurityPortHasSecurityGroup",
				"Port has security group associated. Cannot disable port security or IP address until security group is removed")
		}
		if len(p.AllowedAddressPairs) > 0 {
			return conflict("AddressPairAndPortSecurityRequired",
				"Port Security must be enabled in order to have allowed address pairs on a port.")
		}
		return nil
	}
	if creating && !p.groupsSet && len(p.FixedIPs) > 0 {
		id, err := s.ensureDefaultGroup(tx, p.ProjectID)
		if err != nil {
			return err
		}
		p.SecurityGroups = []string{id}
	}
	// Groups on a port without an address are accepted, as in Neutron since
	// its addresses may come later; it gets the default group only with
	// one.
	// A group is usable on the port's project's ports when it is the
	// project's or shared with it (rbac-security-groups); an admin may use
	// any.
	kinds := map[bool]bool{} // stateful → seen
	for _, id := range p.SecurityGroups {
		g, err := store.Get[model.SecurityGroup](tx, store.SecurityGroups, id)
		if err != nil {
			return notFound("SecurityGroup", id)
		}
		if g.ProjectID != p.ProjectID && !caller(ctx).IsAdmin() {
			// Another project's group: usable if shared with this one.
			acc, err := readAccessTo(tx, g.ID)
			if err != nil {
				return err
			}
			if !acc.grants(g.ID, model.ActionAccessAsShared, p.ProjectID) {
				return notFound("SecurityGroup", id)
			}
		}
		kinds[g.Stateful] = true
	}
	if len(kinds) > 1 {
		// Connections are tracked per port or not at all.
		return conflict("SecurityGroupConflict", "Error Cannot apply both stateful and stateless security groups on the same port at the same time. while attempting the operation.")
	}
	for i := range p.AllowedAddressPairs {
		if p.AllowedAddressPairs[i].MACAddress == "" {
			p.AllowedAddressPairs[i].MACAddress = p.MACAddress
		}
	}
	return nil
}
