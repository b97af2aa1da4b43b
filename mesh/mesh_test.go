package mesh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"meshell/protocol"
)

// recorder is a Handler that admits everyone and records what happens.
type recorder struct {
	mu      sync.Mutex
	up      []string
	down    []string
	block   chan struct{} // when set, Receive waits on it (a slow reader)
	refuse  string
	admit   func(protocol.Member) // when set, Admit calls it first
	members []protocol.Member     // what Admit answers a Hello with
	recv    chan protocol.Message
	failed  []error // DialFailed's errors
}

func newRecorder() *recorder { return &recorder{recv: make(chan protocol.Message, 1024)} }

func (r *recorder) Admit(hello bool, peer protocol.Member) ([]protocol.Member, error) {
	if r.admit != nil {
		r.admit(peer)
	}
	if r.refuse != "" {
		return nil, errors.New(r.refuse)
	}
	if hello {
		return r.members, nil
	}
	return nil, nil
}
func (r *recorder) PeerUp(p protocol.Member, _ bool) {
	r.mu.Lock()
	r.up = append(r.up, p.Alias)
	r.mu.Unlock()
}
func (r *recorder) PeerDown(a string, err error) {
	r.mu.Lock()
	r.down = append(r.down, a)
	r.mu.Unlock()
}
func (r *recorder) DialFailed(_ string, _ bool, err error) {
	r.mu.Lock()
	r.failed = append(r.failed, err)
	r.mu.Unlock()
}
func (r *recorder) Receive(from string, m protocol.Message) {
	if r.block != nil {
		<-r.block
	}
	r.recv <- m
}

func quiet() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

func newMesh(t *testing.T, alias string, h Handler, tweak ...func(*Config)) (*Mesh, string) {
	t.Helper()
	var addr atomic.Value // set once listening; read by handshakes
	addr.Store("")
	cfg := DefaultConfig("c", func() protocol.Member { return protocol.Member{Alias: alias, Addr: addr.Load().(string)} })
	cfg.Log = quiet()
	for _, f := range tweak {
		f(&cfg)
	}
	m := New(cfg, h)
	a, err := m.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr.Store(a.String())
	t.Cleanup(m.Close)
	return m, a.String()
}

func TestNormalizeAddr(t *testing.T) {
	remote := &net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 55555}
	cases := map[string]string{
		"0.0.0.0:7001":   "10.1.2.3:7001",
		"[::]:7001":      "10.1.2.3:7001",
		":7001":          "10.1.2.3:7001",
		"127.0.0.1:7001": "127.0.0.1:7001",
		"node.lan:7001":  "node.lan:7001",
		"garbage":        "garbage",
	}
	for in, want := range cases {
		if got := normalizeAddr(in, remote); got != want {
			t.Errorf("normalizeAddr(%q) = %q, want %q (never the source port)", in, got, want)
		}
	}
}

func TestHelloSendAndReceive(t *testing.T) {
	ra, rb := newRecorder(), newRecorder()
	a, _ := newMesh(t, "a", ra)
	_, bAddr := newMesh(t, "b", rb)
	ack, err := a.Hello(context.Background(), bAddr)
	if err != nil {
		t.Fatal(err)
	}
	if ack.From.Alias != "b" || ack.From.Addr != bAddr {
		t.Fatalf("ack names %+v", ack.From)
	}
	if err := a.Send("b", "", &protocol.Ping{Seq: 7}); err != nil {
		t.Fatal(err)
	}
	awaitPing(t, rb, 7)
	if err := a.SendConnected("nobody", &protocol.Ping{}); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("SendConnected to a stranger: %v", err)
	}
}

func TestRefusalReachesTheDialer(t *testing.T) {
	rb := newRecorder()
	rb.refuse = `alias "a" is already used by 127.0.0.1:1; pick another --alias`
	a, _ := newMesh(t, "a", newRecorder())
	_, bAddr := newMesh(t, "b", rb)
	_, err := a.Hello(context.Background(), bAddr)
	var re *RefusedError
	if !errors.As(err, &re) || !strings.Contains(re.Reason, "pick another --alias") {
		t.Fatalf("got %v, want the refusal with its reason", err)
	}
	if a.Connected("b") {
		t.Fatal("a refused connection was kept")
	}
}

