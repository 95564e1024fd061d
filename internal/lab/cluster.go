package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// A Cluster is several nsnet hosts on one machine, cabled the way a small
// cloud is (the seeds' fourth walkthrough, with namespaces for machines):
//
//	underlay  a namespace holding one bridge, the switch of the hosts'
//	          management/tunnel network (UnderlayCIDR); each host has a
//	          veth "ul0" on it carrying its VTEP address;
//	hosts     one namespace per host (the daemon's --host-netns), each
//	          with its own nsnet daemon (--host, --roles, --vtep-address,
//	          its own --netns-prefix, socket and TCP API), all on one etcd;
//	upstream  "the internet": a namespace with a bridge holding
//	          UpstreamGateway, cabled to every network node by a veth
//	          called UplinkName there (the same name on each, so an
//	          external network's nsnet:uplink exists wherever its router
//	          moves) — or, with ClusterConfig.PhysicalNetwork, by a veth
//	          named after the host (Host.Uplink), which its daemon maps
//	          that physical network to (--physical-interface-mappings).
//
// Every namespace of the cluster, the daemons' included, starts with
// Prefix. The cluster is built with ip (a test rig, as a user cables
// machines; nsnet itself never runs it) and removed by Close.
type Cluster struct {
	Prefix   string
	Underlay string // the underlay switch's namespace
	Upstream string // the upstream's namespace
	Hosts    []*Host
	// Token is the admin token of every daemon's TCP API.
	Token string

	cfg ClusterConfig
}

// ClusterConfig says what to build.
type ClusterConfig struct {
	// Bin is the nsnet binary the daemons run.
	Bin string
	// Dir keeps the daemons' state directories, sockets and token file.
	Dir string
	// Store is the daemons' --store: etcd://HOST:PORT/PREFIX.
	Store string
	// Hosts are the hosts to make, in order; roles are "compute" and
	// "network" (nsnet's --roles).
	Hosts []HostConfig
	// DaemonArgs are added to every daemon's command line (e.g.
	// --heartbeat-interval 1s --agent-down-time 5s --log-level debug).
	DaemonArgs []string
	// PhysicalNetwork, when set, names the upstream's physical network:
	// each network node's uplink is then named after the host
	// (UplinkPrefix + its index), not UplinkName, and its daemon maps
	// the physical network to it.
	PhysicalNetwork string
	// Logs, when set, receives each daemon's output line by line
	// prefixed with its host's name (a test's log); it is kept in the
	// host either way.
	Logs io.Writer
}

// HostConfig is one host of a cluster.
type HostConfig struct {
	Name  string
	Roles []string
	// NoDaemon builds the host's namespace and cables but starts no
	// daemon: the caller runs the host's agent itself (a simulation's
	// light agents, many in one process).
	NoDaemon bool
}

// The cluster's fixed plan: addresses a test can rely on.
const (
	// UnderlayCIDR is the hosts' tunnel network; host i (from 0) has
	// VTEP address 198.18.0.(11+i).
	UnderlayCIDR = "198.18.0.0/24"
	// UpstreamCIDR is the external network's range, the upstream
	// router holding UpstreamGateway on it.
	UpstreamCIDR    = "198.51.100.0/24"
	UpstreamGateway = "198.51.100.1"
	// UplinkName is the network nodes' interface to the upstream.
	UplinkName = "uplink0"
	// UplinkPrefix starts a network node's interface to the upstream
	// when the cluster maps a physical network to it.
	UplinkPrefix = "ext"
	// underlayLink is every host's interface to the underlay.
	underlayLink = "ul0"
)

// Host is one host of a cluster and its daemon.
type Host struct {
	Name  string
	Roles []string
	// VTEP is the host's underlay address (its --vtep-address).
	VTEP string
	// Uplink is a network node's interface to the upstream ("" on a
	// compute host).
	Uplink string
	// Netns is the namespace that is the host (--host-netns).
	Netns string
	// NetnsPrefix starts every namespace its daemon makes.
	NetnsPrefix string
	// Socket is its daemon's unix socket; Endpoint its TCP API
	// (http://127.0.0.1:PORT), which takes the cluster's Token.
	Socket, Endpoint string

	c     *Cluster
	args  []string
	cmd   *exec.Cmd
	done  chan struct{}
	logs  SyncBuffer
	token string
}

