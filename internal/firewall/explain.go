package firewall

import (
	"fmt"
	"strconv"
	"strings"
)

// PortChain reports whether chain is a signature's chain of the inet
// table — its ingress_s<sig> or egress_s<sig> — and which, and the tag of
// the port whose rules it judged a packet with mark by: a packet dropped
// there matched none of that port's security group rules in that
// direction.
func PortChain(chain string, mark uint32) (dir Direction, tag uint16, ok bool) {
	sig, ok := SigChain(chain)
	if !ok {
		return 0, 0, false
	}
	dir, tag = Ingress, uint16(mark&maskOut)
	if chain == egressChainName(sig) {
		dir, tag = Egress, uint16((mark&maskIn)>>16)
	}
	return dir, tag, tag != 0
}

// SigChain reports whether chain is a signature's chain of the inet table,
// and the signature's number.
func SigChain(chain string) (sig uint16, ok bool) {
	for _, prefix := range []string{"ingress_s", "egress_s"} {
		rest, found := strings.CutPrefix(chain, prefix)
		if !found {
			continue
		}
		n, err := strconv.ParseUint(rest, 10, 16)
		if err != nil || n == 0 || fmt.Sprint(n) != rest {
			return 0, false
		}
		return uint16(n), true
	}
	return 0, false
}

// InterfaceOfTag returns the port interface the kernel's firewall in the
// Firewall's namespace gives tag: the tags are assigned by Apply as ports
// come and go, so only the live table says whose a port chain is.
func (f *Firewall) InterfaceOfTag(tag uint16) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.own.Conn()
	if err != nil {
		return "", err
	}
	tags, err := f.kernelTags(c)
	if err != nil {
		return "", fmt.Errorf("read the port tags of bridge %s: %w", TableName, err)
	}
	for ifname, t := range tags {
		if t == tag {
			return ifname, nil
		}
	}
	return "", fmt.Errorf("no port has tag %d", tag)
}
