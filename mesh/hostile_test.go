package mesh

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"meshell/protocol"
)

// rawDial opens a plain TCP connection to addr, closed when the test ends.
func rawDial(t *testing.T, addr string) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

// closedByPeer reports whether the other end closed nc within limit.
func closedByPeer(nc net.Conn, limit time.Duration) bool {
	nc.SetReadDeadline(time.Now().Add(limit))
	buf := make([]byte, 4096)
	for {
		if _, err := nc.Read(buf); err != nil {
			ne, ok := err.(net.Error)
			return !ok || !ne.Timeout()
		}
	}
}

// exchange writes m on nc and returns the peer's decoded answer.
func exchange(t *testing.T, nc net.Conn, m protocol.Message) protocol.Message {
	t.Helper()
	nc.Write(frame(t, m))
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	p, err := protocol.NewFrameReader(nc, 0).Next()
	if err != nil {
		t.Fatalf("no answer to %s: %v", m.Type(), err)
	}
	ans, err := protocol.NewDecoder().Decode(p)
	if err != nil {
		t.Fatal(err)
	}
	return ans
}

// helloAnswer sends a Hello from member from to the node at addr and
// returns its answer.
func helloAnswer(t *testing.T, addr string, from protocol.Member) protocol.Message {
	t.Helper()
	return exchange(t, rawDial(t, addr), &protocol.Hello{Version: protocol.Version, Cluster: "c", From: from})
}

func frame(t *testing.T, m protocol.Message) []byte {
	t.Helper()
	b, err := protocol.Frame(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestIdleHandshakesEvictTheOldestNotTheJoiner(t *testing.T) {
	a, addr := newMesh(t, "a", newRecorder(), func(c *Config) {
		c.MaxHandshakes, c.MaxHandshakesIP = 8, 4
	})
	var idle []net.Conn
	for i := 0; i < 20; i++ {
		idle = append(idle, rawDial(t, addr))
	}
	// The oldest idle connections were closed to make room...
	if !closedByPeer(idle[0], 5*time.Second) {
		t.Fatal("the oldest idle handshake was not closed when newer ones came")
	}
	// ...and a joiner whose Hello comes at once still gets in.
	b, _ := newMesh(t, "b", newRecorder())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := b.Hello(ctx, addr); err != nil {
		t.Fatalf("join while idle connections hold every handshake slot: %v", err)
	}
	if ev := a.Stats().Evicted; ev < 12 {
		t.Fatalf("%d handshakes evicted, want at least 12 of 20 over a bound of 4 per IP", ev)
	}
}

// TestEstablishedConnectionsAreBoundedInAll: past MaxConns accepted
// connections a new one is refused with the bound, whatever its source
// address (a flood from many addresses cannot grow the node without
// limit), and a closed one makes room again.
func TestEstablishedConnectionsAreBoundedInAll(t *testing.T) {
	_, addr := newMesh(t, "a", newRecorder(), func(c *Config) { c.MaxConns = 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var first *Mesh
	for i, alias := range []string{"b", "c", "d"} {
		m, _ := newMesh(t, alias, newRecorder())
		_, err := m.Hello(ctx, addr)
		switch {
		case i < 2 && err != nil:
			t.Fatalf("%s within the bound: %v", alias, err)
		case i == 2 && (err == nil || !strings.Contains(err.Error(), "at most 2 in all")):
			t.Fatalf("%s past the bound: %v, want refused with the bound", alias, err)
		}
		if i == 0 {
			first = m
		}
	}
	first.Close()
	e, _ := newMesh(t, "e", newRecorder())
	for {
		_, err := e.Hello(ctx, addr)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no room after a connection closed: %v", err)
		}
	}
}

func TestFirstFrameMustBeASmallHelloOrJoin(t *testing.T) {
	_, addr := newMesh(t, "a", newRecorder())
	cases := map[string][]byte{
		"a hello-ack first": frame(t, &protocol.HelloAck{Version: protocol.Version, Cluster: "c"}),
		"a ping first":      frame(t, &protocol.Ping{Seq: 1}),
		"a 1 MiB prefix":    binary.AppendUvarint(nil, 1<<20),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			nc := rawDial(t, addr)
			nc.Write(b)
			nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 1)
			n, err := nc.Read(buf)
			if n != 0 || err == nil {
				t.Fatalf("the node answered %s instead of closing", name)
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("the node kept a connection that opened with %s", name)
			}
		})
	}
}

