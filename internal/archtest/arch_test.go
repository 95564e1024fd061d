package archtest

import (
	"bufio"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/nsnet/nsnet/"

// Short names for the packages the rules name.
const (
	netlink  = "github.com/vishvananda/netlink"
	nftables = "github.com/google/nftables"
	cobra    = "github.com/spf13/cobra"
)

// rule is one row's "must not", as far as imports can show it. direct
// lists what the package may not import itself; deps what may not be
// anywhere below it. A name ending in "/..." stands for its subpackages
// too.
type rule struct {
	pkg    string
	why    string // the "must not" column, for the failure message
	direct []string
	deps   []string
}

// kernel is everything that changes or reads the kernel's network state.
var kernel = []string{netlink, nftables + "/...", "internal/netns", "internal/dataplane",
	"internal/firewall", "internal/nat", "internal/nfsock", "internal/qosmark", "internal/agent"}

var rules = []rule{
	{pkg: "cmd/nsnet", why: "hold logic",
		direct: []string{"internal/...", "!internal/cli", "!internal/cli/daemoncmd"}},
	{pkg: "internal/cli", why: "talk to the kernel or the store",
		direct: []string{"internal/store", "internal/service", "internal/api", "internal/agent",
			"internal/dataplane", "internal/firewall", "internal/nat", netlink, nftables}},
	{pkg: "internal/client", why: "know about cobra or output",
		deps: []string{cobra, "std:text/tabwriter", "internal/cli", "internal/service", "internal/store"}},
	{pkg: "internal/topology", why: "bypass the API",
		deps: append([]string{"internal/service", "internal/store", "internal/api"}, kernel...)},
	{pkg: "internal/daemon", why: "hold API or dataplane logic",
		direct: []string{netlink, nftables, "internal/dataplane", "internal/firewall", "internal/nat", "internal/ipam"}},
	{pkg: "internal/hostlock", why: "touch the kernel's network state", deps: kernel},
	{pkg: "internal/hoststatus", why: "touch the kernel, import the agent, the service or the API, or write desired state",
		deps: append([]string{"internal/service", "internal/api"}, kernel...)},
	{pkg: "internal/api", why: "validate attributes, touch the store or kernel",
		direct: []string{"internal/store", "internal/ipam"}, deps: kernel},
	{pkg: "internal/service", why: "touch the kernel or speak HTTP",
		direct: []string{"internal/api"}, deps: kernel},
	{pkg: "internal/auth", why: "decide policy",
		deps: []string{"internal/service", "internal/api", "internal/store"}},
	{pkg: "internal/ipam", why: "read or write the store",
		deps: append([]string{"internal/store"}, kernel...)},
	{pkg: "internal/model", why: "anything with side effects",
		direct: []string{"std:os", "std:os/exec", "std:syscall", "std:net/http", "std:log/slog"},
		deps:   []string{"internal/...", "golang.org/x/sys/..."}},
	{pkg: "internal/store", why: "validate or interpret records",
		deps: []string{"internal/..."}},
	{pkg: "internal/store/storetest", why: "be imported by the product",
		deps: append([]string{"internal/service", "internal/api"}, kernel...)},
	{pkg: "internal/firewall/fwtest", why: "be imported by the product, or touch the kernel",
		deps: append([]string{"internal/..."}, kernel...)},
	{pkg: "internal/agent", why: "validate input or write desired state",
		direct: []string{"internal/service", "internal/api", "internal/ipam"}},
	{pkg: "internal/nat", why: "touch any other table",
		deps: []string{"internal/firewall", "internal/trace", "internal/store", "internal/model"}},
	{pkg: "internal/meter", why: "touch any other table, or switch namespaces but through internal/nfsock",
		direct: []string{"internal/netns"},
		deps:   []string{"internal/nat", "internal/firewall", "internal/trace", "internal/store", "internal/model"}},
	{pkg: "internal/firewall", why: "touch any other table",
		deps: []string{"internal/nat", "internal/trace", "internal/store", "internal/model"}},
	{pkg: "internal/qosmark", why: "touch any other table, or read the store",
		deps: []string{"internal/nat", "internal/firewall", "internal/trace", "internal/store", "internal/model"}},
	{pkg: "internal/nfsock", why: "know any table of its owners, or switch namespaces but through internal/netns",
		deps: []string{"internal/...", "!internal/netns"}},
	{pkg: "internal/dataplane", why: "know the store or API",
		deps: []string{"internal/store", "internal/service", "internal/api", "internal/client", "internal/model"}},
	{pkg: "internal/dataplane/dpspec", why: "touch the kernel (netlink, namespaces, syscalls) or know anything of nsnet's but itself",
		direct: []string{"std:syscall", "std:os", "std:os/exec"},
		deps:   append([]string{"internal/...", "github.com/vishvananda/netns", "golang.org/x/sys/..."}, kernel...)},
	{pkg: "internal/capture", why: "send packets or change the kernel",
		deps: []string{nftables + "/...", "internal/dataplane", "internal/firewall", "internal/nat"}},
	{pkg: "internal/trace", why: "read the store, or change any nft table but its own",
		deps: []string{"internal/store", "internal/service", "internal/api", "internal/nat", "internal/agent"}},
	{pkg: "internal/netns", why: "anything else", deps: []string{"internal/...", "!internal/netns"}},
	{pkg: "internal/dhcp", why: "read the store or program the kernel",
		deps:   []string{"internal/store", "internal/dataplane", "internal/firewall", "internal/nat", nftables + "/..."},
		direct: []string{netlink}},
	{pkg: "internal/dhcp6", why: "read the store, or program the kernel beyond its own sockets",
		deps:   []string{"internal/store", "internal/dataplane", "internal/firewall", "internal/nat", nftables + "/..."},
		direct: []string{netlink}},
	{pkg: "internal/radv", why: "read the store, or program the kernel beyond its own sockets",
		deps:   []string{"internal/store", "internal/dataplane", "internal/firewall", "internal/nat", nftables + "/..."},
		direct: []string{netlink}},
	{pkg: "internal/metadata", why: "read the store or program the kernel",
		deps:   []string{"internal/store", "internal/dataplane", "internal/firewall", "internal/nat", nftables + "/..."},
		direct: []string{netlink}},
	{pkg: "internal/nameserver", why: "read the store or program the kernel",
		deps:   []string{"internal/store", "internal/dataplane", "internal/firewall", "internal/nat", nftables + "/..."},
		direct: []string{netlink}},
	{pkg: "internal/pmap", why: "import any other nsnet package",
		deps: []string{"internal/..."}},
	{pkg: "internal/metrics", why: "import the agent, service, API or store",
		deps: []string{"internal/..."}},
	// explain reads nat's and the firewall's tables, through their
	// read-only Inspect and Script.
	{pkg: "internal/explain", why: "change the kernel or read the store",
		deps: []string{"internal/store", "internal/service", "internal/agent"}},
	{pkg: "internal/topoview", why: "read the store, call the API or touch the kernel",
		direct: []string{"std:net/http", "std:os", "std:os/exec"},
		deps:   append([]string{"internal/store", "internal/service", "internal/api", "internal/client"}, kernel...)},
	{pkg: "internal/ui", why: "read the store or the service but through the API",
		direct: []string{"internal/store", "internal/service", "internal/api", "internal/agent"}},
	{pkg: "internal/cleanup", why: "read the store or the API",
		deps: []string{"internal/store", "internal/service", "internal/api", "internal/client"}},
}

type pkgInfo struct {
	ImportPath string
	Dir        string
	GoFiles    []string
	Imports    []string
	Deps       []string
}

// packages lists the module's packages (not their tests) with go list.
func packages(t *testing.T) map[string]pkgInfo {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "./...")
	cmd.Dir = root(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs := map[string]pkgInfo{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkgInfo
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decode go list: %v", err)
		}
		pkgs[strings.TrimPrefix(p.ImportPath, module)] = p
	}
	return pkgs
}

