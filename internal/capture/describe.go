package capture

import "time"

// Record is a captured packet as scripts read it (nsnet capture -o json,
// one per line). Fields a packet does not have are left out.
type Record struct {
	Time      time.Time `json:"time"`
	Netns     string    `json:"netns"`
	Interface string    `json:"interface"`
	Direction string    `json:"direction"`
	Length    int       `json:"length"`
	SrcMAC    string    `json:"src_mac"`
	DstMAC    string    `json:"dst_mac"`
	EtherType uint16    `json:"ethertype"`
	Src       string    `json:"src,omitempty"`
	Dst       string    `json:"dst,omitempty"`
	Protocol  string    `json:"protocol,omitempty"`
	SrcPort   uint16    `json:"src_port,omitempty"`
	DstPort   uint16    `json:"dst_port,omitempty"`
	TCPFlags  string    `json:"tcp_flags,omitempty"`
	ICMPType  *uint8    `json:"icmp_type,omitempty"`
	ICMPCode  *uint8    `json:"icmp_code,omitempty"`
	ICMPID    uint16    `json:"icmp_id,omitempty"`
	ICMPSeq   uint16    `json:"icmp_seq,omitempty"`
	// NDTarget is the address a neighbour solicitation asks about or an
	// advertisement answers for.
	NDTarget string `json:"nd_target,omitempty"`
	Summary  string `json:"summary"`
}

// Describe makes the Record of frame f (decoded as p) seen on ifname of
// namespace netns.
func Describe(netns, ifname string, f Frame, p *Packet) Record {
	r := Record{
		Time: f.Time.UTC(), Netns: netns, Interface: ifname, Direction: f.Direction(),
		Length: max(f.Length, len(f.Data)), SrcMAC: p.SrcMAC.String(), DstMAC: p.DstMAC.String(),
		EtherType: p.EtherType, Summary: p.Summary(),
	}
	if p.EtherType == EtherTypeARP && p.ARPSender.IsValid() {
		r.Src, r.Dst, r.Protocol = p.ARPSender.String(), p.ARPTarget.String(), "arp"
	}
	if p.IsIP() {
		r.Src, r.Dst, r.Protocol = p.Src.String(), p.Dst.String(), ProtoName(p.Proto)
		switch {
		case p.Proto == ProtoTCP:
			r.SrcPort, r.DstPort, r.TCPFlags = p.SrcPort, p.DstPort, TCPFlagString(p.TCPFlags)
		case p.Proto == ProtoUDP:
			r.SrcPort, r.DstPort = p.SrcPort, p.DstPort
		case p.IsICMP():
			t, c := p.ICMPType, p.ICMPCode
			r.ICMPType, r.ICMPCode, r.ICMPID, r.ICMPSeq = &t, &c, p.ICMPID, p.ICMPSeq
			if p.ND != nil && p.ND.Target.IsValid() {
				r.NDTarget = p.ND.Target.String()
			}
		}
	}
	return r
}
