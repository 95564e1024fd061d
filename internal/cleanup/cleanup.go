// Package cleanup removes from one host every kernel object nsnet made,
// recognised by nsnet's own marks alone: namespaces whose names carry the
// agent's prefix and whose lo carries an instance, router or DHCP marker of
// this host, links in the host namespace labelled with an nsnet alias
// (bridges and the host ends of ports), the nft tables of the host
// namespace (NAT: inet nsnet; security groups: bridge and inet nsnet_fw),
// and, under the prefix, mount points of namespace creations that died
// before mounting (plain files no creation holds locked). It works with an
// empty or lost store, since it never reads it, and it never touches an object without those marks: a look-alike
// name is not enough.
//
// It must not write the store, and must not run while a daemon programs the
// same host (the agent would build everything again): the caller checks.
package cleanup

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nsnet/nsnet/internal/dataplane"
	"github.com/nsnet/nsnet/internal/firewall"
	"github.com/nsnet/nsnet/internal/nat"
	"github.com/nsnet/nsnet/internal/netns"
)

// Config says which host to clean: the agent's --host-netns and
// --netns-prefix.
type Config struct {
	HostNetns   string
	NetnsPrefix string
	// DryRun lists what would go without removing anything.
	DryRun bool
}

// Object is one kernel object nsnet made.
type Object struct {
	Kind string `json:"kind"` // router, instance, dhcp, link, nft-table, mount-point
	Name string `json:"name"`
	// Namespace is where a link or table is; "" is the daemon's own.
	Namespace string `json:"namespace,omitempty"`
	// Mark is what identified it as nsnet's: a marker or an alias.
	Mark string `json:"mark"`
}

// Run removes (or, with DryRun, lists) every object nsnet made on the host.
// Routers go first, then instances, whose namespaces take their veths with
// them, then the remaining host links, ports before bridges, then the
// host's nft table. It goes on past failures and reports them all.
func Run(ctx context.Context, cfg Config) ([]Object, error) {
	if cfg.HostNetns != "" && !netns.Exists(cfg.HostNetns) {
		return nil, fmt.Errorf("host namespace %s does not exist", cfg.HostNetns)
	}
	host, err := netns.NewHandle(cfg.HostNetns)
	if err != nil {
		return nil, fmt.Errorf("open host namespace: %w", err)
	}
	defer host.Close()
	links, err := dataplane.DumpLinks(host)
	if err != nil {
		return nil, fmt.Errorf("list host links: %w", err)
	}

	var found []Object
	var errs []error
	markerHost := cmp.Or(cfg.HostNetns, dataplane.HostRoot)
	routers, err := dataplane.ListRouterNamespaces(cfg.NetnsPrefix)
	errs = append(errs, err)
	for _, name := range slices.Sorted(maps.Keys(routers)) {
		if _, h, _ := dataplane.ParseRouterMarker(routers[name]); h == markerHost {
			found = append(found, Object{Kind: "router", Name: name, Mark: routers[name]})
		}
	}
	instances, err := dataplane.ListInstanceNamespaces(cfg.NetnsPrefix)
	errs = append(errs, err)
	for _, name := range slices.Sorted(maps.Keys(instances)) {
		if _, h, _ := dataplane.ParseInstanceMarker(instances[name]); h == markerHost && name != cfg.HostNetns {
			found = append(found, Object{Kind: "instance", Name: name, Mark: instances[name]})
		}
	}
	dhcps, err := dataplane.ListDHCPNamespaces(cfg.NetnsPrefix)
	errs = append(errs, err)
	for _, name := range slices.Sorted(maps.Keys(dhcps)) {
		if _, h, _ := dataplane.ParseDHCPMarker(dhcps[name]); h == markerHost {
			found = append(found, Object{Kind: "dhcp", Name: name, Mark: dhcps[name]})
		}
	}
	if cfg.NetnsPrefix != "" {
		names, err := netns.List()
		errs = append(errs, err)
		for _, name := range names {
			if strings.HasPrefix(name, cfg.NetnsPrefix) && !netns.Exists(name) {
				found = append(found, Object{Kind: "mount-point", Name: netns.Path(name), Mark: "prefix, never mounted"})
			}
		}
	}
	owned := links.Owned()
	for _, kind := range []string{"port", "vxlan", "network"} {
		for _, alias := range slices.Sorted(maps.Keys(owned)) {
			if k, _, _ := dataplane.ParseAlias(alias); k == kind {
				found = append(found, Object{Kind: "link", Name: owned[alias].Attrs().Name, Namespace: cfg.HostNetns, Mark: alias})
			}
		}
	}
	if has, err := nat.HasTable(cfg.HostNetns); err != nil {
		errs = append(errs, err)
	} else if has {
		found = append(found, Object{Kind: "nft-table", Name: "inet " + nat.TableName, Namespace: cfg.HostNetns, Mark: "table name"})
	}
	if fw, err := firewall.Open(cfg.HostNetns, nil); err != nil {
		errs = append(errs, err)
	} else {
		if has, err := fw.Present(); err != nil {
			errs = append(errs, err)
		} else if has {
			found = append(found, Object{Kind: "nft-table", Name: "bridge+inet " + firewall.TableName, Namespace: cfg.HostNetns, Mark: "table name"})
		}
		fw.Close()
	}
	if cfg.DryRun {
		return found, errors.Join(errs...)
	}

	var removed []Object
	for _, o := range found {
		if err := ctx.Err(); err != nil {
			return removed, errors.Join(append(errs, err)...)
		}
		var err error
		switch o.Kind {
		case "router":
			err = dataplane.DeleteRouterNetns(o.Name, o.Mark, links)
		case "instance", "dhcp":
			err = dataplane.DeleteInstanceNetns(o.Name, o.Mark, links)
		case "link":
			_, err = dataplane.DeleteLink(links, o.Name, o.Mark)
		case "nft-table":
			if strings.HasSuffix(o.Name, " "+firewall.TableName) {
				err = deleteFirewall(o.Namespace)
			} else {
				_, err = nat.DeleteTable(o.Namespace)
			}
		case "mount-point":
			_, err = netns.RemoveStale(filepath.Base(o.Name))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("remove %s %s: %w", o.Kind, o.Name, err))
			continue
		}
		removed = append(removed, o)
	}
	return removed, errors.Join(errs...)
}

func deleteFirewall(namespace string) error {
	fw, err := firewall.Open(namespace, nil)
	if err != nil {
		return err
	}
	defer fw.Close()
	return fw.Delete()
}
