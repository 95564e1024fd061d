package service

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

func jsonAttrs(t *testing.T, m map[string]any) Attrs {
	t.Helper()
	out := Attrs{}
	for k, v := range m {
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		out[k] = raw
	}
	return out
}

// TestIndexesMatchAScan: after every one of a few hundred random port
// creates (single and bulk, with and without addresses and MACs of their
// own, some refused), updates and deletes — every write retried once, as
// etcd does, and some with another writer committing between the
// discarded attempt and the real one — the indexes the store holds are
// exactly those a scan of the ports calls for, and each indexed answer
// (first free address, holders, ports of a network and of a device,
// quota count) is the one a scan of the ports gives.
func TestIndexesMatchAScan(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { checkIndexesAgainstScan(t, seed) })
	}
}

func checkIndexesAgainstScan(t *testing.T, seed uint64) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 16))
	b, err := store.OpenBolt(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	retry := store.NewRetrying(b)
	svc := New(Config{Store: retry, NetnsPrefix: "t-", Quotas: map[string]int{"port": 40}})
	direct := New(Config{Store: b, NetnsPrefix: "t-", Quotas: map[string]int{"port": 40}})

	var networks []model.Network
	var subnets []model.Subnet
	for i, spec := range []map[string]any{
		// A small IPv4 subnet with two pools, so that it fills up and
		// ranges meet; a dual-stack network with SLAAC (EUI-64); a
		// stateful IPv6 one.
		{"cidr": "10.0.0.0/27", "allocation_pools": []map[string]string{{"start": "10.0.0.2", "end": "10.0.0.9"}, {"start": "10.0.0.12", "end": "10.0.0.30"}}},
		{"cidr": "10.1.0.0/28"},
		{"cidr": "fd00:1::/64", "ip_version": 6, "ipv6_address_mode": "slaac", "ipv6_ra_mode": "slaac"},
		{"cidr": "fd00:2::/120", "ip_version": 6, "ipv6_address_mode": "dhcpv6-stateful", "ipv6_ra_mode": "dhcpv6-stateful"},
	} {
		if i < 2 || i == 3 {
			n, err := svc.CreateNetwork(ctx, jsonAttrs(t, map[string]any{"name": fmt.Sprint("n", i)}))
			if err != nil {
				t.Fatal(err)
			}
			networks = append(networks, n.Object)
		}
		net := networks[len(networks)-1]
		spec["network_id"] = net.ID
		if spec["ip_version"] == nil {
			spec["ip_version"], spec["enable_dhcp"] = 4, false
		}
		sn, err := svc.CreateSubnet(ctx, jsonAttrs(t, spec))
		if err != nil {
			t.Fatal(err)
		}
		subnets = append(subnets, sn.Object)
	}
	// Floating IPs of an external network, translated by a router with
	// an interface on the second subnet.
	ext, err := svc.CreateNetwork(ctx, jsonAttrs(t, map[string]any{"name": "ext", "router:external": true}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateSubnet(ctx, jsonAttrs(t, map[string]any{"network_id": ext.Object.ID, "cidr": "172.16.0.0/26", "ip_version": 4, "enable_dhcp": false})); err != nil {
		t.Fatal(err)
	}
	router, err := svc.CreateRouter(ctx, jsonAttrs(t, map[string]any{"name": "r", "external_gateway_info": map[string]any{"network_id": ext.Object.ID}}))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.AddRouterInterface(ctx, router.Object.ID, jsonAttrs(t, map[string]any{"subnet_id": subnets[1].ID})); err != nil {
		t.Fatal(err)
	}
	// An address group some rules name as their remote.
	ag, err := svc.CreateAddressGroup(ctx, jsonAttrs(t, map[string]any{"name": "office", "addresses": []string{"192.0.2.0/24"}}))
	if err != nil {
		t.Fatal(err)
	}
	// A QoS policy some ports have as their own.
	qos, err := svc.CreateQosPolicy(ctx, jsonAttrs(t, map[string]any{"name": "gold"}))
	if err != nil {
		t.Fatal(err)
	}
	ports := func() []model.Port {
		var out []model.Port
		b.View(ctx, func(r store.Reader) error {
			var err error
			out, err = store.List[model.Port](r, store.Ports)
			return err
		})
		return out
	}
	fipPort := func() any {
		var on []string
		for _, p := range ports() {
			if p.NetworkID == subnets[1].NetworkID && p.DeviceOwner == "" && len(p.FixedIPs) > 0 {
				on = append(on, p.ID)
			}
		}
		if len(on) == 0 || rng.IntN(4) == 0 {
			return nil
		}
		return on[rng.IntN(len(on))]
	}
	fips := func() []model.FloatingIP {
		var out []model.FloatingIP
		b.View(ctx, func(r store.Reader) error {
			var err error
			out, err = store.List[model.FloatingIP](r, store.FloatingIPs)
			return err
		})
		return out
	}
	devices := []string{"", "dev-a", "dev-b", "dev/a", "dev%2Fa"}
	macs := []string{"fa:16:3e:00:00:01", "fa:16:3e:00:00:02", "fa:16:3e:00:00:03"}
	addrOf := func(sn model.Subnet) string {
		p := netip.MustParsePrefix(sn.CIDR)
		a := p.Addr()
		for range 1 + rng.IntN(20) {
			a = a.Next()
		}
		return a.String()
	}
	portBody := func() map[string]any {
		net := networks[rng.IntN(len(networks))]
		body := map[string]any{"network_id": net.ID, "device_id": devices[rng.IntN(len(devices))]}
		if rng.IntN(4) == 0 {
			body["mac_address"] = macs[rng.IntN(len(macs))]
		}
		switch rng.IntN(4) {
		case 0:
			var on []model.Subnet
			for _, sn := range subnets {
				if sn.NetworkID == net.ID {
					on = append(on, sn)
				}
			}
			sn := on[rng.IntN(len(on))]
			body["fixed_ips"] = []map[string]string{{"subnet_id": sn.ID, "ip_address": addrOf(sn)}}
		case 1:
			body["fixed_ips"] = []map[string]string{}
		}
		return body
	}
	pick := func() (model.Port, bool) {
		all := ports()
		if len(all) == 0 {
			return model.Port{}, false
		}
		return all[rng.IntN(len(all))], true
	}

	var refused int
	associated, forwarded := false, false
	for step := range 400 {
		var err error
		what := ""
		if rng.IntN(8) == 0 {
			// Another writer commits between the discarded attempt
			// and the real one.
			retry.Between(func(context.Context) {
				direct.CreatePort(ctx, jsonAttrs(t, portBody()))
			})
		}
		switch op := rng.IntN(21); {
		case op >= 19:
			// Security group rules: some the same as one the group
			// has (refused), some deleted.
			var rules []model.SecurityGroupRule
			var groups []model.SecurityGroup
			b.View(ctx, func(r store.Reader) error {
				if rules, err = store.List[model.SecurityGroupRule](r, store.SecurityGroupRules); err != nil {
					return err
				}
				groups, err = store.List[model.SecurityGroup](r, store.SecurityGroups)
				return err
			})
			switch {
			case len(groups) < 2:
				what = "create security group"
				_, err = svc.CreateSecurityGroup(ctx, jsonAttrs(t, map[string]any{"name": fmt.Sprint("g", len(groups))}))
			case op == 19 || len(rules) == 0:
				g := groups[rng.IntN(len(groups))]
				body := map[string]any{"security_group_id": g.ID, "direction": "ingress", "protocol": "tcp",
					"port_range_min": 20 + rng.IntN(3), "port_range_max": 22}
				if rng.IntN(2) == 0 {
					body["remote_address_group_id"] = ag.Object.ID
				}
				what = fmt.Sprintf("create rule %v", body)
				_, err = svc.CreateSecurityGroupRule(ctx, jsonAttrs(t, body))
			default:
				rule := rules[rng.IntN(len(rules))]
				what = "delete rule " + rule.ID
				_, err = svc.DeleteSecurityGroupRule(ctx, rule.ID)
			}
		case op >= 17:
			// Routers: with and without a gateway, their interfaces on
			// the IPv4 subnets added and removed. The first router stays
			// as it is: the floating IPs need it.
			var routers []model.Router
			b.View(ctx, func(r store.Reader) error {
				routers, err = store.List[model.Router](r, store.Routers)
				return err
			})
			routers = slices.DeleteFunc(routers, func(rt model.Router) bool { return rt.ID == router.Object.ID })
			var rt model.Router
			if len(routers) > 0 {
				rt = routers[rng.IntN(len(routers))]
			}
			sn := subnets[rng.IntN(2)]
			switch n := rng.IntN(5); {
			case n == 0 || len(routers) == 0:
				body := map[string]any{"name": "r2"}
				if rng.IntN(2) == 0 {
					body["external_gateway_info"] = map[string]any{"network_id": ext.Object.ID}
				}
				what = fmt.Sprintf("create router %v", body)
				_, err = svc.CreateRouter(ctx, jsonAttrs(t, body))
			case n == 1:
				var gw any
				if rt.ExternalGatewayInfo == nil {
					gw = map[string]any{"network_id": ext.Object.ID}
				}
				what = fmt.Sprintf("set the gateway of %s to %v", rt.ID, gw)
				_, err = svc.UpdateRouter(ctx, rt.ID, jsonAttrs(t, map[string]any{"external_gateway_info": gw}))
			case n == 2:
				what = fmt.Sprintf("add an interface on %s to %s", sn.CIDR, rt.ID)
				_, _, err = svc.AddRouterInterface(ctx, rt.ID, jsonAttrs(t, map[string]any{"subnet_id": sn.ID}))
			case n == 3:
				what = fmt.Sprintf("remove the interface on %s from %s", sn.CIDR, rt.ID)
				_, _, err = svc.RemoveRouterInterface(ctx, rt.ID, jsonAttrs(t, map[string]any{"subnet_id": sn.ID}))
			default:
				what = "delete router " + rt.ID
				_, err = svc.DeleteRouter(ctx, rt.ID)
			}
		case op >= 15:
			var pfs []model.PortForwarding
			b.View(ctx, func(r store.Reader) error {
				pfs, err = store.List[model.PortForwarding](r, store.PortForwardings)
				return err
			})
			all, port := fips(), fipPort()
			switch {
			case (op == 15 || len(pfs) == 0) && len(all) > 0 && port != nil:
				// A free floating IP and the port's IPv4 address when
				// there are (an associated one, or an IPv6 address, is
				// refused): a sequence that never made a forwarding would
				// not test their indexes.
				free := slices.DeleteFunc(slices.Clone(all), func(f model.FloatingIP) bool { return f.PortID != nil })
				if len(free) == 0 {
					free = all
				}
				f := free[rng.IntN(len(free))]
				var addr string
				for _, p := range ports() {
					if p.ID != port {
						continue
					}
					addr = p.FixedIPs[0].IPAddress
					for _, ip := range p.FixedIPs {
						if a, err := netip.ParseAddr(ip.IPAddress); err == nil && a.Is4() {
							addr = ip.IPAddress
							break
						}
					}
				}
				body := map[string]any{"protocol": "tcp", "internal_port_id": port, "internal_ip_address": addr,
					"internal_port": 1 + rng.IntN(3), "external_port": 1 + rng.IntN(3)}
				what = fmt.Sprintf("create port forwarding on %s %v", f.ID, body)
				_, err = svc.CreatePortForwarding(ctx, f.ID, jsonAttrs(t, body))
			case len(pfs) > 0:
				pf := pfs[rng.IntN(len(pfs))]
				what = "delete port forwarding " + pf.ID
				_, err = svc.DeletePortForwarding(ctx, pf.FloatingIPID, pf.ID)
			default:
				continue
			}
		case op >= 13:
			var insts []model.Instance
			b.View(ctx, func(r store.Reader) error {
				insts, err = store.List[model.Instance](r, store.Instances)
				return err
			})
			if op == 13 || len(insts) == 0 {
				name := []string{"vm", "vm-2", "a.b", "vm/3"}[rng.IntN(4)]
				what = "create instance " + name
				_, err = svc.CreateInstance(ctx, jsonAttrs(t, map[string]any{"name": name}))
			} else {
				in := insts[rng.IntN(len(insts))]
				what = "delete instance " + in.Name
				_, err = svc.DeleteInstance(ctx, in.ID)
			}
		case op >= 10:
			all := fips()
			switch {
			case op == 10 || len(all) == 0:
				body := map[string]any{"floating_network_id": ext.Object.ID}
				if port := fipPort(); port != nil {
					body["port_id"] = port
				}
				what = fmt.Sprintf("create floating IP %v", body)
				_, err = svc.CreateFloatingIP(ctx, jsonAttrs(t, body))
			case op == 11:
				f := all[rng.IntN(len(all))]
				body := map[string]any{"port_id": fipPort()}
				what = fmt.Sprintf("update floating IP %s %v", f.ID, body)
				_, err = svc.UpdateFloatingIP(ctx, f.ID, jsonAttrs(t, body))
			default:
				f := all[rng.IntN(len(all))]
				what = "delete floating IP " + f.ID
				_, err = svc.DeleteFloatingIP(ctx, f.ID)
			}
		case op < 4:
			body := portBody()
			what = fmt.Sprintf("create %v", body)
			_, err = svc.CreatePort(ctx, jsonAttrs(t, body))
		case op < 5:
			var items []Attrs
			for range 1 + rng.IntN(3) {
				items = append(items, jsonAttrs(t, portBody()))
			}
			what = "bulk create"
			_, err = svc.CreatePorts(ctx, items)
		case op < 8:
			p, ok := pick()
			if !ok || p.DeviceOwner != "" || p.NetworkID == ext.Object.ID {
				continue // nsnet's own ports change with their owners
			}
			body := map[string]any{}
			switch rng.IntN(5) {
			case 4:
				var groups []model.SecurityGroup
				b.View(ctx, func(r store.Reader) error {
					groups, err = store.List[model.SecurityGroup](r, store.SecurityGroups)
					return err
				})
				in := []string{}
				for _, g := range groups {
					if rng.IntN(2) == 0 {
						in = append(in, g.ID)
					}
				}
				body["security_groups"] = in
				if rng.IntN(2) == 0 {
					body["qos_policy_id"] = qos.Object.ID
				} else {
					body["qos_policy_id"] = nil
				}
			case 0:
				body["mac_address"] = nil // a new MAC
			case 1:
				body["device_id"] = devices[rng.IntN(len(devices))]
			case 2:
				body["mac_address"] = macs[rng.IntN(len(macs))]
			case 3:
				var on []model.Subnet
				for _, sn := range subnets {
					if sn.NetworkID == p.NetworkID && !sn.IsAutoAddress() {
						on = append(on, sn)
					}
				}
				sn := on[rng.IntN(len(on))]
				if rng.IntN(2) == 0 {
					body["fixed_ips"] = []map[string]string{{"subnet_id": sn.ID}}
				} else {
					body["fixed_ips"] = []map[string]string{{"subnet_id": sn.ID, "ip_address": addrOf(sn)}}
				}
			}
			what = fmt.Sprintf("update %s %v", p.ID, body)
			_, err = svc.UpdatePort(ctx, p.ID, jsonAttrs(t, body))
		default:
			p, ok := pick()
			if !ok {
				continue
			}
			what = "delete " + p.ID
			_, err = svc.DeletePort(ctx, p.ID)
		}
		retry.Between(nil)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("step %d, %s: %v", step, what, err)
			}
			refused++
		}
		checkIndexes(t, b, subnets, qos.Object.ID, fmt.Sprintf("step %d, %s (err %v)", step, what, err))
		for _, f := range fips() {
			associated = associated || f.PortID != nil
		}
		b.View(ctx, func(r store.Reader) error {
			return r.List(store.PortForwardings, func(string, []byte) error { forwarded = true; return nil })
		})
	}
	if !forwarded {
		t.Error("no port forwarding was ever made: the sequence does not test their indexes")
	}
	if !associated {
		t.Error("no floating IP was ever associated: the sequence does not test their indexes")
	}
	if refused == 0 || refused > 330 {
		t.Errorf("%d of 400 writes refused: the sequence does not test both sides", refused)
	}
}

