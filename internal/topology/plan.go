package topology

import (
	"fmt"
	"sort"
	"strings"

	"github.com/nsnet/nsnet/internal/client"
	"github.com/nsnet/nsnet/internal/model"
)

// MarkerPrefix starts the description apply writes into what it manages;
// the topology's name follows.
const MarkerPrefix = "nsnet:topology="

// Marker is the description of resources managed by topology name.
func Marker(name string) string { return MarkerPrefix + name }

// State is what nsnet holds now: the resources the caller can see.
type State struct {
	Instances []model.Instance
	Networks  []model.Network
	Subnets   []model.Subnet
	Ports     []model.Port
	// Routers, FloatingIPs and PortForwardings (of every visible floating
	// IP) are the L3 resources.
	Routers         []model.Router
	FloatingIPs     []model.FloatingIP
	PortForwardings []model.PortForwarding
	// PublishedPorts are the host's (host NAT).
	PublishedPorts []model.PublishedPort
	// SecurityGroups and SecurityGroupRules are the firewall.
	SecurityGroups     []model.SecurityGroup
	SecurityGroupRules []model.SecurityGroupRule
}

// Action is what a plan does to one resource.
type Action int

// Actions, in the order a summary lists them.
const (
	Create Action = iota
	Update
	Delete
	Unchanged
	// Absent is a resource destroy would delete that is already gone.
	Absent
)

// Verb is the action as a plan shows it.
func (a Action) Verb() string {
	return [...]string{"create", "update", "delete", "unchanged", "absent"}[a]
}

// Past is the action as a report of what was done shows it.
func (a Action) Past() string {
	return [...]string{"created", "updated", "deleted", "unchanged", "absent"}[a]
}

// Ref stands for the id of a resource named in the file. ID is known when
// the resource exists already and empty when an earlier step of the same
// plan creates it; the id is filled in when the plan is carried out.
type Ref struct {
	Collection client.Collection
	Name       string
	ID         string
}

// Change is one field an update changes, for people to read.
type Change struct {
	Field, From, To string
}

func (c Change) String() string { return fmt.Sprintf("%s %s → %s", c.Field, c.From, c.To) }

// Step is one thing a plan does.
type Step struct {
	Action     Action
	Collection client.Collection
	Name       string
	// ID is the existing resource's id (empty for Create and Absent).
	ID string
	// Attrs is the request body of a Create or Update. Values are JSON
	// values (nil, bool, int, string, []any, map[string]any) or Refs.
	Attrs map[string]any
	// Changes lists what an Update changes.
	Changes []Change
	// Note says why, when the action alone does not ("not in the file").
	Note string
	// Call is a router action (add_router_interface,
	// remove_router_interface) an Update step makes instead of a PUT.
	Call string
	// Parent is the floating IP of a port forwarding.
	Parent Ref
}

// String describes the step as a plan line, without the action.
func (s Step) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", s.Collection.Singular(), s.Name)
	if len(s.Changes) > 0 {
		parts := make([]string, len(s.Changes))
		for i, c := range s.Changes {
			parts[i] = c.String()
		}
		fmt.Fprintf(&b, ": %s", strings.Join(parts, "; "))
	}
	if s.Note != "" {
		fmt.Fprintf(&b, " (%s)", s.Note)
	}
	return b.String()
}

// Plan is the ordered list of steps that makes nsnet match a file.
type Plan struct {
	Topology string
	Steps    []Step
}

// Count returns how many steps take each action.
func (p *Plan) Count() map[Action]int {
	n := map[Action]int{}
	for _, s := range p.Steps {
		n[s.Action]++
	}
	return n
}

// Changes reports whether carrying out the plan would change anything.
func (p *Plan) Changes() bool {
	n := p.Count()
	return n[Create]+n[Update]+n[Delete] > 0
}

// ApplyOptions tune PlanApply.
type ApplyOptions struct {
	// Prune deletes resources marked as this topology's that the file no
	// longer lists.
	Prune bool
}

