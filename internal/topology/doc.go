// Package topology reads declarative topology files and turns them into
// API calls: `nsnet apply -f FILE` makes nsnet match the file, `nsnet
// destroy -f FILE` removes what the file names.
//
// It owns the file format, its validation, the plan (which resources to
// create, update, leave alone or delete) and carrying a plan out through
// package client. Computing a plan is a pure function of the file and of the
// current state, so it is tested without a server. It must not talk to the
// kernel, nor decide anything the API decides (IPAM, defaults): fields the
// file leaves out are left to the server and never compared.
//
// # File format
//
// A topology is a YAML document with a name and lists of resources, which refer
// to each other by name, never by id:
//
//	name: seed-bridge            # required; marks what this file manages
//	instances:
//	  - name: red
//	networks:
//	  - name: bridge
//	    mtu: 1500                # optional: mtu, shared, external,
//	                             # admin_state_up, port_security_enabled,
//	                             # uplink, host_gateway, snat_address
//	                             # (docs/NAT.md; "" clears uplink or
//	                             # snat_address)
//	    subnets:                 # subnets may nest in their network…
//	      - name: bridge-v4
//	        cidr: 192.168.24.0/24
//	        gateway_ip: 192.168.24.1   # or "none"
//	      - name: bridge-v6      # IPv6 (ip_version follows the cidr)
//	        cidr: 2001:db8:24::/64
//	        ipv6_ra_mode: slaac        # slaac, dhcpv6-stateful or
//	        ipv6_address_mode: slaac   # dhcpv6-stateless; fixed once made
//	subnets:                     # …or stand alone, naming it
//	  - name: extra
//	    network: bridge
//	    cidr: 10.9.0.0/24
//	    allocation_pools: [{start: 10.9.0.100, end: 10.9.0.199}]
//	    dns_nameservers: [10.9.0.1]
//	    host_routes: [{destination: 10.10.0.0/16, nexthop: 10.9.0.254}]
//	    enable_dhcp: false
//	ports:
//	  - name: red-eth0
//	    network: bridge
//	    fixed_ips: [{subnet: bridge-v4, ip_address: 192.168.24.10}]
//	    instance: red            # plugs the port into the instance
//	    interface_name: eth0     # its name inside the instance
//	    mac_address: fa:16:3e:00:00:10
//	    dhcp_client: true        # the instance configures it by DHCP
//	    security_groups: [web]   # left out: the project's default group
//	    allowed_address_pairs: [{ip_address: 192.168.24.100}]
//	security_groups:
//	  - name: web
//	    rules:                   # the group's whole list: others are deleted,
//	      - {direction: egress}  # nsnet's default egress rules included
//	      - {protocol: tcp, port_range_min: 22, port_range_max: 22, remote_ip_prefix: 10.0.0.0/24}
//	      - {protocol: tcp, port_range_min: 80, port_range_max: 80, remote_group: web}
//	routers:
//	  - name: r1
//	    admin_state_up: true
//	    external_gateway:        # the qg- port; left out: left alone
//	      network: public        # an external network
//	      enable_snat: true
//	      fixed_ips: [{subnet: public-v4, ip_address: 198.51.100.2}]
//	    interfaces: [bridge-v4]  # subnets attached (qr- ports); given, managed
//	    routes: [{destination: 10.10.0.0/16, nexthop: 192.168.24.254}]
//	floating_ips:                # named by their address
//	  - address: 198.51.100.10
//	    network: public
//	    port: red-eth0           # associates it
//	port_forwardings:            # named by floating IP, protocol and external port
//	  - floating_ip: 198.51.100.11
//	    protocol: tcp
//	    external_port: 8080
//	    internal_port: 80
//	    port: red-eth0
//	    internal_ip_address: 192.168.24.10
//	published_ports:             # the host's (host_gateway networks), named
//	  - protocol: tcp            # by protocol and host port
//	    host_port: 8080
//	    port: red-eth0           # and/or internal_ip_address
//	    internal_port: 80
//
// Parsing is strict: an unknown key, a key given twice or a key with no
// value is an error naming the key and its line. A key left out means "the
// server's default, and whatever it is now": it is neither sent nor compared.
// A list given empty ([]) is managed and means empty.
//
// # What apply does
//
// Resources are matched to nsnet's by kind and name. apply creates what is
// missing, in dependency order (instances, networks, subnets, ports,
// routers — each followed by the subnets it attaches and its routes —,
// floating IPs, port forwardings, published ports), and
// updates fields that differ, only with the API's updatable attributes. If
// a field the API cannot change differs (a subnet's cidr or network, a
// port's network), apply stops before changing anything and says which
// resource to delete or rename: it never recreates a resource on its own,
// because recreating drops the addresses and flows that depend on it.
//
// # Ownership: the description
//
// apply writes "nsnet:topology=<name>" into the description of every
// resource it creates (or finds by name and takes over, which the plan
// shows). The description, not a naming convention, marks ownership,
// because names are the user's to choose, and nsnet's API sets tags only
// through a separate API that it does not serve yet. So the file has no
// description fields: apply owns them. `apply --prune` deletes only
// resources carrying this file's mark whose names the file no longer
// lists; hand-made resources and other topologies' are never pruned, and a
// resource marked by another topology is an error, not a takeover.
//
// Floating IPs and port forwardings have no name in the API: the file names
// a floating IP by its address (so choosing it, the admin's in Neutron,
// makes apply repeatable), a port forwarding by its floating IP, protocol
// and external port, and a published port by its protocol and host port.
// All carry the marker in their description.
// Deleting a router (destroy, prune) first clears its routes and detaches
// its subnets, as the API requires.
//
// destroy deletes the resources the file names, published ports, port
// forwardings and floating IPs first, then routers, ports, and instances last; ones already
// gone are fine.
package topology