// A node that dials itself, under any name for its address, is told so,
// and its listener logs no refusal; a stranger using its alias is refused.
func TestDialingItselfIsErrSelf(t *testing.T) {
	l, logged := logtest.NewNullLogger()
	r := newRecorder()
	a, aAddr := newMesh(t, "a", r, func(c *Config) { c.Log = l })
	_, port, _ := net.SplitHostPort(aAddr)
	for _, addr := range []string{aAddr, net.JoinHostPort("localhost", port)} {
		if _, err := a.Hello(context.Background(), addr); !errors.Is(err, ErrSelf) || !strings.Contains(err.Error(), addr+" is this node's own address") {
			t.Fatalf("Hello to its own %s: %v", addr, err)
		}
		if _, err := a.Join(context.Background(), addr); !errors.Is(err, ErrSelf) {
			t.Fatalf("Join to its own %s: %v", addr, err)
		}
	}
	if len(r.up) != 0 || a.Stats().Conns != 0 {
		t.Fatalf("a connection to itself was kept: up %v, %d conns", r.up, a.Stats().Conns)
	}
	for _, e := range logged.AllEntries() {
		if e.Level <= logrus.WarnLevel {
			t.Fatalf("its own dial was logged as a warning: %s %v", e.Message, e.Data)
		}
	}
	other, _ := newMesh(t, "a", newRecorder())
	_, err := other.Hello(context.Background(), aAddr)
	var re *RefusedError
	if !errors.As(err, &re) || errors.Is(err, ErrSelf) || !strings.Contains(re.Reason, "own alias") {
		t.Fatalf("another node under its alias: %v, want the alias refusal", err)
	}
}

func TestCrossedDialsKeepTheSmallerAliasesConnection(t *testing.T) {
	for i := 0; i < 20; i++ {
		ra, rb := newRecorder(), newRecorder()
		a, aAddr := newMesh(t, fmt.Sprintf("a%02d", i), ra)
		b, bAddr := newMesh(t, fmt.Sprintf("b%02d", i), rb)
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); a.Join(context.Background(), bAddr) }()
		go func() { defer wg.Done(); b.Join(context.Background(), aAddr) }()
		wg.Wait()
		deadline := time.Now().Add(10 * time.Second)
		for (a.Stats().Conns != 1 || b.Stats().Conns != 1) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		a.mu.Lock()
		ca := a.conns[fmt.Sprintf("b%02d", i)]
		a.mu.Unlock()
		b.mu.Lock()
		cb := b.conns[fmt.Sprintf("a%02d", i)]
		b.mu.Unlock()
		if ca == nil || cb == nil {
			t.Fatalf("trial %d: a connection is missing (a=%v b=%v)", i, ca != nil, cb != nil)
		}
		// Both kept the same connection: the one a (the smaller alias) dialled.
		if !ca.dialed || cb.dialed || ca.nc.LocalAddr().String() != cb.nc.RemoteAddr().String() {
			t.Fatalf("trial %d: the two sides kept different connections", i)
		}
		// Messages still flow both ways, and no peer was reported down.
		a.Send(fmt.Sprintf("b%02d", i), "", &protocol.Ping{Seq: 1})
		b.Send(fmt.Sprintf("a%02d", i), "", &protocol.Ping{Seq: 2})
		for _, r := range []*recorder{ra, rb} {
			select {
			case <-r.recv:
			case <-time.After(10 * time.Second):
				t.Fatalf("trial %d: a ping was lost after the crossed dial", i)
			}
			r.mu.Lock()
			if len(r.down) != 0 {
				t.Errorf("trial %d: a retired duplicate was reported as the peer going down", i)
			}
			r.mu.Unlock()
		}
		a.Close()
		b.Close()
	}
}

// A connection retired for a duplicate ends without a warning, however it
// ends: 200 processes joining at once retire hundreds of connections.
func TestARetiredConnectionEndsWithoutAWarning(t *testing.T) {
	l, logged := logtest.NewNullLogger()
	a, _ := newMesh(t, "a", newRecorder(), func(c *Config) { c.Log = l })
	_, bAddr := newMesh(t, "b", newRecorder())
	if _, err := a.Hello(context.Background(), bAddr); err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	c := a.conns["b"]
	a.mu.Unlock()
	c.retire()
	c.nc.SetReadDeadline(time.Now()) // its grace ran out before the peer closed it
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the retired connection did not end")
	}
	for _, e := range logged.AllEntries() {
		if e.Level <= logrus.WarnLevel {
			t.Fatalf("a retired connection's end was logged as a warning: %s %v", e.Message, e.Data)
		}
	}
}

