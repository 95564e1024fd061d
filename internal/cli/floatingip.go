package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nsnet/nsnet/internal/client"
	"github.com/nsnet/nsnet/internal/model"
)

// floatingCommand is `nsnet floating ip …`, spelled as the OpenStack CLI
// spells it.
func (a *app) floatingCommand() *cobra.Command {
	floating := groupCommand(&cobra.Command{
		Use:   "floating",
		Short: "Manage floating IPs (nsnet floating ip …)",
		Long:  "Floating IPs and their port forwardings, as the OpenStack CLI spells them: nsnet floating ip ….",
	})
	ip := groupCommand(&cobra.Command{
		Use:   "ip",
		Short: "Manage floating IPs: public addresses translated 1:1 to a port's address",
		Long: `A floating IP is an address of an external network, held by a port on that
network (device_owner network:floatingip). Associated with an instance's
port, the router that connects the port's subnet to the external network
answers for it on its qg- interface (a /32 there, announced with a
gratuitous ARP) and translates it 1:1: inbound to the floating address is
DNATed to the fixed address, the instance's outbound traffic is SNATed to
the floating address. Both translations are elements of nft maps
(floating_dnat, floating_snat) in the router's table, so adding one costs
the same however many there are.

See them with:
  ip netns exec qrouter-<router id> nft list map inet nsnet floating_dnat`,
		Example: `  nsnet floating ip create public --port red-eth0
  nsnet floating ip list`,
	})
	port := groupCommand(&cobra.Command{Use: "port", Short: "Manage port forwardings of floating IPs (floating ip port forwarding …)",
		Long:    "Port forwardings of floating IPs: nsnet floating ip port forwarding ….",
		Example: "  nsnet floating ip port forwarding list 198.51.100.7"})
	port.AddCommand(a.portForwardingCommand())
	ip.AddCommand(
		a.floatingIPCreateCommand(),
		listCommand(a, listSpec[model.FloatingIP]{
			col:     client.FloatingIPs,
			long:    "List floating IPs, with the fixed address and port each is associated with.",
			example: "  nsnet floating ip list",
			columns: func(ctx context.Context, c *client.Client, _ []model.FloatingIP) ([]column[model.FloatingIP], error) {
				networks, err := listNames(ctx, c, client.Networks)
				if err != nil {
					return nil, err
				}
				ports, err := listNames(ctx, c, client.Ports)
				if err != nil {
					return nil, err
				}
				return []column[model.FloatingIP]{
					{"ID", func(f model.FloatingIP) string { return f.ID }},
					{"FLOATING IP ADDRESS", func(f model.FloatingIP) string { return f.FloatingIPAddress }},
					{"FIXED IP ADDRESS", func(f model.FloatingIP) string { return deref(f.FixedIPAddress) }},
					{"PORT", func(f model.FloatingIP) string { return ports.label(deref(f.PortID)) }},
					{"FLOATING NETWORK", func(f model.FloatingIP) string { return networks.label(f.FloatingNetworkID) }},
					{"STATUS", func(f model.FloatingIP) string { return f.Status }},
				}, nil
			},
		}),
		showCommand(a, client.FloatingIPs, "  nsnet floating ip show 198.51.100.7"),
		a.floatingIPSetCommand(),
		a.floatingIPUnsetCommand(),
		deleteCommand(a, client.FloatingIPs,
			"Delete floating IPs (by address or id), with their port forwardings. The\naddress returns to the external network's pool.",
			"  nsnet floating ip delete 198.51.100.7"),
		port,
	)
	floating.AddCommand(ip)
	return floating
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// association puts port_id (and fixed_ip_address) for --port and
// --fixed-ip-address into body.
func association(cmd *cobra.Command, resolve resolveFunc, body map[string]any, port, fixed string) error {
	if port == "" {
		if fixed != "" {
			return usagef(cmd, "--fixed-ip-address needs --port")
		}
		return nil
	}
	id, err := resolve(client.Ports, port)
	if err != nil {
		return err
	}
	body["port_id"] = id
	if fixed != "" {
		body["fixed_ip_address"] = fixed
	}
	return nil
}

func (a *app) floatingIPCreateCommand() *cobra.Command {
	var address, subnet, port, fixed, description string
	var out outputFlag
	var wait waitFlags
	cmd := &cobra.Command{
		Use:   "create NETWORK",
		Short: "Allocate a floating IP on an external network",
		Long: `Allocate a floating IP from an external network (the next free address, or
--floating-ip-address, which Neutron's policy keeps for the admin). With
--port it is associated at once: a router must connect the port's subnet to
that external network (an interface on the subnet, its gateway on the
network).`,
		Example: `  nsnet floating ip create public
  nsnet floating ip create public --port red-eth0
  nsnet floating ip create public --floating-ip-address 198.51.100.7`,
		Args: exactArgs(1, "the external network"),
	}
	fs := cmd.Flags()
	fs.StringVar(&address, "floating-ip-address", "", "the address to take")
	fs.StringVar(&subnet, "subnet", "", "the external subnet to allocate from")
	fs.StringVar(&port, "port", "", "associate with this port (name or id)")
	fs.StringVar(&fixed, "fixed-ip-address", "", "the port's fixed address to translate to (when it has several)")
	fs.StringVar(&description, "description", "", "free text")
	addOutputFlag(cmd, &out)
	addWaitFlags(cmd, &wait)
	a.completeFlag(cmd, "port", client.Ports)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := out.check(cmd); err != nil {
			return err
		}
		c, err := a.client(cmd, wait)
		if err != nil {
			return err
		}
		resolve := finder(cmd.Context(), c)
		network, err := resolve(client.Networks, args[0])
		if err != nil {
			return err
		}
		body := map[string]any{"floating_network_id": network}
		if address != "" {
			body["floating_ip_address"] = address
		}
		if subnet != "" {
			if body["subnet_id"], err = resolve(client.Subnets, subnet); err != nil {
				return err
			}
		}
		if description != "" {
			body["description"] = description
		}
		if err := association(cmd, resolve, body, port, fixed); err != nil {
			return err
		}
		return write(cmd, out, client.FloatingIPs, args[0], "created", func() (json.RawMessage, client.Meta, error) {
			return client.Create[json.RawMessage](cmd.Context(), c, client.FloatingIPs, body)
		})
	}
	return cmd
}

