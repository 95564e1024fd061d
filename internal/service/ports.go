package service

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/nsnet/nsnet/internal/ipam"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// portInput is a port body before its references (network, subnets,
// instance) are resolved inside the transaction.
type portInput struct {
	model.Port
	fixedIPs   []fixedIPRequest // nil: not given, allocate by default
	oldMAC     string           // the stored MAC, on update
	macSet     bool
	macGiven   bool // mac_address in the request, null included
	deviceSet  bool
	ifnameSet  bool
	portSecSet bool
	groupsSet  bool
	pairsSet   bool
	binding    bindingSet
}

// clone returns a copy of p that shares nothing a transaction changes, so
// that each run of one (store.Update may run it again) starts from the
// request, not from what an earlier run filled in.
func (p portInput) clone() portInput {
	p.FixedIPs = slices.Clone(p.FixedIPs)
	p.fixedIPs = slices.Clone(p.fixedIPs)
	p.SecurityGroups = slices.Clone(p.SecurityGroups)
	p.AllowedAddressPairs = slices.Clone(p.AllowedAddressPairs)
	p.Tags = slices.Clone(p.Tags)
	p.Profile = maps.Clone(p.Profile)
	return p
}

type fixedIPRequest struct {
	SubnetID  string `json:"subnet_id"`
	IPAddress string `json:"ip_address"`
}

var portAttrs = append(append([]attr[portInput]{
	stringAttr("name", true, true, func(p *portInput) *string { return &p.Name }),
	stringAttr("description", true, true, func(p *portInput) *string { return &p.Description }),
	boolAttr("admin_state_up", true, true, func(p *portInput) *bool { return &p.AdminStateUp }),
	// Ports take their tags on create too (tag-ports-during-bulk-creation).
	{name: "tags", post: true, set: func(p *portInput, raw json.RawMessage) error {
		tags, err := parseStringList(raw, tagLength)
		p.Tags = tags
		return err
	}},
	{name: "qos_policy_id", post: true, put: true, set: func(p *portInput, raw json.RawMessage) error {
		v, err := parseQosPolicyID(raw)
		p.QosPolicyID = v
		return err
	}},
	{name: "network_id", post: true, required: true, set: func(p *portInput, raw json.RawMessage) error {
		v, err := parseString(raw, maxNameLen)
		p.NetworkID = v
		return err
	}},
	{name: "mac_address", post: true, put: true, set: func(p *portInput, raw json.RawMessage) error {
		// null asks for a new MAC (port-mac-address-regenerate): the
		// agent sets it on the port's veth, and EUI-64 addresses follow.
		// Neutron's ML2 refuses any MAC change on a bound port
		// (PortBound), as its hypervisor would have to plug the port
		// again; nsnet's agent changes the MAC of a plugged veth in place,
		// so nsnet allows it on every port.
		p.macGiven = true
		if isNull(raw) {
			p.MACAddress, p.macSet = "", false
			return nil
		}
		v, err := parseString(raw, maxNameLen)
		if err != nil {
			return err
		}
		mac, err := net.ParseMAC(v)
		if err != nil || len(mac) != 6 || mac[0]&1 == 1 || slices.Equal(mac, make(net.HardwareAddr, 6)) {
			return fmt.Errorf("'%s' is not a valid MAC address", v)
		}
		p.MACAddress, p.macSet = mac.String(), true
		return nil
	}},
	{name: "fixed_ips", post: true, put: true, set: func(p *portInput, raw json.RawMessage) error {
		reqs, err := parseFixedIPRequests(raw)
		p.fixedIPs = reqs
		return err
	}},
	{name: "device_id", post: true, put: true, set: func(p *portInput, raw json.RawMessage) error {
		v, err := parseString(raw, maxNameLen)
		p.DeviceID, p.deviceSet = v, true
		return err
	}},
	{name: "device_owner", post: true, put: true, set: func(p *portInput, raw json.RawMessage) error {
		v, err := parseString(raw, maxNameLen)
		p.DeviceOwner, p.deviceSet = v, true
		return err
	}},
	{name: "nsnet:interface_name", post: true, put: true, set: func(p *portInput, raw json.RawMessage) error {
		v, err := parseString(raw, maxNameLen)
		if err != nil {
			return err
		}
		if err := model.ValidateInterfaceName(v); err != nil {
			return err
		}
		p.InterfaceName, p.ifnameSet = v, true
		return nil
	}},
	boolAttr("nsnet:dhcp_client", true, true, func(p *portInput) *bool { return &p.DHCPClient }),
	{name: "port_security_enabled", post: true, put: true, set: func(p *portInput, raw json.RawMessage) error {
		b, err := parseBool(raw)
		p.PortSecurityEnabled, p.portSecSet = b, true
		return err
	}},
	{name: "security_groups", post: true, put: true, set: func(p *portInput, raw json.RawMessage) error {
		list, err := parseStringList(raw, func(string) error { return nil })
		p.SecurityGroups, p.groupsSet = list, true
		return err
	}},
	{name: "allowed_address_pairs", post: true, put: true, set: func(p *portInput, raw json.RawMessage) error {
		var pairs []model.AddressPair
		if !isNull(raw) {
			if err := json.Unmarshal(raw, &pairs); err != nil {
				return fmt.Errorf("'%s' is not a list of {ip_address, mac_address} pairs", shown(raw))
			}
		}
		for i, pair := range pairs {
			if _, err := parseAddr(pair.IPAddress); err != nil {
				if _, err := parseCIDR(pair.IPAddress); err != nil {
					return fmt.Errorf("'%s' is not a valid IP address or CIDR", pair.IPAddress)
				}
			}
			if pair.MACAddress != "" {
				mac, err := net.ParseMAC(pair.MACAddress)
				if err != nil || len(mac) != 6 {
					return fmt.Errorf("'%s' is not a valid MAC address", pair.MACAddress)
				}
				pairs[i].MACAddress = mac.String()
			}
		}
		p.AllowedAddressPairs, p.pairsSet = append([]model.AddressPair{}, pairs...), true
		return nil
	}},
	{name: "dns_name", post: true, put: true, set: func(p *portInput, raw json.RawMessage) error {
		v, err := parseString(raw, maxDNSDomainLen)
		if err != nil {
			return err
		}
		v = strings.ToLower(v) // Neutron's convert_string_to_case_insensitive
		if err := checkDNSName(v); err != nil {
			return err
		}
		p.DNSName = v
		return nil
	}},
	{name: "dns_domain", post: true, put: true, set: func(p *portInput, raw json.RawMessage) error {
		v, err := parseString(raw, maxDNSDomainLen)
		if err != nil {
			return err
		}
		v = strings.ToLower(v)
		if err := checkPortDNSDomain(v); err != nil {
			return err
		}
		p.DNSDomain = v
		return nil
	}},
	{name: "extra_dhcp_opts", post: true, put: true, set: func(p *portInput, raw json.RawMessage) error {
		opts, err := mergeExtraDHCPOpts(p.ExtraDHCPOpts, raw)
		p.ExtraDHCPOpts = opts
		return err
	}},
}, bindingAttrs...), projectAttrs(func(p *portInput) *string { return &p.ProjectID })...)

