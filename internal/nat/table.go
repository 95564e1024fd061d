package nat

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/google/nftables"
)

// Table is the nsnet table of one namespace, open for programming. Its
// methods are safe for concurrent use and run one at a time.
type Table struct {
	namespace string
	log       *slog.Logger

	mu    sync.Mutex
	socks *sockets // nil after a failure: dialled again on next use
	// desired is what the last successful Apply or Update asked for (nil
	// before the first).
	desired contents
	// proven says the kernel held exactly desired, in the layout's
	// structure, at ruleset generation provenGen.
	proven    bool
	provenGen uint32
}

// Open opens the nsnet table of the named namespace ("" is the process's
// own) for programming; it does not create it. log may be nil.
func Open(namespace string, log *slog.Logger) (*Table, error) {
	if log == nil {
		log = slog.Default()
	}
	t := &Table{namespace: namespace, log: log.With("netns", namespace, "table", "inet "+TableName)}
	if err := t.ensureSockets(); err != nil {
		return nil, err
	}
	return t, nil
}

// Close releases the table's sockets; the table itself stays.
func (t *Table) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.socks == nil {
		return nil
	}
	err := t.socks.close()
	t.socks = nil
	return err
}

func (t *Table) ensureSockets() error {
	if t.socks != nil {
		return nil
	}
	s, err := dial(t.namespace)
	if err != nil {
		return err
	}
	t.socks = s
	return nil
}

// fail forgets everything the Table believed about the kernel, and its
// sockets, which may hold half a batch or unread answers, and returns err.
func (t *Table) fail(err error) error {
	t.proven = false
	if t.socks != nil {
		t.socks.close()
		t.socks = nil
	}
	return err
}

// Result says what an Apply or Update did.
type Result struct {
	// Created: the table did not exist; it was made in one batch.
	Created bool
	// Rebuilt: the live table's chains or sets were not the layout's
	// (edited by hand, or made by another version of nsnet); it was
	// replaced in one batch. Conntrack, and so every established
	// connection's translation, is untouched by that too.
	Rebuilt bool
	// Rewritten are the chains whose rules differed from the layout; each
	// was emptied and refilled in the batch.
	Rewritten []string
	// Added and Deleted count set elements.
	Added, Deleted int
	// Read: the live table was read, because what the Table remembered
	// was not proven current by the ruleset generation.
	Read bool
	// Forgotten counts the conntrack entries deleted because the mapping
	// that translated them (a floating IP, a forward, a published port)
	// was removed.
	Forgotten uint
	// Generation is the namespace's ruleset generation afterwards.
	Generation uint32
}

// Changed reports whether the kernel was changed.
func (r Result) Changed() bool {
	return r.Created || r.Rebuilt || len(r.Rewritten) > 0 || r.Added+r.Deleted > 0
}

// Apply makes the table implement spec: creates it if needed, and changes
// what differs, in one atomic batch. Applying the same spec twice changes
// nothing the second time. Its cost is linear in the size of spec in
// memory, and in the size of the change in the kernel.
func (t *Table) Apply(spec Spec) (Result, error) {
	if err := spec.Validate(); err != nil {
		return Result{}, fmt.Errorf("nat spec: %w", err)
	}
	want := compile(spec)
	t.mu.Lock()
	defer t.mu.Unlock()
	res, err := t.converge(want, nil)
	if err == nil {
		t.desired = want
	}
	return res, err
}

// Change is a difference between the spec last applied and the next one.
type Change struct {
	// Add are entries the spec gains. An entry the spec already has is
	// no change; one that claims what another entry has (a floating
	// address mapped elsewhere, a forwarded port) is an error.
	Add Spec
	// Remove are entries the spec loses. An entry the spec does not have
	// is no change; one that differs from the entry the spec has for the
	// same key is an error.
	Remove Spec
}

