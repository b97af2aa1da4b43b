package mesh

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"meshell/mesh/keyring"
	"meshell/protocol"
)

// Errors returned by Send and the handshakes.
var (
	ErrQueueFull    = errors.New("mesh: outbound queue full")
	ErrNotConnected = errors.New("mesh: no connection to that member")
	ErrClosed       = errors.New("mesh: transport closed")
	ErrTooManyDials = errors.New("mesh: too many dials under way")
	// ErrUnavailable, returned by Handler.Admit, closes the connection
	// without an answer: the node is starting or stopping, which is not a
	// refusal the peer should report.
	ErrUnavailable = errors.New("mesh: node unavailable")
)

// RefusedError is a peer's explicit refusal of a handshake.
type RefusedError struct {
	Addr   string
	Reason string
}

func (e *RefusedError) Error() string { return e.Addr + " refused: " + e.Reason }

// ErrSelf is a handshake that reached this node's own listener: the address
// dialled is this node's (its listen address, another name for it, or what
// it advertises).
var ErrSelf = errors.New("this node's own address")

// Handler is what the mesh calls. Calls come from connection goroutines,
// concurrently; none may block for long (a blocked Receive stalls that
// peer's connection and nothing else).
type Handler interface {
	// Admit decides on a peer's handshake (Hello when hello is true, else
	// Join). It returns the member list for a HelloAck (ignored for Join)
	// and the receiver's entries about the peer for a JoinAck, or an error
	// that is sent back as the refusal. A handshake claiming an alias
	// held from another address is refused before Admit (claim.go).
	Admit(hello bool, peer protocol.Member) (members []protocol.Member, err error)
	// PeerUp reports a completed handshake: peer described itself.
	// introduced is set when the peer joined through this node (its Hello
	// was accepted here).
	PeerUp(peer protocol.Member, introduced bool)
	// PeerDown reports that the connection to alias closed and no other
	// connection replaced it.
	PeerDown(alias string, reason error)
	// DialFailed reports that a dial made on behalf of Send failed.
	DialFailed(alias string, refused bool, err error)
	// Receive delivers one message from a connected peer.
	Receive(from string, m protocol.Message)
}

// Config configures a Mesh.
type Config struct {
	Cluster          string                 // cluster name; a peer of another cluster is refused
	Self             func() protocol.Member // this node as it introduces itself
	HandshakeTimeout time.Duration          // first frame and its answer must arrive within this
	DialTimeout      time.Duration          // TCP connect timeout
	WriteTimeout     time.Duration          // a peer that does not read for this long is closed
	MaxRetransmit    time.Duration          // longest TCP retransmission backoff (Linux 6.15+); 0 = the kernel's
	QueueLen         int                    // outbound frames queued per peer
	QueueBytes       int                    // ... and their bytes (protocol.Weight)
	MaxHandshakes    int                    // connections still in their handshake; past it the oldest is closed
	MaxHandshakesIP  int                    // the same, per source IP
	MaxConns         int                    // established accepted connections in all
	MaxConnsPerIP    int                    // established connections per source IP
	MaxDials         int                    // dials under way at once; past it a message to an unconnected peer is dropped
	FrameTimeout     time.Duration          // a frame whose first byte arrived must be complete within this
	ReadBudget       int64                  // bytes all connections may hold in partly read large frames
	AnswerWindow     time.Duration          // a connection that delivered a frame this recently is answering: its alias is not taken over
	Settle           time.Duration          // ... once it is up this long; before, crossed dials compete by register's rule
	Takeover         time.Duration          // a handshake claiming an alias held from another address waits this long for the holder to go
	MembershipRate   float64                // membership frames a second one connection delivers (one more per 16 members a frame carries); past it (and MembershipBurst) its reader waits; 0 = no bound
	MembershipBurst  int                    // ... and the burst it may deliver at once
	KeyFailBurst     int                    // failed TLS handshakes one source IP may cost (keyed mode); past it, and KeyFailRate, its connections are closed on accept; 0 = no bound
	KeyFailRate      float64                // ... a second, after the burst
	Keyring          *keyring.Keyring       // cluster keys: every connection is TLS 1.3 under them; nil = plaintext
	Insecure         bool                   // without a keyring, take peers from any address, not loopback only
	Versions         protocol.Versions      // protocol versions this node speaks; zero = protocol.Supported()
	Log              logrus.FieldLogger
}

