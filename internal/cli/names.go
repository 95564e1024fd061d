package cli

import (
	"context"
	"net/url"

	"github.com/nsnet/nsnet/internal/client"
	"github.com/nsnet/nsnet/internal/model"
)

// idNames maps the ids of one collection to names, to show a name beside
// an id in a table: one list request, of ids and names only.
type idNames map[string]string

func listNames(ctx context.Context, c *client.Client, col client.Collection) (idNames, error) {
	items, err := client.List[struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}](ctx, c, col, url.Values{"fields": {"id", "name"}})
	if err != nil {
		return nil, err
	}
	m := idNames{}
	for _, it := range items {
		m[it.ID] = it.Name
	}
	return m, nil
}

// label is the name of id and its first eight characters, "public
// (c6ae0175)"; the id alone when it has no name or is not visible (another
// project's).
func (m idNames) label(id string) string {
	if name := m[id]; name != "" {
		short := id
		if len(short) > 8 {
			short = short[:8]
		}
		return name + " (" + short + ")"
	}
	return id
}

// addressesOf are the fixed addresses of the ports plugged into each
// device, by device id.
func addressesOf(ctx context.Context, c *client.Client) (map[string][]string, error) {
	ports, err := client.List[model.Port](ctx, c, client.Ports, url.Values{"fields": {"device_id", "fixed_ips"}})
	if err != nil {
		return nil, err
	}
	m := map[string][]string{}
	for _, p := range ports {
		for _, ip := range p.FixedIPs {
			m[p.DeviceID] = append(m[p.DeviceID], ip.IPAddress)
		}
	}
	return m, nil
}
