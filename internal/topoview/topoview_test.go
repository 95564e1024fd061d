package topoview

import (
	"encoding/xml"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/nsnet/nsnet/internal/model"
)

func ptr[T any](v T) *T { return &v }

// seed004 is examples/router-floating-ip.yaml as the admin sees it once
// applied: public (external), private, r1 between them with SNAT, vm1
// with a floating IP, vm2, and private's DHCP server.
func seed004() Records {
	return Records{
		Networks: []model.Network{
			{ID: "n-pub", Name: "public", Status: "ACTIVE", RouterExternal: true, ProjectID: "admin"},
			{ID: "n-priv", Name: "private", Status: "ACTIVE", ProjectID: "admin"},
		},
		Subnets: []model.Subnet{
			{ID: "s-pub", Name: "public-v4", NetworkID: "n-pub", IPVersion: 4, CIDR: "198.51.100.0/24", GatewayIP: ptr("198.51.100.1")},
			{ID: "s-priv", Name: "private-v4", NetworkID: "n-priv", IPVersion: 4, CIDR: "10.0.0.0/24", GatewayIP: ptr("10.0.0.1"), EnableDHCP: true},
		},
		Routers: []model.Router{{ID: "r-1", Name: "r1", Status: "ACTIVE", ExternalGatewayInfo: &model.ExternalGatewayInfo{
			NetworkID: "n-pub", EnableSNAT: true, ExternalFixedIPs: []model.FixedIP{{SubnetID: "s-pub", IPAddress: "198.51.100.2"}}}}},
		Instances: []model.Instance{
			{ID: "i-2", Name: "vm2", Status: "ACTIVE", Netns: "vm2"},
			{ID: "i-1", Name: "vm1", Status: "ACTIVE", Netns: "vm1"},
		},
		Ports: []model.Port{
			{ID: "p-gw", NetworkID: "n-pub", DeviceID: "r-1", DeviceOwner: model.DeviceOwnerRouterGateway, Status: "ACTIVE",
				FixedIPs: []model.FixedIP{{IPAddress: "198.51.100.2"}}},
			{ID: "p-qr", NetworkID: "n-priv", DeviceID: "r-1", DeviceOwner: model.DeviceOwnerRouterInterface, Status: "ACTIVE",
				FixedIPs: []model.FixedIP{{IPAddress: "10.0.0.1"}}},
			{ID: "p-vm1", Name: "vm1-eth0", NetworkID: "n-priv", DeviceID: "i-1", DeviceOwner: model.DeviceOwnerCompute, Status: "ACTIVE",
				InterfaceName: "eth0", FixedIPs: []model.FixedIP{{IPAddress: "10.0.0.11"}},
				FirewallDrops: &model.PortFirewallCounters{Ingress: 3, SpoofedIP: 1}},
			{ID: "p-vm2", Name: "vm2-eth0", NetworkID: "n-priv", DeviceID: "i-2", DeviceOwner: model.DeviceOwnerCompute, Status: "ERROR",
				StatusReason: "veth: file exists", InterfaceName: "eth0", FixedIPs: []model.FixedIP{{IPAddress: "10.0.0.12"}}},
			{ID: "p-dhcp", NetworkID: "n-priv", DeviceID: "dhcp-host", DeviceOwner: model.DeviceOwnerDHCP, Status: "ACTIVE",
				FixedIPs: []model.FixedIP{{IPAddress: "10.0.0.254"}}},
			{ID: "p-fip", NetworkID: "n-pub", DeviceID: "f-1", DeviceOwner: model.DeviceOwnerFloatingIP, Status: "N/A"},
		},
		FloatingIPs: []model.FloatingIP{{ID: "f-1", Status: "ACTIVE", FloatingNetworkID: "n-pub", FloatingIPAddress: "198.51.100.10",
			RouterID: ptr("r-1"), PortID: ptr("p-vm1"), FixedIPAddress: ptr("10.0.0.11")}},
		Traffic: map[string]Traffic{"p-vm1": {RxBytes: 1500, TxBytes: 98}},
	}
}