// DefaultConfig returns the transport defaults for cluster and self.
func DefaultConfig(cluster string, self func() protocol.Member) Config {
	return Config{
		Cluster:          cluster,
		Self:             self,
		HandshakeTimeout: 5 * time.Second,  // a peer that says nothing is closed after this
		DialTimeout:      3 * time.Second,  // outlasts a lost SYN's resend (1 s) and a CPU-starved second
		WriteTimeout:     10 * time.Second, // a stopped peer whose buffers are full is closed
		MaxRetransmit:    time.Second,      // a healed link speaks again within it (the least Linux takes)
		QueueLen:         1024,             // frames; the writer drains in batches, so a 256-deep job pipeline fits
		QueueBytes:       16 << 20,         // a peer that reads nothing holds at most this here
		MaxHandshakes:    1024,             // pending handshakes; bounds idle hostile connections
		MaxHandshakesIP:  256,              // one source cannot hold every slot; a 200-process join storm on one host fits
		MaxConns:         4096,             // one per member of the largest default table (--max-members)
		MaxConnsPerIP:    1024,             // a 200-process cluster on one host fits five times
		MaxDials:         256,              // bounds dials a flood of news about unknown members can cause
		FrameTimeout:     10 * time.Second, // 4 MiB at 3.3 Mbit/s
		ReadBudget:       64 << 20,         // sixteen 4 MiB frames in flight at once
		AnswerWindow:     30 * time.Second, // longer than a probe round of a 100-node LAN cluster
		Settle:           time.Second,      // crossed dials of a join are resolved well within it
		Takeover:         time.Second,      // a loaded node reads a restarted peer's old connection closing within it
		MembershipRate:   256,              // an honest member sends a few tens a second on one connection
		MembershipBurst:  1024,             // a push-pull, a refutation and a join storm's news at once
		KeyFailBurst:     64,               // a node with a wrong key retrying, or a few misdialled peers
		KeyFailRate:      8,                // ~0.4 ms of CPU each: a keyless flood costs this node a few ms a second
		Log:              logrus.StandardLogger(),
	}
}

// HelloWait is how long a joiner waits for its seed's HelloAck, and how
// long the seed may take to write it: in a join storm on a loaded host
// both wait seconds for a core, and the answer carries the member list.
const HelloWait = 15 * time.Second

// Mesh is the set of connections of one node.
type Mesh struct {
	cfg Config
	h   Handler

	mu           sync.Mutex
	ln           net.Listener
	conns        map[string]*conn    // registered connection per alias
	dialing      map[string]*conn    // dials under way for Send, with their queues
	heldDown     map[string]error    // peer-downs held until the dial under way ends (conn.go)
	dialWaits    map[string]dialWait // members never met whose dials back off (dialwait.go)
	met          map[string]struct{} // members this node has had a connection with
	now          func() time.Time    // the dial backoff's clock
	all          map[*conn]struct{}
	claims       map[string]*claim // aliases held by accepted handshakes not yet registered (claim.go)
	ownDials     map[uint64]bool   // ConnIDs of this node's handshakes under way; true once one reached this node
	closed       bool
	dialCtx      context.Context // cancelled by CloseAll: dials under way stop
	stopDial     context.CancelFunc
	gate         *gate
	budget       *protocol.Budget
	warn         *RateLog
	wg           sync.WaitGroup
	sent         atomic.Uint64
	received     atomic.Uint64
	dropped      atomic.Uint64
	refused      atomic.Uint64 // connections closed for a bad handshake, frame or bound
	throttled    atomic.Uint64 // membership frames a reader held back for its peer's rate (pace.go)
	keyThrottled atomic.Uint64 // connections closed on accept: their IP's failed TLS handshakes were over KeyFailBurst/KeyFailRate
	families     [Families]familyCounters
}

// Families is the size of Stats.ByFamily, indexed by protocol.Family.
const Families = int(protocol.FamilyEvents) + 1

// familyCounters count one message family's traffic (FamilyStats).
type familyCounters struct {
	framesSent, bytesSent, framesReceived, bytesReceived, dropped atomic.Uint64
}

// FamilyStats are one message family's frames and bytes: sent (written to
// the socket), received, and dropped before they were written.
type FamilyStats struct {
	FramesSent, BytesSent, FramesReceived, BytesReceived, Dropped uint64
}

