package hoststatus

import "context"

// Follow exposes one step of Run to the tests: the mirror brought up to
// a revision a watch delivered, whenever the test chooses.
func (v *View) Follow(ctx context.Context, rev int64) error { return v.follow(ctx, rev) }
