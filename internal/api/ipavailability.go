package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/nsnet/nsnet/internal/service"
)

// ipAvailabilityRoutes serves Neutron's network-ip-availability: GET of
// /v2.0/network-ip-availabilities (filters network_id, network_name,
// project_id or tenant_id, ip_version; fields) and of one network's. Its
// counts are big integers that the generic list path (which decodes into
// float64) would round, so it has a path of its own.
func (s *Server) ipAvailabilityRoutes() {
	svc := s.cfg.Service
	s.mux.HandleFunc("GET /v2.0/network-ip-availabilities", func(w http.ResponseWriter, r *http.Request) {
		f, err := ipAvailabilityFilter(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		items, err := svc.ListNetworkIPAvailabilities(r.Context(), f)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		shown := make([]any, len(items))
		for i, it := range items {
			if shown[i], err = pickExact(it, r.URL.Query()["fields"]); err != nil {
				s.fail(w, r, err)
				return
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"network_ip_availabilities": shown})
	})
	s.mux.HandleFunc("GET /v2.0/network-ip-availabilities/{id}", func(w http.ResponseWriter, r *http.Request) {
		it, err := svc.GetNetworkIPAvailability(r.Context(), r.PathValue("id"))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		shown, err := pickExact(it, r.URL.Query()["fields"])
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"network_ip_availability": shown})
	})
}

// ipAvailabilityFilter reads a list's filters; any other (but the list
// controls) is refused, as filter-validation does.
func ipAvailabilityFilter(r *http.Request) (service.IPAvailabilityFilter, error) {
	var f service.IPAvailabilityFilter
	var unknown []string
	for key, values := range r.URL.Query() {
		switch key {
		case "network_id":
			f.NetworkIDs = append(f.NetworkIDs, values...)
		case "network_name":
			f.NetworkNames = append(f.NetworkNames, values...)
		case "project_id", "tenant_id":
			f.ProjectIDs = append(f.ProjectIDs, values...)
		case "ip_version":
			for _, v := range values {
				n, err := strconv.Atoi(v)
				if err != nil {
					return f, &service.Error{Status: http.StatusBadRequest, Type: "HTTPBadRequest",
						Message: fmt.Sprintf("Invalid input for ip_version. Reason: '%s' is not an integer.", v)}
				}
				f.IPVersions = append(f.IPVersions, n)
			}
		default:
			if !listControls[key] {
				unknown = append(unknown, key)
			}
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return f, &service.Error{Status: http.StatusBadRequest, Type: "HTTPBadRequest",
			Message: fmt.Sprintf("[%s] is invalid attribute for filtering", strings.Join(unknown, ", "))}
	}
	return f, nil
}

// pickExact applies ?fields= to obj, keeping each value's JSON as it is.
func pickExact(obj any, fields []string) (any, error) {
	if len(fields) == 0 {
		return obj, nil
	}
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	out := map[string]json.RawMessage{}
	for _, f := range fields {
		for _, name := range strings.Split(f, ",") {
			if v, ok := m[name]; ok {
				out[name] = v
			}
		}
	}
	return out, nil
}
