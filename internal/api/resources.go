package api

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/service"
)

// resource binds one collection of the API to the service.
type resource struct {
	singular, collection string
	// path is the collection's URL segment when it differs from its
	// JSON name (rbac-policies vs rbac_policies).
	path string
	// nested resources live below a parent's item ({parent} in path).
	nested bool
	// schema names the attributes lists may filter and sort by;
	// derived, the filter-only ones.
	schema  schema
	derived map[string]derived
	create  func(context.Context, service.Attrs) (any, int64, error)
	// bulk, when set, creates several in one transaction, all or none.
	bulk func(context.Context, []service.Attrs) ([]any, int64, error)
	// settle, when set, is how long a create waits for the agent though
	// the client did not ask (HeaderWait), so that the status it answers
	// is the programmed one (see networkSettle).
	settle time.Duration
	update func(context.Context, string, service.Attrs) (any, int64, error)
	remove func(context.Context, string) (int64, error)
	get    func(context.Context, string) (any, error)
	list   func(context.Context) ([]any, error)
	// marker, when set, reads a list's marker whoever may see it (nil
	// when there is none): the collection pages as Neutron's RBAC objects
	// do, the marker a position among all records, and a marker that
	// names nothing pages from the start. Without it, a marker must be
	// one of the records the caller sees (404 otherwise).
	marker func(context.Context, string) (any, error)
	// narrow, when set, reads only the part of the collection a list
	// request needs, when an index or a seek finds it (see narrow.go).
	narrow narrowFunc
}

// bind adapts the service's typed methods of one resource to a resource.
func bind[T any](singular, collection string,
	create func(context.Context, service.Attrs) (service.Result[T], error),
	update func(context.Context, string, service.Attrs) (service.Result[T], error),
	remove func(context.Context, string) (int64, error),
	get func(context.Context, string) (T, error),
	list func(context.Context) ([]T, error),
) resource {
	return resource{
		singular: singular, collection: collection, schema: schemaOf(reflect.TypeFor[T]()),
		create: func(ctx context.Context, a service.Attrs) (any, int64, error) {
			res, err := create(ctx, a)
			return res.Object, res.Revision, err
		},
		update: func(ctx context.Context, id string, a service.Attrs) (any, int64, error) {
			res, err := update(ctx, id, a)
			return res.Object, res.Revision, err
		},
		remove: remove,
		get: func(ctx context.Context, id string) (any, error) {
			return get(ctx, id)
		},
		list: func(ctx context.Context) ([]any, error) {
			items, err := list(ctx)
			out := make([]any, len(items))
			for i := range items {
				out[i] = items[i]
			}
			return out, err
		},
	}
}

// withBulk lets res be created in bulk, as Neutron allows for its core
// and security group resources.
func withBulk[T any](res resource, bulk func(context.Context, []service.Attrs) (service.Results[T], error)) resource {
	res.bulk = func(ctx context.Context, in []service.Attrs) ([]any, int64, error) {
		out, err := bulk(ctx, in)
		objs := make([]any, len(out.Objects))
		for i := range out.Objects {
			objs[i] = out.Objects[i]
		}
		return objs, out.Revision, err
	}
	return res
}

// withMarker gives res the marker lookup of Neutron's RBAC objects.
func withMarker[T any](res resource, marker func(context.Context, string) (*T, error)) resource {
	res.marker = func(ctx context.Context, id string) (any, error) {
		v, err := marker(ctx, id)
		if v == nil || err != nil {
			return nil, err
		}
		return *v, nil
	}
	return res
}

// urlPath is the collection's URL segment below /v2.0/.
func (r resource) urlPath() string {
	if r.path != "" {
		return r.path
	}
	return r.collection
}

