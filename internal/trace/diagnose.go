package trace

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/capture"
	"github.com/nsnet/nsnet/internal/netns"
)

// diagnose says why the probe or its answer stopped, when it did: from
// the answer itself (an RST, an ICMP error), or from the kernel of the
// namespace it was last seen in (its route to the destination, its
// neighbour table, nftables trace events).
func (r *Result) diagnose(plan *Plan) {
	lastOut := lastSeen(r.Way)
	if r.Answered {
		if reason := errorAnswer(r); reason != "" {
			r.Stopped = &Stop{Way: "out", LastSeen: hopAt(r.Way, lastOut), Reasons: []string{reason}}
			r.addDrops()
		}
		return
	}
	switch {
	case lastOut < 0:
		src := plan.Hops[0]
		reasons := []string{fmt.Sprintf("the probe was not seen anywhere, not even leaving %s", src)}
		// The kernel's next hop, not the model's: an IPv6 default route
		// learnt from router advertisements goes via the router's
		// link-local address, not the subnet's gateway_ip.
		nh := plan.SourceNextHop
		if k, ok := kernelNextHop(src.Netns, plan.Src, plan.Dst); ok {
			nh = k
		}
		if nh.IsValid() {
			state, ok := neighbourState(src.Netns, src.Interface, nh)
			if (!ok || !unanswered(state)) && r.srcNeighbour.hop == nh {
				// Gone since (the kernel's neighbour tables are
				// shared by all namespaces, and a busy host's garbage
				// collection drops failed entries within seconds):
				// as it was while the trace waited.
				state, ok = r.srcNeighbour.state, r.srcNeighbour.state != ""
			}
			if ok && unanswered(state) {
				reasons = append(reasons, fmt.Sprintf("%s: %s has no MAC address for %s on %s (%s %s): nothing on its network answers for it", noNeighbour(nh), src.Node, nh, src.Interface, resolution(nh), state))
			}
		}
		reasons = append(reasons, r.unansweredND(plan, 0, nh)...)
		r.Stopped = &Stop{Way: "out", Reasons: reasons}
	case lastOut < len(plan.Hops)-1:
		last, next := plan.Hops[lastOut], plan.Hops[lastOut+1]
		pk := r.Way[lastOut].packet
		reasons := explainStop(last, next, pk)
		if last.Ingress && last.Kind != KindBridge {
			// A namespace that routes: its solicitations for the next
			// hop, on the interface it should have left by.
			if nh, ok := kernelNextHop(last.Netns, pk.Src, pk.Dst); ok {
				reasons = append(reasons, r.unansweredND(plan, lastOut+1, nh)...)
			}
		}
		r.Stopped = &Stop{Way: "out", LastSeen: &last, Missing: &next, Reasons: reasons}
	default:
		back := lastSeen(r.WayBack)
		if back >= 0 {
			last := r.WayBack[back].Hop
			st := &Stop{Way: "back", LastSeen: &last}
			if back+1 < len(r.WayBack) {
				next := r.WayBack[back+1].Hop
				st.Missing = &next
				st.Reasons = explainStop(flip(last), flip(next), r.WayBack[back].packet)
			}
			r.Stopped = st
			break
		}
		last := plan.Hops[lastOut]
		r.Stopped = &Stop{Way: "out", LastSeen: &last, Reasons: r.noAnswer(plan)}
	}
	r.addDrops()
}

// unansweredND is what the capture on hop i saw of IPv6 neighbour
// discovery for target, the next hop the stop is about, going wrong:
// solicitations that no advertisement answered while the trace ran. It
// is the wire's word for a failed neighbour discovery, beside the
// neighbour table's. Other targets are left out: a solicitation of
// routine reachability checking, caught at the end of the capture
// without its answer, says nothing about the probe.
func (r *Result) unansweredND(plan *Plan, i int, target netip.Addr) []string {
	if i < 0 || i >= len(r.nd) || !target.Is6() {
		return nil
	}
	nd := r.nd[i]
	n := nd.solicited[target]
	if n == 0 || nd.advertised[target] {
		return nil
	}
	return []string{fmt.Sprintf("neighbour discovery failed: %d neighbour solicitation(s) for %s on %s (%s), and no advertisement",
		n, target, plan.Hops[i], plan.Hops[i].Node)}
}

