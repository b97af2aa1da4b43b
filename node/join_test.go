package node

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"meshell/mesh"
	"meshell/protocol"
)

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	return ln.Addr().String()
}

// silentAddr is a loopback address that takes connections and never
// answers, and how many it took so far.
func silentAddr(t *testing.T) (string, func() int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	return ln.Addr().String(), func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(conns)
	}
}

// assertFree checks that n, after a failed join, is in no cluster: not
// running, listed left by itself, its port closed; and that it starts
// again at the next incarnation.
func assertFree(t *testing.T, n *Node, wantInc uint64) {
	t.Helper()
	if n.Running() {
		t.Fatalf("%s runs after its failed join", n.Alias())
	}
	if e, ok := n.Members().Get(n.Alias()); !ok || e.State != StateLeft {
		t.Fatalf("%s lists itself as %+v, want left", n.Alias(), e)
	}
	if c, err := net.DialTimeout("tcp", n.Addr(), time.Second); err == nil {
		c.Close()
		t.Fatalf("%s still listens on %s", n.Alias(), n.Addr())
	}
	if _, err := n.Start(""); err != nil {
		t.Fatalf("start after the failed join: %v", err)
	}
	if inc := n.Self().Incarnation; inc != wantInc || !n.Running() {
		t.Fatalf("%s started again at incarnation %d (running %v), want %d", n.Alias(), inc, n.Running(), wantInc)
	}
}

func TestAFailedJoinLeavesANodeInNoClusterFree(t *testing.T) {
	seed := startNode(t, "seed")
	if _, err := startNode(t, "taken").Join(ctxFor(t, 10*time.Second), seed.Addr()); err != nil {
		t.Fatal(err)
	}
	waitAlive(t, seed, 2)
	once := Retry{Max: 2, First: time.Millisecond, Cap: time.Millisecond}
	for _, tt := range []struct {
		name, alias string
		join        func(n *Node) error
		want        string
	}{
		{"refused port", "j1", func(n *Node) error { _, err := n.Join(ctxFor(t, 10*time.Second), closedAddr(t)); return err }, "connection refused"},
		{"no answer", "j2", func(n *Node) error {
			addr, _ := silentAddr(t)
			_, err := n.Join(ctxFor(t, time.Second), addr)
			return err
		}, ""},
		{"alias taken", "taken", func(n *Node) error { _, err := n.Join(ctxFor(t, 10*time.Second), seed.Addr()); return err }, "already used"},
		{"JoinRetry", "j3", func(n *Node) error {
			_, err := n.JoinRetry(ctxFor(t, 10*time.Second), []string{closedAddr(t)}, time.Second, once)
			return err
		}, "connection refused"},
		{"JoinAny", "j4", func(n *Node) error { return n.JoinAny(ctxFor(t, 10*time.Second), []string{closedAddr(t)}, time.Second) }, "connection refused"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := newNode(t, tt.alias)
			if err := tt.join(n); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("join: %v, want an error saying %q", err, tt.want)
			}
			assertFree(t, n, 1)
			if err := tt.join(n); err == nil {
				t.Fatal("the second join succeeded")
			}
			if !n.Running() { // it was running before this one
				t.Fatalf("a node in a cluster was taken out of it by a failed join")
			}
		})
	}
	if e, ok := seed.Members().Get("taken"); !ok || e.State != StateAlive {
		t.Fatalf("the member whose alias was refused to another: %+v", e)
	}
}

func TestAFailedJoinLeavesAMemberInItsCluster(t *testing.T) {
	a, b := startNode(t, "a"), startNode(t, "b")
	if _, err := b.Join(ctxFor(t, 10*time.Second), a.Addr()); err != nil {
		t.Fatal(err)
	}
	waitAlive(t, b, 2)
	if _, err := b.Join(ctxFor(t, 10*time.Second), closedAddr(t)); err == nil {
		t.Fatal("joining a closed port succeeded")
	}
	if !b.Running() || b.Members().Count(StateAlive) != 2 || !b.mesh.Connected("a") {
		t.Fatalf("b after a failed join: running %v, table %+v", b.Running(), b.Members().Entries)
	}
}

