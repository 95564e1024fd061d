package cli

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nsnet/nsnet/internal/client"
	"github.com/nsnet/nsnet/internal/model"
)

func (a *app) networkCommand() *cobra.Command {
	cmd := groupCommand(&cobra.Command{
		Use:     "network",
		Aliases: []string{"net"},
		Short:   "Manage networks: L2 segments, each a Linux bridge",
		Long: `A network is an L2 segment: a Linux bridge named nsb-<first 11 characters of
the network id> on each host that needs it. Ports plug instances into it;
subnets give it addresses.

See the bridge and what is plugged into it with:
  ip -d link show type bridge
  bridge link`,
	})
	cmd.AddCommand(
		a.networkCreateCommand(),
		listCommand(a, listSpec[model.Network]{
			col:     client.Networks,
			long:    "List networks, with their status and subnets.",
			example: "  nsnet network list\n  nsnet network list -o json",
			columns: func(context.Context, *client.Client, []model.Network) ([]column[model.Network], error) {
				return []column[model.Network]{
					{"ID", func(n model.Network) string { return n.ID }},
					{"NAME", func(n model.Network) string { return n.Name }},
					{"STATUS", func(n model.Network) string { return n.Status }},
					{"MTU", func(n model.Network) string { return strconv.Itoa(n.MTU) }},
					{"SUBNETS", func(n model.Network) string { return strings.Join(n.Subnets, ", ") }},
				}, nil
			},
		}),
		showCommand(a, client.Networks, "  nsnet network show blue-net"),
		a.networkSetCommand(),
		deleteCommand(a, client.Networks,
			"Delete networks, with their subnets. A network that still has ports is\nrefused: delete the ports first. nsnet then removes its bridge.",
			"  nsnet network delete blue-net\n  nsnet network delete net-a net-b"),
	)
	return cmd
}

// networkFlags are the options network create and set share.
type networkFlags struct {
	mtu         int
	description string
	uplink      string
	snatAddress string
	dnsDomain   string
}

func (f *networkFlags) add(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.IntVar(&f.mtu, "mtu", 0, "MTU of the bridge and of every veth on it (default 1500)")
	fs.StringVar(&f.description, "description", "", "free text")
	fs.StringVar(&f.dnsDomain, "dns-domain", "", "domain of the instance names nsnet's DNS serves on the network (default nsnet.internal.)")
	fs.Bool("share", false, "share the network with every project")
	fs.Bool("no-share", false, "do not share the network")
	fs.Bool("external", false, "mark the network external: routers can use it as their gateway")
	fs.Bool("internal", false, "mark the network internal (the default)")
	fs.Bool("enable", false, "set the network administratively up (the default)")
	fs.Bool("disable", false, "set the network administratively down")
	fs.Bool("enable-port-security", false, "enable anti-spoofing on the network's new ports (the default)")
	fs.Bool("disable-port-security", false, "disable anti-spoofing on the network's new ports")
	fs.StringVar(&f.uplink, "uplink", "", "host interface connecting the network upstream: bridged into an --external network, NATed out of by a --host-gateway one (admin)")
	fs.Bool("no-uplink", false, "release the uplink (nsnet never deletes it)")
	fs.Bool("host-gateway", false, "make the host the network's gateway: each subnet's gateway address on the bridge, forwarding and NAT on the host (admin)")
	fs.Bool("no-host-gateway", false, "the host is not the network's gateway (the default)")
	fs.StringVar(&f.snatAddress, "snat-address", "", "with --host-gateway: leave the uplink from this fixed address instead of masquerading (admin)")
	fs.Bool("no-snat-address", false, "masquerade again (the default)")
}

// body is the request body the flags ask for; only given flags appear, so
// that the server's defaults (on create) and current values (on set) stay.
func (f *networkFlags) body(cmd *cobra.Command) (map[string]any, error) {
	if err := exclusive(cmd, [2]string{"share", "no-share"}, [2]string{"external", "internal"},
		[2]string{"enable", "disable"}, [2]string{"enable-port-security", "disable-port-security"},
		[2]string{"uplink", "no-uplink"}, [2]string{"host-gateway", "no-host-gateway"}, [2]string{"snat-address", "no-snat-address"}); err != nil {
		return nil, err
	}
	body := map[string]any{}
	if cmd.Flags().Changed("mtu") {
		body["mtu"] = f.mtu
	}
	if cmd.Flags().Changed("description") {
		body["description"] = f.description
	}
	if cmd.Flags().Changed("dns-domain") {
		body["dns_domain"] = f.dnsDomain
	}
	setBoolPair(cmd, body, "shared", "share", "no-share")
	setBoolPair(cmd, body, "router:external", "external", "internal")
	setBoolPair(cmd, body, "admin_state_up", "enable", "disable")
	setBoolPair(cmd, body, "port_security_enabled", "enable-port-security", "disable-port-security")
	setBoolPair(cmd, body, "nsnet:host_gateway", "host-gateway", "no-host-gateway")
	setOrClear(cmd, body, "nsnet:uplink", "uplink", f.uplink, "no-uplink")
	setOrClear(cmd, body, "nsnet:snat_address", "snat-address", f.snatAddress, "no-snat-address")
	putRename(cmd, body)
	return body, nil
}