func TestAnsweringAliasCannotBeTakenOver(t *testing.T) {
	ra := newRecorder()
	a, addrA := newMesh(t, "a", ra, func(c *Config) { c.Settle = 0 })
	b, addrB := newMesh(t, "b", newRecorder())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := b.Hello(ctx, addrA); err != nil {
		t.Fatal(err)
	}
	if err := b.SendConnected("a", &protocol.Ping{Seq: 1}); err != nil {
		t.Fatal(err)
	}
	<-ra.recv // a heard from b: the connection is answering
	impostor := func(addr string) *protocol.JoinAck {
		nc := rawDial(t, addrA)
		ack := exchange(t, nc, &protocol.Join{Version: protocol.Version, Cluster: "c", ConnID: math.MaxUint64,
			From: protocol.Member{Alias: "b", Addr: addr, State: protocol.StateAlive}})
		if !closedByPeer(nc, 5*time.Second) {
			t.Fatal("the impostor's connection was kept")
		}
		return ack.(*protocol.JoinAck)
	}
	// Claiming b's own address, whatever its ConnID: told a connection exists.
	if ja := impostor(addrB); !ja.Duplicate || ja.Error != "" {
		t.Fatalf("impostor's join answered %+v, want it told that a connection to b exists", ja)
	}
	// From another address: refused, the alias is in use.
	if ja := impostor("127.0.0.1:1"); !strings.Contains(ja.Error, `alias "b" is already used by `+addrB) {
		t.Fatalf("impostor's join from another address answered %+v, want the alias refused", ja)
	}
	if err := a.SendConnected("b", &protocol.Ping{Seq: 2}); err != nil {
		t.Fatalf("a lost its connection to the real b: %v", err)
	}
}

func TestCloseStopsADialUnderWay(t *testing.T) {
	// A peer that accepts and never answers the handshake.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			defer nc.Close()
		}
	}()
	a, _ := newMesh(t, "a", newRecorder(), func(c *Config) { c.HandshakeTimeout = time.Minute })
	if err := a.Send("silent", ln.Addr().String(), &protocol.Ping{Seq: 1}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { a.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for a dial stuck in its handshake")
	}
}

func TestReadBudgetBoundsPartlyReadFrames(t *testing.T) {
	a, addrA := newMesh(t, "a", newRecorder(), func(c *Config) { c.ReadBudget = 1 << 20 })
	// Three joined peers each send 768 KiB of a 4 MiB frame: a buffer that
	// holds it takes 1 MiB, so the budget lets one of them go on at most.
	var peers []net.Conn
	for i, alias := range []string{"p1", "p2", "p3"} {
		nc := rawDial(t, addrA)
		nc.Write(frame(t, &protocol.Join{Version: protocol.Version, Cluster: "c", ConnID: uint64(i),
			From: protocol.Member{Alias: alias, Addr: "127.0.0.1:1", State: protocol.StateAlive}}))
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := protocol.NewFrameReader(nc, 0).Next(); err != nil {
			t.Fatal(err)
		}
		nc.Write(binary.AppendUvarint(nil, protocol.MaxFrameSize))
		nc.Write(bytes.Repeat([]byte{0x90}, 768<<10))
		peers = append(peers, nc)
	}
	closed := 0
	for _, nc := range peers {
		if closedByPeer(nc, 2*time.Second) {
			closed++
		}
	}
	if closed < 2 {
		t.Fatalf("%d of 3 connections over a 1 MiB read budget were closed, want at least 2", closed)
	}
	if used := a.budget.Used(); used > 1<<20 {
		t.Fatalf("%d bytes held against a budget of 1 MiB", used)
	}
}

func TestRateLogWritesOneLinePerPeriod(t *testing.T) {
	var buf bytes.Buffer
	l := logrus.New()
	l.SetOutput(&buf)
	now := time.Unix(0, 0)
	r := NewRateLog(l, func() time.Time { return now })
	for i := 0; i < 1000; i++ {
		r.Warn("handshake-refused", nil, "mesh: refused")
	}
	now = now.Add(logPeriod)
	r.Warn("handshake-refused", nil, "mesh: refused")
	r.Warn("other", nil, "mesh: other")
	out := buf.String()
	if n := strings.Count(out, "\n"); n != 3 {
		t.Fatalf("%d lines for 1,002 warnings over two periods, want 3:\n%s", n, out)
	}
	if !strings.Contains(out, "suppressed=999") {
		t.Fatalf("the second line does not count what was held back:\n%s", out)
	}
}

