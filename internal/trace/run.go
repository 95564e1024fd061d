package trace

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/capture"
)

// Result is what a trace saw. Its JSON form is stable for scripts.
type Result struct {
	Protocol string     `json:"protocol"`
	Src      string     `json:"src"`
	Dst      string     `json:"dst"`
	DstPort  uint16     `json:"dst_port,omitempty"`
	From     string     `json:"from"`
	Probe    *Probe     `json:"probe"`
	Expected Expected   `json:"expected"`
	Way      []HopSeen  `json:"way"`      // the probe, in the order of the plan
	WayBack  []HopSeen  `json:"way_back"` // the answer, in reverse order
	Rewrites []Rewrite  `json:"rewrites"`
	Answered bool       `json:"answered"`
	Answer   string     `json:"answer,omitempty"` // the answer as it reached the source
	Stopped  *Stop      `json:"stopped,omitempty"`
	NFTrace  []NFTEvent `json:"nftrace,omitempty"`
	// Tunnels are the VXLAN tunnels the way out crosses, from one host
	// to another.
	Tunnels []Tunnel `json:"tunnels,omitempty"`
	// Notes are things nsnet could not do (an interface it could not
	// capture on) that make the picture less complete.
	Notes []string `json:"notes,omitempty"`

	// nd is, per hop, the IPv6 neighbour discovery seen there: how often
	// each target was solicited, and which were advertised.
	nd []ndSeen
	// srcNeighbour is the source's neighbour entry for its next hop, as
	// last seen unanswered while the trace waited (see watchNeighbour).
	srcNeighbour neighbourSeen
}

// neighbourSeen is a next hop's neighbour entry in an unanswered state.
type neighbourSeen struct {
	hop   netip.Addr
	state string // "": none seen
}

// ndSeen is the neighbour discovery one interface carried during a trace.
type ndSeen struct {
	solicited  map[netip.Addr]int
	advertised map[netip.Addr]bool
}

// Expected is the plan as the result reports it.
type Expected struct {
	End       string `json:"end"`
	EndDetail string `json:"end_detail"`
	DNAT      string `json:"dnat,omitempty"`
}

// HopSeen is a hop and what was seen there.
type HopSeen struct {
	Hop
	Seen      bool      `json:"seen"`
	Time      time.Time `json:"time,omitzero"`
	Direction string    `json:"direction,omitempty"`
	SrcMAC    string    `json:"src_mac,omitempty"`
	DstMAC    string    `json:"dst_mac,omitempty"`
	Src       string    `json:"src,omitempty"`
	Dst       string    `json:"dst,omitempty"`
	SrcPort   uint16    `json:"src_port,omitempty"`
	DstPort   uint16    `json:"dst_port,omitempty"`
	ICMPID    uint16    `json:"icmp_id,omitempty"`
	Summary   string    `json:"summary,omitempty"`
	// VXLAN is the outer packet of a sighting on an underlay
	// interface: the fields above are the inner packet's.
	VXLAN *Outer `json:"vxlan,omitempty"`

	packet *capture.Packet
}

// Rewrite is a change of address or port between two hops: what NAT did.
type Rewrite struct {
	Way       string `json:"way"`  // "out" (the probe) or "back" (the answer)
	Kind      string `json:"kind"` // "SNAT" or "DNAT"
	From      string `json:"from"`
	To        string `json:"to"`
	Netns     string `json:"netns"`
	Node      string `json:"node"`
	Interface string `json:"interface"` // where the change was first seen
	After     string `json:"after"`     // the interface before it
	Detail    string `json:"detail,omitempty"`
	// Hop is the number of the hop (from 1, in its way's order) where
	// the change was first seen: an interface may be crossed twice (a
	// hairpin through the host's bridge).
	Hop int `json:"hop"`
}

func (r Rewrite) String() string {
	s := fmt.Sprintf("%s %s → %s", r.Kind, r.From, r.To)
	if r.From == r.To {
		// Only the ICMP id changed.
		s = fmt.Sprintf("%s %s (kept)", r.Kind, r.From)
	}
	if r.Detail != "" {
		s += ", " + r.Detail
	}
	return s + fmt.Sprintf(" in %s (between %s and %s)", r.Node, r.After, r.Interface)
}