func (s *Server) resources() []resource {
	svc := s.cfg.Service
	rbac := bind[model.RBACPolicy]("rbac_policy", "rbac_policies", svc.CreateRBACPolicy, svc.UpdateRBACPolicy,
		svc.DeleteRBACPolicy, svc.GetRBACPolicy, svc.ListRBACPolicies)
	rbac.path = "rbac-policies"
	published := bind[model.PublishedPort]("published_port", "published_ports", svc.CreatePublishedPort, svc.UpdatePublishedPort,
		svc.DeletePublishedPort, svc.GetPublishedPort, svc.ListPublishedPorts)
	published.path = "nsnet/published-ports"
	sg := bind[model.SecurityGroup]("security_group", "security_groups", svc.CreateSecurityGroup, svc.UpdateSecurityGroup,
		svc.DeleteSecurityGroup, svc.GetSecurityGroup, svc.ListSecurityGroups)
	sg.path = "security-groups"
	sg = withBulk(sg, svc.CreateSecurityGroups)
	sgRule := bind[model.SecurityGroupRule]("security_group_rule", "security_group_rules", svc.CreateSecurityGroupRule,
		svc.UpdateSecurityGroupRule, svc.DeleteSecurityGroupRule, svc.GetSecurityGroupRule, svc.ListSecurityGroupRules)
	sgRule.path = "security-group-rules"
	sgRule = withBulk(sgRule, svc.CreateSecurityGroupRules)
	ag := withMarker(bind[model.AddressGroup]("address_group", "address_groups", svc.CreateAddressGroup, svc.UpdateAddressGroup,
		svc.DeleteAddressGroup, svc.GetAddressGroup, svc.ListAddressGroups), svc.AddressGroupMarker)
	ag.path = "address-groups"
	subnets := bind[model.Subnet]("subnet", "subnets", svc.CreateSubnet, svc.UpdateSubnet, svc.DeleteSubnet, svc.GetSubnet, svc.ListSubnets)
	subnets = withBulk(subnets, svc.CreateSubnets)
	subnets.derived = map[string]derived{"shared": s.subnetShared}
	networks := withBulk(bind[model.Network]("network", "networks", svc.CreateNetwork, svc.UpdateNetwork, svc.DeleteNetwork,
		svc.GetNetwork, svc.ListNetworks), svc.CreateNetworks)
	networks.settle = networkSettle
	scopes := withMarker(bind[model.AddressScope]("address_scope", "address_scopes", svc.CreateAddressScope, svc.UpdateAddressScope,
		svc.DeleteAddressScope, svc.GetAddressScope, svc.ListAddressScopes), svc.AddressScopeMarker)
	scopes.path = "address-scopes"
	labels := bind[model.MeteringLabel]("metering_label", "metering_labels", svc.CreateMeteringLabel, svc.UpdateMeteringLabel,
		svc.DeleteMeteringLabel, svc.GetMeteringLabel, svc.ListMeteringLabels)
	labels.path = "metering/metering-labels"
	labelRules := bind[model.MeteringLabelRule]("metering_label_rule", "metering_label_rules", svc.CreateMeteringLabelRule,
		svc.UpdateMeteringLabelRule, svc.DeleteMeteringLabelRule, svc.GetMeteringLabelRule, svc.ListMeteringLabelRules)
	labelRules.path = "metering/metering-label-rules"
	ports := withBulk(bind[model.Port]("port", "ports", svc.CreatePort, svc.UpdatePort, svc.DeletePort, svc.GetPort, svc.ListPorts), svc.CreatePorts)
	ports.narrow = portsNarrow(svc)
	fips := withBulk(bind[model.FloatingIP]("floatingip", "floatingips", svc.CreateFloatingIP, svc.UpdateFloatingIP, svc.DeleteFloatingIP,
		svc.GetFloatingIP, svc.ListFloatingIPs), svc.CreateFloatingIPs)
	fips.narrow = fipsNarrow(svc)
	return append([]resource{
		networks,
		subnets,
		ports,
		bind[model.Instance]("instance", "instances", svc.CreateInstance, svc.UpdateInstance, svc.DeleteInstance, svc.GetInstance, svc.ListInstances),
		rbac,
		withBulk(bind[model.Router]("router", "routers", svc.CreateRouter, svc.UpdateRouter, svc.DeleteRouter, svc.GetRouter, svc.ListRouters),
			svc.CreateRouters),
		fips,
		sg,
		sgRule,
		ag,
		bindNested[model.PortForwarding]("port_forwarding", "port_forwardings", "floatingips/{parent}/port_forwardings",
			svc.CreatePortForwarding, svc.UpdatePortForwarding, svc.DeletePortForwarding, svc.GetPortForwarding, svc.ListPortForwardings),
		bindNested[model.ConntrackHelper]("conntrack_helper", "conntrack_helpers", "routers/{parent}/conntrack_helpers",
			svc.CreateConntrackHelper, svc.UpdateConntrackHelper, svc.DeleteConntrackHelper, svc.GetConntrackHelper, svc.ListConntrackHelpers),
		published,
		{
			singular: "floatingip_pool", collection: "floatingip_pools", path: "floatingip-pools",
			schema: schemaOf(reflect.TypeFor[model.FloatingIPPool]()),
			list: func(ctx context.Context) ([]any, error) {
				items, err := svc.ListFloatingIPPools(ctx)
				return anys(items), err
			},
		},
		withMarker(bind[model.SubnetPool]("subnetpool", "subnetpools", svc.CreateSubnetPool, svc.UpdateSubnetPool,
			svc.DeleteSubnetPool, svc.GetSubnetPool, svc.ListSubnetPools), svc.SubnetPoolMarker),
		scopes,
		labels,
		labelRules,
		bind[model.Trunk]("trunk", "trunks", svc.CreateTrunk, svc.UpdateTrunk, svc.DeleteTrunk, svc.GetTrunk, svc.ListTrunks),
	}, s.qosResources()...)
}

