package main

// Hostile peers against real nodes on loopback: each attack is sent with
// hand-built frames, and the test asserts what the legitimate cluster keeps.

import (
	"bufio"
	bin "encoding/binary"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"meshell/protocol"
)

// rssBound is how far a victim's resident memory may grow during an attack.
const rssBound = 64 << 20

// shell is a node in script mode whose commands the test feeds one by one.
type shell struct {
	*proc
	alias string
	addr  string
	marks int
}

func startShell(t *testing.T, alias string, port int, args ...string) *shell {
	t.Helper()
	args = append([]string{"--alias", alias, "-P", strconv.Itoa(port)}, args...)
	s := &shell{proc: start(t, "", args...), alias: alias, addr: fmt.Sprintf("127.0.0.1:%d", port)}
	return s
}

// run feeds cmds and waits until they ran, returning what they printed.
func (s *shell) run(t *testing.T, cmds string, limit time.Duration) string {
	t.Helper()
	s.marks++
	mark := fmt.Sprintf("mark-%s-%d", s.alias, s.marks)
	before := len(s.stdout.String())
	s.feed(t, cmds+"\n!echo "+mark+"\n")
	s.waitOutput(t, mark, limit)
	out := s.stdout.String()[before:]
	return out[:strings.Index(out, mark)]
}

// members returns the shell's membership table.
func (s *shell) members(t *testing.T) map[string]member {
	t.Helper()
	tables := memberTables(t, s.run(t, "!cluster_members --json", 10*time.Second))
	if len(tables) == 0 {
		t.Fatalf("%s printed no member table", s.alias)
	}
	out := map[string]member{}
	for _, m := range tables[len(tables)-1] {
		out[m.Alias] = m
	}
	return out
}

// rss is the resident memory of the shell's process.
func (s *shell) rss(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// cpuTicks is the user+system CPU time of the shell's process, in clock
// ticks (1/100 s on Linux).
func (s *shell) cpuTicks(t *testing.T) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return ut + st
}

// watch samples the victim's RSS while an attack runs and logs its peak
// growth and CPU use when stop is called: the figures in BENCHMARKS.md.
func (s *shell) watch(t *testing.T, attack string) (stop func() (peak int64)) {
	base, ticks, start := s.rss(t), s.cpuTicks(t), time.Now()
	var peak atomic.Int64
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			if g := s.rss(t) - base; g > peak.Load() {
				peak.Store(g)
			}
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return func() int64 {
		close(done)
		<-finished
		el := time.Since(start)
		cpu := float64(s.cpuTicks(t)-ticks) * 10 / float64(el.Milliseconds()) * 100
		t.Logf("figures: %s: %s RSS %d MiB at start, peak +%.1f MiB, CPU %.0f%% of a core over %v",
			attack, s.alias, base>>20, float64(peak.Load())/(1<<20), cpu, el.Round(10*time.Millisecond))
		return peak.Load()
	}
}

// cluster3 starts n1, n2, n3 joined and converged.
func cluster3(t *testing.T) []*shell {
	t.Helper()
	p1 := freePort(t)
	n1 := startShell(t, "n1", p1)
	n1.run(t, "!start_cluster", 10*time.Second)
	n2 := startShell(t, "n2", freePort(t), "--join", n1.addr, "--tags", "role=worker")
	n3 := startShell(t, "n3", freePort(t), "--join", n1.addr, "--tags", "role=worker")
	all := []*shell{n1, n2, n3}
	for _, s := range all {
		s.run(t, "!wait members 3 30s", 40*time.Second)
	}
	return all
}

// waitAliveEverywhere waits until every shell lists each of aliases alive.
func waitAliveEverywhere(t *testing.T, shells []*shell, limit time.Duration, aliases ...string) {
	t.Helper()
	for _, s := range shells {
		for _, a := range aliases {
			if a == s.alias {
				continue
			}
			s.run(t, fmt.Sprintf("!wait %s alive %s", a, limit), limit+10*time.Second)
		}
	}
}