func (a *app) floatingIPSetCommand() *cobra.Command {
	var port, fixed, description string
	var out outputFlag
	var wait waitFlags
	cmd := &cobra.Command{
		Use:   "set FLOATING-IP",
		Short: "Associate a floating IP with a port",
		Long: `Associate a floating IP (address or id) with a port, or move it to another:
the router connecting the port's subnet to the floating IP's network starts
translating it.`,
		Example:           "  nsnet floating ip set 198.51.100.7 --port red-eth0",
		Args:              exactArgs(1, "one floating IP address or id"),
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	cmd.Flags().StringVar(&port, "port", "", "the port (name or id)")
	cmd.Flags().StringVar(&fixed, "fixed-ip-address", "", "the port's fixed address (when it has several)")
	cmd.Flags().StringVar(&description, "description", "", "free text")
	addOutputFlag(cmd, &out)
	addWaitFlags(cmd, &wait)
	a.completeFlag(cmd, "port", client.Ports)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := out.check(cmd); err != nil {
			return err
		}
		c, err := a.client(cmd, wait)
		if err != nil {
			return err
		}
		body := map[string]any{}
		if cmd.Flags().Changed("description") {
			body["description"] = description
		}
		if err := association(cmd, finder(cmd.Context(), c), body, port, fixed); err != nil {
			return err
		}
		if len(body) == 0 {
			return usageError{cmd, errNothingToSet}
		}
		return updateFloatingIP(cmd, c, out, args[0], body)
	}
	return cmd
}

func (a *app) floatingIPUnsetCommand() *cobra.Command {
	var out outputFlag
	var wait waitFlags
	cmd := &cobra.Command{
		Use:   "unset FLOATING-IP --port",
		Short: "Disassociate a floating IP from its port",
		Long: `Disassociate a floating IP: its router stops translating it, withdraws the
address from qg- and deletes the connections it translated from conntrack.
The floating IP stays allocated to the project.`,
		Example: "  nsnet floating ip unset 198.51.100.7 --port",
		Args:    exactArgs(1, "one floating IP address or id"),
	}
	cmd.Flags().Bool("port", false, "disassociate the floating IP from its port")
	addOutputFlag(cmd, &out)
	addWaitFlags(cmd, &wait)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := out.check(cmd); err != nil {
			return err
		}
		if !cmd.Flags().Changed("port") {
			return usageError{cmd, errNothingToSet}
		}
		c, err := a.client(cmd, wait)
		if err != nil {
			return err
		}
		return updateFloatingIP(cmd, c, out, args[0], map[string]any{"port_id": nil})
	}
	return cmd
}

