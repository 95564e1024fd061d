package api

import (
	"net/http"

	"github.com/nsnet/nsnet/internal/service"
)

// extension is one entry of GET /v2.0/extensions. Listing one is a promise
// to clients that it works end to end, so only finished ones are here.
type extension struct {
	Alias       string   `json:"alias"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Updated     string   `json:"updated"`
	Links       []string `json:"links"`
}

var extensions = []extension{
	{"external-net", "Neutron external network", "Adds external network attribute to network resource.", "2013-01-14T10:00:00-00:00", []string{}},
	{"net-mtu", "Network MTU", "Provides MTU attribute for a network resource; nsnet sets it on the bridge and every veth.", "2015-03-25T10:00:00-00:00", []string{}},
	{"provider", "Provider Network", "Expose mapping of virtual networks to physical networks: tenant networks are vxlan with a VNI from --vni-ranges, provider networks flat on a physical network (on this host, the network's nsnet:uplink), or local; vlan, gre and geneve are not types nsnet has.", "2012-09-07T10:00:00-00:00", []string{}},
	{"net-mtu-writable", "Network MTU (writable)", "Provides a writable MTU attribute for a network resource; nsnet refuses one above the physical network's (--physnet-mtu) and changes the bridge and every veth of the network.", "2017-07-12T00:00:00-00:00", []string{}},
	{"project-id", "project_id field enabled", "Extension that indicates that project_id field is enabled.", "2016-09-09T09:09:09-09:09", []string{}},
	{"standard-attr-description", "standard-attr-description", "Extension to add descriptions to standard attributes", "2016-02-10T10:00:00-00:00", []string{}},
	{"standard-attr-timestamp", "Resource timestamps", "Adds created_at and updated_at fields to all Neutron resources that have Neutron standard attributes.", "2016-09-12T10:00:00-00:00", []string{}},
	{"standard-attr-tag", "Tag support for resources with standard attribute: network, subnet, port, router, floatingip, security_group", "Enables to set tag on resources with standard attribute.", "2017-01-01T00:00:00-00:00", []string{}},
	{"tag-ports-during-bulk-creation", "Tag Ports During Bulk Creation", "Allow to tag ports during bulk creation", "2019-12-29T19:00:00-00:00", []string{}},
	{"tag", "Tag support", "Enables to set tag on resources.", "2016-01-01T00:00:00-00:00", []string{}},
	{"standard-attr-revisions", "Resource revision numbers", "This extension will display the revision number of neutron resources.", "2016-04-11T10:00:00-00:00", []string{}},
	{"revision-if-match", "If-Match constraints based on revision_number", "Extension indicating that If-Match based on revision_number is supported.", "2016-12-11T00:00:00-00:00", []string{}},
	{"pagination", "Pagination support", "Extension that indicates that pagination is enabled: limit, marker and page_reverse, with next and previous links.", "2016-06-12T00:00:00-00:00", []string{}},
	{"sorting", "Sorting support", "Extension that indicates that sorting is enabled: sort_key and sort_dir.", "2016-06-12T00:00:00-00:00", []string{}},
	{"filter-validation", "Filter parameters validation", "Provides validation on filtering parameters: a filter that names no attribute of the resource answers 400.", "2018-03-21T10:00:00-00:00", []string{}},
	{"ip-substring-filtering", "IP address substring filtering", "Provides IP address substring filtering when listing ports: fixed_ips=ip_address_substr=….", "2017-11-28T09:00:00-00:00", []string{}},
	{"network-ip-availability", "Network IP Availability", "Provides IP availability data for each network and subnet (admin only): addresses in the allocation pools and addresses in use, exact for IPv6.", "2015-09-24T00:00:00-00:00", []string{}},
	{"quotas", "Quota management support", "Expose functions for quotas management per project", "2012-07-29T10:00:00-00:00", []string{}},
	{"quota_details", "Quota details management support", "Expose functions for quotas usage statistics per project", "2017-02-10T10:00:00-00:00", []string{}},
	{"quota-check-limit", "Quota engine limit check", "Support for checking the resource usage before applying a new quota limit", "2021-09-08T16:00:00-00:00", []string{}},
	{"subnet_allocation", "Subnet Allocation", "Enables allocation of subnets from a subnet pool", "2015-03-30T10:00:00-00:00", []string{}},
	{"default-subnetpools", "Default Subnetpools", "Provides ability to mark and use a subnetpool as the default.", "2016-02-18T18:00:00-00:00", []string{}},
	{"subnetpool-prefix-ops", "Subnet Pool Prefix Operations", "Provides support for adjusting the prefix list of subnet pools", "2019-02-08T10:00:00-00:00", []string{}},
	{"address-scope", "Address scope", "Address scopes extension.", "2015-07-26T10:00:00-00:00", []string{}},
	{"rbac-subnetpool", "Add subnetpool type to RBAC", "Add subnetpool type to RBAC", "2020-02-05T00:00:00-00:00", []string{}},
	{"rbac-address-scope", "Add address_scope type to RBAC", "Add address_scope type to RBAC", "2020-02-12T00:00:00-00:00", []string{}},
	{"rbac-address-group", "Add address_group type to RBAC", "Add address_group type to network RBAC: a group shared with a project is visible to it and usable as the remote of its security group rules.", "2021-01-20T00:00:00-00:00", []string{}},
	{"rbac-policies", "RBAC Policies", "Allows creation and modification of policies that control tenant access to resources.", "2015-06-17T12:15:12-00:00", []string{}},
	{"rbac-security-groups", "Add security_group type to network RBAC", "Add security_group type to network RBAC: a group shared with a project is visible to it and usable on its ports.", "2019-01-02T00:00:00-00:00", []string{}},
	{"qos", "Quality of Service", "The Quality of Service extension: policies of bandwidth limit and DSCP marking rules on ports and networks; nsnet's agent shapes both ends of each port's veth (tbf) and marks what the instance sends (see docs/QOS.md).", "2015-06-08T10:00:00-00:00", []string{}},
	{"qos-bw-limit-direction", "Direction for QoS bandwidth limit rule", "Allow to configure QoS bandwidth limit rule with specific direction: ingress or egress", "2017-04-10T10:00:00-00:00", []string{}},
	{"qos-default", "QoS default policy", "Expose the QoS default policy per project", "2017-04-06T10:00:00-00:00", []string{}},
	{"qos-rule-type-details", "Details of QoS rule types", "Expose details about QoS rule types supported by loaded backend drivers", "2017-06-22T10:00:00-00:00", []string{}},
	{"router", "Neutron L3 Router", "Router abstraction for layer 3 forwarding between layer 2 Neutron networks and access to external networks; nsnet builds each router as a qrouter-<id> namespace.", "2012-07-20T10:00:00-00:00", []string{}},
	{"ext-gw-mode", "Neutron L3 Configurable external gateway mode", "Extension of the router abstraction for specifying whether SNAT should occur on the external gateway", "2013-03-28T10:00:00-00:00", []string{}},
	{"extraroute", "Neutron Extra Route", "Extra routes configuration for L3 router", "2013-02-01T10:00:00-00:00", []string{}},
	{"extraroute-atomic", "Atomically add/remove extra routes", "Edit extra routes of a router on server side by atomically adding/removing extra routes", "2019-07-10T00:00:00-00:00", []string{}},
	{"floatingip-pools", "Floating IP Pools Extension", "Provides a floating IP pools API: the IPv4 subnets of the external networks a project can see.", "2018-03-21T10:00:00-00:00", []string{}},
	{"fip-port-details", "Floating IP Port Details Extension", "Add port_details attribute to Floating IP resource", "2018-04-09T10:00:00-00:00", []string{}},
	{"floating-ip-port-forwarding", "Floating IP Port Forwarding", "Provides port forwarding to floating IP support", "2018-04-17T10:00:00-00:00", []string{}},
	{"expose-port-forwarding-in-fip", "Expose port forwardings in floating IP", "A floating IP's body lists its port forwardings (port_forwardings).", "2019-04-09T10:00:00-00:00", []string{}},
	{"l3-conntrack-helper", "L3 Conntrack helper", "Allow adding CT target rules for conntrack helper", "2019-04-04T10:00:00-00:00", []string{}},
	{"expose-l3-conntrack-helper", "Expose CT target rules for conntrack helper", "Expose CT target rules for conntrack helper", "2019-04-04T10:00:00-00:00", []string{}},
	{"extra_dhcp_opt", "Neutron Extra DHCP options", "Extra options configuration for DHCP. For example PXE boot options to DHCP clients can be specified (e.g. tftp-server, server-ip-address, bootfile-name); nsnet's DHCP server sends the IPv4 ones, under dnsmasq's option names or by code.", "2013-03-17T12:00:00-00:00", []string{}},
	{"security-group", "security-group", "The security groups extension; nsnet filters every port on the host's nsnet_fw nftables tables (see docs/SECURITY_GROUPS.md).", "2012-10-05T10:00:00-00:00", []string{}},
	{"stateful-security-group", "Stateful security group", "Indicates if the security group is stateful or not: a stateless group's ports are not tracked by conntrack, and its rules judge every packet both ways (replies need rules of their own).", "2019-11-26T09:00:00-00:00", []string{}},
	{"address-group", "Address group", "Support address group: named lists of CIDRs that security group rules name as their remote; nsnet keeps each in sets of its own, shared by every rule naming it.", "2020-07-15T10:00:00-00:00", []string{}},
	{"security-groups-remote-address-group", "Remote address group id field for security group rules", "Add new field of remote address group id in SG rules", "2020-08-25T10:00:00-00:00", []string{}},
	{"metering", "Neutron Metering", "Neutron Metering extension: nsnet counts each label's traffic through the gateway of every router of its project (of every project when shared) in nftables counters of the router's namespace (see docs/METERING.md).", "2013-06-12T10:00:00-00:00", []string{}},
	{"metering_source_and_destination_fields", "Neutron Metering with source and destination filtering", "Neutron Metering extension that enables the use of source and destination IP prefixes to create metering label rules.", "2020-08-21T08:12:00-00:00", []string{}},
	{"port-security", "Port Security", "Provides port security: anti-spoofing of MAC, addresses, ARP, DHCP and router advertisements.", "2012-07-23T10:00:00-00:00", []string{}},
	{"subnet-service-types", "Subnet service types", "Provides ability to set the subnet service_types field: a port takes its addresses from the subnets typed for its device_owner, or from untyped ones.", "2016-03-15T18:00:00-00:00", []string{}},
	{"port-mac-address-regenerate", "Neutron Port MAC address regenerate", "Network port MAC address regenerate: an update with mac_address null gives the port a new MAC, which the agent sets on its veth.", "2018-05-03T10:00:00-00:00", []string{}},
	{"allowed-address-pairs", "Allowed Address Pairs", "Provides allowed address pairs", "2013-07-23T10:00:00-00:00", []string{}},
	{"service-type", "Neutron Service Type Management", "API for retrieving service providers for Neutron advanced services: nsnet's routers are its one L3_ROUTER_NAT provider, single_node.", "2013-01-20T00:00:00-00:00", []string{}},
	{"agent", "agent", "The agent management extension: nsnet's agent registers as the L3, DHCP, metadata and Linux bridge agents of its host, alive while its full passes run.", "2013-02-03T10:00:00-00:00", []string{}},
	{"dhcp_agent_scheduler", "DHCP Agent Scheduler", "Schedule networks among dhcp agents: a network removed from its DHCP agent loses its qdhcp namespace.", "2013-02-07T10:00:00-00:00", []string{}},
	{"l3_agent_scheduler", "L3 Agent Scheduler", "Schedule routers among l3 agents: a router removed from its L3 agent loses its qrouter namespace.", "2013-02-07T10:00:00-00:00", []string{}},
	{"availability_zone", "Availability Zone", "The availability zone extension.", "2015-01-01T10:00:00-00:00", []string{}},
	{"availability_zone_filter", "Availability Zone Filter Extension", "Add filter parameters to AvailabilityZone resource", "2018-06-22T10:00:00-00:00", []string{}},
	{"network_availability_zone", "Network Availability Zone", "Availability zone support for network.", "2015-01-01T10:00:00-00:00", []string{}},
	{"router_availability_zone", "Router Availability Zone", "Availability zone support for router.", "2015-01-01T10:00:00-00:00", []string{}},
	{"binding", "Port Binding", "Expose port bindings of a virtual port to external application", "2014-02-03T10:00:00-00:00", []string{}},
	{"dns-integration", "DNS Integration", "Provides integration with DNS: a port's dns_name is the name nsnet's DNS server gives its addresses in the network's dns_domain (nsnet's DNS stands in for neutron.conf's dns_domain), and dns_assignment shows the names it answers.", "2015-08-15T18:00:00-00:00", []string{}},
	{"dns-domain-ports", "dns_domain for ports", "Allows the DNS domain to be specified for a network port: nsnet's DNS server also answers the port's dns_name in it (that one name; the reverse stays the network's).", "2017-04-24T10:00:00-00:00", []string{}},
	{"trunk", "Trunk Extension", "Provides support for trunk ports: a parent port whose link carries its subports' traffic VLAN-tagged; the instance tags each subport's frames with its segmentation_id on the parent's link; on the host each subport has an interface of its own in its network's bridge (a veth pair, tagged and untagged for the parent's tap by tc BPF programs), filtered by the subport's own port security and security groups.", "2015-01-01T10:00:00-00:00", []string{}},
	{"trunk-details", "Trunk port details", "Expose trunk port details", "2016-01-01T10:00:00-00:00", []string{}},
	{"nsnet-instances", "nsnet instances", "Instances are named network namespaces; a port whose device_id is an instance id is plugged into it as a veth (nsnet:interface_name names it).", "2026-11-23T00:00:00-00:00", []string{}},
	{"nsnet-uplink", "nsnet network uplink", "Network attribute nsnet:uplink names the host interface a network reaches beyond the host by: on a router:external network nsnet plugs it into the network's bridge (and releases it, never deleting it, when unset); on an nsnet:host_gateway network it is the interface NATed traffic leaves by.", "2026-11-23T00:00:00-00:00", []string{}},
	{"nsnet-host-nat", "nsnet host NAT", "Network attributes nsnet:host_gateway (the subnets' gateway addresses on the bridge in the host namespace, which forwards for them) and nsnet:snat_address (a fixed source address out of nsnet:uplink instead of masquerade); /v2.0/nsnet/published-ports publishes host ports to addresses on such networks.", "2026-11-23T00:00:00-00:00", []string{}},
	{"nsnet-network-services", "nsnet DHCP, DNS and metadata", "Each network with a DHCP subnet has a network:dhcp port in a qdhcp-<id> namespace where nsnet serves DHCP (static leases) and DNS for its ports' names in the network's dns_domain (dns_name, else the instance's name, else the port's name when a DNS label, else host-<address>); ports with nsnet:dhcp_client get their link only; instances' user_data, meta and ssh_keys are served at 169.254.169.254.", "2026-11-23T00:00:00-00:00", []string{}},
	{"nsnet-wait", "nsnet wait for programming", "A write with header X-Nsnet-Wait: <duration> is answered once the agent has programmed it (X-Nsnet-Converged tells whether it had).", "2026-11-23T00:00:00-00:00", []string{}},
}

func (s *Server) listExtensions(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"extensions": extensions})
}

func (s *Server) showExtension(w http.ResponseWriter, r *http.Request) {
	alias := r.PathValue("alias")
	for _, e := range extensions {
		if e.Alias == alias {
			writeJSON(w, http.StatusOK, map[string]any{"extension": e})
			return
		}
	}
	writeError(w, &service.Error{Status: 404, Type: "ExtensionNotFound", Message: "Extension with alias " + alias + " does not exist"})
}
