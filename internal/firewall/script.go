package firewall

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/nfsock"
)

// The nft(8) syntax of the layout's rules, chain by chain, index by index
// with the ChainDefs of layout.go: what `nft -f` reads to build the same
// rule. TestScriptRebuildsTables proves that tables built from Script list
// exactly as the ones Apply builds.
var bridgeRuleText = map[string][]string{
	"prerouting": {"iifname @" + setSecured + " jump antispoof"},
	"antispoof": {
		"iifname . ether saddr != @" + setMAC + " " + dropText("iifname", reasonMAC),
		"meta protocol arp jump antispoof_arp",
		"meta protocol ip jump antispoof_ip4",
		"meta protocol ip6 jump antispoof_ip6",
	},
	"antispoof_arp": {
		"iifname . arp saddr ether != @" + setMAC + " " + dropText("iifname", reasonARP),
		"arp saddr ip 0.0.0.0 return",
		"iifname . arp saddr ip @" + setIP4 + " return",
		"iifname . arp saddr ip @" + setNet4 + " return",
		dropText("iifname", reasonARP),
	},
	"antispoof_ip4": {
		fmt.Sprintf("meta l4proto udp th sport %d %s", dhcp4ServerPort, dropText("iifname", reasonDHCP)),
		fmt.Sprintf("meta l4proto udp th sport %d th dport %d return", dhcp4ClientPort, dhcp4ServerPort),
		"iifname . ip saddr @" + setIP4 + " return",
		"iifname . ip saddr @" + setNet4 + " return",
		dropText("iifname", reasonIP),
	},
	"antispoof_ip6": {
		fmt.Sprintf("meta l4proto ipv6-icmp @th,0,8 %d %s", icmp6RA, dropText("iifname", reasonRA)),
		fmt.Sprintf("meta l4proto ipv6-icmp @th,0,8 %d iifname @%s %s", icmp6RS, setIPv6Off, dropText("iifname", reasonIPv6Off)),
		fmt.Sprintf("meta l4proto udp th sport %d %s", dhcp6ServerPort, dropText("iifname", reasonDHCP)),
		fmt.Sprintf("meta l4proto ipv6-icmp @th,0,8 %d jump nd_target", icmp6NA),
		fmt.Sprintf("@nh,64,128 0x0 meta l4proto ipv6-icmp @th,0,8 %d iifname @%s %s", icmp6NS, setIPv6Off, dropText("iifname", reasonIPv6Off)),
		fmt.Sprintf("@nh,64,128 0x0 @nh,192,16 0xff02 meta l4proto ipv6-icmp @th,0,8 %d return", icmp6MLDReport),
		fmt.Sprintf("@nh,64,128 0x0 @nh,192,16 0xff02 meta l4proto ipv6-icmp @th,0,8 %d return", icmp6NS),
		fmt.Sprintf("@nh,64,128 0x0 @nh,192,16 0xff02 meta l4proto ipv6-icmp @th,0,8 %d return", icmp6MLD2Report),
		"iifname . ip6 saddr @" + setIP6 + " return",
		"iifname . ip6 saddr @" + setNet6 + " return",
		dropText("iifname", reasonIP),
	},
	// nft(8) (1.0.6) has no name for the target address of a neighbour
	// advertisement, and a raw payload (@th,64,128) in a concatenation
	// is an integer to it, which the sets' addresses are not: it prints
	// these two rules but cannot read them back.
	"nd_target": {
		"# iifname . @th,64,128 @" + setIP6 + " return" + unwritable,
		"# iifname . @th,64,128 @" + setNet6 + " return" + unwritable,
		dropText("iifname", reasonND),
	},
	"forward": {
		fmt.Sprintf("meta pkttype %d-%d oifname . ether saddr @%s drop", unix.PACKET_BROADCAST, unix.PACKET_MULTICAST, setMAC),
		"meta mark set 0x00000000",
		"meta mark set oifname map @" + setTagOut,
		"iifname vmap @" + setTagIn,
	},
	"input": {
		fmt.Sprintf("meta mark set 0x%08x", markRouted),
		"iifname vmap @" + setTagIn,
	},
	"output": {
		"oifname != @" + setSecured + " accept",
		fmt.Sprintf("meta mark & 0x%08x != 0x00000000 accept", uint32(markAdmitted)),
		"meta protocol != ip meta protocol != ip6 accept",
		dropText("oifname", reasonIngress),
	},
}

