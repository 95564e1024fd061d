package trace

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/capture"
	"github.com/nsnet/nsnet/internal/netns"
)

// nftables tracing: in every namespace on the path, a table of the
// trace's own (TraceTablePrefix + random) whose chains hook in before
// everything else (priority -350: before raw, conntrack and NAT) and set
// `meta nftrace` on the probe and on its answers. The kernel then reports
// every rule and policy verdict those packets meet in any table of that
// namespace as an NFT_MSG_TRACE message to the NFNLGRP_NFTRACE group of
// the namespace's netfilter netlink, which a socket opened in the namespace
// listens to. The mark does not survive leaving a namespace (the kernel
// clears it when a packet crosses into another), hence one table per
// namespace. The tables go when the trace ends.
//
// google/nftables has no trace API, so the messages are read with
// mdlayher/netlink and decoded here.

// TraceTablePrefix starts the name of the tables a trace adds.
const TraceTablePrefix = "nsnet_trace"

// Netfilter netlink constants that golang.org/x/sys does not define.
const (
	nfnlSubsysNFTables = 10
	nfnlGroupNFTrace   = 9
	traceMsgType       = nfnlSubsysNFTables<<8 | unix.NFT_MSG_TRACE

	nfDrop   = 0 // NF_DROP
	nfAccept = 1 // NF_ACCEPT
)

// NFTEvent is one nftables trace event about the probe or its answer: a
// rule (or a chain's policy) that gave it a final verdict, in a namespace.
type NFTEvent struct {
	Netns   string `json:"netns"`
	Node    string `json:"node"`
	Family  string `json:"family"`
	Table   string `json:"table"`
	Chain   string `json:"chain"`
	Handle  uint64 `json:"handle,omitempty"`
	Comment string `json:"comment,omitempty"`
	Verdict string `json:"verdict"`
	Policy  bool   `json:"policy,omitempty"` // the chain's policy decided, not a rule
	// Mark is the packet's mark when the verdict was given: the
	// firewall's chains are a signature's, shared by ports, and the mark
	// says whose tag the packet carried.
	Mark uint32 `json:"-"`
	// Port and SecurityGroups are set when the verdict is a port's
	// security groups': its name (or id) and direction, and its groups as
	// "name (id)".
	Port           string   `json:"port,omitempty"`
	Direction      string   `json:"direction,omitempty"`
	SecurityGroups []string `json:"security_groups,omitempty"`
}

func (e NFTEvent) String() string {
	what := fmt.Sprintf("rule handle %d", e.Handle)
	if e.Policy {
		what = "the policy"
	}
	s := fmt.Sprintf("%s by %s of chain %s in table %s %s, %s", e.Verdict, what, e.Chain, e.Family, e.Table, e.Node)
	if e.Comment != "" {
		s += fmt.Sprintf(" (comment %q)", e.Comment)
	}
	if e.Port != "" {
		s += fmt.Sprintf(": port %s's security groups (%s) have no %s rule that admits it",
			e.Port, strings.Join(e.SecurityGroups, ", "), e.Direction)
	}
	return s
}

// nfTracer is the tracing of one trace run, in every namespace on the
// path.
type nfTracer struct {
	spaces   []*tracedNetns
	wg       sync.WaitGroup
	stopOnce sync.Once
	events   []NFTEvent
}

type tracedNetns struct {
	name, node string
	nft        *nftables.Conn
	monitor    *netlink.Conn
	tables     []*nftables.Table
	mu         sync.Mutex
	events     []NFTEvent
}

// startNFTrace marks the probe for tracing in every namespace of plan and
// starts listening. On error nothing is left behind.
func startNFTrace(plan *Plan, hostNetns string, probe *Probe) (*nfTracer, error) {
	var tag [4]byte
	rand.Read(tag[:])
	name := TraceTablePrefix + "_" + hex.EncodeToString(tag[:])
	t := &nfTracer{}
	seen := map[string]bool{}
	// The interfaces of the path in each namespace that bridges it: the
	// host's, and another host's across a VXLAN tunnel.
	bridging := map[string][]string{}
	for _, h := range plan.Hops {
		if h.Netns == hostNetns || h.Kind == KindUnderlay || h.Kind == KindBridge {
			bridging[h.Netns] = append(bridging[h.Netns], h.Interface)
		}
	}
	for _, h := range plan.Hops {
		if seen[h.Netns] {
			continue
		}
		seen[h.Netns] = true
		node, bridgePorts := h.Node, bridging[h.Netns]
		switch {
		case h.Netns == hostNetns:
			node = "the host"
		case bridgePorts != nil:
			node = "the host " + h.Netns
		}
		tn, err := traceNetns(h.Netns, node, name, probe, bridgePorts)
		if err != nil {
			t.stop()
			return nil, err
		}
		t.spaces = append(t.spaces, tn)
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			tn.listen()
		}()
	}
	return t, nil
}