// flip turns a hop of the way out into the same interface on the way back.
func flip(h Hop) Hop {
	h.Ingress = !h.Ingress
	return h
}

func lastSeen(hops []HopSeen) int {
	last := -1
	for i, h := range hops {
		if h.Seen {
			last = i
		}
	}
	return last
}

func hopAt(hops []HopSeen, i int) *Hop {
	if i < 0 {
		return nil
	}
	h := hops[i].Hop
	return &h
}

// errorAnswer explains an answer that says the probe was refused: a TCP
// reset, or an ICMP error, naming where it came from.
func errorAnswer(r *Result) string {
	var first *HopSeen // where the answer was first seen: next to whoever sent it
	for i := range r.WayBack {
		if r.WayBack[i].Seen {
			first = &r.WayBack[i]
			break
		}
	}
	last := r.WayBack[len(r.WayBack)-1].packet
	origin := fmt.Sprintf("%s (first seen at %s, %s)", first.packet.Src, first.Node, first.Hop)
	icmp := "ICMP"
	if last.IsIPv6() {
		icmp = "ICMPv6"
	}
	switch {
	case last.Proto == capture.ProtoTCP && last.TCPFlags&capture.TCPRst != 0:
		return fmt.Sprintf("no listener: %s answered the SYN to port %d with a reset (RST)", origin, first.packet.SrcPort)
	case last.IsUnreachable() && last.IsIPv6() && last.ICMPCode == 3 && last.Quoted != nil:
		// A router that got no neighbour advertisement for the
		// destination (RFC 4443 3.1: address unreachable).
		return fmt.Sprintf("neighbour discovery failed: %s answered ICMPv6 address unreachable: nothing on its link answered neighbour discovery (ND) for %s",
			origin, last.Quoted.Dst)
	case last.IsUnreachable():
		reason := last.UnreachableString()
		switch kind := last.UnreachableKind(); kind {
		case "no listener":
			return fmt.Sprintf("no listener: %s answered %s port unreachable", origin, icmp)
		case "no route":
			return fmt.Sprintf("no route: %s answered %s %s", origin, icmp, reason)
		}
		return fmt.Sprintf("refused: %s answered %s %s", origin, icmp, reason)
	case last.IsIPv6() && last.Proto == capture.ProtoICMPv6 && last.ICMPType == capture.ICMPv6PacketTooBig:
		return fmt.Sprintf("too big: %s answered ICMPv6 packet too big, mtu %d (IPv6 routers do not fragment)", origin, last.MTU)
	case last.IsTimeExceeded() && last.IsIPv6():
		return fmt.Sprintf("hop limit exceeded: %s answered ICMPv6 time exceeded (a routing loop?)", origin)
	case last.IsTimeExceeded():
		return fmt.Sprintf("TTL exceeded: %s answered ICMP time exceeded (a routing loop?)", origin)
	}
	return ""
}