var inetRuleText = map[string][]string{
	"zone_in": {
		"iifname . ether saddr @" + setStatelessMAC + " notrack accept",
		"iifname . ether daddr @" + setStatelessMAC + " notrack accept",
		"iifname vmap @" + setZones,
	},
	"zone_out": {"oifname vmap @" + setZones},
	"forward": {
		fmt.Sprintf(`meta iifkind "bridge" meta mark & 0x%08x == 0x00000000 goto bridged`, markRouted),
		`meta iifkind "bridge" goto routed`,
		`meta oifkind "bridge" meta mark set 0x00000000 goto routed`,
	},
	"bridged": {
		"ct state established,related accept",
		"meta mark 0x00000000 accept",
		"ct state untracked goto untracked",
		"ct state invalid jump invalid",
		markText(maskIn) + " != 0x00000000 jump egress",
		markText(maskOut) + " != 0x00000000 jump ingress",
	},
	"untracked": {
		markText(maskIn) + " @" + setStatelessTags + " goto stateless",
		markText(maskOut) + " @" + setStatelessTags + " goto stateless",
		"accept",
	},
	"stateless": {
		markText(maskIn) + " != 0x00000000 jump egress",
		markText(maskOut) + " != 0x00000000 jump ingress",
	},
	"routed": {
		"ct state established,related,untracked goto routed_seen",
		markText(maskIn) + " != 0x00000000 jump from_port",
		`meta oifkind "bridge" goto to_bridge`,
		"meta mark set 0x00000000",
	},
	"routed_seen": {
		fmt.Sprintf(`meta oifkind "bridge" meta mark set 0x%08x accept`, uint32(markAdmitted)),
		"meta mark set 0x00000000",
	},
	"to_bridge": {
		"meta mark set 0x00000000",
		"meta nfproto ipv4 meta mark set oifname . ip daddr map @" + setDest4,
		"meta mark 0x00000000 meta nfproto ipv4 meta mark set oifname . ip daddr map @" + setDest4Net,
		"meta mark 0x00000000 accept",
		"ct state invalid jump invalid",
		"jump ingress",
		fmt.Sprintf("meta mark set 0x%08x", uint32(markAdmitted)),
	},
	"from_port": {
		"ct state invalid jump invalid",
		"jump egress",
	},
	"input": {
		"ct state established,related,untracked accept",
		`meta iifkind "bridge" ` + markText(maskIn) + " != 0x00000000 goto from_port",
	},
	"output": {
		fmt.Sprintf(`meta oifkind "bridge" ct state established,related,untracked meta mark set 0x%08x accept`, uint32(markAdmitted)),
		fmt.Sprintf(`meta oifkind "bridge" meta l4proto igmp meta mark set 0x%08x accept`, uint32(markAdmitted)),
		`meta oifkind "bridge" goto to_bridge`,
	},
	"invalid": {
		markText(maskOut) + " != 0x00000000 " + dropText(markText(maskOut), reasonInvalid),
		dropText(markText(maskIn), reasonInvalid),
	},
	"egress":  alwaysText(Egress),
	"ingress": alwaysText(Ingress),
}

// unwritable ends the comment that stands for a rule nft(8) cannot read.
const unwritable = ": nft(8) cannot read this rule back (no name for an ICMPv6 target address), left out"

// dropText counts a drop of reason under key in the drops set, and drops.
func dropText(key string, reason uint32) string {
	return fmt.Sprintf("update @%s { %s . 0x%08x } drop", setDrops, key, reason)
}