// Neutron's limits of extra DHCP options, and the options that may be
// blank (sent empty, so that clients take no default route from them).
const (
	dhcpOptNameMaxLen  = 64
	dhcpOptValueMaxLen = 255
)

var blankDHCPOpts = []string{"router", "classless-static-route"}

// extraDHCPOptRequest is one entry of extra_dhcp_opts in a request;
// OptValue null means "none" (delete it, on an update).
type extraDHCPOptRequest struct {
	OptName   string
	OptValue  *string
	IPVersion int
}

// mergeExtraDHCPOpts applies requested extra DHCP options to a port's, as
// Neutron's extradhcpopt_db does: an option (name and IP version) already
// there takes the new value, or goes when the value is null; a new one is
// added unless its value is null (or empty, for the options that may not
// be blank); the others stay.
func mergeExtraDHCPOpts(cur []model.ExtraDHCPOpt, raw json.RawMessage) ([]model.ExtraDHCPOpt, error) {
	out := append([]model.ExtraDHCPOpt{}, cur...)
	if isNull(raw) {
		return out, nil
	}
	var items []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("'%s' is not a list", shown(raw))
	}
	for _, item := range items {
		req, err := parseExtraDHCPOpt(item)
		if err != nil {
			return nil, err
		}
		i := slices.IndexFunc(out, func(o model.ExtraDHCPOpt) bool {
			return o.OptName == req.OptName && o.IPVersion == req.IPVersion
		})
		switch {
		case i >= 0 && req.OptValue == nil:
			out = slices.Delete(out, i, i+1)
		case i >= 0:
			out[i].OptValue = *req.OptValue
		case req.OptValue != nil:
			out = append(out, model.ExtraDHCPOpt{OptName: req.OptName, OptValue: *req.OptValue, IPVersion: req.IPVersion})
		}
	}
	return out, nil
}

// parseExtraDHCPOpt checks one entry against Neutron's key specs.
func parseExtraDHCPOpt(item map[string]json.RawMessage) (extraDHCPOptRequest, error) {
	req := extraDHCPOptRequest{IPVersion: 4}
	keys := slices.Sorted(maps.Keys(item))
	var unexpected []string
	for _, k := range keys {
		if k != "opt_name" && k != "opt_value" && k != "ip_version" {
			unexpected = append(unexpected, k)
		}
	}
	if len(unexpected) > 0 {
		return req, fmt.Errorf("Unexpected keys supplied: %s", strings.Join(unexpected, ", "))
	}
	rawName, okName := item["opt_name"]
	rawValue, okValue := item["opt_value"]
	if !okName || !okValue {
		return req, fmt.Errorf("Validation of dictionary's keys failed. Expected keys: {'opt_name', 'opt_value'} Provided keys: {'%s'}",
			strings.Join(keys, "', '"))
	}
	var name string
	if err := json.Unmarshal(rawName, &name); err != nil {
		return req, fmt.Errorf("'%s' is not a valid string", shown(rawName))
	}
	switch {
	case strings.TrimSpace(name) == "":
		return req, fmt.Errorf("'%s' Blank strings are not permitted", name)
	case len(name) > dhcpOptNameMaxLen:
		return req, fmt.Errorf("'%s' exceeds maximum length of %d", name, dhcpOptNameMaxLen)
	}
	req.OptName = name
	if !isNull(rawValue) {
		var v string
		if err := json.Unmarshal(rawValue, &v); err != nil {
			return req, fmt.Errorf("'%s' is not a valid string", shown(rawValue))
		}
		switch {
		case strings.TrimSpace(v) == "" && !slices.Contains(blankDHCPOpts, name):
			return req, fmt.Errorf("'%s' Blank strings are not permitted", v)
		case len(v) > dhcpOptValueMaxLen:
			return req, fmt.Errorf("'%s' exceeds maximum length of %d", v, dhcpOptValueMaxLen)
		}
		req.OptValue = &v
	}
	if rawVersion, ok := item["ip_version"]; ok && !isNull(rawVersion) {
		var n int
		var text string
		if err := json.Unmarshal(rawVersion, &n); err != nil {
			// Neutron converts "6" to 6.
			if json.Unmarshal(rawVersion, &text) != nil {
				return req, fmt.Errorf("'%s' is not an integer", shown(rawVersion))
			}
			if n, err = strconv.Atoi(text); err != nil {
				return req, fmt.Errorf("'%s' is not an integer", text)
			}
		}
		if n != 4 && n != 6 {
			return req, fmt.Errorf("%d is not in [4, 6]", n)
		}
		req.IPVersion = n
	}
	return req, nil
}

