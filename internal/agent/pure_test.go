package agent

import (
	"bytes"
	"encoding/json"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// The desired state is pure: computed from the records alone, it decides
// what the kernel should hold and calls nothing that reads or changes the
// kernel, so that it can be tested, and checked against the incremental
// update, without a kernel. TestDesiredStateIsPure holds it to that until
// it has a package of its own (see docs/ARCHITECTURE.md): every function
// the desired state's entry points reach, through the package's own
// functions and methods, may only use
//   - functions of this package that are not methods of the pass or the
//     agent (those program the kernel, and hold its state);
//   - functions of packages that touch no kernel (any package not in
//     kernelPkgs, internal/dataplane/dpspec among them);
//   - the functions of the kernel packages that only name or describe
//     (kernelHelpers): aliases, markers, specs' methods.

// desiredRoots are the desired state's entry points.
var desiredRoots = []string{"computeDesired", "incremental.update", "incremental.firewallSpec", "wantedOf"}

// kernelPkgs touch the kernel: only kernelHelpers of theirs may be used.
var kernelPkgs = []string{
	"github.com/nsnet/nsnet/internal/dataplane",
	"github.com/nsnet/nsnet/internal/netns",
	"github.com/nsnet/nsnet/internal/nat",
	"github.com/nsnet/nsnet/internal/firewall",
	"github.com/nsnet/nsnet/internal/meter",
	"github.com/nsnet/nsnet/internal/nfsock",
	"github.com/nsnet/nsnet/internal/qosmark",
	"github.com/vishvananda/netlink",
	"github.com/vishvananda/netns",
	"github.com/google/nftables",
}

// kernelHelpers are the functions and methods of kernelPkgs that name
// or describe kernel objects and touch none, by package-qualified name
// ("nat.Port", "nat.Host.Spec"). dataplane has none: the desired state
// takes the specs and names of its objects from internal/dataplane/dpspec,
// which touches no kernel.
var kernelHelpers = map[string]bool{
	"nat.Host.Spec": true, "nat.ParseProtocol": true, "nat.Port": true,
	// A remote group's members: a persistent set, values only.
	"firewall.MembersOf": true, "firewall.Members.With": true, "firewall.Members.Without": true,
	"firewall.Members.Has": true, "firewall.Members.Len": true, "firewall.Members.Equal": true,
}

func TestDesiredStateIsPure(t *testing.T) {
	pkg, info, files := typeCheckAgent(t)
	decls := map[types.Object]*ast.FuncDecl{}
	for _, f := range files {
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok {
				decls[info.Defs[fd.Name]] = fd
			}
		}
	}
	var queue []*types.Func
	for _, root := range desiredRoots {
		fn := lookupFunc(pkg, root)
		if fn == nil {
			t.Fatalf("no function %s", root)
		}
		queue = append(queue, fn)
	}
	seen := map[*types.Func]string{} // reached, from where
	for _, fn := range queue {
		seen[fn] = "root"
	}
	var bad []string
	for len(queue) > 0 {
		fn := queue[0]
		queue = queue[1:]
		decl := decls[fn]
		if decl == nil || decl.Body == nil {
			continue
		}
		ast.Inspect(decl.Body, func(n ast.Node) bool {
			id, ok := n.(*ast.Ident)
			if !ok {
				return true
			}
			used, ok := info.Uses[id].(*types.Func)
			if !ok {
				return true
			}
			used = used.Origin()
			name := qualified(used)
			switch {
			case used.Pkg() == nil: // error.Error and the like
			case used.Pkg() == pkg && isInterfaceMethod(used):
				// Dynamic: every method of the package that may be
				// called through it.
				for _, m := range implementations(used, decls, info) {
					if _, ok := seen[m]; !ok {
						seen[m] = qualified(fn)
						queue = append(queue, m)
					}
				}
			case used.Pkg() == pkg:
				if recv := receiverName(used); recv == "pass" || recv == "Agent" {
					bad = append(bad, name+" (used by "+qualified(fn)+")")
					return true
				}
				if _, ok := seen[used]; !ok {
					seen[used] = qualified(fn)
					queue = append(queue, used)
				}
			case slices.Contains(kernelPkgs, used.Pkg().Path()) && !kernelHelpers[name]:
				bad = append(bad, name+" (used by "+qualified(fn)+")")
			}
			return true
		})
	}
	sort.Strings(bad)
	for _, b := range slices.Compact(bad) {
		t.Errorf("the desired state uses %s, which may touch the kernel or the agent's state", b)
	}
}

