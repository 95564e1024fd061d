package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/nsnet/nsnet/internal/capture"
	"github.com/nsnet/nsnet/internal/client"
	"github.com/nsnet/nsnet/internal/model"
)

func (a *app) captureCommand() *cobra.Command {
	var (
		file   string
		count  int
		filter string
		out    outputFlag
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "capture TARGET [INTERFACE]",
		Short: "Capture the packets of an instance port, a router interface or a network",
		Long: `Capture packets on one interface that nsnet made, from inside its namespace,
as tcpdump would, without tcpdump: an AF_PACKET socket opened in the
namespace, in both directions, the interface in promiscuous mode while the
capture runs.

TARGET is one of:
  INSTANCE             the instance's interface, inside the instance (it must
                       have one port, or name the port instead)
  PORT                 an instance port (inside the instance), or a router's
                       port (its qr-/qg- interface, inside the router)
  NETWORK              the network's bridge on the host: every frame it
                       forwards between its ports
  ROUTER INTERFACE     an interface of the router's namespace (qr-…, qg-…)
A prefix instance:, port:, network: or router: says which kind TARGET is when
names are shared; without one, nsnet tries instance, port, then network.

Without -w, each packet is printed on one line (with -o json: one JSON object
per line). With -w FILE the packets go to FILE in pcap format, which
tcpdump -r and Wireshark read. The capture runs until --count packets have
been kept, or Ctrl-C.

It runs in this process, which must be root and on the daemon's host.

` + capture.FilterHelp,
		Example: `  # Every packet of red's interface, decoded.
  nsnet capture red
  # Ten ICMP packets on a router's gateway interface, into a file.
  nsnet capture edge qg-4f1c2d3e-a1 --filter icmp --count 10 -w edge.pcap
  tcpdump -nr edge.pcap
  # Straight into tcpdump.
  nsnet capture red -w - | tcpdump -nr -
  # The public network's bridge, TCP to port 80, as JSON lines.
  nsnet capture network:public --filter 'tcp and port 80' -o json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usagef(cmd, "%s takes TARGET, or ROUTER INTERFACE, got %d argument(s)", cmd.CommandPath(), len(args))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "write", "w", "", "write the packets to this pcap file instead of printing them (- for standard output)")
	cmd.Flags().IntVarP(&count, "count", "c", 0, "stop after this many packets (0: until Ctrl-C)")
	cmd.Flags().StringVarP(&filter, "filter", "f", "", "keep only packets that match this expression (see above)")
	addOutputFlag(cmd, &out)
	cmd.Flags().BoolVar(&asJSON, "json", false, "same as -o json")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if asJSON {
			out.format = formatJSON
		}
		if err := out.check(cmd); err != nil {
			return err
		}
		if out.format == formatYAML {
			return usagef(cmd, "capture prints a table or JSON lines (-o json), not yaml")
		}
		if count < 0 {
			return usagef(cmd, "--count must not be negative")
		}
		match, err := capture.ParseFilter(filter)
		if err != nil {
			return usageError{cmd, err}
		}
		c, err := a.client(cmd, waitFlags{})
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		host, err := daemonHost(ctx, c)
		if err != nil {
			return err
		}
		target, err := resolveCaptureTarget(ctx, c, host, args)
		if err != nil {
			return err
		}
		sock, err := capture.Open(target.netns, target.ifname)
		if err != nil {
			return err
		}
		defer sock.Close()
		var sink func(capture.Frame, *capture.Packet) error
		var pcapFile *os.File
		switch {
		case file == "-": // a pcap stream, for tcpdump -r - or wireshark -k -i -
			w, err := capture.NewPcapWriter(cmd.OutOrStdout())
			if err != nil {
				return err
			}
			sink = func(f capture.Frame, _ *capture.Packet) error { return w.Write(f) }
		case file != "":
			pcapFile, err = os.Create(file)
			if err != nil {
				return err
			}
			defer pcapFile.Close()
			w, err := capture.NewPcapWriter(pcapFile)
			if err != nil {
				return err
			}
			sink = func(f capture.Frame, _ *capture.Packet) error { return w.Write(f) }
		case out.format == formatTable:
			sink = func(f capture.Frame, p *capture.Packet) error {
				_, err := fmt.Fprintln(cmd.OutOrStdout(), frameLine(target.ifname, f, p))
				return err
			}
		default:
			enc := json.NewEncoder(cmd.OutOrStdout())
			sink = func(f capture.Frame, p *capture.Packet) error {
				return enc.Encode(capture.Describe(target.netns, target.ifname, f, p))
			}
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "capturing on %s in %s (%s)\n", target.ifname, nsName(target.netns), target.what)
		kept := 0
		for count == 0 || kept < count {
			f, err := sock.Read(ctx)
			if err != nil {
				if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
					break
				}
				return err
			}
			p := capture.Decode(f.Data)
			if !match(p) {
				continue
			}
			if err := sink(f, p); err != nil {
				return err
			}
			kept++
		}
		if pcapFile != nil {
			if err := pcapFile.Close(); err != nil {
				return fmt.Errorf("write %s: %w", file, err)
			}
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "%d packets captured\n", kept)
		return nil
	}
	return cmd
}

// frameLine is the one-line form of a captured frame, as tcpdump -e
// prints it.
func frameLine(ifname string, f capture.Frame, p *capture.Packet) string {
	return fmt.Sprintf("%s %s %-3s %s > %s, %s", f.Time.Format("15:04:05.000000"), ifname, f.Direction(),
		p.SrcMAC, p.DstMAC, p.Summary())
}

func nsName(ns string) string {
	if ns == "" {
		return "the host namespace"
	}
	return "namespace " + ns
}

// hostInfo is where the daemon puts things on this host.
type hostInfo struct {
	Netns  string `json:"host_netns"` // "" is the root namespace
	Prefix string `json:"netns_prefix"`
}

// daemonHost asks the daemon for its host namespace and namespace prefix.
func daemonHost(ctx context.Context, c *client.Client) (hostInfo, error) {
	raw, err := c.Status(ctx)
	if err != nil {
		return hostInfo{}, err
	}
	var doc struct {
		Daemon hostInfo `json:"daemon"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return hostInfo{}, fmt.Errorf("decode status: %w", err)
	}
	return doc.Daemon, nil
}

