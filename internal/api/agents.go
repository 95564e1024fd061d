package api

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/service"
)

// Agents (Neutron's agent extension), their schedulers (dhcp_agent_scheduler,
// l3_agent_scheduler) and availability zones. The service decides who may
// see and change them: agents are an admin's.

// agentResources are the collections of agents and zones. Agents are
// registered by the daemon, never created through the API; zones are only
// listed.
func (s *Server) agentResources() []resource {
	svc := s.cfg.Service
	agents := bind[model.Agent]("agent", "agents", nil, svc.UpdateAgent, svc.DeleteAgent, svc.GetAgent, svc.ListAgents)
	agents.create = nil
	zones := resource{
		singular: "availability_zone", collection: "availability_zones",
		schema: schemaOf(reflect.TypeFor[model.AvailabilityZone]()),
		list: func(ctx context.Context) ([]any, error) {
			items, err := svc.ListAvailabilityZones(ctx)
			return anys(items), err
		},
	}
	return []resource{agents, zones}
}

func anys[T any](items []T) []any {
	out := make([]any, len(items))
	for i := range items {
		out[i] = items[i]
	}
	return out
}

// scheduler is one of the agent schedulers' pairs of sub-collections: the
// resources an agent hosts (below /agents/{id}/) and the agents hosting a
// resource (below /{parents}/{id}/).
type scheduler struct {
	hosted  resource // networks or routers, for filtering and fields
	path    string   // below /agents/{id}/: dhcp-networks, l3-routers
	parents string   // networks, routers
	agents  string   // below /{parents}/{id}/: dhcp-agents, l3-agents
	idAttr  string   // the body attribute of an add: network_id, router_id
	list    func(context.Context, string) ([]any, error)
	hosting func(context.Context, string) ([]model.Agent, error)
	add     func(context.Context, string, string) (int64, error)
	remove  func(context.Context, string, string) (int64, error)
}

func (s *Server) schedulerRoutes() {
	svc := s.cfg.Service
	agentRes := resource{singular: "agent", collection: "agents", schema: schemaOf(reflect.TypeFor[model.Agent]())}
	for _, sc := range []scheduler{
		{
			hosted: resource{singular: "network", collection: "networks", schema: schemaOf(reflect.TypeFor[model.Network]())},
			path:   "dhcp-networks", parents: "networks", agents: "dhcp-agents", idAttr: "network_id",
			list: func(ctx context.Context, id string) ([]any, error) {
				items, err := svc.ListDHCPNetworks(ctx, id)
				return anys(items), err
			},
			hosting: svc.ListNetworkDHCPAgents, add: svc.AddNetworkToDHCPAgent, remove: svc.RemoveNetworkFromDHCPAgent,
		},
		{
			hosted: resource{singular: "router", collection: "routers", schema: schemaOf(reflect.TypeFor[model.Router]())},
			path:   "l3-routers", parents: "routers", agents: "l3-agents", idAttr: "router_id",
			list: func(ctx context.Context, id string) ([]any, error) {
				items, err := svc.ListL3Routers(ctx, id)
				return anys(items), err
			},
			hosting: svc.ListRouterL3Agents, add: svc.AddRouterToL3Agent, remove: svc.RemoveRouterFromL3Agent,
		},
	} {
		s.mux.HandleFunc("GET /v2.0/agents/{id}/"+sc.path, func(w http.ResponseWriter, r *http.Request) {
			items, err := sc.list(r.Context(), r.PathValue("id"))
			s.answerList(w, r, sc.hosted, items, err)
		})
		s.mux.HandleFunc("POST /v2.0/agents/{id}/"+sc.path, func(w http.ResponseWriter, r *http.Request) {
			body, err := decodeObject(r)
			if err != nil {
				s.fail(w, r, err)
				return
			}
			var id string
			if raw, ok := body[sc.idAttr]; !ok || json.Unmarshal(raw, &id) != nil || id == "" {
				s.fail(w, r, &service.Error{Status: http.StatusBadRequest, Type: "HTTPBadRequest",
					Message: "Failed to parse request. Required attribute '" + sc.idAttr + "' not specified"})
				return
			}
			rev, err := sc.add(r.Context(), r.PathValue("id"), id)
			if err != nil {
				s.fail(w, r, err)
				return
			}
			s.waitFor(w, r, rev, 0)
			// Neutron answers an add with an empty (null) body.
			writeJSON(w, http.StatusCreated, nil)
		})
		s.mux.HandleFunc("DELETE /v2.0/agents/{id}/"+sc.path+"/{hosted}", func(w http.ResponseWriter, r *http.Request) {
			rev, err := sc.remove(r.Context(), r.PathValue("id"), r.PathValue("hosted"))
			if err != nil {
				s.fail(w, r, err)
				return
			}
			s.waitFor(w, r, rev, 0)
			w.WriteHeader(http.StatusNoContent)
		})
		s.mux.HandleFunc("GET /v2.0/"+sc.parents+"/{id}/"+sc.agents, func(w http.ResponseWriter, r *http.Request) {
			items, err := sc.hosting(r.Context(), r.PathValue("id"))
			s.answerList(w, r, agentRes, anys(items), err)
		})
	}
}

// answerList answers a list of items of res, with the filters and fields
// of the query.
func (s *Server) answerList(w http.ResponseWriter, r *http.Request, res resource, items []any, err error) {
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
}