// memberView is what a member of project alpha gets from the API on a
// host where the admin owns public, r1 and its gateway: the shared
// external network, alpha's own network, instance and port, and a
// floating IP whose router (the admin's) the member cannot see.
func memberView() Records {
	return Records{
		Networks: []model.Network{
			{ID: "n-pub", Name: "public", Status: "ACTIVE", RouterExternal: true, ProjectID: "admin"},
			{ID: "n-a", Name: "alpha-net", Status: "ACTIVE", ProjectID: "alpha"},
		},
		Subnets:   []model.Subnet{{ID: "s-a", NetworkID: "n-a", IPVersion: 4, CIDR: "10.1.0.0/24"}},
		Instances: []model.Instance{{ID: "i-a", Name: "a1", Status: "ACTIVE", Netns: "a1"}},
		Ports: []model.Port{
			{ID: "p-a", Name: "a1-eth0", NetworkID: "n-a", DeviceID: "i-a", DeviceOwner: model.DeviceOwnerCompute, Status: "ACTIVE",
				FixedIPs: []model.FixedIP{{IPAddress: "10.1.0.5"}}},
			// The admin router's interface on alpha's network is alpha's
			// port in Neutron, but its router is not visible.
			{ID: "p-qr", NetworkID: "n-a", DeviceID: "r-admin", DeviceOwner: model.DeviceOwnerRouterInterface, Status: "ACTIVE",
				FixedIPs: []model.FixedIP{{IPAddress: "10.1.0.1"}}},
		},
		FloatingIPs: []model.FloatingIP{{ID: "f-a", Status: "DOWN", FloatingNetworkID: "n-pub", FloatingIPAddress: "198.51.100.30",
			RouterID: ptr("r-admin"), PortID: ptr("p-gone")}},
	}
}

type nodeWant struct {
	id, kind, status string
	tier             int
	parent           string
}

func TestBuild(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    Records
		nodes []nodeWant
		edges []string // "from -kind- to"
		order [4][]string
	}{{
		name: "seed 004",
		in:   seed004(),
		nodes: []nodeWant{
			{"external_network:n-pub", KindExternal, "ACTIVE", TierExternal, ""},
			{"network:n-priv", KindNetwork, "ACTIVE", TierNetwork, ""},
			{"router:r-1", KindRouter, "ACTIVE", TierRouter, ""},
			{"floatingip:f-1", KindFloatingIP, "ACTIVE", TierRouter, ""},
			{"instance:i-1", KindInstance, "ACTIVE", TierInstance, ""},
			{"instance:i-2", KindInstance, "ACTIVE", TierInstance, ""},
			{"dhcp:n-priv", KindDHCP, "ACTIVE", TierInstance, ""},
			{"port:p-dhcp", KindPort, "ACTIVE", TierInstance, "dhcp:n-priv"},
			{"port:p-gw", KindPort, "ACTIVE", TierRouter, "router:r-1"},
			{"port:p-qr", KindPort, "ACTIVE", TierRouter, "router:r-1"},
			{"port:p-vm1", KindPort, "ACTIVE", TierInstance, "instance:i-1"},
			{"port:p-vm2", KindPort, "ERROR", TierInstance, "instance:i-2"},
		},
		edges: []string{
			"floatingip:f-1 -floating- external_network:n-pub",
			"floatingip:f-1 -floating- port:p-vm1",
			"port:p-dhcp -plug- network:n-priv",
			"port:p-gw -plug- external_network:n-pub",
			"port:p-qr -plug- network:n-priv",
			"port:p-vm1 -plug- network:n-priv",
			"port:p-vm2 -plug- network:n-priv",
		},
		order: [4][]string{{"external_network:n-pub"}, {"router:r-1", "floatingip:f-1"}, {"network:n-priv"},
			{"instance:i-1", "instance:i-2", "dhcp:n-priv"}},
	}, {
		name: "member's view: no edge to what the member cannot see",
		in:   memberView(),
		nodes: []nodeWant{
			{"external_network:n-pub", KindExternal, "ACTIVE", TierExternal, ""},
			{"network:n-a", KindNetwork, "ACTIVE", TierNetwork, ""},
			{"floatingip:f-a", KindFloatingIP, "DOWN", TierRouter, ""},
			{"instance:i-a", KindInstance, "ACTIVE", TierInstance, ""},
			{"port:p-qr", KindPort, "ACTIVE", TierRouter, ""},
			{"port:p-a", KindPort, "ACTIVE", TierInstance, "instance:i-a"},
		},
		edges: []string{
			"floatingip:f-a -floating- external_network:n-pub",
			"port:p-a -plug- network:n-a",
			"port:p-qr -plug- network:n-a",
		},
		order: [4][]string{{"external_network:n-pub"}, {"floatingip:f-a"}, {"network:n-a"}, {"instance:i-a"}},
	}, {
		name:  "nothing",
		in:    Records{},
		nodes: nil,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			g := Build(tc.in)
			var got []nodeWant
			for _, n := range g.Nodes {
				got = append(got, nodeWant{n.ID, n.Kind, n.Status, n.Tier, n.Parent})
			}
			if !slices.Equal(got, tc.nodes) {
				t.Errorf("nodes\n got %v\nwant %v", got, tc.nodes)
			}
			var edges []string
			for _, e := range g.Edges {
				edges = append(edges, e.From+" -"+e.Kind+"- "+e.To)
			}
			slices.Sort(edges)
			if !slices.Equal(edges, tc.edges) {
				t.Errorf("edges\n got %v\nwant %v", edges, tc.edges)
			}
			l := Place(g)
			for tier := range l.Order {
				if !slices.Equal(l.Order[tier], tc.order[tier]) {
					t.Errorf("tier %s: %v, want %v", TierNames[tier], l.Order[tier], tc.order[tier])
				}
			}
			checkLayout(t, l)
		})
	}
}

