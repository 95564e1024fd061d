// Package stats holds what nsnet's benchmarks share to summarise their
// rounds. It measures nothing itself.
package stats

import (
	"cmp"
	"slices"
)

// Median is the middle value of xs (the upper one of an even count), which
// one slow round on a noisy machine does not move. xs must not be empty.
func Median[T cmp.Ordered](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
