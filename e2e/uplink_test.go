package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestUplinkAttachment: an external network is connected upstream by naming
// a host interface (nsnet:uplink). nsnet plugs it into the network's bridge
// when it exists, says why not while it does not, moves and releases it on
// change, never deletes it, and never touches an interface someone else
// put into the bridge, not even in the full pass of a restarted daemon.
func TestUplinkAttachment(t *testing.T) {
	e := Start(t)
	host := e.HostNetns
	t.Cleanup(func() {
		for _, l := range []string{"upl0", "upl1", "foreign"} {
			exec.Command("ip", "-n", host, "link", "delete", l).Run()
		}
	})
	// The CLI warns that the network is not programmed: read the answer
	// from the API.
	code, body := e.API("POST", "/v2.0/networks", map[string]any{"network": map[string]any{
		"name": "public", "router:external": true, "nsnet:uplink": "upl0"}})
	public, _ := body["network"].(map[string]any)
	if code != 201 || public == nil {
		t.Fatalf("create network: %d %v", code, body)
	}
	bridge := "nsb-" + public["id"].(string)[:11]

	// Not there yet: the network says so, its bridge is built anyway.
	if public["status"] != "ERROR" || !strings.Contains(fmt.Sprint(public["nsnet:status_reason"]), "uplink upl0 does not exist") {
		t.Errorf("network with a missing uplink: status %v, reason %v", public["status"], public["nsnet:status_reason"])
	}
	if _, err := runOut("ip", "-n", host, "link", "show", bridge); err != nil {
		t.Errorf("bridge %s not built while the uplink is missing", bridge)
	}

	// It appears: the agent plugs it in on its next try, and sets it up.
	run(t, "ip", "-n", host, "link", "add", "upl0", "type", "veth", "peer", "name", "upl1")
	run(t, "ip", "-n", host, "link", "add", "foreign", "type", "veth", "peer", "name", "foreign-p")
	eventually(t, 10*time.Second, "upl0 attached", func() error {
		if m := masterOf(host, "upl0"); m != bridge {
			return fmt.Errorf("upl0 master %q", m)
		}
		return statusIs(e, "public", "ACTIVE")
	})
	if out, _ := runOut("ip", "-n", host, "-o", "link", "show", "upl0"); !strings.Contains(out, ",UP") {
		t.Errorf("upl0 not set up: %s", out)
	}

	// Someone plugs their own interface into the bridge; a restarted
	// daemon's full pass leaves it there.
	run(t, "ip", "-n", host, "link", "set", "foreign", "master", bridge)
	e.Restart()
	e.MustNsnet("network", "show", "public") // answered once the first pass is done
	if m := masterOf(host, "foreign"); m != bridge {
		t.Errorf("full pass released an interface nsnet did not attach: foreign master %q", m)
	}

	// Moving the uplink releases the old one, which stays.
	e.MustNsnet("network", "set", "public", "--uplink", "upl1")
	if m0, m1 := masterOf(host, "upl0"), masterOf(host, "upl1"); m0 != "" || m1 != bridge {
		t.Errorf("after moving the uplink: upl0 master %q (want none), upl1 master %q (want %s)", m0, m1, bridge)
	}
	// Unsetting it releases it; nothing else is touched.
	e.MustNsnet("network", "set", "public", "--no-uplink")
	if m := masterOf(host, "upl1"); m != "" {
		t.Errorf("released uplink upl1 still has master %q", m)
	}
	for _, l := range []string{"upl0", "upl1", "foreign"} {
		if _, err := runOut("ip", "-n", host, "link", "show", l); err != nil {
			t.Errorf("%s was deleted: nsnet must never delete an uplink", l)
		}
	}
	if m := masterOf(host, "foreign"); m != bridge {
		t.Errorf("foreign master %q, want %s: not nsnet's to release", m, bridge)
	}
	run(t, "ip", "-n", host, "link", "set", "foreign", "nomaster")
}

// masterOf is the name of the master of link in netns, "" if none.
func masterOf(netns, link string) string {
	out, _ := runOut("ip", "-n", netns, "-o", "link", "show", link)
	f := strings.Fields(out)
	for i := range f {
		if f[i] == "master" && i+1 < len(f) {
			return f[i+1]
		}
	}
	return ""
}

// statusIs checks the status of network name.
func statusIs(e *Env, name, want string) error {
	out, err := e.Nsnet("network", "show", name, "-o", "json")
	if err != nil {
		return err
	}
	if !strings.Contains(out, `"status": "`+want+`"`) {
		return fmt.Errorf("network %s is not %s:\n%s", name, want, out)
	}
	return nil
}