func markText(mask uint32) string { return fmt.Sprintf("meta mark & 0x%08x", mask) }

// alwaysText is the text of the egress or ingress chain: always(dir), the
// port's chain, the drop.
func alwaysText(dir Direction) []string {
	client, server := []uint16{dhcp4ClientPort, dhcp6ClientPort}, []uint16{dhcp4ServerPort, dhcp6ServerPort}
	mask, ports, reason := uint32(maskIn), setEgressPorts, reasonEgress
	if dir == Ingress {
		client, server = server, client
		mask, ports, reason = maskOut, setIngressPorts, reasonIngress
	}
	return []string{
		fmt.Sprintf("meta nfproto ipv4 meta l4proto udp th sport %d th dport %d return", client[0], server[0]),
		fmt.Sprintf("meta nfproto ipv6 meta l4proto udp th sport %d th dport %d return", client[1], server[1]),
		"meta l4proto ipv6-icmp @th,0,8 130-136 return",
		fmt.Sprintf("meta l4proto ipv6-icmp @th,0,8 %d return", icmp6MLD2Report),
		markText(mask) + " vmap @" + ports,
		dropText(markText(mask), reason),
	}
}

// sigChainText is the text of the rules of sigChains(sig, ingress,
// egress)'s chain name, in order.
func sigChainText(sig uint16, name string, groups []string) []string {
	dir, mask, peer, reason := Egress, uint32(maskIn), "daddr", reasonEgress
	if name == ingressChainName(sig) {
		dir, mask, peer, reason = Ingress, maskOut, "saddr", reasonIngress
	}
	var out []string
	fams := []struct{ nfproto, icmp, ip, rules string }{
		{"ipv4", "icmp", "ip", rulesSet(sig, dir, false)},
		{"ipv6", "ipv6-icmp", "ip6", rulesSet(sig, dir, true)},
	}
	for _, f := range fams {
		out = append(out,
			fmt.Sprintf("meta nfproto %s meta l4proto != %s meta l4proto . th dport . %s %s @%s return", f.nfproto, f.icmp, f.ip, peer, f.rules),
			fmt.Sprintf("meta nfproto %s meta l4proto %s meta l4proto . th sport . %s %s @%s return", f.nfproto, f.icmp, f.ip, peer, f.rules))
	}
	for _, g := range groups {
		for i, f := range fams {
			v6 := i == 1
			for _, ranges := range []bool{false, true} {
				member := fmt.Sprintf("%s %s @%s", f.ip, peer, memberSet(g, v6, false))
				if ranges {
					member = fmt.Sprintf("%s . %s %s @%s", markText(0), f.ip, peer, memberSet(g, v6, true))
				}
				key := func(port string) string {
					return fmt.Sprintf("meta l4proto . th %s @%s return", port, groupRulesSet(sig, g, dir, v6))
				}
				out = append(out,
					fmt.Sprintf("meta nfproto %s meta l4proto != %s %s %s", f.nfproto, f.icmp, member, key("dport")),
					fmt.Sprintf("meta nfproto %s meta l4proto %s %s %s", f.nfproto, f.icmp, member, key("sport")))
			}
		}
	}
	return append(out, dropText(markText(mask), reason))
}

// Visible says which ports and bridges a Script shows, for a caller who
// may see only some of them (the web view's explain runs as its caller):
// a nil func shows all. The tables are the host's, shared by every
// project's ports: a port not shown leaves out its elements, its chains
// and its rule sets, and the member sets of the remote groups only its
// rules name; a bridge not shown, its zone and its routed destinations.
type Visible struct {
	Port   func(ifname string) bool
	Bridge func(name string) bool
}

