package cli

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nsnet/nsnet/internal/client"
	"github.com/nsnet/nsnet/internal/model"
)

func (a *app) subnetCommand() *cobra.Command {
	cmd := groupCommand(&cobra.Command{
		Use:   "subnet",
		Short: "Manage subnets: address ranges on a network",
		Long: `A subnet is an IP range on a network. nsnet's IPAM hands out its addresses to
ports; inside each instance the port's veth gets its address, a default
route via the subnet's gateway, and the subnet's host routes. DHCP, on by
default, serves the same settings to clients that ask.

See what an instance got with:
  nsnet exec INSTANCE -- ip addr
  nsnet exec INSTANCE -- ip route`,
	})
	cmd.AddCommand(
		a.subnetCreateCommand(),
		listCommand(a, listSpec[model.Subnet]{
			col:     client.Subnets,
			long:    "List subnets, with their network, range and gateway.",
			example: "  nsnet subnet list\n  nsnet subnet list --network blue-net",
			filters: func(cmd *cobra.Command) func(resolveFunc, url.Values) error {
				var network string
				cmd.Flags().StringVar(&network, "network", "", "only subnets of this network (name or id)")
				a.completeFlag(cmd, "network", client.Networks)
				return func(resolve resolveFunc, q url.Values) error {
					return filterBy(resolve, q, "network_id", client.Networks, network)
				}
			},
			columns: func(ctx context.Context, c *client.Client, _ []model.Subnet) ([]column[model.Subnet], error) {
				networks, err := listNames(ctx, c, client.Networks)
				if err != nil {
					return nil, err
				}
				return []column[model.Subnet]{
					{"ID", func(s model.Subnet) string { return s.ID }},
					{"NAME", func(s model.Subnet) string { return s.Name }},
					{"NETWORK", func(s model.Subnet) string { return networks.label(s.NetworkID) }},
					{"CIDR", func(s model.Subnet) string { return s.CIDR }},
					{"GATEWAY", func(s model.Subnet) string { return gatewayText(s.GatewayIP) }},
				}, nil
			},
		}),
		showCommand(a, client.Subnets, "  nsnet subnet show blue-v4"),
		a.subnetSetCommand(),
		deleteCommand(a, client.Subnets,
			"Delete subnets. A subnet a port still has an address on is refused:\ndelete or re-address the port first.",
			"  nsnet subnet delete blue-v4"),
	)
	return cmd
}

// filterBy adds key=<id of ref> to q when ref is given.
func filterBy(resolve resolveFunc, q url.Values, key string, col client.Collection, ref string) error {
	if ref == "" {
		return nil
	}
	id, err := resolve(col, ref)
	if err != nil {
		return err
	}
	q.Set(key, id)
	return nil
}

func gatewayText(gw *string) string {
	if gw == nil {
		return "none"
	}
	return *gw
}

// subnetFlags are the options subnet create and set share.
type subnetFlags struct {
	description string
	gateway     string
	pools       []string
	dns         []string
	routes      []string
}

func (f *subnetFlags) add(cmd *cobra.Command, gatewayHelp string) {
	fs := cmd.Flags()
	fs.StringVar(&f.description, "description", "", "free text")
	fs.StringVar(&f.gateway, "gateway", "", gatewayHelp)
	fs.StringArrayVar(&f.pools, "allocation-pool", nil,
		"start=IP,end=IP: a range IPAM may hand out (repeat for several)")
	fs.StringArrayVar(&f.dns, "dns-nameserver", nil, "DNS server for the subnet's instances (repeat for several)")
	fs.StringArrayVar(&f.routes, "host-route", nil,
		"destination=CIDR,gateway=IP: a route for the subnet's instances (repeat for several)")
	fs.Bool("dhcp", false, "serve DHCP on the subnet (the default)")
	fs.Bool("no-dhcp", false, "do not serve DHCP on the subnet")
}

// lists parses the list options into the API's JSON shapes.
func (f *subnetFlags) lists() (pools, dns, routes []any, err error) {
	for _, p := range f.pools {
		kv, err := parseKV("allocation-pool", p, []string{"start", "end"}, []string{"start", "end"})
		if err != nil {
			return nil, nil, nil, err
		}
		pools = append(pools, map[string]any{"start": kv["start"], "end": kv["end"]})
	}
	for _, d := range f.dns {
		dns = append(dns, d)
	}
	for _, r := range f.routes {
		kv, err := parseKV("host-route", r, []string{"destination", "gateway"}, []string{"destination", "gateway"})
		if err != nil {
			return nil, nil, nil, err
		}
		routes = append(routes, map[string]any{"destination": kv["destination"], "nexthop": kv["gateway"]})
	}
	return pools, dns, routes, nil
}

// gatewayValue maps --gateway to gateway_ip: "none" is null (no gateway),
// "auto" leaves the choice to the server (the first address).
func gatewayValue(v string) (value any, set bool) {
	switch v {
	case "", "auto":
		return nil, false
	case "none":
		return nil, true
	}
	return v, true
}