// noAnswer explains a probe that went all the way the model expects and
// got no answer.
func (r *Result) noAnswer(plan *Plan) []string {
	last := plan.Hops[len(plan.Hops)-1]
	switch plan.End {
	case EndExternal, EndNobody:
		reasons := []string{fmt.Sprintf("the probe left nsnet at %s (%s); no answer came back from outside", last, plan.EndDetail)}
		// The hop before is the interface of the namespace that routed
		// it out: its neighbour entry for the next hop says whether
		// anybody answered ARP (or ND). The kernel's next hop, when it
		// has a route, else the model's.
		if len(plan.Hops) >= 2 && plan.NextHop.IsValid() {
			out := plan.Hops[len(plan.Hops)-2]
			nh := plan.NextHop
			target := plan.Dst
			if plan.DNAT.IsValid() {
				target = plan.DNAT
			}
			if k, ok := kernelNextHop(out.Netns, netip.Addr{}, target); ok && out.Kind != KindBridge {
				nh = k
			}
			if state, ok := neighbourState(out.Netns, out.Interface, nh); ok {
				if unanswered(state) {
					reasons = append(reasons, fmt.Sprintf("%s: %s has no MAC address for the next hop %s on %s (%s %s)", noNeighbour(nh), out.Node, nh, out.Interface, resolution(nh), state))
				} else {
					reasons = append(reasons, fmt.Sprintf("the next hop %s answers %s on %s (%s): the far side did not answer", nh, resolution(nh), out.Interface, state))
				}
			}
			reasons = append(reasons, r.unansweredND(plan, len(plan.Hops)-2, nh)...)
		}
		return reasons
	case EndInstance, EndRouter:
		return []string{fmt.Sprintf("the probe reached %s (%s), which did not answer", last, plan.EndDetail)}
	}
	return []string{plan.EndDetail}
}

// explainStop says why a packet seen at last was not seen at next: from
// the routing and neighbour tables of last's namespace when last is where
// it entered that namespace.
func explainStop(last, next Hop, pk *capture.Packet) []string {
	if !last.Ingress {
		return []string{fmt.Sprintf("it left %s by %s but never appeared on %s, the other end", last.Node, last, next)}
	}
	if last.Kind == KindBridge {
		// Switched, not routed: the host's routes say nothing about it.
		return []string{fmt.Sprintf("%s received it on %s but did not forward it to %s (a bridge firewall rule, or the bridge does not know the destination MAC %s)",
			last.Node, last.Interface, next.Interface, pk.DstMAC)}
	}
	h, err := netns.NewHandle(last.Netns)
	if err != nil {
		return []string{fmt.Sprintf("it entered %s at %s and went no further (cannot look inside: %v)", last.Node, last.Interface, err)}
	}
	defer h.Close()
	routes, err := h.RouteGetWithOptions(pk.Dst.AsSlice(), &netlink.RouteGetOptions{Iif: last.Interface, SrcAddr: pk.Src.AsSlice()})
	if err != nil || len(routes) == 0 {
		return []string{fmt.Sprintf("no route: %s has no route to %s for a packet from %s arriving on %s (%v)", last.Node, pk.Dst, pk.Src, last.Interface, err)}
	}
	rt := routes[0]
	dev := ""
	if link, err := h.LinkByIndex(rt.LinkIndex); err == nil {
		dev = link.Attrs().Name
	}
	if rt.Type == unix.RTN_LOCAL || dev == "lo" {
		return []string{fmt.Sprintf("%s is an address of %s itself: it was delivered there and not answered", pk.Dst, last.Node)}
	}
	if dev != next.Interface {
		return []string{fmt.Sprintf("%s routes %s out of %s, not %s as nsnet's model expects", last.Node, pk.Dst, dev, next.Interface)}
	}
	nh := pk.Dst
	if gw, ok := netip.AddrFromSlice(rt.Gw); ok && rt.Gw != nil {
		nh = gw.Unmap()
	}
	if state, ok := neighbourOf(h, rt.LinkIndex, nh); ok && unanswered(state) {
		return []string{fmt.Sprintf("%s: %s routes %s out of %s to %s, which does not answer %s (%s)", noNeighbour(nh), last.Node, pk.Dst, dev, nh, resolution(nh), state)}
	}
	return []string{fmt.Sprintf("dropped in %s: it routes %s out of %s, but the packet never left (a firewall rule, reverse-path filtering, or a full queue)", last.Node, pk.Dst, dev)}
}

// addDrops adds what nftables tracing saw drop the probe.
func (r *Result) addDrops() {
	if r.Stopped == nil {
		return
	}
	for _, ev := range r.NFTrace {
		if ev.Verdict == "drop" || ev.Verdict == "reject" {
			r.Stopped.Reasons = append(r.Stopped.Reasons, "dropped by nftables: "+ev.String())
		}
	}
}

// neighbourSamples is how often watchNeighbour looks.
const neighbourSamples = 200 * time.Millisecond

