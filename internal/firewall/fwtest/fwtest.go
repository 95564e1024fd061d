// Package fwtest is what tests share about the firewall's tables: reading
// two `nft --debug=netlink list table` outputs as the same table or not
// (the firewall's Script replayed by its own tests, and explain's output
// replayed by the end-to-end tests). Tests and benchmarks only: the
// product never imports it.
package fwtest

import (
	"slices"
	"strings"
)

// WithoutUnwritable drops from an `nft list` of the firewall the two rules
// of chain nd_target that nft(8) prints and cannot read back (firewall.Script
// and explain name them in comments instead).
func WithoutUnwritable(table string) string {
	var keep []string
	for _, l := range strings.Split(table, "\n") {
		if !strings.Contains(l, "@th,64,128") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// Canon is the output of `nft --debug=netlink list table` in a form
// that compares what a table is, not how it came to be: each set's
// elements as the kernel's bytes (`nft list` prints the marks of sets
// google/nftables made byte-swapped, since it cannot tell nft their byte
// order), sorted, the drop counters aside (what traffic did); the sets,
// maps and chains as `nft list` prints them, without their elements, in
// name order (the kernel lists them in the order they were made).
func Canon(out string) string {
	lines := strings.Split(out, "\n")
	var elems []string
	set := ""
	i := 0
	for ; i < len(lines) && !strings.HasPrefix(lines[i], "table "); i++ {
		switch l := lines[i]; {
		case strings.HasPrefix(l, "\telement "):
			if !strings.HasSuffix(set, "@drops") {
				elems = append(elems, set+" "+strings.Join(strings.Fields(l), " "))
			}
		case l != "":
			set = l
		}
	}
	slices.Sort(elems)
	var blocks []string
	var block []string
	inElements := false
	for _, l := range lines[i:] {
		t := strings.TrimSpace(l)
		switch {
		case inElements:
			inElements = !strings.HasSuffix(t, "}")
			continue
		case strings.HasPrefix(t, "elements = {"):
			inElements = !strings.HasSuffix(t, "}")
			continue
		case t == "" || strings.HasPrefix(l, "table ") || l == "}":
			continue
		}
		block = append(block, l)
		if l == "\t}" {
			blocks = append(blocks, strings.Join(block, "\n"))
			block = nil
		}
	}
	slices.Sort(blocks)
	return strings.Join(append(elems, blocks...), "\n")
}