// checkIndexes compares the store's index entries and every indexed
// answer with a scan of the ports.
func checkIndexes(t *testing.T, st store.Store, subnets []model.Subnet, qosID, after string) {
	t.Helper()
	err := st.View(context.Background(), func(r store.Reader) error {
		put, stale, err := indexDiff(r, "t-")
		if err != nil {
			return err
		}
		if len(put) > 0 || len(stale) > 0 {
			t.Fatalf("after %s: indexes differ from a scan: missing or wrong %v, stale %v", after, put, stale)
		}
		all, err := store.List[model.Port](r, store.Ports)
		if err != nil {
			return err
		}
		holders := map[string]string{} // subnet/address → port
		for _, p := range all {
			for _, ip := range p.FixedIPs {
				holders[ip.SubnetID+"/"+ip.IPAddress] = p.ID
			}
			if h, ok, err := macHolder(r, p.NetworkID, p.MACAddress); err != nil || !ok || h != p.ID {
				t.Errorf("after %s: MAC %s holder %q %v %v, want %s", after, p.MACAddress, h, ok, err, p.ID)
			}
		}
		for _, sn := range subnets {
			prefix := netip.MustParsePrefix(sn.CIDR)
			start := prefix.Addr()
			end := start
			for range min(64, 1<<(prefix.Addr().BitLen()-prefix.Bits())) - 1 {
				end = end.Next()
			}
			var want netip.Addr
			for a := start; a.Compare(end) <= 0; a = a.Next() {
				if _, held := holders[sn.ID+"/"+a.String()]; !held {
					want = a
					break
				}
			}
			got, ok, err := firstFree(r, sn.ID, start, end, func(netip.Addr) bool { return false })
			if err != nil {
				return err
			}
			if got != want || ok != want.IsValid() {
				t.Errorf("after %s: first free of %s in [%s, %s] = %s %v, a scan says %s", after, sn.CIDR, start, end, got, ok, want)
			}
			for a := start; a.Compare(end) <= 0; a = a.Next() {
				h, ok, err := ipHolder(r, sn.ID, a)
				if err != nil {
					return err
				}
				if h != holders[sn.ID+"/"+a.String()] || ok != (h != "") {
					t.Errorf("after %s: holder of %s = %q, a scan says %q", after, a, h, holders[sn.ID+"/"+a.String()])
				}
			}
		}
		byNet, byDev, count := map[string][]string{}, map[string][]string{}, map[string]int{}
		for _, p := range all {
			byNet[p.NetworkID] = append(byNet[p.NetworkID], p.ID)
			if p.DeviceID != "" {
				byDev[p.DeviceID] = append(byDev[p.DeviceID], p.ID)
			}
			if p.DeviceOwner != model.DeviceOwnerDHCP {
				count[p.ProjectID]++
			}
		}
		idsOf := func(ps []model.Port) []string {
			var ids []string
			for _, p := range ps {
				ids = append(ids, p.ID)
			}
			return ids
		}
		for _, sn := range subnets {
			got, err := portsOn(r, sn.NetworkID)
			if err != nil {
				return err
			}
			if !slices.Equal(idsOf(got), byNet[sn.NetworkID]) {
				t.Errorf("after %s: ports of network %s %v, a scan says %v", after, sn.NetworkID, idsOf(got), byNet[sn.NetworkID])
			}
		}
		for _, dev := range []string{"dev-a", "dev-b", "dev/a", "dev%2Fa"} {
			got, err := portsOfDevice(r, dev)
			if err != nil {
				return err
			}
			if !slices.Equal(idsOf(got), byDev[dev]) {
				t.Errorf("after %s: ports of device %q %v, a scan says %v", after, dev, idsOf(got), byDev[dev])
			}
		}
		fips, err := store.List[model.FloatingIP](r, store.FloatingIPs)
		if err != nil {
			return err
		}
		byPort, byRouter, fipCount := map[string][]string{}, map[string][]string{}, map[string]int{}
		for _, f := range fips {
			if f.PortID != nil {
				byPort[*f.PortID] = append(byPort[*f.PortID], f.ID)
			}
			if f.RouterID != nil {
				byRouter[*f.RouterID] = append(byRouter[*f.RouterID], f.ID)
			}
			fipCount[f.ProjectID]++
		}
		fipIDs := func(fs []model.FloatingIP) []string {
			var ids []string
			for _, f := range fs {
				ids = append(ids, f.ID)
			}
			return ids
		}
		for _, p := range all {
			got, err := fipsOfPort(r, p.ID)
			if err != nil {
				return err
			}
			if !slices.Equal(fipIDs(got), byPort[p.ID]) {
				t.Errorf("after %s: floating IPs of port %s %v, a scan says %v", after, p.ID, fipIDs(got), byPort[p.ID])
			}
			if p.DeviceOwner == model.DeviceOwnerRouterGateway {
				got, err := fipsOfRouter(r, p.DeviceID)
				if err != nil {
					return err
				}
				if !slices.Equal(fipIDs(got), byRouter[p.DeviceID]) {
					t.Errorf("after %s: floating IPs of router %s %v, a scan says %v", after, p.DeviceID, fipIDs(got), byRouter[p.DeviceID])
				}
			}
		}
		insts, err := store.List[model.Instance](r, store.Instances)
		if err != nil {
			return err
		}
		for _, name := range []string{"vm", "vm-2", "a.b", "vm/3"} {
			want := ""
			for _, in := range insts {
				if in.Name == name {
					want = in.ID
				}
			}
			got, err := instanceHolding(r, instNameKey("admin", name))
			if err != nil || got != want {
				t.Errorf("after %s: instance named %s %q %v, a scan says %q", after, name, got, err, want)
			}
		}
		for _, in := range insts {
			if got, err := instanceHolding(r, instNetnsKey(in.Netns)); err != nil || got != in.ID {
				t.Errorf("after %s: instance in %s %q %v, a scan says %q", after, in.Netns, got, err, in.ID)
			}
		}
		pfs, err := store.List[model.PortForwarding](r, store.PortForwardings)
		if err != nil {
			return err
		}
		pfOf, pfTo := map[string][]string{}, map[string][]string{}
		for _, pf := range pfs {
			pfOf[pf.FloatingIPID] = append(pfOf[pf.FloatingIPID], pf.ID)
			pfTo[pf.InternalPortID] = append(pfTo[pf.InternalPortID], pf.ID)
		}
		pfIDs := func(ps []model.PortForwarding) []string {
			var ids []string
			for _, pf := range ps {
				ids = append(ids, pf.ID)
			}
			return ids
		}
		for _, f := range fips {
			got, err := forwardingsOf(r, f.ID)
			if err != nil || !slices.Equal(pfIDs(got), pfOf[f.ID]) {
				t.Errorf("after %s: port forwardings of %s %v %v, a scan says %v", after, f.ID, pfIDs(got), err, pfOf[f.ID])
			}
		}
		for _, p := range all {
			got, err := forwardingsTo(r, p.ID)
			if err != nil || !slices.Equal(pfIDs(got), pfTo[p.ID]) {
				t.Errorf("after %s: port forwardings to %s %v %v, a scan says %v", after, p.ID, pfIDs(got), err, pfTo[p.ID])
			}
		}
		// Router interfaces and used addresses by subnet, routers by
		// gateway network, floating IPs by network, rules by group.
		rifs, ipn := map[string][]string{}, map[string]int{}
		for _, p := range all {
			for _, ip := range p.FixedIPs {
				ipn[ip.SubnetID]++
				if p.DeviceOwner == model.DeviceOwnerRouterInterface && !slices.Contains(rifs[ip.SubnetID], p.ID) {
					rifs[ip.SubnetID] = append(rifs[ip.SubnetID], p.ID)
				}
			}
		}
		for _, sn := range subnets {
			got, err := routerInterfacesOn(r, sn.ID)
			if err != nil || !slices.Equal(idsOf(got), rifs[sn.ID]) {
				t.Errorf("after %s: router interfaces on %s %v %v, a scan says %v", after, sn.CIDR, idsOf(got), err, rifs[sn.ID])
			}
			if n, err := usedIPs(r, sn.ID); err != nil || n != ipn[sn.ID] {
				t.Errorf("after %s: used IPs of %s %d %v, a scan says %d", after, sn.CIDR, n, err, ipn[sn.ID])
			}
		}
		routers, err := store.List[model.Router](r, store.Routers)
		if err != nil {
			return err
		}
		networks := map[string]bool{}
		gws, fipNet := map[string][]string{}, map[string][]string{}
		for _, rt := range routers {
			if rt.ExternalGatewayInfo != nil {
				gws[rt.ExternalGatewayInfo.NetworkID] = append(gws[rt.ExternalGatewayInfo.NetworkID], rt.ID)
				networks[rt.ExternalGatewayInfo.NetworkID] = true
			}
		}
		for _, f := range fips {
			fipNet[f.FloatingNetworkID] = append(fipNet[f.FloatingNetworkID], f.ID)
			networks[f.FloatingNetworkID] = true
		}
		for _, sn := range subnets {
			networks[sn.NetworkID] = true
		}
		for n := range networks {
			got, err := routersWithGatewayOn(r, n)
			var ids []string
			for _, rt := range got {
				ids = append(ids, rt.ID)
			}
			if err != nil || !slices.Equal(ids, gws[n]) {
				t.Errorf("after %s: routers with a gateway on %s %v %v, a scan says %v", after, n, ids, err, gws[n])
			}
			fs, err := fipsOn(r, n)
			if err != nil || !slices.Equal(fipIDs(fs), fipNet[n]) {
				t.Errorf("after %s: floating IPs on %s %v %v, a scan says %v", after, n, fipIDs(fs), err, fipNet[n])
			}
		}
		rules, err := store.List[model.SecurityGroupRule](r, store.SecurityGroupRules)
		if err != nil {
			return err
		}
		byGroup, byAG := map[string][]string{}, map[string][]string{}
		for _, rule := range rules {
			byGroup[rule.SecurityGroupID] = append(byGroup[rule.SecurityGroupID], rule.ID)
			if rule.RemoteAddressGroupID != nil {
				byAG[*rule.RemoteAddressGroupID] = append(byAG[*rule.RemoteAddressGroupID], rule.ID)
			}
		}
		ags, err := store.List[model.AddressGroup](r, store.AddressGroups)
		if err != nil {
			return err
		}
		for _, ag := range ags {
			got, err := rulesNaming(r, ag.ID)
			var ids []string
			for _, rule := range got {
				ids = append(ids, rule.ID)
			}
			if err != nil || !slices.Equal(ids, byAG[ag.ID]) {
				t.Errorf("after %s: rules naming %s %v %v, a scan says %v", after, ag.ID, ids, err, byAG[ag.ID])
			}
		}
		groups, err := store.List[model.SecurityGroup](r, store.SecurityGroups)
		if err != nil {
			return err
		}
		var withQos []string
		for _, p := range all {
			if p.QosPolicyID != nil {
				withQos = append(withQos, p.ID)
			}
		}
		if got, err := portsWithPolicy(r, qosID); err != nil || !slices.Equal(idsOf(got), withQos) {
			t.Errorf("after %s: ports with policy %s %v %v, a scan says %v", after, qosID, idsOf(got), err, withQos)
		}
		inGroup := map[string][]string{}
		for _, p := range all {
			for _, g := range p.SecurityGroups {
				if !slices.Contains(inGroup[g], p.ID) {
					inGroup[g] = append(inGroup[g], p.ID)
				}
			}
		}
		for _, g := range groups {
			ps, err := portsInGroup(r, g.ID)
			if err != nil || !slices.Equal(idsOf(ps), inGroup[g.ID]) {
				t.Errorf("after %s: ports in %s %v %v, a scan says %v", after, g.ID, idsOf(ps), err, inGroup[g.ID])
			}
			got, err := rulesOfGroup(r, g.ID)
			var ids []string
			for _, rule := range got {
				ids = append(ids, rule.ID)
			}
			if err != nil || !slices.Equal(ids, byGroup[g.ID]) {
				t.Errorf("after %s: rules of %s %v %v, a scan says %v", after, g.ID, ids, err, byGroup[g.ID])
			}
		}
		for _, project := range []string{"admin", "other"} {
			if n, err := countOf(r, idxFIPCount, project); err != nil || n != fipCount[project] {
				t.Errorf("after %s: floating IP count of %s %d %v, a scan says %d", after, project, n, err, fipCount[project])
			}
			n, err := portCount(r, project)
			if err != nil {
				return err
			}
			if n != count[project] {
				t.Errorf("after %s: port count of %s %d, a scan says %d", after, project, n, count[project])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestIndexesRebuiltFromTheStore: ports written without the service (a
// store from before the indexes, a benchmark's fill) are indexed before
// the service's first request, and a store whose indexes are whole takes
// no write to check.
func TestIndexesRebuiltFromTheStore(t *testing.T) {
	ctx := context.Background()
	b, err := store.OpenBolt(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	svc := New(Config{Store: b, NetnsPrefix: "t-"})
	net, err := svc.CreateNetwork(ctx, jsonAttrs(t, map[string]any{"name": "n"}))
	if err != nil {
		t.Fatal(err)
	}
	sn, err := svc.CreateSubnet(ctx, jsonAttrs(t, map[string]any{"network_id": net.Object.ID, "cidr": "10.0.0.0/24", "ip_version": 4, "enable_dhcp": false}))
	if err != nil {
		t.Fatal(err)
	}
	// Written behind the service's back, with a stale entry too.
	if _, err := b.Update(ctx, func(tx store.Txn) error {
		for i := 2; i < 5; i++ {
			id := fmt.Sprint("p", i)
			if err := tx.Put(store.Ports, id, model.Port{ID: id, ProjectID: "admin", NetworkID: net.Object.ID,
				MACAddress: fmt.Sprintf("fa:16:3e:00:00:%02x", i),
				FixedIPs:   []model.FixedIP{{SubnetID: sn.Object.ID, IPAddress: fmt.Sprint("10.0.0.", i)}}}); err != nil {
				return err
			}
		}
		return tx.Put(store.Indexes, idxDev+"gone/p9", "p9")
	}); err != nil {
		t.Fatal(err)
	}
	fresh := New(Config{Store: b, NetnsPrefix: "t-"})
	p, err := fresh.CreatePort(ctx, jsonAttrs(t, map[string]any{"network_id": net.Object.ID}))
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Object.FixedIPs[0].IPAddress; got != "10.0.0.5" {
		t.Errorf("first port after the fill got %s, want 10.0.0.5 (10.0.0.2-4 are the filled ports')", got)
	}
	checkIndexes(t, b, []model.Subnet{sn.Object}, "", "the rebuild")

	before := revisionOf(t, b)
	again := New(Config{Store: b, NetnsPrefix: "t-"})
	if _, err := again.GetPort(ctx, p.Object.ID); err != nil {
		t.Fatal(err)
	}
	if after := revisionOf(t, b); after != before {
		t.Errorf("checking whole indexes moved the revision from %d to %d", before, after)
	}
}

func revisionOf(t *testing.T, st store.Store) int64 {
	var rev int64
	if err := st.View(context.Background(), func(r store.Reader) error { rev = r.Revision(); return nil }); err != nil {
		t.Fatal(err)
	}
	return rev
}
