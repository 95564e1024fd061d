package topology

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/nsnet/nsnet/internal/model"
)

// Bounds the API applies too; checking them here reports every mistake of
// a file at once, with its line, instead of the first one the server meets.
const (
	minMTU          = 68
	maxMTU          = 65535
	maxNameLen      = 255
	maxTopologyName = 64
)

var topologyName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Validate checks what can be checked without the server: names, address
// syntax, addresses inside their subnets, and references between resources
// of the file. References to resources outside the file are checked by the
// plan, against the current state.
func (f *File) Validate() error {
	var errs posErrors
	switch {
	case f.Name == "":
		errs.add(0, "the topology needs a name (top-level key \"name\"); apply marks what it creates with it")
	case len(f.Name) > maxTopologyName || !topologyName.MatchString(f.Name):
		errs.add(0, "topology name %q: use at most %d letters, digits, '.', '_' or '-'", f.Name, maxTopologyName)
	}
	f.validateInstances(&errs)
	f.validateNetworks(&errs)
	subnets := f.validateSubnets(&errs)
	f.validatePorts(subnets, &errs)
	f.validateL3(subnets, &errs)
	validatePublished(f, &errs)
	f.validateSecurityGroups(&errs)
	return errs.join(f.Path)
}

// unique reports a name used twice for one kind and whether name is usable.
func unique(seen map[string]int, kind, name string, line int, errs *posErrors) bool {
	if name == "" {
		errs.add(line, "%s without a name: every resource needs one, it is how the file refers to it", kind)
		return false
	}
	if len(name) > maxNameLen {
		errs.add(line, "%s %q: name longer than %d characters", kind, name, maxNameLen)
		return false
	}
	if first, dup := seen[name]; dup {
		errs.add(line, "%s %q is listed twice (first at line %d)", kind, name, first)
		return false
	}
	seen[name] = line
	return true
}

func (f *File) validateInstances(errs *posErrors) {
	seen := map[string]int{}
	for _, in := range f.Instances {
		if !unique(seen, "instance", in.Name, in.Line, errs) {
			continue
		}
		if err := model.ValidateInstanceName(in.Name); err != nil {
			errs.add(in.Line, "instance name %s", err)
		}
	}
}

func (f *File) validateNetworks(errs *posErrors) {
	seen := map[string]int{}
	for _, n := range f.Networks {
		unique(seen, "network", n.Name, n.Line, errs)
		if n.MTU != nil && (*n.MTU < minMTU || *n.MTU > maxMTU) {
			errs.add(n.Line, "network %s: mtu %d is not in %d through %d", n.Name, *n.MTU, minMTU, maxMTU)
		}
	}
}

// validateSubnets checks subnets and returns the valid CIDR of each by name.
func (f *File) validateSubnets(errs *posErrors) map[string]subnetInfo {
	seen := map[string]int{}
	out := map[string]subnetInfo{}
	for _, s := range f.Subnets {
		if !unique(seen, "subnet", s.Name, s.Line, errs) {
			continue
		}
		at := func(format string, args ...any) {
			errs.add(s.Line, "subnet %s: %s", s.Name, fmt.Sprintf(format, args...))
		}
		switch {
		case s.parent != "" && s.Network != s.parent:
			at("is nested in network %s but names network %s; drop the network key", s.parent, s.Network)
		case s.Network == "":
			at("needs a network (or nest it under one in networks)")
		}
		if s.IPVersion != nil && *s.IPVersion != 4 && *s.IPVersion != 6 {
			at("ip_version %d: subnets are IPv4 (4) or IPv6 (6)", *s.IPVersion)
		}
		prefix, err := parseCIDR(s.CIDR)
		if err != nil {
			at("cidr: %s", err)
			continue
		}
		version := 4
		if prefix.Addr().Is6() {
			version = 6
		}
		if s.IPVersion != nil && (*s.IPVersion == 4 || *s.IPVersion == 6) && *s.IPVersion != version {
			at("cidr %s is an IPv%d prefix but ip_version is %d; drop ip_version (the cidr says it)", s.CIDR, version, *s.IPVersion)
		}
		for _, m := range []struct {
			key  string
			mode *string
		}{{"ipv6_ra_mode", s.IPv6RAMode}, {"ipv6_address_mode", s.IPv6AddressMode}} {
			switch {
			case m.mode == nil:
			case version == 4:
				at("%s: only IPv6 subnets have one", m.key)
			case !slices.Contains(model.IPv6Modes, *m.mode):
				at("%s %q: want one of %s", m.key, *m.mode, strings.Join(model.IPv6Modes, ", "))
			}
		}
		if s.IPv6RAMode != nil && s.IPv6AddressMode != nil && *s.IPv6RAMode != *s.IPv6AddressMode {
			at("ipv6_ra_mode %s and ipv6_address_mode %s: when both are set they must be the same", *s.IPv6RAMode, *s.IPv6AddressMode)
		}
		out[s.Name] = subnetInfo{network: s.Network, prefix: prefix}
		if s.GatewayIP != nil && *s.GatewayIP != NoGateway {
			if err := inPrefix(*s.GatewayIP, prefix); err != nil {
				at("gateway_ip: %s (or write %q for no gateway)", err, NoGateway)
			}
		}
		for i, p := range s.AllocationPools {
			if err := validPool(p, prefix); err != nil {
				at("allocation_pools[%d]: %s", i, err)
			}
		}
		for i, d := range s.DNSNameservers {
			if _, err := parseAddr(d); err != nil {
				at("dns_nameservers[%d]: %s", i, err)
			}
		}
		for i, r := range s.HostRoutes {
			if _, err := parseCIDR(r.Destination); err != nil {
				at("host_routes[%d].destination: %s", i, err)
			}
			if _, err := parseAddr(r.NextHop); err != nil {
				at("host_routes[%d].nexthop: %s", i, err)
			}
		}
	}
	return out
}

