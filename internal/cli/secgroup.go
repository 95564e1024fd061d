package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nsnet/nsnet/internal/client"
	"github.com/nsnet/nsnet/internal/model"
)

func (a *app) securityGroupCommand() *cobra.Command {
	cmd := groupCommand(&cobra.Command{
		Use:     "security-group",
		Aliases: []string{"sg"},
		Short:   "Manage security groups: stateful allow rules for ports",
		Long: `A security group is a set of allow rules applied to the ports in it. A port
with port security (the default) accepts only the connections an ingress
rule of one of its groups allows and opens only those an egress rule
allows; replies of allowed connections always pass. It may send only from
its own MAC and addresses (and its allowed address pairs): nsnet drops
spoofed frames, forged ARP and IPv6 neighbour advertisements, DHCP and
DHCPv6 server replies and router advertisements from it, and counts each drop ("nsnet port show", nsnet:firewall_drops).

Every project has a group named default, made on first use: it allows all
egress and ingress from its own members. New ports join it unless given
--security-group.

Look at the kernel side in the host namespace with:
  nft list table bridge nsnet_fw     anti-spoofing, port tags
  nft list table inet nsnet_fw       the rules, one set element each`,
	})
	cmd.AddCommand(
		a.securityGroupCreateCommand(),
		listCommand(a, listSpec[model.SecurityGroup]{
			col:     client.SecurityGroups,
			long:    "List security groups, with how many rules each has.",
			example: "  nsnet security-group list\n  nsnet security-group list -o json",
			columns: func(context.Context, *client.Client, []model.SecurityGroup) ([]column[model.SecurityGroup], error) {
				return []column[model.SecurityGroup]{
					{"ID", func(g model.SecurityGroup) string { return g.ID }},
					{"NAME", func(g model.SecurityGroup) string { return g.Name }},
					{"RULES", func(g model.SecurityGroup) string { return strconv.Itoa(len(g.Rules)) }},
					{"DESCRIPTION", func(g model.SecurityGroup) string { return g.Description }},
					{"PROJECT", func(g model.SecurityGroup) string { return g.ProjectID }},
				}, nil
			},
		}),
		showCommand(a, client.SecurityGroups, "  nsnet security-group show web"),
		a.securityGroupSetCommand(),
		deleteCommand(a, client.SecurityGroups,
			"Delete security groups and their rules. A group a port uses is refused\n(SecurityGroupInUse): take the ports out first (\"nsnet port set P --no-security-group\").",
			"  nsnet security-group delete web"),
		a.securityGroupRuleCommand(),
	)
	return cmd
}

func (a *app) securityGroupCreateCommand() *cobra.Command {
	var out outputFlag
	var wait waitFlags
	var description string
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a security group (it allows all egress, no ingress)",
		Long: `Create a security group. Like Neutron's, a new group has two rules: egress
to anywhere over IPv4 and over IPv6. Add ingress rules with
"nsnet security-group rule create".`,
		Example: "  nsnet security-group create web --description \"front ends\"",
		Args:    exactArgs(1, "the new group's name"),
	}
	cmd.Flags().StringVar(&description, "description", "", "free text")
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
		body := map[string]any{"name": args[0]}
		if cmd.Flags().Changed("description") {
			body["description"] = description
		}
		return write(cmd, out, client.SecurityGroups, args[0], "created", func() (json.RawMessage, client.Meta, error) {
			return client.Create[json.RawMessage](cmd.Context(), c, client.SecurityGroups, body)
		})
	}
	return cmd
}

func (a *app) securityGroupSetCommand() *cobra.Command {
	var out outputFlag
	var wait waitFlags
	var description string
	cmd := &cobra.Command{
		Use:               "set NAME|ID",
		Short:             "Rename a security group or change its description",
		Long:              "Change a security group's name or description; its rules and ports stay. The default group keeps its name.",
		Example:           "  nsnet security-group set web --name www --description \"public web\"",
		Args:              exactArgs(1, "one security group name or id"),
		ValidArgsFunction: a.completeNames(client.SecurityGroups, 1),
	}
	cmd.Flags().StringVar(&description, "description", "", "free text")
	addRenameFlag(cmd)
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
		body := map[string]any{}
		if cmd.Flags().Changed("description") {
			body["description"] = description
		}
		putRename(cmd, body)
		if len(body) == 0 {
			return usageError{cmd, errNothingToSet}
		}
		id, err := c.FindID(cmd.Context(), client.SecurityGroups, args[0])
		if err != nil {
			return err
		}
		return write(cmd, out, client.SecurityGroups, args[0], "updated", func() (json.RawMessage, client.Meta, error) {
			return client.Update[json.RawMessage](cmd.Context(), c, client.SecurityGroups, id, body)
		})
	}
	return cmd
}

