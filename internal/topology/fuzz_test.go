package topology

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds the topology parser arbitrary files, starting from the
// shipped examples: it never panics, and a file it accepts is valid.
func FuzzParse(f *testing.F) {
	examples, _ := filepath.Glob("../../examples/*.yaml")
	for _, path := range examples {
		raw, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte("name: x\nnetworks: [{name: n, subnets: [{name: s, cidr: 10.0.0.0/24}]}]\n"))
	f.Add([]byte("name: x\nports: [{name: p, network: nope}]\n"))
	f.Add([]byte("&a [*a, *a]"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		file, err := Parse(bytes.NewReader(raw), "fuzz.yaml")
		if err != nil {
			return
		}
		if err := file.Validate(); err != nil {
			t.Fatalf("Parse accepted a file that does not validate: %v", err)
		}
	})
}
