package client

import (
	"context"

	"net/http"
	"net/url"
)

// QuotaDetail is one resource's limit and use (GET /v2.0/quotas/{p}/details).
type QuotaDetail struct {
	Limit    int `json:"limit"`
	Used     int `json:"used"`
	Reserved int `json:"reserved"`
}

func quotaPath(project string) string { return "/v2.0/quotas/" + url.PathEscape(project) }

// Quota returns project's limits by resource; -1 is unlimited.
func (c *Client) Quota(ctx context.Context, project string) (map[string]int, error) {
	var out struct {
		Quota map[string]int `json:"quota"`
	}
	_, err := c.do(ctx, request{method: http.MethodGet, path: quotaPath(project)}, &out)
	return out.Quota, err
}

// DefaultQuota returns the limits a project has until an admin sets its own.
func (c *Client) DefaultQuota(ctx context.Context, project string) (map[string]int, error) {
	var out struct {
		Quota map[string]int `json:"quota"`
	}
	_, err := c.do(ctx, request{method: http.MethodGet, path: quotaPath(project) + "/default"}, &out)
	return out.Quota, err
}

// QuotaDetails returns project's limits with what it uses of each.
func (c *Client) QuotaDetails(ctx context.Context, project string) (map[string]QuotaDetail, error) {
	var out struct {
		Quota map[string]QuotaDetail `json:"quota"`
	}
	_, err := c.do(ctx, request{method: http.MethodGet, path: quotaPath(project) + "/details"}, &out)
	return out.Quota, err
}

// SetQuota sets some of project's limits and returns them all. With
// checkLimit the server refuses a limit below the project's current use.
func (c *Client) SetQuota(ctx context.Context, project string, limits map[string]int, checkLimit bool) (map[string]int, error) {
	body := map[string]any{}
	for k, v := range limits {
		body[k] = v
	}
	if checkLimit {
		body["check_limit"] = true
	}
	var out struct {
		Quota map[string]int `json:"quota"`
	}
	_, err := c.do(ctx, request{method: http.MethodPut, path: quotaPath(project), body: map[string]any{"quota": body}}, &out)
	return out.Quota, err
}

// ResetQuota returns project to the default limits.
func (c *Client) ResetQuota(ctx context.Context, project string) error {
	_, err := c.do(ctx, request{method: http.MethodDelete, path: quotaPath(project)}, nil)
	return err
}

// Project returns the project the client's token is for.
func (c *Client) Project(ctx context.Context) (string, error) {
	var out struct {
		Tenant struct {
			ID string `json:"tenant_id"`
		} `json:"tenant"`
	}
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/v2.0/quotas/tenant"}, &out)
	return out.Tenant.ID, err
}
