package cli

import (
	"bytes"
	"io"
	"strings"
	"unicode"

	"golang.org/x/text/width"
)

// table lays out tab-terminated cells in columns, as text/tabwriter does
// with a padding of two spaces, but measures each cell as a terminal shows
// it: East Asian wide and fullwidth characters take two columns, combining
// marks and zero-width characters none. tabwriter counts runes, so a name
// in Chinese, Japanese or Korean pushed the columns after it out of line.
//
// As with tabwriter, a cell is text followed by a tab; the text after the
// last tab of a line is not part of a column. A column is aligned over the
// run of consecutive lines that have it.
type table struct {
	w   io.Writer
	buf bytes.Buffer
}

func newTable(w io.Writer) *table { return &table{w: w} }

func (t *table) Write(p []byte) (int, error) { return t.buf.Write(p) }

// Flush writes the table and empties it.
func (t *table) Flush() error {
	text := t.buf.String()
	t.buf.Reset()
	if text == "" {
		return nil
	}
	trailing := strings.HasSuffix(text, "\n")
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	rows := make([][]string, len(lines))
	for i, l := range lines {
		rows[i] = strings.Split(l, "\t")
	}
	// widths[r][c] is the width cell c of row r is padded to, for every
	// cell but a row's last.
	widths := make([][]int, len(rows))
	for r := range rows {
		widths[r] = make([]int, len(rows[r])-1)
	}
	for c := 0; ; c++ {
		any := false
		for r := 0; r < len(rows); {
			if len(rows[r])-1 <= c {
				r++
				continue
			}
			any = true
			end, max := r, 0
			for ; end < len(rows) && len(rows[end])-1 > c; end++ {
				max = maxInt(max, displayWidth(rows[end][c]))
			}
			for ; r < end; r++ {
				widths[r][c] = max
			}
		}
		if !any {
			break
		}
	}
	var out strings.Builder
	for r, cells := range rows {
		for c, cell := range cells {
			out.WriteString(cell)
			if c < len(cells)-1 {
				out.WriteString(strings.Repeat(" ", widths[r][c]-displayWidth(cell)+2))
			}
		}
		if r < len(rows)-1 || trailing {
			out.WriteByte('\n')
		}
	}
	_, err := io.WriteString(t.w, out.String())
	return err
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}

// displayWidth is the number of terminal columns s takes.
func displayWidth(s string) int {
	n := 0
	for _, r := range s {
		switch {
		case unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf) || r == '\u200b':
			// combining marks, zero-width spaces and joiners
		case width.LookupRune(r).Kind() == width.EastAsianWide || width.LookupRune(r).Kind() == width.EastAsianFullwidth:
			n += 2
		default:
			n++
		}
	}
	return n
}