func TestFullQueueDropsNewestAndSaysSo(t *testing.T) {
	rb := newRecorder()
	rb.block = make(chan struct{}) // b reads one frame and then stalls
	defer close(rb.block)
	a, _ := newMesh(t, "a", newRecorder(), func(c *Config) { c.QueueLen = 4 })
	_, bAddr := newMesh(t, "b", rb)
	if _, err := a.Hello(context.Background(), bAddr); err != nil {
		t.Fatal(err)
	}
	big := &protocol.JobResult{Result: strings.Repeat("x", 1<<20)}
	var full bool
	for i := 0; i < 10000 && !full; i++ {
		switch err := a.SendConnected("b", big); {
		case errors.Is(err, ErrQueueFull):
			full = true
		case err != nil:
			t.Fatal(err)
		}
	}
	if !full {
		t.Fatal("the queue to a stalled peer never reported full")
	}
	if a.Stats().Dropped == 0 {
		t.Fatal("the drop was not counted")
	}
}

// Two connections dialled by the same side may arrive in either order at
// either end; both ends must keep the same one.
func TestSameSideDialsResolvedAlikeInAnyOrder(t *testing.T) {
	for _, order := range [][2]uint64{{5, 9}, {9, 5}} {
		a := New(DefaultConfig("c", func() protocol.Member { return protocol.Member{Alias: "a"} }), newRecorder())
		b := New(DefaultConfig("c", func() protocol.Member { return protocol.Member{Alias: "b"} }), newRecorder())
		for _, m := range []*Mesh{a, b} { // only a listening mesh registers connections
			if _, err := m.Listen("127.0.0.1:0"); err != nil {
				t.Fatal(err)
			}
			defer m.Close()
		}
		mk := func(m *Mesh, peer string, dialed bool, id uint64) *conn {
			c := m.newConn(nil, dialed)
			c.peer, c.id = protocol.Member{Alias: peer}, id
			return c
		}
		// a dialled both; a registers them in one order, b in the other.
		for _, id := range order {
			a.register(mk(a, "b", true, id))
		}
		for i := len(order) - 1; i >= 0; i-- {
			b.register(mk(b, "a", false, order[i]))
		}
		if a.conns["b"].id != 9 || b.conns["a"].id != 9 {
			t.Fatalf("order %v: a kept %d, b kept %d; want both 9", order, a.conns["b"].id, b.conns["a"].id)
		}
	}
}

// TestOutqBoundAndOrder: the outbound queue keeps frames in order, refuses
// the frame beyond its bound, and gives its memory back once it drains.
func TestOutqBoundAndOrder(t *testing.T) {
	q := newOutq(100, 1<<20)
	for round := 0; round < 3; round++ {
		for i := 0; i < 100; i++ {
			if !q.push(&protocol.Ping{Seq: uint32(i)}) {
				t.Fatalf("round %d: frame %d refused below the bound", round, i)
			}
		}
		if q.push(&protocol.Ping{Seq: 100}) {
			t.Fatal("frame beyond the bound queued")
		}
		for i := 0; i < 100; i++ {
			m, ok := q.pop()
			if !ok || m.(*protocol.Ping).Seq != uint32(i) {
				t.Fatalf("round %d: pop %d = %v, %v", round, i, m, ok)
			}
			if i == 49 && !q.push(&protocol.Ping{Seq: 1000}) { // a push between pops goes last
				t.Fatal("push refused below the bound")
			}
		}
		if m, ok := q.pop(); !ok || m.(*protocol.Ping).Seq != 1000 {
			t.Fatalf("round %d: last pop = %v, %v", round, m, ok)
		}
	}
	if _, ok := q.pop(); ok {
		t.Fatal("pop from an empty queue")
	}
	if cap(q.items) > keptQueue {
		t.Fatalf("an empty queue keeps %d slots", cap(q.items))
	}
}

// TestOutqBoundInBytes: big frames fill the queue by their bytes long
// before its count (a peer that never reads answers of 4 MiB holds at most
// the bound here); an empty queue still takes one frame of any size.
func TestOutqBoundInBytes(t *testing.T) {
	q := newOutq(1024, 16<<20)
	big := &protocol.JobResult{Result: strings.Repeat("r", 4<<20)}
	n := 0
	for q.push(big) {
		n++
	}
	if n != 3 || q.bytes > 16<<20 {
		t.Fatalf("%d 4 MiB results queued (%d bytes), want 3 within 16 MiB", n, q.bytes)
	}
	if !q.push(&protocol.Ping{}) {
		t.Fatal("a small frame refused while there is room for it")
	}
	for range n + 1 {
		q.pop()
	}
	if q.bytes != 0 {
		t.Fatalf("an empty queue counts %d bytes", q.bytes)
	}
	huge := &protocol.JobResult{Result: strings.Repeat("r", 17<<20)}
	if !q.push(huge) || q.push(&protocol.Ping{}) && q.push(huge) {
		t.Fatal("an empty queue refused one frame over the bound, or took a second one")
	}
}

