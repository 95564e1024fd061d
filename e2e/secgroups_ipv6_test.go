package e2e

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"testing"
	"time"
)

// TestSecurityGroupsIPv6 walks security groups over IPv6 through the API
// and the CLI, on an IPv6 subnet: the default group lets its members
// reach each other; an empty group stops TCP and ICMPv6 until IPv6 rules
// (a remote prefix, ICMPv6 echo by type, ICMP named by its legacy name)
// admit them, neighbour discovery passing all along; and frames an
// instance forges — a spoofed IPv6 source, a neighbour advertisement for
// another's address, a router advertisement, a DHCPv6 server reply — are
// dropped and counted in the port's nsnet:firewall_drops, while the
// honest frame sent beside each arrives.
func TestSecurityGroupsIPv6(t *testing.T) {
	s := sgEnv{Start(t), t}
	s.MustNsnet("network", "create", "net")
	s.MustNsnet("subnet", "create", "net-v6", "--network", "net", "--subnet-range", "2001:db8:1::/64", "--no-dhcp")
	ports := map[string]map[string]any{}
	for _, vm := range []string{"vm1", "vm2", "vm3"} {
		s.MustNsnet("instance", "create", vm)
		ports[vm] = jsonOf(t, s.MustNsnet("port", "create", vm+"-eth0", "--network", "net", "--device", vm, "-o", "json"))
	}
	ip1, ip2, ip3 := fixedIP(ports["vm1"]), fixedIP(ports["vm2"]), fixedIP(ports["vm3"])

	// Members of the default group reach each other over IPv6.
	// What must pass is tried three times, as a client would: a new
	// port's first neighbour solicitation may go before its link is up.
	thrice := func(check func() bool) bool { return check() || check() || check() }
	listen6(s, "vm2", 8000)
	if !thrice(func() bool { return s.ping("vm1", ip2) }) || !thrice(func() bool { return s.tcp("vm1", ip2, 8000) }) {
		t.Fatal("default group: vm1 cannot reach vm2 over IPv6")
	}
	// vm3 in an empty group: nothing reaches it.
	s.group("web")
	s.MustNsnet("port", "set", "vm3-eth0", "--no-security-group", "--security-group", "web")
	listen6(s, "vm3", 8000)
	if s.ping("vm1", ip3) || s.tcp("vm1", ip3, 8000) {
		t.Error("a default-group member reached vm3, whose group allows no ingress")
	}
	s.counted("vm3", 0, "ingress_denied")
	// Neighbour discovery passed though: vm1 knows vm3's MAC.
	if out, _ := s.In("vm1", "ip", "-6", "neigh", "show", ip3); !bytes.Contains([]byte(out), []byte(ports["vm3"]["mac_address"].(string))) {
		t.Errorf("vm1 did not resolve vm3's address: %q", out)
	}
	// TCP from vm2's address only; ICMPv6 echo by type, with ICMP's
	// legacy name.
	s.rule("web", "--ethertype", "IPv6", "--protocol", "tcp", "--dst-port", "8000", "--remote-ip", ip2+"/128")
	if !thrice(func() bool { return s.tcp("vm2", ip3, 8000) }) {
		t.Error("TCP 8000 from vm2's address is blocked")
	}
	if s.tcp("vm1", ip3, 8000) {
		t.Error("TCP 8000 from vm1, outside the rule's prefix, opened")
	}
	s.rule("web", "--ethertype", "IPv6", "--protocol", "icmp", "--icmp-type", "128")
	if !thrice(func() bool { return s.ping("vm1", ip3) }) {
		t.Error("an IPv6 rule for ICMP echo requests: vm1 cannot ping vm3")
	}

	mac1, mac2 := ports["vm1"]["mac_address"].(string), ports["vm2"]["mac_address"].(string)
	const foreignIP = "2001:db8:1::dead"
	lla2 := eui64(t, mac2)
	allNodes, allNodesMAC := "ff02::1", "33:33:00:00:00:01"
	udp := func(sport, dport uint16, payload string) []byte {
		b := binary.BigEndian.AppendUint16(nil, sport)
		b = binary.BigEndian.AppendUint16(b, dport)
		b = binary.BigEndian.AppendUint16(b, uint16(8+len(payload)))
		return append(append(b, 0, 0), payload...)
	}
	// A neighbour discovery message with an option receivers ignore
	// (type 253, for experiments) carrying a 6-byte marker.
	nd := func(typ byte, body []byte, marker string) []byte {
		return append(append([]byte{typ, 0, 0, 0}, body...), append([]byte{253, 1}, marker...)...)
	}
	na := func(target string) []byte {
		return append([]byte{0x60, 0, 0, 0}, parseAddr(t, target)...) // solicited, override
	}
	ra := append([]byte{64, 0, 0x07, 0x08}, make([]byte, 8)...)
	cases := []struct {
		name, counter string
		honest        string
		forged        string
		honestMarker  string
		forgedMarker  string
	}{
		{"foreign IPv6 source", "spoofed_ip",
			ipv6Frame(t, mac1, mac2, ip2, ip1, 17, udp(4000, 4000, "honest-ip6")),
			ipv6Frame(t, mac1, mac2, foreignIP, ip1, 17, udp(4000, 4000, "forged-ip6")),
			hex.EncodeToString([]byte("honest-ip6")), hex.EncodeToString([]byte("forged-ip6"))},
		{"neighbour advertisement for vm1's address", "spoofed_nd",
			ipv6Frame(t, mac1, mac2, ip2, ip1, 58, nd(136, na(ip2), "hon-na")),
			ipv6Frame(t, mac1, mac2, ip2, ip1, 58, nd(136, na(ip1), "for-na")),
			hex.EncodeToString([]byte("hon-na")), hex.EncodeToString([]byte("for-na"))},
		{"router advertisement", "router_advertisement",
			ipv6Frame(t, mac1, mac2, ip2, ip1, 17, udp(4000, 4000, "honest-ra")),
			ipv6Frame(t, allNodesMAC, mac2, lla2, allNodes, 58, nd(134, ra, "for-ra")),
			hex.EncodeToString([]byte("honest-ra")), hex.EncodeToString([]byte("for-ra"))},
		{"DHCPv6 server reply", "dhcp_server",
			ipv6Frame(t, mac1, mac2, ip2, ip1, 17, udp(5470, 546, "honest-dhcp6")),
			ipv6Frame(t, mac1, mac2, ip2, ip1, 17, udp(547, 546, "forged-dhcp6")),
			hex.EncodeToString([]byte("honest-dhcp6")), hex.EncodeToString([]byte("forged-dhcp6"))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := s.drops("vm2")[tc.counter].(float64)
			capture := exec.Command("ip", "netns", "exec", s.Netns("vm1"), "python3", "-c", rawFrames,
				"capture", "eth0", "3", tc.honestMarker, tc.forgedMarker)
			stdout, _ := capture.StdoutPipe()
			if err := capture.Start(); err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(stdout)
			if !sc.Scan() || sc.Text() != "ready" {
				t.Fatal("capture did not start")
			}
			if out, err := s.In("vm2", "python3", "-c", rawFrames, "send", "eth0", tc.forged, tc.honest); err != nil {
				t.Fatalf("send: %v\n%s", err, out)
			}
			var seen []string
			for sc.Scan() {
				seen = append(seen, sc.Text())
			}
			capture.Wait()
			if !slices.Contains(seen, tc.honestMarker) {
				t.Errorf("the honest frame did not arrive (seen %v)", seen)
			}
			if slices.Contains(seen, tc.forgedMarker) {
				t.Error("the forged frame arrived")
			}
			s.counted("vm2", before, tc.counter)
		})
	}
}