// PlanApply computes the steps that make st match f. It fails, with every
// problem found, when the file refers to resources that exist nowhere, when
// a name is ambiguous in st, when a resource belongs to another topology,
// or when a field that cannot be updated differs.
func PlanApply(f *File, st State, opts ApplyOptions) (*Plan, error) {
	p := newPlanner(f, st)
	var steps []Step
	if opts.Prune {
		steps = append(steps, p.prune(forwardings)...)
		steps = append(steps, p.prune(client.PublishedPorts)...)
		steps = append(steps, p.prune(client.FloatingIPs)...)
		steps = append(steps, p.prune(client.Ports)...)
	}
	for _, in := range f.Instances {
		steps = append(steps, p.instance(in))
	}
	for _, n := range f.Networks {
		steps = append(steps, p.network(n))
	}
	for _, s := range f.Subnets {
		steps = append(steps, p.subnet(s))
	}
	// Groups before their rules (which may name other groups) and the
	// ports that use them.
	for _, g := range f.SecurityGroups {
		steps = append(steps, p.securityGroup(g))
	}
	for _, g := range f.SecurityGroups {
		steps = append(steps, p.securityGroupRules(g)...)
	}
	for _, pt := range f.Ports {
		steps = append(steps, p.port(pt))
	}
	for _, r := range f.Routers {
		steps = append(steps, p.router(r)...)
	}
	for _, fip := range f.FloatingIPs {
		steps = append(steps, p.floatingIP(fip))
	}
	for _, pf := range f.PortForwardings {
		steps = append(steps, p.forwarding(pf))
	}
	for _, pp := range f.PublishedPorts {
		steps = append(steps, p.published(pp))
	}
	// Ports go first and the rest last: a pruned port may hold an address
	// or interface name the file gives another port, while pruned subnets,
	// networks and instances may still hold ports until those are updated.
	if opts.Prune {
		for _, col := range []client.Collection{client.Routers, client.SecurityGroups, client.Subnets, client.Networks, client.Instances} {
			steps = append(steps, p.prune(col)...)
		}
	}
	if err := p.errs.join(f.Path); err != nil {
		return nil, err
	}
	return &Plan{Topology: f.Name, Steps: steps}, nil
}

// PlanDestroy computes the steps that delete every resource f names, in
// reverse dependency order.
func PlanDestroy(f *File, st State) (*Plan, error) {
	p := newPlanner(f, st)
	var steps []Step
	add := func(col client.Collection, name string, line int) {
		id, _, ok := p.existing(col, name, line)
		switch {
		case !ok:
			return
		case id == "":
			steps = append(steps, Step{Action: Absent, Collection: col, Name: name, Note: "already gone"})
		default:
			steps = append(steps, p.deleteSteps(col, name, id, "")...)
		}
	}
	for i := len(f.PublishedPorts) - 1; i >= 0; i-- {
		add(client.PublishedPorts, f.PublishedPorts[i].key(), f.PublishedPorts[i].Line)
	}
	for i := len(f.PortForwardings) - 1; i >= 0; i-- {
		add(forwardings, f.PortForwardings[i].key(), f.PortForwardings[i].Line)
	}
	for i := len(f.FloatingIPs) - 1; i >= 0; i-- {
		add(client.FloatingIPs, canonAddr(f.FloatingIPs[i].Address), f.FloatingIPs[i].Line)
	}
	for i := len(f.Routers) - 1; i >= 0; i-- {
		add(client.Routers, f.Routers[i].Name, f.Routers[i].Line)
	}
	for i := len(f.Ports) - 1; i >= 0; i-- {
		add(client.Ports, f.Ports[i].Name, f.Ports[i].Line)
	}
	for i := len(f.SecurityGroups) - 1; i >= 0; i-- {
		add(client.SecurityGroups, f.SecurityGroups[i].Name, f.SecurityGroups[i].Line)
	}
	for i := len(f.Subnets) - 1; i >= 0; i-- {
		add(client.Subnets, f.Subnets[i].Name, f.Subnets[i].Line)
	}
	for i := len(f.Networks) - 1; i >= 0; i-- {
		add(client.Networks, f.Networks[i].Name, f.Networks[i].Line)
	}
	for i := len(f.Instances) - 1; i >= 0; i-- {
		add(client.Instances, f.Instances[i].Name, f.Instances[i].Line)
	}
	if err := p.errs.join(f.Path); err != nil {
		return nil, err
	}
	return &Plan{Topology: f.Name, Steps: steps}, nil
}

