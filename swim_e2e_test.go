//go:build !windows

package main

// End-to-end failure detection with real processes: crash (kill -9), hang
// (SIGSTOP/SIGCONT), restart under the same alias, and a real network
// partition between network namespaces.

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// evNode is a meshell process with !events on, whose event lines are parsed.
type evNode struct {
	*proc
	alias string
	addr  string
}

type eventLine struct {
	Time        string `json:"time"`
	Event       string `json:"event"`
	Member      string `json:"alias"`
	Incarnation uint64 `json:"incarnation"`
	Accuser     string `json:"accuser"`
}

// events returns every event the node printed so far.
func (n *evNode) events() []eventLine {
	var out []eventLine
	for _, l := range strings.Split(n.stdout.String(), "\n") {
		if !strings.HasPrefix(l, `{"time":`) {
			continue
		}
		var e eventLine
		if json.Unmarshal([]byte(l), &e) == nil {
			out = append(out, e)
		}
	}
	return out
}

// saw reports whether the node printed event about member after index from.
func (n *evNode) saw(event, member string, from int) bool {
	evs := n.events()
	for i := from; i < len(evs); i++ {
		if evs[i].Event == event && evs[i].Member == member {
			return true
		}
	}
	return false
}

// startEvNode starts a node that prints events and starts (join == "") or
// joins a cluster. prefix wraps the command (e.g. ip netns exec NS).
func startEvNode(t *testing.T, alias, addr, join string, prefix ...string) *evNode {
	t.Helper()
	args := append(append([]string{}, prefix...), binary, "--alias", alias, "--bind", addr, "--no-color")
	if len(prefix) > 0 { // in a namespace, peers are not on loopback: no key, so not protected mode
		args = append(args, "--insecure")
	}
	p := startBinary(t, args[0], "", args[1:]...) // SIGKILL at cleanup ends a stopped one too
	p.feed(t, "!events on --json\n")
	if join == "" {
		p.feed(t, "!start_cluster "+addr+"\n")
	} else {
		p.feed(t, "!join_cluster "+join+"\n")
	}
	return &evNode{proc: p, alias: alias, addr: addr}
}

// waitAll polls until cond holds for every node, or fails after limit.
func waitAll(t *testing.T, nodes []*evNode, limit time.Duration, what string, cond func(n *evNode) bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		var missing []string
		for _, n := range nodes {
			if !cond(n) {
				missing = append(missing, n.alias)
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, n := range nodes {
				t.Logf("%s stdout:\n%s\nstderr:\n%s", n.alias, n.stdout.String(), n.stderr.String())
			}
			t.Fatalf("after %v, %s not seen by %s", limit, what, strings.Join(missing, ", "))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// loopCluster starts n nodes on loopback, node1 the seed, and waits until
// every node saw every other join.
func loopCluster(t *testing.T, n int) []*evNode {
	t.Helper()
	var nodes []*evNode
	seedAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	nodes = append(nodes, startEvNode(t, "node1", seedAddr, ""))
	waitListening(t, portOf(seedAddr))
	for i := 2; i <= n; i++ {
		nodes = append(nodes, startEvNode(t, fmt.Sprintf("node%d", i), fmt.Sprintf("127.0.0.1:%d", freePort(t)), seedAddr))
	}
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				waitAll(t, []*evNode{a}, 30*time.Second, b.alias+" joining", func(x *evNode) bool { return x.saw("member-join", b.alias, 0) })
			}
		}
	}
	return nodes
}

func portOf(addr string) int {
	var p int
	fmt.Sscanf(addr[strings.LastIndex(addr, ":")+1:], "%d", &p)
	return p
}

func others(nodes []*evNode, skip ...*evNode) []*evNode {
	var out []*evNode
outer:
	for _, n := range nodes {
		for _, s := range skip {
			if n == s {
				continue outer
			}
		}
		out = append(out, n)
	}
	return out
}