// subnetShared is Neutron's hidden shared attribute of subnets, which lists
// filter by: whether the subnet's network is shared with the caller.
func (s *Server) subnetShared(ctx context.Context) (func(map[string]any) any, error) {
	nets, err := s.cfg.Service.ListNetworks(ctx)
	if err != nil {
		return nil, err
	}
	shared := make(map[string]bool, len(nets))
	for _, n := range nets {
		shared[n.ID] = n.Shared
	}
	return func(subnet map[string]any) any {
		id, _ := subnet["network_id"].(string)
		return shared[id]
	}, nil
}

type parentKey struct{}

// parentOf is the id of the parent resource of a sub-resource request (the
// floating IP of /v2.0/floatingips/{id}/port_forwardings).
func parentOf(ctx context.Context) string { s, _ := ctx.Value(parentKey{}).(string); return s }

// bindNested binds a sub-resource whose service methods take the parent's
// id first; path is its URL below /v2.0/, with {parent} in it.
func bindNested[T any](singular, collection, path string,
	create func(context.Context, string, service.Attrs) (service.Result[T], error),
	update func(context.Context, string, string, service.Attrs) (service.Result[T], error),
	remove func(context.Context, string, string) (int64, error),
	get func(context.Context, string, string) (T, error),
	list func(context.Context, string) ([]T, error),
) resource {
	res := bind(singular, collection,
		func(ctx context.Context, a service.Attrs) (service.Result[T], error) {
			return create(ctx, parentOf(ctx), a)
		},
		func(ctx context.Context, id string, a service.Attrs) (service.Result[T], error) {
			return update(ctx, parentOf(ctx), id, a)
		},
		func(ctx context.Context, id string) (int64, error) { return remove(ctx, parentOf(ctx), id) },
		func(ctx context.Context, id string) (T, error) { return get(ctx, parentOf(ctx), id) },
		func(ctx context.Context) ([]T, error) { return list(ctx, parentOf(ctx)) },
	)
	res.path, res.nested = path, true
	return res
}