// watchNeighbour looks at the source's neighbour entry for its next hop
// until stop closes, and returns the last state it saw unanswered
// (INCOMPLETE, FAILED), if any: what diagnose says when the entry is gone
// by the time the trace ends.
func watchNeighbour(plan *Plan, stop <-chan struct{}) neighbourSeen {
	var seen neighbourSeen
	src := plan.Hops[0]
	tick := time.NewTicker(neighbourSamples)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return seen
		case <-tick.C:
		}
		nh := plan.SourceNextHop
		if k, ok := kernelNextHop(src.Netns, plan.Src, plan.Dst); ok {
			nh = k
		}
		if !nh.IsValid() {
			continue
		}
		if state, ok := neighbourState(src.Netns, src.Interface, nh); ok && unanswered(state) {
			seen = neighbourSeen{hop: nh, state: state}
		}
	}
}

// neighbourState reads the neighbour entry of addr on ifname in ns.
func neighbourState(ns, ifname string, addr netip.Addr) (string, bool) {
	h, err := netns.NewHandle(ns)
	if err != nil {
		return "", false
	}
	defer h.Close()
	link, err := h.LinkByName(ifname)
	if err != nil {
		return "", false
	}
	return neighbourOf(h, link.Attrs().Index, addr)
}

func neighbourOf(h *netlink.Handle, index int, addr netip.Addr) (string, bool) {
	family := netlink.FAMILY_V4
	if addr.Is6() {
		family = netlink.FAMILY_V6
	}
	addr = addr.WithZone("")
	neighs, err := h.NeighList(index, family)
	if err != nil {
		return "", false
	}
	for _, n := range neighs {
		if a, ok := netip.AddrFromSlice(n.IP); ok && a.Unmap() == addr {
			return neighState(n.State), true
		}
	}
	return "", false
}

// unanswered reports whether a neighbour state means ARP (or ND) got no
// answer.
func unanswered(state string) bool { return state == "FAILED" || state == "INCOMPLETE" }

// resolution names how a neighbour's MAC address is found: ARP for IPv4,
// neighbour discovery for IPv6.
func resolution(a netip.Addr) string {
	if a.Is6() {
		return "ND"
	}
	return "ARP"
}

// noNeighbour starts the reason of a next hop that did not answer it.
func noNeighbour(a netip.Addr) string {
	if a.Is6() {
		return "neighbour discovery failed"
	}
	return "no neighbour answer"
}

// kernelNextHop is where namespace ns sends a packet for dst (from src,
// when valid): the route's gateway, or dst itself on a connected route.
func kernelNextHop(ns string, src, dst netip.Addr) (netip.Addr, bool) {
	h, err := netns.NewHandle(ns)
	if err != nil {
		return netip.Addr{}, false
	}
	defer h.Close()
	opts := &netlink.RouteGetOptions{}
	if src.IsValid() {
		opts.SrcAddr = src.AsSlice()
	}
	routes, err := h.RouteGetWithOptions(dst.AsSlice(), opts)
	if err != nil || len(routes) == 0 {
		return netip.Addr{}, false
	}
	if gw, ok := netip.AddrFromSlice(routes[0].Gw); ok && routes[0].Gw != nil {
		return gw.Unmap(), true
	}
	return dst, true
}

func neighState(s int) string {
	var names []string
	for _, st := range []struct {
		bit  int
		name string
	}{{netlink.NUD_INCOMPLETE, "INCOMPLETE"}, {netlink.NUD_REACHABLE, "REACHABLE"}, {netlink.NUD_STALE, "STALE"},
		{netlink.NUD_DELAY, "DELAY"}, {netlink.NUD_PROBE, "PROBE"}, {netlink.NUD_FAILED, "FAILED"},
		{netlink.NUD_NOARP, "NOARP"}, {netlink.NUD_PERMANENT, "PERMANENT"}} {
		if s&st.bit != 0 {
			names = append(names, st.name)
		}
	}
	if len(names) == 0 {
		return "NONE"
	}
	return strings.Join(names, ",")
}
