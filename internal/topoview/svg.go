package topoview

import (
	"fmt"
	"html"
	"slices"
	"strings"

	"github.com/nsnet/nsnet/internal/model"
)

// StatusClass is the CSS class of a status: "status-active", "status-error"…
func StatusClass(status string) string {
	if status == "" {
		return "status-unknown"
	}
	return "status-" + strings.ToLower(status)
}

// style makes the SVG readable on its own (a file, an <img>); the page
// adds hover and selection on top.
const style = `
.tier-label{font:600 12px sans-serif;fill:#6b7280;text-transform:uppercase}
.node text{font:12px ui-monospace,monospace;fill:#111827}
.node text.name{font-weight:600}
.node rect.box{fill:#fff;stroke-width:2}
.kind-external_network rect.box{fill:#eef2ff}
.kind-network rect.box{fill:#f0fdf4}
.kind-router rect.box{fill:#fff7ed}
.kind-floatingip rect.box{fill:#fdf4ff}
.kind-dhcp rect.box{fill:#f8fafc}
.status-active rect.box,.status-active rect.port{stroke:#16a34a}
.status-down rect.box,.status-down rect.port{stroke:#9ca3af;stroke-dasharray:4 3}
.status-build rect.box,.status-build rect.port{stroke:#d97706}
.status-error rect.box,.status-error rect.port{stroke:#dc2626;stroke-width:3}
.status-unknown rect.box,.status-unknown rect.port{stroke:#6b7280}
rect.port{fill:#fff;stroke-width:2}
.node text.reason{fill:#dc2626;font-size:11px}
text.counter{font-size:10px;fill:#4b5563}
text.counter.drops{fill:#dc2626}
.edge{stroke:#94a3b8;stroke-width:1.5;fill:none}
.edge-floating{stroke:#c026d3;stroke-dasharray:5 4}
.trace-out{stroke:#2563eb;stroke-width:4;fill:none;opacity:.75}
.trace-back{stroke:#0891b2;stroke-width:3;fill:none;stroke-dasharray:8 5;opacity:.75}
.trace-hop circle{fill:#2563eb}.trace-hop.back circle{fill:#0891b2}
.trace-hop.unseen circle{fill:#dc2626}
.trace-hop text{font:bold 10px sans-serif;fill:#fff}
.trace-rewrite rect{fill:#fef9c3;stroke:#ca8a04}
.trace-rewrite text{font:11px ui-monospace,monospace;fill:#713f12}
`

// SVG renders the layout as a standalone SVG document; every node is a
// <g class="node kind-K status-S" data-id="…"> that the page selects by.
func (l Layout) SVG() string {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" id="topology" class="topology" viewBox="0 0 %.0f %.0f" width="%.0f" height="%.0f">`,
		l.Width, l.Height, l.Width, l.Height)
	b.WriteString("<style>" + style + "</style>")
	b.WriteString(`<g class="tiers">`)
	for tier, y := range l.Rows {
		if len(l.Order[tier]) == 0 {
			continue
		}
		fmt.Fprintf(&b, `<text class="tier-label" x="%.0f" y="%.0f">%s</text>`, margin, y+18, esc(TierNames[tier]))
	}
	b.WriteString(`</g><g class="edges">`)
	for _, e := range l.Graph.Edges {
		x1, y1, x2, y2, ok := l.edgeEnds(e)
		if !ok {
			continue
		}
		fmt.Fprintf(&b, `<path class="edge edge-%s" data-from="%s" data-to="%s" d="M%.1f %.1f C%.1f %.1f %.1f %.1f %.1f %.1f"/>`,
			esc(e.Kind), esc(e.From), esc(e.To), x1, y1, x1, (y1+y2)/2, x2, (y1+y2)/2, x2, y2)
	}
	b.WriteString(`</g><g class="nodes">`)
	for _, n := range l.Graph.Nodes {
		if n.Kind != KindPort {
			l.writeNode(&b, n)
		}
	}
	for _, n := range l.Graph.Nodes {
		if n.Kind == KindPort {
			l.writePort(&b, n)
		}
	}
	b.WriteString(`</g><g id="trace-overlay"></g></svg>`)
	return b.String()
}

// edgeEnds are where an edge is drawn: from a port (or floating IP) to the
// nearest point of the network's bar edge facing it.
func (l Layout) edgeEnds(e Edge) (x1, y1, x2, y2 float64, ok bool) {
	from, ok1 := l.Boxes[e.From]
	to, ok2 := l.Boxes[e.To]
	if !ok1 || !ok2 {
		return 0, 0, 0, 0, false
	}
	x1, y1 = from.Center()
	x2, y2 = to.Center()
	if to.W > portSize && from.W <= portSize || to.H > from.H {
		// A port to a network: the network's edge, straight above or below.
		x2 = min(max(x1, to.X+12), to.X+to.W-12)
		if to.Y > from.Y {
			y2 = to.Y
		} else {
			y2 = to.Y + to.H
		}
	}
	if from.W > portSize {
		// A floating IP: from its edge facing the other end.
		if y2 < from.Y {
			y1 = from.Y
		} else {
			y1 = from.Y + from.H
		}
		if to.W > portSize {
			x2 = min(max(x1, to.X+12), to.X+to.W-12)
			if to.Y < from.Y {
				y2 = to.Y + to.H
			} else {
				y2 = to.Y
			}
		}
	}
	return x1, y1, x2, y2, true
}

