package trace

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
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
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	for i, h := range hops {
		ns := h.Netns
		if ns == "" {
			ns = "(root)"
		}
		if !h.Seen {
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t-\tnot seen\n", i+1, h.Node, ns, h.Interface)
			continue
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s > %s  %s\n", i+1, h.Node, ns, h.Interface, h.Direction, h.SrcMAC, h.DstMAC, h.Summary)
		for _, rw := range rws {
			if rw.Way == way && rw.Hop == i+1 {
				fmt.Fprintf(tw, "\t\t\t\t\t↳ %s\n", rw)
			}
		}
	}
	tw.Flush()
}
