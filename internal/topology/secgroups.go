package topology

// This file holds security groups in a topology: groups with their rules
// (the file's list is the group's whole list), and the groups and allowed
// address pairs of ports.

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/nsnet/nsnet/internal/client"
	"github.com/nsnet/nsnet/internal/model"
)

// SecurityGroup is a security group the file wants. Its rules are managed:
// apply creates the ones nsnet lacks and deletes the ones the file does not
// list — including the two egress rules nsnet gives a new group, so list
// `{direction: egress}` (and `{direction: egress, ethertype: IPv6}`) to
// allow all egress.
type SecurityGroup struct {
	Name  string              `yaml:"name"`
	Rules []SecurityGroupRule `yaml:"rules"`
	Line  int                 `yaml:"-"`
}

// SecurityGroupRule is one allow rule. Direction defaults to ingress and
// ethertype to IPv4; no protocol means any, no ports every port.
type SecurityGroupRule struct {
	Direction      string `yaml:"direction"`
	EtherType      string `yaml:"ethertype"`
	Protocol       string `yaml:"protocol"`
	PortRangeMin   *int   `yaml:"port_range_min"`
	PortRangeMax   *int   `yaml:"port_range_max"`
	RemoteIPPrefix string `yaml:"remote_ip_prefix"`
	// RemoteGroup names a group (in the file or in nsnet) whose ports are
	// the peers.
	RemoteGroup string `yaml:"remote_group"`
	Line        int    `yaml:"-"`
}

// AddressPair is an allowed address pair of a port.
type AddressPair struct {
	IPAddress  string `yaml:"ip_address"`
	MACAddress string `yaml:"mac_address"`
}

// ruleShape is a rule in comparable form: what makes two rules the same.
type ruleShape struct {
	direction, ethertype string
	protocol, min, max   int // -1: any / not given
	prefix, remoteGroup  string
}

func (r ruleShape) String() string {
	var b strings.Builder
	b.WriteString(r.direction)
	if r.ethertype != model.EtherTypeIPv4 {
		b.WriteString(" " + r.ethertype)
	}
	if r.protocol >= 0 {
		fmt.Fprintf(&b, " proto %d", r.protocol)
	}
	switch {
	case r.min >= 0 && r.max >= 0 && r.min != r.max:
		fmt.Fprintf(&b, " ports %d:%d", r.min, r.max)
	case r.min >= 0:
		fmt.Fprintf(&b, " port %d", r.min)
	}
	switch {
	case r.remoteGroup != "":
		b.WriteString(" from group " + r.remoteGroup)
	case r.prefix != "":
		b.WriteString(" peer " + r.prefix)
	}
	return b.String()
}

func intOr(p *int) int {
	if p == nil {
		return -1
	}
	return *p
}