// Script reads both tables of the Firewall's namespace and returns the
// nft(8) input that builds them from nothing, in one transaction: each
// table with its sets, maps and chains, then the elements, set by set.
// The drop counters are what traffic did, not what nsnet built: they are
// left out, and so is whatever is not nsnet's layout (a rule, set or
// chain someone added), named in a comment, so the script never claims
// to rebuild what it does not; and what v does not show. It is "" when
// neither table exists.
func (f *Firewall) Script(v Visible) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.own.Conn()
	if err != nil {
		return "", err
	}
	var lives []*nfsock.Live
	for _, tl := range layouts() {
		l, err := c.Read(tl.t, nil)
		if err != nil {
			return "", fmt.Errorf("read table %s %s: %w", familyName(tl.t.Family), TableName, err)
		}
		lives = append(lives, l)
	}
	sh := newShown(v, lives[0], lives[1])
	var b strings.Builder
	for i, tl := range layouts() {
		if lives[i].Table != nil {
			renderTable(&b, tl, lives[i], sh)
		}
	}
	if sh.hid {
		return "# ports and networks this caller cannot see are left out\n" + b.String(), nil
	}
	return b.String(), nil
}

// shown is a Visible worked out on the live tables.
type shown struct {
	all    bool
	tags   map[uint16]string // tag → interface, every port's
	port   map[string]bool   // interfaces shown
	macs   map[string]bool   // the MACs of the ports shown
	bridge func(string) bool
	groups map[string]bool // remote groups the rules of shown ports name
	sigs   map[uint16]bool // signatures of shown ports
	hid    bool            // something was left out
}

func newShown(v Visible, bridge, inet *nfsock.Live) *shown {
	sh := &shown{all: v.Port == nil && v.Bridge == nil, tags: map[uint16]string{}, port: map[string]bool{},
		macs: map[string]bool{}, bridge: v.Bridge, groups: map[string]bool{}, sigs: map[uint16]bool{}}
	if sh.bridge == nil {
		sh.bridge = func(string) bool { return true }
	}
	for _, e := range bridge.Elements[setTagOut] {
		if len(e.Val) == 4 {
			sh.tags[uint16(binaryutil.NativeEndian.Uint32(e.Val))] = nfsock.NameOf(e.Key)
		}
	}
	for _, name := range sh.tags {
		sh.port[name] = v.Port == nil || v.Port(name)
	}
	for _, e := range bridge.Elements[setMAC] {
		if len(e.Key) >= 22 && sh.port[nfsock.NameOf(e.Key[:16])] {
			sh.macs[string(e.Key[16:22])] = true
		}
	}
	for _, e := range inet.Elements[setIngressPorts] {
		if len(e.Key) == 4 && sh.tag(uint16(binaryutil.NativeEndian.Uint32(e.Key))) {
			if sig, ok := SigChain(e.Chain); ok {
				sh.sigs[sig] = true
			}
		}
	}
	for name := range inet.Sets {
		parts := strings.SplitN(name, "_", 3)
		if len(parts) == 3 && isGroupRulesPrefix(parts[0]) && sh.sigName(parts[1]) {
			sh.groups[parts[2]] = true
		}
	}
	return sh
}

// tag reports whether the port with tag is shown.
func (sh *shown) tag(tag uint16) bool { return sh.all || sh.port[sh.tags[tag]] }

// tagName is tag for a tag in a chain name.
func (sh *shown) tagName(s string) bool {
	n, err := strconv.ParseUint(s, 10, 16)
	return err == nil && sh.tag(uint16(n))
}

// sigName reports whether the signature numbered s (in a set or chain
// name) is a shown port's: a signature is only rules, which every port
// that has it has.
func (sh *shown) sigName(s string) bool {
	n, err := strconv.ParseUint(s, 10, 16)
	return err == nil && (sh.all || sh.sigs[uint16(n)])
}

func isRulesPrefix(p string) bool {
	return len(p) == 3 && (p[:2] == "r4" || p[:2] == "r6") && (p[2] == 'e' || p[2] == 'i')
}