func TestCrashIsDetectedByEveryNode(t *testing.T) {
	nodes := loopCluster(t, 5)
	victim := nodes[4]
	marks := map[*evNode]int{}
	for _, n := range nodes {
		marks[n] = len(n.events())
	}
	victim.cmd.Process.Kill()
	// The target is well under a second; the limit is generous for a loaded CI machine.
	waitAll(t, others(nodes, victim), 15*time.Second, "node5 failed", func(n *evNode) bool { return n.saw("member-failed", "node5", marks[n]) })
	for _, n := range others(nodes, victim) {
		if n.saw("member-leave", "node5", marks[n]) {
			t.Errorf("%s reported a crash as a graceful leave", n.alias)
		}
	}
}

func TestHangIsDetectedAndRefutedAfterResume(t *testing.T) {
	nodes := loopCluster(t, 5)
	victim := nodes[3]
	victim.cmd.Process.Signal(syscall.SIGSTOP)
	waitAll(t, others(nodes, victim), 20*time.Second, "node4 failed", func(n *evNode) bool { return n.saw("member-failed", "node4", 0) })
	marks := map[*evNode]int{}
	for _, n := range nodes {
		marks[n] = len(n.events())
	}
	victim.cmd.Process.Signal(syscall.SIGCONT)
	waitAll(t, others(nodes, victim), 20*time.Second, "node4 alive again", func(n *evNode) bool { return n.saw("member-alive", "node4", marks[n]) })
	// And it stays in the cluster: it still sees the others alive.
	victim.feed(t, "!wait members 5 20s\n!echo resumed\n")
	victim.waitOutput(t, "resumed", 30*time.Second)
}

func TestRestartUnderSameAliasIsAliveEverywhere(t *testing.T) {
	nodes := loopCluster(t, 4)
	victim := nodes[3]
	victim.cmd.Process.Kill()
	<-victim.done
	waitAll(t, nodes[:3], 15*time.Second, "node4 failed", func(n *evNode) bool { return n.saw("member-failed", "node4", 0) })
	marks := map[*evNode]int{}
	for _, n := range nodes[:3] {
		marks[n] = len(n.events())
	}
	back := startEvNode(t, "node4", victim.addr, nodes[0].addr)
	waitAll(t, nodes[:3], 15*time.Second, "node4 back", func(n *evNode) bool {
		return n.saw("member-alive", "node4", marks[n]) || n.saw("member-join", "node4", marks[n])
	})
	back.feed(t, "!wait members 4 20s\n!echo rejoined\n")
	back.waitOutput(t, "rejoined", 30*time.Second)
}

// netns helpers: each node gets its own namespace with a veth whose peer
// sits on a bridge in the test's namespace. Splitting moves some peers to a
// second bridge; healing moves them back.
type netLab struct {
	t     *testing.T
	id    string
	br    [2]string
	hosts []string // namespace per node
	peers []string // bridge-side veth per node
	ips   []string
}