// checkNetworkOwnerAttrs refuses, on another project's network (a shared
// one), the port attributes Neutron's policy keeps for the network's owner
// and the admin: turning port security off, allowed address pairs and a
// MAC of one's choosing would let a port of one project spoof addresses on
// another's network. Changing a port's MAC is the admin's alone.
func checkNetworkOwnerAttrs(ctx context.Context, action string, network *model.Network, p *portInput) error {
	c := caller(ctx)
	switch {
	case c.IsAdmin():
		return nil
	case p.macGiven && action == "update_port":
		return denied(action, action+":mac_address")
	case network.ProjectID == c.ProjectID:
		return nil
	case p.macGiven:
		return denied(action, action+":mac_address")
	case p.portSecSet:
		return denied(action, action+":port_security_enabled")
	case p.pairsSet:
		return denied(action, action+":allowed_address_pairs")
	}
	return nil
}

// parseFixedIPRequests reads a fixed_ips list ([{subnet_id, ip_address}]);
// null is the empty list, never nil.
func parseFixedIPRequests(raw json.RawMessage) ([]fixedIPRequest, error) {
	reqs := []fixedIPRequest{}
	if isNull(raw) {
		return reqs, nil
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&reqs); err != nil {
		return nil, fmt.Errorf("invalid data format for fixed IPs: '%s'", shown(raw))
	}
	for _, r := range reqs {
		if r.SubnetID == "" && r.IPAddress == "" {
			return nil, fmt.Errorf("each fixed IP needs a subnet_id, an ip_address or both")
		}
		if r.IPAddress != "" {
			if _, err := parseAddr(r.IPAddress); err != nil {
				return nil, err
			}
		}
	}
	if reqs == nil {
		reqs = []fixedIPRequest{}
	}
	return reqs, nil
}

// CreatePort creates a port, allocating its MAC and addresses in the same
// transaction that stores it, so two concurrent creates never share either.
func (s *Service) CreatePort(ctx context.Context, in Attrs) (Result[model.Port], error) {
	return createOne(ctx, s, in, s.preparePort, s.GetPort)
}

// CreatePorts creates several in one transaction (Neutron's bulk create).
func (s *Service) CreatePorts(ctx context.Context, in []Attrs) (Results[model.Port], error) {
	return createMany(ctx, s, in, s.preparePort, s.GetPort)
}

func (s *Service) preparePort(ctx context.Context, in Attrs) (pending, error) {
	p := portInput{Port: model.Port{
		ID:                  newID(),
		AdminStateUp:        true,
		SecurityGroups:      []string{},
		AllowedAddressPairs: []model.AddressPair{},
		ExtraDHCPOpts:       []model.ExtraDHCPOpt{},
	}}
	if err := mustCreate(ctx, "create_port"); err != nil {
		return pending{}, err
	}
	if err := decode(&p, portAttrs, in, opCreate); err != nil {
		return pending{}, err
	}
	return pending{id: p.ID, apply: func(tx store.Txn) error {
		p := p.clone() // a retry starts again from the request
		if err := prefetchPortCreate(ctx, tx, &p); err != nil {
			return err
		}
		network, acc, err := loadNetwork(ctx, tx, p.NetworkID)
		if err != nil {
			return err
		}
		if p.ProjectID, err = owner(ctx, "create_port", p.ProjectID); err != nil {
			return err
		}
		// Ports go on a project's own networks and those shared with it;
		// a network that is only external to it takes routers' and
		// floating IPs' ports, not an instance's.
		if !caller(ctx).IsAdmin() && !acc.usableBy(&network, p.ProjectID) {
			return typed(http.StatusForbidden, "ExternalNetworkAttachForbidden",
				"It is not allowed to create an interface on external network %s", network.ID)
		}
		if err := checkNetworkOwnerAttrs(ctx, "create_port", &network, &p); err != nil {
			return err
		}
		if err := s.checkQuota(tx, p.ProjectID, quotaPort); err != nil {
			return err
		}
		if !p.portSecSet {
			p.PortSecurityEnabled = network.PortSecurityEnabled
		}
		if err := checkDNSNameInDomain(p.DNSName, &network); err != nil {
			return err
		}
		if err := s.completePort(ctx, tx, &p); err != nil {
			return err
		}
		if err := s.checkBinding(ctx, tx, "create_port", &p); err != nil {
			return err
		}
		if err := s.checkPortSecurity(ctx, tx, &p, true); err != nil {
			return err
		}
		if err := checkQosAssociation(ctx, tx, nil, p.QosPolicyID); err != nil {
			return err
		}
		if err := checkPortQos(tx, &p.Port, &network); err != nil {
			return err
		}
		p.Touch(s.now())
		return tx.Put(store.Ports, p.ID, p.Port)
	}}, nil
}

// prefetchPortCreate reads, in one round trip on etcd, what a port
// create reads before it allocates: its network and who may use it, the
// project's quota and count, the port's own id (free, normally), the
// index entries of the network's subnets, its instance, and the index
// entry of the project's default security group.
// Only what the create goes on to read counts as read for its commit.
func prefetchPortCreate(ctx context.Context, r store.Reader, p *portInput) error {
	wants := []store.Want{
		store.Record(store.Networks, p.NetworkID),
		store.Span(store.Indexes, policiesPrefix(p.NetworkID), prefixEnd(policiesPrefix(p.NetworkID))),
		store.Record(store.Ports, p.ID),
		store.Span(store.Indexes, subnetsPrefix(p.NetworkID), prefixEnd(subnetsPrefix(p.NetworkID))),
		// The policies, the subnets and (below) the security groups
		// whole as well: their ids come from the index entries of this
		// same round trip, and a second one for the records would cost
		// more than the bytes of the others. Nothing but the network's
		// policies and subnets and the project's default group is
		// decoded, nor counts as read for the commit. Stores that read
		// locally (bbolt) read none of this.
		store.Every(store.RBACPolicies),
		store.Every(store.Subnets),
	}
	project, err := owner(ctx, "create_port", p.ProjectID)
	if err == nil {
		wants = append(wants, store.Record(store.Quotas, project), store.Record(store.Indexes, idxCount+escapeKey(project)))
	}
	if p.DeviceID != "" {
		wants = append(wants, store.Record(store.Instances, p.DeviceID))
	}
	if !p.groupsSet && err == nil {
		prefix := defaultGroupPrefix(project)
		wants = append(wants, store.Span(store.Indexes, prefix, prefixEnd(prefix)), store.Every(store.SecurityGroups))
	}
	return store.Prefetch(r, wants...)
}