// checkLayout: every node has a box inside the picture, the tiers go down
// the page in order, boxes of one tier do not overlap, and a port sits on
// its parent's top or bottom edge.
func checkLayout(t *testing.T, l Layout) {
	t.Helper()
	for _, n := range l.Graph.Nodes {
		b, ok := l.Boxes[n.ID]
		if !ok {
			t.Errorf("%s has no box", n.ID)
			continue
		}
		if b.X < 0 || b.Y < 0 || b.X+b.W > l.Width || b.Y+b.H > l.Height {
			t.Errorf("%s at %+v is outside %.0fx%.0f", n.ID, b, l.Width, l.Height)
		}
		// The name and the status share the first line (a floating IP's
		// address beside ACTIVE once overlapped it).
		if n.Kind != KindPort && b.W < textWidth(n.Name)+textWidth(n.Status)+20 {
			t.Errorf("%s: %.0f wide, too narrow for %q and %q", n.ID, b.W, n.Name, n.Status)
		}
		if p, ok := l.Boxes[n.Parent]; ok {
			cx, cy := b.Center()
			if cx < p.X || cx > p.X+p.W || (cy != p.Y && cy != p.Y+p.H) {
				t.Errorf("port %s at %+v is not on an edge of %s at %+v", n.ID, b, n.Parent, p)
			}
		}
	}
	for tier := 1; tier < len(l.Rows); tier++ {
		if l.Rows[tier] <= l.Rows[tier-1] {
			t.Errorf("tier %d at y=%.0f is not below tier %d at %.0f", tier, l.Rows[tier], tier-1, l.Rows[tier-1])
		}
	}
	for _, order := range l.Order {
		for i := 1; i < len(order); i++ {
			a, b := l.Boxes[order[i-1]], l.Boxes[order[i]]
			if a.X+a.W > b.X {
				t.Errorf("%s %+v overlaps %s %+v", order[i-1], a, order[i], b)
			}
		}
	}
}

