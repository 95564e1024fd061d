package service

// Secondary indexes, so that no request walks every record of a kind to
// answer: of ports, a MAC's holder on a network, an address's holder on a
// subnet and the used address ranges of the subnet (for the next free
// address), the ports of a network, of a device, of a security group and
// of a QoS policy,
// the router interface ports on a subnet, the number of fixed IPs on each
// subnet (IP availability) and the number of ports each project has
// against its quota; of floating IPs, those of a port, of a router and on
// an external network, and each project's count; of port forwardings,
// those of a floating IP and to a port; of instances, the one holding a
// name in a project, the one holding a namespace, and the number on
// each host (for scheduling); of routers, those
// whose gateway is on a network; of security group rules, those of a
// group and those naming an address group; of subnets, those of a
// network; of security groups, each project's default one; of RBAC
// policies, those of an object.
//
// An index entry is a record of kind store.Indexes whose id is the key
// (say "port.mac/<network>/<mac>") and whose value is the indexed port's
// id (or, for a used range, its first address; for a count, the count).
// Entries are written by writeTxn.Put and writeTxn.Delete of a record, in
// the transaction that writes the record, so an index is exactly as
// consistent as the records: it commits, rolls back and retries with
// them, and each transaction stays a pure function of its snapshot (the
// index is part of the snapshot). Lookups are store.Range seeks, O(log n).
//
// Why records, and not a structure in memory derived from the store:
// records are what every store already has, under a key prefix on etcd
// as in a bbolt bucket, so an etcd backend gets the indexes with no code
// of its own, every host sees the same ones, and a transaction that etcd
// retries re-reads them from its new snapshot. A derived structure would
// have to follow every other host's commits before it could answer. The
// cost is that entries are writes: a port create writes a handful more
// keys, and every create of a port on one subnet writes that subnet's
// used range, so two such creates conflict on etcd — as they must, since
// they choose from the same free addresses.
//
// The indexes can always be recomputed from the records: a service checks
// them against the store once, before its first request (rebuildIndexes),
// and repairs what differs. That fills them in a store written before
// they existed, and in one written without the service (a benchmark's
// fill); in a store the service alone wrote, it finds nothing to change
// and writes nothing.

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// Index key prefixes. Each ends in "/", and the parts of a key that come
// from user input are escaped (escapeKey), so that one prefix never holds
// another's entries.
const (
	idxMAC   = "port.mac/"   // <network>/<mac> → port id
	idxIP    = "port.ip/"    // <subnet>/<address> → port id
	idxUsed  = "port.used/"  // <subnet>/<last address> → first address of a used range
	idxNet   = "port.net/"   // <network>/<port> → port id
	idxDev   = "port.dev/"   // <device>/<port> → port id
	idxCount = "port.count/" // <project> → ports counted against its quota
	idxRIf   = "port.rif/"   // <subnet>/<port> → router interface port id
	idxIPN   = "port.ipn/"   // <subnet> → fixed IPs on it
	idxSG    = "port.sg/"    // <security group>/<port> → port id
	idxQos   = "port.qos/"   // <QoS policy>/<port> → port id

	idxFIPPort   = "fip.port/"   // <port>/<floating IP> → floating IP id
	idxFIPRouter = "fip.router/" // <router>/<floating IP> → floating IP id
	idxFIPCount  = "fip.count/"  // <project> → its floating IPs
	idxFIPNet    = "fip.net/"    // <floating network>/<floating IP> → floating IP id

	idxInstName  = "inst.name/"  // <project>/<name> → instance id
	idxInstNetns = "inst.netns/" // <namespace> → instance id
	idxInstHost  = "inst.host/"  // <host> → instances on it

	idxPFFIP  = "pf.fip/"  // <floating IP>/<port forwarding> → its id
	idxPFPort = "pf.port/" // <internal port>/<port forwarding> → its id

	idxRouterGW = "router.gw/" // <external network>/<router> → router id
	idxRuleSG   = "sgr.group/" // <security group>/<rule> → rule id
	idxRuleAG   = "sgr.ag/"    // <remote address group>/<rule> → rule id

	idxSubnetNet = "subnet.net/" // <network>/<subnet> → subnet id
	idxSGDefault = "sg.default/" // <project>/<group> → its default group's id
	idxRBACObj   = "rbac.obj/"   // <object>/<policy> → policy id
)

// keyedKinds are the kinds whose entries are keys alone (each entry's
// value is the record's id), read from the record as stored: what a
// record of the kind is indexed under.
var keyedKinds = map[store.Kind]func(id string, raw []byte) ([]string, error){
	store.PortForwardings:    forwardingKeys,
	store.Routers:            routerKeys,
	store.SecurityGroupRules: ruleKeys,
	store.Subnets:            subnetKeys,
	store.SecurityGroups:     groupKeys,
	store.RBACPolicies:       policyKeys,
}