func (s *Server) register(res resource) {
	base := "/v2.0/" + res.urlPath()
	item := base + "/{id}"
	handle := func(pattern string, h http.HandlerFunc) {
		s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if res.nested {
				r = r.WithContext(context.WithValue(r.Context(), parentKey{}, r.PathValue("parent")))
			}
			h(w, r)
		})
	}

	handle("GET "+base, func(w http.ResponseWriter, r *http.Request) {
		var items []any
		narrowed := false
		var err error
		if res.narrow != nil {
			items, narrowed, err = res.narrow(r.Context(), r.URL.Query())
		}
		if !narrowed && err == nil {
			items, err = res.list(r.Context())
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		body, err := listBody(r, res, items)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, body)
	})
	// Collections without create (agents, availability zones) answer a
	// POST 405, as do those without items a GET, PUT or DELETE of one.
	if res.create == nil {
		handle = func(pattern string, h http.HandlerFunc) {
			if !strings.HasPrefix(pattern, "POST ") && (pattern == "GET "+base || res.get != nil) {
				s.mux.HandleFunc(pattern, h)
			}
		}
	}
	handle("POST "+base, func(w http.ResponseWriter, r *http.Request) {
		items, bulk, err := decodeCreate(r, res)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if bulk {
			objs, rev, err := res.bulk(r.Context(), items)
			if err != nil {
				s.fail(w, r, err)
				return
			}
			waited := s.waitFor(w, r, rev, res.settle)
			writeJSON(w, http.StatusCreated, map[string]any{res.collection: s.fresh(r, res, waited, objs...)})
			return
		}
		obj, rev, err := res.create(r.Context(), items[0])
		if err != nil {
			s.fail(w, r, err)
			return
		}
		s.respondAfterWrite(w, r, res, obj, rev, http.StatusCreated, res.settle)
	})
	handle("GET "+item, func(w http.ResponseWriter, r *http.Request) {
		obj, err := res.get(r.Context(), r.PathValue("id"))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		shown, err := project(obj, r.URL.Query()["fields"])
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{res.singular: shown})
	})
	handle("PUT "+item, func(w http.ResponseWriter, r *http.Request) {
		attrs, err := decodeBody(r, res.singular)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		ctx, err := ifMatch(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		obj, rev, err := res.update(ctx, r.PathValue("id"), attrs)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		s.respondAfterWrite(w, r, res, obj, rev, http.StatusOK, 0)
	})
	handle("DELETE "+item, func(w http.ResponseWriter, r *http.Request) {
		ctx, err := ifMatch(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		rev, err := res.remove(ctx, r.PathValue("id"))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		s.waitFor(w, r, rev, 0)
		w.WriteHeader(http.StatusNoContent)
	})
}

// ifMatch is Neutron's revision-if-match: a PUT or DELETE of an item with
// "If-Match: revision_number=N" changes it only at that revision (412
// otherwise). Other If-Match constraints are not Neutron's and are ignored,
// as Neutron does.
func ifMatch(r *http.Request) (context.Context, error) {
	for _, c := range strings.Split(r.Header.Get("If-Match"), ",") {
		v, ok := strings.CutPrefix(strings.TrimSpace(c), "revision_number=")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, &service.Error{Status: http.StatusBadRequest, Type: "HTTPBadRequest",
				Message: fmt.Sprintf("If-Match header revision_number=%s is not an integer", v)}
		}
		return service.WithRevisionConstraint(r.Context(), r.PathValue("id"), n), nil
	}
	return r.Context(), nil
}

// respondAfterWrite answers a create or update, first waiting for the agent
// when asked to (or for settle), so that the status in the answer is the
// programmed one.
func (s *Server) respondAfterWrite(w http.ResponseWriter, r *http.Request, res resource, obj any, rev int64, status int, settle time.Duration) {
	waited := s.waitFor(w, r, rev, settle)
	writeJSON(w, status, map[string]any{res.singular: s.fresh(r, res, waited, obj)[0]})
}

// networkSettle is how long a network's create waits for the agent to
// make its bridge. A network's status is its bridge's (ACTIVE once the
// agent made it, ERROR if it could not): Neutron's ML2 answers ACTIVE at
// create and clients check it there (tempest does), so nsnet answers once
// the bridge exists instead of answering BUILD at once. Making a bridge is
// one agent pass of a few netlink calls; on a host whose agent is behind,
// the answer comes after this long with the status as it then is (BUILD),
// which is still the truth.
const networkSettle = 5 * time.Second

// fresh reads objs again after a wait for the agent, so that their status
// is the programmed one.
func (s *Server) fresh(r *http.Request, res resource, waited bool, objs ...any) []any {
	if !waited {
		return objs
	}
	for i, obj := range objs {
		if again, err := res.get(r.Context(), idOf(obj)); err == nil {
			objs[i] = again
		}
	}
	return objs
}

