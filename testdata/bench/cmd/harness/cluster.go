package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// System is a membership implementation the harness can run as processes.
type System struct {
	Name  string
	Bin   string
	Kind  string // "mlnode" | "meshell"
	Extra []string
}

func (s *System) nodeArgs(alias string, port, joinPort int) []string {
	var a []string
	switch s.Kind {
	case "mlnode":
		a = []string{"--alias", alias, "--port", strconv.Itoa(port)}
		if joinPort > 0 {
			a = append(a, "--join", fmt.Sprintf("127.0.0.1:%d", joinPort))
		}
	default: // meshell: it starts or joins from stdin, after !events on (startCommands)
		a = []string{"--alias", alias, "--bind", fmt.Sprintf("127.0.0.1:%d", port), "--no-color"}
	}
	return append(a, s.Extra...)
}

// Event is one membership event line printed by a node.
type Event struct {
	T       int64 // node's timestamp (unix ns); the harness read time if absent
	Recv    int64
	Event   string
	Member  string
	Accuser string // member-suspect: whose probe failed, when the node knows
}

// Node is one running instance of a cluster member.
type Node struct {
	*Proc
	Alias  string
	Port   int
	c      *Cluster
	events []Event // guarded by c.mu
	status chan map[string]any
	ready  chan struct{} // closed when the node echoed "ready" (startIdle)
	once   sync.Once
}

// Cluster tracks the nodes of one trial and everything they printed.
type Cluster struct {
	h       *Harness
	sys     *System
	label   string
	mu      sync.Mutex
	changed chan struct{}
	nodes   []*Node // every instance ever started, in order
	seq     int
}

func (h *Harness) newCluster(sys *System, label string) *Cluster {
	return &Cluster{h: h, sys: sys, label: label, changed: make(chan struct{})}
}

type lineMsg struct {
	T         json.RawMessage `json:"time"`
	Event     *string         `json:"event"`
	Member    string          `json:"alias"`
	Accuser   string          `json:"accuser"`
	BytesSent json.RawMessage `json:"bytes_sent"`
}

func (n *Node) onLine(line []byte, recv time.Time) {
	if n.ready != nil && string(bytes.TrimSpace(line)) == readyMark {
		n.once.Do(func() { close(n.ready) })
		return
	}
	if len(line) == 0 || line[0] != '{' {
		return
	}
	var m lineMsg
	if err := json.Unmarshal(line, &m); err != nil {
		return
	}
	switch {
	case m.Event != nil:
		ev := Event{Recv: recv.UnixNano(), Event: *m.Event, Member: m.Member, Accuser: m.Accuser}
		if t, ok := parseTime(m.T); ok {
			ev.T = t
		} else {
			ev.T = ev.Recv
		}
		c := n.c
		c.mu.Lock()
		n.events = append(n.events, ev)
		close(c.changed)
		c.changed = make(chan struct{})
		c.mu.Unlock()
	case len(m.BytesSent) > 0:
		var full map[string]any
		d := json.NewDecoder(bytesReader(line))
		d.UseNumber()
		if d.Decode(&full) == nil {
			select {
			case n.status <- full:
			default:
			}
		}
	}
}

// startNode starts one member. joinPort 0 means no --join (the seed).
func (c *Cluster) startNode(alias string, port, joinPort int) (*Node, error) {
	return c.launch(alias, port, c.sys.nodeArgs(alias, port, joinPort), c.sys.startCommands(port, joinPort), nil)
}

// readyMark is what a node started by startIdle echoes once it reads stdin.
const readyMark = "meshell-harness-ready"

// startIdle starts a member that neither starts nor joins a cluster: it
// turns events on and echoes readyMark. join then makes it join.
func (c *Cluster) startIdle(alias string, port int) (*Node, error) {
	return c.launch(alias, port, c.sys.nodeArgs(alias, port, 0), []string{"!events on --json", "!echo " + readyMark}, make(chan struct{}))
}

// launch starts the process of one member and writes lines to its stdin;
// ready, if not nil, is closed when the node echoes readyMark.
func (c *Cluster) launch(alias string, port int, args, lines []string, ready chan struct{}) (*Node, error) {
	n := &Node{Alias: alias, Port: port, c: c, status: make(chan map[string]any, 4), ready: ready}
	c.mu.Lock()
	c.seq++
	logName := fmt.Sprintf("%s-%s-%s-%d", c.label, safe(c.sys.Name), alias, c.seq)
	c.mu.Unlock()
	p, err := c.h.startProc(alias, logName, c.sys.Bin, args, n.onLine)
	if err != nil {
		return nil, err
	}
	n.Proc = p
	c.mu.Lock()
	c.nodes = append(c.nodes, n)
	c.mu.Unlock()
	for _, line := range lines {
		if err := p.Send(line); err != nil {
			return n, fmt.Errorf("%s: write stdin: %w", alias, err)
		}
	}
	return n, nil
}