func root(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// matches reports whether import path imp (module prefix removed) is one
// of pats; a pattern "!p" excepts p from what the others match.
func matches(imp string, pats []string) bool {
	hit := false
	for _, p := range pats {
		if strings.HasPrefix(p, "!") {
			if imp == p[1:] {
				return false
			}
			continue
		}
		if base, ok := strings.CutSuffix(p, "/..."); ok {
			hit = hit || imp == base || strings.HasPrefix(imp, base+"/")
		} else {
			hit = hit || imp == p
		}
	}
	return hit
}

// trim names the module's packages without the module path, as the rules
// do; the standard library's own internal packages keep a "std:" mark so
// that "internal/..." means nsnet's.
func trim(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		if rel, ok := strings.CutPrefix(p, module); ok {
			out[i] = rel
		} else if !strings.Contains(strings.Split(p, "/")[0], ".") {
			out[i] = "std:" + p
		} else {
			out[i] = p
		}
	}
	return out
}

func TestImportsKeepTheLayers(t *testing.T) {
	pkgs := packages(t)
	for _, r := range rules {
		p, ok := pkgs[r.pkg]
		if !ok {
			t.Errorf("%s: a rule names a package that does not exist", r.pkg)
			continue
		}
		for _, imp := range trim(p.Imports) {
			if matches(imp, r.direct) || matches(imp, r.deps) {
				t.Errorf("%s imports %s, but must not %s", r.pkg, imp, r.why)
			}
		}
		for _, dep := range trim(p.Deps) {
			if !slices.Contains(trim(p.Imports), dep) && matches(dep, r.deps) {
				t.Errorf("%s depends on %s (through its imports), but must not %s", r.pkg, dep, r.why)
			}
		}
	}
	// Test tooling is never part of the product.
	for name, p := range pkgs {
		if strings.HasPrefix(name, "internal/") || strings.HasPrefix(name, "cmd/") {
			if slices.Contains(trim(p.Deps), "internal/lab") {
				t.Errorf("%s depends on internal/lab, which only tests and benchmarks may use", name)
			}
			for _, tool := range []string{"internal/store/storetest", "internal/firewall/fwtest"} {
				if name != "internal/lab" && slices.Contains(trim(p.Deps), tool) {
					t.Errorf("%s depends on %s, which only tests and benchmarks may use", name, tool)
				}
			}
		}
	}
}

