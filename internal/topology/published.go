package topology

// This file holds the host's published ports (host NAT, docs/NAT.md): their
// file form, validation and planning.

import (
	"fmt"
	"strconv"

	"github.com/nsnet/nsnet/internal/client"
	"github.com/nsnet/nsnet/internal/model"
)

// PublishedPort publishes one host port to a port of an address on a
// network whose gateway is the host (host_gateway: true). It is known by
// its protocol and host port.
type PublishedPort struct {
	Protocol     string `yaml:"protocol"`
	HostPort     int    `yaml:"host_port"`
	InternalPort int    `yaml:"internal_port"`
	// Port names the port published to; InternalIPAddress picks one of
	// its addresses (default: its first IPv4 one), or, without Port, is
	// the address published to.
	Port              string `yaml:"port"`
	InternalIPAddress string `yaml:"internal_ip_address"`
	Line              int    `yaml:"-"`
}

// key names a published port in plans: "tcp/8080".
func (pp PublishedPort) key() string { return publishedKey(pp.Protocol, pp.HostPort) }

func publishedKey(protocol string, port int) string { return fmt.Sprintf("%s/%d", protocol, port) }

func validatePublished(f *File, errs *posErrors) {
	keys := map[string]int{}
	for _, pp := range f.PublishedPorts {
		at := func(format string, args ...any) {
			errs.add(pp.Line, "published port %s: %s", pp.key(), fmt.Sprintf(format, args...))
		}
		if pp.Protocol != "tcp" && pp.Protocol != "udp" {
			at("protocol %q: want tcp or udp", pp.Protocol)
		}
		for _, p := range []struct {
			name string
			n    int
		}{{"host_port", pp.HostPort}, {"internal_port", pp.InternalPort}} {
			if p.n < 1 || p.n > 65535 {
				at("%s %d: want 1 through 65535", p.name, p.n)
			}
		}
		if pp.Port == "" && pp.InternalIPAddress == "" {
			at("needs a port, an internal_ip_address or both")
		}
		if pp.InternalIPAddress != "" {
			if _, err := parseAddr(pp.InternalIPAddress); err != nil {
				at("internal_ip_address: %s", err)
			}
		}
		unique(keys, "published port", pp.key(), pp.Line, errs)
	}
}

// indexPublished indexes the published ports of the state and the file.
func (p *planner) indexPublished() {
	for _, pp := range p.st.PublishedPorts {
		host, _ := publishedPorts(pp)
		p.index(client.PublishedPorts, existing{pp.ID, publishedKey(pp.Protocol, host), pp.Description})
	}
	for _, pp := range p.file.PublishedPorts {
		p.named(client.PublishedPorts, pp.key())
	}
}

// publishedPorts reads the first host and internal port of pp.
func publishedPorts(pp model.PublishedPort) (host, in int) {
	return forwardingPorts(model.PortForwarding{ExternalPort: pp.HostPort, ExternalPortRange: pp.HostPortRange,
		InternalPort: pp.InternalPort, InternalPortRange: pp.InternalPortRange})
}

// published plans one published port.
func (p *planner) published(pp PublishedPort) Step {
	key := pp.key()
	s, ok := p.begin(client.PublishedPorts, key, pp.Line)
	var port Ref
	if pp.Port != "" {
		var refOK bool
		port, refOK = p.ref(client.Ports, pp.Port, pp.Line, "published port "+key)
		ok = ok && refOK
	}
	if !ok {
		return s
	}
	ip := ""
	if pp.InternalIPAddress != "" {
		ip = canonAddr(pp.InternalIPAddress)
	}
	internal := func(attrs map[string]any) {
		if pp.Port != "" {
			attrs["internal_port_id"] = port
		} else {
			attrs["internal_port_id"] = nil
		}
		if ip != "" {
			attrs["internal_ip_address"] = ip
		} else {
			attrs["internal_ip_address"] = nil
		}
	}
	if s.Action == Create {
		delete(s.Attrs, "name") // published ports have none
		s.Attrs["protocol"] = pp.Protocol
		s.Attrs["host_port"] = pp.HostPort
		s.Attrs["internal_port"] = pp.InternalPort
		internal(s.Attrs)
		return s
	}
	cur := byID(p.st.PublishedPorts, s.ID, func(pp *model.PublishedPort) string { return pp.ID })
	_, curIn := publishedPorts(cur)
	if s.change("internal_port", strconv.Itoa(curIn), strconv.Itoa(pp.InternalPort)) {
		s.Attrs["internal_port"] = pp.InternalPort
	}
	wantPort := ""
	if pp.Port != "" {
		wantPort = port.ID
	}
	if port.ID == "" && pp.Port != "" || wantPort != cur.InternalPortID || ip != "" && cur.InternalIPAddress != ip {
		s.change("internal", p.display(client.Ports, cur.InternalPortID)+" "+cur.InternalIPAddress, pp.Port+" "+ip)
		internal(s.Attrs)
	}
	return finish(s)
}
