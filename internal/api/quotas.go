package api

import (
	"fmt"
	"net/http"

	"github.com/nsnet/nsnet/internal/auth"
	"github.com/nsnet/nsnet/internal/service"
)

// quotaRoutes serves Neutron's quota extensions (quotas, quota_details,
// quota-check-limit) in their shapes: {"quota": {"network": 100, …}}.
func (s *Server) quotaRoutes() {
	svc := s.cfg.Service
	s.mux.HandleFunc("GET /v2.0/quotas", func(w http.ResponseWriter, r *http.Request) {
		list, err := svc.ListQuotas(r.Context())
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if list == nil {
			list = []map[string]any{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"quotas": list})
	})
	s.mux.HandleFunc("POST /v2.0/quotas", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &service.Error{Status: http.StatusNotImplemented, Type: "HTTPNotImplemented",
			Message: "POST requests are not supported on this resource."})
	})
	// The caller's own project, as Neutron's collection actions say it.
	for _, key := range []string{"tenant", "project"} {
		s.mux.HandleFunc("GET /v2.0/quotas/"+key, func(w http.ResponseWriter, r *http.Request) {
			c, _ := auth.FromContext(r.Context())
			writeJSON(w, http.StatusOK, map[string]any{key: map[string]string{key + "_id": c.ProjectID}})
		})
	}
	s.mux.HandleFunc("GET /v2.0/quotas/{project}", func(w http.ResponseWriter, r *http.Request) {
		q, err := svc.GetQuota(r.Context(), r.PathValue("project"))
		s.answerQuota(w, r, q, err)
	})
	s.mux.HandleFunc("GET /v2.0/quotas/{project}/default", func(w http.ResponseWriter, r *http.Request) {
		q, err := svc.DefaultQuota(r.Context(), r.PathValue("project"))
		s.answerQuota(w, r, q, err)
	})
	s.mux.HandleFunc("GET /v2.0/quotas/{project}/details", func(w http.ResponseWriter, r *http.Request) {
		q, err := svc.QuotaDetails(r.Context(), r.PathValue("project"))
		s.answerQuota(w, r, q, err)
	})
	s.mux.HandleFunc("PUT /v2.0/quotas/{project}", func(w http.ResponseWriter, r *http.Request) {
		attrs, err := decodeBody(r, "quota")
		if err != nil {
			s.fail(w, r, err)
			return
		}
		q, rev, err := svc.UpdateQuota(r.Context(), r.PathValue("project"), attrs)
		if err == nil {
			w.Header().Set(HeaderRevision, fmt.Sprint(rev))
		}
		s.answerQuota(w, r, q, err)
	})
	s.mux.HandleFunc("DELETE /v2.0/quotas/{project}", func(w http.ResponseWriter, r *http.Request) {
		rev, err := svc.DeleteQuota(r.Context(), r.PathValue("project"))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		w.Header().Set(HeaderRevision, fmt.Sprint(rev))
		w.WriteHeader(http.StatusNoContent)
	})
}

func (s *Server) answerQuota(w http.ResponseWriter, r *http.Request, q any, err error) {
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"quota": q})
}
