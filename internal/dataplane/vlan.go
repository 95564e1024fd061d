package dataplane

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// tcName is what nsnet names its BPF filters: the alias of their
// subport, then what the program was made for (the VLAN id and the
// ifindex it sends to), so that a filter for another link or VLAN id is
// seen and replaced.
func tcName(alias string, vid, to int) string {
	return alias + ":" + strconv.Itoa(vid) + ":" + strconv.Itoa(to)
}

// EnsureVLAN makes spec's subport exist as spec says: the veth pair, the
// ingress qdiscs of Peer and Parent, and the two filters.
func EnsureVLAN(l *Links, spec VLANSpec) (changed bool, err error) {
	parent, err := l.Get(spec.Parent)
	if err != nil {
		return false, err
	}
	if parent == nil {
		return false, fmt.Errorf("parent link %s does not exist", spec.Parent)
	}
	br, err := l.Get(spec.Bridge)
	if err != nil {
		return false, err
	}
	if br == nil || br.Type() != "bridge" {
		return false, fmt.Errorf("bridge %s does not exist", spec.Bridge)
	}
	end, err := l.Get(spec.Name)
	var peer netlink.Link
	if err == nil {
		peer, err = l.Get(spec.Peer)
	}
	if err != nil {
		return false, err
	}
	for _, link := range []netlink.Link{end, peer} {
		if link != nil && !owns(link, spec.Alias) {
			return false, notOwnedLink(link)
		}
	}
	if end == nil || peer == nil || !arePeers(end, peer) {
		for _, name := range []string{spec.Name, spec.Peer} {
			if _, err := DeleteLink(l, name, spec.Alias); err != nil {
				return false, err
			}
		}
		if err := createSubportPair(l, spec, br.Attrs().Index); err != nil {
			return true, err
		}
		changed = true
		if end, err = l.Get(spec.Name); err == nil {
			peer, err = l.Get(spec.Peer)
		}
		if err == nil && (end == nil || peer == nil) {
			err = fmt.Errorf("veth %s vanished after creation", spec.Name)
		}
		if err != nil {
			return true, err
		}
	}
	// Read before setLinkAttrs, which makes the dump's answer stale.
	c, err := l.keepIPv6Off(spec.Name, spec.Peer)
	changed = changed || c
	if err != nil {
		return changed, fmt.Errorf("subport %s: %w", spec.Alias, err)
	}
	c, err = setLinkAttrs(l, end, linkState{Alias: spec.Alias, MTU: spec.MTU, Master: br.Attrs().Index, Up: spec.Up})
	changed = changed || c
	if err != nil {
		return changed, err
	}
	c, err = setLinkAttrs(l, peer, linkState{Alias: spec.Alias, MTU: spec.MTU, Up: spec.Up})
	changed = changed || c
	if err != nil {
		return changed, err
	}
	h := l.h
	parentIdx, peerIdx := parent.Attrs().Index, peer.Attrs().Index
	for _, f := range []struct {
		link, prio, to int
		prog           []bpfInsn
	}{
		// On the tap, one filter per VLAN id, at that priority.
		{parentIdx, spec.VID, peerIdx, untagProgram(spec.VID, peerIdx)},
		{peerIdx, 1, parentIdx, tagProgram(spec.VID, parentIdx)},
	} {
		c, err := ensureFilter(h, f.link, f.prio, tcName(spec.Alias, spec.VID, f.to), f.prog)
		changed = changed || c
		if err != nil {
			return changed, err
		}
	}
	return changed, nil
}

// DeleteVLAN deletes spec's subport: its filter on the parent's tap (when
// the tap is still there) and its veth pair, with which the rest goes.
func DeleteVLAN(l *Links, spec VLANSpec) (deleted bool, err error) {
	parent, err := l.Get(spec.Parent)
	if err != nil {
		return false, err
	}
	if parent != nil {
		filters, err := l.h.FilterList(parent, netlink.HANDLE_MIN_INGRESS)
		if err != nil && !isNotFound(err) && !errors.Is(err, unix.EINVAL) {
			return false, fmt.Errorf("list filters of %s: %w", spec.Parent, err)
		}
		for _, f := range filters {
			if bf, ok := f.(*netlink.BpfFilter); ok && strings.HasPrefix(bf.Name, spec.Alias+":") {
				if err := l.h.FilterDel(bf); err != nil && !isNotFound(err) {
					return deleted, fmt.Errorf("delete filter %s of %s: %w", bf.Name, spec.Parent, err)
				}
				deleted = true
			}
		}
	}
	d, err := DeleteLink(l, spec.Name, spec.Alias)
	deleted = deleted || d
	if err != nil {
		return deleted, err
	}
	d, err = DeleteLink(l, spec.Peer, spec.Alias)
	return deleted || d, err
}