// listen6 serves HTTP on port of vm's IPv6 addresses (and IPv4 ones).
func listen6(s sgEnv, vm string, port int) {
	s.t.Helper()
	cmd := exec.Command("ip", "netns", "exec", s.Netns(vm), "python3", "-m", "http.server", "--bind", "::", fmt.Sprint(port))
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	eventually(s.t, 10*time.Second, vm+" listens", func() error {
		return exec.Command("ip", "netns", "exec", s.Netns(vm), "bash", "-c", fmt.Sprintf("echo > /dev/tcp/::1/%d", port)).Run()
	})
}

func parseAddr(t *testing.T, s string) []byte {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a.AsSlice()
}

// eui64 is the link-local address an interface with mac configures.
func eui64(t *testing.T, mac string) string {
	m := macBytes(t, mac)
	a := [16]byte{0: 0xfe, 1: 0x80, 8: m[0] ^ 2, 9: m[1], 10: m[2], 11: 0xff, 12: 0xfe, 13: m[3], 14: m[4], 15: m[5]}
	return netip.AddrFrom16(a).String()
}

// ipv6Frame is an Ethernet frame carrying an IPv6 packet of proto (17 or
// 58) whose payload's checksum it fills in, hex-encoded for rawFrames.
func ipv6Frame(t *testing.T, dstMAC, srcMAC, src, dst string, proto byte, payload []byte) string {
	p := bytes.Clone(payload)
	s, d := parseAddr(t, src), parseAddr(t, dst)
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(s)
	add(d)
	add(binary.BigEndian.AppendUint32(nil, uint32(len(p))))
	add([]byte{0, 0, 0, proto})
	add(p)
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	at := 2 // ICMPv6
	if proto == 17 {
		at = 6
	}
	binary.BigEndian.PutUint16(p[at:], ^uint16(sum))
	b := append(macBytes(t, dstMAC), macBytes(t, srcMAC)...)
	b = append(b, 0x86, 0xdd, 0x60, 0, 0, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(len(p)))
	b = append(b, proto, 255)
	b = append(append(append(b, s...), d...), p...)
	return hex.EncodeToString(b)
}