type subnetCreateFlags struct {
	subnetFlags
	network     string
	cidr        string
	ipVersion   int
	raMode      string
	addressMode string
}

func (a *app) subnetCreateCommand() *cobra.Command {
	var flags subnetCreateFlags
	var out outputFlag
	var wait waitFlags
	cmd := &cobra.Command{
		Use:   "create NAME --network NETWORK --subnet-range CIDR",
		Short: "Create a subnet on a network",
		Long: `Create a subnet: an address range on a network. Without options, the gateway
is the range's first address and the allocation pool is the rest.

An IPv6 range (--ip-version 6, implied by an IPv6 --subnet-range) takes two
more options, as in OpenStack; both are fixed once the subnet exists:

  --ipv6-address-mode  how instances get their addresses:
      slaac             each port's address is its EUI-64 address, made from
                        its MAC on the /64 the router advertises
      dhcpv6-stateless  the same address, other options (DNS) by DHCPv6
      dhcpv6-stateful   an address from the allocation pool, by DHCPv6
  --ipv6-ra-mode       what the subnet's router advertises (same values);
                        leave it unset when a router outside nsnet advertises

Set both, to the same value, for a subnet nsnet routes: slaac is the usual
choice. SLAAC and dhcpv6-stateless need a /64. A network can have an IPv4
and an IPv6 subnet (dual stack): a port gets an address on each.`,
		Example: `  nsnet subnet create blue-v4 --network blue-net --subnet-range 192.168.24.0/24
  nsnet subnet create lab --network lab-net --subnet-range 10.0.0.0/24 \
      --gateway 10.0.0.254 --allocation-pool start=10.0.0.100,end=10.0.0.199 \
      --dns-nameserver 10.0.0.53 --host-route destination=10.9.0.0/16,gateway=10.0.0.1
  nsnet subnet create transit --network t-net --subnet-range 169.254.0.0/28 --gateway none --no-dhcp
  nsnet subnet create blue-v6 --network blue-net --ip-version 6 --subnet-range 2001:db8:24::/64 \
      --ipv6-ra-mode slaac --ipv6-address-mode slaac --dns-nameserver 2001:db8::53`,
		Args: exactArgs(1, "the new subnet's name"),
	}
	flags.add(cmd)
	a.completeFlag(cmd, "network", client.Networks)
	addOutputFlag(cmd, &out)
	addWaitFlags(cmd, &wait)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := out.check(cmd); err != nil {
			return err
		}
		c, err := a.client(cmd, wait)
		if err != nil {
			return err
		}
		body, err := flags.body(cmd, args[0], finder(cmd.Context(), c))
		if err != nil {
			return err
		}
		return write(cmd, out, client.Subnets, args[0], "created", func() (json.RawMessage, client.Meta, error) {
			return client.Create[json.RawMessage](cmd.Context(), c, client.Subnets, body)
		})
	}
	return cmd
}

func (f *subnetCreateFlags) add(cmd *cobra.Command) {
	f.subnetFlags.add(cmd, "gateway address, 'auto' (the first address) or 'none' (default auto)")
	cmd.Flags().StringVar(&f.network, "network", "", "the network to add the subnet to (name or id; required)")
	cmd.Flags().StringVar(&f.cidr, "subnet-range", "", "the subnet's range, e.g. 192.168.24.0/24 (required)")
	cmd.Flags().IntVar(&f.ipVersion, "ip-version", 4, "IP version, 4 or 6 (default 4, or 6 for an IPv6 --subnet-range)")
	cmd.Flags().StringVar(&f.raMode, "ipv6-ra-mode", "", "IPv6: what the router advertises: slaac, dhcpv6-stateful or dhcpv6-stateless")
	cmd.Flags().StringVar(&f.addressMode, "ipv6-address-mode", "", "IPv6: how ports get addresses: slaac, dhcpv6-stateful or dhcpv6-stateless")
	_ = cmd.MarkFlagRequired("network")
	_ = cmd.MarkFlagRequired("subnet-range")
}

func (f *subnetCreateFlags) body(cmd *cobra.Command, name string, resolve resolveFunc) (map[string]any, error) {
	if err := exclusive(cmd, [2]string{"dhcp", "no-dhcp"}); err != nil {
		return nil, err
	}
	pools, dns, routes, err := f.lists()
	if err != nil {
		return nil, usageError{cmd, err}
	}
	networkID, err := resolve(client.Networks, f.network)
	if err != nil {
		return nil, err
	}
	version := f.ipVersion
	if !cmd.Flags().Changed("ip-version") && strings.Contains(f.cidr, ":") {
		version = 6
	}
	body := map[string]any{
		"name":       name,
		"network_id": networkID,
		"cidr":       f.cidr,
		"ip_version": version,
	}
	if f.raMode != "" {
		body["ipv6_ra_mode"] = f.raMode
	}
	if f.addressMode != "" {
		body["ipv6_address_mode"] = f.addressMode
	}
	if cmd.Flags().Changed("description") {
		body["description"] = f.description
	}
	if gw, ok := gatewayValue(f.gateway); ok {
		body["gateway_ip"] = gw
	}
	if pools != nil {
		body["allocation_pools"] = pools
	}
	if dns != nil {
		body["dns_nameservers"] = dns
	}
	if routes != nil {
		body["host_routes"] = routes
	}
	setBoolPair(cmd, body, "enable_dhcp", "dhcp", "no-dhcp")
	return body, nil
}