func createSubportPair(l *Links, spec VLANSpec, bridgeIndex int) error {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = spec.Name
	attrs.MTU = spec.MTU
	attrs.HardwareAddr = birthMAC(spec.Alias)
	attrs.MasterIndex = bridgeIndex
	oneQueueEachWay(&attrs)
	// Both ends down until their IPv6 is off (see createPair): neither is
	// ever addressed. EnsureVLAN brings them up.
	veth := &netlink.Veth{LinkAttrs: attrs, PeerName: spec.Peer, PeerTxQLen: -1}
	defer l.forget(spec.Name)
	defer l.forget(spec.Peer)
	if err := l.h.LinkAdd(veth); err != nil {
		if veth.Index != 0 {
			l.h.LinkDel(veth)
		}
		return fmt.Errorf("create veth %s (peer %s): %w", spec.Name, spec.Peer, err)
	}
	for _, name := range []string{spec.Name, spec.Peer} {
		link, err := l.h.LinkByName(name)
		if err == nil {
			err = l.h.LinkSetAlias(link, spec.Alias)
		}
		if err != nil {
			return fmt.Errorf("label %s: %w", name, err)
		}
	}
	if _, err := l.disableIPv6(spec.Name, spec.Peer); err != nil {
		return fmt.Errorf("subport %s: %w", spec.Alias, err)
	}
	return nil
}

// ensureFilter makes link's ingress have the BPF filter called name at
// prio, running prog; one at prio called otherwise is replaced.
func ensureFilter(h *netlink.Handle, link, prio int, name string, prog []bpfInsn) (changed bool, err error) {
	l, err := h.LinkByIndex(link)
	if err != nil {
		return false, fmt.Errorf("link %d: %w", link, err)
	}
	qdiscs, err := h.QdiscList(l)
	if err != nil {
		return false, fmt.Errorf("list qdiscs of %s: %w", l.Attrs().Name, err)
	}
	hasIngress := false
	for _, q := range qdiscs {
		if q.Attrs().Parent == netlink.HANDLE_INGRESS {
			hasIngress = true
		}
	}
	if !hasIngress {
		q := &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: link, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_INGRESS}}
		if err := h.QdiscAdd(q); err != nil {
			return false, fmt.Errorf("add ingress qdisc to %s: %w", l.Attrs().Name, err)
		}
		changed = true
	}
	filters, err := h.FilterList(l, netlink.HANDLE_MIN_INGRESS)
	if err != nil {
		return changed, fmt.Errorf("list filters of %s: %w", l.Attrs().Name, err)
	}
	for _, f := range filters {
		if f.Attrs().Priority != uint16(prio) {
			continue
		}
		if bf, ok := f.(*netlink.BpfFilter); ok && bf.Name == name && bf.DirectAction {
			return changed, nil
		}
		if err := h.FilterDel(f); err != nil && !isNotFound(err) {
			return changed, fmt.Errorf("replace filter %d of %s: %w", prio, l.Attrs().Name, err)
		}
		changed = true
	}
	fd, err := loadSchedCls(prog)
	if err != nil {
		return changed, err
	}
	defer unix.Close(fd)
	f := &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{LinkIndex: link, Parent: netlink.HANDLE_MIN_INGRESS, Priority: uint16(prio),
			Protocol: unix.ETH_P_ALL, Handle: 1},
		Fd: fd, Name: name, DirectAction: true,
	}
	if err := h.FilterAdd(f); err != nil {
		return true, fmt.Errorf("add filter %s to %s: %w", name, l.Attrs().Name, err)
	}
	return true, nil
}

// bpfInsn is one eBPF instruction (struct bpf_insn).
type bpfInsn struct {
	Code uint8
	Regs uint8 // dst in the low nibble, src in the high one
	Off  int16
	Imm  int32
}

const (
	opMov64Imm = 0xb7 // BPF_ALU64 | BPF_MOV | BPF_K
	opLdxW     = 0x61 // BPF_LDX | BPF_MEM | BPF_W
	opAnd64Imm = 0x57 // BPF_ALU64 | BPF_AND | BPF_K
	opJeqImm   = 0x15 // BPF_JMP | BPF_JEQ | BPF_K
	opJneImm   = 0x55 // BPF_JMP | BPF_JNE | BPF_K
	opCall     = 0x85 // BPF_JMP | BPF_CALL
	opExit     = 0x95 // BPF_JMP | BPF_EXIT

	helperSkbVlanPush = 18
	helperSkbVlanPop  = 19
	helperRedirect    = 23

	// Offsets in struct __sk_buff.
	skbVlanPresent = 20
	skbVlanTCI     = 24

	tcActUnspec = -1 // go on with the next filter, and the stack
)

func insn(code, dst, src uint8, off int16, imm int32) bpfInsn {
	return bpfInsn{Code: code, Regs: dst | src<<4, Off: off, Imm: imm}
}

