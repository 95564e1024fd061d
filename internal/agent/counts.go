package agent

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/nsnet/nsnet/internal/dataplane"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/nat"
	"github.com/nsnet/nsnet/internal/netns"
)

// StatusCount is how many objects of one kind ("network", as the API names
// its resources) are in one status.
type StatusCount struct {
	Kind, Status string
	Count        int
}

// StatusCounts counts the objects the agent has looked at by kind and
// status, as the API shows them (a network's includes its DHCP services).
// It is cheap enough to call on every metrics scrape: the counts are kept
// as the statuses change, so it copies a few numbers under the agent's
// lock, whatever the number of objects.
func (a *Agent) StatusCounts() []StatusCount {
	a.mu.Lock()
	out := make([]StatusCount, 0, len(a.counts))
	for c, n := range a.counts {
		out = append(out, StatusCount{Kind: c.kind, Status: c.status, Count: n})
	}
	a.mu.Unlock()
	slices.SortFunc(out, func(x, y StatusCount) int {
		return cmp.Or(cmp.Compare(x.Kind, y.Kind), cmp.Compare(x.Status, y.Status))
	})
	return out
}

// statusCountKey is one line of StatusCounts: a kind as the API names its
// resources, in the singular, and a status.
type statusCountKey struct{ kind, status string }

// countKeyLocked is what k counts as in StatusCounts: its whole's status
// (a part, such as a network's DHCP, is shown as its network's), false
// when that whole has no status.
func (a *Agent) countKeyLocked(k key) (statusCountKey, bool) {
	if whole, part := wholeOf[k.kind]; part {
		k.kind = whole
	}
	if _, ok := a.statuses[k]; !ok {
		return statusCountKey{}, false
	}
	return statusCountKey{strings.TrimSuffix(string(k.kind), "s"), a.statusLocked(k).Status}, true
}

// setStatusLocked sets k's status (deletes it when st is nil), keeping
// the counts: k's whole counts once, as statusLocked shows it, before and
// after.
func (a *Agent) setStatusLocked(k key, st *status) {
	if c, ok := a.countKeyLocked(k); ok {
		if a.counts[c]--; a.counts[c] == 0 {
			delete(a.counts, c)
		}
	}
	if st == nil {
		delete(a.statuses, k)
	} else {
		a.statuses[k] = *st
	}
	if c, ok := a.countKeyLocked(k); ok {
		a.counts[c]++
	}
}

// countStatusesLocked counts the statuses from scratch: after a pass
// that replaced them all, and to check the counts kept in place.
func (a *Agent) countStatusesLocked() map[statusCountKey]int {
	n := map[statusCountKey]int{}
	for k := range a.statuses {
		if _, part := wholeOf[k.kind]; part {
			continue // counted in its whole
		}
		c, _ := a.countKeyLocked(k)
		n[c]++
	}
	return n
}

// ServerCounts returns the replies of the networks' DHCP and DHCPv6
// servers by message type and the answers of their DNS servers by response
// code, since the agent started (servers that went keep their share).
func (a *Agent) ServerCounts() (dhcpReplies, dhcp6Replies, dnsAnswers map[string]uint64) {
	return a.dhcpCounts.Replies(), a.dhcp6Counts.Replies(), a.dnsCounts.Answers()
}

// PortTraffic is what one port's interface carried, as the instance (or
// router, or DHCP namespace) behind it sees it: Rx is what it received.
type PortTraffic struct {
	RxBytes, RxPackets, TxBytes, TxPackets uint64
}

// PortTraffic reads the counters of every port's interface in the host
// namespace (the bridge side of its veth, whose transmit is the port's
// receive), by port id: one netlink dump on a handle of its own, so that
// it never shares the running pass's.
func (a *Agent) PortTraffic() (map[string]PortTraffic, error) {
	h, err := netns.NewHandle(a.cfg.HostNetns)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	var links []netlink.Link
	// A dump interrupted by a concurrent change may be incomplete: retry.
	for range 5 {
		links, err = h.LinkList()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("list host links: %w", err)
	}
	out := map[string]PortTraffic{}
	for _, l := range links {
		attrs := l.Attrs()
		kind, id, ok := dataplane.ParseAlias(attrs.Alias)
		if !ok || kind != "port" || attrs.Statistics == nil {
			continue
		}
		st := attrs.Statistics
		out[id] = PortTraffic{RxBytes: st.TxBytes, RxPackets: st.TxPackets, TxBytes: st.RxBytes, TxPackets: st.RxPackets}
	}
	return out, nil
}

// PortDrops returns the security group and anti-spoofing drop counters of
// every port, by port id and reason (named as the API's
// nsnet:firewall_drops names them: "ingress_denied", "spoofed_ip"…), from
// the counters cache FirewallCounters keeps.
func (a *Agent) PortDrops() map[string]map[string]uint64 {
	a.FirewallCounters("") // refreshes the cache when it is stale
	h := &a.firewall
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]map[string]uint64, len(h.counters))
	for id, c := range h.counters {
		out[id] = map[string]uint64{
			"spoofed_mac": c.SpoofedMAC, "spoofed_ip": c.SpoofedIP, "spoofed_arp": c.SpoofedARP,
			"spoofed_nd": c.SpoofedND, "dhcp_server": c.DHCPServer, "router_advertisement": c.RouterAdvert, "ipv6_off": c.IPv6Off,
			"ingress_denied": c.Ingress, "egress_denied": c.Egress, "invalid": c.Invalid,
		}
	}
	return out
}

// RouterConntrack returns how many connections each router's namespace
// tracks (its nf_conntrack_count: the connections its NAT translates and
// its own), by router id, for the routers whose nsnet table the agent has
// open. A router whose namespace is going away meanwhile is left out.
func (a *Agent) RouterConntrack() (map[string]int, error) {
	a.nat.mu.Lock()
	ids := make([]string, 0, len(a.nat.m))
	for id := range a.nat.m {
		if id != hostNATKey {
			ids = append(ids, id)
		}
	}
	a.nat.mu.Unlock()
	out := make(map[string]int, len(ids))
	var errs []error
	for _, id := range ids {
		ns, err := netns.Open(model.RouterNetns(a.cfg.NetnsPrefix, id))
		if err != nil {
			continue // deleted since
		}
		v, err := netns.ReadSysctl(ns, "net.netfilter.nf_conntrack_count")
		ns.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("router %s: %w", id, err))
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("router %s: nf_conntrack_count %q: %w", id, v, err))
			continue
		}
		out[id] = n
	}
	return out, errors.Join(errs...)
}

// RouterNAT returns the translations each router's nsnet table holds, by
// router id and type ("snat", "masquerade", "floating_ip", "port_forward"),
// as of the last spec the kernel took: no kernel read.
func (a *Agent) RouterNAT() map[string]map[string]int {
	a.nat.mu.Lock()
	defer a.nat.mu.Unlock()
	out := make(map[string]map[string]int, len(a.nat.m))
	for id, r := range a.nat.m {
		if id == hostNATKey {
			continue
		}
		if c := r.programmed.Load(); c != nil {
			out[id] = *c
		}
	}
	return out
}

func natCounts(spec nat.Spec) *map[string]int {
	return &map[string]int{
		"snat":         len(spec.SNAT),
		"masquerade":   len(spec.Masquerade),
		"floating_ip":  len(spec.FloatingIPs),
		"port_forward": len(spec.PortForwards),
	}
}