// providerFlags are network create's provider options, named as the
// OpenStack CLI names them: the provider attributes are set once, at
// creation (Neutron refuses to change them), and by an admin.
type providerFlags struct {
	networkType     string
	physicalNetwork string
	segment         int
}

func (f *providerFlags) add(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.networkType, "provider-network-type", "", "the network's type: vxlan (a tenant network, the default), flat (untagged on a physical network) or local (admin)")
	fs.StringVar(&f.physicalNetwork, "provider-physical-network", "", "with --provider-network-type flat: the physical network, which hosts map to an interface with --physical-interface-mappings (admin)")
	fs.IntVar(&f.segment, "provider-segment", 0, "with --provider-network-type vxlan: the VNI (default the lowest free one of the configured ranges) (admin)")
}

// set adds the given provider options to body.
func (f *providerFlags) set(cmd *cobra.Command, body map[string]any) {
	if cmd.Flags().Changed("provider-network-type") {
		body["provider:network_type"] = f.networkType
	}
	if cmd.Flags().Changed("provider-physical-network") {
		body["provider:physical_network"] = f.physicalNetwork
	}
	if cmd.Flags().Changed("provider-segment") {
		body["provider:segmentation_id"] = f.segment
	}
}

func (a *app) networkCreateCommand() *cobra.Command {
	var flags networkFlags
	var provider providerFlags
	var out outputFlag
	var wait waitFlags
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a network (a Linux bridge)",
		Long: `Create a network: an L2 segment that nsnet builds as a Linux bridge,
nsb-<id prefix>, on the hosts that need it. Give it a subnet next, so that
its ports get addresses.`,
		Example: `  nsnet network create blue-net
  nsnet network create jumbo --mtu 9000
  nsnet network create lab --dns-domain lab.example.
  nsnet network create public --external --share

  # Connect an external network upstream: eth1 becomes a port of its bridge.
  nsnet network create public --external --uplink eth1

  # Many hosts: a flat network on the physical network "public", bridged
  # on each host to the interface its daemon maps public to
  # (--physical-interface-mappings public:eth1).
  nsnet network create public --external --provider-network-type flat \
      --provider-physical-network public

  # A tenant network with a chosen VNI.
  nsnet network create blue-net --provider-network-type vxlan --provider-segment 42

  # Host NAT (docker's bridge network): the host is the gateway, and
  # masquerades the network's traffic out of eth0.
  nsnet network create lan --host-gateway --uplink eth0`,
		Args: exactArgs(1, "the new network's name"),
	}
	flags.add(cmd)
	provider.add(cmd)
	addOutputFlag(cmd, &out)
	addWaitFlags(cmd, &wait)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := out.check(cmd); err != nil {
			return err
		}
		body, err := flags.body(cmd)
		if err != nil {
			return err
		}
		provider.set(cmd, body)
		body["name"] = args[0]
		c, err := a.client(cmd, wait)
		if err != nil {
			return err
		}
		return write(cmd, out, client.Networks, args[0], "created", func() (json.RawMessage, client.Meta, error) {
			return client.Create[json.RawMessage](cmd.Context(), c, client.Networks, body)
		})
	}
	return cmd
}

func (a *app) networkSetCommand() *cobra.Command {
	var flags networkFlags
	var out outputFlag
	var wait waitFlags
	cmd := &cobra.Command{
		Use:   "set NAME|ID",
		Short: "Change a network's name, MTU, sharing or state",
		Long: `Change a network's attributes. Options left out stay as they are. A new
MTU is set on the bridge and on every veth of the network.`,
		Example: `  nsnet network set blue-net --name blue
  nsnet network set blue-net --mtu 9000
  nsnet network set blue-net --disable
  nsnet network set public --uplink eth2
  nsnet network set lan --snat-address 192.0.2.10`,
		Args:              exactArgs(1, "one network name or id"),
		ValidArgsFunction: a.completeNames(client.Networks, 1),
	}
	flags.add(cmd)
	addRenameFlag(cmd)
	addOutputFlag(cmd, &out)
	addWaitFlags(cmd, &wait)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := out.check(cmd); err != nil {
			return err
		}
		body, err := flags.body(cmd)
		if err != nil {
			return err
		}
		if len(body) == 0 {
			return usageError{cmd, errNothingToSet}
		}
		c, err := a.client(cmd, wait)
		if err != nil {
			return err
		}
		id, err := c.FindID(cmd.Context(), client.Networks, args[0])
		if err != nil {
			return err
		}
		return write(cmd, out, client.Networks, args[0], "updated", func() (json.RawMessage, client.Meta, error) {
			return client.Update[json.RawMessage](cmd.Context(), c, client.Networks, id, body)
		})
	}
	return cmd
}

// setOrClear puts flag's value into body as key, or null with the flag
// clear.
func setOrClear(cmd *cobra.Command, body map[string]any, key, flag, value, clear string) {
	switch {
	case cmd.Flags().Changed(flag):
		body[key] = value
	case cmd.Flags().Changed(clear):
		body[key] = nil
	}
}
