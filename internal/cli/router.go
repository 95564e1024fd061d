package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nsnet/nsnet/internal/client"
	"github.com/nsnet/nsnet/internal/model"
)

func (a *app) routerCommand() *cobra.Command {
	cmd := groupCommand(&cobra.Command{
		Use:   "router",
		Short: "Manage routers: qrouter namespaces that route and NAT between networks",
		Long: `A router is a network namespace, qrouter-<router id>, with IP forwarding on.
Each subnet attached to it ("router add subnet") is a veth qr-<port id> whose
router end holds the subnet's gateway address; its external gateway
("router set --external-gateway") is a veth qg-<port id> on the external
network's bridge, with the default route through the external subnet's
gateway. With SNAT enabled (the default) the router translates its subnets'
traffic leaving qg- to the gateway address; floating IPs and port forwards
are elements of nft maps in the namespace's table, inet nsnet.

Look inside a router with:
  ip netns exec qrouter-<id> ip addr
  ip netns exec qrouter-<id> ip route
  ip netns exec qrouter-<id> nft list table inet nsnet`,
	})
	add := groupCommand(&cobra.Command{Use: "add", Short: "Attach a subnet or a port to a router",
		Long:    "Attach a subnet (a new qr- interface with its gateway address) or an existing port to a router.",
		Example: "  nsnet router add subnet r1 blue-v4\n  nsnet router add port r1 r1-blue"})
	add.AddCommand(a.routerInterfaceCommand("add", "subnet"), a.routerInterfaceCommand("add", "port"))
	remove := groupCommand(&cobra.Command{Use: "remove", Short: "Detach a subnet or a port from a router",
		Long:    "Detach a subnet or an interface port from a router; the qr- interface and its port are deleted.",
		Example: "  nsnet router remove subnet r1 blue-v4\n  nsnet router remove port r1 r1-blue"})
	remove.AddCommand(a.routerInterfaceCommand("remove", "subnet"), a.routerInterfaceCommand("remove", "port"))
	cmd.AddCommand(
		a.routerCreateCommand(),
		listCommand(a, listSpec[model.Router]{
			col:     client.Routers,
			long:    "List routers, with their status and external gateway network.",
			example: "  nsnet router list\n  nsnet router list -o json",
			columns: func(ctx context.Context, c *client.Client, _ []model.Router) ([]column[model.Router], error) {
				networks, err := listNames(ctx, c, client.Networks)
				if err != nil {
					return nil, err
				}
				return []column[model.Router]{
					{"ID", func(r model.Router) string { return r.ID }},
					{"NAME", func(r model.Router) string { return r.Name }},
					{"STATUS", func(r model.Router) string { return r.Status }},
					{"EXTERNAL GATEWAY", func(r model.Router) string { return gatewaySummary(r.ExternalGatewayInfo, networks) }},
					{"PROJECT", func(r model.Router) string { return r.ProjectID }},
				}, nil
			},
		}),
		a.routerShowCommand(),
		a.routerSetCommand(),
		deleteCommand(a, client.Routers,
			"Delete routers. A router with subnets attached is refused: remove them first\n(\"nsnet router remove subnet\"). Its gateway port goes with it, and nsnet\ndeletes its qrouter- namespace.",
			"  nsnet router delete r1"),
		add, remove, a.conntrackHelperCommand(),
	)
	return cmd
}

// gatewaySummary shows a gateway as "network: addresses, snat".
func gatewaySummary(gw *model.ExternalGatewayInfo, networks idNames) string {
	if gw == nil {
		return ""
	}
	ips := make([]string, len(gw.ExternalFixedIPs))
	for i, ip := range gw.ExternalFixedIPs {
		ips[i] = ip.IPAddress
	}
	snat := "snat"
	if !gw.EnableSNAT {
		snat = "no snat"
	}
	return networks.label(gw.NetworkID) + ": " + strings.Join(append(ips, snat), ", ")
}

// routerFlags are the options router create and set share.
type routerFlags struct {
	description string
	gateway     string
	fixedIPs    []string
	routes      []string
}

