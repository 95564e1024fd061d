package topology

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// File is a parsed topology file. Subnets nested in a network are moved to
// Subnets, with Network set, so that the rest of the package sees one list.
type File struct {
	Name      string     `yaml:"name"`
	Instances []Instance `yaml:"instances"`
	Networks  []Network  `yaml:"networks"`
	Subnets   []Subnet   `yaml:"subnets"`
	Ports     []Port     `yaml:"ports"`
	// The L3 resources (see l3.go).
	Routers         []Router         `yaml:"routers"`
	FloatingIPs     []FloatingIP     `yaml:"floating_ips"`
	PortForwardings []PortForwarding `yaml:"port_forwardings"`
	PublishedPorts  []PublishedPort  `yaml:"published_ports"`
	// SecurityGroups and their rules (see secgroups.go).
	SecurityGroups []SecurityGroup `yaml:"security_groups"`

	// Path is where the file was read from, for messages.
	Path string `yaml:"-"`
}

// Instance is an instance the file wants: a named network namespace.
type Instance struct {
	Name string `yaml:"name"`
	Line int    `yaml:"-"`
}

// Network is a network the file wants. Nil pointers are fields left to the
// server.
type Network struct {
	Name                string `yaml:"name"`
	MTU                 *int   `yaml:"mtu"`
	Shared              *bool  `yaml:"shared"`
	External            *bool  `yaml:"external"`
	AdminStateUp        *bool  `yaml:"admin_state_up"`
	PortSecurityEnabled *bool  `yaml:"port_security_enabled"`
	// Uplink, HostGateway and SNATAddress are nsnet's host attributes
	// (nsnet:uplink, …; docs/NAT.md); an empty uplink or SNAT address
	// clears it.
	Uplink      *string  `yaml:"uplink"`
	HostGateway *bool    `yaml:"host_gateway"`
	SNATAddress *string  `yaml:"snat_address"`
	Subnets     []Subnet `yaml:"subnets"`
	Line        int      `yaml:"-"`
}

// Subnet is a subnet the file wants. Nil pointers and nil slices are fields
// left to the server.
type Subnet struct {
	Name    string `yaml:"name"`
	Network string `yaml:"network"`
	CIDR    string `yaml:"cidr"`
	// IPVersion is 4 or 6; left out, the CIDR's.
	IPVersion *int `yaml:"ip_version"`
	// IPv6RAMode and IPv6AddressMode are an IPv6 subnet's modes (slaac,
	// dhcpv6-stateful, dhcpv6-stateless), fixed once it exists.
	IPv6RAMode      *string `yaml:"ipv6_ra_mode"`
	IPv6AddressMode *string `yaml:"ipv6_address_mode"`
	// GatewayIP is an address in CIDR, or "none" for no gateway.
	GatewayIP       *string          `yaml:"gateway_ip"`
	AllocationPools []AllocationPool `yaml:"allocation_pools"`
	DNSNameservers  []string         `yaml:"dns_nameservers"`
	HostRoutes      []HostRoute      `yaml:"host_routes"`
	EnableDHCP      *bool            `yaml:"enable_dhcp"`
	Line            int              `yaml:"-"`

	// parent is the network a nested subnet was written under.
	parent string
}

// NoGateway is the gateway_ip value for a subnet without a gateway.
const NoGateway = "none"

// AllocationPool is an inclusive address range IPAM may hand out.
type AllocationPool struct {
	Start string `yaml:"start"`
	End   string `yaml:"end"`
}

// HostRoute is a route pushed to the subnet's instances.
type HostRoute struct {
	Destination string `yaml:"destination"`
	NextHop     string `yaml:"nexthop"`
}

// Port is a port the file wants.
type Port struct {
	Name     string    `yaml:"name"`
	Network  string    `yaml:"network"`
	FixedIPs []FixedIP `yaml:"fixed_ips"`
	// Instance plugs the port into the named instance.
	Instance string `yaml:"instance"`
	// InterfaceName names the port inside the instance; it needs Instance.
	InterfaceName       string `yaml:"interface_name"`
	MACAddress          string `yaml:"mac_address"`
	AdminStateUp        *bool  `yaml:"admin_state_up"`
	PortSecurityEnabled *bool  `yaml:"port_security_enabled"`
	// SecurityGroups names the port's groups; left out, the server's
	// default (the project's default group) stays.
	SecurityGroups *[]string `yaml:"security_groups"`
	// AllowedAddressPairs are other addresses the port may send from.
	AllowedAddressPairs *[]AddressPair `yaml:"allowed_address_pairs"`
	// DHCPClient leaves the port's address to a DHCP client in the
	// instance (nsnet:dhcp_client).
	DHCPClient *bool `yaml:"dhcp_client"`
	Line       int   `yaml:"-"`
}

// FixedIP asks for an address: a given one, one from a given subnet, or
// both (the address, which must be in that subnet).
type FixedIP struct {
	Subnet    string `yaml:"subnet"`
	IPAddress string `yaml:"ip_address"`
}

// Parse reads a topology from r, strictly, then validates it. path names
// the file in messages. Every problem found is reported, each as
// "path:line: what", joined into one error.
func Parse(r io.Reader, path string) (*File, error) {
	raw, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	f, err := decode(raw, path)
	if err != nil {
		return nil, err
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return f, nil
}

// decode turns YAML into a File, rejecting anything the format does not
// define, and records each resource's line.
func decode(raw []byte, path string) (*File, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: the file is empty; a topology needs at least a name", path)
		}
		return nil, positioned(err, path)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s:%d: a topology file holds one YAML document; remove the '---' and what follows", path, extra.Line)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}

	f := &File{Path: path}
	var errs posErrors
	checkShape(root, reflect.TypeOf(*f), "", &errs)
	if len(errs) > 0 {
		return nil, errs.join(path)
	}
	if err := root.Decode(f); err != nil {
		return nil, positioned(err, path)
	}
	recordLines(root, reflect.ValueOf(f).Elem())
	f.flattenSubnets()
	return f, nil
}