// waitIdle waits for the readyMark of a node started by startIdle.
func (n *Node) waitIdle(d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-n.ready:
		return nil
	case <-n.done:
		return fmt.Errorf("%s exited (%v); log %s", n.Alias, n.err, n.Log)
	case <-t.C:
		return fmt.Errorf("%s: not ready within %v", n.Alias, d)
	}
}

// join tells a node started by startIdle to join through joinPort.
func (n *Node) join(joinPort int) error {
	return n.Send(fmt.Sprintf("!join_cluster 127.0.0.1:%d", joinPort))
}

// startCommands are the first stdin lines of a node. meshell turns events
// on before it starts or joins, so that no join event is missed.
func (s *System) startCommands(port, joinPort int) []string {
	lines := []string{"!events on --json"}
	if s.Kind != "meshell" {
		return lines
	}
	if joinPort > 0 {
		return append(lines, fmt.Sprintf("!join_cluster 127.0.0.1:%d", joinPort))
	}
	return append(lines, fmt.Sprintf("!start_cluster 127.0.0.1:%d", port))
}

// Status asks the node for "!status <alias> --json" and waits for the reply.
func (n *Node) Status(d time.Duration) (map[string]any, error) {
	for {
		select { // drop stale replies
		case <-n.status:
			continue
		default:
		}
		break
	}
	if err := n.Send("!status " + n.Alias + " --json"); err != nil {
		return nil, err
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case m := <-n.status:
		return m, nil
	case <-n.done:
		return nil, fmt.Errorf("%s exited (%v); log %s", n.Alias, n.err, n.Log)
	case <-t.C:
		return nil, fmt.Errorf("%s: no !status reply within %v", n.Alias, d)
	}
}

// waitReady waits until the node accepts TCP connections on its port (not
// !status: the membership scenarios other than idle need only the events).
func (n *Node) waitReady(d time.Duration) error {
	return waitTCP(n.c.h.ctx, n.Port, d, n.Proc)
}

// wait blocks until cond (called with c.mu held) is true, the timeout passes,
// or the harness is cancelled.
func (c *Cluster) wait(d time.Duration, cond func() bool) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		c.mu.Lock()
		ok := cond()
		ch := c.changed
		c.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-t.C:
			c.mu.Lock()
			ok = cond()
			c.mu.Unlock()
			return ok
		case <-c.h.ctx.Done():
			return false
		}
	}
}

// keepEvents writes every membership event the nodes printed to the log
// directory, one line each: ms since t0, observer, event, member, accuser.
func (c *Cluster) keepEvents(nodes []*Node, t0 int64) {
	f, err := os.Create(filepath.Join(c.h.logDir, fmt.Sprintf("%s-%s-events.tsv", c.label, safe(c.sys.Name))))
	if err != nil {
		return
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	c.mu.Lock()
	for _, n := range nodes {
		for _, e := range n.events {
			fmt.Fprintf(w, "%.1f\t%s\t%s\t%s\t%s\n", float64(e.T-t0)/1e6, n.Alias, e.Event, e.Member, e.Accuser)
		}
	}
	c.mu.Unlock()
	w.Flush()
}

// kill stops every node of the cluster.
func (c *Cluster) close() {
	c.mu.Lock()
	ns := slices.Clone(c.nodes)
	c.mu.Unlock()
	for _, n := range ns {
		_ = n.Signal(sigKILL)
	}
	for _, n := range ns {
		n.WaitExit(5 * time.Second)
	}
}

func isUp(kind string) bool {
	return kind == "member-join" || kind == "member-alive" || kind == "member-update"
}

// lastUp returns, for observer n, whether member is currently up in its view
// (the last event about it is join/alive/update) and the time of the latest
// join/alive event. Caller holds c.mu.
func (n *Node) lastUp(member string) (bool, int64) {
	up := false
	var t int64
	for _, e := range n.events {
		if e.Member != member {
			continue
		}
		switch e.Event {
		case "member-join", "member-alive":
			up, t = true, e.T
		case "member-update":
		case "member-leave", "member-failed":
			up = false
		}
	}
	return up, t
}

// firstEvent returns the first event about member of one of kinds with
// T >= since. Caller holds c.mu.
func (n *Node) firstEvent(member string, since int64, kinds ...string) (int64, bool) {
	for _, e := range n.events {
		if e.Member == member && e.T >= since && slices.Contains(kinds, e.Event) {
			return e.T, true
		}
	}
	return 0, false
}

// fullMesh reports whether every node sees every other node up. Caller holds c.mu.
func fullMesh(nodes []*Node) bool {
	for _, a := range nodes {
		for _, b := range nodes {
			if a == b {
				continue
			}
			if up, _ := a.lastUp(b.Alias); !up {
				return false
			}
		}
	}
	return true
}

// meshCount counts (observer, member) pairs seen up. Caller holds c.mu.
func meshCount(nodes []*Node) int {
	k := 0
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				if up, _ := a.lastUp(b.Alias); up {
					k++
				}
			}
		}
	}
	return k
}

