package agent

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// BenchmarkOverlayPass times, through the agent and the kernel, host a's
// pass after a port of a VXLAN network is created or deleted on host b,
// with 1,000 other ports of the network on b: each a forwarding and a
// neighbour entry of a's VXLAN device, which the pass must not have to
// read or recompute for a change of one.
func BenchmarkOverlayPass(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root (network namespaces)")
	}
	st, err := store.OpenBolt(filepath.Join(b.TempDir(), "state.db"))
	if err != nil {
		b.Fatal(err)
	}
	e := &env{t: b, prefix: fmt.Sprintf("%s%d-", allPrefix, testSeq.Add(1)), resync: time.Hour, st: st,
		host: "a", vtep: netip.MustParseAddr("192.0.2.1")}
	e.hostNetns = e.prefix + "host"
	b.Cleanup(e.cleanup)
	e.put(model.Host{Name: "a", VTEPAddress: "192.0.2.1", Roles: []string{model.RoleCompute}},
		model.Host{Name: "b", VTEPAddress: "192.0.2.2", Roles: []string{model.RoleCompute}})
	e.start()

	n := l3network(110, "10.9.0.0/16", "10.9.0.1", false)
	n.net.MTU = 1450
	n.net.SetSegment(model.Segment{NetworkType: model.NetworkTypeVXLAN, SegmentationID: 4242})
	inst := testInstance("vma")
	inst.Host = "a"
	here := n.port(111, "10.9.0.11", model.DeviceOwnerCompute, inst.ID)
	here.InterfaceName = "eth0"
	recs := append(n.records(), inst, here)
	remote := func(id int) model.Port {
		p := n.port(id, fmt.Sprintf("10.9.%d.%d", 1+id/250, id%250+2), "", "")
		p.HostID = ptr("b")
		return p
	}
	const ports = 1000
	for i := range ports {
		recs = append(recs, remote(1000+i))
	}
	e.converge(e.put(recs...))
	b.ResetTimer()
	for i := range b.N {
		// Created and deleted in turn: an entry more, then less.
		p := remote(1000 + ports)
		if i%2 == 0 {
			e.converge(e.put(p))
		} else {
			e.converge(e.del(p))
		}
	}
}
