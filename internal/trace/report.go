package trace

import (
	"fmt"
	"io"
	"strings"
	"unicode"

	"golang.org/x/text/width"
)

// Print writes the result for people, in the manner of the seeds'
// walkthroughs: every interface on the way out and back, what NAT changed
// where, and how it ended. Chains whose policy accepted the probe are
// many (every hook of every table on the path) and say nothing a hop does
// not; verbose lists them too.
func (r *Result) Print(w io.Writer, verbose bool) error {
	var b strings.Builder
	to := r.Dst
	if r.DstPort != 0 {
		to = fmt.Sprintf("%s port %d", r.Dst, r.DstPort)
	}
	fmt.Fprintf(&b, "trace %s from %s (%s) to %s\n", r.Protocol, r.From, r.Src, to)
	fmt.Fprintf(&b, "probe: %s\n", r.Probe.Describe())
	exp := r.Expected.EndDetail
	if r.Expected.DNAT != "" {
		exp += fmt.Sprintf("; translated to %s on the way", r.Expected.DNAT)
	}
	fmt.Fprintf(&b, "expected: %d interfaces; %s\n", len(r.Way), exp)
	for _, t := range r.Tunnels {
		fmt.Fprintf(&b, "overlay: %s\n", t)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}

	fmt.Fprintf(&b, "\nThe probe, on its way out:\n")
	writeHops(&b, r.Way, r.Rewrites, "out")
	if lastSeen(r.WayBack) >= 0 {
		fmt.Fprintf(&b, "\nThe answer, on its way back:\n")
		writeHops(&b, r.WayBack, r.Rewrites, "back")
	}
	b.WriteString("\n")
	if r.Answered {
		fmt.Fprintf(&b, "Answered: %s\n", r.Answer)
	}
	if st := r.Stopped; st != nil {
		way := "on its way out"
		if st.Way == "back" {
			way = "on its way back (the answer)"
		}
		switch {
		case st.LastSeen == nil:
			fmt.Fprintf(&b, "Stopped %s before any interface saw it:\n", way)
		case r.Answered:
			fmt.Fprintf(&b, "Refused: the probe went as far as %s (%s):\n", st.LastSeen.Node, st.LastSeen)
		default:
			fmt.Fprintf(&b, "Stopped %s; last seen at %s (%s):\n", way, st.LastSeen.Node, st.LastSeen)
		}
		for _, reason := range st.Reasons {
			fmt.Fprintf(&b, "  - %s\n", reason)
		}
	}
	var shown []NFTEvent
	for _, ev := range r.NFTrace {
		if verbose || !ev.Policy || ev.Verdict != "accept" {
			shown = append(shown, ev)
		}
	}
	if len(shown) > 0 {
		fmt.Fprintf(&b, "\nnftables verdicts on the probe:\n")
		for _, ev := range shown {
			fmt.Fprintf(&b, "  - %s\n", ev)
		}
	}
	if left := len(r.NFTrace) - len(shown); left > 0 {
		fmt.Fprintf(&b, "(%d accepts by the policy of a chain left out; -v lists them)\n", left)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeHops(b *strings.Builder, hops []HopSeen, rws []Rewrite, way string) {
	var rows [][]string
	for i, h := range hops {
		ns := h.Netns
		if ns == "" {
			ns = "(root)"
		}
		if !h.Seen {
			rows = append(rows, []string{fmt.Sprint(i + 1), h.Node, ns, h.Interface, "-", "not seen"})
			continue
		}
		rows = append(rows, []string{fmt.Sprint(i + 1), h.Node, ns, h.Interface, h.Direction, fmt.Sprintf("%s > %s  %s", h.SrcMAC, h.DstMAC, h.Summary)})
		for _, rw := range rws {
			if rw.Way == way && rw.Hop == i+1 {
				rows = append(rows, []string{"", "", "", "", "", "↳ " + rw.String()})
			}
		}
	}
	writeAligned(b, rows)
}

// writeAligned writes rows indented by two spaces, every cell but the
// last padded to its column's width plus two, counted in terminal
// columns (text/tabwriter counts runes: a node named in Chinese would
// push its row's columns off).
func writeAligned(b *strings.Builder, rows [][]string) {
	var widths []int
	for _, r := range rows {
		for i, c := range r[:len(r)-1] {
			if i == len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], displayWidth(c))
		}
	}
	for _, r := range rows {
		b.WriteString("  ")
		for i, c := range r[:len(r)-1] {
			b.WriteString(c)
			b.WriteString(strings.Repeat(" ", widths[i]-displayWidth(c)+2))
		}
		b.WriteString(r[len(r)-1])
		b.WriteString("\n")
	}
}

// displayWidth is the number of terminal columns s takes: East Asian
// wide and fullwidth characters two, combining marks and zero-width
// characters none.
func displayWidth(s string) int {
	n := 0
	for _, r := range s {
		switch k := width.LookupRune(r).Kind(); {
		case unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf) || r == '\u200b':
		case k == width.EastAsianWide || k == width.EastAsianFullwidth:
			n += 2
		default:
			n++
		}
	}
	return n
}
