package topology

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/nsnet/nsnet/internal/client"
	"github.com/nsnet/nsnet/internal/model"
)

// LoadState reads every resource a plan may touch or refer to.
func LoadState(ctx context.Context, c *client.Client) (State, error) {
	var st State
	var err error
	if st.Instances, err = client.List[model.Instance](ctx, c, client.Instances, nil); err != nil {
		return st, fmt.Errorf("read instances: %w", err)
	}
	if st.Networks, err = client.List[model.Network](ctx, c, client.Networks, nil); err != nil {
		return st, fmt.Errorf("read networks: %w", err)
	}
	if st.Subnets, err = client.List[model.Subnet](ctx, c, client.Subnets, nil); err != nil {
		return st, fmt.Errorf("read subnets: %w", err)
	}
	if st.Ports, err = client.List[model.Port](ctx, c, client.Ports, nil); err != nil {
		return st, fmt.Errorf("read ports: %w", err)
	}
	if st.Routers, err = client.List[model.Router](ctx, c, client.Routers, nil); err != nil {
		return st, fmt.Errorf("read routers: %w", err)
	}
	if st.FloatingIPs, err = client.List[model.FloatingIP](ctx, c, client.FloatingIPs, nil); err != nil {
		return st, fmt.Errorf("read floating IPs: %w", err)
	}
	if st.SecurityGroups, err = client.List[model.SecurityGroup](ctx, c, client.SecurityGroups, nil); err != nil {
		return st, fmt.Errorf("read security groups: %w", err)
	}
	if st.SecurityGroupRules, err = client.List[model.SecurityGroupRule](ctx, c, client.SecurityGroupRules, nil); err != nil {
		return st, fmt.Errorf("read security group rules: %w", err)
	}
	for _, f := range st.FloatingIPs {
		pfs, err := client.List[model.PortForwarding](ctx, c, client.PortForwardings(f.ID), nil)
		if err != nil {
			return st, fmt.Errorf("read port forwardings of floating IP %s: %w", f.FloatingIPAddress, err)
		}
		for i := range pfs {
			pfs[i].FloatingIPID = f.ID
		}
		st.PortForwardings = append(st.PortForwardings, pfs...)
	}
	if st.PublishedPorts, err = client.List[model.PublishedPort](ctx, c, client.PublishedPorts, nil); err != nil {
		return st, fmt.Errorf("read published ports: %w", err)
	}
	return st, nil
}

// Execute carries out plan through c, in order, writing one line per step
// to out ("created network red-net") as each is done. A step that is
// stored but not (yet) in the kernel says so on its line and does not stop
// the plan: later steps depend on the API's state, not the kernel's. Execute
// stops at the first failure: the steps before it stay done, and applying
// the file again resumes from there, since a plan only does what is missing.
//
// A step whose resource ended in ERROR (the agent tried and failed) does not
// stop the plan either, for the same reason; Execute carries out the rest
// and then returns a *FailedError counting them.
func Execute(ctx context.Context, c *client.Client, plan *Plan, out io.Writer) error {
	created := map[client.Collection]map[string]string{}
	failed := &FailedError{}
	for _, s := range plan.Steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		id, warning, isFailed, err := execute(ctx, c, s, created)
		if isFailed {
			failed.Steps = append(failed.Steps, s.String())
		}
		if err != nil {
			return fmt.Errorf("%s %s %s: %w", s.Action.Verb(), s.Collection.Singular(), s.Name, err)
		}
		if s.Action == Create {
			if created[s.Collection] == nil {
				created[s.Collection] = map[string]string{}
			}
			created[s.Collection][s.Name] = id
		}
		line := fmt.Sprintf("%-9s %s", s.Action.Past(), s)
		if warning != "" {
			line += "; warning: " + warning
		}
		fmt.Fprintln(out, line)
	}
	if len(failed.Steps) > 0 {
		return failed
	}
	return nil
}

// FailedError is a plan carried out to its end in which some resources
// ended in ERROR: stored, but the agent could not program them.
type FailedError struct {
	Steps []string // as Step.String, in plan order
}

func (e *FailedError) Error() string {
	return fmt.Sprintf("%d of the resources ended in ERROR (the agent could not program them; the lines above say why, `nsnet status` too): %s",
		len(e.Steps), strings.Join(e.Steps, "; "))
}

