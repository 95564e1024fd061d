package nfsock

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// SetDef is one set or map of a table.
type SetDef struct {
	Name     string
	Key      nftables.SetDatatype
	Data     *nftables.SetDatatype // maps: the type of the values
	Interval bool
	Counters bool // dynamic, with a counter per element
}

// NFT is the set d defines, in table t.
func (d SetDef) NFT(t *nftables.Table) *nftables.Set {
	s := &nftables.Set{
		Table:    t,
		Name:     d.Name,
		KeyType:  d.Key,
		Interval: d.Interval,
		// As nft(8): the fields of a concatenation are told to interval
		// sets, which the kernel then keeps in its pipapo sets.
		Concatenation: d.Interval && len(nftables.ConcatSetTypeElements(d.Key)) > 1,
		KeyByteOrder:  binaryutil.BigEndian,
	}
	if d.Key.Name == nftables.TypeIFName.Name {
		// An interface name is a string, in host order to nft(8): big
		// endian, `nft list` would print every one as "".
		s.KeyByteOrder = binaryutil.NativeEndian
	}
	if d.Data != nil {
		s.IsMap, s.DataType = true, *d.Data
	}
	if d.Counters {
		s.Dynamic, s.Counter, s.Size = true, true, 1<<20
	}
	return s
}

// Matches reports whether the live set s is the one d defines. A verdict
// map's data length is the kernel's, not a type's.
func (d SetDef) Matches(s *nftables.Set) bool {
	key, data := liveTypes(s)
	sameKey := key.Name == d.Key.Name && key.Bytes == d.Key.Bytes || key.Name == "" && data.Name == nftables.TypeVerdict.Name
	sameData := d.Data == nil || data.Name == d.Data.Name &&
		(data.Name == nftables.TypeVerdict.Name || data.Bytes == d.Data.Bytes)
	return sameKey && s.IsMap == (d.Data != nil) && sameData &&
		s.Interval == d.Interval && s.Dynamic == d.Counters && !s.Anonymous && !s.Constant && !s.HasTimeout
}

// liveTypes are the key and data types of a live set. google/nftables
// (v0.3.0) reads the data type of a verdict map into the key type, whose
// own it loses: the key type of a verdict map is then unknown ("").
func liveTypes(s *nftables.Set) (key, data nftables.SetDatatype) {
	if s.IsMap && s.KeyType.Name == nftables.TypeVerdict.Name && s.DataType.Name == "" {
		return nftables.SetDatatype{}, nftables.TypeVerdict
	}
	return s.KeyType, s.DataType
}

// ChainDef is one chain of a table: a base chain when Hook is set.
type ChainDef struct {
	Name     string
	Type     nftables.ChainType // of a base chain; "" is filter
	Hook     *nftables.ChainHook
	Priority *nftables.ChainPriority
	Rules    [][]expr.Any
	// Comments are the rules' comments, by index (none: no comment): for
	// people, `nft list` shows them.
	Comments []string
}

// NFT is the chain c defines, in table t. A base chain's policy is accept.
func (c ChainDef) NFT(t *nftables.Table) *nftables.Chain {
	ch := &nftables.Chain{Table: t, Name: c.Name}
	if c.Hook != nil {
		accept := nftables.ChainPolicyAccept
		ch.Hooknum, ch.Priority, ch.Type, ch.Policy = c.Hook, c.Priority, c.chainType(), &accept
	}
	return ch
}

func (c ChainDef) chainType() nftables.ChainType {
	if c.Type == "" {
		return nftables.ChainTypeFilter
	}
	return c.Type
}

// Matches reports whether the live chain ch is the one c defines (its
// rules aside: Live.Current).
func (c ChainDef) Matches(ch *nftables.Chain) bool {
	if c.Hook == nil {
		return ch.Hooknum == nil
	}
	return ch.Hooknum != nil && *ch.Hooknum == *c.Hook &&
		ch.Priority != nil && *ch.Priority == *c.Priority &&
		ch.Type == c.chainType() &&
		(ch.Policy == nil || *ch.Policy == nftables.ChainPolicyAccept)
}