// traceNetns marks the probe in namespace ns: in family inet, and when
// bridgePorts (the namespace's interfaces on the path) are given, also
// where bridged frames meet nftables: family bridge, and the netdev
// ingress hook of each of those interfaces, which runs before the bridge.
func traceNetns(ns, node, table string, probe *Probe, bridgePorts []string) (*tracedNetns, error) {
	tn := &tracedNetns{name: ns, node: node}
	var ports []string // those of bridgePorts that exist
	err := netns.DoNamed(ns, func() error {
		for _, name := range bridgePorts {
			if _, err := net.InterfaceByName(name); err == nil {
				ports = append(ports, name)
			}
		}
		var err error
		if tn.nft, err = nftables.New(nftables.AsLasting()); err != nil {
			return err
		}
		if tn.monitor, err = netlink.Dial(unix.NETLINK_NETFILTER, nil); err != nil {
			tn.nft.CloseLasting()
			return err
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("netfilter sockets in %s: %w", nsLabel(ns), err)
	}
	if err := tn.monitor.JoinGroup(nfnlGroupNFTrace); err != nil {
		tn.close()
		return nil, fmt.Errorf("listen to nftables trace events in %s: %w", nsLabel(ns), err)
	}
	// The chains that mark: family inet on prerouting and output (what
	// the namespace sends itself) always; with bridge ports, family
	// bridge on prerouting (bridged frames never reach the inet hooks)
	// and netdev on each port's ingress.
	type hookAt struct {
		fam    nftables.TableFamily
		hook   *nftables.ChainHook
		device string
	}
	hooks := []hookAt{{nftables.TableFamilyINet, nftables.ChainHookPrerouting, ""}, {nftables.TableFamilyINet, nftables.ChainHookOutput, ""}}
	if len(bridgePorts) > 0 {
		hooks = append(hooks, hookAt{nftables.TableFamilyBridge, nftables.ChainHookPrerouting, ""})
		for _, p := range ports {
			hooks = append(hooks, hookAt{nftables.TableFamilyNetdev, nftables.ChainHookIngress, p})
		}
	}
	tables := map[nftables.TableFamily]*nftables.Table{}
	for i, h := range hooks {
		tbl := tables[h.fam]
		if tbl == nil {
			tbl = tn.nft.AddTable(&nftables.Table{Name: table, Family: h.fam})
			tables[h.fam] = tbl
			tn.tables = append(tn.tables, tbl)
		}
		chain := tn.nft.AddChain(&nftables.Chain{
			Name: fmt.Sprintf("mark%d", i), Table: tbl, Type: nftables.ChainTypeFilter,
			Hooknum: h.hook, Priority: nftables.ChainPriorityRef(-350), Device: h.device,
		})
		for _, match := range probeMatches(probe) {
			tn.nft.AddRule(&nftables.Rule{Table: tbl, Chain: chain, Exprs: append(match,
				&expr.Immediate{Register: 1, Data: []byte{1}},
				&expr.Meta{Key: expr.MetaKeyNFTRACE, SourceRegister: true, Register: 1})})
		}
	}
	if err := tn.nft.Flush(); err != nil {
		tn.close()
		return nil, fmt.Errorf("add trace table in %s: %w", nsLabel(ns), err)
	}
	return tn, nil
}

// probeMatches are the nftables matches of the probe and its answers:
// the random part of the marker in the payload (ICMP, ICMPv6, UDP: 8
// bytes of header, then "nsnet-trace-", then it), or the SYN's sequence
// number and its acknowledgement. meta l4proto and the transport header
// base are the transport's past any IPv6 extension headers, in every
// family (inet, bridge and netdev parse IPv6 too), so the same rules mark
// IPv6 probes.
func probeMatches(p *Probe) [][]expr.Any {
	l4 := func(proto uint8) []expr.Any {
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		}
	}
	field := func(offset, length uint32, value []byte) []expr.Any {
		return []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: offset, Len: length},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: value},
		}
	}
	if p.Proto == capture.ProtoTCP {
		seq, ack := make([]byte, 4), make([]byte, 4)
		binary.BigEndian.PutUint32(seq, p.Seq)
		binary.BigEndian.PutUint32(ack, p.Seq+1)
		return [][]expr.Any{
			append(l4(capture.ProtoTCP), field(4, 4, seq)...),
			append(l4(capture.ProtoTCP), field(8, 4, ack)...),
		}
	}
	random := []byte(p.Marker[len(markerPrefix):])
	return [][]expr.Any{append(l4(p.Proto), field(8+uint32(len(markerPrefix)), uint32(len(random)), random)...)}
}

