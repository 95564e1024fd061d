package agent

import "sync"

// closers are running things of one kind (a network's servers, a router's
// metadata listener) by object id. Each holds sockets in a namespace, which
// would keep the namespace alive: they are closed before it is deleted.
type closers[T interface{ close() }] struct {
	mu sync.Mutex
	m  map[string]T
}

func (c *closers[T]) get(id string) (T, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[id]
	return v, ok
}

func (c *closers[T]) set(id string, v T) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]T{}
	}
	c.m[id] = v
}

// close closes and forgets id's, if any.
func (c *closers[T]) close(id string) {
	c.mu.Lock()
	v, ok := c.m[id]
	delete(c.m, id)
	c.mu.Unlock()
	if ok {
		v.close()
	}
}

func (c *closers[T]) closeAll() {
	for _, v := range c.takeAll() {
		v.close()
	}
}

// takeAll forgets every one and returns them, for the caller to stop.
func (c *closers[T]) takeAll() map[string]T {
	c.mu.Lock()
	defer c.mu.Unlock()
	all := c.m
	c.m = nil
	return all
}

// snapshot returns the running ones, for the caller to look at; it may
// close some by id meanwhile.
func (c *closers[T]) snapshot() map[string]T {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]T, len(c.m))
	for id, v := range c.m {
		out[id] = v
	}
	return out
}