// policyKeys are the entries of an RBAC policy: under the object it
// shares, so that a request about one network reads that network's
// policies, not every object's.
func policyKeys(id string, raw []byte) ([]string, error) {
	var p struct {
		ObjectID string `json:"object_id"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, err
	}
	return []string{policiesPrefix(p.ObjectID) + id}, nil
}

func policiesPrefix(object string) string { return idxRBACObj + escapeKey(object) + "/" }

// subnetKeys are the entries of a subnet: under its network, so that a
// port create reads its network's subnets, not every network's.
func subnetKeys(id string, raw []byte) ([]string, error) {
	var sn struct {
		NetworkID string `json:"network_id"`
	}
	if err := json.Unmarshal(raw, &sn); err != nil {
		return nil, err
	}
	return []string{subnetsPrefix(sn.NetworkID) + id}, nil
}

// groupKeys are the entries of a security group: a project's default
// group under its project, so that a port create finds it without
// reading every project's groups.
func groupKeys(id string, raw []byte) ([]string, error) {
	var g struct {
		Name      string `json:"name"`
		ProjectID string `json:"project_id"`
	}
	if err := json.Unmarshal(raw, &g); err != nil {
		return nil, err
	}
	if g.Name != model.DefaultSecurityGroupName {
		return nil, nil
	}
	return []string{defaultGroupPrefix(g.ProjectID) + id}, nil
}

func subnetsPrefix(network string) string      { return idxSubnetNet + escapeKey(network) + "/" }
func defaultGroupPrefix(project string) string { return idxSGDefault + escapeKey(project) + "/" }

// forwardingKeys are the entries of a port forwarding: under its floating
// IP and under its internal port.
func forwardingKeys(id string, raw []byte) ([]string, error) {
	var pf struct {
		FloatingIPID   string `json:"floatingip_id"`
		InternalPortID string `json:"internal_port_id"`
	}
	if err := json.Unmarshal(raw, &pf); err != nil {
		return nil, err
	}
	var keys []string
	if pf.FloatingIPID != "" {
		keys = append(keys, idxPFFIP+escapeKey(pf.FloatingIPID)+"/"+id)
	}
	if pf.InternalPortID != "" {
		keys = append(keys, idxPFPort+escapeKey(pf.InternalPortID)+"/"+id)
	}
	return keys, nil
}

// routerKeys are the entries of a router: under its gateway's network.
func routerKeys(id string, raw []byte) ([]string, error) {
	var r struct {
		Gateway *struct {
			NetworkID string `json:"network_id"`
		} `json:"external_gateway_info"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, err
	}
	if r.Gateway == nil || r.Gateway.NetworkID == "" {
		return nil, nil
	}
	return []string{gatewayPrefix(r.Gateway.NetworkID) + id}, nil
}

