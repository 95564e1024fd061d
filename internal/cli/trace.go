package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/nsnet/nsnet/internal/capture"
	"github.com/nsnet/nsnet/internal/client"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/trace"
)

// exitInterrupted is the exit code of a trace stopped by Ctrl-C (128 +
// SIGINT, as shells report it).
const exitInterrupted = 130

func (a *app) traceCommand() *cobra.Command {
	var (
		icmp         bool
		tcpPort      int
		udpPort      int
		fromExternal string
		timeout      time.Duration
		out          outputFlag
		asJSON       bool
		ipv6         bool
		verbose      bool
	)
	cmd := &cobra.Command{
		Use:   "trace SRC DST",
		Short: "Follow one real packet through the topology, hop by hop, NAT by NAT",
		Long: `Send one real probe from SRC to DST and show every interface it crosses, in
order, on the way out and back: namespace, interface, direction, MAC and IP
addresses, ports, and what changed since the previous hop ("SNAT 10.0.0.5 →
198.51.100.10 in router r1"). When the probe or its answer stops, it says
where it was last seen and why, as far as the kernel tells: the answer was a
reset or an ICMP error (nothing listens, no route), the namespace has no route
or no neighbour for it, or an nftables rule dropped it.

SRC is an instance. With --from-external NETWORK there is no SRC: the probe
comes from a temporary host on that external network (a namespace plugged
into its bridge, with a free address of its subnet, removed afterwards), to
trace inbound traffic to a floating IP or a port forward.

DST is an IPv4 or IPv6 address, or an instance (its first IPv4 address, or
with -6 its first IPv6 one). IPv6 is traced the same way: ICMPv6 echo, TCP or
UDP, routed (never NATed) through routers; a stop names failed neighbour
discovery (ND) and ICMPv6 errors.

How: nsnet works out from its model which interfaces the probe should cross
(instance port → bridge → qr- → router → qg- → external network → …),
captures on each of them inside its namespace (AF_PACKET sockets), sends the
probe from the source namespace, and matches what it sees by a marker that
NAT does not change (ICMP and UDP: the payload; TCP: the SYN's sequence
number). It runs in this process, which must be root and on the daemon's
host; every socket and namespace it makes is gone when it returns, also on
Ctrl-C or timeout.`,
		Example: `  # From an instance to a host outside, through the router's SNAT.
  nsnet trace vm1 203.0.113.1
  # Is anything listening on vm2's port 80?
  nsnet trace vm1 vm2 --tcp 80
  # Inbound to a floating IP, from a host on the public network.
  nsnet trace --from-external public 198.51.100.20 --tcp 80
  # The same instance over IPv6 (its first IPv6 address).
  nsnet trace vm1 vm2 -6 --tcp 80
  # Routed IPv6 to the outside.
  nsnet trace vm1 2001:db8:ff::1
  # For scripts.
  nsnet trace vm1 203.0.113.1 -o json`,
		Args: func(cmd *cobra.Command, args []string) error {
			want := 2
			if fromExternal != "" {
				want = 1
			}
			if len(args) != want {
				if want == 1 {
					return usagef(cmd, "with --from-external, %s takes only DST, got %d argument(s)", cmd.CommandPath(), len(args))
				}
				return usagef(cmd, "%s takes SRC and DST, got %d argument(s)", cmd.CommandPath(), len(args))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&icmp, "icmp", false, "probe with an ICMP echo request (the default)")
	f.IntVar(&tcpPort, "tcp", 0, "probe with a TCP SYN to this port")
	f.IntVar(&udpPort, "udp", 0, "probe with a UDP datagram to this port")
	f.StringVar(&fromExternal, "from-external", "", "send from a temporary host on this external network instead of an instance")
	f.DurationVar(&timeout, "timeout", 3*time.Second, "how long to wait for the answer")
	addOutputFlag(cmd, &out)
	f.BoolVar(&asJSON, "json", false, "same as -o json")
	f.BoolVarP(&ipv6, "ipv6", "6", false, "with an instance as DST, trace to its first IPv6 address")
	f.BoolVarP(&verbose, "verbose", "v", false, "also list the chains whose policy accepted the probe")
	cmd.MarkFlagsMutuallyExclusive("icmp", "tcp", "udp")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if asJSON {
			out.format = formatJSON
		}
		if err := out.check(cmd); err != nil {
			return err
		}
		proto, port := uint8(capture.ProtoICMP), 0
		switch {
		case cmd.Flags().Changed("tcp"):
			proto, port = capture.ProtoTCP, tcpPort
		case cmd.Flags().Changed("udp"):
			proto, port = capture.ProtoUDP, udpPort
		}
		if proto != capture.ProtoICMP && (port < 1 || port > 65535) {
			return usagef(cmd, "--%s: port %d is not between 1 and 65535", capture.ProtoName(proto), port)
		}
		if timeout <= 0 {
			return usagef(cmd, "--timeout must be positive")
		}
		c, err := a.client(cmd, waitFlags{})
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		m, err := trace.LoadModel(ctx, c)
		if err != nil {
			return err
		}
		dstRef := args[len(args)-1]
		dst, err := trace.ResolveDestination(ctx, c, m, dstRef, ipv6)
		if err != nil {
			return err
		}
		var src trace.Source
		if fromExternal != "" {
			n, err := client.Find[model.Network](ctx, c, client.Networks, fromExternal)
			if err != nil {
				return err
			}
			ext, err := m.ExternalSource(n.ID, dst)
			if err != nil {
				return err
			}
			defer ext.Remove()
			src = ext.Source
		} else {
			inst, err := client.Find[model.Instance](ctx, c, client.Instances, args[0])
			if err != nil {
				return err
			}
			if src, err = m.InstanceSource(inst, dst); err != nil {
				return err
			}
		}
		plan, err := m.Plan(src, dst, proto, uint16(port))
		if err != nil {
			return err
		}
		proto = trace.ProbeProto(proto, dst)
		probe := trace.NewProbe(proto, uint16(port))
		res, err := trace.Run(ctx, m, plan, src, probe, trace.Options{Timeout: timeout, Ready: func() {
			fmt.Fprintf(cmd.ErrOrStderr(), "tracing %s from %s to %s: capturing on %d interfaces\n",
				capture.ProtoName(proto), src.Node, dst, len(plan.Hops))
		}})
		if err != nil {
			if ctx.Err() != nil && cmd.Context().Err() == nil {
				return exitError{exitInterrupted, errors.New("trace interrupted; its captures, trace tables and source are removed")}
			}
			return err
		}
		if out.format == formatTable {
			return res.Print(cmd.OutOrStdout(), verbose)
		}
		raw, err := json.Marshal(res)
		if err != nil {
			return err
		}
		return printRaw(cmd.OutOrStdout(), out.format, raw)
	}
	return cmd
}
