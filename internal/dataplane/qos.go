package dataplane

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// A port's bandwidth limits are token bucket filters on the two ends of
// its veth: what goes to the instance is shaped as it leaves the host end
// (the tap), what the instance sends as it leaves the instance's end. The
// Linux bridge agent polices a VM's traffic on the tap's ingress instead;
// nsnet's instances are namespaces whose end of the pair it owns, so a
// shaper there limits the same traffic without the police action (which
// kernels built without act_police lack). Both ends carry nsnet's alias,
// so their root qdisc is nsnet's: a differing one is replaced, one not
// wanted is deleted.

// tbfLatency bounds how long a packet may wait in the ingress shaper
// (Neutron's tc_lib uses 50 ms), which sizes its queue.
const tbfLatencyMs = 50

var tbfHandle = netlink.MakeHandle(1, 0)

// burstBytes is the bucket of a limit: the burst asked for, or, as
// Neutron's agents do when it is 0, 80% of a second's worth; never less
// than one full frame at the link's MTU, or no frame would ever pass.
func burstBytes(kbps, burstKbit, mtu int) uint32 {
	if burstKbit == 0 {
		burstKbit = kbps * 8 / 10
	}
	b := uint64(burstKbit) * 1000 / 8
	if min := uint64(mtu + 14); b < min {
		b = min
	}
	return uint32(min(b, 1<<31))
}

func rateBytes(kbps int) uint64 { return uint64(kbps) * 1000 / 8 }

// EnsurePortQos makes the root qdiscs of the port's tap (in host) and of
// its end ifname in the instance's namespace what spec asks for, and
// reports whether it changed anything.
func EnsurePortQos(host *Links, inst *Namespace, tap, ifname, alias string, spec QosSpec) (changed bool, err error) {
	if host.takeFresh(tap) && spec == (QosSpec{}) {
		// Created in this pass by EnsureVethPort: both ends have
		// the kernel's default root, no shaper.
		return false, nil
	}
	c1, err := ensureShaper(host, tap, alias, spec.IngressKbps, spec.IngressBurstKbit)
	if err != nil {
		return c1, err
	}
	c2, err := ensureShaper(NewLinks(inst.Handle), ifname, alias, spec.EgressKbps, spec.EgressBurstKbit)
	return c1 || c2, err
}

// ensureShaper keeps the tbf root qdisc of one end: kbps 0, none.
func ensureShaper(l *Links, name, alias string, kbps, burstKbit int) (bool, error) {
	link, err := l.Get(name)
	if err != nil {
		return false, err
	}
	if link == nil {
		return false, fmt.Errorf("link %s does not exist", name)
	}
	if !owns(link, alias) {
		return false, notOwnedLink(link)
	}
	h := l.Handle()
	root, err := l.rootQdisc(link)
	if err != nil {
		return false, fmt.Errorf("read the root qdisc of %s: %w", name, err)
	}
	if kbps == 0 {
		// The kernel's default root (noqueue on a veth) has no handle.
		if root == nil || root.Attrs().Handle == 0 {
			return false, nil
		}
		if err := h.QdiscDel(root); err != nil && !errors.Is(err, unix.ENOENT) {
			return false, fmt.Errorf("delete the shaper of %s: %w", name, err)
		}
		return true, nil
	}
	rate := rateBytes(kbps)
	burst := burstBytes(kbps, burstKbit, link.Attrs().MTU)
	want := &netlink.Tbf{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: link.Attrs().Index, Handle: tbfHandle, Parent: netlink.HANDLE_ROOT},
		Rate:       rate,
		Buffer:     netlink.Xmittime(rate, burst),
		Limit:      uint32(rate*tbfLatencyMs/1000) + burst,
	}
	if cur, ok := root.(*netlink.Tbf); ok && cur.Handle == tbfHandle && cur.Rate == want.Rate &&
		cur.Buffer == want.Buffer && cur.Limit == want.Limit {
		return false, nil
	}
	if err := h.QdiscReplace(want); err != nil {
		return false, fmt.Errorf("shape %s to %d kbit/s: %w", name, kbps, err)
	}
	return true, nil
}

// qdiscsRead counts the qdiscs rootQdisc read from the kernel: what
// reading one link's root costs, for tests.
var qdiscsRead atomic.Int64