// listen collects trace events until the monitor is closed.
func (tn *tracedNetns) listen() {
	for {
		msgs, err := tn.monitor.Receive()
		if err != nil {
			return
		}
		for _, m := range msgs {
			if m.Header.Type != traceMsgType || len(m.Data) < 4 {
				continue
			}
			ev, ok := decodeTrace(m.Data[0], m.Data[4:])
			if !ok || len(ev.Table) >= len(TraceTablePrefix) && ev.Table[:len(TraceTablePrefix)] == TraceTablePrefix {
				continue
			}
			ev.Netns, ev.Node = tn.name, tn.node
			tn.mu.Lock()
			tn.events = append(tn.events, ev)
			tn.mu.Unlock()
		}
	}
}

// decodeTrace reads an NFT_MSG_TRACE message; it keeps final verdicts
// only (accept, drop), not the jumps and continues on the way to them.
func decodeTrace(family byte, data []byte) (NFTEvent, bool) {
	ad, err := netlink.NewAttributeDecoder(data)
	if err != nil {
		return NFTEvent{}, false
	}
	ev := NFTEvent{Family: familyName(family)}
	var typ uint32
	verdict := int32(-1) // NFT_CONTINUE
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_TRACE_TABLE:
			ev.Table = ad.String()
		case unix.NFTA_TRACE_CHAIN:
			ev.Chain = ad.String()
		case unix.NFTA_TRACE_RULE_HANDLE:
			ev.Handle = binary.BigEndian.Uint64(ad.Bytes())
		case unix.NFTA_TRACE_TYPE:
			typ = binary.BigEndian.Uint32(ad.Bytes())
		case unix.NFTA_TRACE_MARK:
			ev.Mark = binary.BigEndian.Uint32(ad.Bytes())
		case unix.NFTA_TRACE_POLICY:
			verdict = int32(binary.BigEndian.Uint32(ad.Bytes()))
		case unix.NFTA_TRACE_VERDICT:
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				for nad.Next() {
					if nad.Type() == unix.NFTA_VERDICT_CODE {
						verdict = int32(binary.BigEndian.Uint32(nad.Bytes()))
					}
				}
				return nil
			})
		}
	}
	if ad.Err() != nil {
		return NFTEvent{}, false
	}
	switch typ {
	case unix.NFT_TRACETYPE_POLICY:
		ev.Policy = true
	case unix.NFT_TRACETYPE_RULE:
	default:
		return NFTEvent{}, false
	}
	switch verdict {
	case nfDrop:
		ev.Verdict = "drop"
	case nfAccept:
		ev.Verdict = "accept"
	default:
		return NFTEvent{}, false
	}
	return ev, true
}

// families names the nftables families as nft does.
var families = map[nftables.TableFamily]string{
	nftables.TableFamilyINet: "inet", nftables.TableFamilyIPv4: "ip", nftables.TableFamilyIPv6: "ip6", nftables.TableFamilyBridge: "bridge",
	nftables.TableFamilyNetdev: "netdev", nftables.TableFamilyARP: "arp",
}

func familyName(f byte) string {
	if name, ok := families[nftables.TableFamily(f)]; ok {
		return name
	}
	return fmt.Sprintf("family-%d", f)
}

// stop ends tracing: it stops listening, looks up the comments of the
// rules that gave verdicts, removes the trace tables and closes the
// sockets. It returns the events, in namespace order. It may be called
// more than once.
func (t *nfTracer) stop() []NFTEvent {
	t.stopOnce.Do(func() {
		for _, tn := range t.spaces {
			tn.monitor.Close()
		}
		t.wg.Wait()
		for _, tn := range t.spaces {
			tn.commentRules()
			t.events = append(t.events, tn.events...)
			for _, tbl := range tn.tables {
				tn.nft.DelTable(tbl)
			}
			tn.nft.Flush()
			tn.nft.CloseLasting()
		}
	})
	return t.events
}

// commentRules fills in the comment of each event's rule, from the rule's
// userdata, as nft shows it.
func (tn *tracedNetns) commentRules() {
	for i := range tn.events {
		ev := &tn.events[i]
		if ev.Policy {
			continue
		}
		var fam nftables.TableFamily
		for f, name := range families {
			if name == ev.Family {
				fam = f
			}
		}
		rules, err := tn.nft.GetRules(&nftables.Table{Name: ev.Table, Family: fam}, &nftables.Chain{Name: ev.Chain})
		if err != nil {
			continue
		}
		for _, r := range rules {
			if r.Handle == ev.Handle {
				ev.Comment, _ = userdata.GetString(r.UserData, userdata.TypeComment)
			}
		}
	}
}

func (tn *tracedNetns) close() error {
	return errors.Join(tn.monitor.Close(), tn.nft.CloseLasting())
}
