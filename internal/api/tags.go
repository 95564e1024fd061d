package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"

	"github.com/nsnet/nsnet/internal/service"
)

// tagRoutes serves Neutron's standard-attr-tag sub-resource below each
// taggable item: /v2.0/{collection}/{id}/tags and …/tags/{tag}.
func (s *Server) tagRoutes() {
	svc := s.cfg.Service
	for _, c := range service.TagCollections() {
		base := "/v2.0/" + c + "/{id}/tags"
		s.mux.HandleFunc("GET "+base, func(w http.ResponseWriter, r *http.Request) {
			tags, err := svc.Tags(r.Context(), c, r.PathValue("id"))
			if err != nil {
				s.fail(w, r, err)
				return
			}
			writeJSON(w, http.StatusOK, map[string]any{"tags": nonNil(tags)})
		})
		s.mux.HandleFunc("PUT "+base, func(w http.ResponseWriter, r *http.Request) {
			tags, err := decodeTags(r)
			if err != nil {
				s.fail(w, r, err)
				return
			}
			tags, rev, err := svc.ReplaceTags(r.Context(), c, r.PathValue("id"), tags)
			if err != nil {
				s.fail(w, r, err)
				return
			}
			s.waitFor(w, r, rev, 0)
			writeJSON(w, http.StatusOK, map[string]any{"tags": nonNil(tags)})
		})
		s.mux.HandleFunc("DELETE "+base, func(w http.ResponseWriter, r *http.Request) {
			s.noContent(w, r, http.StatusNoContent)(svc.RemoveTags(r.Context(), c, r.PathValue("id")))
		})
		s.mux.HandleFunc("GET "+base+"/{tag}", func(w http.ResponseWriter, r *http.Request) {
			if err := svc.HasTag(r.Context(), c, r.PathValue("id"), r.PathValue("tag")); err != nil {
				s.fail(w, r, err)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		})
		s.mux.HandleFunc("PUT "+base+"/{tag}", func(w http.ResponseWriter, r *http.Request) {
			s.noContent(w, r, http.StatusCreated)(svc.AddTag(r.Context(), c, r.PathValue("id"), r.PathValue("tag")))
		})
		s.mux.HandleFunc("DELETE "+base+"/{tag}", func(w http.ResponseWriter, r *http.Request) {
			s.noContent(w, r, http.StatusNoContent)(svc.RemoveTag(r.Context(), c, r.PathValue("id"), r.PathValue("tag")))
		})
	}
}

// taggable reports whether res's items take tags, and so its lists the
// tag filters. QoS policies take theirs at /v2.0/policies/{id}/tags, by
// their collection's name, not below /v2.0/qos/ where they live.
func (r resource) taggable() bool {
	tc := service.TagCollections()
	return slices.Contains(tc, r.urlPath()) || slices.Contains(tc, r.collection)
}

// noContent answers a write that returns no body with status.
func (s *Server) noContent(w http.ResponseWriter, r *http.Request, status int) func(int64, error) {
	return func(rev int64, err error) {
		if err != nil {
			s.fail(w, r, err)
			return
		}
		s.waitFor(w, r, rev, 0)
		w.WriteHeader(status)
	}
}

func nonNil(tags []string) []string {
	if tags == nil {
		return []string{}
	}
	return tags
}

// decodeTags reads {"tags": [...]}, with Neutron's validate_tags messages.
func decodeTags(r *http.Request) ([]string, error) {
	body, err := decodeObject(r)
	if err != nil {
		return nil, err
	}
	raw, ok := body["tags"]
	if !ok {
		return nil, invalidTags("Invalid tags body")
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil || list == nil {
		return nil, invalidTags(fmt.Sprintf("'%s' is not a list", raw))
	}
	tags := make([]string, len(list))
	for i, e := range list {
		if err := json.Unmarshal(e, &tags[i]); err != nil {
			return nil, invalidTags(fmt.Sprintf("'%s' is not a valid string", e))
		}
	}
	return tags, nil
}

func invalidTags(msg string) *service.Error {
	return &service.Error{Status: http.StatusBadRequest, Type: "InvalidInput", Message: "Invalid input for operation: " + msg + "."}
}
