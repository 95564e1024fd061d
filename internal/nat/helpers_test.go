package nat_test

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/dataplane"
	"github.com/nsnet/nsnet/internal/nat"
	"github.com/nsnet/nsnet/internal/netns"
)

// ftpServer is the control side of active-mode FTP, as much of it as the
// kernel's ftp helper reads: it greets, takes a login and a PORT command, and opens
// the data connection to the address and port PORT named, from inside
// its namespace. It records every PORT address it was given.
type ftpServer struct {
	mu    sync.Mutex
	ports []netip.AddrPort
}

func (s *ftpServer) seen() []netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ports)
}

func serveFTP(t *testing.T, ns *dataplane.Namespace, addr string) *ftpServer {
	t.Helper()
	s := &ftpServer{}
	var ln net.Listener
	in(t, ns.Name, func() (err error) { ln, err = net.Listen("tcp4", addr); return err })
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.session(ns, c)
		}
	}()
	return s
}

func (s *ftpServer) session(ns *dataplane.Namespace, c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	fmt.Fprintf(c, "220 nsnet test ftp\r\n")
	if _, err := r.ReadString('\n'); err != nil { // USER
		return
	}
	fmt.Fprintf(c, "230 Login successful\r\n")
	line, err := r.ReadString('\n')
	if err != nil {
		return
	}
	to, err := parsePORT(strings.TrimSpace(line))
	if err != nil {
		fmt.Fprintf(c, "501 %v\r\n", err)
		return
	}
	s.mu.Lock()
	s.ports = append(s.ports, to)
	s.mu.Unlock()
	fmt.Fprintf(c, "200 PORT command successful\r\n")
	var data net.Conn
	err = netns.DoNamed(ns.Name, func() (err error) {
		data, err = net.DialTimeout("tcp4", to.String(), 3*time.Second)
		return err
	})
	if err != nil {
		fmt.Fprintf(c, "425 Can't open data connection: %v\r\n", err)
		return
	}
	fmt.Fprintf(data, "listing\n")
	data.Close()
	fmt.Fprintf(c, "226 Transfer complete\r\n")
}

// parsePORT reads "PORT h1,h2,h3,h4,p1,p2".
func parsePORT(line string) (netip.AddrPort, error) {
	arg, ok := strings.CutPrefix(line, "PORT ")
	f := strings.Split(arg, ",")
	if !ok || len(f) != 6 {
		return netip.AddrPort{}, fmt.Errorf("not a PORT command: %q", line)
	}
	var b [6]byte
	for i, x := range f {
		n, err := strconv.Atoi(x)
		if err != nil || n < 0 || n > 255 {
			return netip.AddrPort{}, fmt.Errorf("bad PORT field %q", x)
		}
		b[i] = byte(n)
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[:4])), uint16(b[4])<<8|uint16(b[5])), nil
}

// activeFTP is the client: it listens for the data connection inside ns,
// sends PORT with its own address there, and reads what the data
// connection carries. It returns the server's last reply with the data.
func activeFTP(ns *dataplane.Namespace, own netip.Addr, server string) (string, error) {
	var ln *net.TCPListener
	var ctl net.Conn
	err := netns.DoNamed(ns.Name, func() (err error) {
		l, err := net.Listen("tcp4", net.JoinHostPort(own.String(), "0"))
		if err != nil {
			return err
		}
		ln = l.(*net.TCPListener)
		ctl, err = net.DialTimeout("tcp4", server, 3*time.Second)
		return err
	})
	if ln != nil {
		defer ln.Close()
	}
	if err != nil {
		return "", err
	}
	defer ctl.Close()
	ctl.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(ctl)
	if _, err := r.ReadString('\n'); err != nil {
		return "", fmt.Errorf("greeting: %w", err)
	}
	// The kernel's ftp helper reads only lines that follow a line it
	// saw end in the same direction: as a real client, log in first.
	fmt.Fprintf(ctl, "USER anonymous\r\n")
	if reply, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(reply, "230") {
		return reply, fmt.Errorf("USER: %q %v", reply, err)
	}
	p := ln.Addr().(*net.TCPAddr).AddrPort()
	a := own.As4()
	fmt.Fprintf(ctl, "PORT %d,%d,%d,%d,%d,%d\r\n", a[0], a[1], a[2], a[3], p.Port()>>8, p.Port()&0xff)
	reply, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(reply, "200") {
		return reply, fmt.Errorf("PORT: %q %v", reply, err)
	}
	ln.SetDeadline(time.Now().Add(4 * time.Second))
	data, err := ln.Accept()
	if err != nil {
		reply, _ := r.ReadString('\n')
		return strings.TrimSpace(reply), fmt.Errorf("data connection: %w", err)
	}
	defer data.Close()
	data.SetDeadline(time.Now().Add(2 * time.Second))
	got, err := bufio.NewReader(data).ReadString('\n')
	return strings.TrimSpace(got), err
}