func (m *Mesh) family(t protocol.MsgType) *familyCounters {
	return &m.families[min(int(t.Family()), Families-1)]
}

// drop counts msg as dropped.
func (m *Mesh) drop(msg protocol.Message) {
	m.dropped.Add(1)
	m.family(msg.Type()).dropped.Add(1)
}

// New returns a Mesh that reports to h. It does not listen until Listen.
func New(cfg Config, h Handler) *Mesh {
	if cfg.Log == nil {
		cfg.Log = logrus.StandardLogger()
	}
	if cfg.Versions.Max == 0 {
		cfg.Versions = protocol.Supported()
	}
	cfg.Versions.Cur = cfg.Versions.Max
	m := &Mesh{cfg: cfg, h: h, conns: map[string]*conn{}, claims: map[string]*claim{}, dialing: map[string]*conn{}, all: map[*conn]struct{}{}, heldDown: map[string]error{},
		ownDials: map[uint64]bool{},
		gate:     newGate(cfg.MaxHandshakes, cfg.MaxHandshakesIP, cfg.MaxConns, cfg.MaxConnsPerIP),
		budget:   protocol.NewBudget(cfg.ReadBudget),
		warn:     NewRateLog(cfg.Log, time.Now), now: time.Now}
	m.gate.failBurst, m.gate.failRate = cfg.KeyFailBurst, cfg.KeyFailRate
	m.dialCtx, m.stopDial = context.WithCancel(context.Background())
	return m
}

// Listen binds addr and starts accepting. It returns the bound address.
func (m *Mesh) Listen(addr string) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	m.mu.Lock()
	if m.closed || m.ln != nil {
		m.mu.Unlock()
		ln.Close()
		if m.closed {
			return nil, ErrClosed
		}
		return nil, errors.New("mesh: already listening")
	}
	m.ln = ln
	if m.dialCtx.Err() != nil {
		m.dialCtx, m.stopDial = context.WithCancel(context.Background())
	}
	m.wg.Add(1)
	m.mu.Unlock()
	go m.acceptLoop(ln)
	return ln.Addr(), nil
}

func (m *Mesh) acceptLoop(ln net.Listener) {
	defer m.wg.Done()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || m.isClosed() {
				return
			}
			// Out of file descriptors and the like: back off, keep serving.
			if delay == 0 {
				delay = 5 * time.Millisecond
			} else if delay < time.Second {
				delay *= 2
			}
			m.warn.Warn("accept", logrus.Fields{"error": err}, "mesh: accept failed")
			time.Sleep(delay)
			continue
		}
		delay = 0
		keyOK, reserved := true, false
		if m.cfg.Keyring != nil {
			keyOK, reserved = m.gate.keyEnter(remoteIP(nc), time.Now())
		}
		if !keyOK {
			// Closed before any TLS work: this IP's handshakes keep failing.
			m.refused.Add(1)
			m.keyThrottled.Add(1)
			m.warn.Warn("handshake-key-rate", logrus.Fields{"remote": nc.RemoteAddr().String()},
				"mesh: closing connections from an address whose TLS handshakes keep failing")
			nc.Close()
			continue
		}
		capRetransmit(nc, m.cfg.MaxRetransmit)
		sh := m.gate.enter(nc)
		m.mu.Lock()
		gone := m.ln != ln // CloseAll ran since Accept: its sweep of the gate may have missed nc
		m.mu.Unlock()
		if gone {
			nc.Close()
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			defer m.gate.leave(sh)
			m.accept(nc, sh, reserved)
		}()
	}
}