func (f *routerFlags) add(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.description, "description", "", "free text")
	fs.Bool("enable", false, "set the router administratively up (the default)")
	fs.Bool("disable", false, "set the router administratively down: its interfaces go down")
	fs.StringVar(&f.gateway, "external-gateway", "", "external network (name or id) for the router's qg- gateway port")
	fs.Bool("enable-snat", false, "translate the router's subnets to the gateway address (the default)")
	fs.Bool("disable-snat", false, "route the router's subnets out unchanged")
	fs.StringArrayVar(&f.fixedIPs, "fixed-ip", nil,
		"gateway address on the external network: subnet=SUBNET,ip-address=ADDR (repeatable; admin only)")
}

// addSet adds the options only router set has.
func (f *routerFlags) addSet(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.Bool("no-external-gateway", false, "remove the router's external gateway")
	fs.StringArrayVar(&f.routes, "route", nil, "add a static route: destination=CIDR,gateway=NEXTHOP (repeatable)")
	fs.Bool("no-route", false, "remove the router's current static routes")
}

// body is the request body the flags ask for; cur is the router on set.
func (f *routerFlags) body(cmd *cobra.Command, resolve resolveFunc, cur *model.Router) (map[string]any, error) {
	changed := cmd.Flags().Changed
	if err := exclusive(cmd, [2]string{"enable", "disable"}, [2]string{"enable-snat", "disable-snat"},
		[2]string{"external-gateway", "no-external-gateway"}); err != nil {
		return nil, err
	}
	body := map[string]any{}
	if changed("description") {
		body["description"] = f.description
	}
	setBoolPair(cmd, body, "admin_state_up", "enable", "disable")
	putRename(cmd, body)
	gw, err := f.gatewayBody(cmd, resolve, cur)
	if err != nil {
		return nil, err
	}
	if gw != nil || changed("no-external-gateway") {
		body["external_gateway_info"] = gw
	}
	if changed("route") || changed("no-route") {
		routes, err := f.routesBody(cmd, cur)
		if err != nil {
			return nil, err
		}
		body["routes"] = routes
	}
	return body, nil
}

// gatewayBody builds external_gateway_info from --external-gateway,
// --enable/--disable-snat and --fixed-ip; SNAT and addresses alone change
// the current gateway.
func (f *routerFlags) gatewayBody(cmd *cobra.Command, resolve resolveFunc, cur *model.Router) (map[string]any, error) {
	changed := cmd.Flags().Changed
	if !changed("external-gateway") && !changed("enable-snat") && !changed("disable-snat") && !changed("fixed-ip") {
		return nil, nil
	}
	gw := map[string]any{}
	switch {
	case changed("external-gateway"):
		id, err := resolve(client.Networks, f.gateway)
		if err != nil {
			return nil, err
		}
		gw["network_id"] = id
	case cur != nil && cur.ExternalGatewayInfo != nil:
		gw["network_id"] = cur.ExternalGatewayInfo.NetworkID
	default:
		return nil, usagef(cmd, "--enable-snat, --disable-snat and --fixed-ip need --external-gateway")
	}
	setBoolPair(cmd, gw, "enable_snat", "enable-snat", "disable-snat")
	if changed("fixed-ip") {
		ips := []any{}
		for _, v := range f.fixedIPs {
			ip, err := fixedIP(cmd, v, resolve)
			if err != nil {
				return nil, err
			}
			ips = append(ips, ip)
		}
		gw["external_fixed_ips"] = ips
	}
	return gw, nil
}

// routesBody is the router's routes after --no-route (clear) and --route
// (add), as the OpenStack CLI's router set does.
func (f *routerFlags) routesBody(cmd *cobra.Command, cur *model.Router) ([]any, error) {
	routes := []any{}
	if cur != nil && !cmd.Flags().Changed("no-route") {
		for _, r := range cur.Routes {
			routes = append(routes, map[string]any{"destination": r.Destination, "nexthop": r.NextHop})
		}
	}
	for _, v := range f.routes {
		kv, err := parseKV("route", v, []string{"destination", "gateway"}, []string{"destination", "gateway"})
		if err != nil {
			return nil, usageError{cmd, err}
		}
		routes = append(routes, map[string]any{"destination": kv["destination"], "nexthop": kv["gateway"]})
	}
	return routes, nil
}