// UpdatePort applies the attributes of a PUT.
func (s *Service) UpdatePort(ctx context.Context, id string, in Attrs) (Result[model.Port], error) {
	rev, err := s.store.Update(ctx, func(tx store.Txn) error {
		cur, err := loadPort(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := authorize(ctx, "update_port", cur.ProjectID); err != nil {
			return err
		}
		p := portInput{Port: cur, oldMAC: cur.MACAddress}
		if err := decode(&p, portAttrs, in, opUpdate); err != nil {
			return err
		}
		network, err := store.Get[model.Network](tx, store.Networks, cur.NetworkID)
		if err != nil {
			return fmt.Errorf("read network %s: %w", cur.NetworkID, err)
		}
		if err := checkNetworkOwnerAttrs(ctx, "update_port", &network, &p); err != nil {
			return err
		}
		if p.DNSName != cur.DNSName {
			if err := checkDNSNameInDomain(p.DNSName, &network); err != nil {
				return err
			}
		}
		if p.deviceSet && !p.ifnameSet && p.DeviceID != cur.DeviceID {
			p.InterfaceName = "" // chosen afresh in the new instance
		}
		if err := s.completePort(ctx, tx, &p); err != nil {
			return err
		}
		if err := s.checkBinding(ctx, tx, "update_port", &p); err != nil {
			return err
		}
		if err := s.checkPortSecurity(ctx, tx, &p, false); err != nil {
			return err
		}
		if err := checkQosAssociation(ctx, tx, cur.QosPolicyID, p.QosPolicyID); err != nil {
			return err
		}
		if p.QosPolicyID != nil && (cur.QosPolicyID == nil || *cur.QosPolicyID != *p.QosPolicyID) {
			if err := checkPortQos(tx, &p.Port, nil); err != nil {
				return err
			}
		}
		p.Touch(s.now())
		return tx.Put(store.Ports, id, p.Port)
	})
	if err != nil {
		return Result[model.Port]{}, err
	}
	return s.portResult(ctx, id, rev)
}

// completePort resolves and checks everything of p that depends on other
// records: MAC uniqueness, addresses, and the instance it plugs into.
//
// It asks the indexes (index.go), never the list of ports: what the other
// ports of the network hold is what the indexes hold once p's own entries
// are freed, which the transaction does first (the Put of p writes them
// again).
func (s *Service) completePort(ctx context.Context, tx store.Txn, p *portInput) error {
	if err := freePortAddrs(tx, p.ID); err != nil {
		return err
	}
	// A new MAC's first candidate is drawn before the reads, so that its
	// index entry is read with the rest.
	var candidate string
	if p.MACAddress == "" {
		c, err := ipam.NewMAC(func(string) bool { return false })
		if err != nil {
			return err
		}
		candidate = c
	}
	if err := prefetchPortAddrs(tx, p, candidate); err != nil {
		return err
	}
	var lookupErr error
	macTaken := func(m string) bool {
		// A regenerated MAC differs from the one it replaces.
		if m == p.oldMAC {
			return true
		}
		_, held, err := macHolder(tx, p.NetworkID, m)
		lookupErr = cmp.Or(lookupErr, err)
		return held
	}
	switch {
	case p.MACAddress == "":
		mac := candidate
		if macTaken(mac) {
			var err error
			mac, err = ipam.NewMAC(macTaken)
			if err := cmp.Or(lookupErr, err); err != nil {
				return err
			}
		}
		if lookupErr != nil {
			return lookupErr
		}
		p.MACAddress = mac
	case p.macSet && macTaken(p.MACAddress):
		if lookupErr != nil {
			return lookupErr
		}
		return conflict("MacAddressInUse",
			"Unable to complete operation for network %s. The mac address %s is in use.", p.NetworkID, p.MACAddress)
	}

	// A new MAC means new EUI-64 addresses on auto-address subnets.
	macChanged := p.oldMAC != "" && p.oldMAC != p.MACAddress
	if p.fixedIPs != nil || p.FixedIPs == nil || macChanged {
		ips, err := assignFixedIPs(tx, p)
		if err != nil {
			return err
		}
		p.FixedIPs = ips
	}
	return s.bindDevice(ctx, tx, p)
}

// prefetchPortAddrs reads, in one round trip on etcd, the index entries
// completePort reads first: the MAC's (mac, or the one requested), each
// subnet's count of addresses and first used range at its first pool (the
// seek of an allocation) when it allocates, and the ports of the port's
// instance.
func prefetchPortAddrs(r store.Reader, p *portInput, mac string) error {
	wants := []store.Want{store.Record(store.Indexes, macKey(p.NetworkID, cmp.Or(mac, p.MACAddress)))}
	var subnets []model.Subnet
	if p.fixedIPs != nil || p.FixedIPs == nil {
		// Addresses to allocate: the subnets are read anyway.
		var err error
		if subnets, err = subnetsOn(r, p.NetworkID); err != nil {
			return err
		}
	}
	for _, sn := range subnets {
		wants = append(wants, store.Record(store.Indexes, idxIPN+escapeKey(sn.ID)))
		if ps := pools(&sn); len(ps) > 0 {
			prefix := usedPrefix(sn.ID)
			wants = append(wants, store.Span(store.Indexes, prefix+addrKey(ps[0].Start), prefixEnd(prefix)))
		}
	}
	if p.DeviceID != "" {
		prefix := devPrefix(p.DeviceID)
		wants = append(wants, store.Span(store.Indexes, prefix, prefixEnd(prefix)), store.Every(store.SecurityGroups))
	}
	return store.Prefetch(r, wants...)
}

// addresses is what assignFixedIPs knows of the addresses of a network:
// those the other ports hold (the indexes, p's own freed) and those it has
// given p so far.
type addresses struct {
	r      store.Reader
	portID string
	mine   map[netip.Addr]bool
}

// holder is the port that holds a on sn, if any.
func (u *addresses) holder(sn *model.Subnet, a netip.Addr) (string, bool, error) {
	if u.mine[a] {
		return u.portID, true, nil
	}
	return ipHolder(u.r, sn.ID, a)
}

// holdersIn answers what addresses.holder does from a map, for the code
// that reads every port of a network anyway (a subnet's create).
func holdersIn(used map[netip.Addr]string) func(netip.Addr) (string, bool, error) {
	return func(a netip.Addr) (string, bool, error) { h, ok := used[a]; return h, ok, nil }
}

// assignFixedIPs turns the client's fixed_ips request into addresses, as
// Neutron's IPAM does:
//
//   - Without a request (a new port), one address from the first IPv4
//     subnet that has one free and one from the first IPv6 subnet whose
//     addresses come from the pools (no mode, or dhcpv6-stateful).
//   - With one, the addresses asked for; an address of the port's own
//     it asks for again stays the port's.
//   - Either way, on every auto-address subnet (SLAAC, dhcpv6-stateless)
//     the port's EUI-64 address, computed from its MAC, not taken from
//     the pools and not for the client to choose; router interfaces are
//     the exception: they hold the subnet's gateway address instead.
//
// Without a request on an update (only the MAC changed), the port keeps
// its addresses but for the EUI-64 ones, which follow the new MAC.
func assignFixedIPs(tx store.Reader, p *portInput) ([]model.FixedIP, error) {
	subnets, err := subnetsOn(tx, p.NetworkID)
	if err != nil {
		return nil, err
	}
	subnets = sortedSubnets(subnets)
	// A port that takes new addresses takes them from the subnets its
	// device_owner may use (subnet-service-types).
	if p.fixedIPs != nil || p.FixedIPs == nil {
		all := subnets
		if subnets = serviceSubnets(all, p.DeviceOwner); len(subnets) == 0 && len(all) > 0 {
			return nil, conflict("IpAddressGenerationFailureNoMatchingSubnet",
				"No valid service subnet for the given device owner, network %s, service type %s.", p.NetworkID, p.DeviceOwner)
		}
	}
	byID := map[string]*model.Subnet{}
	for i := range subnets {
		byID[subnets[i].ID] = &subnets[i]
	}
	used := &addresses{r: tx, portID: p.ID, mine: map[netip.Addr]bool{}}
	// isGateway: a subnet's gateway address is reserved for the router
	// interface that serves the subnet, as in Neutron.
	isGateway := func(sn *model.Subnet, a netip.Addr) bool {
		return sn.GatewayIP != nil && *sn.GatewayIP == a.String() && p.DeviceOwner != model.DeviceOwnerRouterInterface
	}
	taken := func(sn *model.Subnet, a netip.Addr) (bool, error) {
		_, held, err := used.holder(sn, a)
		return held || isGateway(sn, a), err
	}
	// allocate is the first free address of sn's pools.
	allocate := func(sn *model.Subnet) (netip.Addr, bool, error) {
		for _, pool := range pools(sn) {
			a, ok, err := firstFree(tx, sn.ID, pool.Start, pool.End, func(a netip.Addr) bool {
				return used.mine[a] || isGateway(sn, a)
			})
			if err != nil || ok {
				return a, ok, err
			}
		}
		return netip.Addr{}, false, nil
	}
	// A router interface holds the gateway address of an auto-address
	// subnet; every other port its EUI-64 address there.
	eui64 := p.DeviceOwner != model.DeviceOwnerRouterInterface
	auto := func(sn *model.Subnet) bool { return eui64 && sn.IsAutoAddress() }

	out := []model.FixedIP{}
	switch {
	case p.fixedIPs == nil && p.FixedIPs == nil:
		v4 := slices.DeleteFunc(slices.Clone(subnets), func(sn model.Subnet) bool { return sn.IPVersion != 4 })
		v6 := slices.DeleteFunc(slices.Clone(subnets), func(sn model.Subnet) bool { return sn.IPVersion != 6 || sn.IsAutoAddress() })
		for _, group := range [][]model.Subnet{v4, v6} {
			if len(group) == 0 {
				continue
			}
			ip, ok := model.FixedIP{}, false
			for i := range group {
				a, free, err := allocate(&group[i])
				if err != nil {
					return nil, err
				}
				if free {
					ip, ok = model.FixedIP{SubnetID: group[i].ID, IPAddress: a.String()}, true
					break
				}
			}
			if !ok {
				return nil, conflict("IpAddressGenerationFailure", "No more IP addresses available on network %s.", p.NetworkID)
			}
			used.mine[netip.MustParseAddr(ip.IPAddress)] = true
			out = append(out, ip)
		}
	case p.fixedIPs == nil:
		for _, ip := range p.FixedIPs {
			if sn := byID[ip.SubnetID]; sn == nil || !auto(sn) {
				out = append(out, ip)
			}
		}
	default:
		own := map[string]bool{}
		for _, ip := range p.FixedIPs {
			own[ip.IPAddress] = true
		}
		for _, req := range p.fixedIPs {
			sn, err := subnetFor(subnets, req, p.NetworkID)
			if err != nil {
				return nil, err
			}
			var a netip.Addr
			switch {
			case req.IPAddress != "" && auto(sn) && own[netip.MustParseAddr(req.IPAddress).String()]:
				continue // the port's EUI-64 address, added below
			case req.IPAddress != "" && auto(sn):
				return nil, typed(http.StatusBadRequest, "AllocationOnAutoAddressSubnet",
					"IPv6 address %s cannot be directly assigned to a port on subnet %s as the subnet is configured for automatic addresses",
					req.IPAddress, sn.ID)
			case req.IPAddress != "":
				a = netip.MustParseAddr(req.IPAddress)
				if !validOnSubnet(sn, a, p.DeviceOwner) {
					return nil, typed(400, "InvalidIpForSubnet", "IP address %s is not a valid IP for the specified subnet.", a)
				}
				held, err := taken(sn, a)
				if err != nil {
					return nil, err
				}
				if held {
					return nil, conflict("IpAddressAlreadyAllocated", "IP address %s already allocated in subnet %s", a, sn.ID)
				}
			case auto(sn):
				continue // the port's EUI-64 address, added below
			default:
				free := false
				if a, free, err = allocate(sn); err != nil {
					return nil, err
				}
				if !free {
					return nil, conflict("IpAddressGenerationFailure", "No more IP addresses available for subnet %s.", sn.ID)
				}
			}
			used.mine[a] = true
			out = append(out, model.FixedIP{SubnetID: sn.ID, IPAddress: a.String()})
		}
	}

	for i := range subnets {
		sn := &subnets[i]
		if !auto(sn) {
			continue
		}
		ip, err := eui64Address(sn, p.MACAddress, func(a netip.Addr) (string, bool, error) { return used.holder(sn, a) }, p.ID)
		if err != nil {
			return nil, err
		}
		used.mine[netip.MustParseAddr(ip.IPAddress)] = true
		out = append(out, ip)
	}
	return out, nil
}

// serviceSubnets are the subnets a port of device_owner owner takes
// addresses from, as Neutron's subnet-service-types has it: those without
// service types and those whose service types name owner (any subnet with
// DHCP for a DHCP port), the latter first.
func serviceSubnets(subnets []model.Subnet, owner string) []model.Subnet {
	out := slices.DeleteFunc(slices.Clone(subnets), func(sn model.Subnet) bool {
		return len(sn.ServiceTypes) > 0 && !slices.Contains(sn.ServiceTypes, owner) &&
			!(owner == model.DeviceOwnerDHCP && sn.EnableDHCP)
	})
	untyped := func(sn model.Subnet) int {
		if len(sn.ServiceTypes) == 0 {
			return 1
		}
		return 0
	}
	slices.SortStableFunc(out, func(a, b model.Subnet) int { return cmp.Compare(untyped(a), untyped(b)) })
	return out
}

// eui64Address is the address of the port with MAC mac on the
// auto-address subnet sn, refused when another port (of used) holds it.
func eui64Address(sn *model.Subnet, mac string, used func(netip.Addr) (string, bool, error), portID string) (model.FixedIP, error) {
	a, err := ipam.EUI64(netip.MustParsePrefix(sn.CIDR), mac)
	if err != nil {
		return model.FixedIP{}, fmt.Errorf("EUI-64 address of MAC %s on subnet %s: %w", mac, sn.ID, err)
	}
	holder, ok, err := used(a)
	if err != nil {
		return model.FixedIP{}, err
	}
	if ok && holder != portID {
		return model.FixedIP{}, conflict("IpAddressAlreadyAllocated", "IP address %s already allocated in subnet %s", a, sn.ID)
	}
	return model.FixedIP{SubnetID: sn.ID, IPAddress: a.String()}, nil
}

// validOnSubnet is Neutron's check_subnet_ip: a host address of an IPv4
// subnet; any address of an IPv6 prefix but the prefix itself (the
// subnet-router anycast address), which only a router's port may hold.
func validOnSubnet(sn *model.Subnet, a netip.Addr, owner string) bool {
	prefix := netip.MustParsePrefix(sn.CIDR)
	if prefix.Addr().Is6() {
		router := owner == model.DeviceOwnerRouterInterface || owner == model.DeviceOwnerRouterGateway || owner == ""
		return prefix.Contains(a) && (router || a != prefix.Masked().Addr())
	}
	usable, _ := ipam.Usable(prefix)
	return usable.Contains(a)
}

func subnetFor(subnets []model.Subnet, req fixedIPRequest, networkID string) (*model.Subnet, error) {
	for i := range subnets {
		sn := &subnets[i]
		if req.SubnetID != "" && sn.ID == req.SubnetID {
			return sn, nil
		}
		if req.SubnetID == "" && netip.MustParsePrefix(sn.CIDR).Contains(netip.MustParseAddr(req.IPAddress)) {
			return sn, nil
		}
	}
	if req.SubnetID != "" {
		return nil, invalidInput("Failed to create port on network %s, because fixed_ips included invalid subnet %s", networkID, req.SubnetID)
	}
	return nil, typed(400, "InvalidIpForNetwork", "IP address %s is not a valid IP for any of the subnets on the specified network.", req.IPAddress)
}

func pools(sn *model.Subnet) []ipam.Range {
	out := make([]ipam.Range, 0, len(sn.AllocationPools))
	for _, p := range sn.AllocationPools {
		out = append(out, ipam.Range{Start: netip.MustParseAddr(p.Start), End: netip.MustParseAddr(p.End)})
	}
	return out
}

// bindDevice resolves a port's device: a device_id naming an instance plugs
// the port into it, under an interface name unique in that instance.
func (s *Service) bindDevice(ctx context.Context, tx store.Reader, p *portInput) error {
	if p.DeviceID == "" || p.DeviceOwner != "" && p.DeviceOwner != model.DeviceOwnerCompute {
		if p.ifnameSet && p.DeviceOwner != model.DeviceOwnerCompute {
			return badValue("nsnet:interface_name", "only a port plugged into an instance has an interface name")
		}
		if p.DeviceOwner != model.DeviceOwnerCompute {
			p.InterfaceName = ""
		}
		return nil
	}
	inst, err := store.Get[model.Instance](tx, store.Instances, p.DeviceID)
	if err == store.ErrNotFound || err == nil && !canSee(ctx, inst.ProjectID) {
		if p.DeviceOwner == model.DeviceOwnerCompute {
			return notFound("Instance", p.DeviceID)
		}
		return nil // a device nsnet does not manage, as Neutron allows
	}
	if err != nil {
		return err
	}
	if inst.ProjectID != p.ProjectID {
		// An instance's interfaces are its project's: plugging another
		// project's port into it would join two projects' networks.
		return invalidInput("Port of project %s cannot be plugged into instance %s of project %s",
			p.ProjectID, inst.Name, inst.ProjectID)
	}
	p.DeviceOwner = model.DeviceOwnerCompute
	siblings, err := portsOfInstance(tx, inst.ID)
	if err != nil {
		return err
	}
	inUse := map[string]bool{}
	for _, o := range siblings {
		if o.ID != p.ID {
			inUse[o.InterfaceName] = true
		}
	}
	if p.InterfaceName == "" {
		for i := 0; ; i++ {
			if name := fmt.Sprintf("eth%d", i); !inUse[name] {
				p.InterfaceName = name
				break
			}
		}
	}
	if p.InterfaceName == "lo" || inUse[p.InterfaceName] {
		return conflict("InterfaceNameInUse", "Interface name %s is already used in instance %s.", p.InterfaceName, inst.Name)
	}
	return nil
}

func portsOfInstance(r store.Reader, instanceID string) ([]model.Port, error) {
	all, err := portsOfDevice(r, instanceID)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(p model.Port) bool {
		return p.DeviceID != instanceID || p.DeviceOwner != model.DeviceOwnerCompute
	}), nil
}

