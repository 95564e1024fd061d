package nfsock

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/nsnet/nsnet/internal/netns"
)

// scratch makes a namespace of its own for the test, gone after it.
func scratch(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	name := fmt.Sprintf("nfk%d-%s", os.Getpid()%100000, strings.ToLower(t.Name()))
	if err := netns.Create(name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netns.Delete(name) })
	return name
}

func nft(t *testing.T, ns string, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns, "nft"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("nft %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

var (
	testTable = &nftables.Table{Name: "nfsock_test", Family: nftables.TableFamilyINet}
	typeIfIP  = nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeIPAddr)
	testSets  = []SetDef{
		{Name: "names", Key: nftables.TypeIFName},
		{Name: "nets", Key: typeIfIP, Interval: true},
		{Name: "to", Key: nftables.TypeIPAddr, Data: &nftables.TypeIPAddr},
		{Name: "chains", Key: nftables.TypeMark, Data: &nftables.TypeVerdict},
		{Name: "seen", Key: typeIfIP, Counters: true},
	}
	testChains = []ChainDef{
		{Name: "input", Hook: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter,
			Rules: [][]expr.Any{
				{&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
					&expr.Lookup{SourceRegister: 1, DestRegister: 0, IsDestRegSet: true, SetName: "chains"}},
				{&expr.Counter{}},
			},
			Comments: []string{"to the chain of the mark"}},
		{Name: "marked", Rules: [][]expr.Any{{&expr.Verdict{Kind: expr.VerdictAccept}}}},
	}
)

// TestReadBack: a table built from definitions reads back as they are —
// sets (a verdict map among them, whose types google/nftables reads
// askew), chains, rules and elements as they were sent (an interval of
// one key, a goto) — and every way it can differ is told.
func TestReadBack(t *testing.T) {
	ns := scratch(t)
	c, err := Dial(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ifIP := func(name, addr string) []byte { return Concat(IfName(name), netip.MustParseAddr(addr).AsSlice()) }
	elems := map[string][]Element{
		"names":  {{Key: IfName("eth0")}, {Key: IfName("eth1")}},
		"nets":   {{Key: ifIP("eth0", "10.0.0.0"), KeyEnd: ifIP("eth0", "10.0.0.255")}, {Key: ifIP("eth0", "10.0.1.7"), KeyEnd: ifIP("eth0", "10.0.1.7")}},
		"to":     {{Key: []byte{10, 0, 0, 1}, Val: []byte{10, 0, 0, 2}}},
		"chains": {{Key: []byte{1, 0, 0, 0}, Chain: "marked", GoTo: true}, {Key: []byte{2, 0, 0, 0}, Chain: "marked"}},
	}
	if err := c.Create(testTable, testSets, testChains); err != nil {
		t.Fatal(err)
	}
	for _, d := range testSets {
		if err := c.AddElements(d.NFT(testTable), elems[d.Name]); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	l, err := c.Read(testTable, nil)
	if err != nil {
		t.Fatal(err)
	}
	if why := l.Problems(testSets, testChains); len(why) > 0 {
		t.Errorf("problems of the table as built: %v", why)
	}
	for _, def := range testChains {
		if !l.Current(def) {
			t.Errorf("chain %s as built is not current", def.Name)
		}
	}
	for _, d := range testSets {
		got, want := l.Elements[d.Name], elems[d.Name]
		if !slices.EqualFunc(sorted(got), sorted(want), Element.Equal) {
			t.Errorf("set %s reads back as %+v, want %+v", d.Name, got, want)
		}
	}
	if l, err := c.Read(testTable, func(chain string) bool { return chain == "marked" }); err != nil || len(l.Rules) != 1 {
		t.Errorf("rules of one chain read: %v, %v", l.Rules, err)
	}

	nft(t, ns, "insert", "rule", "inet", "nfsock_test", "marked", "counter")
	nft(t, ns, "add", "chain", "inet", "nfsock_test", "extra")
	nft(t, ns, "delete", "set", "inet", "nfsock_test", "names")
	nft(t, ns, "add", "set", "inet", "nfsock_test", "names", "{ type ipv4_addr; }")
	nft(t, ns, "flush", "map", "inet", "nfsock_test", "chains")
	nft(t, ns, "delete", "chain", "inet", "nfsock_test", "marked")
	if l, err = c.Read(testTable, nil); err != nil {
		t.Fatal(err)
	}
	want := []string{"chain extra is not nsnet's", "chain marked missing", "set names has another type"}
	if why := l.Problems(testSets, testChains); !slices.Equal(why, want) {
		t.Errorf("problems: %q, want %q", why, want)
	}
	if l.Current(testChains[1]) {
		t.Error("a chain deleted by hand is current")
	}
	nft(t, ns, "add", "rule", "inet", "nfsock_test", "input", "counter")
	if l, err = c.Read(testTable, nil); err != nil || l.Current(testChains[0]) {
		t.Errorf("a chain with a rule added by hand is current (%v)", err)
	}

	nft(t, ns, "delete", "table", "inet", "nfsock_test")
	if l, err := c.Read(testTable, nil); err != nil || l.Table != nil {
		t.Errorf("Read of no table: %+v, %v", l, err)
	}
}

func sorted(es []Element) []Element {
	return slices.SortedFunc(slices.Values(es), func(a, b Element) int { return strings.Compare(string(a.Key), string(b.Key)) })
}

// TestOwnerProof: the generation proves the kernel holds an owner's last
// commit until anyone commits anything in the namespace, another table
// too; a failure forgets it.
func TestOwnerProof(t *testing.T) {
	ns := scratch(t)
	o, err := Own(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	gen, proven, err := o.Generation()
	if err != nil || proven {
		t.Fatalf("first Generation: %d, %v, %v; want nothing proven", gen, proven, err)
	}
	c, _ := o.Conn()
	if err := c.Create(testTable, testSets, testChains); err != nil {
		t.Fatal(err)
	}
	after, err := o.Commit(gen)
	if err != nil || after != gen+1 {
		t.Fatalf("Commit: %d, %v; want generation %d", after, err, gen+1)
	}
	if g, proven, err := o.Generation(); err != nil || !proven || g != after {
		t.Errorf("after the commit: %d, %v, %v; want %d proven", g, proven, err, after)
	}
	nft(t, ns, "add", "table", "ip", "someone_else")
	gen, proven, err = o.Generation()
	if err != nil || proven {
		t.Fatalf("after another table's commit: %d, %v, %v; want nothing proven", gen, proven, err)
	}
	o.Prove(gen)
	if _, proven, _ := o.Generation(); !proven {
		t.Error("Prove did not prove")
	}
	// A commit of the owner's with another in between proves nothing.
	c.DelTable(testTable)
	nft(t, ns, "add", "table", "ip", "someone_else_again")
	if _, err := o.Commit(gen); err != nil {
		t.Fatal(err)
	}
	if _, proven, _ := o.Generation(); proven {
		t.Error("proven after a commit that was not the only one")
	}
	o.Prove(gen)
	c, _ = o.Conn()
	c.DelTable(testTable) // gone already: the batch fails
	if _, err := o.Commit(gen); err == nil {
		t.Fatal("deleting a missing table committed")
	}
	if _, proven, err := o.Generation(); err != nil || proven {
		t.Errorf("after a failed commit: %v, %v; want a new connection, nothing proven", proven, err)
	}
}