func TestJoiningItsOwnAddress(t *testing.T) {
	bind := closedAddr(t) // the port the fresh node will listen on
	n := newNode(t, "n", func(c *Config) { c.Bind = bind })
	_, err := n.Join(ctxFor(t, 10*time.Second), bind)
	if !errors.Is(err, mesh.ErrSelf) || !strings.Contains(err.Error(), "own address") {
		t.Fatalf("a fresh node joining its own listen address: %v", err)
	}
	assertFree(t, n, 1)
	if err := n.Leave(ctxFor(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}

	// Among several addresses, its own is passed over.
	seed := startNode(t, "seed")
	if err := n.JoinAny(ctxFor(t, 10*time.Second), []string{bind, seed.Addr()}, 5*time.Second); err != nil {
		t.Fatalf("joining through [own, seed]: %v", err)
	}
	waitAlive(t, seed, 2)
}

func TestFinalRoundsThroughSeveralAddresses(t *testing.T) {
	self := fmt.Errorf("x is %w", mesh.ErrSelf)
	refused := &mesh.RefusedError{Addr: "x", Reason: "no"}
	unreachable := errors.New("connection refused")
	for _, tt := range []struct {
		name string
		errs []error
		want bool
	}{
		{"only its own address", []error{self}, true},
		{"its own and one unreachable", []error{self, unreachable}, false},
		{"unreachable and its own", []error{unreachable, self}, false},
		{"its own and a refusal", []error{self, refused}, true},
		{"unreachable", []error{unreachable}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := Final(&joinError{n: len(tt.errs), errs: tt.errs}); got != tt.want {
				t.Fatalf("Final = %v, want %v", got, tt.want)
			}
		})
	}
}