// Stop says where the probe or its answer was last seen and why it went
// no further, as far as nsnet can tell.
type Stop struct {
	Way      string   `json:"way"` // "out" or "back"
	LastSeen *Hop     `json:"last_seen"`
	Missing  *Hop     `json:"next_expected,omitempty"`
	Reasons  []string `json:"reasons"`
}

// Options tune a run.
type Options struct {
	// Timeout is how long to wait for the answer.
	Timeout time.Duration
	// Ready, if set, is called once every capture is open, just before
	// the probe is sent.
	Ready func()
}

// settle is how long captures keep running after the answer reached the
// source, for copies still in flight on other interfaces.
const settle = 150 * time.Millisecond

// maxFramesPerHop bounds what one busy interface can make a trace hold.
const maxFramesPerHop = 20000

type seenFrame struct {
	f  capture.Frame
	pk *capture.Packet
	// outer is the VXLAN packet that carried pk, on an underlay.
	outer *capture.Packet
}

// Outer is the outer packet of a VXLAN tunnel, as seen on an underlay.
type Outer struct {
	Src     string `json:"src"`
	Dst     string `json:"dst"`
	SrcPort uint16 `json:"src_port"`
	DstPort uint16 `json:"dst_port"`
	VNI     uint32 `json:"vni"`
}

// Run captures on every hop of plan, sends probe from src, and reports
// what it saw. Every capture socket and every nftables trace rule is
// removed before it returns, also when ctx ends early.
func Run(ctx context.Context, m *Model, plan *Plan, src Source, probe *Probe, opts Options) (*Result, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 3 * time.Second
	}
	// A hop to a port on another host crosses the overlay: the plan
	// grows the tunnel's hops (the kernel's forwarding entries say
	// where the port is).
	tunnels, tunErr := m.AcrossHosts(plan)
	res := &Result{Protocol: capture.ProtoName(probe.Proto), Src: plan.Src.String(), Dst: plan.Dst.String(),
		DstPort: probe.DstPort, From: src.Node, Probe: probe,
		Expected: Expected{End: plan.End, EndDetail: plan.EndDetail}}
	if plan.DNAT.IsValid() {
		res.Expected.DNAT = plan.DNAT.String()
	}
	res.Tunnels = tunnels
	if tunErr != nil {
		res.Notes = append(res.Notes, fmt.Sprintf("cannot follow the overlay: %v", tunErr))
	}

	captureCtx, stopCapture := context.WithCancel(ctx)
	frames := make([][]seenFrame, len(plan.Hops))
	var mu sync.Mutex
	var wg sync.WaitGroup
	answered := make(chan struct{})
	var answerOnce sync.Once
	// One socket per interface: a path may cross one twice (a router
	// hairpinning to a floating IP leaves by the interface it came in
	// on), and its frames then belong to both hops.
	hopsOf := map[[2]string][]int{}
	var order [][2]string
	for i, h := range plan.Hops {
		key := [2]string{h.Netns, h.Interface}
		if hopsOf[key] == nil {
			order = append(order, key)
		}
		hopsOf[key] = append(hopsOf[key], i)
	}
	for _, key := range order {
		sock, err := capture.Open(key[0], key[1])
		if err != nil {
			res.Notes = append(res.Notes, fmt.Sprintf("cannot capture on %s: %v", plan.Hops[hopsOf[key][0]], err))
			continue
		}
		hops := hopsOf[key]
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer sock.Close()
			var sent *capture.Packet // the probe leaving the source, on hop 0
			for {
				f, err := sock.Read(captureCtx)
				if err != nil {
					return
				}
				pk := capture.Decode(f.Data)
				var outer *capture.Packet
				if pk.Inner != nil && pk.Inner.IsIP() {
					// On an underlay: what the tunnel carries is
					// the probe, or its answer.
					outer, pk = pk, pk.Inner
				}
				if !pk.IsIP() {
					continue
				}
				mu.Lock()
				for _, i := range hops {
					if len(frames[i]) < maxFramesPerHop {
						frames[i] = append(frames[i], seenFrame{f, pk, outer})
					}
				}
				mu.Unlock()
				switch {
				case hops[0] != 0:
				case f.Outgoing && sent == nil && probe.IsProbe(pk):
					sent = pk
				case !f.Outgoing && probe.IsAnswer(pk, sent):
					answerOnce.Do(func() { close(answered) })
				}
			}
		}()
	}
	// Whatever happens below, every capture goroutine ends and closes
	// its socket before Run returns.
	defer func() {
		stopCapture()
		wg.Wait()
	}()

	tracer, err := startNFTrace(plan, m.HostNetns, probe)
	if err != nil {
		res.Notes = append(res.Notes, fmt.Sprintf("no nftables tracing: %v", err))
	} else {
		defer tracer.stop() // also when ctx ends: no trace table stays
	}
	if opts.Ready != nil {
		opts.Ready()
	}
	sendErr := probe.Send(src.Netns, src.Addr, plan.Dst)
	if sendErr == nil {
		watched := make(chan neighbourSeen, 1)
		stopWatch := make(chan struct{})
		go func() { watched <- watchNeighbour(plan, stopWatch) }()
		timer := time.NewTimer(opts.Timeout)
		select {
		case <-answered:
			time.Sleep(settle)
		case <-timer.C:
		case <-ctx.Done():
		}
		timer.Stop()
		close(stopWatch)
		res.srcNeighbour = <-watched
	}
	if tracer != nil {
		res.NFTrace = tracer.stop()
		m.nameSecurityGroups(res.NFTrace)
	}
	stopCapture()
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	res.analyse(plan, probe, frames)
	if sendErr != nil {
		res.Stopped = &Stop{Way: "out", LastSeen: nil, Reasons: []string{sendReason(src, plan.Dst, sendErr)}}
		return res, nil
	}
	res.diagnose(plan)
	return res, nil
}