// Comment is the comment of rule i of c, or "".
func (c ChainDef) Comment(i int) string {
	if i < len(c.Comments) {
		return c.Comments[i]
	}
	return ""
}

// fingerprintType is the userdata TLV type that carries a rule's
// fingerprint. nft shows only the comment TLV (type 0) and skips types it
// does not know.
const fingerprintType userdata.Type = 0x4e // 'N'

// userData is what rule i of c carries: its comment, for people, and the
// fingerprint of its expressions, so that a later read can tell whether
// the live rule is this one without trusting the kernel to echo every
// attribute back exactly as sent (it adds flags of its own to nat
// expressions, for one).
func (c ChainDef) userData(i int) []byte {
	var ud []byte
	if comment := c.Comment(i); comment != "" {
		ud = userdata.AppendString(ud, userdata.TypeComment, comment)
	}
	return userdata.AppendString(ud, fingerprintType, Fingerprint(c.Rules[i]))
}

// Fingerprint is a short hash of a rule's expressions.
func Fingerprint(rule []expr.Any) string {
	h := sha256.New()
	for _, e := range rule {
		b, err := expr.Marshal(byte(nftables.TableFamilyINet), e)
		if err != nil {
			panic(fmt.Sprintf("nfsock: rule expression %T does not marshal: %v", e, err))
		}
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// LiveFingerprint is the fingerprint a live rule carries, or "".
func LiveFingerprint(r *nftables.Rule) string {
	fp, _ := userdata.GetString(r.UserData, fingerprintType)
	return fp
}

// LiveComment is the comment of a live rule, or "".
func LiveComment(r *nftables.Rule) string {
	c, _ := userdata.GetString(r.UserData, userdata.TypeComment)
	return c
}

// CreateSet queues the creation of the set d defines in t. It gives the
// set an id of its own (ids name sets created in the same batch):
// google/nftables would take one from a global counter that it changes
// without a lock, while tables of several namespaces are built at once.
func (c *Conn) CreateSet(d SetDef, t *nftables.Table) error {
	c.setID++
	s := d.NFT(t)
	s.ID = c.setID
	if err := c.AddSet(s, nil); err != nil {
		return fmt.Errorf("add set %s: %w", d.Name, err)
	}
	return nil
}

// AddChains queues the creation of chains in t, then their rules, which
// may jump to one another.
func (c *Conn) AddChains(t *nftables.Table, chains []ChainDef) {
	for _, def := range chains {
		c.AddChain(def.NFT(t))
	}
	for _, def := range chains {
		c.AddRules(t, def)
	}
}

// AddRules queues the rules of def at the end of its chain.
func (c *Conn) AddRules(t *nftables.Table, def ChainDef) {
	ch := def.NFT(t)
	for i, r := range def.Rules {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: r, UserData: def.userData(i)})
	}
}

// Create queues the creation of table t with sets and chains. Elements
// come after: those of verdict maps name the chains.
func (c *Conn) Create(t *nftables.Table, sets []SetDef, chains []ChainDef) error {
	c.AddTable(t)
	for _, d := range sets {
		if err := c.CreateSet(d, t); err != nil {
			return err
		}
	}
	c.AddChains(t, chains)
	return nil
}

// Exists reports whether table t exists.
func (c *Conn) Exists(t *nftables.Table) (bool, error) {
	tables, err := c.ListTablesOfFamily(t.Family)
	if err != nil {
		return false, fmt.Errorf("list tables: %w", err)
	}
	return slices.ContainsFunc(tables, func(l *nftables.Table) bool { return l.Name == t.Name }), nil
}

