package capture

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/netns"
)

// TestDecodeKernelIPv6 decodes what a real kernel sends: the multicast
// listener reports behind a hop-by-hop header when a link comes up,
// duplicate address detection and neighbour discovery, a UDP datagram and
// the ICMPv6 port unreachable that answers it.
func TestDecodeKernelIPv6(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	prefix := fmt.Sprintf("nscp%d-", os.Getpid())
	a, b := prefix+"a", prefix+"b"
	for _, n := range []string{a, b} {
		if err := netns.Create(n); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := netns.Delete(n); err != nil {
				t.Error(err)
			}
		})
	}
	ip := func(argv ...string) {
		t.Helper()
		if out, err := exec.Command("ip", argv...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(argv, " "), err, out)
		}
	}
	ip("-n", a, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", b)
	sock, err := Open(a, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	ip("-n", a, "addr", "add", "2001:db8::1/64", "dev", "eth0", "nodad")
	ip("-n", b, "addr", "add", "2001:db8::2/64", "dev", "eth0", "nodad")
	ip("-n", a, "link", "set", "eth0", "up")
	ip("-n", b, "link", "set", "eth0", "up")

	var conn net.Conn
	if err := netns.DoNamed(a, func() (err error) {
		conn, err = net.Dial("udp6", "[2001:db8::2]:9")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	want := map[string]func(*Packet) bool{
		"MLDv2 report behind hop-by-hop": func(p *Packet) bool {
			return p.IsIPv6() && p.Proto == ProtoICMPv6 && p.ICMPType == 143 && len(p.ExtHeaders) == 1 && p.ExtHeaders[0] == ext6HopByHop
		},
		"neighbour solicitation for 2001:db8::2": func(p *Packet) bool {
			return strings.Contains(p.Summary(), "neighbor solicitation, who has 2001:db8::2")
		},
		"neighbour advertisement of 2001:db8::2": func(p *Packet) bool {
			return strings.Contains(p.Summary(), "neighbor advertisement, tgt is 2001:db8::2, flags [S") && p.ND.TargetLLA != nil
		},
		"the datagram": func(p *Packet) bool {
			return p.IsIPv6() && p.Proto == ProtoUDP && p.DstPort == 9 && string(p.Payload) == "hello"
		},
		"port unreachable quoting it": func(p *Packet) bool {
			return p.UnreachableKind() == "no listener" && p.Quoted != nil && p.Quoted.DstPort == 9
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var seen []string
	for len(want) > 0 {
		// Resend until answered: the first datagram may wait for
		// neighbour discovery.
		conn.Write([]byte("hello"))
		rctx, rcancel := context.WithTimeout(ctx, 300*time.Millisecond)
		for {
			f, err := sock.Read(rctx)
			if err != nil {
				break
			}
			p := Decode(f.Data)
			seen = append(seen, p.Summary())
			for name, match := range want {
				if match(p) {
					delete(want, name)
				}
			}
		}
		rcancel()
		if ctx.Err() != nil {
			break
		}
	}
	for name := range want {
		t.Errorf("never decoded: %s; saw:\n%s", name, strings.Join(seen, "\n"))
	}
}

// TestReadAfterContextEnds: a Read that its context ended leaves the
// socket readable for the next one.
func TestReadAfterContextEnds(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	name := fmt.Sprintf("nscp%d-lo", os.Getpid())
	if err := netns.Create(name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := netns.Delete(name); err != nil {
			t.Error(err)
		}
	})
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	sock, err := Open(name, "lo")
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := sock.Read(ended); err != context.Canceled {
		t.Fatalf("Read with an ended context: %v", err)
	}
	var conn net.Conn
	if err := netns.DoNamed(name, func() (err error) {
		conn, err = net.Dial("udp4", "127.0.0.1:9")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	for {
		conn.Write([]byte("again"))
		f, err := sock.Read(ctx)
		if err != nil {
			t.Fatalf("Read after an ended one: %v", err)
		}
		if p := Decode(f.Data); p.Proto == ProtoUDP && string(p.Payload) == "again" {
			return
		}
	}
}
