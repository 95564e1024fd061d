package cli

import (
	"fmt"
	"slices"
	"strings"
)

// parseKV parses an option value of the OpenStack CLI's key=value,… form
// (--allocation-pool start=10.0.0.2,end=10.0.0.9). Only keys in allowed
// are accepted, each at most once; required ones must be present.
func parseKV(flag, value string, allowed, required []string) (map[string]string, error) {
	out := map[string]string{}
	for _, part := range strings.Split(value, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--%s %q: want %s", flag, value, kvSyntax(allowed))
		}
		if !slices.Contains(allowed, k) {
			return nil, fmt.Errorf("--%s %q: unknown key %q; want %s", flag, value, k, kvSyntax(allowed))
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("--%s %q: key %q given twice", flag, value, k)
		}
		out[k] = v
	}
	for _, k := range required {
		if out[k] == "" {
			return nil, fmt.Errorf("--%s %q: missing %s=; want %s", flag, value, k, kvSyntax(allowed))
		}
	}
	return out, nil
}

func kvSyntax(keys []string) string {
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=…"
	}
	return strings.Join(parts, ",")
}