// isInterfaceMethod reports whether fn is an interface's method.
func isInterfaceMethod(fn *types.Func) bool {
	recv := fn.Type().(*types.Signature).Recv()
	return recv != nil && types.IsInterface(recv.Type())
}

// implementations are the methods declared in decls that a call of
// interface method fn may run.
func implementations(fn *types.Func, decls map[types.Object]*ast.FuncDecl, info *types.Info) []*types.Func {
	iface := fn.Type().(*types.Signature).Recv().Type().Underlying().(*types.Interface)
	var impls []*types.Func
	for obj := range decls {
		m, ok := obj.(*types.Func)
		if !ok || m.Name() != fn.Name() {
			continue
		}
		recv := m.Type().(*types.Signature).Recv()
		if recv == nil {
			continue
		}
		t := recv.Type()
		if _, isPtr := t.(*types.Pointer); !isPtr {
			t = types.NewPointer(t)
		}
		if types.Implements(t, iface) {
			impls = append(impls, m)
		}
	}
	return impls
}

// qualified names fn as kernelHelpers does.
func qualified(fn *types.Func) string {
	name := fn.Name()
	if recv := receiverName(fn); recv != "" {
		name = recv + "." + name
	}
	if fn.Pkg() != nil {
		name = fn.Pkg().Name() + "." + name
	}
	return name
}

// receiverName is the name of fn's receiver's type, "" for a function.
func receiverName(fn *types.Func) string {
	sig, ok := fn.Type().(*types.Signature)
	if !ok || sig.Recv() == nil {
		return ""
	}
	t := sig.Recv().Type()
	if p, ok := t.(*types.Pointer); ok {
		t = p.Elem()
	}
	if n, ok := t.(*types.Named); ok {
		return n.Obj().Name()
	}
	return t.String()
}

// lookupFunc finds "name" or "Type.method" in pkg.
func lookupFunc(pkg *types.Package, name string) *types.Func {
	typ, method, isMethod := strings.Cut(name, ".")
	if !isMethod {
		fn, _ := pkg.Scope().Lookup(name).(*types.Func)
		return fn
	}
	tn, ok := pkg.Scope().Lookup(typ).(*types.TypeName)
	if !ok {
		return nil
	}
	obj, _, _ := types.LookupFieldOrMethod(types.NewPointer(tn.Type()), false, pkg, method)
	fn, _ := obj.(*types.Func)
	return fn
}

// typeCheckAgent type-checks this package's non-test files, its imports
// read from the export data the go command builds for them.
func typeCheckAgent(t *testing.T) (*types.Package, *types.Info, []*ast.File) {
	t.Helper()
	cmd := exec.Command("go", "list", "-export", "-deps", "-json=ImportPath,Export", ".")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v: %s", err, stderr.String())
	}
	exports := map[string]string{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct{ ImportPath, Export string }
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decode go list: %v", err)
		}
		exports[p.ImportPath] = p.Export
	}
	fset := token.NewFileSet()
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	imp := importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		file, ok := exports[path]
		if !ok || file == "" {
			return nil, os.ErrNotExist
		}
		return os.Open(file)
	})
	info := &types.Info{Defs: map[*ast.Ident]types.Object{}, Uses: map[*ast.Ident]types.Object{}}
	conf := types.Config{Importer: imp}
	pkg, err := conf.Check("github.com/nsnet/nsnet/internal/agent", fset, files, info)
	if err != nil {
		t.Fatalf("type-check: %v", err)
	}
	return pkg, info, files
}