// TestOrderFollowsConnections: instances line up under the networks they
// plug into, networks under their routers, so that edges do not cross.
func TestOrderFollowsConnections(t *testing.T) {
	var r Records
	r.Networks = append(r.Networks, model.Network{ID: "ext", Name: "ext", RouterExternal: true})
	// Router "a" serves network "zz", router "b" network "aa": the
	// networks follow the routers, not their names, and each network's
	// instance sits under it.
	for i, pair := range [][2]string{{"a", "zz"}, {"b", "aa"}} {
		rt, net := pair[0], pair[1]
		r.Routers = append(r.Routers, model.Router{ID: rt, Name: rt})
		r.Networks = append(r.Networks, model.Network{ID: net, Name: net})
		inst := fmt.Sprintf("vm-%s", net)
		r.Instances = append(r.Instances, model.Instance{ID: inst, Name: fmt.Sprint("i", 9-i)})
		r.Ports = append(r.Ports,
			model.Port{ID: "gw-" + rt, NetworkID: "ext", DeviceID: rt, DeviceOwner: model.DeviceOwnerRouterGateway},
			model.Port{ID: "qr-" + rt, NetworkID: net, DeviceID: rt, DeviceOwner: model.DeviceOwnerRouterInterface},
			model.Port{ID: "p-" + inst, NetworkID: net, DeviceID: inst, DeviceOwner: model.DeviceOwnerCompute})
	}
	l := Place(Build(r))
	want := [4][]string{{"external_network:ext"}, {"router:a", "router:b"}, {"network:zz", "network:aa"},
		{"instance:vm-zz", "instance:vm-aa"}}
	for tier := range want {
		if !slices.Equal(l.Order[tier], want[tier]) {
			t.Errorf("tier %s: %v, want %v", TierNames[tier], l.Order[tier], want[tier])
		}
	}
	checkLayout(t, l)
}

// svgDoc is the part of the SVG the tests read.
type svgDoc struct {
	Groups []svgGroup `xml:"g"`
}

type svgGroup struct {
	ID     string     `xml:"id,attr"`
	Class  string     `xml:"class,attr"`
	DataID string     `xml:"data-id,attr"`
	Title  string     `xml:"title"`
	Texts  []svgText  `xml:"text"`
	Groups []svgGroup `xml:"g"`
	Paths  []struct {
		Class string `xml:"class,attr"`
	} `xml:"path"`
}

type svgText struct {
	Class string `xml:"class,attr"`
	Y     string `xml:"y,attr"`
	Text  string `xml:",chardata"`
}

func TestSVG(t *testing.T) {
	r := seed004()
	r.Networks[1].Name = `<script>alert("x")</script>`
	l := Place(Build(r))
	raw := l.SVG()
	var doc svgDoc
	if err := xml.Unmarshal([]byte(raw), &doc); err != nil {
		t.Fatalf("the SVG is not XML: %v\n%s", err, raw)
	}
	nodes := map[string]svgGroup{}
	var edges int
	for _, g := range doc.Groups {
		for _, n := range g.Groups {
			nodes[n.DataID] = n
		}
		if g.Class == "edges" {
			edges = len(g.Paths)
		}
	}
	if edges != 7 {
		t.Errorf("%d edges drawn, want 7", edges)
	}
	for _, tc := range []struct {
		id, class string
		texts     []string
	}{
		{"external_network:n-pub", "node kind-external_network status-active", []string{"public", "ACTIVE", "public-v4 198.51.100.0/24"}},
		{"network:n-priv", "node kind-network status-active", []string{`<script>alert("x")</script>`, "private-v4 10.0.0.0/24"}},
		{"router:r-1", "node kind-router status-active", []string{"r1", "SNAT"}},
		{"instance:i-1", "node kind-instance status-active", []string{"vm1"}},
		{"port:p-vm1", "node kind-port status-active", []string{"10.0.0.11", "rx 1.5 kB tx 98 B", "drops 4"}},
		{"port:p-vm2", "node kind-port status-error", []string{"10.0.0.12", "veth: file exists"}},
		{"floatingip:f-1", "node kind-floatingip status-active", []string{"198.51.100.10", "→ 10.0.0.11"}},
	} {
		n, ok := nodes[tc.id]
		if !ok {
			t.Errorf("no <g data-id=%q>", tc.id)
			continue
		}
		if n.Class != tc.class {
			t.Errorf("%s: class %q, want %q", tc.id, n.Class, tc.class)
		}
		var texts []string
		for _, tx := range n.Texts {
			texts = append(texts, tx.Text)
		}
		for _, want := range tc.texts {
			if !slices.Contains(texts, want) {
				t.Errorf("%s: texts %q lack %q", tc.id, texts, want)
			}
		}
	}
	if strings.Contains(raw, "<script>") {
		t.Error("a name reached the SVG unescaped")
	}
	if !strings.Contains(nodes["port:p-vm2"].Title, "ERROR — veth: file exists") {
		t.Errorf("the failed port's title %q does not say why", nodes["port:p-vm2"].Title)
	}
}