type subnetInfo struct {
	network string
	prefix  netip.Prefix
}

func validPool(p AllocationPool, prefix netip.Prefix) error {
	if err := inPrefix(p.Start, prefix); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	if err := inPrefix(p.End, prefix); err != nil {
		return fmt.Errorf("end: %w", err)
	}
	if netip.MustParseAddr(p.End).Less(netip.MustParseAddr(p.Start)) {
		return fmt.Errorf("start %s is after end %s", p.Start, p.End)
	}
	return nil
}

func (f *File) validatePorts(subnets map[string]subnetInfo, errs *posErrors) {
	seen := map[string]int{}
	ifnames := map[[2]string]string{} // (instance, interface) -> port
	addrs := map[netip.Addr]string{}  // address -> port
	for _, p := range f.Ports {
		if !unique(seen, "port", p.Name, p.Line, errs) {
			continue
		}
		at := func(format string, args ...any) {
			errs.add(p.Line, "port %s: %s", p.Name, fmt.Sprintf(format, args...))
		}
		if p.Network == "" {
			at("needs a network")
		}
		if p.MACAddress != "" {
			if _, err := parseMAC(p.MACAddress); err != nil {
				at("mac_address: %s", err)
			}
		}
		if p.InterfaceName != "" {
			if p.Instance == "" {
				at("interface_name %s needs an instance to name it in", p.InterfaceName)
			} else if err := model.ValidateInterfaceName(p.InterfaceName); err != nil {
				at("interface_name %s", err)
			} else if other, dup := ifnames[[2]string{p.Instance, p.InterfaceName}]; dup {
				at("interface %s in instance %s is already port %s's", p.InterfaceName, p.Instance, other)
			} else {
				ifnames[[2]string{p.Instance, p.InterfaceName}] = p.Name
			}
		}
		for i, ip := range p.FixedIPs {
			if msg := checkFixedIP(ip, p, subnets, addrs); msg != "" {
				at("fixed_ips[%d]: %s", i, msg)
			}
		}
	}
}

// checkFixedIP returns what is wrong with one fixed IP of p, or "".
func checkFixedIP(ip FixedIP, p Port, subnets map[string]subnetInfo, addrs map[netip.Addr]string) string {
	if ip.Subnet == "" && ip.IPAddress == "" {
		return "give a subnet, an ip_address, or both"
	}
	var addr netip.Addr
	if ip.IPAddress != "" {
		a, err := parseAddr(ip.IPAddress)
		if err != nil {
			return err.Error()
		}
		if other, dup := addrs[a]; dup {
			return fmt.Sprintf("%s is already port %s's", a, other)
		}
		addrs[a] = p.Name
		addr = a
	}
	sn, inFile := subnets[ip.Subnet]
	if ip.Subnet == "" || !inFile {
		return "" // a subnet outside the file is checked against the state
	}
	if sn.network != p.Network {
		return fmt.Sprintf("subnet %s is on network %s, not on the port's network %s", ip.Subnet, sn.network, p.Network)
	}
	if addr.IsValid() && !sn.prefix.Contains(addr) {
		return fmt.Sprintf("%s is not in subnet %s (%s)", addr, ip.Subnet, sn.prefix)
	}
	return ""
}

func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	}
	return a.Unmap(), nil
}

// parseCIDR accepts a prefix written with its host bits zero, as the API
// does, and says which prefix was meant otherwise.
func parseCIDR(s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, fmt.Errorf("missing")
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR such as 192.168.24.0/24", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set; write %s", s, p.Masked())
	}
	return p, nil
}

func inPrefix(s string, prefix netip.Prefix) error {
	a, err := parseAddr(s)
	if err != nil {
		return err
	}
	if !prefix.Contains(a) {
		return fmt.Errorf("%s is not in %s", a, prefix)
	}
	return nil
}

func parseMAC(s string) (string, error) {
	mac, err := net.ParseMAC(s)
	if err != nil || len(mac) != 6 {
		return "", fmt.Errorf("%q is not a MAC address such as fa:16:3e:00:00:01", s)
	}
	if mac[0]&1 == 1 {
		return "", fmt.Errorf("%q is a multicast address; a port needs a unicast one", s)
	}
	return mac.String(), nil
}
