// Package lab holds what nsnet's benchmarks share: finding and naming the
// namespaces they make, and summarising their rounds. It measures nothing
// itself.
package lab

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"os/exec"
	"slices"
	"strings"
)

// Median is the middle value of xs (the upper one of an even count), which
// one slow round on a noisy machine does not move. xs must not be empty.
func Median[T cmp.Ordered](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// Namespaces lists the named namespaces whose names start with prefix.
func Namespaces(prefix string) []string {
	out, _ := exec.Command("ip", "netns", "list").Output()
	var found []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			found = append(found, f[0])
		}
	}
	return found
}

// RandomHex is n random bytes in hex: a run's unique name prefix.
func RandomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