// untagProgram, on the parent's tap: a frame tagged vid loses its tag and
// leaves by link to (the subport's veth); the rest goes on.
func untagProgram(vid, to int) []bpfInsn {
	return []bpfInsn{
		insn(opLdxW, 2, 1, skbVlanPresent, 0), // r2 = skb->vlan_present
		insn(opJeqImm, 2, 0, 8, 0),            // untagged: pass
		insn(opLdxW, 2, 1, skbVlanTCI, 0),     // r2 = skb->vlan_tci
		insn(opAnd64Imm, 2, 0, 0, 0x0fff),     // its VLAN id
		insn(opJneImm, 2, 0, 5, int32(vid)),   // another subport's: pass
		insn(opCall, 0, 0, 0, helperSkbVlanPop),
		insn(opMov64Imm, 1, 0, 0, int32(to)),
		insn(opMov64Imm, 2, 0, 0, 0), // to its egress
		insn(opCall, 0, 0, 0, helperRedirect),
		insn(opExit, 0, 0, 0, 0),
		insn(opMov64Imm, 0, 0, 0, tcActUnspec), // pass:
		insn(opExit, 0, 0, 0, 0),
	}
}

// tagProgram, on the subport's free veth end: every frame is tagged vid
// and leaves by link to (the parent's tap), towards the instance.
func tagProgram(vid, to int) []bpfInsn {
	var proto [2]byte
	binary.BigEndian.PutUint16(proto[:], unix.ETH_P_8021Q) // the helper wants it in network order
	return []bpfInsn{
		insn(opMov64Imm, 2, 0, 0, int32(binary.NativeEndian.Uint16(proto[:]))),
		insn(opMov64Imm, 3, 0, 0, int32(vid)),
		insn(opCall, 0, 0, 0, helperSkbVlanPush),
		insn(opMov64Imm, 1, 0, 0, int32(to)),
		insn(opMov64Imm, 2, 0, 0, 0),
		insn(opCall, 0, 0, 0, helperRedirect),
		insn(opExit, 0, 0, 0, 0),
	}
}

// progLoadAttr is the head of union bpf_attr for BPF_PROG_LOAD.
type progLoadAttr struct {
	ProgType    uint32
	InsnCnt     uint32
	Insns       uint64
	License     uint64
	LogLevel    uint32
	LogSize     uint32
	LogBuf      uint64
	KernVersion uint32
	ProgFlags   uint32
	ProgName    [16]byte
}

// loadSchedCls loads prog as a tc classifier program and returns its fd.
func loadSchedCls(prog []bpfInsn) (int, error) {
	license := []byte("GPL\x00")
	logBuf := make([]byte, 4096)
	attr := progLoadAttr{
		ProgType: unix.BPF_PROG_TYPE_SCHED_CLS,
		InsnCnt:  uint32(len(prog)),
		Insns:    uint64(uintptr(unsafe.Pointer(&prog[0]))),
		License:  uint64(uintptr(unsafe.Pointer(&license[0]))),
		LogLevel: 1,
		LogSize:  uint32(len(logBuf)),
		LogBuf:   uint64(uintptr(unsafe.Pointer(&logBuf[0]))),
	}
	copy(attr.ProgName[:], "nsnet_subport")
	fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_LOAD, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	runtime.KeepAlive(prog)
	runtime.KeepAlive(license)
	if errno != 0 {
		log := strings.TrimRight(string(logBuf), "\x00")
		return -1, fmt.Errorf("load subport BPF program: %w: %s", errno, log)
	}
	return int(fd), nil
}

// SweepSubportFilters deletes the subport filters on l's links that
// wanted does not want (given the link's name and the filter's subport
// alias): those of subports that went while nothing was there to delete
// them. Only links with an ingress qdisc are looked at: one dump of the
// qdiscs, then the filters of those few.
func SweepSubportFilters(l *Links, wanted func(link, alias string) bool) (deleted bool, err error) {
	qdiscs, err := l.h.QdiscList(nil)
	if err != nil {
		return false, fmt.Errorf("list qdiscs: %w", err)
	}
	var errs []error
	for _, q := range qdiscs {
		if q.Attrs().Parent != netlink.HANDLE_INGRESS {
			continue
		}
		link, err := l.h.LinkByIndex(q.Attrs().LinkIndex)
		if err != nil {
			continue // gone meanwhile
		}
		filters, err := l.h.FilterList(link, netlink.HANDLE_MIN_INGRESS)
		if err != nil {
			errs = append(errs, fmt.Errorf("list filters of %s: %w", link.Attrs().Name, err))
			continue
		}
		for _, f := range filters {
			bf, ok := f.(*netlink.BpfFilter)
			if !ok || !strings.HasPrefix(bf.Name, aliasPrefix+"subport:") {
				continue
			}
			alias := bf.Name[:strings.LastIndex(bf.Name[:strings.LastIndex(bf.Name, ":")], ":")]
			if wanted(link.Attrs().Name, alias) {
				continue
			}
			if err := l.h.FilterDel(bf); err != nil && !isNotFound(err) {
				errs = append(errs, fmt.Errorf("delete filter %s of %s: %w", bf.Name, link.Attrs().Name, err))
				continue
			}
			deleted = true
		}
	}
	return deleted, errors.Join(errs...)
}