// TestTraceOverlay places a trace of vm2 → vm1's floating IP (the hairpin
// through r1) on the graph: each interface lands on its port, the two ends
// of one veth count once, and the rewrites sit at the router's ports.
func TestTraceOverlay(t *testing.T) {
	l := Place(Build(seed004()))
	tr := Trace{
		Way: []TraceHop{
			{Netns: "vm2", Interface: "eth0", Seen: true},
			{Interface: model.TapName("p-vm2"), Network: "n-priv", Seen: true},
			{Interface: model.TapName("p-qr"), Network: "n-priv", Seen: true},
			{Netns: "qrouter-r-1", Interface: model.RouterInterfaceName("p-qr"), Seen: true},
			{Interface: model.TapName("p-vm1"), Network: "n-priv", Seen: true},
			{Netns: "vm1", Interface: "eth0", Seen: false},
			// A hop nsnet has no port for: the network it is on.
			{Netns: "nsnet-ext", Interface: "src0", Network: "n-pub", Seen: false},
		},
		WayBack: []TraceHop{{Netns: "vm1", Interface: "eth0", Seen: true}, {Netns: "vm2", Interface: "eth0", Seen: true}},
		Rewrites: []TraceRewrite{
			{Way: "out", Netns: "qrouter-r-1", Interface: model.RouterInterfaceName("p-qr"), Text: "DNAT 198.51.100.10 → 10.0.0.11"},
			{Way: "out", Netns: "qrouter-r-1", Interface: model.RouterInterfaceName("p-qr"), Text: "SNAT 10.0.0.12 → 10.0.0.1"},
			{Way: "back", Netns: "qrouter-r-1", Interface: model.RouterInterfaceName("p-qr"), Text: "reply: DNAT 10.0.0.1 → 10.0.0.12"},
			{Way: "back", Netns: "qrouter-r-1", Interface: model.RouterInterfaceName("p-qr"), Text: "reply: SNAT 10.0.0.11 → 198.51.100.10"},
		},
	}
	svg, nodes := l.TraceSVG(tr)
	want := []string{"port:p-vm2", "port:p-qr", "port:p-vm1", "external_network:n-pub", "port:p-vm1", "port:p-vm2"}
	if !slices.Equal(nodes, want) {
		t.Errorf("trace nodes %v, want %v", nodes, want)
	}
	var doc svgGroup
	if err := xml.Unmarshal([]byte("<g>"+svg+"</g>"), &doc); err != nil {
		t.Fatalf("overlay is not XML: %v\n%s", err, svg)
	}
	var hops, unseen, rewrites []string
	for _, g := range doc.Groups {
		switch {
		case strings.HasPrefix(g.Class, "trace-hop"):
			hops = append(hops, g.Title)
			if strings.Contains(g.Class, "unseen") {
				unseen = append(unseen, g.Title)
			}
		case g.Class == "trace-rewrite":
			rewrites = append(rewrites, g.Texts[0].Text)
		}
	}
	if len(hops) != 6 || len(unseen) != 2 {
		t.Errorf("hops %q (unseen %q), want 6 with 2 unseen", hops, unseen)
	}
	if len(rewrites) != 4 || rewrites[0] != "DNAT 198.51.100.10 → 10.0.0.11" {
		t.Errorf("rewrites %q", rewrites)
	}
	// Four rewrites at one port: each label on a line of its own.
	ys := map[string]bool{}
	for _, g := range doc.Groups {
		if g.Class == "trace-rewrite" {
			ys[g.Texts[0].Y] = true
		}
	}
	if len(ys) != 4 {
		t.Errorf("the 4 rewrite labels sit on %d lines", len(ys))
	}
	if len(doc.Paths) != 2 || doc.Paths[0].Class != "trace-out" || doc.Paths[1].Class != "trace-back" {
		t.Errorf("paths %+v, want trace-out and trace-back", doc.Paths)
	}
}