func updateFloatingIP(cmd *cobra.Command, c *client.Client, out outputFlag, ref string, body map[string]any) error {
	id, err := c.FindID(cmd.Context(), client.FloatingIPs, ref)
	if err != nil {
		return err
	}
	return write(cmd, out, client.FloatingIPs, ref, "updated", func() (json.RawMessage, client.Meta, error) {
		return client.Update[json.RawMessage](cmd.Context(), c, client.FloatingIPs, id, body)
	})
}

// portForwardingCommand is `floating ip port forwarding …`.
func (a *app) portForwardingCommand() *cobra.Command {
	cmd := groupCommand(&cobra.Command{
		Use:   "forwarding",
		Short: "Manage port forwardings: floating IP:port → port's address:port",
		Long: `A port forwarding sends TCP or UDP traffic for one port (or range) of a
floating IP to a port (or range) of an instance's fixed address, through the
router that connects them. Each forwarded port is one element of the nft
map port_forward (address . protocol . port → address . port) in the
router's table. A floating IP with port forwardings cannot also be
associated with a port.

See them with:
  ip netns exec qrouter-<router id> nft list map inet nsnet port_forward`,
	})
	cmd.AddCommand(a.portForwardingCreateCommand(), a.portForwardingListCommand(),
		a.portForwardingShowCommand(), a.portForwardingDeleteCommand())
	return cmd
}

// forwardingsOf connects and resolves ref, a floating IP's address or id,
// to the collection of its port forwardings.
func (a *app) forwardingsOf(cmd *cobra.Command, wait waitFlags, ref string) (*client.Client, client.Collection, error) {
	c, err := a.client(cmd, wait)
	if err != nil {
		return nil, "", err
	}
	fip, err := c.FindID(cmd.Context(), client.FloatingIPs, ref)
	if err != nil {
		return nil, "", err
	}
	return c, client.PortForwardings(fip), nil
}

// ports shows a port, or a port range when there is no single port.
func ports(p *int, r string) string {
	if p != nil {
		return strconv.Itoa(*p)
	}
	return r
}

// protocolPort puts a --internal/--external-protocol-port value (PORT or
// FIRST:LAST) into body as key_port or key_port_range.
func protocolPort(cmd *cobra.Command, body map[string]any, flag, key, v string) error {
	if strings.Contains(v, ":") {
		body[key+"_port_range"] = v
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return usagef(cmd, "--%s %q: want a port number or FIRST:LAST", flag, v)
	}
	body[key+"_port"] = n
	return nil
}

func (a *app) portForwardingCreateCommand() *cobra.Command {
	var internalIP, port, internalPort, externalPort, protocol, description string
	var out outputFlag
	var wait waitFlags
	cmd := &cobra.Command{
		Use:   "create FLOATING-IP",
		Short: "Forward a port of a floating IP to a port's address",
		Long: `Forward --external-protocol-port of the floating IP to --internal-protocol-port
of --internal-ip-address, a fixed address of --port. Ports may be ranges
(FIRST:LAST) of equal size, or a range onto one port.`,
		Example: `  nsnet floating ip port forwarding create 198.51.100.7 --port red-eth0 \
      --internal-ip-address 10.0.0.5 --internal-protocol-port 80 --external-protocol-port 8080 --protocol tcp`,
		Args: exactArgs(1, "one floating IP address or id"),
	}
	fs := cmd.Flags()
	fs.StringVar(&internalIP, "internal-ip-address", "", "the fixed address to forward to (required)")
	fs.StringVar(&port, "port", "", "the port holding that address (name or id; required)")
	fs.StringVar(&internalPort, "internal-protocol-port", "", "the port (or FIRST:LAST) on the internal address (required)")
	fs.StringVar(&externalPort, "external-protocol-port", "", "the port (or FIRST:LAST) on the floating IP (required)")
	fs.StringVar(&protocol, "protocol", "", "tcp or udp (required)")
	fs.StringVar(&description, "description", "", "free text")
	for _, f := range []string{"internal-ip-address", "port", "internal-protocol-port", "external-protocol-port", "protocol"} {
		_ = cmd.MarkFlagRequired(f)
	}
	addOutputFlag(cmd, &out)
	addWaitFlags(cmd, &wait)
	a.completeFlag(cmd, "port", client.Ports)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := out.check(cmd); err != nil {
			return err
		}
		c, err := a.client(cmd, wait)
		if err != nil {
			return err
		}
		fip, err := c.FindID(cmd.Context(), client.FloatingIPs, args[0])
		if err != nil {
			return err
		}
		portID, err := c.FindID(cmd.Context(), client.Ports, port)
		if err != nil {
			return err
		}
		body := map[string]any{"internal_ip_address": internalIP, "internal_port_id": portID, "protocol": protocol}
		if description != "" {
			body["description"] = description
		}
		if err := protocolPort(cmd, body, "internal-protocol-port", "internal", internalPort); err != nil {
			return err
		}
		if err := protocolPort(cmd, body, "external-protocol-port", "external", externalPort); err != nil {
			return err
		}
		col := client.PortForwardings(fip)
		return write(cmd, out, col, args[0], "created", func() (json.RawMessage, client.Meta, error) {
			return client.Create[json.RawMessage](cmd.Context(), c, col, body)
		})
	}
	return cmd
}