// allSaw waits until every observer printed one of kinds about member at or
// after since. It returns the per-observer latency in ms (for those that did)
// and whether all did within d.
func (c *Cluster) allSaw(observers []*Node, member string, since int64, d time.Duration, kinds ...string) (map[string]float64, bool) {
	ok := c.wait(d, func() bool {
		for _, o := range observers {
			if _, ok := o.firstEvent(member, since, kinds...); !ok {
				return false
			}
		}
		return true
	})
	lat := map[string]float64{}
	c.mu.Lock()
	for _, o := range observers {
		if t, ok := o.firstEvent(member, since, kinds...); ok {
			lat[o.Alias] = float64(t-since) / 1e6
		}
	}
	c.mu.Unlock()
	return lat, ok
}

// formCluster starts n nodes (node1 is the seed, the others join it) and
// waits until each sees all others up.
func (c *Cluster) formCluster(n int, d time.Duration) ([]*Node, error) {
	seedPort, err := c.h.freePort()
	if err != nil {
		return nil, err
	}
	seed, err := c.startNode("node1", seedPort, 0)
	if err != nil {
		return nil, err
	}
	if err := seed.waitReady(15 * time.Second); err != nil {
		return nil, fmt.Errorf("seed not ready: %w", err)
	}
	nodes := []*Node{seed}
	for i := 2; i <= n; i++ {
		p, err := c.h.freePort()
		if err != nil {
			return nil, err
		}
		nd, err := c.startNode(fmt.Sprintf("node%d", i), p, seedPort)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, nd)
	}
	if !c.wait(d, func() bool { return fullMesh(nodes) }) {
		c.mu.Lock()
		k := meshCount(nodes)
		c.mu.Unlock()
		return nodes, fmt.Errorf("cluster of %d did not form within %v (%d/%d views)", n, d, k, n*(n-1))
	}
	return nodes, nil
}

func without(nodes []*Node, x *Node) []*Node {
	var out []*Node
	for _, n := range nodes {
		if n != x {
			out = append(out, n)
		}
	}
	return out
}

// dumpLagging is for a converge trial that failed: each node that printed
// fewer views than it should reports its own !status (whether its table or
// only its printing lags); then each is sent SIGQUIT, on which the Go
// runtime writes every goroutine's stack to stderr, the node's log.
func (c *Cluster) dumpLagging(nodes []*Node) {
	const maxDumped = 10
	var lagging []*Node
	for _, a := range nodes {
		c.mu.Lock()
		seen := 0
		for _, b := range nodes {
			if up, _ := a.lastUp(b.Alias); a != b && up {
				seen++
			}
		}
		c.mu.Unlock()
		if seen == len(nodes)-1 {
			continue
		}
		if lagging = append(lagging, a); len(lagging) > maxDumped {
			continue // counted, not asked: each ask may take seconds
		}
		st, err := a.Status(5 * time.Second)
		fmt.Fprintf(os.Stderr, "harness: %s printed %d of %d views; !status: %v alive, %v suspect, %v failed %v\n",
			a.Alias, seen, len(nodes)-1, st["members_alive"], st["members_suspect"], st["members_failed"], err)
	}
	if len(lagging) > maxDumped {
		fmt.Fprintf(os.Stderr, "harness: %d more nodes lag; only the first %d were asked\n", len(lagging)-maxDumped, maxDumped)
		lagging = lagging[:maxDumped]
	}
	for _, a := range lagging {
		a.Signal(syscall.SIGQUIT)
		a.WaitExit(5 * time.Second)
	}
}