func TestDOTAndTree(t *testing.T) {
	g := Build(seed004())
	dot := g.DOT()
	for _, want := range []string{
		`{ rank=same; "external_network:n-pub"; }`,
		`{ rank=same; "router:r-1"; "floatingip:f-1"; }`,
		`"router:r-1" -- "network:n-priv" [class="plug" label="p-qr 10.0.0.1" color="#16a34a"];`,
		`"instance:i-2" -- "network:n-priv" [class="plug" label="vm2-eth0 10.0.0.12" color="#dc2626"];`,
		`"floatingip:f-1" -- "instance:i-1" [class="floating" style=dashed`,
	} {
		if !strings.Contains(dot, want) {
			t.Errorf("DOT lacks %q:\n%s", want, dot)
		}
	}
	want := `external network public [ACTIVE] public-v4 198.51.100.0/24
├─ floating IP 198.51.100.10 [ACTIVE] → 10.0.0.11
└─ router r1 [ACTIVE] SNAT  port p-gw 198.51.100.2 ACTIVE
   └─ network private [ACTIVE] private-v4 10.0.0.0/24  port p-qr 10.0.0.1 ACTIVE
      ├─ dhcp private [ACTIVE]  port p-dhcp 10.0.0.254 ACTIVE
      ├─ instance vm1 [ACTIVE]  port vm1-eth0 10.0.0.11 ACTIVE rx 1.5 kB tx 98 B drops 4
      └─ instance vm2 [ACTIVE]  port vm2-eth0 10.0.0.12 ERROR (veth: file exists)
`
	if got := g.Tree(); got != want {
		t.Errorf("tree\n%s\nwant\n%s", got, want)
	}
}

func TestBytes(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 B", 999: "999 B", 1000: "1.0 kB", 1536: "1.5 kB", 12_345_678: "12.3 MB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestReasonLines(t *testing.T) {
	long := strings.Repeat("word ", 80)
	for _, tc := range []struct {
		name   string
		reason string
		w      float64
		want   []string
	}{
		{"none", "", 260, nil},
		{"fits", "uplink eth9 does not exist", 260, []string{"uplink eth9 does not exist"}},
		{"wraps at spaces", "uplink nosuch0 does not exist in the host namespace; its NAT applies when it appears", 260,
			[]string{"uplink nosuch0 does not exist in", "the host namespace; its NAT", "applies when it appears"}},
		{"a word longer than the box is cut", strings.Repeat("x", 50), 260, []string{strings.Repeat("x", 31) + "…"}},
		{"at most four lines", long, 260, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := reasonLines(tc.reason, tc.w)
			if tc.name == "at most four lines" {
				if len(got) != maxReasonLines || !strings.HasSuffix(got[len(got)-1], "…") {
					t.Errorf("%d lines %q, want %d ending in …", len(got), got, maxReasonLines)
				}
				return
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			for _, l := range got {
				if textWidth(l) > tc.w-20 {
					t.Errorf("line %q is wider than the box", l)
				}
			}
		})
	}
}