func (a *app) routerCreateCommand() *cobra.Command {
	var flags routerFlags
	var out outputFlag
	var wait waitFlags
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a router (a qrouter- namespace)",
		Long: `Create a router: nsnet makes the namespace qrouter-<id> with forwarding on.
Attach subnets with "nsnet router add subnet"; connect it to an external
network with --external-gateway (here or with "router set"), which gives it a
qg- port with an address of that network and, unless --disable-snat, SNAT of
its subnets to that address.`,
		Example: `  nsnet router create r1
  nsnet router create r1 --external-gateway public
  nsnet router create edge --external-gateway public --fixed-ip ip-address=198.51.100.10 --disable-snat`,
		Args: exactArgs(1, "the new router's name"),
	}
	flags.add(cmd)
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
		body, err := flags.body(cmd, finder(cmd.Context(), c), nil)
		if err != nil {
			return err
		}
		body["name"] = args[0]
		return write(cmd, out, client.Routers, args[0], "created", func() (json.RawMessage, client.Meta, error) {
			return client.Create[json.RawMessage](cmd.Context(), c, client.Routers, body)
		})
	}
	return cmd
}

func (a *app) routerSetCommand() *cobra.Command {
	var flags routerFlags
	var out outputFlag
	var wait waitFlags
	cmd := &cobra.Command{
		Use:   "set NAME|ID",
		Short: "Change a router's gateway, routes, name or state",
		Long: `Change a router's attributes. Options left out stay as they are.

--external-gateway NET gives the router a qg- port on external network NET
(replacing a gateway on another network); --no-external-gateway removes it,
which is refused while floating IPs use it. --route adds a static route in
the qrouter- namespace, through a next hop on one of the router's subnets;
--no-route removes the current ones first.`,
		Example: `  nsnet router set r1 --external-gateway public
  nsnet router set r1 --external-gateway public --disable-snat
  nsnet router set r1 --external-gateway public --fixed-ip subnet=public-v4,ip-address=198.51.100.10
  nsnet router set r1 --no-external-gateway
  nsnet router set r1 --route destination=192.168.50.0/24,gateway=10.0.0.254
  nsnet router set r1 --no-route`,
		Args:              exactArgs(1, "one router name or id"),
		ValidArgsFunction: a.completeNames(client.Routers, 1),
	}
	flags.add(cmd)
	flags.addSet(cmd)
	addRenameFlag(cmd)
	addOutputFlag(cmd, &out)
	addWaitFlags(cmd, &wait)
	a.completeFlag(cmd, "external-gateway", client.Networks)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := out.check(cmd); err != nil {
			return err
		}
		c, err := a.client(cmd, wait)
		if err != nil {
			return err
		}
		cur, err := client.Find[model.Router](cmd.Context(), c, client.Routers, args[0])
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
		return write(cmd, out, client.Routers, args[0], "updated", func() (json.RawMessage, client.Meta, error) {
			return client.Update[json.RawMessage](cmd.Context(), c, client.Routers, cur.ID, body)
		})
	}
	return cmd
}