// Update changes the spec last applied (by Apply or Update on this Table)
// by c, at a cost that follows the size of c alone: it is what an agent
// that knows one floating IP was associated calls. It sends the change
// only when the ruleset generation proves the kernel still holds exactly
// the last spec; otherwise it reads the live table and converges it to
// the changed spec, as Apply would.
func (t *Table) Update(c Change) (Result, error) {
	if err := c.Add.Validate(); err != nil {
		return Result{}, fmt.Errorf("nat change: %w", err)
	}
	if err := c.Remove.Validate(); err != nil {
		return Result{}, fmt.Errorf("nat change: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.desired == nil {
		return Result{}, errors.New("nat: Update before any Apply: nothing to change")
	}
	d, err := t.desired.delta(compile(c.Remove), compile(c.Add))
	if err != nil {
		return Result{}, fmt.Errorf("nat change: %w", err)
	}
	want := t.desired.apply(d)
	res, err := t.converge(want, &d)
	if err != nil {
		want.revert(d)
	}
	return res, err
}

// converge makes the kernel hold want. d, when known, is the change from
// t.desired to want, which saves diffing them.
func (t *Table) converge(want contents, d *delta) (Result, error) {
	res, err := t.convergeOnce(want, d)
	if err != nil && !res.Read {
		// What this Table remembered may have gone stale between the
		// generation check and the commit (someone else's batch): the
		// failed batch changed nothing, so start again from the kernel.
		t.log.Info("nat batch failed; converging again from the live table", "err", err)
		res, err = t.convergeOnce(want, nil)
	}
	return res, err
}

func (t *Table) convergeOnce(want contents, d *delta) (Result, error) {
	var res Result
	if err := t.ensureSockets(); err != nil {
		return res, err
	}
	gen, err := t.socks.generation()
	if err != nil {
		return res, t.fail(err)
	}
	var p plan
	switch {
	case t.proven && t.provenGen == gen && d != nil:
		p.delta = *d
	case t.proven && t.provenGen == gen:
		p.delta = diff(t.desired, want)
	default:
		res.Read = true
		l, err := t.read()
		if err != nil {
			return res, t.fail(err)
		}
		p = planFrom(l, want)
	}
	p.fill(&res)
	if !res.Changed() {
		t.proven, t.provenGen = true, gen
		res.Generation = gen
		return res, nil
	}
	if p.rebuild {
		t.log.Warn("nat table differs from the layout; replacing it in one batch", "why", p.why)
	}
	if err := t.send(p, want); err != nil {
		return res, t.fail(err)
	}
	after, err := t.socks.generation()
	if err != nil {
		return res, t.fail(err)
	}
	res.Generation = after
	// Exactly one commit since gen, ours: the kernel holds want. Anything
	// else means someone else committed too, and the next call reads.
	t.proven, t.provenGen = after == gen+1, after
	if m := removedFlows(p.delta); m != nil {
		// The table is right whatever happens here; a failure leaves
		// old connections to time out, which is worth a warning, not a
		// failed Apply that a retry could not repeat.
		n, err := t.socks.forgetFlows(m)
		res.Forgotten = n
		if err != nil {
			t.log.Warn("nat mappings removed but their connections kept", "err", err)
		}
	}
	t.log.Debug("nat table converged", "created", res.Created, "rebuilt", res.Rebuilt,
		"rewritten", res.Rewritten, "added", res.Added, "deleted", res.Deleted, "read", res.Read)
	return res, nil
}

// Delete removes the table and reports whether there was one. Established
// connections keep the translation conntrack recorded for them.
func (t *Table) Delete() (bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.ensureSockets(); err != nil {
		return false, err
	}
	tbl, err := t.liveTable()
	if err != nil {
		return false, t.fail(err)
	}
	t.proven, t.desired = false, nil
	if tbl == nil {
		return false, nil
	}
	t.socks.nft.DelTable(tbl)
	if err := t.socks.nft.Flush(); err != nil {
		return false, t.fail(fmt.Errorf("delete table inet %s: %w", TableName, err))
	}
	return true, nil
}

// DeleteTable deletes the nsnet table of the named namespace, if any.
func DeleteTable(namespace string) (bool, error) {
	t, err := Open(namespace, nil)
	if err != nil {
		return false, err
	}
	defer t.Close()
	return t.Delete()
}

// HasTable reports whether the named namespace has an nsnet table.
func HasTable(namespace string) (bool, error) {
	t, err := Open(namespace, nil)
	if err != nil {
		return false, err
	}
	defer t.Close()
	t.mu.Lock()
	defer t.mu.Unlock()
	tbl, err := t.liveTable()
	return tbl != nil, err
}

// liveTable returns the table if it exists, or nil.
func (t *Table) liveTable() (*nftables.Table, error) {
	tables, err := t.socks.nft.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	for _, tbl := range tables {
		if tbl.Name == TableName {
			return tbl, nil
		}
	}
	return nil, nil
}

// live is the table as read from the kernel.
type live struct {
	table    *nftables.Table // nil: no table
	chains   map[string]*nftables.Chain
	rules    map[string][]*nftables.Rule
	sets     map[string]*nftables.Set
	contents contents // elements of the sets the layout has
}

// read reads the whole table: chains, rules, sets and elements.
func (t *Table) read() (*live, error) {
	c := t.socks.nft
	tbl, err := t.liveTable()
	if err != nil || tbl == nil {
		return &live{}, err
	}
	l := &live{table: tbl, chains: map[string]*nftables.Chain{}, rules: map[string][]*nftables.Rule{},
		sets: map[string]*nftables.Set{}, contents: contents{}}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("list chains: %w", err)
	}
	for _, ch := range chains {
		if ch.Table != nil && ch.Table.Name == TableName {
			l.chains[ch.Name] = ch
		}
	}
	for name, ch := range l.chains {
		rules, err := c.GetRules(tbl, ch)
		if err != nil {
			return nil, fmt.Errorf("list rules of chain %s: %w", name, err)
		}
		l.rules[name] = rules
	}
	sets, err := c.GetSets(tbl)
	if err != nil {
		return nil, fmt.Errorf("list sets: %w", err)
	}
	for _, s := range sets {
		l.sets[s.Name] = s
		els, err := c.GetSetElements(s)
		if err != nil {
			return nil, fmt.Errorf("list elements of %s: %w", s.Name, err)
		}
		l.contents[s.Name] = fromNFT(els, s.Interval)
	}
	return l, nil
}

