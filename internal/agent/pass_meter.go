package agent

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/nsnet/nsnet/internal/dataplane"
	"github.com/nsnet/nsnet/internal/meter"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/netns"
)

// L3 metering, as Neutron's metering agent does it: every label of a
// router's project (every shared label) counts, in the router's
// namespace, the traffic through its gateway that the label's rules
// select. The counters live in the router's nsnet_meter table
// (internal/meter); nsnet has no ceilometer to send them to, and shows
// them on request instead (nsnet metering show).

// meterFor is the metering spec of the router of pl, whose gateway
// interface is gateway ("" when it has none: nothing to count).
func meterFor(pl *routerPlan, gateway string, s *snapshot) meter.Spec {
	spec := meter.Spec{Gateway: gateway}
	if gateway == "" {
		return spec
	}
	rules := map[string][]meter.Rule{}
	for _, r := range s.labelRules {
		rules[r.MeteringLabelID] = append(rules[r.MeteringLabelID], meter.Rule{
			Direction:   r.Direction,
			Remote:      prefixOf(r.RemoteIPPrefix),
			Source:      prefixOf(r.SourceIPPrefix),
			Destination: prefixOf(r.DestinationIPPrefix),
			Excluded:    r.Excluded,
		})
	}
	for _, l := range sortedBy(s.labels, func(l model.MeteringLabel) string { return l.ID }) {
		if !l.Shared && l.ProjectID != pl.router.ProjectID {
			continue
		}
		rs := rules[l.ID]
		slices.SortFunc(rs, compareMeterRules)
		spec.Labels = append(spec.Labels, meter.Label{ID: l.ID, Rules: rs})
	}
	return spec
}

func prefixOf(s *string) netip.Prefix {
	if s == nil {
		return netip.Prefix{}
	}
	p, _ := netip.ParsePrefix(*s)
	return p
}

// compareMeterRules orders a label's rules so that its spec, and so its
// chain, does not depend on the store's order.
func compareMeterRules(a, b meter.Rule) int {
	key := func(r meter.Rule) string {
		return r.Direction + " " + r.Remote.String() + " " + r.Source.String() + " " + r.Destination.String()
	}
	if c := strings.Compare(key(a), key(b)); c != 0 {
		return c
	}
	switch {
	case a.Excluded == b.Excluded:
		return 0
	case a.Excluded:
		return -1
	}
	return 1
}

// ensureMeter makes router id's nsnet_meter table hold spec's labels.
func (p *pass) ensureMeter(id string, ns *dataplane.Namespace, spec meter.Spec) (bool, error) {
	wanted := spec.Gateway != "" && len(spec.Labels) > 0
	if !wanted && !p.full && !p.a.metered.has(id) {
		// No table here since this agent started (a full pass, the
		// first among them, removes one left from before): the common
		// case costs no nftables socket.
		return false, nil
	}
	changed, err := meter.Apply(ns.Name, spec)
	p.a.metered.set(id, wanted)
	if changed {
		p.a.log.Debug("metering programmed", "router", id, "labels", len(spec.Labels))
	}
	return changed, err
}

// syncSet is a set of ids safe for concurrent use (routers are
// programmed in parallel, and scrapes read it).
type syncSet struct {
	mu sync.Mutex
	m  map[string]bool
}

func (s *syncSet) set(id string, in bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]bool{}
	}
	if in {
		s.m[id] = true
	} else {
		delete(s.m, id)
	}
}

func (s *syncSet) has(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[id]
}

func (s *syncSet) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.m))
	for id := range s.m {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// MeterCount is what one metering label counted in one router.
type MeterCount struct {
	Router, Label  string
	Packets, Bytes uint64
}

// MeteringCounts reads every metered router's counters from the kernel:
// what each label counted there since the label reached the router. A
// router whose namespace went away meanwhile is left out.
func (a *Agent) MeteringCounts() ([]MeterCount, error) {
	var out []MeterCount
	var errs []error
	for _, id := range a.metered.list() {
		ns := model.RouterNetns(a.cfg.NetnsPrefix, id)
		if !netns.Exists(ns) {
			continue
		}
		counts, err := meter.Counts(ns)
		if err != nil {
			errs = append(errs, fmt.Errorf("router %s: %w", id, err))
			continue
		}
		for _, label := range sortedKeys(counts) {
			c := counts[label]
			out = append(out, MeterCount{Router: id, Label: label, Packets: c.Packets, Bytes: c.Bytes})
		}
	}
	return out, errors.Join(errs...)
}
