package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nsnet/nsnet/internal/client"
	"github.com/nsnet/nsnet/internal/model"
)

func (a *app) portCommand() *cobra.Command {
	cmd := groupCommand(&cobra.Command{
		Use:   "port",
		Short: "Manage ports: veth pairs from a network's bridge into an instance",
		Long: `A port is an attachment to a network, with a MAC address and fixed IPs that
IPAM allocates from the network's subnets. Plugged into an instance (with
--device), it is a veth pair: the host end, tap<first 11 characters of the
port id>, is enslaved to the network's bridge; the other end is moved into
the instance's namespace and renamed (eth0, eth1, … or --interface-name),
with the port's MAC, addresses and routes.

See both ends with:
  ip link show master nsb-<network id prefix>
  nsnet exec INSTANCE -- ip addr`,
	})
	cmd.AddCommand(
		a.portCreateCommand(),
		listCommand(a, listSpec[model.Port]{
			col:  client.Ports,
			long: "List ports, with their addresses and the instance each is plugged into.",
			example: `  nsnet port list
  nsnet port list --network blue-net
  nsnet port list --device red -o json`,
			filters: func(cmd *cobra.Command) func(resolveFunc, url.Values) error {
				var network, device string
				cmd.Flags().StringVar(&network, "network", "", "only ports on this network (name or id)")
				cmd.Flags().StringVar(&device, "device", "", "only ports plugged into this instance (name or id)")
				a.completeFlag(cmd, "network", client.Networks)
				a.completeFlag(cmd, "device", client.Instances)
				return func(resolve resolveFunc, q url.Values) error {
					if err := filterBy(resolve, q, "network_id", client.Networks, network); err != nil {
						return err
					}
					return filterBy(resolve, q, "device_id", client.Instances, device)
				}
			},
			columns: a.portColumns,
		}),
		showCommand(a, client.Ports, "  nsnet port show red-eth0"),
		a.portSetCommand(),
		deleteCommand(a, client.Ports,
			"Delete ports. nsnet removes their veth pairs; their addresses and MACs\nreturn to the pool.",
			"  nsnet port delete red-eth0"),
	)
	return cmd
}

// portColumns shows the instance a port is plugged into by name, which
// costs one list of instances, made only when a port is plugged in.
func (a *app) portColumns(ctx context.Context, c *client.Client, ports []model.Port) ([]column[model.Port], error) {
	names := map[string]string{}
	for _, p := range ports {
		if p.DeviceOwner == model.DeviceOwnerCompute {
			insts, err := client.List[model.Instance](ctx, c, client.Instances, url.Values{"fields": {"id", "name"}})
			if err != nil {
				return nil, err
			}
			for _, in := range insts {
				names[in.ID] = in.Name
			}
			break
		}
	}
	return []column[model.Port]{
		{"ID", func(p model.Port) string { return p.ID }},
		{"NAME", func(p model.Port) string { return p.Name }},
		{"STATUS", func(p model.Port) string { return p.Status }},
		{"MAC", func(p model.Port) string { return p.MACAddress }},
		{"FIXED IPS", func(p model.Port) string {
			ips := make([]string, len(p.FixedIPs))
			for i, ip := range p.FixedIPs {
				ips[i] = ip.IPAddress
			}
			return strings.Join(ips, ", ")
		}},
		{"INSTANCE", func(p model.Port) string {
			if p.DeviceOwner != model.DeviceOwnerCompute {
				return p.DeviceID
			}
			return cmp.Or(names[p.DeviceID], p.DeviceID)
		}},
		{"INTERFACE", func(p model.Port) string { return p.InterfaceName }},
	}, nil
}

// portFlags are the options port create and set share.
type portFlags struct {
	description   string
	fixedIPs      []string
	mac           string
	device        string
	interfaceName string
	groups        []string
	pairs         []string
}

func (f *portFlags) add(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.description, "description", "", "free text")
	fs.StringArrayVar(&f.fixedIPs, "fixed-ip", nil,
		"subnet=SUBNET,ip-address=IP: an address on a subnet; either part may be left out (repeat for several)")
	fs.Bool("no-fixed-ip", false, "no addresses (on set: remove the current ones first)")
	fs.StringVar(&f.mac, "mac-address", "", "MAC address (default: a random fa:16:3e:… one)")
	fs.StringVar(&f.device, "device", "", "the instance to plug the port into (name or id)")
	fs.StringVar(&f.interfaceName, "interface-name", "", "the port's name inside the instance (default eth0, eth1, …)")
	fs.Bool("enable", false, "set the port administratively up (the default)")
	fs.Bool("disable", false, "set the port administratively down: its link is down")
	fs.Bool("enable-port-security", false, "enable anti-spoofing (the network's setting by default)")
	fs.Bool("disable-port-security", false, "disable anti-spoofing")
	fs.StringArrayVar(&f.groups, "security-group", nil,
		"a security group (name or id) for the port (repeatable; default: the project's default group; on set: added)")
	fs.Bool("no-security-group", false, "no security groups (on set: remove the current ones first)")
	fs.StringArrayVar(&f.pairs, "allowed-address", nil,
		"ip-address=IP|CIDR[,mac-address=MAC]: another address the port may send from (repeatable; on set: added)")
	fs.Bool("no-allowed-address", false, "no allowed address pairs (on set: remove the current ones first)")
	fs.Bool("dhcp-client", false, "let the instance configure the port's address by DHCP: nsnet sets only its link")
	fs.Bool("no-dhcp-client", false, "nsnet sets the port's address and routes in the instance (the default)")
}