// action is a PUT on one object that is not an update of its attributes
// (Neutron's member actions: add_router_interface, add_prefixes, …): the
// body's attributes in, the answer's body and the write's revision out.
type action func(ctx context.Context, id string, attrs service.Attrs) (body any, rev int64, err error)

// answerAs adapts a service action whose answer is an object: under key,
// or the object itself when key is "".
func answerAs[T any](key string, do func(context.Context, string, service.Attrs) (service.Result[T], error)) action {
	return func(ctx context.Context, id string, attrs service.Attrs) (any, int64, error) {
		res, err := do(ctx, id, attrs)
		if key == "" {
			return res.Object, res.Revision, err
		}
		return map[string]any{key: res.Object}, res.Revision, err
	}
}

// objectActions serves the member actions, PUT /v2.0/{collection}/{id}/{name},
// answered 200 once the agent programmed them when the client asked to wait.
func (s *Server) objectActions() {
	svc := s.cfg.Service
	unwrapped := func(r *http.Request) (service.Attrs, error) { return decodeObject(r) }
	inRouter := func(r *http.Request) (service.Attrs, error) { return decodeBody(r, "router") }
	prefixes := func(do func(context.Context, string, service.Attrs) ([]string, int64, error)) action {
		return func(ctx context.Context, id string, attrs service.Attrs) (any, int64, error) {
			p, rev, err := do(ctx, id, attrs)
			return map[string]any{"prefixes": p}, rev, err
		}
	}
	routerInterface := func(do func(context.Context, string, service.Attrs) (service.RouterInterface, int64, error)) action {
		return func(ctx context.Context, id string, attrs service.Attrs) (any, int64, error) {
			return do(ctx, id, attrs)
		}
	}
	for _, a := range []struct {
		path   string
		decode func(*http.Request) (service.Attrs, error)
		do     action
	}{
		// {"subnet_id": …} or {"port_id": …} in, Neutron's interface info out.
		{"routers/{id}/add_router_interface", unwrapped, routerInterface(svc.AddRouterInterface)},
		{"routers/{id}/remove_router_interface", unwrapped, routerInterface(svc.RemoveRouterInterface)},
		// extraroute-atomic: {"router": {"routes": […]}} in, the router out.
		{"routers/{id}/add_extraroutes", inRouter, answerAs("router", svc.AddExtraRoutes)},
		{"routers/{id}/remove_extraroutes", inRouter, answerAs("router", svc.RemoveExtraRoutes)},
		// subnetpool-prefix-ops: {"prefixes": […]} in, the pool's prefixes
		// after the change out.
		{"subnetpools/{id}/add_prefixes", unwrapped, prefixes(svc.AddSubnetPoolPrefixes)},
		{"subnetpools/{id}/remove_prefixes", unwrapped, prefixes(svc.RemoveSubnetPoolPrefixes)},
		// {"addresses": […]} in, the group out.
		{"address-groups/{id}/add_addresses", unwrapped, answerAs("address_group", svc.AddAddresses)},
		{"address-groups/{id}/remove_addresses", unwrapped, answerAs("address_group", svc.RemoveAddresses)},
		// {"sub_ports": […]} in, the trunk unwrapped out.
		{"trunks/{id}/add_subports", unwrapped, answerAs("", svc.AddSubPorts)},
		{"trunks/{id}/remove_subports", unwrapped, answerAs("", svc.RemoveSubPorts)},
	} {
		s.mux.HandleFunc("PUT /v2.0/"+a.path, func(w http.ResponseWriter, r *http.Request) {
			attrs, err := a.decode(r)
			if err != nil {
				s.fail(w, r, err)
				return
			}
			body, rev, err := a.do(r.Context(), r.PathValue("id"), attrs)
			if err != nil {
				s.fail(w, r, err)
				return
			}
			s.waitFor(w, r, rev, 0)
			writeJSON(w, http.StatusOK, body)
		})
	}
	s.mux.HandleFunc("GET /v2.0/trunks/{id}/get_subports", func(w http.ResponseWriter, r *http.Request) {
		subs, err := svc.GetSubPorts(r.Context(), r.PathValue("id"))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"sub_ports": subs})
	})
}