// A clean close while a new dial to the same peer is under way is held as
// a possible retirement; when that dial fails the peer-down still comes.
func TestHeldPeerDownIsReportedWhenTheNewDialFails(t *testing.T) {
	ra := newRecorder()
	a, _ := newMesh(t, "a", ra)
	b, addrB := newMesh(t, "b", newRecorder())
	if err := hello(t, a, addrB); err != nil {
		t.Fatal(err)
	}
	pending := a.newConn(nil, true)
	pending.peer = protocol.Member{Alias: "b"}
	a.mu.Lock()
	a.dialing["b"] = pending
	a.mu.Unlock()
	b.CloseAll() // b closes cleanly: a reads EOF on the connection it dialled
	down := func() bool {
		ra.mu.Lock()
		defer ra.mu.Unlock()
		return len(ra.down) > 0
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		a.mu.Lock()
		_, held := a.heldDown["b"]
		a.mu.Unlock()
		if held {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if down() {
		t.Fatal("peer-down reported while a dial that may replace the connection is under way")
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	a.wg.Add(1)
	a.dialFor(pending, dead)
	if !down() {
		t.Fatal("the held peer-down was lost when the new dial failed")
	}
}

func TestCloseEndsHandshakesUnderWay(t *testing.T) {
	a, addr := newMesh(t, "a", newRecorder(), func(c *Config) { c.HandshakeTimeout = time.Minute })
	nc := rawDial(t, addr) // never sends its Hello
	nc.Write([]byte{0x40}) // a length prefix: the frame has started
	done := make(chan struct{})
	go func() { a.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for a connection stuck in its handshake")
	}
	if !closedByPeer(nc, 5*time.Second) {
		t.Fatal("the connection in its handshake was left open")
	}
}

// failRecorder records the refused flag of every DialFailed.
type failRecorder struct {
	*recorder
	failed chan bool
}

func (r *failRecorder) DialFailed(_ string, refused bool, _ error) { r.failed <- refused }

// A process that exits closes its listener after some of its connections:
// a dial in between is accepted, then reset. The dial is made again, and
// the refusal that follows is what the mesh reports: a crash's evidence.
func TestDialResetByAnExitingPeerIsReportedRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		c, err := ln.Accept()
		ln.Close() // the listener goes first, then the connection it accepted resets
		if err == nil {
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	}()
	h := &failRecorder{recorder: newRecorder(), failed: make(chan bool, 4)}
	m, _ := newMesh(t, "a", h)
	if err := m.Send("b", ln.Addr().String(), &protocol.Ping{Seq: 1}); err != nil {
		t.Fatal(err)
	}
	select {
	case refused := <-h.failed:
		if !refused {
			t.Fatal("a dial reset by a peer whose address then refuses was reported as not refused")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no DialFailed within 10 s")
	}
}

// A peer that says nothing after it connects, or stops halfway through its
// handshake, is closed after the handshake timeout and its one last look,
// in plaintext and under TLS alike.
func TestSilentPeerIsClosedAfterTheHandshakeTimeout(t *testing.T) {
	const timeout = 200 * time.Millisecond
	k := newKey(t)
	starts := map[string][]byte{"plaintext": {0x40}, "TLS": {0x16, 0x03, 0x01, 0x00}} // a frame's or a record's first bytes
	for name, start := range starts {
		for _, start := range [][]byte{nil, start} {
			t.Run(fmt.Sprintf("%s/%x", name, start), func(t *testing.T) {
				t.Parallel()
				tweaks := []func(*Config){func(c *Config) { c.HandshakeTimeout = timeout }}
				if name == "TLS" {
					tweaks = append(tweaks, withRing(ring(t, k)))
				}
				_, addr := newMesh(t, "a", newRecorder(), tweaks...)
				nc := rawDial(t, addr)
				nc.Write(start)
				began := time.Now()
				if !closedByPeer(nc, 10*time.Second) {
					t.Fatal("a silent peer was held for 10 s")
				}
				if took := time.Since(began); took < timeout {
					t.Fatalf("closed after %v, before the handshake timeout", took)
				}
			})
		}
	}
}

// A peer whose connection is reset between frames (gone, as a process that
// exits after its leave) is dropped without a warning: nothing went wrong
// that an operator should read about.
func TestResetBetweenFramesIsNotWarned(t *testing.T) {
	l, logged := logtest.NewNullLogger()
	r := newRecorder()
	_, addr := newMesh(t, "a", r, func(c *Config) { c.Log = l })
	nc := rawDial(t, addr)
	if ack, ok := exchange(t, nc, &protocol.Hello{Version: protocol.Version, Cluster: "c", From: protocol.Member{Alias: "p", Addr: nc.LocalAddr().String()}}).(*protocol.HelloAck); !ok || ack.Error != "" {
		t.Fatalf("hello answered %+v", ack)
	}
	nc.(*net.TCPConn).SetLinger(0) // close with a reset
	nc.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.mu.Lock()
		down := len(r.down)
		r.mu.Unlock()
		if down > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the reset connection was never dropped")
		}
		time.Sleep(5 * time.Millisecond) // polling a real socket's end
	}
	for _, e := range logged.AllEntries() {
		if e.Level <= logrus.WarnLevel {
			t.Fatalf("a reset between frames was warned about: %s %v", e.Message, e.Data)
		}
	}
}

func TestDialAnsweredByAnotherAliasIsRefused(t *testing.T) {
	ra := newRecorder()
	a, _ := newMesh(t, "a", ra)
	rb := newRecorder()
	_, addrB := newMesh(t, "b", rb)
	if err := hello(t, a, addrB); err != nil {
		t.Fatal(err)
	}
	// A peer listening as "b" elsewhere, whose address came as another
	// member's: dialled for that member, its answer names b.
	_, addrFake := newMesh(t, "b", newRecorder())
	a.mu.Lock()
	pending := a.newConn(nil, true)
	pending.peer = protocol.Member{Alias: "zz", Addr: addrFake}
	a.dialing["zz"] = pending
	a.mu.Unlock()
	a.wg.Add(1)
	a.dialFor(pending, addrFake)
	ra.mu.Lock()
	failed := ra.failed
	ra.mu.Unlock()
	if len(failed) != 1 || !strings.Contains(failed[0].Error(), `answered as "b", where "zz" was dialled`) {
		t.Fatalf("dial errors %v, want the dial for zz refused as answered by b", failed)
	}
	if a.Connected("zz") {
		t.Fatal("a connection was registered for zz")
	}
	if err := a.SendConnected("b", &protocol.Ping{Seq: 7}); err != nil {
		t.Fatalf("a lost its connection to the real b: %v", err)
	}
	if m := <-rb.recv; m.(*protocol.Ping).Seq != 7 {
		t.Fatalf("the real b received %+v, want a's ping", m)
	}
}

// TestPaceTokenBucket: a burst is delivered at once, then one frame per
// 1/rate, and an idle connection earns its burst back; rate 0 is off.
func TestPaceTokenBucket(t *testing.T) {
	var p pace
	t0 := time.Unix(1000, 0)
	for i := range 10 {
		if d := p.wait(t0, 1, 100, 10); d != 0 {
			t.Fatalf("frame %d of the burst waits %v", i, d)
		}
	}
	if d := p.wait(t0, 1, 100, 10); d != 10*time.Millisecond {
		t.Fatalf("past the burst: wait %v, want 10ms", d)
	}
	// The reader waited its 10 ms: the next frame right then waits again.
	if d := p.wait(t0.Add(10*time.Millisecond), 1, 100, 10); d != 10*time.Millisecond {
		t.Fatalf("the frame after: wait %v, want 10ms", d)
	}
	// Idle for a second: the burst is back, no more.
	t1 := t0.Add(2 * time.Second)
	for i := range 10 {
		if d := p.wait(t1, 1, 100, 10); d != 0 {
			t.Fatalf("after idling, frame %d waits %v", i, d)
		}
	}
	if d := p.wait(t1, 1, 100, 10); d == 0 {
		t.Fatal("the burst grew past its bound while idle")
	}
	var off pace
	for range 1000 {
		if d := off.wait(t0, 1, 0, 0); d != 0 {
			t.Fatalf("rate 0 waits %v", d)
		}
	}
}

// A frame of many members costs more of the pace than a ping: a flood of
// invented push/pulls is held to the same work a second as a ping flood.
func TestPaceWeighsFramesByWhatTheyCarry(t *testing.T) {
	ms := make([]protocol.Member, 8192)
	for i := range ms {
		ms[i] = protocol.Member{Alias: fmt.Sprint("m", i)}
	}
	if c := frameCost(&protocol.PushPull{Members: ms}); c != 513 {
		t.Fatalf("a push/pull of 8192 members costs %v, want 513", c)
	}
	if c := frameCost(&protocol.Ping{}); c != 1 {
		t.Fatalf("a bare ping costs %v", c)
	}
	var p pace
	t0 := time.Unix(1000, 0)
	if d := p.wait(t0, 513, 256, 1024); d != 0 {
		t.Fatalf("the first big frame waits %v", d)
	}
	if d := p.wait(t0, 513, 256, 1024); d == 0 {
		t.Fatal("a second 8192-member frame at once fits a burst of 1024")
	}
}

// TestMembershipFloodIsPaced: a peer that writes 300 membership frames at
// once has them delivered at its rate past its burst, not as fast as the
// node can read (which let one member crowd every other out of the run
// loop's inbox); frames of the other families follow in order.
func TestMembershipFloodIsPaced(t *testing.T) {
	const rate, burst, n = 500, 50, 300
	rec := newRecorder()
	a, addr := newMesh(t, "a", rec, func(c *Config) { c.MembershipRate, c.MembershipBurst = rate, burst })
	nc := rawDial(t, addr)
	if ack := exchange(t, nc, &protocol.Join{Version: protocol.Version, Cluster: "c", From: protocol.Member{Alias: "x", Addr: "127.0.0.1:1"}}); ack.(*protocol.JoinAck).Error != "" {
		t.Fatalf("join refused: %+v", ack)
	}
	var flood []byte
	for i := range n {
		flood = append(flood, frame(t, &protocol.Ping{Seq: uint32(i)})...)
	}
	flood = append(flood, frame(t, &protocol.JobCancel{ID: 7})...)
	start := time.Now()
	if _, err := nc.Write(flood); err != nil {
		t.Fatal(err)
	}
	limit := time.After(20 * time.Second)
	for i := 0; i <= n; i++ {
		select {
		case m := <-rec.recv:
			if i == n {
				if c, ok := m.(*protocol.JobCancel); !ok || c.ID != 7 {
					t.Fatalf("last frame %T %+v", m, m)
				}
			}
		case <-limit:
			t.Fatalf("%d of %d frames delivered in 20s", i, n+1)
		}
	}
	least := time.Duration(n-burst) * time.Second / rate
	if took := time.Since(start); took < least*9/10 {
		t.Fatalf("%d membership frames delivered in %v: want at least %v at %d/s past a burst of %d", n, took, least, rate, burst)
	}
	// How many were held back depends on how promptly the reader ran (a
	// late one finds tokens refilled); TestPaceTokenBucket counts them exactly.
	if th := a.Stats().Throttled; th == 0 || th > n-burst {
		t.Fatalf("%d frames counted as held back, want 1 to %d", th, n-burst)
	}
}

type unavailable struct{ *recorder }

func (unavailable) Admit(bool, protocol.Member) ([]protocol.Member, error) {
	return nil, ErrUnavailable
}

// TestUnavailableHandshakesLogOneLinePerPeriod: handshakes while the node
// is unavailable (leaving, restarting) are closed with one info line per
// period, not one per handshake: a local process could repeat them.
func TestUnavailableHandshakesLogOneLinePerPeriod(t *testing.T) {
	l, logged := logtest.NewNullLogger()
	l.SetLevel(logrus.InfoLevel)
	_, addr := newMesh(t, "a", unavailable{newRecorder()}, func(c *Config) { c.Log = l })
	for i := range 50 {
		nc := rawDial(t, addr)
		nc.Write(frame(t, &protocol.Hello{Version: protocol.Version, Cluster: "c", From: protocol.Member{Alias: fmt.Sprintf("p%d", i), Addr: "127.0.0.1:1"}}))
		if !closedByPeer(nc, 5*time.Second) {
			t.Fatalf("handshake %d while unavailable not closed", i)
		}
	}
	n := 0
	for _, e := range logged.AllEntries() {
		if strings.Contains(e.Message, "unavailable") {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d log lines for 50 handshakes while unavailable, want 1", n)
	}
}