// existing is the part of a current resource the planner needs generically.
type existing struct {
	id, name, description string
}

type planner struct {
	file   *File
	st     State
	marker string
	byName map[client.Collection]map[string][]existing
	nameOf map[client.Collection]map[string]string // id -> name
	inFile map[client.Collection]map[string]bool
	errs   posErrors
	// forwardingParent is the floating IP of each port forwarding, by id.
	forwardingParent map[string]Ref
}

func newPlanner(f *File, st State) *planner {
	p := &planner{
		file:   f,
		st:     st,
		marker: Marker(f.Name),
		byName: map[client.Collection]map[string][]existing{},
		nameOf: map[client.Collection]map[string]string{},
		inFile: map[client.Collection]map[string]bool{},
	}
	for _, in := range st.Instances {
		p.index(client.Instances, existing{in.ID, in.Name, in.Description})
	}
	for _, n := range st.Networks {
		p.index(client.Networks, existing{n.ID, n.Name, n.Description})
	}
	for _, s := range st.Subnets {
		p.index(client.Subnets, existing{s.ID, s.Name, s.Description})
	}
	for _, pt := range st.Ports {
		p.index(client.Ports, existing{pt.ID, pt.Name, pt.Description})
	}
	for _, in := range f.Instances {
		p.named(client.Instances, in.Name)
	}
	for _, n := range f.Networks {
		p.named(client.Networks, n.Name)
	}
	for _, s := range f.Subnets {
		p.named(client.Subnets, s.Name)
	}
	for _, pt := range f.Ports {
		p.named(client.Ports, pt.Name)
	}
	p.indexL3()
	p.indexPublished()
	p.indexSecurityGroups()
	return p
}

func (p *planner) index(col client.Collection, e existing) {
	if p.byName[col] == nil {
		p.byName[col] = map[string][]existing{}
		p.nameOf[col] = map[string]string{}
	}
	p.byName[col][e.name] = append(p.byName[col][e.name], e)
	p.nameOf[col][e.id] = e.name
}

func (p *planner) named(col client.Collection, name string) {
	if p.inFile[col] == nil {
		p.inFile[col] = map[string]bool{}
	}
	p.inFile[col][name] = true
}

// existing finds the current resource the file calls name, checking that
// it is not another topology's. It returns the id ("" if there is none),
// whether its description must become this topology's marker, and false
// after reporting a problem.
func (p *planner) existing(col client.Collection, name string, line int) (id string, adopt bool, ok bool) {
	matches := p.byName[col][name]
	switch {
	case len(matches) == 0:
		return "", false, true
	case len(matches) > 1:
		ids := make([]string, len(matches))
		for i, m := range matches {
			ids[i] = m.id
		}
		p.errs.add(line, "%s %s: %d %s in nsnet have this name (%s); rename or delete all but one",
			col.Singular(), name, len(matches), col, strings.Join(ids, ", "))
		return "", false, false
	}
	cur := matches[0]
	if other, ok := strings.CutPrefix(cur.description, MarkerPrefix); ok && other != p.file.Name {
		p.errs.add(line, "%s %s belongs to topology %s (its description says %q); a resource can be in one topology only",
			col.Singular(), name, other, cur.description)
		return "", false, false
	}
	return cur.id, cur.description != p.marker, true
}

// ref stands for the resource of col the file calls name, which the file
// defines or nsnet has. ok is false after reporting that it exists nowhere.
func (p *planner) ref(col client.Collection, name string, line int, who string) (Ref, bool) {
	r := Ref{Collection: col, Name: name}
	matches := p.byName[col][name]
	switch {
	case len(matches) == 1:
		r.ID = matches[0].id
	case len(matches) > 1 && !p.inFile[col][name]:
		p.errs.add(line, "%s: %d %s in nsnet are named %s; rename all but one", who, len(matches), col, name)
		return r, false
	case len(matches) == 0 && !p.inFile[col][name]:
		p.errs.add(line, "%s: %s %s is neither in the file nor in nsnet", who, col.Singular(), name)
		return r, false
	}
	return r, true
}