// execute carries out one step. It returns the id of what it created and,
// when the kernel does not have the change, why.
func execute(ctx context.Context, c *client.Client, s Step, created map[client.Collection]map[string]string) (id, warning string, failed bool, err error) {
	col, err := collectionOf(s, created)
	if err != nil {
		return "", "", false, err
	}
	// A step may update what an earlier step of the plan created.
	target := s.ID
	if target == "" && s.Action == Update {
		if target = created[s.Collection][s.Name]; target == "" {
			return "", "", false, fmt.Errorf("internal error: %s %s is used before it is created", s.Collection.Singular(), s.Name)
		}
	}
	switch s.Action {
	case Create, Update:
		attrs, err := resolve(s.Attrs, created)
		if err != nil {
			return "", "", false, err
		}
		if s.Call != "" {
			id, warning, err := routerCall(ctx, c, s.Call, target, attrs)
			return id, warning, false, err
		}
		var obj json.RawMessage
		var meta client.Meta
		if s.Action == Create {
			obj, meta, err = client.Create[json.RawMessage](ctx, c, col, attrs)
		} else {
			obj, meta, err = client.Update[json.RawMessage](ctx, c, col, target, attrs)
		}
		if err != nil {
			return "", "", false, err
		}
		var created struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(obj, &created); err != nil {
			return "", "", false, fmt.Errorf("decode %s: %w", s.Collection.Singular(), err)
		}
		if s.Action == Create && col == client.SecurityGroups {
			// The file's rules are the group's rules: the plan's next
			// steps create them.
			if err := clearRules(ctx, c, created.ID); err != nil {
				return created.ID, "", false, err
			}
		}
		return created.ID, client.Unprogrammed(meta, obj), client.Failed(meta, obj), nil
	case Delete:
		meta, err := c.Delete(ctx, col, s.ID)
		if client.IsNotFound(err) {
			// Gone already, e.g. a subnet deleted with its network.
			return "", "", false, nil
		}
		if err != nil {
			return "", "", false, err
		}
		return "", client.Unprogrammed(meta, nil), false, nil
	}
	return "", "", false, nil // Unchanged, Absent
}

// collectionOf is where step s sends its request: a port forwarding's
// collection is below its floating IP.
func collectionOf(s Step, created map[client.Collection]map[string]string) (client.Collection, error) {
	if s.Collection != forwardings {
		return s.Collection, nil
	}
	id, err := resolveValue(s.Parent, created)
	if err != nil {
		return "", err
	}
	return client.PortForwardings(id.(string)), nil
}

// routerCall attaches or detaches the subnet of attrs to router id.
func routerCall(ctx context.Context, c *client.Client, call, id string, attrs map[string]any) (string, string, error) {
	ref := client.InterfaceRef{SubnetID: fmt.Sprint(attrs["subnet_id"])}
	do := c.AddRouterInterface
	if call == callRemoveInterface {
		do = c.RemoveRouterInterface
	}
	_, meta, err := do(ctx, id, ref)
	if client.IsNotFound(err) && call == callRemoveInterface {
		return id, "", nil // detached already
	}
	return id, client.Unprogrammed(meta, nil), err
}

// resolve replaces the Refs in a request body with ids.
func resolve(attrs map[string]any, created map[client.Collection]map[string]string) (map[string]any, error) {
	v, err := resolveValue(attrs, created)
	if err != nil {
		return nil, err
	}
	m, _ := v.(map[string]any)
	return m, nil
}

func resolveValue(v any, created map[client.Collection]map[string]string) (any, error) {
	switch x := v.(type) {
	case Ref:
		if x.ID != "" {
			return x.ID, nil
		}
		if id := created[x.Collection][x.Name]; id != "" {
			return id, nil
		}
		// A plan orders creates before their users; reaching this is a
		// bug in the planner, not in the file.
		return nil, fmt.Errorf("internal error: %s %s is used before it is created", x.Collection.Singular(), x.Name)
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			r, err := resolveValue(e, created)
			if err != nil {
				return nil, err
			}
			out[k] = r
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			r, err := resolveValue(e, created)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	default:
		return v, nil
	}
}

// clearRules deletes the rules nsnet gave a new security group.
func clearRules(ctx context.Context, c *client.Client, group string) error {
	rules, err := client.List[model.SecurityGroupRule](ctx, c, client.SecurityGroupRules, url.Values{"security_group_id": {group}})
	if err != nil {
		return fmt.Errorf("read the rules of the new group: %w", err)
	}
	for _, r := range rules {
		if _, err := c.Delete(ctx, client.SecurityGroupRules, r.ID); err != nil && !client.IsNotFound(err) {
			return fmt.Errorf("remove default rule %s of the new group: %w", r.ID, err)
		}
	}
	return nil
}

// Summary is a one-line count of a plan's actions, e.g. "2 to create, 1
// unchanged" (tense "plan") or "2 created, 1 unchanged" (tense "done").
func Summary(plan *Plan, done bool) string {
	n := plan.Count()
	var parts []string
	for _, a := range []Action{Create, Update, Delete, Unchanged, Absent} {
		if n[a] == 0 {
			continue
		}
		switch {
		case done || a == Unchanged || a == Absent:
			parts = append(parts, fmt.Sprintf("%d %s", n[a], a.Past()))
		default:
			parts = append(parts, fmt.Sprintf("%d to %s", n[a], a.Verb()))
		}
	}
	if len(parts) == 0 {
		return "nothing to do"
	}
	return strings.Join(parts, ", ")
}

// WritePlan writes plan as the lines Execute would, in the future tense.
func WritePlan(out io.Writer, plan *Plan) {
	for _, s := range plan.Steps {
		fmt.Fprintf(out, "%-9s %s\n", s.Action.Verb(), s)
	}
}
