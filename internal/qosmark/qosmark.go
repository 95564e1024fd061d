// Package qosmark owns the inet nsnet_qos table of an instance's
// namespace: the DSCP marking of what the instance sends out of its ports
// (Neutron's dscp_marking QoS rule). The instance's end of each port's
// veth is nsnet's, so the mark is set there, on the way out, for IPv4 and
// IPv6 alike, before the packet reaches the bridge and whatever is beyond.
//
// It must not touch any other table, nor any namespace but the one it is
// given; the table is small and is rewritten whole, in one atomic batch,
// whenever what the kernel holds differs from what is wanted.
package qosmark

import (
	"fmt"
	"maps"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/nfsock"
)

// Table is the table's name.
const Table = "nsnet_qos"

var table = &nftables.Table{Family: nftables.TableFamilyINet, Name: Table}

// chain marks on postrouting, the last hook a packet the namespace sends
// passes, at mangle priority (as iptables' DSCP target in mangle does).
func chain(marks map[string]uint8) nfsock.ChainDef {
	def := nfsock.ChainDef{Name: "postrouting", Hook: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityMangle}
	for _, ifname := range slices.Sorted(maps.Keys(marks)) {
		dscp := marks[ifname]
		def.Rules = append(def.Rules, markIPv4(ifname, dscp), markIPv6(ifname, dscp))
		def.Comments = append(def.Comments, fmt.Sprintf("%s: ip dscp %d", ifname, dscp), fmt.Sprintf("%s: ip6 dscp %d", ifname, dscp))
	}
	return def
}

func match(ifname string, proto byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: nfsock.IfName(ifname)},
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
	}
}

// markIPv4 sets the top six bits of the TOS byte, keeping ECN, and fixes
// the header checksum. It rewrites the first 16-bit word (version and
// header length unchanged with it): the kernel updates a checksum
// incrementally by words, and a lone odd byte would be summed as the high
// half of one, leaving a bad checksum.
func markIPv4(ifname string, dscp uint8) []expr.Any {
	return append(match(ifname, unix.NFPROTO_IPV4),
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 0, Len: 2},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 2, Mask: []byte{0xff, 0x03}, Xor: []byte{0, dscp << 2}},
		&expr.Payload{OperationType: expr.PayloadWrite, SourceRegister: 1, Base: expr.PayloadBaseNetworkHeader,
			Offset: 0, Len: 2, CsumType: expr.CsumTypeInet, CsumOffset: 10},
	)
}

// markIPv6 sets the DSCP bits of the traffic class, which straddles the
// first two bytes (version 4 bits, DSCP 6, ECN 2, flow label 4).
func markIPv6(ifname string, dscp uint8) []expr.Any {
	v := uint16(dscp) << 6
	return append(match(ifname, unix.NFPROTO_IPV6),
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 0, Len: 2},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 2, Mask: []byte{0xf0, 0x3f}, Xor: []byte{byte(v >> 8), byte(v)}},
		&expr.Payload{OperationType: expr.PayloadWrite, SourceRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 0, Len: 2},
	)
}

// Ensure makes namespace's nsnet_qos table mark what leaves each
// interface of marks with its DSCP value; with no marks, the table goes.
// It reports whether it changed anything.
func Ensure(namespace string, marks map[string]uint8) (changed bool, err error) {
	c, err := nfsock.Dial(namespace)
	if err != nil {
		return false, err
	}
	defer c.Close()
	live, err := c.Read(table, nil)
	if err != nil {
		return false, fmt.Errorf("read table %s: %w", Table, err)
	}
	if len(marks) == 0 {
		if live.Table == nil {
			return false, nil
		}
		c.DelTable(table)
		if err := c.Flush(); err != nil {
			return false, fmt.Errorf("delete table %s: %w", Table, err)
		}
		return true, nil
	}
	def := chain(marks)
	if live.Table != nil && len(live.Problems(nil, []nfsock.ChainDef{def})) == 0 && live.Current(def) {
		return false, nil
	}
	if live.Table != nil {
		c.DelTable(table)
	}
	if err := c.Create(table, nil, []nfsock.ChainDef{def}); err != nil {
		return false, err
	}
	if err := c.Flush(); err != nil {
		return false, fmt.Errorf("write table %s: %w", Table, err)
	}
	return true, nil
}
