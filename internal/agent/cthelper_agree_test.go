package agent

import (
	"slices"
	"strings"
	"testing"

	"github.com/nsnet/nsnet/internal/nat"
	"github.com/nsnet/nsnet/internal/service"
)

// TestConntrackHelpersAgree: the API accepts exactly the helpers the
// router tables offer. The service may not import the kernel's package,
// so the list is written twice; here, where both meet, they must agree,
// or a helper the API accepted would leave its router in ERROR.
func TestConntrackHelpersAgree(t *testing.T) {
	type pair struct{ name, proto string }
	var api, kernel []pair
	for name, protos := range service.AllowedConntrackHelpers {
		for _, p := range protos {
			api = append(api, pair{name, p})
		}
	}
	for _, k := range nat.HelperKinds {
		kernel = append(kernel, pair{k.Name, k.Protocol.String()})
	}
	cmp := func(a, b pair) int {
		if a.name != b.name {
			return strings.Compare(a.name, b.name)
		}
		return strings.Compare(a.proto, b.proto)
	}
	slices.SortFunc(api, cmp)
	slices.SortFunc(kernel, cmp)
	if !slices.Equal(api, kernel) {
		t.Errorf("the API allows %v; the router tables offer %v", api, kernel)
	}
}