// Live is one table as read from the kernel.
type Live struct {
	Table    *nftables.Table // nil: there is no such table, nor anything else
	Chains   map[string]*nftables.Chain
	Rules    map[string][]*nftables.Rule // of the chains read
	Sets     map[string]*nftables.Set
	Elements map[string][]Element
}

// Read reads table t: its chains, the rules of the chains rulesOf selects
// (nil: all), its sets and their elements.
func (c *Conn) Read(t *nftables.Table, rulesOf func(chain string) bool) (*Live, error) {
	if ok, err := c.Exists(t); err != nil || !ok {
		return &Live{}, err
	}
	l := &Live{Table: t, Chains: map[string]*nftables.Chain{}, Rules: map[string][]*nftables.Rule{},
		Sets: map[string]*nftables.Set{}, Elements: map[string][]Element{}}
	chains, err := c.ListChainsOfTableFamily(t.Family)
	if err != nil {
		return nil, fmt.Errorf("list chains: %w", err)
	}
	for _, ch := range chains {
		if ch.Table != nil && ch.Table.Name == t.Name {
			l.Chains[ch.Name] = ch
		}
	}
	for name, ch := range l.Chains {
		if rulesOf != nil && !rulesOf(name) {
			continue
		}
		rules, err := c.GetRules(t, ch)
		if err != nil {
			return nil, fmt.Errorf("list rules of chain %s: %w", name, err)
		}
		l.Rules[name] = rules
	}
	sets, err := c.GetSets(t)
	if err != nil {
		return nil, fmt.Errorf("list sets: %w", err)
	}
	for _, s := range sets {
		l.Sets[s.Name] = s
		if l.Elements[s.Name], err = c.Elements(s); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// Problems lists how l's chains and sets differ from sets and chains:
// missing, extra or different ones, sorted. The rules of the chains are
// for Current to compare.
func (l *Live) Problems(sets []SetDef, chains []ChainDef) []string {
	var why []string
	ours := map[string]bool{}
	for _, def := range sets {
		ours["set "+def.Name] = true
		switch s, ok := l.Sets[def.Name]; {
		case !ok:
			why = append(why, "set "+def.Name+" missing")
		case !def.Matches(s):
			why = append(why, "set "+def.Name+" has another type")
		}
	}
	for _, def := range chains {
		ours["chain "+def.Name] = true
		switch ch, ok := l.Chains[def.Name]; {
		case !ok:
			why = append(why, "chain "+def.Name+" missing")
		case !def.Matches(ch):
			why = append(why, "chain "+def.Name+" has another type, hook or priority")
		}
	}
	for name := range l.Sets {
		if !ours["set "+name] {
			why = append(why, "set "+name+" is not nsnet's")
		}
	}
	for name := range l.Chains {
		if !ours["chain "+name] {
			why = append(why, "chain "+name+" is not nsnet's")
		}
	}
	slices.Sort(why)
	return why
}

// Current reports whether the live rules of chain def, as read, are def's
// rules, comments included.
func (l *Live) Current(def ChainDef) bool {
	rules := l.Rules[def.Name]
	if len(rules) != len(def.Rules) {
		return false
	}
	for i, r := range rules {
		if LiveFingerprint(r) != Fingerprint(def.Rules[i]) || LiveComment(r) != def.Comment(i) {
			return false
		}
	}
	return true
}

// HookName is nft(8)'s name of a netfilter hook of the ip, ip6 and inet
// families, as both tables' renderers print it; the number for any other.
func HookName(h nftables.ChainHook) string {
	switch h {
	case unix.NF_INET_PRE_ROUTING:
		return "prerouting"
	case unix.NF_INET_LOCAL_IN:
		return "input"
	case unix.NF_INET_FORWARD:
		return "forward"
	case unix.NF_INET_LOCAL_OUT:
		return "output"
	case unix.NF_INET_POST_ROUTING:
		return "postrouting"
	}
	return fmt.Sprint(h)
}
