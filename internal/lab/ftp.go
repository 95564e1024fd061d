package lab

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nsnet/nsnet/internal/netns"
)

// FTPServer is the control side of active-mode FTP, as much of it as the
// kernel's ftp conntrack helper reads: it greets, takes a login and a
// PORT command, and opens the data connection to the address and port
// PORT named, from inside its namespace. It records every PORT address it
// was given, so a test can tell whether a NAT rewrote it.
type FTPServer struct {
	ln    net.Listener
	mu    sync.Mutex
	ports []netip.AddrPort
}

// ServeFTP starts an FTPServer on addr (host:port) inside the named
// namespace; Close stops it.
func ServeFTP(namespace, addr string) (*FTPServer, error) {
	s := &FTPServer{}
	err := netns.DoNamed(namespace, func() (err error) {
		s.ln, err = net.Listen("tcp4", addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ftp server on %s in %s: %w", addr, namespace, err)
	}
	go func() {
		for {
			c, err := s.ln.Accept()
			if err != nil {
				return
			}
			go s.session(namespace, c)
		}
	}()
	return s, nil
}

// Close stops the server.
func (s *FTPServer) Close() error { return s.ln.Close() }

// Ports are the PORT addresses the server was given, oldest first.
func (s *FTPServer) Ports() []netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ports)
}

func (s *FTPServer) session(namespace string, c net.Conn) {
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
	err = netns.DoNamed(namespace, func() (err error) {
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

// ActiveFTP is an active-mode FTP client in the named namespace: it
// listens for the data connection on its own address own, logs in to
// server (host:port), sends PORT with own and the listener's port, and
// returns what the data connection carries ("listing" from an
// FTPServer). A failed data connection returns the server's reply with
// the error.
func ActiveFTP(namespace string, own netip.Addr, server string) (string, error) {
	var ln *net.TCPListener
	var ctl net.Conn
	err := netns.DoNamed(namespace, func() (err error) {
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