// accept runs the receiving side of a handshake. Only a Hello or a Join of
// at most protocol.MaxHandshakeFrame bytes is decoded; anything else closes
// the connection, counted, with at most one log line per kind per period.
func (m *Mesh) accept(nc net.Conn, sh *shake, reserved bool) {
	remote := logrus.Fields{"remote": nc.RemoteAddr().String()}
	reject := func(kind, msg string, err error) {
		m.refused.Add(1)
		f := logrus.Fields{"remote": remote["remote"]}
		if err != nil {
			f["error"] = err.Error()
		}
		m.warn.Warn(kind, f, msg)
		nc.Close()
	}
	nc.SetDeadline(time.Now().Add(m.cfg.HandshakeTimeout))
	certAlias := ""
	var look *lookAgain
	if m.cfg.Keyring != nil {
		raw := withRawIO(nc)
		look = &lookAgain{Conn: raw, r: raw}
		tnc, alias, err := m.secureAccept(nc, look)
		m.gate.keyLeave(remoteIP(nc), time.Now(), reserved, costsIP(err))
		if err != nil {
			m.refused.Add(1)
			m.warn.Warn("handshake-key", logrus.Fields{"remote": remote["remote"], "reason": err.Error()}, "mesh: refused a peer's TLS handshake")
			return
		}
		nc, certAlias = tnc, alias
	}
	c := m.newConn(nc, false)
	if m.cfg.Keyring == nil {
		look = &lookAgain{Conn: nc, r: c.rw}
		peek, err := m.plainAccept(nc, look)
		if err != nil {
			c.fr.Release()
			reject("handshake-read", "mesh: connection closed before its handshake", err)
			return
		}
		c.readFrom(&prefixed{p: peek, r: look})
	}
	payload, err := c.fr.Next()
	if err != nil {
		c.fr.Release()
		reject("handshake-read", "mesh: connection closed before its handshake", err)
		return
	}
	msg, err := c.dec.DecodeOnly(payload, isIntro)
	if err != nil {
		c.fr.Release()
		reject("handshake-frame", "mesh: bad handshake frame", err)
		return
	}
	var from protocol.Member
	var peerV protocol.Versions
	var cluster string
	hello := false
	switch h := msg.(type) {
	case *protocol.Hello:
		from, peerV, cluster, hello, c.id = h.From, h.Versions(), h.Cluster, true, h.ConnID
	case *protocol.Join:
		from, peerV, cluster, c.id = h.From, h.Versions(), h.Cluster, h.ConnID
	}
	version, overlap := protocol.Negotiate(m.cfg.Versions, peerV)
	from.Addr = normalizeAddr(from.Addr, nc.RemoteAddr())
	var members []protocol.Member
	self := m.cfg.Self()
	ip := remoteIP(nc)
	counted, dup := false, false
	switch {
	case m.ownDial(c.id):
		err = ErrSelf // the dialler, this node, says so
	case !overlap:
		err = protocol.NoOverlap(from.Alias, peerV, self.Alias, m.cfg.Versions)
	case cluster != m.cfg.Cluster:
		err = fmt.Errorf("cluster %q refused: this node belongs to cluster %q; use --cluster %s to join it", cluster, m.cfg.Cluster, m.cfg.Cluster)
	case from.Alias == self.Alias:
		err = fmt.Errorf("alias %q is this node's own alias (%s); pick another --alias", from.Alias, self.Addr)
	case certAlias != "" && from.Alias != certAlias:
		err = fmt.Errorf("alias %q is not the alias %q of the certificate it presented", from.Alias, certAlias)
	case m.protected() && !loopback(nc):
		err = errors.New(protectedRefusal)
	case m.protected() && !loopbackAddr(from.Addr):
		err = fmt.Errorf("advertised address %s is not on loopback: %s", from.Addr, protectedRefusal)
	default:
		if err = m.hold(c, from); err != nil {
			break
		}
		defer m.release(c) // register takes the claim over when the handshake succeeds
		if dup = m.answering(from.Alias); dup {
			members, err = m.h.Admit(hello, from)
			break
		}
		if err = m.gate.connect(ip); err != nil {
			break
		}
		counted = true
		members, err = m.h.Admit(hello, from)
	}
	uncount := func() {
		if counted {
			m.gate.disconnect(ip)
		}
	}
	if errors.Is(err, ErrUnavailable) {
		uncount()
		c.fr.Release()
		m.warn.Info("handshake-unavailable", logrus.Fields{"remote": remote["remote"], "alias": from.Alias}, "mesh: handshake while the node is unavailable; closing")
		nc.Close()
		return
	}
	// The peer's part is done: this node's own time to answer (a seed
	// starved of CPU in a join storm) does not count against the peer.
	answer := m.cfg.HandshakeTimeout
	if hello {
		answer = max(answer, HelloWait)
	}
	nc.SetWriteDeadline(time.Now().Add(answer))
	var ack protocol.Message
	errText := ""
	if err != nil {
		errText = err.Error()
	}
	if version == 0 {
		version = m.cfg.Versions.Max
	}
	lo, hi := m.cfg.Versions.Min, m.cfg.Versions.Max
	if err != nil {
		self = refusing(self)
	}
	if hello {
		ack = &protocol.HelloAck{Version: version, Cluster: m.cfg.Cluster, Error: errText, From: self, Members: members, Duplicate: dup, MinVersion: lo, MaxVersion: hi}
	} else {
		ack = &protocol.JoinAck{Version: version, Cluster: m.cfg.Cluster, Error: errText, From: self, Seen: members, Duplicate: dup, MinVersion: lo, MaxVersion: hi}
	}
	if dup && err == nil {
		// The working connection stays the peer's; this one is answered
		// and closed, whatever its ConnID: no connection displaces it.
		c.fr.Release()
		c.writeDirect(ack)
		nc.Close()
		return
	}
	if err != nil {
		uncount()
		c.fr.Release()
		c.writeDirect(ack)
		m.refused.Add(1)
		if errors.Is(err, ErrSelf) {
			nc.Close()
			return
		}
		m.warn.Warn("handshake-refused", logrus.Fields{"remote": remote["remote"], "alias": from.Alias, "reason": errText},
			"mesh: refused "+msg.Type().String())
		nc.Close()
		return
	}
	// Registered before the answer leaves: once the dialer knows the
	// connection, so does this side.
	c.peer, c.ip, c.introduced = from, ip, hello
	c.vsn = protocol.Versions{Min: peerV.Min, Max: peerV.Max, Cur: version}
	loser, ok := m.register(c)
	if !ok {
		uncount()
		c.fr.Release()
		nc.Close()
		return
	}
	if werr := c.writeDirect(ack); werr != nil {
		m.warn.Warn("handshake-write", logrus.Fields{"remote": remote["remote"], "error": werr.Error()}, "mesh: handshake answer not sent")
		m.unregister(c, loser)
		uncount()
		c.fr.Release()
		c.close(werr) // a handshake waiting in hold for this one sees it go
		return
	}
	nc.SetDeadline(time.Time{})
	look.spent = true
	m.gate.leave(sh)
	m.launch(c, loser)
}