// TestConntrackHelperFTP proves a router's ftp helper with active FTP
// through default SNAT: without it the server is told the client's
// private address and cannot connect back; with it the PORT command
// arrives rewritten to the router's gateway address and the server's
// data connection is translated back to the client. It also proves that
// the helper is one element of the table, repaired when removed by hand,
// read back by Inspect and written out by Script.
func TestConntrackHelperFTP(t *testing.T) {
	rl := newRouterLab(t)
	ftp := serveFTP(t, rl.w.far, "203.0.113.1:21")
	client := netip.MustParseAddr("10.0.0.6")

	t.Run("without the helper the PORT address is the private one", func(t *testing.T) {
		_, err := activeFTP(rl.vm2, client, "203.0.113.1:21")
		if err == nil {
			t.Fatal("active FTP through SNAT worked without a helper")
		}
		if got := ftp.seen(); len(got) == 0 || got[len(got)-1].Addr() != client {
			t.Fatalf("server saw PORT %v, want the client's own %v", got, client)
		}
	})

	withHelper := rl.router
	withHelper.Helpers = []nat.Helper{{Name: "ftp", Protocol: nat.TCP, Port: 21}, {Name: "tftp", Protocol: nat.UDP, Port: 69}}
	res := applyNAT(t, rl.r.Name, withHelper.Spec())
	if res.Added != 2 || res.Rebuilt || len(res.Rewritten) > 0 {
		t.Fatalf("adding two helpers: %+v, want two elements added and nothing else", res)
	}

	t.Run("with the helper the data connection comes back through the NAT", func(t *testing.T) {
		var got string
		var err error
		for range 3 { // a client retries; a lost SYN must not fail the test
			if got, err = activeFTP(rl.vm2, client, "203.0.113.1:21"); err == nil {
				break
			}
		}
		if err != nil || got != "listing" {
			t.Fatalf("active FTP with the helper: %q, %v", got, err)
		}
		seen := ftp.seen()
		if last := seen[len(seen)-1]; last.Addr() != netip.MustParseAddr(gwAddr) {
			t.Fatalf("server saw PORT %v, want the gateway address %s", last, gwAddr)
		}
	})

	t.Run("inspect and script", func(t *testing.T) {
		tb, err := nat.Open(rl.r.Name, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tb.Close()
		st, err := tb.Inspect()
		if err != nil {
			t.Fatal(err)
		}
		want := []nat.Helper{{Name: "ftp", Protocol: nat.TCP, Port: 21}, {Name: "tftp", Protocol: nat.UDP, Port: 69}}
		if !slices.Equal(st.Spec.Helpers, want) || len(st.Problems)+len(st.Stale) > 0 {
			t.Fatalf("inspect: helpers %v problems %v stale %v, want %v", st.Spec.Helpers, st.Problems, st.Stale, want)
		}
		script := st.Script()
		for _, s := range []string{`ct helper ftp-tcp {`, `type "ftp" protocol tcp`, `ct helper set "ftp-tcp"`,
			"add element inet nsnet conntrack_helpers { tcp . 21 : jump helper_ftp_tcp }"} {
			if !strings.Contains(script, s) {
				t.Errorf("script lacks %q:\n%s", s, script)
			}
		}
	})

	t.Run("a helper removed by hand is restored", func(t *testing.T) {
		rl.nft(rl.r.Name, "delete", "element", "inet", "nsnet", "conntrack_helpers", "{ tcp . 21 }")
		res := applyNAT(t, rl.r.Name, withHelper.Spec())
		if res.Added != 1 || !res.Read {
			t.Fatalf("repair: %+v, want the table read and one element added", res)
		}
	})

	t.Run("removing the helper", func(t *testing.T) {
		res := applyNAT(t, rl.r.Name, rl.router.Spec())
		if res.Deleted != 2 {
			t.Fatalf("removing two helpers: %+v", res)
		}
	})
}

func TestHelperValidation(t *testing.T) {
	for _, tc := range []struct {
		name    string
		helpers []nat.Helper
		want    string
	}{
		{"unknown helper", []nat.Helper{{Name: "quake", Protocol: nat.UDP, Port: 1}}, "no such helper"},
		{"helper on the wrong protocol", []nat.Helper{{Name: "ftp", Protocol: nat.UDP, Port: 21}}, "no such helper"},
		{"port 0", []nat.Helper{{Name: "ftp", Protocol: nat.TCP}}, "port 0"},
		{"two helpers on one port", []nat.Helper{{Name: "ftp", Protocol: nat.TCP, Port: 21}, {Name: "irc", Protocol: nat.TCP, Port: 21}}, "claim the same"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := nat.Spec{Helpers: tc.helpers}.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v, want an error with %q", err, tc.want)
			}
		})
	}
	if err := (nat.Spec{Helpers: []nat.Helper{{Name: "sip", Protocol: nat.UDP, Port: 5060}, {Name: "sip", Protocol: nat.TCP, Port: 5060}}}).Validate(); err != nil {
		t.Fatalf("sip on udp and tcp: %v", err)
	}
}