func isGroupRulesPrefix(p string) bool {
	return len(p) == 3 && (p[:2] == "g4" || p[:2] == "g6") && (p[2] == 'e' || p[2] == 'i')
}

// mark is tag for a mark that holds a port's tag in either half.
func (sh *shown) mark(b []byte) bool {
	if len(b) < 4 {
		return sh.all
	}
	m := binaryutil.NativeEndian.Uint32(b)
	if t := m & maskOut; t != 0 {
		return sh.tag(uint16(t))
	}
	return sh.tag(uint16((m & maskIn) >> 16))
}

// set reports whether the set (or map) name is shown: a port's rule
// sets with its tag, a group's member sets with a shown port naming it.
func (sh *shown) set(name string) bool {
	ok := sh.setShown(name)
	sh.hid = sh.hid || !ok
	return ok
}

func (sh *shown) setShown(name string) bool {
	if sh.all {
		return true
	}
	parts := strings.SplitN(name, "_", 3)
	switch {
	case isRulesPrefix(parts[0]) || isGroupRulesPrefix(parts[0]):
		return len(parts) >= 2 && sh.sigName(parts[1])
	}
	switch parts[0] {
	case "m4", "m6", "m4r", "m6r":
		return sh.groups[strings.TrimPrefix(name, parts[0]+"_")]
	}
	return true
}

// chain reports whether chain name is shown: a port's with its tag.
func (sh *shown) chain(name string) bool {
	ok := sh.chainShown(name)
	sh.hid = sh.hid || !ok
	return ok
}

func (sh *shown) chainShown(name string) bool {
	if sh.all {
		return true
	}
	if rest, ok := strings.CutPrefix(name, "tag_"); ok {
		return sh.tagName(rest)
	}
	for _, p := range []string{"egress_s", "ingress_s"} {
		if rest, ok := strings.CutPrefix(name, p); ok {
			return sh.sigName(rest)
		}
	}
	return true
}

// element reports whether element e of set name is shown.
func (sh *shown) element(family nftables.TableFamily, name string, e nfsock.Element) bool {
	ok := sh.elementShown(family, name, e)
	sh.hid = sh.hid || !ok
	return ok
}

func (sh *shown) elementShown(family nftables.TableFamily, name string, e nfsock.Element) bool {
	if sh.all {
		return true
	}
	ifname := func() string {
		if len(e.Key) < 16 {
			return ""
		}
		return nfsock.NameOf(e.Key[:16])
	}
	if family == nftables.TableFamilyBridge {
		return sh.port[ifname()]
	}
	switch name {
	case setEgressPorts, setIngressPorts, setStatelessTags:
		return sh.mark(e.Key)
	case setDest4, setDest4Net:
		return sh.bridge(ifname()) && sh.mark(e.Val)
	case setZones:
		return sh.bridge(ifname())
	case setStatelessMAC:
		return len(e.Key) >= 22 && sh.bridge(ifname()) && sh.macs[string(e.Key[16:22])]
	}
	return sh.setShown(name)
}

// setComments say what each of the layout's sets holds.
var setComments = map[string]string{
	setSecured:       "the ports whose frames are checked",
	setMAC:           "the MACs each port may send from",
	setIP4:           "the IPv4 addresses each port may send from",
	setNet4:          "the IPv4 prefixes each port may send from (address pairs)",
	setIP6:           "the IPv6 addresses each port may send from (with its MACs' link-local ones)",
	setNet6:          "the IPv6 prefixes each port may send from (address pairs)",
	setTagOut:        "each port's tag, put in the mark when a frame goes out to it",
	setTagIn:         "each port's tagging chain, when a frame comes in from it",
	setIPv6Off:       "the ports of networks without IPv6: their router solicitations and duplicate address detection's probes are dropped",
	setEgressPorts:   "each port's tag (as the input port) → the egress chain of its signature (the rules it shares with the ports of the same security groups)",
	setIngressPorts:  "each port's tag (as the output port) → the ingress chain of its signature",
	setDest4:         "the port the host routes an IPv4 address to, by bridge",
	setDest4Net:      "the port the host routes an IPv4 prefix to, by bridge",
	setZones:         "each bridged-only network's bridge → its conntrack zone",
	setStatelessMAC:  "the MACs of stateless ports, by bridge: left untracked",
	setStatelessTags: "the tags of stateless ports",
}

