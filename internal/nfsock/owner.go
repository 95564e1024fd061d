package nfsock

// Owner is one table owner's hold on a namespace: its Conn there, opened
// again after a failure, and what the ruleset generation proves about the
// kernel. It is not safe for concurrent use: its owner serializes calls.
//
// What the kernel holds is the truth, but reading a table back costs more
// than changing it (ten thousand elements, against the one added). The
// kernel bumps the namespace's ruleset generation on every commit, by
// anyone, in any table; so an owner that knows the generation its own
// last commit produced (or the one at which it read its tables back and
// found them as it expected) knows, while the generation stays there,
// that the kernel holds exactly that, and skips the read. Once the
// generation moved, someone committed — another program, or another table
// of the namespace — and the owner reads its tables back and compares.
type Owner struct {
	namespace string
	conn      *Conn // nil after a failure: dialled again on next use
	proven    bool
	gen       uint32
}

// Own opens an Owner of tables in the named namespace ("" is the
// process's own). It proves nothing yet.
func Own(namespace string) (*Owner, error) {
	o := &Owner{namespace: namespace}
	if _, err := o.Conn(); err != nil {
		return nil, err
	}
	return o, nil
}

// Conn returns the owner's connection, opening another if a failure
// closed it.
func (o *Owner) Conn() (*Conn, error) {
	if o.conn == nil {
		c, err := Dial(o.namespace)
		if err != nil {
			return nil, err
		}
		o.conn = c
	}
	return o.conn, nil
}

// Close closes the connection (Conn opens another) and forgets the proof.
func (o *Owner) Close() error {
	o.proven = false
	if o.conn == nil {
		return nil
	}
	err := o.conn.Close()
	o.conn = nil
	return err
}

// Fail forgets the proof and the connection, which may hold half a batch
// or unread answers, and returns err.
func (o *Owner) Fail(err error) error {
	o.Close()
	return err
}

// Generation reads the namespace's ruleset generation and reports whether
// it proves that the kernel holds exactly what the owner last committed or
// proved (Prove).
func (o *Owner) Generation() (gen uint32, proven bool, err error) {
	c, err := o.Conn()
	if err != nil {
		return 0, false, err
	}
	if gen, err = c.Generation(); err != nil {
		return 0, false, o.Fail(err)
	}
	return gen, o.proven && o.gen == gen, nil
}

// Prove records that at generation gen the kernel held what the owner
// expects: it read its tables back and found them so, or they needed no
// change.
func (o *Owner) Prove(gen uint32) { o.proven, o.gen = true, gen }

// Forget drops the proof: the next Generation proves nothing.
func (o *Owner) Forget() { o.proven = false }

// Commit sends the batch queued on the connection, planned when the
// generation was gen, and returns the generation afterwards. The proof
// holds then only if the batch was the one commit since gen; if another
// came in between, the next call reads back.
func (o *Owner) Commit(gen uint32) (uint32, error) {
	if err := o.conn.Flush(); err != nil {
		return 0, o.Fail(err)
	}
	after, err := o.conn.Generation()
	if err != nil {
		return 0, o.Fail(err)
	}
	o.proven, o.gen = after == gen+1, after
	return after, nil
}