func (a *app) securityGroupRuleCommand() *cobra.Command {
	cmd := groupCommand(&cobra.Command{
		Use:   "rule",
		Short: "Manage the rules of security groups",
		Long: `A rule allows new connections of one kind into (--ingress, the default) or
out of (--egress) the ports of its group: a protocol, a destination port
range (or ICMP type and code), and a peer — an address range
(--remote-ip) or the ports of a group (--remote-group), which nsnet keeps up
to date as ports join and leave it. Removing a rule also cuts the live
connections it allowed.`,
		Example: `  nsnet security-group rule create web --protocol tcp --dst-port 22 --remote-ip 10.0.0.0/24
  nsnet security-group rule list --group web
  nsnet security-group rule delete 3f1c…`,
	})
	cmd.AddCommand(
		a.securityGroupRuleCreateCommand(),
		listCommand(a, listSpec[model.SecurityGroupRule]{
			col:     client.SecurityGroupRules,
			long:    "List security group rules.",
			example: "  nsnet security-group rule list\n  nsnet security-group rule list --group web",
			filters: func(cmd *cobra.Command) func(resolveFunc, url.Values) error {
				var group string
				cmd.Flags().StringVar(&group, "group", "", "only the rules of this group (name or id)")
				return func(resolve resolveFunc, q url.Values) error {
					if group == "" {
						return nil
					}
					id, err := resolve(client.SecurityGroups, group)
					q.Set("security_group_id", id)
					return err
				}
			},
			columns: func(context.Context, *client.Client, []model.SecurityGroupRule) ([]column[model.SecurityGroupRule], error) {
				return []column[model.SecurityGroupRule]{
					{"ID", func(r model.SecurityGroupRule) string { return r.ID }},
					{"GROUP", func(r model.SecurityGroupRule) string { return r.SecurityGroupID }},
					{"DIRECTION", func(r model.SecurityGroupRule) string { return r.Direction }},
					{"ETHERTYPE", func(r model.SecurityGroupRule) string { return r.EtherType }},
					{"PROTOCOL", func(r model.SecurityGroupRule) string { return orAny(r.Protocol, "any") }},
					{"PORTS", ruleSummaryPorts},
					{"REMOTE", func(r model.SecurityGroupRule) string {
						if r.RemoteGroupID != nil {
							return "group " + *r.RemoteGroupID
						}
						return orAny(r.RemoteIPPrefix, "any")
					}},
				}, nil
			},
		}),
		showCommand(a, client.SecurityGroupRules, "  nsnet security-group rule show 3f1c…"),
		deleteCommand(a, client.SecurityGroupRules,
			"Delete security group rules, by id. Connections they allowed are cut.",
			"  nsnet security-group rule delete 3f1c…"),
	)
	return cmd
}

func orAny(s *string, none string) string {
	if s == nil {
		return none
	}
	return *s
}

func ruleSummaryPorts(r model.SecurityGroupRule) string {
	switch {
	case r.PortRangeMin == nil:
		return "any"
	case r.PortRangeMax == nil:
		return strconv.Itoa(*r.PortRangeMin)
	case *r.PortRangeMin == *r.PortRangeMax:
		return strconv.Itoa(*r.PortRangeMin)
	}
	return fmt.Sprintf("%d:%d", *r.PortRangeMin, *r.PortRangeMax)
}

// ruleFlags are the options of security-group rule create, named as the
// OpenStack CLI names them.
type ruleFlags struct {
	protocol, dstPort, remoteIP, remoteGroup, ethertype, description string
	icmpType, icmpCode                                               int
}