// answering reports whether alias has a working connection that a new
// handshake claiming it must not displace, whatever its ConnID: one up for
// longer than Settle (crossed dials of a join compete by register's rule
// before that) that delivered a frame within AnswerWindow. A connection
// closing at this moment (the peer restarted) is given a moment to go.
func (m *Mesh) answering(alias string) bool {
	m.mu.Lock()
	old := m.live(alias)
	m.mu.Unlock()
	if old == nil || !old.answering(time.Now(), m.cfg.Settle, m.cfg.AnswerWindow) {
		return false
	}
	t := time.NewTimer(takeoverWait)
	defer t.Stop()
	select {
	case <-old.done:
		return false
	case <-t.C:
		return true
	}
}

// takeoverWait is how long a handshake claiming a connected alias waits for
// that connection to close before it is answered as a duplicate.
const takeoverWait = 250 * time.Millisecond

// ownDial reports whether id is a handshake this node is dialling, and
// marks it as one that reached this node itself.
func (m *Mesh) ownDial(id uint64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.ownDials[id]
	if ok {
		m.ownDials[id] = true
	}
	return ok
}

// dialledSelf reports whether this node's handshake id reached this node.
func (m *Mesh) dialledSelf(id uint64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ownDials[id]
}

// Hello joins through the seed at addr: it introduces this node, and on
// success returns the seed's answer with every member the seed knows. The
// connection stays open as the one to the seed.
func (m *Mesh) Hello(ctx context.Context, addr string) (*protocol.HelloAck, error) {
	ack, err := m.handshake(ctx, addr, true, nil)
	if err != nil {
		return nil, err
	}
	return ack.(*protocol.HelloAck), nil
}

// Join introduces this node to the member at addr and keeps the connection.
func (m *Mesh) Join(ctx context.Context, addr string) (*protocol.JoinAck, error) {
	ack, err := m.handshake(ctx, addr, false, nil)
	if err != nil {
		return nil, err
	}
	return ack.(*protocol.JoinAck), nil
}