// A node that left forgets the members it knew; started again it is the
// first node of a new cluster, and the cluster it left keeps it left.
func TestStartAfterLeaveIsANewCluster(t *testing.T) {
	a, b := startNode(t, "a"), startNode(t, "b")
	if _, err := b.Join(ctxFor(t, 10*time.Second), a.Addr()); err != nil {
		t.Fatal(err)
	}
	waitAlive(t, b, 2)
	if err := b.Leave(ctxFor(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	waitState(t, a, "b", StateLeft)
	if es := b.Members().Entries; len(es) != 1 || es[0].Alias != "b" || es[0].State != StateLeft {
		t.Fatalf("b after leaving lists %+v, want itself alone, left", es)
	}
	if _, err := b.Start(""); err != nil {
		t.Fatal(err)
	}
	if es := b.Members().Entries; len(es) != 1 || es[0].Alias != "b" || es[0].State != StateAlive || es[0].Incarnation != 1 {
		t.Fatalf("b started again lists %+v, want itself alone, alive at incarnation 1", es)
	}
	c := startNode(t, "c")
	if _, err := c.Join(ctxFor(t, 10*time.Second), b.Addr()); err != nil {
		t.Fatal(err)
	}
	waitAlive(t, c, 2)
	if e, _ := a.Members().Get("b"); e.State != StateLeft || a.Members().Count(StateAlive) != 1 {
		t.Fatalf("the cluster b left lists it %s, with %d alive", e.State, a.Members().Count(StateAlive))
	}
}

// TestALeaverShowsNoReaps: a node that leaves forgets the others, who are
// alive; it publishes no member-reap about them.
func TestALeaverShowsNoReaps(t *testing.T) {
	a, b := startNode(t, "a"), startNode(t, "b")
	if _, err := b.Join(ctxFor(t, 10*time.Second), a.Addr()); err != nil {
		t.Fatal(err)
	}
	waitAlive(t, b, 2)
	sub := b.Subscribe(64)
	if err := b.Leave(ctxFor(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	b.Close() // its run loop has ended: every event it had is published
	for {
		select {
		case ev := <-sub.C:
			if ev.Kind == MemberReap {
				t.Fatalf("the leaver published %s of %s", ev.Kind, ev.Member.Alias)
			}
			continue
		default:
		}
		break
	}
}

// A seed's member list is the seed's word: one naming 2,000 members at one
// address that never answers gets a bounded number of dials there while
// they wait, and a rate-limited warning, not one line a member.
func TestAHostileSeedsListIsDialledBounded(t *testing.T) {
	sink, accepted := silentAddr(t)
	seed := seedAnswering(t, func(from protocol.Member) *protocol.HelloAck {
		ack := &protocol.HelloAck{Version: protocol.Version, Cluster: DefaultCluster, From: protocol.Member{Alias: "seed", Addr: "127.0.0.1:1", State: protocol.StateAlive}}
		for i := range 2000 {
			ack.Members = append(ack.Members, protocol.Member{Alias: fmt.Sprintf("m%d", i), Addr: sink, State: protocol.StateAlive})
		}
		return ack
	})
	logs, hook := logtest.NewNullLogger()
	n := newNode(t, "j", func(c *Config) { c.Log = logs })
	// Shorter than a Join's wait for its answer: no dial ends before the
	// join does, so every one under way is still counted.
	n.Join(ctxFor(t, time.Second), seed)
	// The join's dials, and those of probes of the new members (mesh's
	// MaxDials, 256 too).
	if k := accepted(); k > 2*joinDialsAtOnce {
		t.Errorf("%d dials to one address, want at most %d under way", k, 2*joinDialsAtOnce)
	}
	warned := 0
	for _, e := range hook.AllEntries() {
		if e.Level <= logrus.WarnLevel {
			warned++
		}
	}
	if warned > 3 {
		t.Errorf("%d warnings for the members not reached, want one", warned)
	}
}

// seedAnswering is a raw seed on loopback that answers every Hello with
// answer(the Hello's sender); it returns its address.
func seedAnswering(t *testing.T, answer func(protocol.Member) *protocol.HelloAck) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				p, err := protocol.NewFrameReader(c, 0).Next()
				if err != nil {
					return
				}
				m, err := protocol.NewDecoder().Decode(p)
				h, ok := m.(*protocol.Hello)
				if err != nil || !ok {
					return
				}
				b, err := protocol.Frame(answer(h.From))
				if err != nil {
					return
				}
				c.Write(b)
				c.Read(make([]byte, 1)) // held until the joiner closes it
			}()
		}
	}()
	return ln.Addr().String()
}

// A join's count of members is of the live ones (alive or suspect), as the
// prompt's "N alive" counts: a member that left, still in the table, is
// not one.
func TestJoinCountsOnlyLiveMembers(t *testing.T) {
	a, b, c := startNode(t, "a"), startNode(t, "b"), startNode(t, "c")
	for _, n := range []*Node{b, c} {
		if _, err := n.Join(ctxFor(t, 5*time.Second), a.Addr()); err != nil {
			t.Fatal(err)
		}
	}
	waitAlive(t, a, 3)
	c.Leave(ctxFor(t, 5*time.Second))
	waitState(t, a, "c", StateLeft)
	d := startNode(t, "d")
	res, err := d.Join(ctxFor(t, 5*time.Second), a.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if res.Members != 3 {
		t.Errorf("d joined with %d members, want 3 (a, b, d; c left): table %+v", res.Members, d.Members().Entries)
	}
	// a member joining again through another keeps c, left, in its table
	if res, err = a.Join(ctxFor(t, 5*time.Second), b.Addr()); err != nil {
		t.Fatal(err)
	}
	if res.Members != 3 {
		t.Errorf("a joined again with %d members, want 3 (a, b, d; c left): table %+v", res.Members, a.Members().Entries)
	}
}