func sendReason(src Source, dst netip.Addr, err error) string {
	if errors.Is(err, unix.ENETUNREACH) || errors.Is(err, unix.EHOSTUNREACH) {
		return fmt.Sprintf("%s has no route to %s: the probe could not be sent (%v)", src.Node, dst, err)
	}
	if errors.Is(err, unix.EADDRNOTAVAIL) && src.Addr.Is6() {
		// The model's address, not (yet) the kernel's: SLAAC and
		// DHCPv6 addresses come from the network, and a new address is
		// tentative until duplicate address detection ends.
		return fmt.Sprintf("%s does not hold %s (yet): an IPv6 address from router advertisements or DHCPv6 is not configured, or still tentative (%v)", src.Node, src.Addr, err)
	}
	return fmt.Sprintf("the probe could not be sent: %v", err)
}

// analyse picks, at each hop, the probe and its answer out of the frames,
// and works out the rewrites between hops.
func (r *Result) analyse(plan *Plan, probe *Probe, frames [][]seenFrame) {
	r.Way = make([]HopSeen, len(plan.Hops))
	r.WayBack = make([]HopSeen, len(plan.Hops))
	r.nd = make([]ndSeen, len(plan.Hops))
	for i := range plan.Hops {
		nd := ndSeen{solicited: map[netip.Addr]int{}, advertised: map[netip.Addr]bool{}}
		for _, sf := range frames[i] {
			pk := sf.pk
			if !pk.IsIPv6() || pk.Proto != capture.ProtoICMPv6 || pk.ND == nil || !pk.ND.Target.IsValid() {
				continue
			}
			switch pk.ICMPType {
			case capture.ICMPv6NeighborSolic:
				nd.solicited[pk.ND.Target]++
			case capture.ICMPv6NeighborAdvert:
				nd.advertised[pk.ND.Target] = true
			}
		}
		r.nd[i] = nd
	}
	for i, h := range plan.Hops {
		r.Way[i] = HopSeen{Hop: h}
		var fwd *capture.Packet
		var fwdTime time.Time
		// The probe crosses a hop in the direction of the way out, its
		// answer in the other.
		for _, sf := range frames[i] {
			if sf.f.Outgoing != h.Ingress && probe.IsProbe(sf.pk) {
				r.Way[i] = seen(h, sf)
				fwd, fwdTime = sf.pk, sf.f.Time
				break
			}
		}
		back := HopSeen{Hop: h}
		for _, sf := range frames[i] {
			if sf.f.Time.Before(fwdTime) || sf.f.Outgoing != h.Ingress {
				continue
			}
			if probe.IsAnswer(sf.pk, fwd) {
				back = seen(h, sf)
				break
			}
		}
		r.WayBack[len(plan.Hops)-1-i] = back
	}
	r.Rewrites = append(rewrites("out", r.Way), rewrites("back", r.WayBack)...)
	if last := r.WayBack[len(r.WayBack)-1]; last.Seen {
		r.Answered = true
		r.Answer = last.Summary
	}
}