// flattenSubnets moves subnets nested in networks to f.Subnets, in file
// order, naming their network. A nested subnet whose network key names
// another network is left for Validate to report.
func (f *File) flattenSubnets() {
	var all []Subnet
	for i := range f.Networks {
		for _, s := range f.Networks[i].Subnets {
			s.parent = f.Networks[i].Name
			if s.Network == "" {
				s.Network = s.parent
			}
			all = append(all, s)
		}
		f.Networks[i].Subnets = nil
	}
	f.Subnets = append(all, f.Subnets...)
}

// checkShape walks node against the Go type t it will be decoded into and
// reports keys t does not have, keys without a value, and mappings or
// sequences where the other is expected. yaml.v3 itself reports duplicate
// keys and type mismatches of scalars.
func checkShape(node *yaml.Node, t reflect.Type, where string, errs *posErrors) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if node.Kind == yaml.AliasNode {
		node = node.Alias
	}
	switch t.Kind() {
	case reflect.Struct:
		if node.Kind != yaml.MappingNode {
			errs.add(node.Line, "%s: want a mapping of keys (%s), not %s", describe(where), strings.Join(keysOf(t), ", "), kindName(node))
			return
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(node.Content); i += 2 {
			key, val := node.Content[i], node.Content[i+1]
			field, ok := fields[key.Value]
			if !ok {
				errs.add(key.Line, "%s: unknown key %q; known keys: %s", describe(where), key.Value, strings.Join(keysOf(t), ", "))
				continue
			}
			if val.Tag == "!!null" {
				errs.add(key.Line, "%s: key %q has no value; leave it out to keep the server's default", describe(where), key.Value)
				continue
			}
			checkShape(val, field.Type, join(where, key.Value), errs)
		}
	case reflect.Slice:
		if node.Kind != yaml.SequenceNode {
			errs.add(node.Line, "%s: want a list, not %s", describe(where), kindName(node))
			return
		}
		for i, item := range node.Content {
			checkShape(item, t.Elem(), fmt.Sprintf("%s[%d]", where, i), errs)
		}
	default:
		switch {
		case node.Kind != yaml.ScalarNode:
			errs.add(node.Line, "%s: want a single value, not %s", describe(where), kindName(node))
		case t.Kind() == reflect.Int && node.Tag != "!!int":
			errs.add(node.Line, "%s: want a whole number, not %q", describe(where), node.Value)
		case t.Kind() == reflect.Bool && node.Tag != "!!bool":
			errs.add(node.Line, "%s: want true or false, not %q", describe(where), node.Value)
		}
	}
}

// recordLines sets the Line field of every struct decoded from node.
func recordLines(node *yaml.Node, v reflect.Value) {
	if node.Kind == yaml.AliasNode {
		node = node.Alias
	}
	switch v.Kind() {
	case reflect.Struct:
		if f := v.FieldByName("Line"); f.IsValid() && f.Kind() == reflect.Int {
			f.SetInt(int64(node.Line))
		}
		fields := yamlFields(v.Type())
		for i := 0; i+1 < len(node.Content); i += 2 {
			if sf, ok := fields[node.Content[i].Value]; ok {
				recordLines(node.Content[i+1], v.FieldByIndex(sf.Index))
			}
		}
	case reflect.Slice:
		for i := 0; i < v.Len() && i < len(node.Content); i++ {
			recordLines(node.Content[i], v.Index(i))
		}
	}
}

func yamlFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			out[name] = f
		}
	}
	return out
}

func keysOf(t reflect.Type) []string {
	var keys []string
	for k := range yamlFields(t) {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

func join(where, key string) string {
	if where == "" {
		return key
	}
	return where + "." + key
}

func describe(where string) string {
	if where == "" {
		return "top level"
	}
	return where
}

// posError is a problem at a line of the file.
type posError struct {
	line int
	msg  string
}

type posErrors []posError

func (e *posErrors) add(line int, format string, args ...any) {
	*e = append(*e, posError{line, fmt.Sprintf(format, args...)})
}

// join renders the errors in line order as "path:line: msg", one per line.
func (e posErrors) join(path string) error {
	if len(e) == 0 {
		return nil
	}
	sort.SliceStable(e, func(i, j int) bool { return e[i].line < e[j].line })
	errs := make([]error, len(e))
	for i, pe := range e {
		if pe.line > 0 {
			errs[i] = fmt.Errorf("%s:%d: %s", path, pe.line, pe.msg)
		} else {
			errs[i] = fmt.Errorf("%s: %s", path, pe.msg)
		}
	}
	return errors.Join(errs...)
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// positioned rewrites yaml.v3's "line N: msg" errors as "path:N: msg".
func positioned(err error, path string) error {
	var lines []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		lines = te.Errors
	} else {
		lines = []string{err.Error()}
	}
	var errs posErrors
	for _, l := range lines {
		if m := yamlLine.FindStringSubmatch(l); m != nil {
			n, _ := strconv.Atoi(m[1])
			errs.add(n, "%s", m[2])
		} else {
			errs.add(0, "%s", strings.TrimPrefix(l, "yaml: "))
		}
	}
	return errs.join(path)
}
