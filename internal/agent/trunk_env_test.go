package agent

import (
	"encoding/json"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// TestAgentTrunk wires a trunk as Linux bridge does and sends traffic
// through it: red's parent port is on net1, its subport (VLAN 100) on
// net2, where blue is. Red tags its subport traffic on eth0 (an
// eth0.100 VLAN link with the subport's MAC and address, as a guest
// configures it from trunk_details) and reaches blue. The subport's two
// ends in the host namespace, like the parent's tap, have IPv6 off. The subport's
// security groups filter it on its VLAN device; a restart changes
// nothing; removing the subport and deleting the trunk remove the VLAN
// device.
func TestAgentTrunk(t *testing.T) {
	e := newEnv(t, 100*time.Millisecond)
	const net2, subnet2 = "7a3c9e10-2b4d-4e6f-8a11-000000000002", "5b2a0c11-0000-4000-8000-000000000003"
	n2 := model.Network{ID: net2, Name: "net2", AdminStateUp: true, MTU: 1500, Subnets: []string{subnet2}}
	s2 := model.Subnet{ID: subnet2, NetworkID: net2, IPVersion: 4, CIDR: "10.8.0.0/24"}
	parent := testPort("red", "eth0", "10.9.0.11", "fa:16:3e:00:00:11")
	blue := testPort("blue", "eth0", "10.8.0.12", "fa:16:3e:00:00:12")
	blue.NetworkID, blue.FixedIPs = net2, []model.FixedIP{{SubnetID: subnet2, IPAddress: "10.8.0.12"}}
	sub := model.Port{ID: "port-red-sub", NetworkID: net2, AdminStateUp: true, MACAddress: "fa:16:3e:00:00:21",
		FixedIPs: []model.FixedIP{{SubnetID: subnet2, IPAddress: "10.8.0.11"}}, DeviceOwner: model.DeviceOwnerTrunkSubport}
	trunk := model.Trunk{ID: "trunk-red", PortID: parent.ID, AdminStateUp: true,
		SubPorts: []model.SubPort{{PortID: sub.ID, SegmentationType: "vlan", SegmentationID: 100}}}
	e.converge(e.put(testNetwork(), testSubnet(), n2, s2, testInstance("red"), testInstance("blue"), parent, blue, sub, trunk))
	e.wantStatus(store.Trunks, trunk.ID, model.TrunkStatusActive)

	vlan := model.SubportName(sub.ID)
	if l := e.ip("-n", e.hostNetns, "link", "show", vlan); !strings.Contains(l, vlan+"@"+model.SubportPeerName(sub.ID)) ||
		!strings.Contains(l, "master "+model.BridgeName(net2)) || !strings.Contains(l, ",UP") {
		t.Fatalf("subport's interface:\n%s", l)
	}
	if out, err := exec.Command("tc", "-n", e.hostNetns, "filter", "show", "dev", model.TapName(parent.ID), "ingress").CombinedOutput(); err != nil ||
		!strings.Contains(string(out), "nsnet:subport:"+sub.ID+":100:") {
		t.Fatalf("parent's tap filters: %v\n%s", err, out)
	}
	red := e.ns("red")
	subMAC, _ := net.ParseMAC(sub.MACAddress)
	subIP, blueIP, spoofed := netip.MustParseAddr("10.8.0.11"), netip.MustParseAddr("10.8.0.12"), netip.MustParseAddr("10.8.0.99")
	if mac, err := vlanARP(red, "eth0", 100, subMAC, subIP, blueIP); err != nil || mac.String() != blue.MACAddress {
		t.Fatalf("red's subport asks for blue: %v %v", mac, err)
	}
	// Without port security, the subport may send from any address.
	if _, err := vlanARP(red, "eth0", 100, subMAC, spoofed, blueIP); err != nil {
		t.Fatal(err)
	}
	// Another VLAN id is no subport's: nothing answers.
	if _, err := vlanARP(red, "eth0", 101, subMAC, subIP, blueIP); err == nil {
		t.Fatal("VLAN 101, which no subport has, reaches blue")
	}
	// The host namespace's ends, never addressed, have no IPv6.
	for _, name := range []string{vlan, model.SubportPeerName(sub.ID), model.TapName(parent.ID)} {
		off, err := exec.Command("ip", "netns", "exec", e.hostNetns, "cat", "/proc/sys/net/ipv6/conf/"+name+"/disable_ipv6").Output()
		if err != nil || strings.TrimSpace(string(off)) != "1" {
			t.Errorf("%s: disable_ipv6 %q (%v), want 1", name, off, err)
		}
		if a := e.ip("-6", "-n", e.hostNetns, "addr", "show", "dev", name); strings.TrimSpace(a) != "" {
			t.Errorf("%s has IPv6 addresses:\n%s", name, a)
		}
		// One queue each way, as a port's pair (dataplane's
		// TestPairHasOneQueueEachWay says why).
		var links []struct {
			TxQueues int `json:"num_tx_queues"`
			RxQueues int `json:"num_rx_queues"`
		}
		if err := json.Unmarshal([]byte(e.ip("-n", e.hostNetns, "-d", "-j", "link", "show", "dev", name)), &links); err != nil || len(links) != 1 {
			t.Fatalf("%s: %v (%d links)", name, err, len(links))
		}
		if l := links[0]; l.TxQueues != 1 || l.RxQueues != 1 {
			t.Errorf("%s: %d transmit and %d receive queues, want 1 and 1", name, l.TxQueues, l.RxQueues)
		}
	}

	// A restart touches nothing.
	before := e.ifindex(e.hostNetns, vlan)
	changes := e.agent.Health().Changes
	e.stop()
	e.start()
	e.waitFullPasses(1)
	if after := e.ifindex(e.hostNetns, vlan); after != before {
		t.Fatalf("VLAN device recreated by a restart: %s → %s", before, after)
	}
	if e.agent.Health().Changes != 0 {
		t.Fatalf("restarted agent made %d changes (before the restart: %d)", e.agent.Health().Changes, changes)
	}

	// The subport's port security filters it on its interface: it may
	// send from its own address only.
	group := model.SecurityGroup{ID: "sg-sub", Name: "sub", Stateful: true}
	egress := model.SecurityGroupRule{ID: "rule-sub-egress", SecurityGroupID: group.ID, Direction: model.DirectionEgress, EtherType: model.EtherTypeIPv4}
	secured := sub
	secured.PortSecurityEnabled, secured.SecurityGroups = true, []string{group.ID}
	e.converge(e.put(group, egress, secured))
	if _, err := vlanARP(red, "eth0", 100, subMAC, subIP, blueIP); err != nil {
		t.Fatal(err)
	}
	if _, err := vlanARP(red, "eth0", 100, subMAC, spoofed, blueIP); err == nil {
		t.Fatal("red's subport sends from an address that is not its own")
	}

	// Removing the subport removes its VLAN device; so does deleting the
	// trunk.
	bare := trunk
	bare.SubPorts = nil
	e.converge(e.put(bare))
	if l := strings.Join(linksIn(e.hostNetns), " "); strings.Contains(l, vlan) || strings.Contains(l, model.SubportPeerName(sub.ID)) {
		t.Fatalf("veth of a removed subport remains: %s", l)
	}
	if out, _ := exec.Command("tc", "-n", e.hostNetns, "filter", "show", "dev", model.TapName(parent.ID), "ingress").CombinedOutput(); strings.Contains(string(out), "nsnet:subport") {
		t.Fatalf("filter of a removed subport remains on the parent's tap:\n%s", out)
	}
	if _, err := vlanARP(red, "eth0", 100, subMAC, subIP, blueIP); err == nil {
		t.Fatal("a removed subport still reaches blue")
	}
	e.converge(e.put(trunk))
	e.wantStatus(store.Trunks, trunk.ID, model.TrunkStatusActive)
	e.converge(e.del(trunk))
	if l := strings.Join(linksIn(e.hostNetns), " "); strings.Contains(l, vlan) {
		t.Fatalf("veth of a deleted trunk's subport remains: %s", l)
	}

	// A trunk deleted while the agent is down: the next agent's full pass
	// removes its subport's veth and the filter on the parent's tap.
	e.converge(e.put(trunk))
	e.wantStatus(store.Trunks, trunk.ID, model.TrunkStatusActive)
	e.stop()
	e.del(trunk)
	e.start()
	e.waitFullPasses(1)
	if l := strings.Join(linksIn(e.hostNetns), " "); strings.Contains(l, vlan) || strings.Contains(l, model.SubportPeerName(sub.ID)) {
		t.Fatalf("veth of a trunk deleted while the agent was down remains: %s", l)
	}
	if out, _ := exec.Command("tc", "-n", e.hostNetns, "filter", "show", "dev", model.TapName(parent.ID), "ingress").CombinedOutput(); strings.Contains(string(out), "nsnet:subport") {
		t.Fatalf("filter of a trunk deleted while the agent was down remains:\n%s", out)
	}
}
