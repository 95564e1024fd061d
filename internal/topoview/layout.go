package topoview

import (
	"cmp"
	"slices"
	"strings"
	"unicode/utf8"
)

// Box is where a node is drawn.
type Box struct {
	X float64 `json:"x"`
	Y float64 `json:"y"`
	W float64 `json:"w"`
	H float64 `json:"h"`
}

// Center is the middle of the box.
func (b Box) Center() (x, y float64) { return b.X + b.W/2, b.Y + b.H/2 }

// Layout is a graph placed in tiers: every node's box, ports on the edge
// of the node that holds them, facing the network they plug into.
type Layout struct {
	Graph  Graph          `json:"graph"`
	Boxes  map[string]Box `json:"boxes"`
	Width  float64        `json:"width"`
	Height float64        `json:"height"`
	// Rows are the tiers' vertical positions (the top of their boxes).
	Rows [4]float64 `json:"rows"`
	// Order is, per tier, the ids of its nodes from left to right.
	Order [4][]string `json:"order"`
}

// Geometry. Text is measured at a fixed width per character: the page's
// font is monospace-ish enough for boxes that only have to hold it.
const (
	margin    = 24.0
	labelW    = 120.0 // the tiers' names, on the left
	rowGap    = 96.0
	nodeGap   = 36.0
	charW     = 7.4
	lineH     = 15.0
	portSize  = 10.0
	portLabel = 30.0 // room beside a port for its address and counters
)

func textWidth(s string) float64 { return float64(utf8.RuneCountInString(s)) * charW }

// size is a node's box before it is placed.
func size(n Node) (w, h float64) {
	minW := map[string]float64{KindExternal: 220, KindNetwork: 200, KindRouter: 120, KindFloatingIP: 130,
		KindInstance: 130, KindDHCP: 110}[n.Kind]
	// The name on the left, the status on the right of the first line.
	w = max(minW, textWidth(n.Name)+textWidth(cmpOr(n.Status, "–"))+36)
	for _, l := range n.Lines {
		w = max(w, textWidth(l)+24)
	}
	if n.Reason != "" {
		w = max(w, 260)
	}
	h = 30 + lineH*float64(len(n.Lines)+len(reasonLines(n.Reason, w)))
	return w, h
}

// maxReasonLines bounds the room an error reason takes in a box; the
// whole reason is in the node's title and the attributes panel.
const maxReasonLines = 4

// reasonLines wraps an error reason to a box's width, at spaces.
func reasonLines(reason string, w float64) []string {
	if reason == "" {
		return nil
	}
	width := max(int((w-20)/charW), 10)
	var lines []string
	line := ""
	for _, word := range strings.Fields(reason) {
		switch {
		case line == "":
			line = word
		case utf8.RuneCountInString(line)+1+utf8.RuneCountInString(word) <= width:
			line += " " + word
		default:
			lines = append(lines, line)
			line = word
		}
	}
	lines = append(lines, line)
	for i := range lines {
		lines[i] = clip(lines[i], width)
	}
	if len(lines) > maxReasonLines {
		lines = append(lines[:maxReasonLines-1], clip(strings.Join(lines[maxReasonLines-1:], " "), width))
	}
	return lines
}

// Place computes the layout of g. Tiers are laid out top to bottom, each
// ordered by where what it connects to sits in the tier above (the
// barycenter heuristic), so that edges cross little; rows are centred.
func Place(g Graph) Layout {
	l := Layout{Graph: g, Boxes: map[string]Box{}}
	neighbours := g.neighbours()
	var rows [4][]string
	for _, n := range g.Nodes {
		if n.Kind != KindPort {
			rows[n.Tier] = append(rows[n.Tier], n.ID)
		}
	}
	// Instances have ports on top and below them the counters of their
	// ports: their row needs more room above.
	y := margin
	width := 0.0
	for tier := range rows {
		order := rows[tier]
		if tier > 0 {
			pos := map[string]float64{}
			for _, id := range l.Order[tier-1] {
				b := l.Boxes[id]
				pos[id], _ = b.Center()
			}
			if tier == TierRouter {
				// Floating IPs sit beside the routers, after them.
				slices.SortStableFunc(order, func(a, b string) int {
					return cmp.Compare(kindRank(g.Node(a).Kind), kindRank(g.Node(b).Kind))
				})
			}
			bary := func(id string) (float64, bool) {
				var sum float64
				var k int
				for _, nb := range neighbours[id] {
					if x, ok := pos[nb]; ok {
						sum += x
						k++
					}
				}
				if k == 0 {
					return 0, false
				}
				return sum / float64(k), true
			}
			slices.SortStableFunc(order, func(a, b string) int {
				if r := cmp.Compare(kindRank(g.Node(a).Kind), kindRank(g.Node(b).Kind)); r != 0 && tier == TierRouter {
					return r
				}
				xa, oka := bary(a)
				xb, okb := bary(b)
				switch {
				case oka && okb:
					return cmp.Compare(xa, xb)
				case oka:
					return -1
				case okb:
					return 1
				}
				return 0
			})
		}
		l.Order[tier] = order
		rowH := 0.0
		x := margin + labelW
		if tier == TierInstance || tier == TierRouter {
			y += portLabel // ports and their labels above
		}
		l.Rows[tier] = y
		for _, id := range order {
			w, h := size(*g.Node(id))
			w = max(w, portsWidth(g, id))
			l.Boxes[id] = Box{X: x, Y: y, W: w, H: h}
			x += w + nodeGap
			rowH = max(rowH, h)
		}
		width = max(width, x-nodeGap+margin)
		y += rowH + rowGap
		if tier == TierRouter {
			y += portLabel // gateway ports below routers carry labels too
		}
	}
	l.Width = width
	l.Height = y - rowGap + margin + portLabel
	l.centerRows()
	l.placePorts(neighbours)
	return l
}

