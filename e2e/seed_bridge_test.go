package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/lab"
)

// TestSeedBridge reproduces seed 002 (linux namespaces on one bridge),
// challenges 1–3, with nsnet apply instead of the seed's ip commands.
func TestSeedBridge(t *testing.T) {
	e := Start(t)
	e.MustNsnet("apply", "-f", "../examples/seed-bridge.yaml")

	// Challenge 1: ip netns add red / green / blue.
	for _, name := range []string{"red", "green", "blue"} {
		out, err := e.In(name, "ip", "-o", "link", "show", "lo")
		if err != nil || !strings.Contains(out, "UP") {
			t.Errorf("instance %s: namespace %s with lo up: %v\n%s", name, e.Netns(name), err, out)
		}
	}

	// Challenge 2: a bridge, and a veth "cable" from it into each namespace.
	bridges := bridgePorts(t, e.HostNetns)
	if len(bridges) != 1 {
		t.Fatalf("want one bridge in the host namespace, got %v", bridges)
	}
	for br, ports := range bridges {
		if !strings.HasPrefix(br, "nsb-") || len(ports) != 3 {
			t.Errorf("bridge %s has ports %v, want three tap… ports", br, ports)
		}
	}

	// Challenge 3: addresses on the cables; red pings green and then
	// holds green's MAC in its neighbour table.
	if out, err := e.In("red", "ping", "-c", "2", "-W", "2", "192.168.24.11"); err != nil {
		t.Fatalf("red cannot ping green: %v\n%s", err, out)
	}
	greenMAC := portMAC(t, e, "green-eth0")
	neigh, _ := e.In("red", "ip", "neigh", "show", "192.168.24.11")
	if !strings.Contains(neigh, greenMAC) {
		t.Errorf("red's neighbour table should hold green's MAC %s:\n%s", greenMAC, neigh)
	}
	if out, err := e.In("blue", "ping", "-c", "1", "-W", "2", "192.168.24.10"); err != nil {
		t.Errorf("blue cannot ping red: %v\n%s", err, out)
	}

	// Applying again changes nothing, in the store or the kernel.
	before := linkIndexes(t, e.HostNetns)
	out := e.MustNsnet("apply", "-f", "../examples/seed-bridge.yaml")
	if strings.Contains(out, "created") || strings.Contains(out, "updated") {
		t.Errorf("second apply changed something:\n%s", out)
	}
	if after := linkIndexes(t, e.HostNetns); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("second apply recreated links: %v -> %v", before, after)
	}

	// destroy removes exactly what apply made.
	e.MustNsnet("destroy", "-f", "../examples/seed-bridge.yaml")
	eventually(t, 10*time.Second, "destroy empties the host", func() error {
		if links := linksIn(e.HostNetns); len(links) > 0 {
			return fmt.Errorf("links left: %v", links)
		}
		if ns := lab.Namespaces(e.Prefix); len(ns) != 1 {
			return fmt.Errorf("namespaces left: %v", ns)
		}
		return nil
	})
}

// bridgePorts maps each bridge of a namespace to its ports.
func bridgePorts(t *testing.T, ns string) map[string][]string {
	t.Helper()
	var links []struct {
		IfName   string `json:"ifname"`
		Master   string `json:"master"`
		LinkInfo struct {
			InfoKind string `json:"info_kind"`
		} `json:"linkinfo"`
	}
	out, err := runOut("ip", "-n", ns, "-j", "-d", "link", "show")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil {
		t.Fatal(err)
	}
	m := map[string][]string{}
	for _, l := range links {
		if l.LinkInfo.InfoKind == "bridge" {
			m[l.IfName] = m[l.IfName]
		}
	}
	for _, l := range links {
		if l.Master != "" {
			m[l.Master] = append(m[l.Master], l.IfName)
		}
	}
	return m
}

// linkIndexes maps each link of a namespace to its ifindex: recreated
// links get new ones.
func linkIndexes(t *testing.T, ns string) map[string]int {
	t.Helper()
	var links []struct {
		IfIndex int    `json:"ifindex"`
		IfName  string `json:"ifname"`
	}
	out, err := runOut("ip", "-n", ns, "-j", "link", "show")
	if err != nil {
		t.Fatal(err)
	}
	json.Unmarshal([]byte(out), &links)
	m := map[string]int{}
	for _, l := range links {
		m[l.IfName] = l.IfIndex
	}
	return m
}

func portMAC(t *testing.T, e *Env, port string) string {
	t.Helper()
	var p map[string]any
	if err := json.Unmarshal([]byte(e.MustNsnet("port", "show", port, "-o", "json")), &p); err != nil {
		t.Fatal(err)
	}
	return p["mac_address"].(string)
}