// ruleKeys are the entries of a security group rule: under its group,
// and under the address group it names as its remote.
func ruleKeys(id string, raw []byte) ([]string, error) {
	var r struct {
		SecurityGroupID      string  `json:"security_group_id"`
		RemoteAddressGroupID *string `json:"remote_address_group_id"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, err
	}
	keys := []string{rulesPrefix(r.SecurityGroupID) + id}
	if r.RemoteAddressGroupID != nil && *r.RemoteAddressGroupID != "" {
		keys = append(keys, addressGroupRulesPrefix(*r.RemoteAddressGroupID)+id)
	}
	return keys, nil
}

func gatewayPrefix(network string) string { return idxRouterGW + escapeKey(network) + "/" }
func rulesPrefix(group string) string     { return idxRuleSG + escapeKey(group) + "/" }
func addressGroupRulesPrefix(group string) string {
	return idxRuleAG + escapeKey(group) + "/"
}

// indexPutKeyed moves the entries of a record of a keyed kind from old
// (its stored record, nil: none) to new (nil: deleted).
func indexPutKeyed(tx store.Txn, kind store.Kind, id string, old, new []byte) error {
	keysOf := keyedKinds[kind]
	for _, rec := range []struct {
		raw []byte
		put bool
	}{{old, false}, {new, true}} {
		if rec.raw == nil {
			continue
		}
		keys, err := keysOf(id, rec.raw)
		if err != nil {
			return fmt.Errorf("%s %s: %w", kind, id, err)
		}
		for _, key := range keys {
			if rec.put {
				err = tx.Put(store.Indexes, key, id)
			} else {
				err = tx.Delete(store.Indexes, key)
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// forwardingsOf reads the port forwardings of a floating IP;
// forwardingsTo those to an internal port.
func forwardingsOf(r store.Reader, fipID string) ([]model.PortForwarding, error) {
	return indexed[model.PortForwarding](r, store.PortForwardings, idxPFFIP+escapeKey(fipID)+"/")
}

func forwardingsTo(r store.Reader, portID string) ([]model.PortForwarding, error) {
	return indexed[model.PortForwarding](r, store.PortForwardings, idxPFPort+escapeKey(portID)+"/")
}

// routersWithGatewayOn reads the routers whose gateway is on network.
func routersWithGatewayOn(r store.Reader, network string) ([]model.Router, error) {
	return indexed[model.Router](r, store.Routers, gatewayPrefix(network))
}

// rulesOfGroup reads the rules of a security group, as stored.
func rulesOfGroup(r store.Reader, group string) ([]model.SecurityGroupRule, error) {
	return indexed[model.SecurityGroupRule](r, store.SecurityGroupRules, rulesPrefix(group))
}

// rulesNaming reads the security group rules whose remote is address
// group ag.
func rulesNaming(r store.Reader, ag string) ([]model.SecurityGroupRule, error) {
	return indexed[model.SecurityGroupRule](r, store.SecurityGroupRules, addressGroupRulesPrefix(ag))
}

// routerInterfacesOn reads the router interface ports with an address on
// subnet.
func routerInterfacesOn(r store.Reader, subnet string) ([]model.Port, error) {
	return indexed[model.Port](r, store.Ports, rifPrefix(subnet))
}

// portsInGroup reads the ports whose security groups include group.
func portsInGroup(r store.Reader, group string) ([]model.Port, error) {
	return indexed[model.Port](r, store.Ports, sgPrefix(group))
}

// portsWithPolicy reads the ports whose own QoS policy is policy.
func portsWithPolicy(r store.Reader, policy string) ([]model.Port, error) {
	return indexed[model.Port](r, store.Ports, qosPrefix(policy))
}

// fipsOn reads the floating IPs of an external network.
func fipsOn(r store.Reader, network string) ([]model.FloatingIP, error) {
	return indexed[model.FloatingIP](r, store.FloatingIPs, idxFIPNet+escapeKey(network)+"/")
}

// usedIPs is how many fixed IPs the ports hold on subnet.
func usedIPs(r store.Reader, subnet string) (int, error) { return countOf(r, idxIPN, subnet) }

// escapeKey makes s safe as one part of an index key: "/" cannot appear
// in it, so "dev/a" and "dev" never share a prefix.
func escapeKey(s string) string {
	// Ids are UUIDs and project ids hex: nearly every call has nothing
	// to escape, and returns s without building or allocating anything.
	if !strings.ContainsAny(s, "%/") {
		return s
	}
	return keyEscaper.Replace(s)
}

// keyEscaper is built once: a Replacer builds its lookup tables on first
// use, which cost more than the rest of a port create's index keys.
var keyEscaper = strings.NewReplacer("%", "%25", "/", "%2F")

// addrKey is a fixed-width, byte-ordered form of an address, so that ids
// sort as the addresses do.
func addrKey(a netip.Addr) string { return hex.EncodeToString(a.AsSlice()) }

func parseAddrKey(s string) (netip.Addr, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("index address %q: %w", s, err)
	}
	a, ok := netip.AddrFromSlice(b)
	if !ok {
		return netip.Addr{}, fmt.Errorf("index address %q: bad length", s)
	}
	return a, nil
}

// prefixEnd is the first key after every key that starts with prefix
// (which ends in "/").
func prefixEnd(prefix string) string { return prefix[:len(prefix)-1] + "0" }

// indexedPort is what the indexes know of a port.
type indexedPort struct {
	ID          string          `json:"id"`
	ProjectID   string          `json:"project_id"`
	NetworkID   string          `json:"network_id"`
	MACAddress  string          `json:"mac_address"`
	FixedIPs    []model.FixedIP `json:"fixed_ips"`
	DeviceID    string          `json:"device_id"`
	DeviceOwner string          `json:"device_owner"`
	// SecurityGroups may name a group twice (Neutron keeps the list as
	// given): its entry is one.
	SecurityGroups []string `json:"security_groups"`
	QosPolicyID    *string  `json:"qos_policy_id"`
}

func indexedOf(v any) (indexedPort, error) {
	var p *model.Port
	switch v := v.(type) {
	case model.Port:
		p = &v
	case *model.Port:
		p = v
	default:
		raw, err := json.Marshal(v)
		if err != nil {
			return indexedPort{}, err
		}
		var ip indexedPort
		return ip, json.Unmarshal(raw, &ip)
	}
	return indexedPort{ID: p.ID, ProjectID: p.ProjectID, NetworkID: p.NetworkID, MACAddress: p.MACAddress,
		FixedIPs: p.FixedIPs, DeviceID: p.DeviceID, DeviceOwner: p.DeviceOwner, SecurityGroups: p.SecurityGroups,
		QosPolicyID: p.QosPolicyID}, nil
}

// quotaCounted: a network's DHCP port is nsnet's, not the project's (see
// usage).
func (p *indexedPort) quotaCounted() bool { return p.DeviceOwner != model.DeviceOwnerDHCP }

func macKey(network, mac string) string { return idxMAC + escapeKey(network) + "/" + mac }
func ipKey(subnet string, a netip.Addr) string {
	return idxIP + escapeKey(subnet) + "/" + addrKey(a)
}
func usedPrefix(subnet string) string    { return idxUsed + escapeKey(subnet) + "/" }
func netPrefix(network string) string    { return idxNet + escapeKey(network) + "/" }
func netKey(network, port string) string { return netPrefix(network) + port }
func devPrefix(device string) string     { return idxDev + escapeKey(device) + "/" }
func rifPrefix(subnet string) string     { return idxRIf + escapeKey(subnet) + "/" }
func sgPrefix(group string) string       { return idxSG + escapeKey(group) + "/" }

// groupKeys are p's entries under its security groups, each once, and
// under its QoS policy.
func (p *indexedPort) groupKeys() []string {
	var out []string
	for _, g := range p.SecurityGroups {
		if k := sgPrefix(g) + p.ID; !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	if p.QosPolicyID != nil && *p.QosPolicyID != "" {
		out = append(out, qosPrefix(*p.QosPolicyID)+p.ID)
	}
	return out
}

func qosPrefix(policy string) string { return idxQos + escapeKey(policy) + "/" }

// rifSubnets are the subnets under which p is a router interface port:
// those of its fixed IPs, each once; none for another port.
func (p *indexedPort) rifSubnets() []string {
	if p.DeviceOwner != model.DeviceOwnerRouterInterface {
		return nil
	}
	var out []string
	for _, ip := range p.FixedIPs {
		if !slices.Contains(out, ip.SubnetID) {
			out = append(out, ip.SubnetID)
		}
	}
	return out
}

// getIndex reads the value of an index entry (a holder's id); false when
// there is none.
func getIndex(r store.Reader, key string) (string, bool, error) {
	var v string
	err := r.Get(store.Indexes, key, &v)
	if errors.Is(err, store.ErrNotFound) {
		return "", false, nil
	}
	return v, err == nil, err
}

// indexPutPort moves the entries of a port from old (nil: none) to new
// (nil: deleted).
func indexPutPort(tx store.Txn, old, new *indexedPort) error {
	if old != nil {
		if err := unindexPortAddrs(tx, old); err != nil {
			return err
		}
		if err := tx.Delete(store.Indexes, netKey(old.NetworkID, old.ID)); err != nil {
			return err
		}
		if old.DeviceID != "" {
			if err := tx.Delete(store.Indexes, devPrefix(old.DeviceID)+old.ID); err != nil {
				return err
			}
		}
		for _, sn := range old.rifSubnets() {
			if err := tx.Delete(store.Indexes, rifPrefix(sn)+old.ID); err != nil {
				return err
			}
		}
		for _, k := range old.groupKeys() {
			if err := tx.Delete(store.Indexes, k); err != nil {
				return err
			}
		}
	}
	if new != nil {
		if new.MACAddress != "" {
			if err := tx.Put(store.Indexes, macKey(new.NetworkID, new.MACAddress), new.ID); err != nil {
				return err
			}
		}
		for _, ip := range new.FixedIPs {
			a, err := netip.ParseAddr(ip.IPAddress)
			if err != nil {
				return fmt.Errorf("port %s: %w", new.ID, err)
			}
			if err := tx.Put(store.Indexes, ipKey(ip.SubnetID, a), new.ID); err != nil {
				return err
			}
			if err := markUsed(tx, ip.SubnetID, a); err != nil {
				return err
			}
		}
		if err := tx.Put(store.Indexes, netKey(new.NetworkID, new.ID), new.ID); err != nil {
			return err
		}
		if new.DeviceID != "" {
			if err := tx.Put(store.Indexes, devPrefix(new.DeviceID)+new.ID, new.ID); err != nil {
				return err
			}
		}
		for _, sn := range new.rifSubnets() {
			if err := tx.Put(store.Indexes, rifPrefix(sn)+new.ID, new.ID); err != nil {
				return err
			}
		}
		for _, k := range new.groupKeys() {
			if err := tx.Put(store.Indexes, k, new.ID); err != nil {
				return err
			}
		}
	}
	// The counts move with the records, whatever the other entries did.
	delta, ips := map[string]int{}, map[string]int{}
	if old != nil {
		if old.quotaCounted() {
			delta[old.ProjectID]--
		}
		for _, ip := range old.FixedIPs {
			ips[ip.SubnetID]--
		}
	}
	if new != nil {
		if new.quotaCounted() {
			delta[new.ProjectID]++
		}
		for _, ip := range new.FixedIPs {
			ips[ip.SubnetID]++
		}
	}
	if err := addCounts(tx, idxIPN, ips); err != nil {
		return err
	}
	return addCounts(tx, idxCount, delta)
}

// unindexPortAddrs removes what makes p's MAC and addresses taken: the
// entries that name p (an entry naming another port is that port's).
// Removing them twice is harmless, so a transaction may free a port's
// addresses before it chooses new ones and then put the port.
func unindexPortAddrs(tx store.Txn, p *indexedPort) error {
	if p.MACAddress != "" {
		key := macKey(p.NetworkID, p.MACAddress)
		if holder, ok, err := getIndex(tx, key); err != nil {
			return err
		} else if ok && holder == p.ID {
			if err := tx.Delete(store.Indexes, key); err != nil {
				return err
			}
		}
	}
	for _, ip := range p.FixedIPs {
		a, err := netip.ParseAddr(ip.IPAddress)
		if err != nil {
			return fmt.Errorf("port %s: %w", p.ID, err)
		}
		key := ipKey(ip.SubnetID, a)
		holder, ok, err := getIndex(tx, key)
		if err != nil {
			return err
		}
		if !ok || holder != p.ID {
			continue
		}
		if err := tx.Delete(store.Indexes, key); err != nil {
			return err
		}
		if err := unmarkUsed(tx, ip.SubnetID, a); err != nil {
			return err
		}
	}
	return nil
}

// freePortAddrs frees the MAC and addresses the stored port id holds, for
// the rest of the transaction: an update chooses among the addresses the
// other ports leave free, its own included.
func freePortAddrs(tx store.Txn, id string) error {
	p, err := stored[indexedPort](tx, store.Ports, id)
	if err != nil || p == nil {
		return err
	}
	return unindexPortAddrs(tx, p)
}

// usedRange is the used range of a subnet that ends at or after a, if
// any: the first entry at or after a's key.
func usedRange(r store.Reader, subnet string, a netip.Addr) (first, last netip.Addr, ok bool, err error) {
	prefix := usedPrefix(subnet)
	err = r.Range(store.Indexes, prefix+addrKey(a), prefixEnd(prefix), func(id string, raw []byte) error {
		var start string
		if err := json.Unmarshal(raw, &start); err != nil {
			return fmt.Errorf("decode index %s: %w", id, err)
		}
		if last, err = parseAddrKey(strings.TrimPrefix(id, prefix)); err != nil {
			return err
		}
		if first, err = parseAddrKey(start); err != nil {
			return err
		}
		ok = true
		return store.Stop
	})
	return first, last, ok, err
}

// markUsed adds a to its subnet's used ranges, joining the ranges either
// side of it.
func markUsed(tx store.Txn, subnet string, a netip.Addr) error {
	first, last, ok, err := usedRange(tx, subnet, a)
	if err != nil || ok && first.Compare(a) <= 0 {
		return err // already in a range
	}
	lo, hi := a, a
	prefix := usedPrefix(subnet)
	if prev := a.Prev(); prev.IsValid() {
		var start string
		err := tx.Get(store.Indexes, prefix+addrKey(prev), &start)
		switch {
		case err == nil:
			if lo, err = parseAddrKey(start); err != nil {
				return err
			}
			if err := tx.Delete(store.Indexes, prefix+addrKey(prev)); err != nil {
				return err
			}
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
	}
	if ok && first == a.Next() {
		hi = last
		if err := tx.Delete(store.Indexes, prefix+addrKey(last)); err != nil {
			return err
		}
	}
	return tx.Put(store.Indexes, prefix+addrKey(hi), addrKey(lo))
}

// unmarkUsed takes a out of its subnet's used ranges, splitting the one
// that holds it.
func unmarkUsed(tx store.Txn, subnet string, a netip.Addr) error {
	first, last, ok, err := usedRange(tx, subnet, a)
	if err != nil || !ok || first.Compare(a) > 0 {
		return err // not used
	}
	prefix := usedPrefix(subnet)
	if err := tx.Delete(store.Indexes, prefix+addrKey(last)); err != nil {
		return err
	}
	if first != a {
		if err := tx.Put(store.Indexes, prefix+addrKey(a.Prev()), addrKey(first)); err != nil {
			return err
		}
	}
	if last != a {
		if err := tx.Put(store.Indexes, prefix+addrKey(last), addrKey(a.Next())); err != nil {
			return err
		}
	}
	return nil
}

// firstFree is the first address of [start, end] that no port of subnet
// holds and skip does not refuse: it jumps over used ranges, so it costs
// a seek per range and per address skip refuses, not per address used.
func firstFree(r store.Reader, subnet string, start, end netip.Addr, skip func(netip.Addr) bool) (netip.Addr, bool, error) {
	for a := start; a.IsValid() && a.Compare(end) <= 0; {
		first, last, ok, err := usedRange(r, subnet, a)
		if err != nil {
			return netip.Addr{}, false, err
		}
		switch {
		case ok && first.Compare(a) <= 0:
			a = last.Next()
		case skip(a):
			a = a.Next()
		default:
			return a, true, nil
		}
	}
	return netip.Addr{}, false, nil
}

// ipHolder is the port that holds address a on subnet, if any.
func ipHolder(r store.Reader, subnet string, a netip.Addr) (string, bool, error) {
	return getIndex(r, ipKey(subnet, a))
}

// macHolder is the port that holds mac on network, if any.
func macHolder(r store.Reader, network, mac string) (string, bool, error) {
	return getIndex(r, macKey(network, mac))
}

// portCount is how many ports count against project's port quota.
func portCount(r store.Reader, project string) (int, error) { return countOf(r, idxCount, project) }

// indexedIDs lists the port ids an index holds under prefix, in order.
func indexedIDs(r store.Reader, prefix string) ([]string, error) {
	var ids []string
	err := r.Range(store.Indexes, prefix, prefixEnd(prefix), func(id string, raw []byte) error {
		ids = append(ids, id[len(prefix):])
		return nil
	})
	return ids, err
}

// indexed reads the records of kind an index holds under prefix (the
// ports of a network or device, the floating IPs of a port or router, the
// forwardings of a floating IP or port), in id order.
func indexed[T any](r store.Reader, kind store.Kind, prefix string) ([]T, error) {
	ids, err := indexedIDs(r, prefix)
	if err != nil {
		return nil, err
	}
	if len(ids) > 1 {
		// On etcd, the records in one round trip rather than one each.
		wants := make([]store.Want, len(ids))
		for i, id := range ids {
			wants[i] = store.Record(kind, id)
		}
		if err := store.Prefetch(r, wants...); err != nil {
			return nil, err
		}
	}
	out := make([]T, 0, len(ids))
	for _, id := range ids {
		v, err := store.Get[T](r, kind, id)
		if err != nil {
			return nil, fmt.Errorf("read %s %s (indexed under %s): %w", kind, id, prefix, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// portsOfDevice reads the ports whose device_id is device.
func portsOfDevice(r store.Reader, device string) ([]model.Port, error) {
	return indexed[model.Port](r, store.Ports, devPrefix(device))
}

// indexedFIP is what the indexes know of a floating IP.
type indexedFIP struct {
	ID        string  `json:"id"`
	ProjectID string  `json:"project_id"`
	NetworkID string  `json:"floating_network_id"`
	PortID    *string `json:"port_id"`
	RouterID  *string `json:"router_id"`
}

func fipIndexedOf(v any) (indexedFIP, error) {
	switch v := v.(type) {
	case model.FloatingIP:
		return indexedFIP{ID: v.ID, ProjectID: v.ProjectID, NetworkID: v.FloatingNetworkID, PortID: v.PortID, RouterID: v.RouterID}, nil
	case *model.FloatingIP:
		return indexedFIP{ID: v.ID, ProjectID: v.ProjectID, NetworkID: v.FloatingNetworkID, PortID: v.PortID, RouterID: v.RouterID}, nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return indexedFIP{}, err
	}
	var f indexedFIP
	return f, json.Unmarshal(raw, &f)
}

// entries are f's index entries but its count.
func (f *indexedFIP) entries() []string {
	var keys []string
	if f.PortID != nil && *f.PortID != "" {
		keys = append(keys, idxFIPPort+escapeKey(*f.PortID)+"/"+f.ID)
	}
	if f.RouterID != nil && *f.RouterID != "" {
		keys = append(keys, idxFIPRouter+escapeKey(*f.RouterID)+"/"+f.ID)
	}
	if f.NetworkID != "" {
		keys = append(keys, idxFIPNet+escapeKey(f.NetworkID)+"/"+f.ID)
	}
	return keys
}

// indexPutFIP moves the entries of a floating IP from old (nil: none) to
// new (nil: deleted).
func indexPutFIP(tx store.Txn, old, new *indexedFIP) error {
	if old != nil {
		for _, key := range old.entries() {
			if err := tx.Delete(store.Indexes, key); err != nil {
				return err
			}
		}
	}
	if new != nil {
		for _, key := range new.entries() {
			if err := tx.Put(store.Indexes, key, new.ID); err != nil {
				return err
			}
		}
	}
	delta := map[string]int{}
	if old != nil {
		delta[old.ProjectID]--
	}
	if new != nil {
		delta[new.ProjectID]++
	}
	return addCounts(tx, idxFIPCount, delta)
}

// addCounts adds delta (by project, or by subnet) to the counts under
// prefix.
func addCounts(tx store.Txn, prefix string, delta map[string]int) error {
	for _, project := range slices.Sorted(maps.Keys(delta)) {
		d := delta[project]
		if d == 0 {
			continue
		}
		n, err := countOf(tx, prefix, project)
		if err != nil {
			return err
		}
		if n += d; n == 0 {
			err = tx.Delete(store.Indexes, prefix+escapeKey(project))
		} else {
			err = tx.Put(store.Indexes, prefix+escapeKey(project), n)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func countOf(r store.Reader, prefix, project string) (int, error) {
	var n int
	err := r.Get(store.Indexes, prefix+escapeKey(project), &n)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	return n, err
}

// fipsOfPort and fipsOfRouter read the floating IPs associated with a
// port, translated by a router.
func fipsOfPort(r store.Reader, portID string) ([]model.FloatingIP, error) {
	return indexed[model.FloatingIP](r, store.FloatingIPs, idxFIPPort+escapeKey(portID)+"/")
}

func fipsOfRouter(r store.Reader, routerID string) ([]model.FloatingIP, error) {
	return indexed[model.FloatingIP](r, store.FloatingIPs, idxFIPRouter+escapeKey(routerID)+"/")
}

// indexedInstance is what the indexes know of an instance.
type indexedInstance struct {
	ID        string `json:"id"`
	ProjectID string `json:"project_id"`
	Name      string `json:"name"`
	Netns     string `json:"nsnet:netns"`
	Host      string `json:"host"`
}

func instanceIndexedOf(v any, netnsPrefix string) (indexedInstance, error) {
	var in indexedInstance
	switch v := v.(type) {
	case model.Instance:
		in = indexedInstance{ID: v.ID, ProjectID: v.ProjectID, Name: v.Name, Netns: v.Netns, Host: v.Host}
	case *model.Instance:
		in = indexedInstance{ID: v.ID, ProjectID: v.ProjectID, Name: v.Name, Netns: v.Netns, Host: v.Host}
	default:
		raw, err := json.Marshal(v)
		if err != nil {
			return in, err
		}
		if err := json.Unmarshal(raw, &in); err != nil {
			return in, err
		}
	}
	if in.Netns == "" {
		// Stored before instances kept their namespace's name.
		in.Netns = netnsPrefix + in.Name
	}
	return in, nil
}

// entries are the keys of an instance: its name in its project, and its
// namespace.
func (in *indexedInstance) entries() []string {
	return []string{instNameKey(in.ProjectID, in.Name), instNetnsKey(in.Netns)}
}

func instNetnsKey(netns string) string { return idxInstNetns + escapeKey(netns) }

func instNameKey(project, name string) string {
	return idxInstName + escapeKey(project) + "/" + escapeKey(name)
}

func storedInstance(r store.Reader, id, netnsPrefix string) (*indexedInstance, error) {
	raw, err := store.Get[json.RawMessage](r, store.Instances, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read instance %s: %w", id, err)
	}
	in, err := instanceIndexedOf(raw, netnsPrefix)
	in.ID = id
	return &in, err
}

// indexPutInstance moves the entries of an instance from old (nil: none)
// to new (nil: deleted), and its count from its old host to its new one.
// An entry naming another instance is that one's (two instances never
// share one: creates check them).
func indexPutInstance(tx store.Txn, old, new *indexedInstance) error {
	delta := map[string]int{}
	if old != nil && old.Host != "" {
		delta[old.Host]--
	}
	if new != nil && new.Host != "" {
		delta[new.Host]++
	}
	if err := addCounts(tx, idxInstHost, delta); err != nil {
		return err
	}
	if old != nil {
		for _, key := range old.entries() {
			if holder, ok, err := getIndex(tx, key); err != nil {
				return err
			} else if ok && holder == old.ID {
				if err := tx.Delete(store.Indexes, key); err != nil {
					return err
				}
			}
		}
	}
	if new != nil {
		for _, key := range new.entries() {
			if err := tx.Put(store.Indexes, key, new.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

// instanceHolding is the instance that holds a name in a project, or a
// namespace; "" when none does.
func instanceHolding(r store.Reader, key string) (string, error) {
	id, _, err := getIndex(r, key)
	return id, err
}

// wantIndexes is every index entry the ports of a snapshot call for: what
// rebuildIndexes compares the store's entries with, and what the tests
// compare them with after random changes.
func wantIndexes(r store.Reader, netnsPrefix string) (map[string]json.RawMessage, error) {
	want := map[string]json.RawMessage{}
	put := func(key string, v any) error {
		raw, err := json.Marshal(v)
		want[key] = raw
		return err
	}
	used := map[string][]netip.Addr{}
	counts, ipCounts := map[string]int{}, map[string]int{}
	err := r.List(store.Ports, func(id string, raw []byte) error {
		var p indexedPort
		if err := json.Unmarshal(raw, &p); err != nil {
			return fmt.Errorf("decode port %s: %w", id, err)
		}
		if p.MACAddress != "" {
			if err := put(macKey(p.NetworkID, p.MACAddress), p.ID); err != nil {
				return err
			}
		}
		for _, ip := range p.FixedIPs {
			a, err := netip.ParseAddr(ip.IPAddress)
			if err != nil {
				return fmt.Errorf("port %s: %w", id, err)
			}
			if err := put(ipKey(ip.SubnetID, a), p.ID); err != nil {
				return err
			}
			used[ip.SubnetID] = append(used[ip.SubnetID], a)
		}
		if err := put(netKey(p.NetworkID, p.ID), p.ID); err != nil {
			return err
		}
		if p.DeviceID != "" {
			if err := put(devPrefix(p.DeviceID)+p.ID, p.ID); err != nil {
				return err
			}
		}
		for _, sn := range p.rifSubnets() {
			if err := put(rifPrefix(sn)+p.ID, p.ID); err != nil {
				return err
			}
		}
		for _, k := range p.groupKeys() {
			if err := put(k, p.ID); err != nil {
				return err
			}
		}
		for _, ip := range p.FixedIPs {
			ipCounts[ip.SubnetID]++
		}
		if p.quotaCounted() {
			counts[p.ProjectID]++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	fipCounts := map[string]int{}
	err = r.List(store.FloatingIPs, func(id string, raw []byte) error {
		var f indexedFIP
		if err := json.Unmarshal(raw, &f); err != nil {
			return fmt.Errorf("decode floating IP %s: %w", id, err)
		}
		for _, key := range f.entries() {
			if err := put(key, f.ID); err != nil {
				return err
			}
		}
		fipCounts[f.ProjectID]++
		return nil
	})
	if err != nil {
		return nil, err
	}
	hostCounts := map[string]int{}
	err = r.List(store.Instances, func(id string, raw []byte) error {
		in, err := instanceIndexedOf(json.RawMessage(raw), netnsPrefix)
		if err != nil {
			return fmt.Errorf("decode instance %s: %w", id, err)
		}
		in.ID = id
		for _, key := range in.entries() {
			if err := put(key, in.ID); err != nil {
				return err
			}
		}
		if in.Host != "" {
			hostCounts[in.Host]++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, kind := range slices.Sorted(maps.Keys(keyedKinds)) {
		err = r.List(kind, func(id string, raw []byte) error {
			keys, err := keyedKinds[kind](id, raw)
			if err != nil {
				return fmt.Errorf("decode %s %s: %w", kind, id, err)
			}
			for _, key := range keys {
				if err := put(key, id); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	for host, n := range hostCounts {
		if err := put(idxInstHost+escapeKey(host), n); err != nil {
			return nil, err
		}
	}
	for project, n := range fipCounts {
		if err := put(idxFIPCount+escapeKey(project), n); err != nil {
			return nil, err
		}
	}
	for subnet, addrs := range used {
		slicesSortAddrs(addrs)
		for i := 0; i < len(addrs); {
			j := i
			for j+1 < len(addrs) && (addrs[j+1] == addrs[j] || addrs[j+1] == addrs[j].Next()) {
				j++
			}
			if err := put(usedPrefix(subnet)+addrKey(addrs[j]), addrKey(addrs[i])); err != nil {
				return nil, err
			}
			i = j + 1
		}
	}
	for project, n := range counts {
		if err := put(idxCount+escapeKey(project), n); err != nil {
			return nil, err
		}
	}
	for subnet, n := range ipCounts {
		if err := put(idxIPN+escapeKey(subnet), n); err != nil {
			return nil, err
		}
	}
	return want, nil
}

func slicesSortAddrs(addrs []netip.Addr) {
	slices.SortFunc(addrs, func(a, b netip.Addr) int { return a.Compare(b) })
}

// indexDiff is what rebuildIndexes would change: the entries to put (with
// their values) and the ids of those to delete.
func indexDiff(r store.Reader, netnsPrefix string) (put map[string]json.RawMessage, stale []string, err error) {
	want, err := wantIndexes(r, netnsPrefix)
	if err != nil {
		return nil, nil, err
	}
	err = r.List(store.Indexes, func(id string, raw []byte) error {
		if w, ok := want[id]; ok && string(w) == string(raw) {
			delete(want, id)
		} else if !ok {
			stale = append(stale, id)
		}
		return nil
	})
	return want, stale, err
}

// indexSources are the kinds index entries derive from: only a write of
// one of them changes what the indexes should hold.
var indexSources = slices.Concat([]store.Kind{store.Ports, store.FloatingIPs, store.Instances}, slices.Sorted(maps.Keys(keyedKinds)))

// errSourcesMoved ends a batch of rebuildIndexes whose diff is out of
// date: a record the indexes derive from changed since it was computed.
var errSourcesMoved = errors.New("indexed records changed since the diff")

// indexWrite is one entry of an index diff: put raw, or delete (nil).
type indexWrite struct {
	key string
	raw json.RawMessage
}

// diffWrites orders a diff: deletions, then puts, each in key order.
func diffWrites(put map[string]json.RawMessage, stale []string) []indexWrite {
	out := make([]indexWrite, 0, len(put)+len(stale))
	for _, key := range slices.Sorted(slices.Values(stale)) {
		out = append(out, indexWrite{key: key})
	}
	for _, key := range slices.Sorted(maps.Keys(put)) {
		out = append(out, indexWrite{key, put[key]})
	}
	return out
}

func applyIndexWrites(tx store.Txn, writes []indexWrite) error {
	for _, w := range writes {
		var err error
		if w.raw == nil {
			err = tx.Delete(store.Indexes, w.key)
		} else {
			err = tx.Put(store.Indexes, w.key, w.raw)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// rebuildIndexes makes the store's index entries those its records call
// for, writing only what differs, store.SplitWrites entries per
// transaction: a store written before the indexes existed, or filled
// without the service, may need tens of thousands, far more than one etcd
// transaction takes (--max-txn-ops).
//
// Each batch is consistent on its own: it writes entries of the diff
// computed on a snapshot at revision R, and commits only if no record the
// indexes derive from changed since R — the store's change log says none
// did up to the batch's snapshot, and the batch reads each source kind,
// so that on etcd a write to one after that snapshot makes its commit
// conflict (bbolt runs one writer at a time). When one did, the diff is
// computed again. A store without a change log, or one that no longer
// knows R, computes the diff in each batch's own transaction instead:
// a read of every source per batch, but as consistent. Every batch is a
// pure function of its snapshot, so etcd may run it again; entries are
// written whole and never depend on the batches before, so a crash
// between batches leaves entries that are each right, and the next check
// (the next start's, or the next request's) writes the rest.
func rebuildIndexes(ctx context.Context, st store.Store, netnsPrefix string) error {
	log, _ := st.(store.ChangeLog)
	for {
		var rev int64
		var writes []indexWrite
		if err := st.View(ctx, func(r store.Reader) error {
			rev = r.Revision()
			put, stale, err := indexDiff(r, netnsPrefix)
			writes = diffWrites(put, stale)
			return err
		}); err != nil {
			return err
		}
		if len(writes) == 0 {
			return nil
		}
		if log == nil {
			if err := rebuildIndexBatch(ctx, st, netnsPrefix); err != nil {
				return err
			}
			continue
		}
		if _, ok := log.ChangedSince(rev); !ok {
			if err := rebuildIndexBatch(ctx, st, netnsPrefix); err != nil {
				return err
			}
			continue
		}
		for batch := range slices.Chunk(writes, store.SplitWrites) {
			_, err := st.Update(ctx, func(tx store.Txn) error {
				for _, kind := range indexSources {
					// A read of the kind (of the empty id alone): on etcd,
					// a write to it after this snapshot fails the commit.
					if err := tx.Range(kind, "", "\x00", func(string, []byte) error { return nil }); err != nil {
						return err
					}
				}
				changes, ok := log.ChangedSince(rev)
				if !ok {
					return errSourcesMoved
				}
				snap := tx.Revision()
				for _, c := range changes {
					if c.Rev <= snap && slices.Contains(indexSources, c.Kind) {
						return errSourcesMoved
					}
				}
				return applyIndexWrites(tx, batch)
			})
			if errors.Is(err, errSourcesMoved) {
				break
			}
			if err != nil {
				return err
			}
		}
	}
}

// rebuildIndexBatch computes the index diff in its own transaction and
// writes its first store.SplitWrites entries.
func rebuildIndexBatch(ctx context.Context, st store.Store, netnsPrefix string) error {
	_, err := st.Update(ctx, func(tx store.Txn) error {
		put, stale, err := indexDiff(tx, netnsPrefix)
		if err != nil {
			return err
		}
		writes := diffWrites(put, stale)
		return applyIndexWrites(tx, writes[:min(len(writes), store.SplitWrites)])
	})
	return err
}

// indexCheck runs rebuildIndexes once per Service, before its first
// request; a failed check is tried again by the next request.
type indexCheck struct {
	// netnsPrefix names the namespaces of instances stored without
	// theirs (see Service.netnsOf).
	netnsPrefix string

	mu   sync.Mutex
	done atomic.Bool
}

func (c *indexCheck) ensure(ctx context.Context, st store.Store) error {
	if c.done.Load() {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done.Load() {
		return nil
	}
	// Read first: a store whose indexes are whole (every one the
	// service alone wrote) takes no write transaction.
	var whole bool
	if err := st.View(ctx, func(r store.Reader) error {
		put, stale, err := indexDiff(r, c.netnsPrefix)
		whole = len(put) == 0 && len(stale) == 0
		return err
	}); err != nil {
		return fmt.Errorf("check the store's indexes: %w", err)
	}
	if !whole {
		if err := rebuildIndexes(ctx, st, c.netnsPrefix); err != nil {
			return fmt.Errorf("rebuild the store's indexes: %w", err)
		}
	}
	c.done.Store(true)
	return nil
}

// stored reads what the indexes know (T: the fields they use) of the
// stored record kind/id; nil when there is none.
func stored[T any](r store.Reader, kind store.Kind, id string) (*T, error) {
	v, err := store.Get[T](r, kind, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s/%s: %w", kind, id, err)
	}
	return &v, nil
}

// storedRaw is the stored record kind/id; nil when there is none.
func storedRaw(r store.Reader, kind store.Kind, id string) ([]byte, error) {
	raw, err := store.Get[json.RawMessage](r, kind, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s/%s: %w", kind, id, err)
	}
	return raw, nil
}
