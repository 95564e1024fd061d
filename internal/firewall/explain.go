package firewall

import (
	"fmt"
	"strconv"
	"strings"
)

// PortChain reports whether chain is one port's chain of the inet table —
// its ingress_<tag> or egress_<tag> — and which: a packet dropped there
// matched none of that port's security group rules in that direction.
func PortChain(chain string) (dir Direction, tag uint16, ok bool) {
	for _, c := range []struct {
		prefix string
		dir    Direction
	}{{"ingress_", Ingress}, {"egress_", Egress}} {
		rest, found := strings.CutPrefix(chain, c.prefix)
		if !found {
			continue
		}
		n, err := strconv.ParseUint(rest, 10, 16)
		if err != nil || n == 0 {
			return 0, 0, false
		}
		return c.dir, uint16(n), true
	}
	return 0, 0, false
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