// NewCluster builds the namespaces of cfg and starts a daemon per host,
// returning once every daemon's API answers. On error it removes what it
// made.
func NewCluster(ctx context.Context, cfg ClusterConfig) (c *Cluster, err error) {
	p := "nsm" + RandomHex(3) + "-"
	c = &Cluster{Prefix: p, Underlay: p + "underlay", Upstream: p + "upstream", Token: RandomHex(16), cfg: cfg}
	defer func() {
		if err != nil {
			c.Close()
			c = nil
		}
	}()
	tokenFile := filepath.Join(cfg.Dir, "token")
	if err := os.WriteFile(tokenFile, []byte(c.Token+"\n"), 0o600); err != nil {
		return nil, err
	}
	var script [][]string
	add := func(args ...string) { script = append(script, args) }
	add("netns", "add", c.Underlay)
	add("-n", c.Underlay, "link", "add", "br0", "type", "bridge")
	add("-n", c.Underlay, "link", "set", "br0", "up")
	add("netns", "add", c.Upstream)
	add("-n", c.Upstream, "link", "add", "br0", "type", "bridge")
	add("-n", c.Upstream, "addr", "add", UpstreamGateway+"/24", "dev", "br0")
	add("-n", c.Upstream, "link", "set", "br0", "up")
	add("-n", c.Upstream, "link", "set", "lo", "up")
	for i, hc := range cfg.Hosts {
		h := &Host{Name: hc.Name, Roles: hc.Roles, VTEP: fmt.Sprintf("198.18.0.%d", 11+i),
			Netns: p + "h-" + hc.Name, NetnsPrefix: p + hc.Name + "-",
			Socket: filepath.Join(cfg.Dir, hc.Name+".sock"), c: c, token: c.Token}
		c.Hosts = append(c.Hosts, h)
		// Underlay: ul0 in the host, "u-NAME" on the switch.
		peer := truncate("u-"+hc.Name, 15)
		add("netns", "add", h.Netns)
		add("-n", h.Netns, "link", "set", "lo", "up")
		add("-n", h.Netns, "link", "add", underlayLink, "type", "veth", "peer", "name", peer, "netns", c.Underlay)
		add("-n", c.Underlay, "link", "set", peer, "master", "br0", "up")
		add("-n", h.Netns, "addr", "add", h.VTEP+"/24", "dev", underlayLink)
		add("-n", h.Netns, "link", "set", underlayLink, "up")
		if slices.Contains(hc.Roles, "network") {
			h.Uplink = UplinkName
			if cfg.PhysicalNetwork != "" {
				h.Uplink = fmt.Sprintf("%s%d", UplinkPrefix, i)
			}
			// The uplink stays down: nsnet brings it up when it
			// bridges it into the external network.
			peer := truncate("x-"+hc.Name, 15)
			add("-n", h.Netns, "link", "add", h.Uplink, "type", "veth", "peer", "name", peer, "netns", c.Upstream)
			add("-n", c.Upstream, "link", "set", peer, "master", "br0", "up")
		}
	}
	for _, args := range script {
		if err := ip(args...); err != nil {
			return c, err
		}
	}
	for i, h := range c.Hosts {
		if cfg.Hosts[i].NoDaemon {
			continue
		}
		addr, err := freeLoopback()
		if err != nil {
			return c, err
		}
		h.Endpoint = "http://" + addr
		h.args = append([]string{"daemon", "--store", cfg.Store,
			"--host", h.Name, "--roles", strings.Join(h.Roles, ","), "--vtep-address", h.VTEP,
			"--host-netns", h.Netns, "--netns-prefix", h.NetnsPrefix,
			"--state-dir", filepath.Join(cfg.Dir, h.Name+"-state"), "--socket", h.Socket,
			"--listen", addr, "--token-file", tokenFile}, cfg.DaemonArgs...)
		if cfg.PhysicalNetwork != "" && h.Uplink != "" {
			h.args = append(h.args, "--physical-interface-mappings", cfg.PhysicalNetwork+":"+h.Uplink)
		}
		if err := h.Start(ctx); err != nil {
			return c, err
		}
	}
	return c, nil
}

