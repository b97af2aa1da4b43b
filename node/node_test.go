package node

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"meshell/manager"
	"meshell/mesh"
	"meshell/node/swim"
	"meshell/protocol"
)

// quietLog keeps expected warnings (hostile input, refusals) out of test output.
func quietLog() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

type testOpt func(*Config)

func withCluster(name string) testOpt { return func(c *Config) { c.Cluster = name } }

// startNode starts a node listening on a free loopback port.
func startNode(t testing.TB, alias string, opts ...testOpt) *Node {
	t.Helper()
	n := newNode(t, alias, opts...)
	if _, err := n.Start(""); err != nil {
		t.Fatal(err)
	}
	return n
}

// newNode is a node on a free loopback port that is not started: in no
// cluster yet.
func newNode(t testing.TB, alias string, opts ...testOpt) *Node {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Alias = alias
	cfg.Bind = "127.0.0.1:0"
	// Join tests run many nodes in one process under -race on two cores:
	// WAN timings keep CPU starvation from raising suspicions they are not
	// about. Failure-detection tests choose their own timings.
	cfg.SWIM = Tunables(swim.WANConfig())
	cfg.Log = quietLog()
	cfg.Seed = int64(len(alias)*7919 + int(alias[len(alias)-1]))
	for _, o := range opts {
		o(&cfg)
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func waitAlive(t testing.TB, n *Node, want int) {
	t.Helper()
	err := n.WaitFor(ctxFor(t, 20*time.Second), func(s *Snapshot) bool { return s.Count(StateAlive) == want })
	if err != nil {
		t.Fatalf("%s: %d alive members, want %d: %v (table %+v)", n.Alias(), n.Members().Count(StateAlive), want, err, n.Members().Entries)
	}
}

func TestJoinThroughAnyMemberConverges(t *testing.T) {
	nodes := []*Node{startNode(t, "n1")}
	for i := 2; i <= 5; i++ {
		n := startNode(t, fmt.Sprintf("n%d", i))
		seed := nodes[len(nodes)-1] // each joins through the newest member, not the first
		if _, err := n.Join(ctxFor(t, 5*time.Second), seed.Addr()); err != nil {
			t.Fatalf("n%d joining through %s: %v", i, seed.Alias(), err)
		}
		nodes = append(nodes, n)
	}
	advertised := map[string]string{}
	for _, n := range nodes {
		advertised[n.Alias()] = n.Addr()
	}
	for _, n := range nodes {
		waitAlive(t, n, len(nodes))
		for _, e := range n.Members().Entries {
			if e.Addr != advertised[e.Alias] {
				t.Errorf("%s lists %s at %s; it listens on %s (an ephemeral port leaked into the table)", n.Alias(), e.Alias, e.Addr, advertised[e.Alias])
			}
		}
	}
	// Exactly one connection per pair once the mesh is complete.
	for _, n := range nodes {
		deadline := time.Now().Add(10 * time.Second)
		for n.mesh.Stats().Conns != len(nodes)-1 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if got := n.mesh.Stats().Conns; got != len(nodes)-1 {
			t.Errorf("%s holds %d connections, want %d", n.Alias(), got, len(nodes)-1)
		}
	}
}

// TestHandshakeDoesNotWaitForABusyLoop: a seed answers a Hello from its
// published table even while its run loop is busy (in a join storm, every
// handshake would otherwise wait for a loaded loop's turn); the newcomer is
// in its table once the loop runs again.
func TestHandshakeDoesNotWaitForABusyLoop(t *testing.T) {
	seed := startNode(t, "s1")
	busy, release := make(chan struct{}), make(chan struct{})
	go seed.call(context.Background(), func(*swim.Core) { close(busy); <-release })
	<-busy
	joiner := startNode(t, "j1")
	_, err := joiner.Join(ctxFor(t, 10*time.Second), seed.Addr())
	close(release)
	if err != nil {
		t.Fatalf("join while the seed's loop was busy: %v", err)
	}
	waitAlive(t, seed, 2)
	waitAlive(t, joiner, 2)
}

func TestDuplicateAliasRefused(t *testing.T) {
	a := startNode(t, "a")
	b := startNode(t, "b")
	if _, err := b.Join(ctxFor(t, 5*time.Second), a.Addr()); err != nil {
		t.Fatal(err)
	}
	waitAlive(t, a, 2)
	imposter := startNode(t, "b")
	_, err := imposter.Join(ctxFor(t, 5*time.Second), a.Addr())
	if err == nil {
		t.Fatal("a second node with alias b was admitted")
	}
	want := fmt.Sprintf(`alias "b" is already used by %s`, b.Addr())
	if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "--alias") {
		t.Fatalf("error %q does not say %q and what to do", err, want)
	}
	e, ok := a.Members().Get("b")
	if !ok || e.Addr != b.Addr() || e.State != StateAlive {
		t.Fatalf("the existing member was disturbed: %+v", e)
	}
}

// Two processes that join with one alias at the same instant: one is
// admitted, the other refused, and the seed lists the alias once, at the
// admitted one's address.
func TestSameAliasJoiningAtOnceAdmitsOne(t *testing.T) {
	seed := startNode(t, "seed")
	for round := 0; round < 5; round++ { // each refusal waits out mesh.Config.Takeover
		alias := fmt.Sprintf("d%02d", round)
		nodes := [2]*Node{startNode(t, alias), startNode(t, alias)}
		var errs [2]error
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, n := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, errs[i] = n.Join(ctxFor(t, 10*time.Second), seed.Addr())
			}()
		}
		close(start)
		wg.Wait()
		if (errs[0] == nil) == (errs[1] == nil) {
			t.Fatalf("round %d: both joins as %q answered alike: %v, %v; want one admitted, one refused", round, alias, errs[0], errs[1])
		}
		won, lost := 0, 1
		if errs[0] != nil {
			won, lost = 1, 0
		}
		if want := fmt.Sprintf("alias %q is already used by %s", alias, nodes[won].Addr()); !strings.Contains(errs[lost].Error(), want) {
			t.Fatalf("round %d: the refused join says %q, want %q", round, errs[lost], want)
		}
		waitAlive(t, seed, round+2)
		if e, ok := seed.Members().Get(alias); !ok || e.Addr != nodes[won].Addr() {
			t.Fatalf("round %d: the seed lists %q as %+v, want it at %s", round, alias, e, nodes[won].Addr())
		}
	}
}

