package trace

import (
	"fmt"

	"github.com/nsnet/nsnet/internal/firewall"
	"github.com/nsnet/nsnet/internal/model"
)

// nameSecurityGroups names, in each event that a port's security group
// chain decided, the port and its groups. The chain is the port's
// signature's (shared by the ports with the same rules); the packet's
// mark carries the port's tag, which the firewall assigns as ports come
// and go, so the tag is read back from the live table (and so a port
// deleted since is not named).
func (m *Model) nameSecurityGroups(events []NFTEvent) {
	for i := range events {
		ev := &events[i]
		if ev.Table != firewall.TableName || ev.Family != "inet" {
			continue
		}
		dir, tag, ok := firewall.PortChain(ev.Chain, ev.Mark)
		if !ok {
			continue
		}
		ifname, err := interfaceOfTag(ev.Netns, tag)
		if err != nil {
			continue
		}
		port := m.portByTap(ifname)
		if port == nil {
			continue
		}
		ev.Port = port.Name
		if ev.Port == "" {
			ev.Port = port.ID
		}
		ev.Direction = "ingress"
		if dir == firewall.Egress {
			ev.Direction = "egress"
		}
		for _, id := range port.SecurityGroups {
			ev.SecurityGroups = append(ev.SecurityGroups, m.securityGroupName(id))
		}
	}
}

func interfaceOfTag(namespace string, tag uint16) (string, error) {
	fw, err := firewall.Open(namespace, nil)
	if err != nil {
		return "", err
	}
	defer fw.Close()
	return fw.InterfaceOfTag(tag)
}

func (m *Model) portByTap(ifname string) *model.Port {
	for i, p := range m.Ports {
		if model.TapName(p.ID) == ifname {
			return &m.Ports[i]
		}
	}
	return nil
}

// securityGroupName is "name (id)", or the id of a group the caller
// cannot see.
func (m *Model) securityGroupName(id string) string {
	for _, g := range m.SecurityGroups {
		if g.ID == id {
			return fmt.Sprintf("%s (%s)", g.Name, g.ID)
		}
	}
	return id
}