func seen(h Hop, sf seenFrame) HopSeen {
	pk := sf.pk
	s := HopSeen{Hop: h, Seen: true, Time: sf.f.Time.UTC(), Direction: sf.f.Direction(),
		SrcMAC: pk.SrcMAC.String(), DstMAC: pk.DstMAC.String(), Src: pk.Src.String(), Dst: pk.Dst.String(),
		Summary: pk.Summary(), packet: pk}
	switch {
	case pk.Proto == capture.ProtoTCP || pk.Proto == capture.ProtoUDP:
		s.SrcPort, s.DstPort = pk.SrcPort, pk.DstPort
	case pk.IsICMP():
		s.ICMPID = pk.ICMPID
	}
	if o := sf.outer; o != nil {
		s.VXLAN = &Outer{Src: o.Src.String(), Dst: o.Dst.String(), SrcPort: o.SrcPort, DstPort: o.DstPort, VNI: o.VNI}
		s.Summary = fmt.Sprintf("%s > %s: VXLAN, vni %d: %s", netip.AddrPortFrom(o.Src, o.SrcPort), netip.AddrPortFrom(o.Dst, o.DstPort), o.VNI, s.Summary)
	}
	return s
}

// rewrites compares each seen hop with the previous seen one.
func rewrites(way string, hops []HopSeen) []Rewrite {
	var out []Rewrite
	var prev *HopSeen
	for i := range hops {
		h := &hops[i]
		if !h.Seen {
			continue
		}
		if prev != nil && sameKind(prev.packet, h.packet) {
			a, b := prev.packet, h.packet
			where := Rewrite{Way: way, Netns: h.Netns, Node: h.Node, Interface: h.Interface, After: prev.Interface, Hop: i + 1}
			// The echo id is ICMP's "port": NAT may change it. It is the
			// source's on a request and, as conntrack maps it, the
			// destination's on a reply, where undoing a masquerade puts
			// both the address and the id back (DNAT).
			idChanged := a.ICMPID != b.ICMPID
			idOfDst := idChanged && isEchoReply(b)
			if a.Src != b.Src || a.SrcPort != b.SrcPort || idChanged && !idOfDst {
				rw := where
				rw.Kind, rw.From, rw.To = "SNAT", endpoint(a.Src, a.SrcPort), endpoint(b.Src, b.SrcPort)
				if idChanged && !idOfDst {
					rw.Detail = fmt.Sprintf("ICMP id %d → %d", a.ICMPID, b.ICMPID)
				}
				out = append(out, rw)
			}
			if a.Dst != b.Dst || a.DstPort != b.DstPort || idOfDst {
				rw := where
				rw.Kind, rw.From, rw.To = "DNAT", endpoint(a.Dst, a.DstPort), endpoint(b.Dst, b.DstPort)
				if idOfDst {
					rw.Detail = fmt.Sprintf("ICMP id %d → %d", a.ICMPID, b.ICMPID)
				}
				out = append(out, rw)
			}
		}
		prev = h
	}
	return out
}

func isEchoReply(p *capture.Packet) bool {
	if p.EtherType == capture.EtherTypeIPv6 {
		return p.Proto == capture.ProtoICMPv6 && p.ICMPType == capture.ICMPv6EchoReply
	}
	return p.Proto == capture.ProtoICMP && p.ICMPType == capture.ICMPEchoReply
}

// sameKind reports whether two sightings are the same packet translated,
// not an answer of another kind (an ICMP error for a reply).
func sameKind(a, b *capture.Packet) bool {
	return a.Proto == b.Proto && a.ICMPType == b.ICMPType
}

func endpoint(a netip.Addr, port uint16) string {
	if port == 0 {
		return a.String()
	}
	return netip.AddrPortFrom(a, port).String()
}