func sh(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func newNetLab(t *testing.T, n int) *netLab {
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root: skipping the partition test")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("iproute2 (ip) is not installed: skipping the partition test")
	}
	id := fmt.Sprintf("%04x", rand.Intn(0xffff))
	lab := &netLab{t: t, id: id, br: [2]string{"msb" + id + "a", "msb" + id + "b"}}
	t.Cleanup(lab.teardown)
	for _, br := range lab.br {
		if err := sh("ip", "link", "add", br, "type", "bridge"); err != nil {
			t.Skipf("cannot create a bridge here (%v): skipping the partition test", err)
		}
		if err := sh("ip", "link", "set", br, "up"); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i++ {
		ns := fmt.Sprintf("msh%s-%d", id, i)
		host, peer := fmt.Sprintf("mh%s%d", id, i), fmt.Sprintf("mp%s%d", id, i)
		ip := fmt.Sprintf("10.253.%d.%d", rand.Intn(200)+1, i+10)
		if i > 0 {
			ip = lab.ips[0][:strings.LastIndex(lab.ips[0], ".")+1] + fmt.Sprint(i+10)
		}
		steps := [][]string{
			{"ip", "netns", "add", ns},
			{"ip", "link", "add", host, "type", "veth", "peer", "name", peer},
			{"ip", "link", "set", host, "netns", ns},
			{"ip", "link", "set", peer, "master", lab.br[0]},
			{"ip", "link", "set", peer, "up"},
			{"ip", "netns", "exec", ns, "ip", "addr", "add", ip + "/24", "dev", host},
			{"ip", "netns", "exec", ns, "ip", "link", "set", host, "up"},
			{"ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"},
		}
		lab.hosts, lab.peers, lab.ips = append(lab.hosts, ns), append(lab.peers, peer), append(lab.ips, ip)
		for _, s := range steps {
			if err := sh(s...); err != nil {
				if i == 0 && s[1] == "netns" {
					t.Skipf("cannot create network namespaces here (%v): skipping the partition test", err)
				}
				t.Fatal(err)
			}
		}
	}
	return lab
}

// attach moves node i's bridge-side veth to bridge b.
func (l *netLab) attach(i, b int) {
	if err := sh("ip", "link", "set", l.peers[i], "master", l.br[b]); err != nil {
		l.t.Fatal(err)
	}
}

func (l *netLab) teardown() {
	for i, ns := range l.hosts {
		exec.Command("ip", "link", "del", l.peers[i]).Run()
		exec.Command("ip", "netns", "del", ns).Run()
	}
	for _, br := range l.br {
		exec.Command("ip", "link", "del", br).Run()
	}
}

func TestPartitionAndHealAcrossNamespaces(t *testing.T) {
	lab := newNetLab(t, 4)
	port := 7946
	var nodes []*evNode
	seed := fmt.Sprintf("%s:%d", lab.ips[0], port)
	for i := 0; i < 4; i++ {
		join := seed
		if i == 0 {
			join = ""
		}
		n := startEvNode(t, fmt.Sprintf("node%d", i+1), fmt.Sprintf("%s:%d", lab.ips[i], port), join, "ip", "netns", "exec", lab.hosts[i])
		nodes = append(nodes, n)
		if i == 0 {
			n.waitOutput(t, "listening on", 20*time.Second)
		}
	}
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				waitAll(t, []*evNode{a}, 30*time.Second, b.alias+" joining", func(x *evNode) bool { return x.saw("member-join", b.alias, 0) })
			}
		}
	}
	left, right := nodes[:2], nodes[2:]
	// Split: nodes 3 and 4 move to the second bridge.
	split := time.Now()
	lab.attach(2, 1)
	lab.attach(3, 1)
	for _, side := range [][2][]*evNode{{left, right}, {right, left}} {
		for _, other := range side[1] {
			waitAll(t, side[0], 30*time.Second, other.alias+" failed across the partition", func(n *evNode) bool { return n.saw("member-failed", other.alias, 0) })
		}
	}
	t.Logf("partition: each side saw the other failed %v after the split", time.Since(split).Round(time.Millisecond))
	marks := map[*evNode]int{}
	for _, n := range nodes {
		marks[n] = len(n.events())
	}
	// Heal, with no command typed anywhere.
	heal := time.Now()
	lab.attach(2, 0)
	lab.attach(3, 0)
	for _, side := range [][2][]*evNode{{left, right}, {right, left}} {
		for _, other := range side[1] {
			waitAll(t, side[0], 40*time.Second, other.alias+" alive after the heal", func(n *evNode) bool { return n.saw("member-alive", other.alias, marks[n]) })
		}
	}
	t.Logf("heal: every node saw all 4 alive %v after the heal", time.Since(heal).Round(time.Millisecond))
	// Never did a node mark its own side failed.
	for _, side := range [][]*evNode{left, right} {
		for _, n := range side {
			for _, mate := range side {
				if n != mate && n.saw("member-failed", mate.alias, 0) {
					t.Errorf("%s marked %s (its own side) failed:\n%s", n.alias, mate.alias, n.stdout.String())
				}
			}
		}
	}
}