func (f *ruleFlags) add(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.Bool("ingress", false, "the rule allows connections into the group's ports (the default)")
	fs.Bool("egress", false, "the rule allows connections out of the group's ports")
	fs.StringVar(&f.protocol, "protocol", "", "tcp, udp, icmp, ipv6-icmp, … or a number 0-255 (default any)")
	fs.StringVar(&f.dstPort, "dst-port", "", "destination port or range PORT[:PORT] (TCP, UDP, SCTP, DCCP, UDP-Lite)")
	fs.IntVar(&f.icmpType, "icmp-type", -1, "ICMP type (with --protocol icmp or ipv6-icmp)")
	fs.IntVar(&f.icmpCode, "icmp-code", -1, "ICMP code (with --icmp-type)")
	fs.StringVar(&f.remoteIP, "remote-ip", "", "the peer's address range, CIDR (default anywhere)")
	fs.StringVar(&f.remoteGroup, "remote-group", "", "the peers are the ports of this group (name or id)")
	fs.StringVar(&f.ethertype, "ethertype", "", "IPv4 or IPv6 (default: the --remote-ip's family, else IPv4)")
	fs.StringVar(&f.description, "description", "", "free text")
}

func (f *ruleFlags) body(cmd *cobra.Command, resolve resolveFunc, group string) (map[string]any, error) {
	if err := exclusive(cmd, [2]string{"ingress", "egress"}, [2]string{"remote-ip", "remote-group"},
		[2]string{"dst-port", "icmp-type"}); err != nil {
		return nil, err
	}
	changed := cmd.Flags().Changed
	body := map[string]any{"security_group_id": group, "direction": model.DirectionIngress}
	if changed("egress") {
		body["direction"] = model.DirectionEgress
	}
	if f.protocol != "" {
		body["protocol"] = f.protocol
	}
	if f.dstPort != "" {
		lo, hi, found := strings.Cut(f.dstPort, ":")
		if !found {
			hi = lo
		}
		min, err1 := strconv.Atoi(lo)
		max, err2 := strconv.Atoi(hi)
		if err1 != nil || err2 != nil {
			return nil, usagef(cmd, "--dst-port %q: want PORT or PORT:PORT", f.dstPort)
		}
		body["port_range_min"], body["port_range_max"] = min, max
	}
	if changed("icmp-type") {
		body["port_range_min"] = f.icmpType
	}
	if changed("icmp-code") {
		if !changed("icmp-type") {
			return nil, usagef(cmd, "--icmp-code needs --icmp-type")
		}
		body["port_range_max"] = f.icmpCode
	}
	if f.remoteIP != "" {
		body["remote_ip_prefix"] = f.remoteIP
		if p, err := netip.ParsePrefix(f.remoteIP); err == nil && p.Addr().Is6() && f.ethertype == "" {
			body["ethertype"] = model.EtherTypeIPv6
		}
	}
	if f.remoteGroup != "" {
		id, err := resolve(client.SecurityGroups, f.remoteGroup)
		if err != nil {
			return nil, err
		}
		body["remote_group_id"] = id
	}
	if f.ethertype != "" {
		body["ethertype"] = f.ethertype
	}
	if changed("description") {
		body["description"] = f.description
	}
	return body, nil
}

func (a *app) securityGroupRuleCreateCommand() *cobra.Command {
	var flags ruleFlags
	var out outputFlag
	var wait waitFlags
	cmd := &cobra.Command{
		Use:   "create GROUP",
		Short: "Add a rule to a security group",
		Long: `Add an allow rule to a security group. It applies to new connections of the
group's ports at once; replies to allowed connections always pass.`,
		Example: `  nsnet security-group rule create web --protocol tcp --dst-port 22 --remote-ip 10.0.0.0/24
  nsnet security-group rule create web --protocol tcp --dst-port 8000:8080 --remote-group admins
  nsnet security-group rule create web --protocol icmp
  nsnet security-group rule create web --protocol icmp --icmp-type 8 --icmp-code 0
  nsnet security-group rule create web --egress --protocol udp --dst-port 53 --remote-ip 10.0.0.2/32`,
		Args:              exactArgs(1, "the security group (name or id)"),
		ValidArgsFunction: a.completeNames(client.SecurityGroups, 1),
	}
	flags.add(cmd)
	a.completeFlag(cmd, "remote-group", client.SecurityGroups)
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
		resolve := finder(cmd.Context(), c)
		group, err := resolve(client.SecurityGroups, args[0])
		if err != nil {
			return err
		}
		body, err := flags.body(cmd, resolve, group)
		if err != nil {
			return err
		}
		return write(cmd, out, client.SecurityGroupRules, "", "created", func() (json.RawMessage, client.Meta, error) {
			return client.Create[json.RawMessage](cmd.Context(), c, client.SecurityGroupRules, body)
		})
	}
	return cmd
}
