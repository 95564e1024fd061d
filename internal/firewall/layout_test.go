package firewall

import (
	"reflect"
	"strings"
	"testing"

	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"

	"github.com/nsnet/nsnet/internal/model"
)

// TestDropRulesNamed: every rule of the bridge table that counts and
// drops carries a comment starting with the name of the counter it adds
// to, as the API shows it in nsnet:firewall_drops — the comment is what
// nsnet trace prints for the rule a probe died at.
func TestDropRulesNamed(t *testing.T) {
	apiName := map[string]string{} // Counters field → JSON name
	ct := reflect.TypeOf(model.PortFirewallCounters{})
	for i := range ct.NumField() {
		apiName[ct.Field(i).Name] = strings.Split(ct.Field(i).Tag.Get("json"), ",")[0]
	}
	counted := 0
	for _, c := range bridgeChains {
		for i, rule := range c.Rules {
			reason, ok := dropReason(rule)
			if !ok {
				continue
			}
			counted++
			var cs Counters
			cs.add(reason, 1)
			field := ""
			v := reflect.ValueOf(cs)
			for f := range v.NumField() {
				if v.Field(f).Uint() == 1 {
					field = v.Type().Field(f).Name
				}
			}
			name := apiName[field]
			if name == "" {
				t.Errorf("chain %s rule %d: reason %d counts into %q, which the API does not show", c.Name, i, reason, field)
				continue
			}
			if got := c.Comment(i); !strings.HasPrefix(got, name+": ") {
				t.Errorf("chain %s rule %d: comment %q, want it to start with %q", c.Name, i, got, name+": ")
			}
		}
	}
	if counted < 8 {
		t.Errorf("found %d counting drop rules in the bridge table; the walk misses some", counted)
	}
}

// dropReason is the reason a rule counts in @drops, if it does.
func dropReason(rule []expr.Any) (uint32, bool) {
	for i, e := range rule {
		ds, ok := e.(*expr.Dynset)
		if !ok || ds.SetName != setDrops || i == 0 {
			continue
		}
		if imm, ok := rule[i-1].(*expr.Immediate); ok && len(imm.Data) == 4 {
			return binaryutil.NativeEndian.Uint32(imm.Data), true
		}
	}
	return 0, false
}