// handshake dials addr and runs the sending side of a handshake. When pending
// is not nil (a dial on behalf of Send) its queue becomes the connection's.
func (m *Mesh) handshake(ctx context.Context, addr string, hello bool, pending *conn) (protocol.Message, error) {
	m.mu.Lock()
	closed, dialCtx := m.closed, m.dialCtx
	m.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	// CloseAll (a leave) or Close stops the dial and the handshake at once.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(dialCtx, cancel)
	defer stop()
	d := net.Dialer{Timeout: m.cfg.DialTimeout}
	if m.protected() {
		d.Control = dialLoopbackOnly
		// A member's address came from news: another name than localhost
		// would be looked up off this machine (a peer advertising one is
		// refused). Only the seed this node is told to Hello may be any name.
		if !hello && !loopbackAddr(addr) {
			return nil, fmt.Errorf("%s %w (a member's address is a loopback IP or localhost): %s", addr, ErrNotLoopback, protectedRefusal)
		}
	}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		if dialCtx.Err() != nil {
			return nil, ErrClosed
		}
		return nil, err
	}
	capRetransmit(nc, m.cfg.MaxRetransmit)
	raw := nc // closing the socket ends a TLS handshake or read on it too
	unblock := context.AfterFunc(ctx, func() { raw.Close() })
	defer unblock()
	if m.cfg.Keyring != nil {
		deadline := time.Now().Add(m.cfg.HandshakeTimeout)
		nc.SetDeadline(deadline)
		tnc, err := m.secureDial(ctx, nc, addr)
		if err != nil {
			nc.Close()
			return nil, err
		}
		nc = tnc
	}
	deadline := time.Now().Add(m.cfg.HandshakeTimeout)
	if dl, ok := ctx.Deadline(); ok && (hello || dl.Before(deadline)) {
		// A Hello's answer is awaited as long as the caller allows: a seed
		// that took the connection and is slow (a join storm on a loaded
		// host) answers late, and a new Hello would only queue behind it.
		deadline = dl
	}
	nc.SetDeadline(deadline)
	c := pending
	if c == nil {
		c = m.newConn(nc, true)
	} else {
		c.attach(nc)
	}
	self := m.cfg.Self()
	id := rand.Uint64()
	c.id = id
	m.mu.Lock()
	m.ownDials[id] = false
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.ownDials, id)
		m.mu.Unlock()
	}()
	var intro protocol.Message = protocol.NewJoin(m.cfg.Versions, m.cfg.Cluster, self, c.id)
	if hello {
		intro = protocol.NewHello(m.cfg.Versions, m.cfg.Cluster, self, c.id)
	}
	fail := func(err error) (protocol.Message, error) {
		nc.Close()
		return nil, err
	}
	if err := c.writeDirect(intro); err != nil {
		return fail(fmt.Errorf("handshake with %s: %w", addr, err))
	}
	if hello {
		c.fr.SetMax(protocol.MaxFrameSize) // a HelloAck carries the member list
	}
	payload, err := c.fr.Next()
	if err != nil {
		var km *keyring.KeyMismatchError
		if errors.As(err, &km) {
			return fail(&RefusedError{Addr: addr, Reason: km.Error()})
		}
		return fail(fmt.Errorf("handshake with %s: no answer: %w", addr, err))
	}
	want := onlyJoinAck
	if hello {
		want = onlyHelloAck
	}
	ack, err := c.dec.DecodeOnly(payload, want)
	if err != nil {
		return fail(fmt.Errorf("handshake with %s: %w", addr, err))
	}
	var from protocol.Member
	var errText, cluster string
	var peerV protocol.Versions
	dup := false
	switch a := ack.(type) {
	case *protocol.HelloAck:
		from, errText, cluster, peerV, dup = a.From, a.Error, a.Cluster, a.Versions(), a.Duplicate
	case *protocol.JoinAck:
		from, errText, cluster, peerV, dup = a.From, a.Error, a.Cluster, a.Versions(), a.Duplicate
	default:
		return fail(fmt.Errorf("handshake with %s: answer is %s", addr, ack.Type()))
	}
	switch {
	case m.dialledSelf(id):
		return fail(fmt.Errorf("%s is %w", addr, ErrSelf))
	case errText != "":
		return fail(&RefusedError{Addr: addr, Reason: errText})
	case !m.cfg.Versions.Speaks(peerV.Cur) || !peerV.Speaks(peerV.Cur):
		return fail(fmt.Errorf("%s answered in protocol version %d: %w", addr, peerV.Cur, protocol.NoOverlap(from.Alias, peerV, self.Alias, m.cfg.Versions)))
	case cluster != m.cfg.Cluster:
		return fail(fmt.Errorf("%s belongs to cluster %q, this node to %q; use --cluster to pick one", addr, cluster, m.cfg.Cluster))
	case from.Alias == self.Alias:
		return fail(fmt.Errorf("%s is this node itself", addr))
	case pending != nil && from.Alias != pending.peer.Alias:
		// A dial for a member is answered by that member or by no one:
		// a peer that gossiped its own address under another name must not
		// take over the alias that answers there.
		return fail(fmt.Errorf("%s answered as %q, where %q was dialled", addr, from.Alias, pending.peer.Alias))
	case m.protected() && !loopbackAddr(normalizeAddr(from.Addr, nc.RemoteAddr())):
		// As an accepting node refuses such a peer: its address would be
		// dialled later, and must not lead off this machine.
		return fail(fmt.Errorf("%s advertises %s, which %w: %s", addr, from.Addr, ErrNotLoopback, protectedRefusal))
	}
	if tc, ok := nc.(*keyring.Conn); ok && tc.PeerAlias() != from.Alias {
		return fail(fmt.Errorf("%s answered as %q with the certificate of %q", addr, from.Alias, tc.PeerAlias()))
	}
	if !unblock() { // ctx ended: nc is closed or about to be
		return fail(ErrClosed)
	}
	if dup { // the peer keeps the connection it has with us
		nc.Close()
		c.dup = true
		return ack, nil
	}
	nc.SetDeadline(time.Time{})
	from.Addr = normalizeAddr(from.Addr, nc.RemoteAddr())
	c.peer, c.vsn = from, peerV
	if !m.start(c) {
		return nil, ErrClosed
	}
	return ack, nil
}