// addSet adds the options only port set has.
func (f *portFlags) addSet(cmd *cobra.Command) {
	f.add(cmd)
	addRenameFlag(cmd)
	cmd.Flags().Bool("no-device", false, "unplug the port from its instance")
}

// body maps the flags to a create or update body. cur is the port on set
// (nil on create): --fixed-ip, --security-group and --allowed-address add
// to what it has.
func (f *portFlags) body(cmd *cobra.Command, resolve resolveFunc, port *model.Port) (map[string]any, error) {
	var cur []model.FixedIP
	if port != nil {
		cur = port.FixedIPs
	}
	if err := exclusive(cmd, [2]string{"enable", "disable"}, [2]string{"device", "no-device"},
		[2]string{"enable-port-security", "disable-port-security"}, [2]string{"dhcp-client", "no-dhcp-client"}); err != nil {
		return nil, err
	}
	changed := cmd.Flags().Changed
	body := map[string]any{}
	if changed("description") {
		body["description"] = f.description
	}
	if changed("fixed-ip") || changed("no-fixed-ip") {
		list := []any{}
		if !changed("no-fixed-ip") {
			for _, ip := range cur {
				list = append(list, map[string]any{"subnet_id": ip.SubnetID, "ip_address": ip.IPAddress})
			}
		}
		for _, v := range f.fixedIPs {
			ip, err := fixedIP(cmd, v, resolve)
			if err != nil {
				return nil, err
			}
			list = append(list, ip)
		}
		body["fixed_ips"] = list
	}
	if changed("mac-address") {
		body["mac_address"] = f.mac
	}
	if changed("device") {
		id, err := resolve(client.Instances, f.device)
		if err != nil {
			return nil, err
		}
		body["device_id"] = id
		body["device_owner"] = model.DeviceOwnerCompute
	}
	if changed("no-device") {
		body["device_id"], body["device_owner"] = "", ""
	}
	if changed("interface-name") {
		body["nsnet:interface_name"] = f.interfaceName
	}
	setBoolPair(cmd, body, "admin_state_up", "enable", "disable")
	setBoolPair(cmd, body, "port_security_enabled", "enable-port-security", "disable-port-security")
	setBoolPair(cmd, body, "nsnet:dhcp_client", "dhcp-client", "no-dhcp-client")
	putRename(cmd, body)
	if err := f.securityBody(cmd, resolve, port, body); err != nil {
		return nil, err
	}
	return body, nil
}

// securityBody adds security_groups and allowed_address_pairs to body.
func (f *portFlags) securityBody(cmd *cobra.Command, resolve resolveFunc, port *model.Port, body map[string]any) error {
	changed := cmd.Flags().Changed
	if changed("security-group") || changed("no-security-group") {
		groups := []string{}
		if port != nil && !changed("no-security-group") {
			groups = append(groups, port.SecurityGroups...)
		}
		for _, g := range f.groups {
			id, err := resolve(client.SecurityGroups, g)
			if err != nil {
				return err
			}
			if !slices.Contains(groups, id) {
				groups = append(groups, id)
			}
		}
		body["security_groups"] = groups
	}
	if changed("allowed-address") || changed("no-allowed-address") {
		pairs := []any{}
		if port != nil && !changed("no-allowed-address") {
			for _, p := range port.AllowedAddressPairs {
				pairs = append(pairs, map[string]any{"ip_address": p.IPAddress, "mac_address": p.MACAddress})
			}
		}
		for _, v := range f.pairs {
			kv, err := parseKV("allowed-address", v, []string{"ip-address", "mac-address"}, []string{"ip-address"})
			if err != nil {
				return usageError{cmd, err}
			}
			pair := map[string]any{"ip_address": kv["ip-address"]}
			if m := kv["mac-address"]; m != "" {
				pair["mac_address"] = m
			}
			pairs = append(pairs, pair)
		}
		body["allowed_address_pairs"] = pairs
	}
	return nil
}