// TestEveryPackageHasARow: a new package says what it owns and must not
// touch before it lands, and each row has a rule above (or is exempt).
func TestEveryPackageHasARow(t *testing.T) {
	rows := architectureRows(t)
	ruled := map[string]bool{}
	for _, r := range rules {
		ruled[r.pkg] = true
	}
	// Packages whose row says something imports cannot check.
	unruled := map[string]bool{"internal/lab": true, "internal/archtest": true, "internal/cli/daemoncmd": true}
	pkgs := packages(t)
	for name := range pkgs {
		if !strings.HasPrefix(name, "internal/") && !strings.HasPrefix(name, "cmd/") {
			continue
		}
		if !rows[name] {
			t.Errorf("%s has no row in docs/ARCHITECTURE.md's package table", name)
		}
		if !ruled[name] && !unruled[name] {
			t.Errorf("%s has no import rule in this test", name)
		}
	}
	for name := range rows {
		if _, ok := pkgs[name]; !ok {
			t.Errorf("docs/ARCHITECTURE.md has a row for %s, which does not exist", name)
		}
	}
}

var rowRE = regexp.MustCompile("^\\| `([a-z0-9/]+)` \\|")

func architectureRows(t *testing.T) map[string]bool {
	t.Helper()
	f, err := os.Open(filepath.Join(root(t), "docs", "ARCHITECTURE.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	inTable := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "| package | owns | must not |"):
			inTable = true
		case inTable && !strings.HasPrefix(line, "|"):
			inTable = false
		case inTable:
			if m := rowRE.FindStringSubmatch(line); m != nil {
				rows[m[1]] = true
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 {
		t.Fatal("no package table found in docs/ARCHITECTURE.md")
	}
	return rows
}

// switches are the calls that move a thread to another namespace.
var switches = map[string][]string{
	"golang.org/x/sys/unix":        {"Setns", "Unshare"},
	"github.com/vishvananda/netns": {"Set", "Setns"},
	"runtime":                      {"LockOSThread"},
}

// TestOnlyNetnsSwitchesNamespaces: a thread changes namespace in one
// package, which locks it, switches back, and lets a thread die that
// could not (DESIGN.md, "the trap").
func TestOnlyNetnsSwitchesNamespaces(t *testing.T) {
	for name, p := range packages(t) {
		if name == "internal/netns" {
			continue
		}
		for _, file := range p.GoFiles {
			path := filepath.Join(p.Dir, file)
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			local := map[string]string{} // local name → import path
			for _, imp := range f.Imports {
				ip, _ := strconv.Unquote(imp.Path.Value)
				n := ip[strings.LastIndex(ip, "/")+1:]
				if imp.Name != nil {
					n = imp.Name.Name
				}
				local[n] = ip
			}
			ast.Inspect(f, func(n ast.Node) bool {
				sel, ok := n.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				id, ok := sel.X.(*ast.Ident)
				if !ok {
					return true
				}
				if slices.Contains(switches[local[id.Name]], sel.Sel.Name) {
					t.Errorf("%s: %s.%s — only internal/netns switches namespaces", filepath.Join(name, file), local[id.Name], sel.Sel.Name)
				}
				return true
			})
		}
	}
}

// TestRulesCanFail proves the matcher catches what it should, so a rule
// that silently matches nothing cannot pass for a kept one.
func TestRulesCanFail(t *testing.T) {
	for _, c := range []struct {
		imp  string
		pats []string
		want bool
	}{
		{"internal/store", []string{"internal/store"}, true},
		{"internal/storex", []string{"internal/store"}, false},
		{"internal/cli/daemoncmd", []string{"internal/..."}, true},
		{"internal/cli", []string{"internal/...", "!internal/cli"}, false},
		{nftables + "/expr", []string{nftables + "/..."}, true},
		{nftables, []string{nftables + "/..."}, true},
	} {
		if got := matches(c.imp, c.pats); got != c.want {
			t.Errorf("matches(%q, %q) = %v, want %v", c.imp, c.pats, got, c.want)
		}
	}
}