// routerInterfaceCommand is `router add|remove subnet|port ROUTER X`.
func (a *app) routerInterfaceCommand(verb, what string) *cobra.Command {
	col := client.Subnets
	if what == "port" {
		col = client.Ports
	}
	var out outputFlag
	var wait waitFlags
	cmd := &cobra.Command{
		Use:  what + " ROUTER " + strings.ToUpper(what),
		Args: exactArgs(2, "a router and a "+what),
	}
	switch verb + " " + what {
	case "add subnet":
		cmd.Short = "Attach a subnet: a qr- interface holding the subnet's gateway address"
		cmd.Long = `Attach a subnet to a router. nsnet makes a port on the subnet's network
with the subnet's gateway address (device_owner network:router_interface)
and plugs it into the router's namespace as qr-<port id>: the subnet's
instances route through it. A subnet without a gateway, or one overlapping
a subnet the router already has, is refused.`
		cmd.Example = "  nsnet router add subnet r1 blue-v4"
	case "add port":
		cmd.Short = "Attach an existing unbound port as a qr- interface"
		cmd.Long = `Attach an existing port to a router as its qr- interface on the port's
subnet, with the port's own address (for a router that is not the subnet's
gateway). The port must be unbound and have exactly one fixed IP.`
		cmd.Example = "  nsnet router add port r1 r1-blue"
	case "remove subnet":
		cmd.Short = "Detach a subnet; its qr- interface and port go"
		cmd.Long = `Detach a subnet from a router: the qr- interface and its port are deleted.
Refused while a floating IP, port forward or route of the router needs it.`
		cmd.Example = "  nsnet router remove subnet r1 blue-v4"
	default:
		cmd.Short = "Detach an interface port; the port is deleted"
		cmd.Long = `Detach an interface port from a router. As in Neutron, the port is deleted.`
		cmd.Example = "  nsnet router remove port r1 r1-blue"
	}
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
		ctx := cmd.Context()
		router, err := c.FindID(ctx, client.Routers, args[0])
		if err != nil {
			return err
		}
		id, err := c.FindID(ctx, col, args[1])
		if err != nil {
			return err
		}
		ref := client.InterfaceRef{SubnetID: id}
		if what == "port" {
			ref = client.InterfaceRef{PortID: id}
		}
		do := c.AddRouterInterface
		done := "attached"
		if verb == "remove" {
			do, done = c.RemoveRouterInterface, "detached"
		}
		return write(cmd, out, client.Routers, args[0], done, func() (json.RawMessage, client.Meta, error) {
			info, meta, err := do(ctx, router, ref)
			if err != nil {
				return nil, meta, err
			}
			raw, err := json.Marshal(info)
			return raw, meta, err
		})
	}
	return cmd
}

// routerShowCommand is showCommand with, in a table, the router's
// interfaces: each port's interface in the router's namespace, address,
// subnet and network, which the API shows only as ports elsewhere.
func (a *app) routerShowCommand() *cobra.Command {
	cmd := showCommand(a, client.Routers, "  nsnet router show r1")
	show := cmd.RunE
	cmd.Long += " In a table, its interfaces too: the qr- and qg- ports, their addresses,\nsubnets and networks."
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if f, _ := cmd.Flags().GetString("output"); f != formatTable {
			return show(cmd, args)
		}
		c, err := a.client(cmd, waitFlags{})
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		raw, err := client.Find[json.RawMessage](ctx, c, client.Routers, args[0])
		if err != nil {
			return err
		}
		var obj map[string]any
		if err := json.Unmarshal(raw, &obj); err != nil {
			return fmt.Errorf("decode router: %w", err)
		}
		ports, err := client.List[model.Port](ctx, c, client.Ports, url.Values{"device_id": {fmt.Sprint(obj["id"])}})
		if err != nil {
			return err
		}
		subnets, err := listNames(ctx, c, client.Subnets)
		if err != nil {
			return err
		}
		networks, err := listNames(ctx, c, client.Networks)
		if err != nil {
			return err
		}
		obj["interfaces"] = routerInterfaces(ports, subnets, networks)
		if raw, err = json.Marshal(obj); err != nil {
			return err
		}
		return printObject(cmd.OutOrStdout(), formatTable, raw)
	}
	return cmd
}

// routerInterfaces describes a router's ports, gateway first, one line
// each: its interface in the namespace, addresses with their subnets,
// network and status (in that order, which a table keeps: it sorts keys).
func routerInterfaces(ports []model.Port, subnets, networks idNames) []any {
	slices.SortFunc(ports, func(a, b model.Port) int {
		ga, gb := a.DeviceOwner == model.DeviceOwnerRouterGateway, b.DeviceOwner == model.DeviceOwnerRouterGateway
		if ga != gb {
			if ga {
				return -1
			}
			return 1
		}
		return strings.Compare(a.ID, b.ID)
	})
	var out []any
	for _, p := range ports {
		if !model.IsRouterOwner(p.DeviceOwner) {
			continue
		}
		var ips []string
		for _, ip := range p.FixedIPs {
			ips = append(ips, ip.IPAddress+" in "+subnets.label(ip.SubnetID))
		}
		out = append(out, map[string]any{"interface": routerIfName(p), "ips": strings.Join(ips, ", "),
			"network": networks.label(p.NetworkID), "status": p.Status})
	}
	return out
}

func routerIfName(p model.Port) string {
	if p.DeviceOwner == model.DeviceOwnerRouterGateway {
		return model.RouterGatewayName(p.ID)
	}
	return model.RouterInterfaceName(p.ID)
}
