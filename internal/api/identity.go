package api

import (
	"net/http"

	"github.com/nsnet/nsnet/internal/auth"
)

// identityRoutes answer, in tokens mode, the Keystone look-ups that the
// OpenStack CLI makes before some network commands: `quota set PROJECT`
// and `network rbac create --target-project P` resolve P with
// GET <endpoint>/projects/P, then GET <endpoint>/projects?name=P. With
// --os-auth-type admin_token every service's endpoint is nsnet's, so these
// come here. nsnet answers them from its tokens file, with Keystone's
// shapes and Keystone's default policy: an admin sees every project, a
// member or reader only its own (403 otherwise, which the CLI takes as "use
// what I typed as the id"). With a real Keystone these paths are not
// served: the catalog sends the CLI to Keystone itself.
func (s *Server) identityRoutes() {
	for _, prefix := range []string{"", "/v3"} {
		s.mux.HandleFunc("GET "+prefix+"/projects", s.listProjects)
		s.mux.HandleFunc("GET "+prefix+"/projects/{id}", s.showProject)
	}
}

func (s *Server) showProject(w http.ResponseWriter, r *http.Request) {
	c, _ := auth.FromContext(r.Context())
	id := r.PathValue("id")
	for _, p := range s.cfg.Projects() {
		if p.ID != id {
			continue
		}
		if !c.IsAdmin() && c.ProjectID != p.ID {
			writeKeystoneError(w, http.StatusForbidden, "identity:get_project")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"project": projectBody(r, p)})
		return
	}
	if !c.IsAdmin() {
		// Keystone checks policy before looking: a non-admin cannot
		// tell a missing project from another's.
		writeKeystoneError(w, http.StatusForbidden, "identity:get_project")
		return
	}
	writeJSON(w, http.StatusNotFound, map[string]any{"error": map[string]any{
		"code": http.StatusNotFound, "title": "Not Found", "message": "Could not find project: " + id + ".",
	}})
}

func (s *Server) listProjects(w http.ResponseWriter, r *http.Request) {
	c, _ := auth.FromContext(r.Context())
	if !c.IsAdmin() {
		writeKeystoneError(w, http.StatusForbidden, "identity:list_projects")
		return
	}
	name := r.URL.Query().Get("name")
	list := []any{}
	for _, p := range s.cfg.Projects() {
		if name == "" || p.Name == name || p.Name == "" && p.ID == name {
			list = append(list, projectBody(r, p))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"projects": list, "links": map[string]any{
		"self": baseURL(r) + r.URL.Path, "previous": nil, "next": nil,
	}})
}

// projectBody is a project in Keystone's shape. The tokens file knows no
// domains: every project is in Keystone's "default".
func projectBody(r *http.Request, p auth.Project) map[string]any {
	name := p.Name
	if name == "" {
		name = p.ID
	}
	self := baseURL(r) + "/v3/projects/" + p.ID
	return map[string]any{
		"id": p.ID, "name": name, "domain_id": "default", "parent_id": "default", "enabled": true,
		"is_domain": false, "description": "", "tags": []string{}, "options": map[string]any{},
		"links": map[string]string{"self": self},
	}
}

func writeKeystoneError(w http.ResponseWriter, status int, action string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{
		"code": status, "title": http.StatusText(status),
		"message": "You are not authorized to perform the requested action: " + action + ".",
	}})
}