func TestRestartUnderSameAliasAndAddressReplacesEntry(t *testing.T) {
	a := startNode(t, "a")
	b := startNode(t, "b")
	if _, err := b.Join(ctxFor(t, 5*time.Second), a.Addr()); err != nil {
		t.Fatal(err)
	}
	waitAlive(t, a, 2)
	addr := b.Addr()
	b.Close() // a crash: no goodbye
	cfg := DefaultConfig()
	cfg.Alias, cfg.Bind, cfg.Log, cfg.SWIM = "b", addr, quietLog(), Tunables(swim.WANConfig())
	b2, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	if _, err := b2.Join(ctxFor(t, 5*time.Second), a.Addr()); err != nil {
		t.Fatalf("restart under the same alias and address was refused: %v", err)
	}
	err = a.WaitFor(ctxFor(t, 10*time.Second), func(s *Snapshot) bool {
		e, ok := s.Get("b")
		return ok && e.State == StateAlive && e.Incarnation > 0 || ok && e.State == StateAlive && b2.Self().Incarnation == e.Incarnation
	})
	if err != nil {
		t.Fatalf("restarted b not alive at a: %+v", a.Members().Entries)
	}
}

func TestClusterNameMismatchRefusedOnBothSides(t *testing.T) {
	a := startNode(t, "a", withCluster("blue"))
	b := startNode(t, "b", withCluster("green"))
	_, err := b.Join(ctxFor(t, 5*time.Second), a.Addr())
	if err == nil {
		t.Fatal("a node of cluster green joined cluster blue")
	}
	if !strings.Contains(err.Error(), `"blue"`) || !strings.Contains(err.Error(), `"green"`) {
		t.Fatalf("error %q does not name both clusters", err)
	}
	if got := a.Members().Count(StateAlive); got != 1 {
		t.Fatalf("blue's table has %d members after the refusal", got)
	}
	// The other direction is refused too.
	if _, err := a.Join(ctxFor(t, 5*time.Second), b.Addr()); err == nil {
		t.Fatal("blue joined green")
	}
}

