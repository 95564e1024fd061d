package topoview

import (
	"fmt"
	"strings"
)

// dotColor is a status's colour in Graphviz, as the SVG's stroke.
func dotColor(status string) string {
	switch status {
	case "ACTIVE":
		return "#16a34a"
	case "DOWN":
		return "#9ca3af"
	case "BUILD":
		return "#d97706"
	case "ERROR":
		return "#dc2626"
	}
	return "#6b7280"
}

var dotShape = map[string]string{KindExternal: "box", KindNetwork: "box", KindRouter: "octagon",
	KindFloatingIP: "cds", KindInstance: "box3d", KindDHCP: "component"}

// DOT renders the graph for Graphviz (`nsnet graph -o dot | dot -Tsvg`):
// tiers as ranks, ports folded into the edges from their holder to their
// network (labelled with the port's addresses), colours by status.
func (g Graph) DOT() string {
	var b strings.Builder
	b.WriteString("graph nsnet {\n\trankdir=TB;\n\tnode [fontname=\"monospace\" fontsize=10 style=filled fillcolor=white];\n\tedge [fontname=\"monospace\" fontsize=9];\n")
	for tier, name := range TierNames {
		var ids []string
		for _, n := range g.Nodes {
			if n.Tier == tier && n.Kind != KindPort {
				ids = append(ids, dotID(n.ID))
			}
		}
		if len(ids) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\t// %s\n\t{ rank=same; %s; }\n", name, strings.Join(ids, "; "))
	}
	for _, n := range g.Nodes {
		if n.Kind == KindPort && n.Parent != "" {
			continue
		}
		lbl := n.Name + "\\n" + cmpOr(n.Status, "-")
		for _, l := range n.Lines {
			lbl += "\\n" + l
		}
		if n.Reason != "" {
			lbl += "\\n" + n.Reason
		}
		shape := dotShape[n.Kind]
		if shape == "" {
			shape = "point"
		}
		fmt.Fprintf(&b, "\t%s [label=%s shape=%s color=%q penwidth=2 class=%q];\n",
			dotID(n.ID), dotQuote(lbl), shape, dotColor(n.Status), n.Kind+" "+StatusClass(n.Status))
	}
	for _, e := range g.Edges {
		from, to := e.From, e.To
		attrs := ""
		if p := g.Node(from); p != nil && p.Kind == KindPort && p.Parent != "" {
			from = p.Parent
			attrs = fmt.Sprintf(" label=%s color=%q", dotQuote(p.Name+" "+e.Label), dotColor(p.Status))
		}
		if p := g.Node(to); p != nil && p.Kind == KindPort && p.Parent != "" {
			to = p.Parent
		}
		if e.Kind == EdgeFloating {
			attrs += " style=dashed color=\"#c026d3\""
		}
		fmt.Fprintf(&b, "\t%s -- %s [class=%q%s];\n", dotID(from), dotID(to), e.Kind, attrs)
	}
	b.WriteString("}\n")
	return b.String()
}

func dotID(id string) string { return dotQuote(id) }

func dotQuote(s string) string {
	s = strings.ReplaceAll(s, `"`, `\"`)
	return `"` + s + `"`
}

// Tree renders the graph for a terminal: each external network with the
// routers that use it as their gateway, under each router the networks it
// routes, under each network what is plugged into it (with the port's
// addresses and floating IPs); networks no router reaches come last. A
// node met a second time is named with "(see above)".
func (g Graph) Tree() string {
	var b strings.Builder
	seen := map[string]bool{}
	children := g.treeChildren()
	var walk func(id, via, prefix string, last, root bool)
	walk = func(id, via, prefix string, last, root bool) {
		n := g.Node(id)
		branch, next := "├─ ", "│  "
		if last {
			branch, next = "└─ ", "   "
		}
		if root {
			branch, next = "", ""
		}
		line := prefix + branch + treeLabel(n)
		if via != "" {
			line += "  " + via
		}
		if seen[id] {
			b.WriteString(line + "  (see above)\n")
			return
		}
		seen[id] = true
		b.WriteString(line + "\n")
		kids := children[id]
		for i, k := range kids {
			walk(k.id, k.via, prefix+next, i == len(kids)-1, false)
		}
	}
	var roots []string
	for _, n := range g.Nodes {
		if n.Kind == KindExternal {
			roots = append(roots, n.ID)
		}
	}
	for _, n := range g.Nodes {
		if n.Kind == KindRouter && len(g.upstream(n.ID)) == 0 {
			roots = append(roots, n.ID)
		}
	}
	for _, id := range roots {
		walk(id, "", "", true, true)
	}
	for _, n := range g.Nodes {
		if n.Kind != KindPort && !seen[n.ID] {
			walk(n.ID, "", "", true, true)
		}
	}
	return b.String()
}

type treeChild struct{ id, via string }

// treeChildren: an external network's children are the routers (and
// floating IPs) on it; a router's, the tenant networks it has interfaces
// on; a network's, the instances and DHCP servers plugged into it.
func (g Graph) treeChildren() map[string][]treeChild {
	out := map[string][]treeChild{}
	for _, e := range g.Edges {
		if e.Kind == EdgeFloating {
			if net := g.Node(e.To); net != nil && net.Kind == KindExternal {
				out[e.To] = append(out[e.To], treeChild{e.From, ""})
			}
			continue
		}
		port := g.Node(e.From)
		net := g.Node(e.To)
		if port == nil || net == nil || port.Parent == "" {
			continue
		}
		holder := g.Node(port.Parent)
		via := "port " + port.Name
		if e.Label != "" {
			via += " " + e.Label
		}
		via += " " + cmpOr(port.Status, "-")
		if port.Reason != "" {
			via += " (" + port.Reason + ")"
		}
		if c := port.Counters; c != nil && (c.RxBytes+c.TxBytes > 0 || c.DropTotal() > 0) {
			via += fmt.Sprintf(" rx %s tx %s", Bytes(c.RxBytes), Bytes(c.TxBytes))
			if d := c.DropTotal(); d > 0 {
				via += fmt.Sprintf(" drops %d", d)
			}
		}
		switch {
		case holder.Kind == KindRouter && net.Kind == KindExternal:
			out[net.ID] = append(out[net.ID], treeChild{holder.ID, via})
		case holder.Kind == KindRouter:
			out[holder.ID] = append(out[holder.ID], treeChild{net.ID, via})
		default:
			out[net.ID] = append(out[net.ID], treeChild{holder.ID, via})
		}
	}
	return out
}

// upstream are the external networks a router has a gateway port on.
func (g Graph) upstream(router string) []string {
	var out []string
	for _, e := range g.Edges {
		if p := g.Node(e.From); p != nil && p.Parent == router && strings.HasPrefix(e.To, KindExternal+":") {
			out = append(out, e.To)
		}
	}
	return out
}

func treeLabel(n *Node) string {
	kind := map[string]string{KindExternal: "external network", KindNetwork: "network", KindRouter: "router",
		KindFloatingIP: "floating IP", KindInstance: "instance", KindDHCP: "DHCP", KindPort: "port"}[n.Kind]
	s := fmt.Sprintf("%s %s [%s]", kind, n.Name, cmpOr(n.Status, "-"))
	if n.Kind == KindDHCP {
		s = fmt.Sprintf("%s [%s]", n.Name, cmpOr(n.Status, "-"))
	}
	if len(n.Lines) > 0 {
		s += " " + strings.Join(n.Lines, ", ")
	}
	if n.Reason != "" {
		s += " — " + n.Reason
	}
	return s
}