// setComment says what set name holds.
func setComment(name string) string {
	if c, ok := setComments[name]; ok {
		return c
	}
	dir := func(prefix string) string {
		if prefix[2] == 'e' {
			return "egress"
		}
		return "ingress"
	}
	parts := strings.SplitN(name, "_", 3)
	switch {
	case len(parts) == 2 && isRulesPrefix(parts[0]):
		return fmt.Sprintf("the %s rules of signature %s: protocol . port or ICMP type and code . peer", dir(parts[0]), parts[1])
	case len(parts) == 3 && isGroupRulesPrefix(parts[0]):
		return fmt.Sprintf("the %s rules of signature %s whose peer is remote group %s: protocol . port", dir(parts[0]), parts[1], parts[2])
	case len(parts) >= 2 && (parts[0] == "m4" || parts[0] == "m6"):
		return "the addresses of remote group " + strings.TrimPrefix(name, parts[0]+"_")
	case len(parts) >= 2 && (parts[0] == "m4r" || parts[0] == "m6r"):
		return "the prefixes of remote group " + strings.TrimPrefix(name, parts[0]+"_")
	}
	return ""
}

func familyName(f nftables.TableFamily) string {
	if f == nftables.TableFamilyBridge {
		return "bridge"
	}
	return "inet"
}

// chainDef is the definition of the live chain name of table tl, with
// the text of its rules, or false when it is none of the layout's. A
// port's chains are defined by the remote groups their rules look in.
func chainDef(tl tableLayout, name string, rules []*nftables.Rule) (nfsock.ChainDef, []string, bool) {
	texts := bridgeRuleText
	if tl.t.Family == nftables.TableFamilyINet {
		texts = inetRuleText
	}
	for _, def := range tl.chains {
		if def.Name == name {
			return def, texts[name], true
		}
	}
	var tag uint16
	switch _, err := fmt.Sscanf(name, "tag_%d", &tag); {
	case err == nil && tl.t.Family == nftables.TableFamilyBridge && name == tagChainName(tag):
		mask, xor := ^uint32(maskIn), uint32(tag)<<16
		return tagChain(tag), []string{fmt.Sprintf("meta mark set meta mark & 0x%08x | 0x%08x", mask|xor, xor)}, true
	case tl.t.Family == nftables.TableFamilyBridge:
		return nfsock.ChainDef{}, nil, false
	}
	var zone uint16
	if _, err := fmt.Sscanf(name, "zone_%d", &zone); err == nil && name == zoneChainName(zone) {
		return zoneChain(zone), []string{fmt.Sprintf("ct zone set %d", zone)}, true
	}
	sig, ok := SigChain(name)
	if !ok {
		return nfsock.ChainDef{}, nil, false
	}
	var groups []string
	for _, r := range rules {
		for _, e := range r.Exprs {
			if lk, ok := e.(*expr.Lookup); ok {
				if g, found := strings.CutPrefix(lk.SetName, "m4_"); found && !slices.Contains(groups, g) {
					groups = append(groups, g)
				}
			}
		}
	}
	ingress, egress := groups, []string(nil)
	if name == egressChainName(sig) {
		ingress, egress = nil, groups
	}
	for _, def := range sigChains(sig, ingress, egress) {
		if def.Name == name {
			return def, sigChainText(sig, name, groups), true
		}
	}
	return nfsock.ChainDef{}, nil, false
}