// rootQdisc reads the root qdisc of link in l's namespace (nil: none).
// netlink's QdiscList dumps every qdisc of the namespace to keep one
// link's, and the host namespace has one per port: in a namespace it
// knows the name of (SetNamespace), it asks the kernel for that link's
// root alone. A root the kernel answers no get for (a built-in one) is
// looked for in the dump, as elsewhere.
func (l *Links) rootQdisc(link netlink.Link) (netlink.Qdisc, error) {
	l.mu.Lock()
	ns := l.nsName
	l.mu.Unlock()
	if ns == nil {
		qdiscs, err := l.h.QdiscList(link)
		if err != nil {
			return nil, err
		}
		for _, q := range qdiscs {
			if q.Attrs().Parent == netlink.HANDLE_ROOT {
				return q, nil
			}
		}
		return nil, nil
	}
	index := link.Attrs().Index
	// The kernel sends its answer to a get of a qdisc to the listeners
	// of tc's changes, and to the asker only when asked to echo it;
	// acknowledged, a get it answers with no qdisc ends rather than waits
	// for the socket's timeout.
	req := nl.NewNetlinkRequest(unix.RTM_GETQDISC, unix.NLM_F_ACK|unix.NLM_F_ECHO)
	req.AddData(&nl.TcMsg{Family: nl.FAMILY_ALL, Ifindex: int32(index), Parent: netlink.HANDLE_ROOT})
	msgs, err := l.execute(*ns, req, unix.RTM_NEWQDISC)
	if len(msgs) == 0 && (err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT)) {
		// A dump interrupted by a concurrent change may be incomplete.
		for range 5 {
			req := nl.NewNetlinkRequest(unix.RTM_GETQDISC, unix.NLM_F_DUMP)
			req.AddData(&nl.TcMsg{Family: nl.FAMILY_ALL, Ifindex: int32(index)})
			msgs, err = l.execute(*ns, req, unix.RTM_NEWQDISC)
			if !errors.Is(err, nl.ErrDumpInterrupted) {
				break
			}
		}
	}
	qdiscsRead.Add(int64(len(msgs)))
	if err != nil {
		return nil, err
	}
	return parseRootQdisc(msgs, index)
}

// parseRootQdisc finds the root qdisc of link index among msgs, as
// QdiscList decodes it: a tbf with its parameters, any other generic.
func parseRootQdisc(msgs [][]byte, index int) (netlink.Qdisc, error) {
	for _, m := range msgs {
		tc := nl.DeserializeTcMsg(m)
		if int(tc.Ifindex) != index || tc.Parent != netlink.HANDLE_ROOT {
			continue
		}
		attrs, err := nl.ParseRouteAttr(m[tc.Len():])
		if err != nil {
			return nil, err
		}
		base := netlink.QdiscAttrs{LinkIndex: index, Handle: tc.Handle, Parent: tc.Parent, Refcnt: tc.Info}
		var kind string
		var options []byte
		for _, a := range attrs {
			switch a.Attr.Type {
			case nl.TCA_KIND:
				kind = unix.ByteSliceToString(a.Value)
			case nl.TCA_OPTIONS:
				options = a.Value
			}
		}
		if kind != "tbf" {
			return &netlink.GenericQdisc{QdiscAttrs: base, QdiscType: kind}, nil
		}
		tbf := &netlink.Tbf{QdiscAttrs: base}
		params, err := nl.ParseRouteAttr(options)
		if err != nil {
			return nil, err
		}
		for _, p := range params {
			switch {
			case p.Attr.Type == nl.TCA_TBF_PARMS && len(p.Value) >= nl.SizeofTcTbfQopt:
				opt := nl.DeserializeTcTbfQopt(p.Value)
				tbf.Rate, tbf.Peakrate = uint64(opt.Rate.Rate), uint64(opt.Peakrate.Rate)
				tbf.Limit, tbf.Buffer = opt.Limit, opt.Buffer
			case p.Attr.Type == nl.TCA_TBF_RATE64 && len(p.Value) >= 8:
				tbf.Rate = nl.NativeEndian().Uint64(p.Value)
			case p.Attr.Type == nl.TCA_TBF_PRATE64 && len(p.Value) >= 8:
				tbf.Peakrate = nl.NativeEndian().Uint64(p.Value)
			}
		}
		return tbf, nil
	}
	return nil, nil
}