// display names the resource of col with id for a person: its name, or the
// id when it has none.
func (p *planner) display(col client.Collection, id string) string {
	if id == "" {
		return "(none)"
	}
	if name := p.nameOf[col][id]; name != "" {
		return name
	}
	return id
}

// begin starts the step of a file resource: a Create carrying its name and
// marker, or an Update (Unchanged until a change is found) of the existing
// one, taking it over if it is not marked yet. ok is false after reporting
// a problem.
func (p *planner) begin(col client.Collection, name string, line int) (Step, bool) {
	id, adopt, ok := p.existing(col, name, line)
	if !ok {
		return Step{Collection: col, Name: name}, false
	}
	if id == "" {
		return Step{Action: Create, Collection: col, Name: name,
			Attrs: map[string]any{"name": name, "description": p.marker}}, true
	}
	s := Step{Action: Unchanged, Collection: col, Name: name, ID: id, Attrs: map[string]any{}}
	if adopt {
		cur := p.byName[col][name][0].description
		if s.change("description", quote(cur), quote(p.marker)) {
			s.Attrs["description"] = p.marker
			s.Note = "taken over: it was not made by this topology"
		}
	}
	return s, true
}

// change records that field changes from `from` to `to`, as people read
// them, unless the two are equal, and reports whether it did; the caller
// then puts what to send in s.Attrs.
func (s *Step) change(field, from, to string) bool {
	if from == to {
		return false
	}
	if s.Action == Unchanged {
		s.Action = Update
	}
	s.Changes = append(s.Changes, Change{field, from, to})
	return true
}

// fixed reports that a field the API cannot update differs.
func (p *planner) fixed(s Step, line int, field, cur, want string) {
	p.errs.add(line, "%s %s: %s is %s in nsnet but %s in the file, and the API cannot change a %s's %s; "+
		"delete it first (nsnet %s delete %s) or give it another name in the file",
		s.Collection.Singular(), s.Name, field, cur, want, s.Collection.Singular(), field,
		s.Collection.Singular(), s.Name)
}

// finish drops the request body of a step that changes nothing.
func finish(s Step) Step {
	if s.Action == Unchanged {
		s.Attrs = nil
	}
	return s
}

// prune deletes the resources of col marked as this topology's that the
// file no longer names.
func (p *planner) prune(col client.Collection) []Step {
	var steps []Step
	var names []string
	for name := range p.byName[col] {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if p.inFile[col][name] {
			continue
		}
		for _, e := range p.byName[col][name] {
			if e.description == p.marker {
				steps = append(steps, p.deleteSteps(col, name, e.id, "not in the file")...)
			}
		}
	}
	return steps
}

// byID returns the item of items whose id is id, or the zero value.
func byID[T any](items []T, id string, idOf func(*T) string) T {
	for i := range items {
		if idOf(&items[i]) == id {
			return items[i]
		}
	}
	var zero T
	return zero
}

func (p *planner) networkByID(id string) model.Network {
	return byID(p.st.Networks, id, func(n *model.Network) string { return n.ID })
}

func (p *planner) subnetByID(id string) model.Subnet {
	return byID(p.st.Subnets, id, func(s *model.Subnet) string { return s.ID })
}

func (p *planner) portByID(id string) model.Port {
	return byID(p.st.Ports, id, func(pt *model.Port) string { return pt.ID })
}

// deleteSteps deletes one existing resource: a router after detaching its
// subnets, a port forwarding through its floating IP.
func (p *planner) deleteSteps(col client.Collection, name, id, note string) []Step {
	del := Step{Action: Delete, Collection: col, Name: name, ID: id, Note: note}
	switch col {
	case client.Routers:
		var steps []Step
		// Routes through a subnet keep it attached: clear them first.
		if r := p.routerByID(id); len(r.Routes) > 0 {
			rs := Step{Action: Update, Collection: client.Routers, Name: name, ID: id, Attrs: map[string]any{"routes": []any{}}}
			rs.Changes = []Change{{"routes", showSet(showRoutes(r.Routes)), "[]"}}
			steps = append(steps, rs)
		}
		return append(append(steps, p.detachAll(name, id)...), del)
	case forwardings:
		del.Parent = p.forwardingParent[id]
	}
	return []Step{del}
}