func TestJoinSelfRefused(t *testing.T) {
	a := startNode(t, "a")
	_, err := a.Join(ctxFor(t, 5*time.Second), a.Addr())
	if !errors.Is(err, mesh.ErrSelf) || !Final(err) || !strings.Contains(err.Error(), a.Addr()+" is this node's own address") {
		t.Fatalf("a node joining itself: %v; want a final error saying the address is its own", err)
	}
	if a.mesh.Stats().Conns != 0 || !a.Running() {
		t.Fatalf("after joining itself: %d connections, running %v; want none and still running", a.mesh.Stats().Conns, a.Running())
	}
}

// TestFortyNodesJoinOneSeedAtOnce checks joining, not failure detection:
// every join succeeds and every node lists all forty members, none failed or
// left. Under -race on two loaded cores a starved node may be suspect for a
// moment, which is failure detection's business (the simulator asserts that
// a 200-node cluster converges to all alive); the suspicion multiplier is
// raised so that no suspicion can run out within the test.
func TestFortyNodesJoinOneSeedAtOnce(t *testing.T) {
	const n = 40
	patient := func(c *Config) { c.SWIM.SuspicionMult = 60 }
	seed := startNode(t, "seed", patient)
	nodes := make([]*Node, n-1)
	for i := range nodes {
		nodes[i] = startNode(t, fmt.Sprintf("w%02d", i), patient)
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for _, nd := range nodes {
		wg.Add(1)
		go func(nd *Node) {
			defer wg.Done()
			if _, err := nd.Join(ctxFor(t, 20*time.Second), seed.Addr()); err != nil {
				errs <- fmt.Errorf("%s: %w", nd.Alias(), err)
			}
		}(nd)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, nd := range append([]*Node{seed}, nodes...) {
		waitJoined(t, nd, n)
	}
}

// waitJoined waits until n lists want members, none of them left. The join
// is the claim here: on a starved machine probes may time out and mark a
// member suspect or even failed, which the failure-detection tests judge.
func waitJoined(t testing.TB, n *Node, want int) {
	t.Helper()
	joined := func(s *Snapshot) bool {
		return len(s.Entries) == want && s.Count(StateLeft) == 0
	}
	if err := n.WaitFor(ctxFor(t, 60*time.Second), joined); err != nil {
		s := n.Members()
		t.Fatalf("%s: %d members listed, %d left, want %d joined: %v", n.Alias(), len(s.Entries),
			s.Count(StateLeft), want, err)
	}
}

func TestSimultaneousDialsKeepOneConnection(t *testing.T) {
	for trial := 0; trial < 10; trial++ {
		a := startNode(t, fmt.Sprintf("a%d", trial))
		b := startNode(t, fmt.Sprintf("b%d", trial))
		var wg sync.WaitGroup
		for _, p := range [][2]*Node{{a, b}, {b, a}} {
			wg.Add(1)
			go func(from, to *Node) {
				defer wg.Done()
				from.Join(ctxFor(t, 5*time.Second), to.Addr())
			}(p[0], p[1])
		}
		wg.Wait()
		waitAlive(t, a, 2)
		waitAlive(t, b, 2)
		for _, n := range []*Node{a, b} {
			deadline := time.Now().Add(5 * time.Second)
			for n.mesh.Stats().Conns != 1 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if c := n.mesh.Stats().Conns; c != 1 {
				t.Fatalf("trial %d: %s holds %d connections to its one peer", trial, n.Alias(), c)
			}
		}
		a.Close()
		b.Close()
	}
}

func TestHostileInputClosesOnlyThatConnection(t *testing.T) {
	cfgShort := func(c *Config) { c.HandshakeTimeout = 300 * time.Millisecond }
	a := startNode(t, "a", cfgShort)
	b := startNode(t, "b")
	if _, err := b.Join(ctxFor(t, 5*time.Second), a.Addr()); err != nil {
		t.Fatal(err)
	}
	dial := func() net.Conn {
		c, err := net.Dial("tcp", a.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	garbage := make([]byte, 4096)
	rand.Read(garbage)
	hostile := map[string][]byte{
		"random bytes":       garbage,
		"huge length prefix": binary.AppendUvarint(nil, 1<<40),
		"unknown type":       {2, 200, 0x90},
		"ping before hello":  mustFrame(t, &protocol.Ping{Seq: 1}),
		"truncated hello":    mustFrame(t, &protocol.Hello{Version: protocol.Version, Cluster: "meshell", From: protocol.Member{Alias: "x", Addr: "127.0.0.1:1"}})[:10],
	}
	var conns []net.Conn
	for name, payload := range hostile {
		c := dial()
		if _, err := c.Write(payload); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		conns = append(conns, c)
	}
	idle := make([]net.Conn, 300)
	for i := range idle {
		idle[i] = dial()
	}
	// While all of that is open, the node still admits a new member...
	c := startNode(t, "c")
	if _, err := c.Join(ctxFor(t, 5*time.Second), a.Addr()); err != nil {
		t.Fatalf("join while under hostile input: %v", err)
	}
	waitAlive(t, a, 3)
	// ...and closes every hostile or idle connection by itself.
	for i, hc := range append(conns, idle...) {
		hc.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 256)
		for {
			_, err := hc.Read(buf)
			if err == nil {
				continue // a refusal answer before the close is fine
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("hostile connection %d was not closed by the node", i)
			}
			break
		}
	}
	if e, _ := a.Members().Get("b"); e.State != StateAlive {
		t.Fatalf("the healthy member b was disturbed: %+v", e)
	}
}

func mustFrame(t testing.TB, m protocol.Message) []byte {
	b, err := protocol.Frame(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSlotsTagSurvivesTagChanges(t *testing.T) {
	a := startNode(t, "a")
	if err := a.SetSlots(3); err != nil {
		t.Fatal(err)
	}
	// Tags without slots, or with a forged count, keep the real one.
	for _, tags := range []map[string]string{{"role": "worker"}, {"slots": "99"}, nil} {
		if err := a.SetTags(ctxFor(t, 5*time.Second), tags); err != nil {
			t.Fatal(err)
		}
		if got := a.Self().Tags["slots"]; got != "3" {
			t.Fatalf("after SetTags(%v) the slots tag is %q, want 3", tags, got)
		}
	}
	if got := a.Self().Tags["role"]; got != "" {
		t.Fatalf("SetTags did not replace the tags: role=%q", got)
	}
}

// TestRoundTripsAloneRepublishAtMostOnceASecond: every probe measures a
// round trip; a change of round trips alone replaces the snapshot (a copy of
// the whole table) only once it is rttRefresh old, a member's change at once.
func TestRoundTripsAloneRepublishAtMostOnceASecond(t *testing.T) {
	at := time.Unix(1000, 0)
	snap := &manager.Snapshot{Entries: []manager.Entry{{}}, At: at}
	for _, c := range []struct {
		after         time.Duration
		members, rtts bool
		want          bool
	}{
		{0, false, false, false},
		{rttRefresh / 2, false, true, false},
		{rttRefresh, false, true, true},
		{time.Millisecond, true, false, true},
	} {
		if got := outdated(snap, at.Add(c.after), c.members, c.rtts); got != c.want {
			t.Errorf("%v after, member changed %v, RTTs changed %v: outdated = %v, want %v", c.after, c.members, c.rtts, got, c.want)
		}
	}
	if !outdated(&manager.Snapshot{}, at, false, false) {
		t.Error("the empty first snapshot is not outdated")
	}
}

// TestMessagesAreHandledAfterTheirPeerUp: a peer's PeerUp and its first
// message waiting together are handled in that order, so a Leave sent right
// after the handshake is not lost (before, the loop took either first, and a
// Leave taken first was dropped as from an unknown member, which the PeerUp
// then listed alive).
func TestMessagesAreHandledAfterTheirPeerUp(t *testing.T) {
	for i := range 20 {
		cfg := DefaultConfig()
		cfg.Alias, cfg.Bind, cfg.Log = "a", "127.0.0.1:0", quietLog()
		n, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		x := protocol.Member{Alias: "x", Addr: "127.0.0.1:1", State: protocol.StateAlive}
		n.evidence <- inbound{kind: inUp, from: "x", member: &x}
		n.inbox <- inbound{kind: inMsg, from: "x", msg: &protocol.Leave{Alias: "x"}}
		if _, err := n.Start(""); err != nil {
			t.Fatal(err)
		}
		err = n.WaitFor(ctxFor(t, 2*time.Second), func(sn *Snapshot) bool {
			e, ok := sn.Get("x")
			return ok && e.State == StateLeft
		})
		if err != nil {
			t.Fatalf("run %d: x is not left after its PeerUp and Leave: %s", i, fmt.Sprint(n.Members().Get("x")))
		}
		n.Close()
	}
}

// TestMembershipLinesBounded: a burst of membership lines goes out whole,
// then eventRate a second; the first line after a hold says how many were
// held back.
func TestMembershipLinesBounded(t *testing.T) {
	var b lineBudget
	t0 := time.Unix(1000, 0)
	for i := range eventBurst {
		if _, ok := b.take(t0); !ok {
			t.Fatalf("line %d of a burst held back", i)
		}
	}
	for range 100 {
		if _, ok := b.take(t0); ok {
			t.Fatal("a line past the burst went out at once")
		}
	}
	// Then one line each 1/eventRate s; a second try at once is held.
	step := time.Second / eventRate
	for k := 1; k <= eventRate; k++ {
		at := t0.Add(time.Duration(k) * step)
		held, ok := b.take(at)
		want := 1
		if k == 1 {
			want = 100
		}
		if !ok || held != want {
			t.Fatalf("line at %v: written %v saying %d held, want written saying %d", at.Sub(t0), ok, held, want)
		}
		if _, ok := b.take(at); ok {
			t.Fatalf("two lines at %v", at.Sub(t0))
		}
	}
}

// holdRunLoop keeps n's run loop busy until the channel returned is closed,
// so that what peers send waits in the inbox.
func holdRunLoop(n *Node) chan struct{} {
	release, busy := make(chan struct{}), make(chan struct{})
	n.calls <- func() { close(busy); <-release }
	<-busy
	return release
}

// TestAFloodingPeerFillsOnlyItsShareOfTheInbox: while the run loop is busy,
// one peer's flood takes inboxShare places and is dropped past them; another
// peer's messages still get in.
func TestAFloodingPeerFillsOnlyItsShareOfTheInbox(t *testing.T) {
	n := startNode(t, "a")
	release := holdRunLoop(n)
	h := (*handler)(n)
	for i := range inboxLen {
		h.Receive("flooder", &protocol.Ping{Seq: uint32(i)})
	}
	for i := range 10 {
		h.Receive("honest", &protocol.Ping{Seq: uint32(i)})
	}
	queued, dropped := len(n.inbox), n.dropped.Load()
	close(release)
	if queued != inboxShare+10 || dropped != inboxLen-inboxShare {
		t.Fatalf("%d queued and %d dropped, want the flooder's %d and the other's 10 queued, %d dropped",
			queued, dropped, inboxShare, inboxLen-inboxShare)
	}
	// Handled messages give their places back: the flooder may send again.
	err := n.WaitFor(ctxFor(t, 10*time.Second), func(*Snapshot) bool { return len(n.inbox) == 0 })
	if err != nil {
		t.Fatal(err)
	}
	n.call(ctxFor(t, 10*time.Second), func(*swim.Core) {}) // the last message taken is handled too
	n.shares.mu.Lock()
	left := len(n.shares.n)
	n.shares.mu.Unlock()
	if left != 0 {
		t.Errorf("%d senders still hold places in an empty inbox", left)
	}
}

// TestHeavyFramesAreBoundedByWeight: frames of thousands of members weigh
// what they carry: one sender queues a few, all senders together a bounded
// weight, and a ping still gets in past them.
func TestHeavyFramesAreBoundedByWeight(t *testing.T) {
	n := startNode(t, "a")
	defer close(holdRunLoop(n))
	ms := make([]protocol.Member, 8192)
	for i := range ms {
		ms[i] = protocol.Member{Alias: fmt.Sprint("m", i)}
	}
	h := (*handler)(n)
	for s := range 64 {
		for range 100 {
			h.Receive(fmt.Sprint("flooder", s), &protocol.PushPull{Members: ms})
		}
	}
	n.shares.mu.Lock()
	weight, first := n.shares.weight, n.shares.n["flooder0"]
	n.shares.mu.Unlock()
	if want := 1 + (inboxWeightShare-8193)/8193; first.msgs != want { // each weighs 8193
		t.Errorf("one sender queued %d frames of 8192 members, want %d", first.msgs, want)
	}
	if weight > inboxWeight {
		t.Errorf("the inbox holds a weight of %d, over its bound %d", weight, inboxWeight)
	}
	queued := len(n.inbox)
	h.Receive("honest", &protocol.Ping{Seq: 1, Updates: ms[:3]})
	if len(n.inbox) != queued+1 {
		t.Error("a ping was dropped behind the heavy frames")
	}
	if want := uint64(64*100 - queued); n.dropped.Load() != want {
		t.Errorf("%d dropped, want %d", n.dropped.Load(), want)
	}
}

// TestInventedMembersAreFailedDespiteTheDialBackoff: members gossiped at an
// address that answers no handshake are dialled only as the mesh's backoff
// allows, and the sends it refuses count as failed dials: every one of them
// is suspected within seconds (then failed), rather than left alive until
// its turn in the probe round.
func TestInventedMembersAreFailedDespiteTheDialBackoff(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	lan := func(c *Config) { c.SWIM = LANTunables() }
	a, b := startNode(t, "a", lan), startNode(t, "b", lan)
	if _, err := b.Join(ctxFor(t, 5*time.Second), a.Addr()); err != nil {
		t.Fatal(err)
	}
	waitAlive(t, a, 2)
	const invented = 100
	ups := make([]protocol.Member, invented)
	for i := range ups {
		ups[i] = protocol.Member{Alias: fmt.Sprintf("ghost%03d", i), Addr: ln.Addr().String(), State: protocol.StateAlive, Incarnation: 1}
	}
	(*handler)(a).Receive("b", &protocol.Gossip{Updates: ups})
	err = a.WaitFor(ctxFor(t, 60*time.Second), func(s *Snapshot) bool {
		for _, u := range ups {
			if e, ok := s.Get(u.Alias); !ok || e.State == StateAlive {
				return false // not heard of yet, or still alive
			}
		}
		return true
	})
	if err != nil {
		alive := 0
		for _, u := range ups {
			if e, ok := a.Members().Get(u.Alias); !ok || e.State == StateAlive {
				alive++
			}
		}
		t.Fatalf("%d of %d invented members unknown or still alive: %v", alive, invented, err)
	}
}