// protocolNumber reads a protocol as Neutron accepts it; ok is false for
// one it does not.
func protocolNumber(s string) (int, bool) {
	if s == "" || strings.EqualFold(s, "any") {
		return -1, true
	}
	if n, ok := model.IPProtocols[strings.ToLower(s)]; ok {
		return n, true
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 0 && n <= 255
}

func (r SecurityGroupRule) shape() ruleShape {
	s := ruleShape{direction: cmpOr(r.Direction, model.DirectionIngress), ethertype: model.EtherTypeIPv4,
		min: intOr(r.PortRangeMin), max: intOr(r.PortRangeMax), remoteGroup: r.RemoteGroup}
	if strings.EqualFold(r.EtherType, model.EtherTypeIPv6) {
		s.ethertype = model.EtherTypeIPv6
	}
	s.protocol, _ = protocolNumber(r.Protocol)
	if p, err := netip.ParsePrefix(r.RemoteIPPrefix); err == nil {
		s.prefix = p.Masked().String()
	}
	return s
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (f *File) validateSecurityGroups(errs *posErrors) {
	seen := map[string]int{}
	for _, g := range f.SecurityGroups {
		if !unique(seen, "security group", g.Name, g.Line, errs) {
			continue
		}
		shapes := map[ruleShape]int{}
		for i, r := range g.Rules {
			at := func(format string, args ...any) {
				errs.add(r.Line, "security group %s: rules[%d]: %s", g.Name, i, fmt.Sprintf(format, args...))
			}
			if r.Direction != "" && r.Direction != model.DirectionIngress && r.Direction != model.DirectionEgress {
				at("direction %q: want ingress or egress", r.Direction)
			}
			if r.EtherType != "" && !strings.EqualFold(r.EtherType, "IPv4") && !strings.EqualFold(r.EtherType, "IPv6") {
				at("ethertype %q: want IPv4 or IPv6", r.EtherType)
			}
			if _, ok := protocolNumber(r.Protocol); !ok {
				at("protocol %q: want a name (tcp, udp, icmp, …) or a number 0-255", r.Protocol)
			}
			if r.RemoteIPPrefix != "" {
				p, err := netip.ParsePrefix(r.RemoteIPPrefix)
				if err != nil {
					at("remote_ip_prefix %q is not a CIDR", r.RemoteIPPrefix)
				} else if p.Addr().Is6() != strings.EqualFold(r.EtherType, "IPv6") {
					at("remote_ip_prefix %s is not of the rule's ethertype (%s)", r.RemoteIPPrefix, cmpOr(r.EtherType, "IPv4"))
				}
				if r.RemoteGroup != "" {
					at("give remote_ip_prefix or remote_group, not both")
				}
			}
			if first, dup := shapes[r.shape()]; dup {
				at("the same rule as rules[%d]", first)
			}
			shapes[r.shape()] = i
		}
	}
}

// indexSecurityGroups adds the groups of st and the file to the planner's
// indexes.
func (p *planner) indexSecurityGroups() {
	for _, g := range p.st.SecurityGroups {
		p.index(client.SecurityGroups, existing{g.ID, g.Name, g.Description})
	}
	for _, g := range p.file.SecurityGroups {
		p.named(client.SecurityGroups, g.Name)
	}
}

// securityGroup plans one group and then its rules.
func (p *planner) securityGroup(g SecurityGroup) Step {
	s, ok := p.begin(client.SecurityGroups, g.Name, g.Line)
	if ok && s.Action == Create {
		s.Note = "its rules are the file's: nsnet's default egress rules are removed"
	}
	return finish(s)
}

// securityGroupRules plans the rules of group g: creates for the file's
// rules nsnet lacks, deletes for nsnet's rules the file does not list.
func (p *planner) securityGroupRules(g SecurityGroup) []Step {
	groupRef, ok := p.ref(client.SecurityGroups, g.Name, g.Line, "security group "+g.Name)
	if !ok {
		return nil
	}
	have := map[ruleShape]string{} // shape → rule id
	if groupRef.ID != "" {
		for _, r := range p.st.SecurityGroupRules {
			if r.SecurityGroupID == groupRef.ID {
				have[p.shapeOf(&r)] = r.ID
			}
		}
	}
	var steps []Step
	want := map[ruleShape]bool{}
	for i, r := range g.Rules {
		shape := r.shape()
		want[shape] = true
		if _, ok := have[shape]; ok {
			continue
		}
		attrs := map[string]any{"security_group_id": groupRef, "direction": shape.direction, "ethertype": shape.ethertype}
		if r.Protocol != "" {
			attrs["protocol"] = r.Protocol
		}
		if r.PortRangeMin != nil {
			attrs["port_range_min"] = *r.PortRangeMin
		}
		if r.PortRangeMax != nil {
			attrs["port_range_max"] = *r.PortRangeMax
		}
		if r.RemoteIPPrefix != "" {
			attrs["remote_ip_prefix"] = r.RemoteIPPrefix
		}
		if r.RemoteGroup != "" {
			ref, ok := p.ref(client.SecurityGroups, r.RemoteGroup, r.Line, fmt.Sprintf("security group %s: rules[%d]", g.Name, i))
			if !ok {
				continue
			}
			attrs["remote_group_id"] = ref
		}
		steps = append(steps, Step{Action: Create, Collection: client.SecurityGroupRules,
			Name: g.Name + ": " + shape.String(), Attrs: attrs})
	}
	var gone []ruleShape
	for shape := range have {
		if !want[shape] {
			gone = append(gone, shape)
		}
	}
	sort.Slice(gone, func(i, j int) bool { return gone[i].String() < gone[j].String() })
	for _, shape := range gone {
		steps = append(steps, Step{Action: Delete, Collection: client.SecurityGroupRules,
			Name: g.Name + ": " + shape.String(), ID: have[shape], Note: "not in the file"})
	}
	return steps
}

func (p *planner) shapeOf(r *model.SecurityGroupRule) ruleShape {
	s := ruleShape{direction: r.Direction, ethertype: r.EtherType, protocol: r.ProtocolNumber(),
		min: intOr(r.PortRangeMin), max: intOr(r.PortRangeMax)}
	if r.NormalizedCIDR != nil {
		s.prefix = *r.NormalizedCIDR
	}
	if r.RemoteGroupID != nil {
		s.remoteGroup = p.display(client.SecurityGroups, *r.RemoteGroupID)
	}
	return s
}

// portSecurity adds a port's security groups and address pairs to its
// step, when the file gives them.
func (p *planner) portSecurity(s *Step, pt Port, cur *model.Port) bool {
	ok := true
	if pt.SecurityGroups != nil {
		var refs []any
		var ids, names []string
		for _, name := range *pt.SecurityGroups {
			ref, refOK := p.ref(client.SecurityGroups, name, pt.Line, "port "+pt.Name+": security_groups")
			ok = ok && refOK
			refs = append(refs, ref)
			ids = append(ids, ref.ID)
			names = append(names, name)
		}
		if refs == nil {
			refs = []any{}
		}
		switch {
		case cur == nil:
			s.Attrs["security_groups"] = refs
		default:
			curNames := make([]string, len(cur.SecurityGroups))
			for i, id := range cur.SecurityGroups {
				curNames[i] = p.display(client.SecurityGroups, id)
			}
			same := len(ids) == len(cur.SecurityGroups) && !slices.Contains(ids, "")
			for _, id := range ids {
				same = same && slices.Contains(cur.SecurityGroups, id)
			}
			if !same && s.change("security_groups", showSet(curNames), showSet(names)) {
				s.Attrs["security_groups"] = refs
			}
		}
	}
	if pt.AllowedAddressPairs != nil {
		pairs := []any{}
		var want []string
		for _, pair := range *pt.AllowedAddressPairs {
			m := map[string]any{"ip_address": pair.IPAddress}
			shown := pair.IPAddress
			if pair.MACAddress != "" {
				mac, _ := parseMAC(pair.MACAddress)
				m["mac_address"] = mac
				shown += " " + mac
			} else if cur != nil {
				shown += " " + cur.MACAddress
			}
			pairs = append(pairs, m)
			want = append(want, shown)
		}
		switch {
		case cur == nil:
			s.Attrs["allowed_address_pairs"] = pairs
		default:
			var have []string
			for _, pair := range cur.AllowedAddressPairs {
				have = append(have, pair.IPAddress+" "+pair.MACAddress)
			}
			if s.change("allowed_address_pairs", showSet(have), showSet(want)) {
				s.Attrs["allowed_address_pairs"] = pairs
			}
		}
	}
	return ok
}