// renderTable writes table tl, as read in l.
func renderTable(b *strings.Builder, tl tableLayout, l *nfsock.Live, sh *shown) {
	family := familyName(tl.t.Family)
	fmt.Fprintf(b, "table %s %s {\n", family, TableName)
	defs := map[string]nfsock.SetDef{}
	for _, name := range sortedSetNames(tl, l) {
		if !sh.set(name) {
			continue
		}
		d, ok := setDef(tl, name)
		if !ok || !d.Matches(l.Sets[name]) {
			fmt.Fprintf(b, "\t# set %s is not nsnet's and is left out\n", name)
			continue
		}
		defs[name] = d
		kind, typ := "set", d.Key.Name
		if d.Data != nil {
			kind, typ = "map", typ+" : "+d.Data.Name
		}
		fmt.Fprintf(b, "\t%s %s {\n\t\ttype %s\n", kind, name, typ)
		switch {
		case d.Counters:
			fmt.Fprintf(b, "\t\tsize %d\n\t\tflags dynamic\n\t\tcounter\n", 1<<20)
		case d.Interval:
			b.WriteString("\t\tflags interval\n")
		}
		b.WriteString("\t}\n")
	}
	for _, name := range sortedChainNames(tl, l) {
		if !sh.chain(name) {
			continue
		}
		ch := l.Chains[name]
		def, texts, ok := chainDef(tl, name, l.Rules[name])
		if !ok || !def.Matches(ch) {
			fmt.Fprintf(b, "\t# chain %s is not nsnet's and is left out\n", name)
			continue
		}
		fmt.Fprintf(b, "\tchain %s {\n", name)
		if def.Hook != nil {
			fmt.Fprintf(b, "\t\ttype filter hook %s priority %d; policy accept;\n", nfsock.HookName(*def.Hook), *def.Priority)
		}
		for _, r := range l.Rules[name] {
			i := slices.IndexFunc(def.Rules, func(e []expr.Any) bool { return nfsock.Fingerprint(e) == nfsock.LiveFingerprint(r) })
			comment := nfsock.LiveComment(r)
			if i < 0 || i >= len(texts) || def.Comment(i) != comment {
				fmt.Fprintf(b, "\t\t# rule %d (%q) is not nsnet's layout and is left out\n", r.Handle, comment)
				continue
			}
			b.WriteString("\t\t" + texts[i])
			if comment != "" && !strings.HasPrefix(texts[i], "#") {
				fmt.Fprintf(b, " comment %q", comment)
			}
			b.WriteString("\n")
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	for _, name := range sortedSetNames(tl, l) {
		d, ok := defs[name]
		els := l.Elements[name]
		switch {
		case !ok || len(els) == 0:
			continue
		case d.Counters:
			fmt.Fprintf(b, "# %s %s: drop counters, what traffic did: left out\n", family, name)
			continue
		}
		var texts []string
		for _, e := range els {
			if sh.element(tl.t.Family, name, e) {
				texts = append(texts, elementText(d, e))
			}
		}
		if len(texts) == 0 {
			continue
		}
		slices.Sort(texts)
		if c := setComment(name); c != "" {
			fmt.Fprintf(b, "# %s: %s\n", name, c)
		}
		fmt.Fprintf(b, "add element %s %s %s {\n\t%s\n}\n", family, TableName, name, strings.Join(texts, ",\n\t"))
	}
}

// sortedSetNames are the live sets of l: the layout's first, in its
// order, then the ports' and groups' by name.
func sortedSetNames(tl tableLayout, l *nfsock.Live) []string {
	var layout []string
	for _, d := range tl.sets {
		layout = append(layout, d.Name)
	}
	return layoutFirst(layout, l.Sets)
}

// sortedChainNames are the live chains of l: the layout's first, in its
// order, then the others (tags, zones, ports) by name.
func sortedChainNames(tl tableLayout, l *nfsock.Live) []string {
	var layout []string
	for _, d := range tl.chains {
		layout = append(layout, d.Name)
	}
	return layoutFirst(layout, l.Chains)
}

// layoutFirst orders the names of live: those of layout first, in its
// order, then the others by naturalOrder.
func layoutFirst[V any](layout []string, live map[string]V) []string {
	var out, rest []string
	for _, name := range layout {
		if _, ok := live[name]; ok {
			out = append(out, name)
		}
	}
	for name := range live {
		if !slices.Contains(layout, name) {
			rest = append(rest, name)
		}
	}
	slices.SortFunc(rest, naturalOrder)
	return append(out, rest...)
}

// naturalOrder sorts names with numbers by the numbers: tag_2 before
// tag_10.
func naturalOrder(a, b string) int {
	split := func(s string) (string, int) {
		i := strings.LastIndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
		var n int
		fmt.Sscan(s[i+1:], &n)
		return s[:i+1], n
	}
	pa, na := split(a)
	pb, nb := split(b)
	return cmp.Or(cmp.Compare(pa, pb), cmp.Compare(na, nb), cmp.Compare(a, b))
}

// setDef is the definition of set name of table tl.
func setDef(tl tableLayout, name string) (nfsock.SetDef, bool) {
	for _, d := range tl.sets {
		if d.Name == name {
			return d, true
		}
	}
	if tl.t.Family != nftables.TableFamilyINet {
		return nfsock.SetDef{}, false
	}
	if d, ok := rulesSetDef(name); ok {
		return d, true
	}
	return memberSetDef(name)
}

// elementText is element e of a set d defines, in nft syntax.
func elementText(d nfsock.SetDef, e nfsock.Element) string {
	fields := nftables.ConcatSetTypeElements(d.Key)
	concat := len(fields) > 1
	var parts []string
	off := 0
	for _, f := range fields {
		n := int(f.Bytes)
		width := n
		if concat {
			width = (n + 3) &^ 3
		}
		lo := fieldText(f, slice(e.Key, off, n), d.Interval)
		if e.KeyEnd != nil {
			if hi := fieldText(f, slice(e.KeyEnd, off, n), d.Interval); hi != lo {
				lo += "-" + hi
			}
		}
		parts = append(parts, lo)
		off += width
	}
	s := strings.Join(parts, " . ")
	switch {
	case e.Chain != "":
		verdict := "jump"
		if e.GoTo {
			verdict = "goto"
		}
		s += " : " + verdict + " " + e.Chain
	case d.Data != nil:
		s += " : " + fieldText(*d.Data, e.Val, false)
	}
	return s
}

func slice(b []byte, off, n int) []byte {
	if off+n > len(b) {
		return make([]byte, n)
	}
	return b[off : off+n]
}

// fieldText is one field of a key or value, in nft syntax; interval
// says it is a key of an interval set.
func fieldText(t nftables.SetDatatype, b []byte, interval bool) string {
	switch t.Name {
	case nftables.TypeIFName.Name:
		return fmt.Sprintf("%q", nfsock.NameOf(b))
	case nftables.TypeEtherAddr.Name:
		return net.HardwareAddr(b).String()
	case nftables.TypeIPAddr.Name, nftables.TypeIP6Addr.Name:
		a, _ := netip.AddrFromSlice(b)
		return a.String()
	case nftables.TypeMark.Name:
		// The number whose bytes, as nft(8) stores it, are the
		// kernel's: a mark is in host order, which nft turns big
		// endian in the key of an interval set (its ranges compare
		// bytes). `nft list` of nsnet's own sets shows other numbers:
		// google/nftables tells nft every key is big endian.
		if interval {
			return fmt.Sprintf("0x%08x", binaryutil.BigEndian.Uint32(b))
		}
		return fmt.Sprintf("0x%08x", binaryutil.NativeEndian.Uint32(b))
	case nftables.TypeInetProto.Name:
		return fmt.Sprint(b[0])
	case nftables.TypeInetService.Name:
		return fmt.Sprint(binaryutil.BigEndian.Uint16(b))
	}
	return fmt.Sprintf("0x%x", b)
}