// fixedIP parses one --fixed-ip, resolving the subnet's name.
func fixedIP(cmd *cobra.Command, v string, resolve resolveFunc) (map[string]any, error) {
	kv, err := parseKV("fixed-ip", v, []string{"subnet", "ip-address"}, nil)
	if err != nil {
		return nil, usageError{cmd, err}
	}
	ip := map[string]any{}
	if s := kv["subnet"]; s != "" {
		id, err := resolve(client.Subnets, s)
		if err != nil {
			return nil, err
		}
		ip["subnet_id"] = id
	}
	if addr := kv["ip-address"]; addr != "" {
		ip["ip_address"] = addr
	}
	if len(ip) == 0 {
		return nil, usagef(cmd, "--fixed-ip %q: give subnet=…, ip-address=… or both", v)
	}
	return ip, nil
}

type portCreateFlags struct {
	portFlags
	network string
}

func (f *portCreateFlags) add(cmd *cobra.Command) {
	f.portFlags.add(cmd)
	cmd.Flags().StringVar(&f.network, "network", "", "the port's network (name or id; required)")
	_ = cmd.MarkFlagRequired("network")
}

func (f *portCreateFlags) body(cmd *cobra.Command, name string, resolve resolveFunc) (map[string]any, error) {
	if cmd.Flags().Changed("interface-name") && !cmd.Flags().Changed("device") {
		return nil, usagef(cmd, "--interface-name names the port inside an instance: give --device too")
	}
	body, err := f.portFlags.body(cmd, resolve, nil)
	if err != nil {
		return nil, err
	}
	networkID, err := resolve(client.Networks, f.network)
	if err != nil {
		return nil, err
	}
	body["name"] = name
	body["network_id"] = networkID
	return body, nil
}

func (a *app) portCreateCommand() *cobra.Command {
	var flags portCreateFlags
	var out outputFlag
	var wait waitFlags
	cmd := &cobra.Command{
		Use:   "create NAME --network NETWORK",
		Short: "Create a port, optionally plugged into an instance",
		Long: `Create a port on a network. Without --fixed-ip it gets one address from the
network's first subnet with a free one. With --device it is plugged into
that instance at once: nsnet creates the veth pair, moves one end into the
instance and configures it.`,
		Example: `  nsnet port create red-eth0 --network blue-net --device red
  nsnet port create red-eth0 --network lab-net --device red --dhcp-client
      # then, inside: nsnet exec red -- dhclient -v eth0
  nsnet port create red-eth1 --network lab-net --device red --interface-name eth1 \
      --fixed-ip subnet=lab-v4,ip-address=10.0.0.10 --mac-address fa:16:3e:00:00:10
  nsnet port create spare --network blue-net --no-fixed-ip
  nsnet port create web-eth0 --network blue-net --device web --security-group web \
      --allowed-address ip-address=10.0.0.200`,
		Args: exactArgs(1, "the new port's name"),
	}
	flags.add(cmd)
	a.completeFlag(cmd, "network", client.Networks)
	a.completeFlag(cmd, "device", client.Instances)
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
		return write(cmd, out, client.Ports, args[0], "created", func() (json.RawMessage, client.Meta, error) {
			return client.Create[json.RawMessage](cmd.Context(), c, client.Ports, body)
		})
	}
	return cmd
}

func (a *app) portSetCommand() *cobra.Command {
	var flags portFlags
	var out outputFlag
	var wait waitFlags
	cmd := &cobra.Command{
		Use:   "set NAME|ID",
		Short: "Change a port's addresses, MAC, instance or state",
		Long: `Change a port's attributes; its network cannot change. --fixed-ip adds to the
port's addresses; --no-fixed-ip removes them first, so that the --fixed-ip
options that follow replace them. --device moves the port into another
instance (the veth is moved and renamed; give --interface-name to choose
the name), --no-device unplugs it.`,
		Example: `  nsnet port set red-eth0 --fixed-ip subnet=blue-v4,ip-address=192.168.24.20
  nsnet port set red-eth0 --no-fixed-ip --fixed-ip ip-address=192.168.24.30
  nsnet port set red-eth0 --device green --interface-name eth1
  nsnet port set red-eth0 --disable`,
		Args:              exactArgs(1, "one port name or id"),
		ValidArgsFunction: a.completeNames(client.Ports, 1),
	}
	flags.addSet(cmd)
	a.completeFlag(cmd, "device", client.Instances)
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
		cur, err := client.Find[model.Port](cmd.Context(), c, client.Ports, args[0])
		if err != nil {
			return err
		}
		body, err := flags.body(cmd, finder(cmd.Context(), c), &cur)
		if err != nil {
			return err
		}
		if len(body) == 0 {
			return usageError{cmd, errNothingToSet}
		}
		return write(cmd, out, client.Ports, args[0], "updated", func() (json.RawMessage, client.Meta, error) {
			return client.Update[json.RawMessage](cmd.Context(), c, client.Ports, cur.ID, body)
		})
	}
	return cmd
}