func (a *app) portForwardingListCommand() *cobra.Command {
	var out outputFlag
	cmd := &cobra.Command{
		Use:     "list FLOATING-IP",
		Aliases: []string{"ls"},
		Short:   "List the port forwardings of a floating IP",
		Example: "  nsnet floating ip port forwarding list 198.51.100.7",
		Args:    exactArgs(1, "one floating IP address or id"),
	}
	addOutputFlag(cmd, &out)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := out.check(cmd); err != nil {
			return err
		}
		c, col, err := a.forwardingsOf(cmd, waitFlags{}, args[0])
		if err != nil {
			return err
		}
		raws, err := client.List[json.RawMessage](cmd.Context(), c, col, url.Values{})
		if err != nil {
			return err
		}
		if out.format != formatTable {
			return printRawList(cmd.OutOrStdout(), out.format, raws)
		}
		items, err := decodeList[model.PortForwarding](raws, "port forwarding")
		if err != nil {
			return err
		}
		return printTable(cmd.OutOrStdout(), items, []column[model.PortForwarding]{
			{"ID", func(pf model.PortForwarding) string { return pf.ID }},
			{"PROTOCOL", func(pf model.PortForwarding) string { return pf.Protocol }},
			{"EXTERNAL PORT", func(pf model.PortForwarding) string { return ports(pf.ExternalPort, pf.ExternalPortRange) }},
			{"INTERNAL IP ADDRESS", func(pf model.PortForwarding) string { return pf.InternalIPAddress }},
			{"INTERNAL PORT", func(pf model.PortForwarding) string { return ports(pf.InternalPort, pf.InternalPortRange) }},
			{"PORT", func(pf model.PortForwarding) string { return pf.InternalPortID }},
		})
	}
	return cmd
}

func (a *app) portForwardingShowCommand() *cobra.Command {
	var out outputFlag
	cmd := &cobra.Command{
		Use:     "show FLOATING-IP ID",
		Short:   "Show one port forwarding of a floating IP",
		Example: "  nsnet floating ip port forwarding show 198.51.100.7 0f3c…",
		Args:    exactArgs(2, "a floating IP and a port forwarding id"),
	}
	addOutputFlag(cmd, &out)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := out.check(cmd); err != nil {
			return err
		}
		c, col, err := a.forwardingsOf(cmd, waitFlags{}, args[0])
		if err != nil {
			return err
		}
		raw, err := client.Get[json.RawMessage](cmd.Context(), c, col, args[1])
		if err != nil {
			return err
		}
		return printObject(cmd.OutOrStdout(), out.format, raw)
	}
	return cmd
}

func (a *app) portForwardingDeleteCommand() *cobra.Command {
	var wait waitFlags
	cmd := &cobra.Command{
		Use:     "delete FLOATING-IP ID...",
		Aliases: []string{"rm"},
		Short:   "Delete port forwardings of a floating IP",
		Example: "  nsnet floating ip port forwarding delete 198.51.100.7 0f3c…",
		Args:    minArgs(2, "a floating IP and one or more port forwarding ids"),
	}
	addWaitFlags(cmd, &wait)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, col, err := a.forwardingsOf(cmd, wait, args[0])
		if err != nil {
			return err
		}
		var failed []string
		for _, id := range args[1:] {
			meta, err := c.Delete(cmd.Context(), col, id)
			if err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "nsnet: %s\n", message(err))
				failed = append(failed, id)
				continue
			}
			if err := warnUnprogrammed(cmd, col, id, "deleted", meta, nil); err != nil {
				return err
			}
		}
		if len(failed) > 0 {
			return exitError{code: 1, err: fmt.Errorf("failed to delete %d of %d port forwardings: %s",
				len(failed), len(args)-1, strings.Join(failed, ", "))}
		}
		return nil
	}
	return cmd
}