func kindRank(kind string) int {
	if kind == KindFloatingIP || kind == KindDHCP {
		return 1
	}
	return 0
}

// portsWidth is the width a node needs for its ports' labels side by side.
func portsWidth(g Graph, id string) float64 {
	w := 0.0
	for _, p := range g.Children(id) {
		pw := 60.0
		for _, line := range p.Lines {
			pw = max(pw, textWidth(line)+12)
		}
		w += pw
	}
	return w
}

// centerRows shifts each row to the middle of the widest.
func (l *Layout) centerRows() {
	for _, order := range l.Order {
		if len(order) == 0 {
			continue
		}
		last := l.Boxes[order[len(order)-1]]
		rowW := last.X + last.W - (margin + labelW)
		shift := (l.Width - margin - (margin + labelW) - rowW) / 2
		for _, id := range order {
			b := l.Boxes[id]
			b.X += shift
			l.Boxes[id] = b
		}
	}
}

// placePorts puts every port on its parent's edge that faces its network
// (top when the network is in a tier above, bottom otherwise), ordered by
// where the network is; a port without a parent sits in the instance row.
func (l *Layout) placePorts(neighbours map[string][]string) {
	g := l.Graph
	for _, parent := range g.Nodes {
		if parent.Kind == KindPort {
			continue
		}
		ports := g.Children(parent.ID)
		if len(ports) == 0 {
			continue
		}
		pb := l.Boxes[parent.ID]
		var top, bottom []*Node
		for _, p := range ports {
			net := l.networkOf(p.ID, neighbours)
			if nb, ok := l.Boxes[net]; ok && nb.Y > pb.Y {
				bottom = append(bottom, p)
			} else {
				top = append(top, p)
			}
		}
		for si, side := range [][]*Node{top, bottom} {
			slices.SortStableFunc(side, func(a, b *Node) int {
				xa, _ := l.Boxes[l.networkOf(a.ID, neighbours)].Center()
				xb, _ := l.Boxes[l.networkOf(b.ID, neighbours)].Center()
				return cmp.Compare(xa, xb)
			})
			for i, p := range side {
				x := pb.X + pb.W*float64(i+1)/float64(len(side)+1) - portSize/2
				y := pb.Y - portSize/2
				if si == 1 {
					y = pb.Y + pb.H - portSize/2
				}
				l.Boxes[p.ID] = Box{X: x, Y: y, W: portSize, H: portSize}
			}
		}
	}
	// Ports of nobody visible: a row of their own at the bottom.
	x := margin + labelW
	for _, n := range g.Nodes {
		if n.Kind == KindPort && n.Parent == "" {
			l.Boxes[n.ID] = Box{X: x, Y: l.Height - margin, W: portSize, H: portSize}
			x += 120
		}
	}
	if x > margin+labelW {
		l.Height += 2 * margin
	}
}

// networkOf is the network node a port plugs into.
func (l *Layout) networkOf(portID string, neighbours map[string][]string) string {
	for _, nb := range neighbours[portID] {
		if strings.HasPrefix(nb, KindNetwork+":") || strings.HasPrefix(nb, KindExternal+":") {
			return nb
		}
	}
	return ""
}

// neighbours are, for each node, the nodes it is joined to; a port's
// edges count for its parent too, so that routers and instances are
// placed by the networks their ports plug into.
func (g Graph) neighbours() map[string][]string {
	parent := map[string]string{}
	for _, n := range g.Nodes {
		if n.Parent != "" {
			parent[n.ID] = n.Parent
		}
	}
	out := map[string][]string{}
	add := func(a, b string) {
		ends := []string{b}
		if p, ok := parent[b]; ok {
			ends = append(ends, p)
		}
		out[a] = append(out[a], ends...)
		if p, ok := parent[a]; ok {
			out[p] = append(out[p], ends...)
		}
	}
	for _, e := range g.Edges {
		add(e.From, e.To)
		add(e.To, e.From)
	}
	return out
}
