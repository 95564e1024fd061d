package nat

import (
	"fmt"
	"strings"

	"github.com/nsnet/nsnet/internal/nfsock"
)

// ruleText is the nft(8) syntax of each layout rule, by its comment: what
// `nft -f` reads to build the same rule. TestScriptRebuildsTable proves
// that a table built from Script lists exactly as the one Apply builds.
var ruleText = map[string]string{
	"metadata service":      "jump " + MetadataChain,
	commentMetadata:         fmt.Sprintf(`meta nfproto ipv4 iifname "qr-*" ip daddr 169.254.169.254 meta l4proto tcp th dport 80 redirect to :%d`, MetadataPort),
	"port forwarding":       "dnat ip to ip daddr . meta l4proto . th dport map @" + setPortForward,
	"floating IPs, inbound": "dnat ip to ip daddr map @" + setFloatingDNAT,
	"published ports":       "meta nfproto ipv4 fib daddr type local dnat ip to meta l4proto . th dport map @" + setPublish,
	"hairpin: DNATed back out of the subnet it came from": "ct status dnat oifname . ip saddr @" + setHairpin + " masquerade",
	"floating IPs, outbound":                              "snat ip to oifname . ip saddr map @" + setFloatingSNAT,
	"SNAT":                                                "snat ip to oifname . ip saddr map @" + setSNAT + " fully-random",
	"masquerade":                                          "oifname . ip saddr @" + setMasquerade + " masquerade fully-random",
	commentHelpers:                                        "meta l4proto . th dport vmap @" + setHelpers,
}

func init() {
	for _, k := range HelperKinds {
		ruleText[helperComment(k)] = fmt.Sprintf("ct helper set %q", k.object())
	}
}

// layoutRuleText is the nft syntax of the live rule with fingerprint fp
// and comment in chain, or "" when it is not one of the layout's rules
// exactly (someone edited it, or another nsnet version wrote it).
func layoutRuleText(chain, comment, fp string) string {
	for _, c := range layoutChains {
		if c.Name != chain {
			continue
		}
		for i, r := range c.Rules {
			if c.Comment(i) == comment && nfsock.Fingerprint(r) == fp {
				return ruleText[comment]
			}
		}
	}
	return ""
}

// Script is the nft(8) input that builds the table s describes from
// nothing, in one transaction: the table with its sets, maps and chains,
// then the elements, grouped by what they implement with a # comment per
// group. What Script cannot render — a rule or set that is not the
// layout's, elements that implement nothing — it names in a comment
// instead, so the script never claims to rebuild what it does not.
// It is "" when there is no table.
func (s Status) Script() string {
	if !s.Exists {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n", TableName)
	// The kernel keeps these while the layout's rules name them.
	for _, k := range HelperKinds {
		fmt.Fprintf(&b, "\tct helper %s {\n\t\ttype %q protocol %s\n\t}\n", k.object(), k.Kernel, k.Protocol)
	}
	for _, st := range s.Sets {
		if st.Type == "" {
			fmt.Fprintf(&b, "\t# set %s is not nsnet's and is left out\n", st.Name)
			continue
		}
		kind := "set"
		if st.Map {
			kind = "map"
		}
		fmt.Fprintf(&b, "\t%s %s {\n\t\ttype %s\n", kind, st.Name, st.Type)
		if st.Interval {
			b.WriteString("\t\tflags interval\n")
		}
		b.WriteString("\t}\n")
	}
	for _, ch := range s.Chains {
		fmt.Fprintf(&b, "\tchain %s {\n", ch.Name)
		if ch.Hook != "" {
			fmt.Fprintf(&b, "\t\ttype nat hook %s priority %d; policy accept;\n", ch.Hook, ch.Priority)
		}
		for _, r := range ch.Rules {
			if r.Text == "" {
				fmt.Fprintf(&b, "\t\t# rule %d (%q) is not nsnet's layout and is left out\n", r.Handle, r.Comment)
				continue
			}
			fmt.Fprintf(&b, "\t\t%s comment %q\n", r.Text, r.Comment)
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	for _, g := range s.Spec.elementGroups() {
		fmt.Fprintf(&b, "# %s\n", g.comment)
		for _, e := range g.elements {
			fmt.Fprintf(&b, "add element inet %s %s { %s }\n", TableName, e.set, e.text)
		}
	}
	if s.Undecoded > 0 {
		fmt.Fprintf(&b, "# %d elements implement nothing nsnet knows and are left out\n", s.Undecoded)
	}
	return b.String()
}

func layoutSet(name string) (nfsock.SetDef, bool) {
	for _, d := range layoutSets {
		if d.Name == name {
			return d, true
		}
	}
	return nfsock.SetDef{}, false
}

// elementGroup is the set elements that implement one entry of a Spec.
type elementGroup struct {
	comment  string
	elements []elementText
}

type elementText struct{ set, text string }

// elementGroups renders s entry by entry, in nft syntax.
func (s Spec) elementGroups() []elementGroup {
	var gs []elementGroup
	add := func(comment string, els ...elementText) {
		gs = append(gs, elementGroup{comment: comment, elements: els})
	}
	for _, n := range s.SNAT {
		add(fmt.Sprintf("SNAT: %s leaving by %s → %s", n.From, n.Out, n.To),
			elementText{setSNAT, fmt.Sprintf("%q . %s : %s", n.Out, n.From, n.To)})
	}
	for _, m := range s.Masquerade {
		add(fmt.Sprintf("masquerade: %s leaving by %s", m.From, m.Out),
			elementText{setMasquerade, fmt.Sprintf("%q . %s", m.Out, m.From)})
	}
	for _, h := range s.Hairpin {
		add(fmt.Sprintf("hairpin: DNATed connections back out of %s to %s", h.Interface, h.Prefix),
			elementText{setHairpin, fmt.Sprintf("%q . %s", h.Interface, h.Prefix)})
	}
	for _, f := range s.FloatingIPs {
		var els []elementText
		els = append(els, elementText{setFloatingDNAT, fmt.Sprintf("%s : %s", f.Floating, f.Fixed)})
		if f.Out != "" {
			els = append(els, elementText{setFloatingSNAT, fmt.Sprintf("%q . %s : %s", f.Out, f.Fixed, f.Floating)})
		}
		add(fmt.Sprintf("floating IP %s → %s", f.Floating, f.Fixed), els...)
	}
	for _, f := range s.PortForwards {
		var els []elementText
		for i := range f.ExternalPorts.Size() {
			els = append(els, elementText{setPortForward, fmt.Sprintf("%s . %s . %d : %s . %d",
				f.External, f.Protocol, f.ExternalPorts.First+uint16(i), f.Internal, f.InternalPorts.First+uint16(i))})
		}
		add("port forward "+f.String(), els...)
	}
	for _, h := range s.Helpers {
		if k, ok := h.kind(); ok {
			add("conntrack helper "+h.String(), elementText{setHelpers, fmt.Sprintf("%s . %d : jump %s", h.Protocol, h.Port, k.chain())})
		}
	}
	for _, p := range s.Publish {
		var els []elementText
		for i := range p.Ports.Size() {
			els = append(els, elementText{setPublish, fmt.Sprintf("%s . %d : %s . %d",
				p.Protocol, p.Ports.First+uint16(i), p.Internal, p.InternalPorts.First+uint16(i))})
		}
		add("published port "+p.String(), els...)
	}
	return gs
}