func (l Layout) writeNode(b *strings.Builder, n Node) {
	box := l.Boxes[n.ID]
	title := n.Kind + " " + n.Name + ": " + cmpOr(n.Status, "no status")
	if n.Reason != "" {
		title += " — " + n.Reason
	}
	fmt.Fprintf(b, `<g class="node kind-%s %s" data-id="%s" data-name="%s" data-status="%s" tabindex="0"><title>%s</title>`,
		esc(n.Kind), StatusClass(n.Status), esc(n.ID), esc(n.Name), esc(n.Status), esc(title))
	fmt.Fprintf(b, `<rect class="box" x="%.1f" y="%.1f" width="%.1f" height="%.1f" rx="6"/>`, box.X, box.Y, box.W, box.H)
	status := n.Status
	if status == "" {
		status = "–"
	}
	fmt.Fprintf(b, `<text class="name" x="%.1f" y="%.1f">%s</text>`, box.X+10, box.Y+19, esc(n.Name))
	fmt.Fprintf(b, `<text class="status" x="%.1f" y="%.1f" text-anchor="end">%s</text>`, box.X+box.W-8, box.Y+19, esc(status))
	for i, line := range n.Lines {
		fmt.Fprintf(b, `<text class="line" x="%.1f" y="%.1f">%s</text>`, box.X+10, box.Y+19+lineH*float64(i+1), esc(line))
	}
	for i, line := range reasonLines(n.Reason, box.W) {
		fmt.Fprintf(b, `<text class="reason" x="%.1f" y="%.1f">%s</text>`, box.X+10, box.Y+19+lineH*float64(len(n.Lines)+i+1), esc(line))
	}
	b.WriteString(`</g>`)
}

func (l Layout) writePort(b *strings.Builder, n Node) {
	box, ok := l.Boxes[n.ID]
	if !ok {
		return
	}
	title := "port " + n.Name + " " + strings.Join(n.Lines, " ") + ": " + cmpOr(n.Status, "no status")
	if n.Reason != "" {
		title += " — " + n.Reason
	}
	fmt.Fprintf(b, `<g class="node kind-port %s" data-id="%s" data-name="%s" data-status="%s" tabindex="0"><title>%s</title>`,
		StatusClass(n.Status), esc(n.ID), esc(n.Name), esc(n.Status), esc(title))
	fmt.Fprintf(b, `<rect class="port" x="%.1f" y="%.1f" width="%.0f" height="%.0f"/>`, box.X, box.Y, box.W, box.H)
	// Labels go on the side away from the parent: above a port on a top
	// edge, below one on a bottom edge.
	above := true
	if p, ok := l.Boxes[n.Parent]; ok && box.Y > p.Y+p.H/2 {
		above = false
	}
	lines := []string{strings.Join(n.Lines, " ")}
	classes := []string{"addr"}
	if c := n.Counters; c != nil {
		lines = append(lines, fmt.Sprintf("rx %s tx %s", Bytes(c.RxBytes), Bytes(c.TxBytes)))
		classes = append(classes, "counter traffic")
		if d := c.DropTotal(); d > 0 {
			lines = append(lines, fmt.Sprintf("drops %d", d))
			classes = append(classes, "counter drops")
		}
	}
	for i := range lines {
		y := box.Y + box.H + 12 + float64(i)*12
		if above {
			y = box.Y - 4 - float64(len(lines)-1-i)*12
		}
		fmt.Fprintf(b, `<text class="%s" data-port="%s" x="%.1f" y="%.1f" text-anchor="middle">%s</text>`,
			classes[i], esc(n.ID), box.X+box.W/2, y, esc(lines[i]))
	}
	if n.Reason != "" {
		fmt.Fprintf(b, `<text class="reason" x="%.1f" y="%.1f">%s</text>`, box.X+box.W+4, box.Y+box.H, esc(clip(n.Reason, 50)))
	}
	b.WriteString(`</g>`)
}

// Bytes formats a byte count as people read it: 0 B, 1.5 kB, 12 MB.
func Bytes(n uint64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}

func esc(s string) string { return html.EscapeString(s) }

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// TraceHop is one interface a trace expected the probe (or its answer) to
// cross, and whether it was seen there.
type TraceHop struct {
	Netns     string `json:"netns"`
	Interface string `json:"interface"`
	Network   string `json:"network,omitempty"` // the network's id
	Seen      bool   `json:"seen"`
	Summary   string `json:"summary,omitempty"`
}

// TraceRewrite is a NAT rewrite a trace saw, where it saw it first.
type TraceRewrite struct {
	Way       string `json:"way"` // "out" or "back"
	Netns     string `json:"netns"`
	Interface string `json:"interface"`
	Text      string `json:"text"` // "SNAT 10.0.0.11 → 198.51.100.2"
}