// problems lists how l's structure differs from the layout: missing,
// extra or different chains and sets. Rules are compared per chain.
func (l *live) problems() []string {
	var why []string
	for _, def := range layoutSets {
		switch s, ok := l.sets[def.name]; {
		case !ok:
			why = append(why, "set "+def.name+" missing")
		case !def.matches(s):
			why = append(why, "set "+def.name+" has another type")
		}
	}
	for _, def := range layoutChains {
		switch ch, ok := l.chains[def.name]; {
		case !ok:
			why = append(why, "chain "+def.name+" missing")
		case !def.matches(ch):
			why = append(why, "chain "+def.name+" has another type, hook or priority")
		}
	}
	for name := range l.sets {
		if !slices.ContainsFunc(layoutSets, func(d setDef) bool { return d.name == name }) {
			why = append(why, "set "+name+" is not nsnet's")
		}
	}
	for name := range l.chains {
		if !slices.ContainsFunc(layoutChains, func(d chainDef) bool { return d.name == name }) {
			why = append(why, "chain "+name+" is not nsnet's")
		}
	}
	slices.Sort(why)
	return why
}

// current reports whether the live rules of chain def are def's rules.
func (l *live) current(def chainDef) bool {
	rules := l.rules[def.name]
	if len(rules) != len(def.rules) {
		return false
	}
	for i, r := range rules {
		if liveFingerprint(r) != def.rules[i].fingerprint() || liveComment(r) != def.rules[i].comment {
			return false
		}
	}
	return true
}

// fromNFT turns elements as google/nftables reads them into ours. The
// kernel leaves out the end of an interval element that is a single key.
func fromNFT(els []nftables.SetElement, interval bool) elements {
	es := elements{}
	for _, e := range els {
		el := element{key: e.Key, keyEnd: e.KeyEnd, val: e.Val}
		if interval && el.keyEnd == nil {
			el.keyEnd = el.key
		}
		if !interval {
			el.keyEnd = nil
		}
		if len(el.val) == 0 {
			el.val = nil
		}
		es.add(el)
	}
	return es
}
