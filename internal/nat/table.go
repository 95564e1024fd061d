package nat

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/google/nftables"

	"github.com/nsnet/nsnet/internal/nfsock"
)

// Table is the nsnet table of one namespace, open for programming. Its
// methods are safe for concurrent use and run one at a time.
type Table struct {
	log *slog.Logger

	mu  sync.Mutex
	own *nfsock.Owner // proves (by the generation) the kernel holds desired
	// desired is what the last successful Apply or Update asked for (nil
	// before the first).
	desired contents
}

// table is the nsnet table, as google/nftables names it.
var table = &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}

// Open opens the nsnet table of the named namespace ("" is the process's
// own) for programming; it does not create it. log may be nil.
func Open(namespace string, log *slog.Logger) (*Table, error) {
	if log == nil {
		log = slog.Default()
	}
	own, err := nfsock.Own(namespace)
	if err != nil {
		return nil, err
	}
	return &Table{own: own, log: log.With("netns", namespace, "table", "inet "+TableName)}, nil
}

// Close releases the table's sockets; the table itself stays.
func (t *Table) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.own.Close()
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
	gen, proven, err := t.own.Generation()
	if err != nil {
		return res, err
	}
	c, _ := t.own.Conn() // open: Generation used it
	var p plan
	switch {
	case proven && d != nil:
		p.delta = *d
	case proven:
		p.delta = diff(t.desired, want)
	default:
		res.Read = true
		l, err := c.Read(table, nil)
		if err != nil {
			return res, t.own.Fail(err)
		}
		p = planFrom(l, want)
	}
	p.fill(&res)
	if !res.Changed() {
		t.own.Prove(gen)
		res.Generation = gen
		return res, nil
	}
	if p.rebuild {
		t.log.Warn("nat table differs from the layout; replacing it in one batch", "why", p.why)
	}
	if err := p.queue(c); err != nil {
		return res, t.own.Fail(err)
	}
	if res.Generation, err = t.own.Commit(gen); err != nil {
		return res, fmt.Errorf("commit nat batch: %w", err)
	}
	if m := removedFlows(p.delta); m != nil {
		// The table is right whatever happens here; a failure leaves
		// old connections to time out, which is worth a warning, not a
		// failed Apply that a retry could not repeat.
		n, err := c.Forget(m)
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
	c, err := t.own.Conn()
	if err != nil {
		return false, err
	}
	t.own.Forget()
	t.desired = nil
	ok, err := c.Exists(table)
	if err != nil {
		return false, t.own.Fail(err)
	}
	if !ok {
		return false, nil
	}
	c.DelTable(table)
	if err := c.Flush(); err != nil {
		return false, t.own.Fail(fmt.Errorf("delete table inet %s: %w", TableName, err))
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
	c, err := nfsock.Dial(namespace)
	if err != nil {
		return false, err
	}
	defer c.Close()
	return c.Exists(table)
}
