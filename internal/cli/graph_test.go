package cli

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"strings"
	"testing"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/topoview"
)

// TestGraphFormats: each -o of nsnet graph prints the one graph, in a
// form its reader takes (a tree, DOT, JSON of nodes and edges, SVG).
func TestGraphFormats(t *testing.T) {
	g := topoview.Build(topoview.Records{
		Networks:  []model.Network{{ID: "n1", Name: "red", Status: "ACTIVE"}},
		Instances: []model.Instance{{ID: "i1", Name: "vm1", Status: "ERROR", StatusReason: "netns busy"}},
		Ports: []model.Port{{ID: "p1", Name: "vm1-eth0", NetworkID: "n1", DeviceID: "i1", DeviceOwner: model.DeviceOwnerCompute,
			Status: "ACTIVE", FixedIPs: []model.FixedIP{{IPAddress: "10.0.0.5"}}}},
	})
	for _, tc := range []struct {
		format string
		check  func(out string) bool
	}{
		{"tree", func(out string) bool {
			return out == "network red [ACTIVE]\n└─ instance vm1 [ERROR] — netns busy  port vm1-eth0 10.0.0.5 ACTIVE\n"
		}},
		{"dot", func(out string) bool {
			return strings.HasPrefix(out, "graph nsnet {") && strings.Contains(out, `"instance:i1" -- "network:n1"`)
		}},
		{"json", func(out string) bool {
			var back topoview.Graph
			return json.Unmarshal([]byte(out), &back) == nil && len(back.Nodes) == 3 && len(back.Edges) == 1 &&
				back.Node("instance:i1").Reason == "netns busy"
		}},
		{"svg", func(out string) bool {
			return xml.Unmarshal([]byte(out), new(struct{})) == nil && strings.Contains(out, `data-id="instance:i1"`)
		}},
	} {
		var b bytes.Buffer
		if err := printGraph(&b, tc.format, g); err != nil {
			t.Fatalf("-o %s: %v", tc.format, err)
		}
		if !tc.check(b.String()) {
			t.Errorf("-o %s printed:\n%s", tc.format, b.String())
		}
	}
}