// captureTarget is an interface to capture on.
type captureTarget struct {
	netns, ifname string
	what          string // what the interface is, for people
}

func resolveCaptureTarget(ctx context.Context, c *client.Client, host hostInfo, args []string) (captureTarget, error) {
	if len(args) == 2 {
		ref, _ := strings.CutPrefix(args[0], "router:")
		r, err := client.Find[model.Router](ctx, c, client.Routers, ref)
		if err != nil {
			return captureTarget{}, err
		}
		return captureTarget{netns: model.RouterNetns(host.Prefix, r.ID), ifname: args[1], what: "router " + r.Name}, nil
	}
	kind, ref, ok := strings.Cut(args[0], ":")
	if !ok {
		kind, ref = "", args[0]
	}
	switch kind {
	case "instance":
		return instanceTarget(ctx, c, host, ref)
	case "port":
		p, err := client.Find[model.Port](ctx, c, client.Ports, ref)
		if err != nil {
			return captureTarget{}, err
		}
		return portTarget(ctx, c, host, p)
	case "network":
		n, err := client.Find[model.Network](ctx, c, client.Networks, ref)
		if err != nil {
			return captureTarget{}, err
		}
		return captureTarget{netns: host.Netns, ifname: model.BridgeName(n.ID), what: "bridge of network " + n.Name}, nil
	case "router":
		return captureTarget{}, fmt.Errorf("a router needs an interface: nsnet capture %s INTERFACE", args[0])
	case "":
		if t, err := instanceTarget(ctx, c, host, ref); !client.IsNotFound(err) {
			return t, err
		}
		if p, err := client.Find[model.Port](ctx, c, client.Ports, ref); !client.IsNotFound(err) {
			if err != nil {
				return captureTarget{}, err
			}
			return portTarget(ctx, c, host, p)
		}
		n, err := client.Find[model.Network](ctx, c, client.Networks, ref)
		if client.IsNotFound(err) {
			return captureTarget{}, fmt.Errorf("no instance, port or network is named %q", ref)
		}
		if err != nil {
			return captureTarget{}, err
		}
		return captureTarget{netns: host.Netns, ifname: model.BridgeName(n.ID), what: "bridge of network " + n.Name}, nil
	}
	return captureTarget{}, fmt.Errorf("unknown target kind %q: use instance:, port:, network: or router:", kind)
}

func instanceTarget(ctx context.Context, c *client.Client, host hostInfo, ref string) (captureTarget, error) {
	inst, err := client.Find[model.Instance](ctx, c, client.Instances, ref)
	if err != nil {
		return captureTarget{}, err
	}
	ports, err := client.List[model.Port](ctx, c, client.Ports, url.Values{"device_id": {inst.ID}})
	if err != nil {
		return captureTarget{}, err
	}
	switch len(ports) {
	case 0:
		return captureTarget{}, fmt.Errorf("instance %s has no port", inst.Name)
	case 1:
		return portTarget(ctx, c, host, ports[0])
	}
	var names []string
	for _, p := range ports {
		names = append(names, orID(p.Name, p.ID))
	}
	return captureTarget{}, fmt.Errorf("instance %s has %d ports (%s): name one", inst.Name, len(ports), strings.Join(names, ", "))
}

func portTarget(ctx context.Context, c *client.Client, host hostInfo, p model.Port) (captureTarget, error) {
	label := orID(p.Name, p.ID)
	switch p.DeviceOwner {
	case model.DeviceOwnerRouterInterface:
		return captureTarget{netns: model.RouterNetns(host.Prefix, p.DeviceID), ifname: model.RouterInterfaceName(p.ID), what: "router interface " + label}, nil
	case model.DeviceOwnerRouterGateway:
		return captureTarget{netns: model.RouterNetns(host.Prefix, p.DeviceID), ifname: model.RouterGatewayName(p.ID), what: "router gateway " + label}, nil
	}
	if p.DeviceID == "" {
		return captureTarget{}, fmt.Errorf("port %s is not plugged into anything", label)
	}
	inst, err := client.Get[model.Instance](ctx, c, client.Instances, p.DeviceID)
	if err != nil {
		return captureTarget{}, fmt.Errorf("port %s: its device %s is not an instance: %w", label, p.DeviceID, err)
	}
	return captureTarget{netns: inst.Netns, ifname: p.InterfaceName, what: "port " + label + " of instance " + inst.Name}, nil
}

func orID(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