// Trace is what an overlay draws: a trace's hops both ways and its
// rewrites.
type Trace struct {
	Way      []TraceHop     `json:"way"`
	WayBack  []TraceHop     `json:"way_back"`
	Rewrites []TraceRewrite `json:"rewrites"`
}

// Locate is the node a hop's interface stands for: the port whose tap,
// router interface or in-instance interface it is (that one within its
// namespace), else the network it is plugged into, else "".
func (g Graph) Locate(netns, iface, network string) string {
	for _, n := range g.Nodes {
		if n.Kind != KindPort || !slices.Contains(n.Interfaces, iface) {
			continue
		}
		// An instance's own interface names (eth0) repeat across
		// instances; the namespace tells them apart.
		if n.Netns != "" && netns != "" && n.Netns != netns && !strings.HasPrefix(iface, model.TapPrefix) {
			continue
		}
		return n.ID
	}
	if network == "" {
		return ""
	}
	for _, kind := range []string{KindNetwork, KindExternal} {
		if g.Node(NodeID(kind, network)) != nil {
			return NodeID(kind, network)
		}
	}
	return ""
}

// TraceSVG draws t over the layout: the way out as a solid line, the way
// back dashed, numbered hops (red where the packet was not seen) and the
// NAT rewrites as labels where they happened. It returns the overlay's
// SVG elements (for the page's <g id="trace-overlay">) and the nodes the
// trace went through, in order.
func (l Layout) TraceSVG(t Trace) (svg string, nodes []string) {
	var b strings.Builder
	type point struct {
		x, y float64
		hop  TraceHop
		id   string
	}
	points := func(hops []TraceHop, dx float64) []point {
		var out []point
		for _, h := range hops {
			id := l.Graph.Locate(h.Netns, h.Interface, h.Network)
			box, ok := l.Boxes[id]
			if !ok {
				continue
			}
			x, y := box.Center()
			if box.W > portSize && (id == "" || !strings.HasPrefix(id, KindPort+":")) {
				// A hop on a network bar with no port of its own (a
				// temporary external source): nearest the previous point.
				if len(out) > 0 {
					x = min(max(out[len(out)-1].x, box.X+12), box.X+box.W-12)
				}
			}
			if len(out) > 0 && out[len(out)-1].id == id {
				// The bridge side and the far side of one veth: one
				// point, unseen if the packet did not make it through.
				if !h.Seen {
					out[len(out)-1].hop = h
				}
				continue
			}
			out = append(out, point{x + dx, y + dx, h, id})
			nodes = append(nodes, id)
		}
		return out
	}
	for _, way := range []struct {
		hops  []TraceHop
		class string
		dx    float64
	}{{t.Way, "out", 0}, {t.WayBack, "back", 6}} {
		pts := points(way.hops, way.dx)
		if len(pts) == 0 {
			continue
		}
		var d strings.Builder
		for i, p := range pts {
			if i == 0 {
				fmt.Fprintf(&d, "M%.1f %.1f", p.x, p.y)
			} else {
				fmt.Fprintf(&d, " L%.1f %.1f", p.x, p.y)
			}
		}
		fmt.Fprintf(&b, `<path class="trace-%s" d="%s"/>`, way.class, d.String())
		for i, p := range pts {
			class := "trace-hop " + way.class
			if !p.hop.Seen {
				class += " unseen"
			}
			fmt.Fprintf(&b, `<g class="%s" data-node="%s"><title>%s</title><circle cx="%.1f" cy="%.1f" r="8"/><text x="%.1f" y="%.1f" text-anchor="middle">%d</text></g>`,
				class, esc(p.id), esc(hopTitle(p.hop)), p.x, p.y, p.x, p.y+3.5, i+1)
		}
	}
	// Rewrites stack under the port they were seen at, one line each.
	stacked := map[string]int{}
	for _, rw := range t.Rewrites {
		id := l.Graph.Locate(rw.Netns, rw.Interface, "")
		box, ok := l.Boxes[id]
		if !ok {
			continue
		}
		x, y := box.Center()
		x += 14
		y += 22 + float64(stacked[id])*20
		stacked[id]++
		w := textWidth(rw.Text) + 12
		fmt.Fprintf(&b, `<g class="trace-rewrite" data-node="%s" data-way="%s"><rect x="%.1f" y="%.1f" width="%.1f" height="18" rx="3"/><text x="%.1f" y="%.1f">%s</text></g>`,
			esc(id), esc(rw.Way), x, y-13, w, x+6, y, esc(rw.Text))
	}
	return b.String(), nodes
}

func hopTitle(h TraceHop) string {
	s := h.Netns + "/" + h.Interface
	if h.Netns == "" {
		s = "host/" + h.Interface
	}
	if !h.Seen {
		return s + ": not seen"
	}
	if h.Summary != "" {
		s += ": " + h.Summary
	}
	return s
}
