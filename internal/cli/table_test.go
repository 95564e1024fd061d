package cli

import (
	"strings"
	"testing"
)

func TestDisplayWidth(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want int
	}{
		{"", 0},
		{"blue", 4},
		{"网络", 4},       // CJK: two columns each
		{"réseau", 6},   // precomposed é
		{"re\u0301", 2}, // e and a combining acute accent: one column
		{"Ａ1", 3},       // a fullwidth letter
		{"ｱ", 1},        // halfwidth katakana
		{"한국어", 6},
		{"🌐 web", 6},
	} {
		if got := displayWidth(tc.s); got != tc.want {
			t.Errorf("displayWidth(%q) = %d, want %d", tc.s, got, tc.want)
		}
	}
}

// TestTableWideCharacters: columns line up on a terminal when a cell
// holds characters two columns wide, which tabwriter counts as one.
func TestTableWideCharacters(t *testing.T) {
	var b strings.Builder
	tw := newTable(&b)
	tw.Write([]byte("ID\tNAME\tSTATUS\n"))
	tw.Write([]byte("n1\t网络\tACTIVE\n"))
	tw.Write([]byte("n2\tblue-net\tDOWN\n"))
	tw.Write([]byte("n3\tréseau\u0301\tBUILD\n"))
	if err := tw.Flush(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines:\n%s", len(lines), b.String())
	}
	var at []int
	for _, l := range lines {
		i := strings.LastIndex(l, "  ")
		at = append(at, displayWidth(l[:i+2]))
	}
	for i, c := range at {
		if c != at[0] {
			t.Errorf("the third column starts at column %d on line %d, at %d on the header:\n%s", c, i+1, at[0], b.String())
		}
	}
	want := "ID  NAME      STATUS\nn1  网络      ACTIVE\nn2  blue-net  DOWN\nn3  réseau\u0301    BUILD\n"
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}

// TestTableBlocks: as with tabwriter, a column is aligned over the
// consecutive lines that have it; a line without it starts a new block.
func TestTableBlocks(t *testing.T) {
	var b strings.Builder
	tw := newTable(&b)
	tw.Write([]byte("a\tb\nlonger\tc\nno tabs here at all\nx\ty\n"))
	if err := tw.Flush(); err != nil {
		t.Fatal(err)
	}
	want := "a       b\nlonger  c\nno tabs here at all\nx  y\n"
	if b.String() != want {
		t.Errorf("table:\n%q\nwant:\n%q", b.String(), want)
	}
}
