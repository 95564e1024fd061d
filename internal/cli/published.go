package cli

import (
	"context"
	"encoding/json"

	"github.com/spf13/cobra"

	"github.com/nsnet/nsnet/internal/client"
	"github.com/nsnet/nsnet/internal/model"
)

func (a *app) publishedPortCommand() *cobra.Command {
	cmd := groupCommand(&cobra.Command{
		Use:     "published-port",
		Aliases: []string{"publish"},
		Short:   "Manage published ports: host:port → instance address:port (host NAT)",
		Long: `A published port sends TCP or UDP connections to a port (or range) on any
address of the host to a port (or range) of an address on a network whose
gateway is the host (nsnet network create --host-gateway): docker's
-p 8080:80. Each published port is one element of the nft map publish
(protocol . port → address . port) in the host's nsnet table. Host ports
are the host's, so publishing them is for an admin.

See them with:
  nft list map inet nsnet publish`,
	})
	cmd.AddCommand(
		a.publishedPortCreateCommand(),
		listCommand(a, listSpec[model.PublishedPort]{
			col:     client.PublishedPorts,
			long:    "List the host's published ports.",
			example: "  nsnet published-port list\n  nsnet published-port list -o json",
			columns: func(context.Context, *client.Client, []model.PublishedPort) ([]column[model.PublishedPort], error) {
				return []column[model.PublishedPort]{
					{"ID", func(p model.PublishedPort) string { return p.ID }},
					{"PROTOCOL", func(p model.PublishedPort) string { return p.Protocol }},
					{"HOST PORT", func(p model.PublishedPort) string { return ports(p.HostPort, p.HostPortRange) }},
					{"INTERNAL IP ADDRESS", func(p model.PublishedPort) string { return p.InternalIPAddress }},
					{"INTERNAL PORT", func(p model.PublishedPort) string { return ports(p.InternalPort, p.InternalPortRange) }},
					{"PORT", func(p model.PublishedPort) string { return p.InternalPortID }},
				}, nil
			},
		}),
		showCommand(a, client.PublishedPorts, "  nsnet published-port show 0f3c…"),
		deleteCommand(a, client.PublishedPorts, "Unpublish host ports: their connections stop reaching the instance,\nestablished ones too.",
			"  nsnet published-port delete 0f3c…"),
	)
	return cmd
}

func (a *app) publishedPortCreateCommand() *cobra.Command {
	var internalIP, port, internalPort, hostPort, protocol, description string
	var out outputFlag
	var wait waitFlags
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Publish a host port to an instance's address",
		Long: `Publish --host-port of every address of the host to --internal-port of
--port's address (its first IPv4 fixed IP, or --internal-ip-address), or of
--internal-ip-address alone. The address must be on a network whose gateway
is the host (--host-gateway). Ports may be ranges (FIRST:LAST) of equal size.`,
		Example: `  # seed 002, challenge 5: host:8080 → red:80
  nsnet published-port create --protocol tcp --host-port 8080 --port red-eth0 --internal-port 80

  nsnet published-port create --protocol udp --host-port 5000:5009 \
      --internal-ip-address 192.168.24.10 --internal-port 6000:6009`,
		Args: noArgs,
	}
	fs := cmd.Flags()
	fs.StringVar(&protocol, "protocol", "", "tcp or udp (required)")
	fs.StringVar(&hostPort, "host-port", "", "the port (or FIRST:LAST) on the host (required)")
	fs.StringVar(&port, "port", "", "the port to publish (name or id)")
	fs.StringVar(&internalIP, "internal-ip-address", "", "the address to publish (default: --port's first IPv4 address)")
	fs.StringVar(&internalPort, "internal-port", "", "the port (or FIRST:LAST) on the internal address (required)")
	fs.StringVar(&description, "description", "", "free text")
	for _, f := range []string{"protocol", "host-port", "internal-port"} {
		_ = cmd.MarkFlagRequired(f)
	}
	addOutputFlag(cmd, &out)
	addWaitFlags(cmd, &wait)
	a.completeFlag(cmd, "port", client.Ports)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := out.check(cmd); err != nil {
			return err
		}
		if port == "" && internalIP == "" {
			return usagef(cmd, "give --port, --internal-ip-address or both")
		}
		c, err := a.client(cmd, wait)
		if err != nil {
			return err
		}
		body := map[string]any{"protocol": protocol}
		if port != "" {
			id, err := c.FindID(cmd.Context(), client.Ports, port)
			if err != nil {
				return err
			}
			body["internal_port_id"] = id
		}
		if internalIP != "" {
			body["internal_ip_address"] = internalIP
		}
		if description != "" {
			body["description"] = description
		}
		if err := protocolPort(cmd, body, "host-port", "host", hostPort); err != nil {
			return err
		}
		if err := protocolPort(cmd, body, "internal-port", "internal", internalPort); err != nil {
			return err
		}
		return write(cmd, out, client.PublishedPorts, protocol+"/"+hostPort, "created", func() (json.RawMessage, client.Meta, error) {
			return client.Create[json.RawMessage](cmd.Context(), c, client.PublishedPorts, body)
		})
	}
	return cmd
}