func (a *app) subnetSetCommand() *cobra.Command {
	var flags subnetFlags
	var out outputFlag
	var wait waitFlags
	cmd := &cobra.Command{
		Use:   "set NAME|ID",
		Short: "Change a subnet's gateway, pools, DNS servers, routes or DHCP",
		Long: `Change a subnet's attributes. Its range and network cannot change.

As in the OpenStack CLI, --allocation-pool, --dns-nameserver and --host-route
add to the subnet's current lists; --no-allocation-pool, --no-dns-nameservers
and --no-host-route empty a list first, so that the options that follow
replace it.`,
		Example: `  nsnet subnet set blue-v4 --dns-nameserver 192.0.2.53
  nsnet subnet set blue-v4 --no-dns-nameservers --dns-nameserver 192.0.2.53
  nsnet subnet set blue-v4 --gateway none`,
		Args:              exactArgs(1, "one subnet name or id"),
		ValidArgsFunction: a.completeNames(client.Subnets, 1),
	}
	flags.addSet(cmd)
	addOutputFlag(cmd, &out)
	addWaitFlags(cmd, &wait)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := out.check(cmd); err != nil {
			return err
		}
		c, err := a.client(cmd, wait)
		if err != nil {
			return err
		}
		cur, err := client.Find[model.Subnet](cmd.Context(), c, client.Subnets, args[0])
		if err != nil {
			return err
		}
		body, err := flags.setBody(cmd, cur)
		if err != nil {
			return err
		}
		if len(body) == 0 {
			return usageError{cmd, errNothingToSet}
		}
		return write(cmd, out, client.Subnets, args[0], "updated", func() (json.RawMessage, client.Meta, error) {
			return client.Update[json.RawMessage](cmd.Context(), c, client.Subnets, cur.ID, body)
		})
	}
	return cmd
}

// addSet adds the options of subnet set.
func (f *subnetFlags) addSet(cmd *cobra.Command) {
	f.add(cmd, "new gateway address, or 'none' to remove the gateway")
	addRenameFlag(cmd)
	cmd.Flags().Bool("no-allocation-pool", false, "empty the allocation pools first")
	cmd.Flags().Bool("no-dns-nameservers", false, "empty the DNS servers first")
	cmd.Flags().Bool("no-host-route", false, "empty the host routes first")
}

// setBody computes a subnet update from the flags and the subnet's current
// lists, which the list options add to.
func (f *subnetFlags) setBody(cmd *cobra.Command, cur model.Subnet) (map[string]any, error) {
	if err := exclusive(cmd, [2]string{"dhcp", "no-dhcp"}); err != nil {
		return nil, err
	}
	if f.gateway == "auto" {
		return nil, usagef(cmd, "--gateway auto is for create; give an address or none")
	}
	pools, dns, routes, err := f.lists()
	if err != nil {
		return nil, usageError{cmd, err}
	}
	body := map[string]any{}
	if cmd.Flags().Changed("description") {
		body["description"] = f.description
	}
	if gw, ok := gatewayValue(f.gateway); ok {
		body["gateway_ip"] = gw
	}
	changed := cmd.Flags().Changed
	if changed("allocation-pool") || changed("no-allocation-pool") {
		var list []any
		if !changed("no-allocation-pool") {
			for _, p := range cur.AllocationPools {
				list = append(list, map[string]any{"start": p.Start, "end": p.End})
			}
		}
		body["allocation_pools"] = append(orEmpty(list), pools...)
	}
	if changed("dns-nameserver") || changed("no-dns-nameservers") {
		var list []any
		if !changed("no-dns-nameservers") {
			for _, d := range cur.DNSNameservers {
				list = append(list, d)
			}
		}
		body["dns_nameservers"] = append(orEmpty(list), dns...)
	}
	if changed("host-route") || changed("no-host-route") {
		var list []any
		if !changed("no-host-route") {
			for _, r := range cur.HostRoutes {
				list = append(list, map[string]any{"destination": r.Destination, "nexthop": r.NextHop})
			}
		}
		body["host_routes"] = append(orEmpty(list), routes...)
	}
	setBoolPair(cmd, body, "enable_dhcp", "dhcp", "no-dhcp")
	putRename(cmd, body)
	return body, nil
}

// orEmpty makes a nil list an empty one, which JSON writes as [] (an empty
// list), not null.
func orEmpty(list []any) []any {
	if list == nil {
		return []any{}
	}
	return list
}