// Send queues m for the member alias, dialling addr with a Join when there
// is no connection yet. It never blocks. When the queue is full the message
// is dropped and ErrQueueFull returned.
func (m *Mesh) Send(alias, addr string, msg protocol.Message) error {
	for tries := 0; ; tries++ {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return ErrClosed
		}
		c := m.live(alias)
		if c == nil {
			c = m.dialing[alias]
		}
		if c == nil {
			if addr == "" {
				m.mu.Unlock()
				return ErrNotConnected
			}
			if !m.mayDialLocked(alias, m.now()) { // backing off (dialwait.go)
				err := &BackoffError{Alias: alias, Refused: m.dialWaits[alias].refused}
				m.mu.Unlock()
				m.drop(msg)
				return err
			}
			if len(m.dialing) >= m.cfg.MaxDials {
				m.mu.Unlock()
				m.drop(msg)
				return ErrTooManyDials
			}
			c = m.newConn(nil, true)
			c.peer = protocol.Member{Alias: alias, Addr: addr}
			m.dialing[alias] = c
			m.wg.Add(1)
			go m.dialFor(c, addr)
		}
		m.mu.Unlock()
		err := c.enqueue(msg)
		if errors.Is(err, ErrNotConnected) && tries == 0 {
			continue // it closed just now: the next pick skips it
		}
		return err
	}
}

// Connect dials alias at addr with a Join unless a connection exists or a
// dial is already under way. It returns at once.
func (m *Mesh) Connect(alias, addr string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || m.ln == nil || m.live(alias) != nil || m.dialing[alias] != nil || len(m.dialing) >= m.cfg.MaxDials ||
		!m.mayDialLocked(alias, m.now()) {
		return
	}
	c := m.newConn(nil, true)
	c.peer = protocol.Member{Alias: alias, Addr: addr}
	m.dialing[alias] = c
	m.wg.Add(1)
	go m.dialFor(c, addr)
}

// SendConnected queues m only when a connection to alias is established; it
// never dials. Job traffic uses it: a job goes only to a connected worker.
func (m *Mesh) SendConnected(alias string, msg protocol.Message) error {
	m.mu.Lock()
	c := m.live(alias)
	m.mu.Unlock()
	if c == nil {
		return ErrNotConnected
	}
	return c.enqueue(msg)
}

// live returns the connection to alias unless there is none or it closed
// (its reader has yet to forget it). Caller holds m.mu.
func (m *Mesh) live(alias string) *conn {
	if c := m.conns[alias]; c != nil && !c.closed() {
		return c
	}
	return nil
}

// PeerVersions returns the protocol range of the member alias and, as Cur,
// the version its connection speaks; false when it is not connected.
func (m *Mesh) PeerVersions(alias string) (protocol.Versions, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.live(alias); c != nil {
		return c.vsn, true
	}
	return protocol.Versions{}, false
}