// attacker is a hostile process's connection, speaking the protocol by hand.
type attacker struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *attacker {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &attacker{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (a *attacker) send(m protocol.Message) error {
	b, err := protocol.Frame(m)
	if err != nil {
		a.t.Fatal(err)
	}
	a.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err = a.nc.Write(b)
	return err
}

// next reads one frame within limit.
func (a *attacker) next(limit time.Duration) (protocol.Message, error) {
	a.nc.SetReadDeadline(time.Now().Add(limit))
	p, err := protocol.NewFrameReader(a.br, 0).Next()
	if err != nil {
		return nil, err
	}
	return protocol.NewDecoder().Decode(p)
}

// join makes the attacker a member: Hello as alias, advertising addr.
func (a *attacker) join(alias, addr string, hello bool) (protocol.Message, error) {
	from := protocol.Member{Alias: alias, Addr: addr, State: protocol.StateAlive}
	var m protocol.Message = &protocol.Join{Version: protocol.Version, Cluster: protocol.DefaultCluster, From: from, ConnID: math.MaxUint64}
	if hello {
		m = &protocol.Hello{Version: protocol.Version, Cluster: protocol.DefaultCluster, From: from, ConnID: math.MaxUint64}
	}
	if err := a.send(m); err != nil {
		return nil, err
	}
	return a.next(5 * time.Second)
}

// drain reads and discards what the node sends, answering pings so that
// the attacker stays a live member.
func (a *attacker) drain() {
	go func() {
		for {
			m, err := a.next(time.Hour)
			if err != nil {
				return
			}
			if p, ok := m.(*protocol.Ping); ok {
				a.send(&protocol.Ack{Seq: p.Seq})
			}
		}
	}()
}

// counter is a listener that counts the connections made to it.
type counter struct {
	ln net.Listener
	n  atomic.Int64
}

func newCounter(t *testing.T) *counter { return countAt(t, "127.0.0.1:0") }

// countAt counts the connections made to addr, waiting up to 10 s for the
// address to be free (a killed process's port).
func countAt(t *testing.T, addr string) *counter {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	for deadline := time.Now().Add(10 * time.Second); err != nil && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		ln, err = net.Listen("tcp", addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	c := &counter{ln: ln}
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			c.n.Add(1)
			go io.Copy(io.Discard, nc)
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return c
}

func (c *counter) addr() string { return c.ln.Addr().String() }

func TestHostilePeers(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	shells := cluster3(t)
	n1, n2 := shells[0], shells[1]
	evilHome := newCounter(t) // the attacker's own advertised address

	t.Run("a forged leave or failure does not evict a member", func(t *testing.T) {
		a := dialRaw(t, n1.addr)
		if ack, err := a.join("evil-leave", evilHome.addr(), true); err != nil || ack.(*protocol.HelloAck).Error != "" {
			t.Fatalf("attacker could not join: %v %+v", err, ack)
		}
		a.drain()
		inc := n1.members(t)["n2"].Incarnation
		a.send(&protocol.Leave{Alias: "n2", Incarnation: math.MaxUint64})
		a.send(&protocol.Gossip{Updates: []protocol.Member{
			{Alias: "n2", Addr: n2.addr, State: protocol.StateFailed, Incarnation: math.MaxUint64},
		}})
		a.send(&protocol.Gossip{Updates: []protocol.Member{
			{Alias: "n2", Addr: n2.addr, State: protocol.StateLeft, Incarnation: inc + 1},
		}})
		time.Sleep(2 * time.Second) // real time: the cluster's own repair
		for _, s := range shells {
			if m := s.members(t)["n2"]; s != n2 && m.State != "alive" {
				t.Fatalf("%s lists n2 %s at %d two seconds after forged news", s.alias, m.State, m.Incarnation)
			}
		}
	})

	t.Run("an impostor cannot take over a connected alias", func(t *testing.T) {
		a := dialRaw(t, n1.addr)
		ack, err := a.join("n2", n2.addr, false)
		if err == nil {
			if ja, ok := ack.(*protocol.JoinAck); !ok || ja.Error == "" && !ja.Duplicate {
				t.Fatalf("n1 accepted a second connection claiming n2: %+v", ack)
			}
		}
		out := n1.run(t, "!ping n2", 10*time.Second)
		if !strings.Contains(out, "n2") || strings.Contains(out, "no answer") {
			t.Fatalf("n2 no longer answers n1 after the takeover attempt: %q", out)
		}
	})

	t.Run("an alias with terminal escapes is refused", func(t *testing.T) {
		a := dialRaw(t, n1.addr)
		ack, err := a.join("x\x1b]0;pwned\x07\nn9 127.0.0.1:1 failed", evilHome.addr(), true)
		if err == nil {
			if ha, ok := ack.(*protocol.HelloAck); ok && ha.Error == "" {
				t.Fatalf("n1 admitted an alias with control characters")
			}
		}
		for alias := range n1.members(t) {
			if strings.ContainsAny(alias, "\x1b\x07\n") {
				t.Fatalf("an alias with control characters is in the table: %q", alias)
			}
		}
	})

	t.Run("ping requests for unknown targets dial nothing", func(t *testing.T) {
		scan := newCounter(t)
		a := dialRaw(t, n1.addr)
		if _, err := a.join("evil-scan", evilHome.addr(), true); err != nil {
			t.Fatal(err)
		}
		nacks := make(chan *protocol.Nack, 256)
		go func() {
			for {
				m, err := a.next(10 * time.Second)
				if err != nil {
					close(nacks)
					return
				}
				switch m := m.(type) {
				case *protocol.Nack:
					nacks <- m
				case *protocol.Ping:
					a.send(&protocol.Ack{Seq: m.Seq})
				}
			}
		}()
		for i := 0; i < 200; i++ {
			a.send(&protocol.PingReq{Seq: uint32(i), Target: fmt.Sprintf("ghost%d", i), Addr: scan.addr()})
		}
		got := 0
		timeout := time.After(10 * time.Second)
	collect:
		for got < 200 {
			select {
			case nk, ok := <-nacks:
				if !ok {
					break collect
				}
				if nk.Refused {
					t.Fatal("a nack for an unknown target says whether its address refused")
				}
				got++
			case <-timeout:
				break collect
			}
		}
		if n := scan.n.Load(); n != 0 {
			t.Fatalf("n1 dialled an address only a ping request named, %d times", n)
		}
	})

	t.Run("memory before the handshake stays bounded", func(t *testing.T) {
		stop := n1.watch(t, "oversized first frames")
		// A 4 MiB HelloAck of millions of empty members as the first frame,
		// three times over.
		body := make([]byte, 0, protocol.MaxFrameSize)
		body = append(body, byte(protocol.TypeHelloAck), 0x95, 0x01, 0xa0, 0xa0, 0x90, 0xdd)
		n := protocol.MaxFrameSize - len(body) - 4
		body = bin.BigEndian.AppendUint32(body, uint32(n))
		for i := 0; i < n; i++ {
			body = append(body, 0x90)
		}
		frame := bin.AppendUvarint(nil, uint64(len(body)))
		frame = append(frame, body...)
		var wg sync.WaitGroup
		for i := 0; i < 3; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a := dialRaw(t, n1.addr)
				a.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
				a.nc.Write(frame)
			}()
		}
		// 250 connections announcing a 4 MiB frame and sending most of it.
		prefix := bin.AppendUvarint(nil, protocol.MaxFrameSize)
		filler := make([]byte, 1<<20)
		for i := 0; i < 250; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a := dialRaw(t, n1.addr)
				a.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
				if _, err := a.nc.Write(prefix); err != nil {
					return
				}
				for j := 0; j < 4; j++ {
					if _, err := a.nc.Write(filler); err != nil {
						return
					}
				}
			}()
		}
		wg.Wait()
		if grown := stop(); grown > rssBound {
			t.Fatalf("n1 grew by %d MiB under oversized handshakes", grown>>20)
		}
		waitAliveEverywhere(t, shells, 10*time.Second, "n1", "n2", "n3")
	})

	t.Run("joined peers holding unfinished frames are bounded and closed", func(t *testing.T) {
		stop := n1.watch(t, "100 joined peers holding half-sent 4 MiB frames")
		prefix := bin.AppendUvarint(nil, protocol.MaxFrameSize)
		chunk := make([]byte, 2<<20)
		var conns []*attacker
		for i := 0; i < 100; i++ {
			a := dialRaw(t, n1.addr)
			if _, err := a.join(fmt.Sprintf("hold%d", i), evilHome.addr(), false); err != nil {
				t.Fatalf("join %d: %v", i, err)
			}
			a.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
			a.nc.Write(prefix)
			a.nc.Write(chunk)
			conns = append(conns, a)
		}
		n5 := startShell(t, "n5", freePort(t), "--join", n1.addr)
		n5.run(t, "!wait members 4 30s", 40*time.Second)
		n5.run(t, "!leave", 10*time.Second)
		// Every frame must complete within the frame timeout: n1 closes them.
		deadline := time.Now().Add(30 * time.Second)
		for _, a := range conns {
			a.nc.SetReadDeadline(deadline)
			for {
				if _, err := a.br.ReadByte(); err != nil {
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						t.Fatal("a joined connection holding half a frame was not closed")
					}
					break
				}
			}
		}
		if grown := stop(); grown > rssBound+(32<<20) {
			t.Fatalf("n1 grew by %d MiB holding unfinished frames", grown>>20)
		}
	})

	t.Run("a flood of fake members is capped and dials little", func(t *testing.T) {
		fake := newCounter(t)
		a := dialRaw(t, n1.addr)
		if _, err := a.join("evil-flood", evilHome.addr(), true); err != nil {
			t.Fatal(err)
		}
		a.drain()
		stop := n1.watch(t, "20,000 fake members in 4 gossip frames")
		for f := 0; f < 4; f++ {
			var ups []protocol.Member
			for i := 0; i < 5000; i++ {
				ups = append(ups, protocol.Member{Alias: fmt.Sprintf("zz-fake%d-%d", f, i), Addr: fake.addr(), State: protocol.StateAlive, Incarnation: 1})
			}
			a.send(&protocol.Gossip{Updates: ups})
		}
		time.Sleep(5 * time.Second) // real time: what the flood costs
		if grown := stop(); grown > rssBound {
			t.Fatalf("n1 grew by %d MiB under 20,000 fake members", grown>>20)
		}
		if got := len(n1.members(t)); got > 300+4096 {
			t.Fatalf("n1 lists %d members after the flood", got)
		}
		// Each node takes at most a burst of new members from one source and
		// dials each of them about once: no re-dial of hearsay.
		if n := fake.n.Load(); n > 2*3*256 {
			t.Fatalf("the three nodes dialled the fake members' address %d times in 5 s", n)
		}
		waitAliveEverywhere(t, shells, 10*time.Second, "n1", "n2", "n3")
	})

	t.Run("a member with a million tags is refused", func(t *testing.T) {
		a := dialRaw(t, n1.addr)
		tags := map[string]string{}
		for i := 0; len(tags) < 100000; i++ {
			tags["k"+strconv.Itoa(i)] = "v"
		}
		from := protocol.Member{Alias: "evil-tags", Addr: evilHome.addr(), State: protocol.StateAlive, Tags: tags}
		a.send(&protocol.Hello{Version: protocol.Version, Cluster: protocol.DefaultCluster, From: from})
		if m, err := a.next(5 * time.Second); err == nil {
			if ha, ok := m.(*protocol.HelloAck); ok && ha.Error == "" {
				t.Fatal("n1 admitted a member with 100,000 tags")
			}
		}
		if _, ok := n1.members(t)["evil-tags"]; ok {
			t.Fatal("the member with 100,000 tags is in the table")
		}
	})

	t.Run("a dispatcher that never reads its answers is bounded", func(t *testing.T) {
		a := dialRaw(t, n2.addr)
		if _, err := a.join("evil-jobs", evilHome.addr(), true); err != nil {
			t.Fatal(err)
		}
		stop := n2.watch(t, "80,000 jobs from a dispatcher that never reads")
		var frames []byte
		for i := 1; i <= 80000; i++ {
			b, _ := protocol.Frame(&protocol.JobRequest{ID: uint64(i), Kind: "echo", Args: []string{"x"}})
			frames = append(frames, b...)
		}
		a.nc.SetWriteDeadline(time.Now().Add(20 * time.Second))
		a.nc.Write(frames) // never reads an answer
		st := jsonLinesWith(n1.run(t, "!status n2 --json", 20*time.Second), "goroutines")
		if len(st) == 0 {
			t.Fatal("no status from n2")
		}
		if g := st[0]["goroutines"].(float64); g > 500 {
			t.Fatalf("n2 runs %v goroutines while a dispatcher does not read", g)
		}
		if grown := stop(); grown > rssBound {
			t.Fatalf("n2 grew by %d MiB while a dispatcher does not read", grown>>20)
		}
		a.nc.Close()
		waitAliveEverywhere(t, shells, 10*time.Second, "n1", "n2", "n3")
	})

	t.Run("idle handshakes do not lock out a joiner", func(t *testing.T) {
		// 1,100 idle connections, each opened again a second after the node
		// closes it: more than every handshake slot, all the time.
		stopFlood := make(chan struct{})
		var wg sync.WaitGroup
		for w := 0; w < 1100; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, 64)
				for {
					nc, err := net.DialTimeout("tcp", n1.addr, time.Second)
					if err == nil {
						go func() { <-stopFlood; nc.Close() }()
						for {
							if _, err := nc.Read(buf); err != nil {
								break
							}
						}
						nc.Close()
					}
					select {
					case <-stopFlood:
						return
					case <-time.After(time.Second):
					}
				}
			}()
		}
		time.Sleep(time.Second) // real time: let the flood fill every slot
		stop := n1.watch(t, "1,100 idle connections reopened as they close")
		logged := strings.Count(n1.stderr.String(), "\n")
		n4 := startShell(t, "n4", freePort(t), "--join", n1.addr)
		n4.run(t, "!wait members 4 30s", 40*time.Second)
		close(stopFlood)
		wg.Wait()
		stop()
		if lines := strings.Count(n1.stderr.String(), "\n") - logged; lines > 20 {
			t.Fatalf("n1 logged %d lines during the flood; refused connections must be counted, not each logged", lines)
		}
	})
}