// Host is the host called name, or nil.
func (c *Cluster) Host(name string) *Host {
	for _, h := range c.Hosts {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// Close stops the daemons still running (SIGTERM; what they built stays),
// then checks that nothing of nsnet's is left — a namespace a daemon made,
// a link other than the lab's cables or an nft table in a host namespace —
// and removes the cluster's namespaces and everything left in them. The
// error names each leftover. Delete the topology through the API and let
// the agents converge first: Close removes, it does not tear down.
func (c *Cluster) Close() error {
	for _, h := range c.Hosts {
		h.Stop()
	}
	var left []string
	for _, h := range c.Hosts {
		for _, ns := range Namespaces(h.NetnsPrefix) {
			left = append(left, "namespace "+ns)
		}
		for _, name := range EtcEntries(h.NetnsPrefix) {
			left = append(left, "/etc/netns/"+name)
		}
		links, _ := linkNames(h.Netns)
		for _, l := range links {
			if l != underlayLink && l != h.Uplink {
				left = append(left, fmt.Sprintf("link %s in %s", l, h.Netns))
			}
		}
		if out, err := exec.Command("ip", "netns", "exec", h.Netns, "nft", "list", "tables").Output(); err == nil && strings.TrimSpace(string(out)) != "" {
			left = append(left, fmt.Sprintf("nft tables in %s: %s", h.Netns, strings.Join(strings.Fields(string(out)), " ")))
		}
	}
	RemoveNamespaces(c.Prefix)
	if rest := Namespaces(c.Prefix); len(rest) > 0 {
		left = append(left, fmt.Sprintf("namespaces that could not be removed: %v", rest))
	}
	if len(left) > 0 {
		return fmt.Errorf("left behind: %s", strings.Join(left, "; "))
	}
	return nil
}

// Start starts the host's daemon (again, after Stop or Kill) and waits
// until its API answers.
func (h *Host) Start(ctx context.Context) error {
	if h.running() {
		return fmt.Errorf("host %s: daemon already running", h.Name)
	}
	cmd := exec.Command(h.c.cfg.Bin, h.args...)
	var out io.Writer = &h.logs
	if h.c.cfg.Logs != nil {
		out = io.MultiWriter(&h.logs, &linePrefixer{w: h.c.cfg.Logs, prefix: h.Name + ": "})
	}
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group: a Ctrl-C at a benchmark's terminal must
	// not take the daemons its teardown still needs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("host %s: start daemon: %w", h.Name, err)
	}
	h.cmd, h.done = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(h.done) }()
	for start := time.Now(); ; {
		status, err := h.Do(ctx, "GET", "/nsnet/status", nil, nil)
		if err == nil && status == http.StatusOK {
			return nil
		}
		select {
		case <-h.done:
			return fmt.Errorf("host %s: daemon exited at start (%v):\n%s", h.Name, cmd.ProcessState, h.logs.String())
		case <-ctx.Done():
			h.Kill()
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Since(start) > 30*time.Second {
			h.Kill()
			return fmt.Errorf("host %s: daemon did not answer within 30s:\n%s", h.Name, h.logs.String())
		}
	}
}

func (h *Host) running() bool {
	if h.cmd == nil {
		return false
	}
	select {
	case <-h.done:
		return false
	default:
		return true
	}
}

// Stop stops the daemon gracefully (SIGTERM) and waits for it, killing it
// after 15 seconds; it reports whether it stopped cleanly.
func (h *Host) Stop() error {
	if !h.running() {
		return nil
	}
	h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.done:
		if !h.cmd.ProcessState.Success() {
			return fmt.Errorf("host %s: daemon exited with %v", h.Name, h.cmd.ProcessState)
		}
		return nil
	case <-time.After(15 * time.Second):
		h.Kill()
		return fmt.Errorf("host %s: daemon did not stop on SIGTERM", h.Name)
	}
}

// Kill kills the daemon (SIGKILL, as a crash would) and waits for it.
func (h *Host) Kill() {
	if !h.running() {
		return
	}
	h.cmd.Process.Kill()
	<-h.done
}

// Pid is the daemon's process id (0 when it is not running).
func (h *Host) Pid() int {
	if !h.running() {
		return 0
	}
	return h.cmd.Process.Pid
}

// Logs is what the daemon logged so far, over all its runs.
func (h *Host) Logs() string { return h.logs.String() }

// Cable sets the host's underlay and uplink cables up or down at both
// ends: the host is cut off from the others (and the internet) while its
// namespaces and daemon stay as they are, as when a machine's switch port
// dies.
func (h *Host) Cable(up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	ends := [][2]string{{h.Netns, underlayLink}, {h.c.Underlay, truncate("u-"+h.Name, 15)}}
	if slices.Contains(h.Roles, "network") {
		// The host's end of the uplink is nsnet's to bring up; only the
		// upstream's end is pulled.
		ends = append(ends, [2]string{h.c.Upstream, truncate("x-"+h.Name, 15)})
	}
	for _, e := range ends {
		if err := ip("-n", e[0], "link", "set", e[1], state); err != nil {
			return err
		}
	}
	return nil
}

// Do sends one request to the host's TCP API with the admin token,
// encoding body as JSON unless nil, and decodes the answer into out
// unless nil. The error is for a request that got no answer (or one
// that does not decode); the status says the rest.
func (h *Host) Do(ctx context.Context, method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, h.Endpoint+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("X-Auth-Token", h.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %d: decode %q: %w", method, path, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode, nil
}

func ip(args ...string) error {
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// linkNames lists the links of namespace ns other than lo.
func linkNames(ns string) ([]string, error) {
	out, err := exec.Command("ip", "-n", ns, "-o", "link", "show").Output()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(fields[1], ":"), "@")
		if name != "lo" {
			names = append(names, name)
		}
	}
	return names, nil
}

func freeLoopback() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// linePrefixer writes whole lines to w, each behind prefix.
type linePrefixer struct {
	w      io.Writer
	prefix string
	buf    []byte
}

func (l *linePrefixer) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		if _, err := fmt.Fprintf(l.w, "%s%s\n", l.prefix, l.buf[:i]); err != nil {
			return len(p), err
		}
		l.buf = l.buf[i+1:]
	}
}

// ErrNoMultiHost says the nsnet binary has no multi-host daemon flags.
var ErrNoMultiHost = errors.New("this nsnet daemon has no --vtep-address (multi-host mode) yet")

// CheckMultiHost tells whether bin's daemon takes the flags a cluster
// passes it.
func CheckMultiHost(bin string) error {
	out, _ := exec.Command(bin, "daemon", "--help").CombinedOutput()
	for _, flag := range []string{"--host ", "--roles", "--vtep-address", "--heartbeat-interval", "--agent-down-time"} {
		if !strings.Contains(string(out), flag) {
			return fmt.Errorf("%w: no %s in `nsnet daemon --help`", ErrNoMultiHost, strings.TrimSpace(flag))
		}
	}
	return nil
}