// Versions is the protocol range this node speaks.
func (m *Mesh) Versions() protocol.Versions { return m.cfg.Versions }

// Connected reports whether a connection to alias is established.
func (m *Mesh) Connected(alias string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.live(alias) != nil
}

func (m *Mesh) dialFor(c *conn, addr string) {
	defer m.wg.Done()
	alias := c.peer.Alias
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.DialTimeout+m.cfg.HandshakeTimeout)
	defer cancel()
	_, err := m.handshake(ctx, addr, false, c)
	if err != nil && reset(err) && ctx.Err() == nil {
		// A process that exits closes its listener after some of its
		// connections: a dial in between is accepted, then reset. Dialled
		// once more, the address refuses, which is a crash's evidence; a
		// live peer that reset one handshake answers the next.
		if c.fr != nil {
			c.fr.Release()
		}
		_, err = m.handshake(ctx, addr, false, c)
	}
	m.mu.Lock()
	if m.dialing[alias] == c {
		delete(m.dialing, alias)
	}
	if err != nil {
		m.dialFailedLocked(alias, refused(err), m.now())
	}
	held, wasHeld := m.heldDown[alias]
	delete(m.heldDown, alias)
	m.mu.Unlock()
	if wasHeld && err != nil {
		m.h.PeerDown(alias, held) // the newer connection never came
	}
	if err == nil && c.dup {
		c.close(nil)
		c.requeue() // to the working connection the peer kept
		return
	}
	if err != nil {
		c.close(err)
		c.discard()
		m.h.DialFailed(alias, refused(err), err)
	}
}

// Flush waits until every queued frame is written or the timeout passes.
func (m *Mesh) Flush(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		m.mu.Lock()
		busy := false
		for _, c := range m.conns {
			if c.pending() > 0 {
				busy = true
				break
			}
		}
		m.mu.Unlock()
		if !busy {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// CloseAll closes every connection and the listener but leaves the Mesh
// usable: Listen may be called again (a node that left and rejoins).
func (m *Mesh) CloseAll() {
	m.mu.Lock()
	ln := m.ln
	m.ln = nil
	m.stopDial()
	conns := make([]*conn, 0, len(m.all))
	for c := range m.all {
		conns = append(conns, c)
	}
	m.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	m.gate.closeAll()
	for _, c := range conns {
		c.close(ErrClosed)
	}
}

// Close shuts the transport down and waits for its goroutines.
func (m *Mesh) Close() {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.CloseAll()
	m.wg.Wait()
}

func (m *Mesh) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

// Stats are transport counters.
type Stats struct {
	BytesSent, BytesReceived uint64
	Dropped                  uint64 // frames dropped: queue full, dial failed or too many dials
	Refused                  uint64 // connections closed for a bad handshake or frame, or a bound
	Evicted                  uint64 // handshakes closed to make room for newer ones
	Throttled                uint64 // membership frames held back by their connection's rate (MembershipRate)
	KeyThrottled             uint64 // connections closed on accept for their IP's failed TLS handshakes (KeyFailBurst)
	Conns                    int
	ByFamily                 [Families]FamilyStats // indexed by protocol.Family
}

// Stats returns the transport counters.
func (m *Mesh) Stats() Stats {
	m.mu.Lock()
	n := len(m.conns)
	m.mu.Unlock()
	st := Stats{BytesSent: m.sent.Load(), BytesReceived: m.received.Load(), Dropped: m.dropped.Load(),
		Refused: m.refused.Load(), Evicted: m.gate.evictions(), Throttled: m.throttled.Load(), KeyThrottled: m.keyThrottled.Load(), Conns: n}
	for i := range m.families {
		f := &m.families[i]
		st.ByFamily[i] = FamilyStats{FramesSent: f.framesSent.Load(), BytesSent: f.bytesSent.Load(),
			FramesReceived: f.framesReceived.Load(), BytesReceived: f.bytesReceived.Load(), Dropped: f.dropped.Load()}
	}
	return st
}

// normalizeAddr replaces an unspecified advertised host (empty, 0.0.0.0, ::)
// with the IP the connection came from; the port stays the advertised one.
func normalizeAddr(adv string, remote net.Addr) string {
	host, port, err := net.SplitHostPort(adv)
	if err != nil {
		return adv
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return adv
	}
	if ta, ok := remote.(*net.TCPAddr); ok {
		return net.JoinHostPort(ta.IP.String(), port)
	}
	return adv
}