// DeletePort deletes a port; its addresses and MAC return to the pool.
func (s *Service) DeletePort(ctx context.Context, id string) (int64, error) {
	return s.store.Update(ctx, func(tx store.Txn) error {
		p, err := loadPort(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := authorizeOnNetwork(ctx, tx, "delete_port", &p); err != nil {
			return err
		}
		if err := checkNotServicePort(tx, &p); err != nil {
			return err
		}
		if err := checkPortNotTrunked(tx, id); err != nil {
			return err
		}
		if err := disassociatePort(tx, id); err != nil {
			return err
		}
		if err := deletePublishedTo(tx, id); err != nil {
			return err
		}
		return tx.Delete(store.Ports, id)
	})
}

// GetPort returns one port.
func (s *Service) GetPort(ctx context.Context, id string) (model.Port, error) {
	var p model.Port
	var b binding
	err := s.store.View(ctx, func(r store.Reader) error {
		var err error
		if p, err = loadPort(ctx, r, id); err != nil {
			return err
		}
		// What rendering it reads, in one round trip on etcd.
		wants := []store.Want{store.Record(store.Networks, p.NetworkID), store.Every(store.Trunks)}
		if p.DeviceID != "" {
			wants = append(wants, store.Record(store.Instances, p.DeviceID))
		}
		if err := store.Prefetch(r, wants...); err != nil {
			return err
		}
		if err := renderDNSAssignment(r, &p); err != nil {
			return err
		}
		if b, err = s.bindingOf(ctx, r, &p, nil); err != nil {
			return err
		}
		p.TrunkDetails, err = trunkDetails(r, &p)
		return err
	})
	s.renderPort(ctx, &p, b)
	return p, err
}

// ListPorts returns the ports the caller may see: its own and those on its
// networks.
func (s *Service) ListPorts(ctx context.Context) ([]model.Port, error) {
	visible, render := s.portListing(ctx)
	return listWhere(ctx, s.store, store.Ports, visible, render)
}

// PortSelection names the ports ListPortsWhere reads, through an index or
// a seek: a superset of what a list filtered by device_id or network_id,
// or a page of a list in id order, shows, without reading the others.
type PortSelection struct {
	// DeviceIDs, when set, selects the ports of any of these devices.
	DeviceIDs []string
	// NetworkIDs, when set (and DeviceIDs not), the ports of any of
	// these networks.
	NetworkIDs []string
	// Otherwise a page: in id order, the port Marker (if the caller may
	// see it) and the Limit ports after it; the first Limit ports without
	// a Marker.
	Marker string
	Limit  int
}

// ListPortsWhere returns, in id order, the ports of sel the caller may
// see, each as ListPorts shows it.
func (s *Service) ListPortsWhere(ctx context.Context, sel PortSelection) ([]model.Port, error) {
	visible, render := s.portListing(ctx)
	var out []model.Port
	err := s.store.View(ctx, func(r store.Reader) error {
		out = nil
		add := func(p *model.Port) (bool, error) {
			ok, err := visible(r, p)
			if err != nil || !ok {
				return false, err
			}
			if err := render(r, p); err != nil {
				return false, err
			}
			out = append(out, *p)
			return true, nil
		}
		from := func(read func(store.Reader, string) ([]model.Port, error), keys []string) error {
			seen := map[string]bool{}
			for _, key := range keys {
				ports, err := read(r, key)
				if err != nil {
					return err
				}
				for i := range ports {
					if !seen[ports[i].ID] {
						seen[ports[i].ID] = true
						if _, err := add(&ports[i]); err != nil {
							return err
						}
					}
				}
			}
			slices.SortFunc(out, func(a, b model.Port) int { return strings.Compare(a.ID, b.ID) })
			return nil
		}
		switch {
		case len(sel.DeviceIDs) > 0:
			return from(portsOfDevice, sel.DeviceIDs)
		case len(sel.NetworkIDs) > 0:
			return from(portsOn, sel.NetworkIDs)
		}
		taken := 0
		return r.Range(store.Ports, sel.Marker, "", func(id string, raw []byte) error {
			var p model.Port
			if err := json.Unmarshal(raw, &p); err != nil {
				return fmt.Errorf("decode port %s: %w", id, err)
			}
			ok, err := add(&p)
			if err != nil {
				return err
			}
			if ok && id != sel.Marker {
				taken++
			}
			if sel.Limit > 0 && taken >= sel.Limit {
				return store.Stop
			}
			return nil
		})
	})
	return out, err
}

// portListing is how lists show ports: which the caller sees (its own,
// and those on networks it owns) and how each is rendered.
func (s *Service) portListing(ctx context.Context) (visible func(store.Reader, *model.Port) (bool, error), render func(store.Reader, *model.Port) error) {
	owners := map[string]bool{} // network id: the caller owns it
	visible = func(r store.Reader, p *model.Port) (bool, error) {
		if canSee(ctx, p.ProjectID) {
			return true, nil
		}
		own, ok := owners[p.NetworkID]
		if !ok {
			var err error
			if own, err = ownsNetwork(ctx, r, p.NetworkID); err != nil {
				return false, err
			}
			owners[p.NetworkID] = own
		}
		return own, nil
	}
	memo := hostMemo{}
	render = func(r store.Reader, p *model.Port) error {
		b, err := s.bindingOf(ctx, r, p, memo)
		if err != nil {
			return err
		}
		s.renderPort(ctx, p, b)
		if err := renderDNSAssignment(r, p); err != nil {
			return err
		}
		p.TrunkDetails, err = trunkDetails(r, p)
		return err
	}
	return visible, render
}

// ownsNetwork reports whether the caller owns network id (or is an admin).
func ownsNetwork(ctx context.Context, r store.Reader, id string) (bool, error) {
	n, err := store.Get[model.Network](r, store.Networks, id)
	if err != nil {
		return false, fmt.Errorf("read network %s: %w", id, err)
	}
	return canSee(ctx, n.ProjectID), nil
}

// authorizeOnNetwork is authorize for an action Neutron's policy also gives
// the owner of the port's network (admin_owner_or_network_owner): a network
// owner may delete other projects' ports on its network.
func authorizeOnNetwork(ctx context.Context, r store.Reader, action string, p *model.Port) error {
	if caller(ctx).CanWrite() && !canSee(ctx, p.ProjectID) {
		own, err := ownsNetwork(ctx, r, p.NetworkID)
		if err != nil || own {
			return err
		}
	}
	return authorize(ctx, action, p.ProjectID)
}

func (s *Service) portResult(ctx context.Context, id string, rev int64) (Result[model.Port], error) {
	p, err := s.GetPort(ctx, id)
	return Result[model.Port]{p, rev}, err
}

func (s *Service) renderPort(ctx context.Context, p *model.Port, b binding) {
	p.TenantID = p.ProjectID
	if p.ExtraDHCPOpts == nil {
		p.ExtraDHCPOpts = []model.ExtraDHCPOpt{}
	}
	s.renderBinding(ctx, p, b)
	p.Status, p.StatusReason = s.portStatus(p)
	if s.counters != nil && p.PortSecurityEnabled {
		p.FirewallDrops = s.counters.FirewallCounters(p.ID)
	}
}

// portStatus is the status a port shows: the agent's for the ports it
// plugs (instances', DHCP and routers'), DOWN for the rest and for ports
// administratively down.
func (s *Service) portStatus(p *model.Port) (status, reason string) {
	if !p.AdminStateUp || p.DeviceOwner != model.DeviceOwnerCompute && p.DeviceOwner != model.DeviceOwnerDHCP && !isRouterPort(p) {
		return model.StatusDown, ""
	}
	return s.statusOf(store.Ports, p.ID, "")
}

// checkNotServicePort refuses to delete a port that a router or a floating
// IP owns: it goes with its owner (remove_router_interface, clearing the
// gateway, deleting the floating IP), as Neutron's prevent_l3_port_deletion
// has it. A port whose owner no longer exists may go.
func checkNotServicePort(r store.Reader, p *model.Port) error {
	var kind store.Kind
	switch p.DeviceOwner {
	case model.DeviceOwnerDHCP:
		return conflict("ServicePortInUse",
			"Port %s cannot be deleted directly via the port API: it is the DHCP port of network %s; disable DHCP on the network's subnets (enable_dhcp=false) or delete them.", p.ID, p.NetworkID)
	case model.DeviceOwnerRouterInterface, model.DeviceOwnerRouterGateway:
		kind = store.Routers
	case model.DeviceOwnerFloatingIP:
		kind = store.FloatingIPs
	default:
		return nil
	}
	if _, err := store.Get[json.RawMessage](r, kind, p.DeviceID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	}
	return conflict("ServicePortInUse", "Port %s cannot be deleted directly via the port API: has device owner %s.", p.ID, p.DeviceOwner)
}

// loadOwnPort reads a port of the caller's project (any, for an admin):
// the ports a caller may use in routers, floating IPs and forwardings.
func loadOwnPort(ctx context.Context, r store.Reader, id string) (model.Port, error) {
	return load(ctx, r, store.Ports, "Port", id, func(p *model.Port) string { return p.ProjectID })
}

// loadPort reads a port the caller may see: its own, or one on a network
// it owns (Neutron's get_port: admin_owner_or_network_owner).
func loadPort(ctx context.Context, r store.Reader, id string) (model.Port, error) {
	p, err := store.Get[model.Port](r, store.Ports, id)
	if errors.Is(err, store.ErrNotFound) {
		return p, notFound("Port", id)
	}
	if err != nil {
		return p, fmt.Errorf("read port %s: %w", id, err)
	}
	if !canSee(ctx, p.ProjectID) {
		own, err := ownsNetwork(ctx, r, p.NetworkID)
		if err == nil && !own {
			err = notFound("Port", id)
		}
		if err != nil {
			return p, err
		}
	}
	return p, checkRevision(ctx, r, id, &p)
}