// awaitPing fails the test unless r's next message is the Ping seq.
func awaitPing(t *testing.T, r *recorder, seq uint32) {
	t.Helper()
	select {
	case m := <-r.recv:
		if p, ok := m.(*protocol.Ping); !ok || p.Seq != seq {
			t.Fatalf("received %#v, want Ping %d", m, seq)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Ping %d did not arrive", seq)
	}
}

// acceptVia listens on a port of its own and hands the one connection it
// accepts, as wrap makes it, to m's accepting side; it returns the address.
func acceptVia(t *testing.T, m *Mesh, wrap func(net.Conn) net.Conn) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	m.wg.Add(1) // as acceptLoop does: Close waits for the handshake
	go func() {
		defer m.wg.Done()
		raw, err := ln.Accept()
		if err != nil {
			return
		}
		nc := wrap(raw)
		m.accept(nc, m.gate.enter(nc), false)
	}()
	return ln.Addr().String()
}

// starvedConn is an accepted connection as a process starved of CPU past
// its read deadline finds it: the first read reports the timeout although
// the bytes are there (its timer ran before the poller saw them).
type starvedConn struct {
	net.Conn
	held []byte
}

func (c *starvedConn) Read(p []byte) (int, error) {
	if c.held == nil {
		b := make([]byte, 512)
		n, err := c.Conn.Read(b)
		if err != nil {
			return 0, err
		}
		c.held = b[:n]
		return 0, os.ErrDeadlineExceeded
	}
	if len(c.held) > 0 {
		n := copy(p, c.held)
		c.held = c.held[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// A Hello that arrived within the handshake timeout is answered even when
// the seed got to read it only after: in a join storm on two cores, the
// seed's goroutines waited seconds for a core.
// Over TLS the same holds for the handshake's first flight.
func TestStarvedSeedReadsAHelloThatCameInTime(t *testing.T) {
	k := newKey(t)
	for name, tweak := range map[string]func(*Config){
		"plaintext": func(*Config) {},
		"TLS":       withRing(ring(t, k)),
	} {
		t.Run(name, func(t *testing.T) {
			a, _ := newMesh(t, "a", newRecorder(), tweak)
			rb := newRecorder()
			b, _ := newMesh(t, "b", rb, tweak)
			addr := acceptVia(t, b, func(raw net.Conn) net.Conn { return &starvedConn{Conn: raw} })
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := a.Hello(ctx, addr); err != nil {
				t.Fatalf("a Hello that came before the deadline was refused: %v", err)
			}
			if err := a.SendConnected("b", &protocol.Ping{Seq: 7}); err != nil {
				t.Fatal(err)
			}
			awaitPing(t, rb, 7)
		})
	}
}

// A seed slower to answer a Hello than the handshake timeout is waited for
// as long as the joiner's context allows, and the seed's own time to answer
// does not count against the joiner: in a join storm on a loaded host the
// seed answers late, and a second Hello would queue behind the first.
func TestSlowSeedIsWaitedForWithinTheJoinersBudget(t *testing.T) {
	const timeout = 100 * time.Millisecond
	rb := newRecorder()
	rb.admit = func(protocol.Member) { <-time.After(4 * timeout) } // a seed still busy with others
	tweak := func(c *Config) { c.HandshakeTimeout = timeout }
	a, _ := newMesh(t, "a", newRecorder(), tweak)
	_, bAddr := newMesh(t, "b", rb, tweak)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := a.Hello(ctx, bAddr); err != nil {
		t.Fatalf("Hello to a seed that answers after %v, within a 10 s budget: %v", 4*timeout, err)
	}
	if took := time.Since(start); took < 4*timeout {
		t.Fatalf("answered after %v: the seed did not delay it, the test tests nothing", took)
	}
	// Without a budget of its own the Hello keeps the handshake timeout.
	if _, err := a.Hello(context.Background(), bAddr); err == nil {
		t.Fatal("Hello without a deadline waited past the handshake timeout")
	}
}
