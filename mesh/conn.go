package mesh

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"meshell/protocol"
)

// What a connection may carry in each of its states; the type byte is
// checked against them before anything is decoded.
var (
	isIntro      = protocol.Only(protocol.TypeHello, protocol.TypeJoin)
	onlyHelloAck = protocol.Only(protocol.TypeHelloAck)
	onlyJoinAck  = protocol.Only(protocol.TypeJoinAck)
)

// retireGrace bounds how long a retired connection is read after its
// replacement won: frames the peer wrote before it saw the winner arrive
// within it, and the peer normally closes its side much sooner.
const retireGrace = 2 * time.Second

// maxBatch is how many bytes the writer gathers before one write.
const maxBatch = 64 << 10

// readBuf is each connection's read buffer: membership frames are a few
// hundred bytes, and a full mesh of 100 holds 99 of them (larger frames are
// read straight into the frame's own buffer).
const readBuf = 4 << 10

// conn is one TCP connection to a peer. Its reader and writer goroutines are
// its only users of nc after the handshake; close is the single, idempotent
// teardown path.
type conn struct {
	m          *Mesh
	nc         net.Conn
	dialed     bool   // this node dialled it
	id         uint64 // the dialler's random id for it, from the handshake
	peer       protocol.Member
	vsn        protocol.Versions // the peer's protocol range and, as Cur, the version chosen; set before start
	ip         string            // source IP of an accepted connection, counted by the gate
	rw         io.ReadWriter     // nc's reads and writes (newIO)
	br         *bufio.Reader     // under fr; readBuf bytes
	fr         *protocol.FrameReader
	dec        *protocol.Decoder
	out        *outq
	queued     atomic.Int64 // enqueued and not yet written
	heard      atomic.Int64 // unix nanoseconds of the last frame read after the handshake; 0 = none
	up         time.Time    // when the handshake completed; set before the reader starts
	dup        bool         // the peer answered that it keeps another connection with us
	introduced bool         // accepted with a Hello: the peer joined through this node
	claim      *claim       // the alias this accepted handshake holds until registered (claim.go); guarded by m.mu
	pace       pace         // the reader's membership rate (pace.go)

	retired   atomic.Bool
	stop      chan struct{} // closed by retire
	done      chan struct{} // closed by close
	closeOnce sync.Once
	retOnce   sync.Once
	reason    error
}

func (m *Mesh) newConn(nc net.Conn, dialed bool) *conn {
	c := &conn{m: m, dialed: dialed, dec: protocol.NewDecoder(),
		out: newOutq(m.cfg.QueueLen, m.cfg.QueueBytes), stop: make(chan struct{}), done: make(chan struct{})}
	if nc != nil {
		c.attach(nc)
	}
	return c
}

func (c *conn) attach(nc net.Conn) {
	c.nc = nc
	c.rw = newIO(nc)
	c.readFrom(c.rw)
}

// readFrom makes r the source of c's frames: the connection, or what a
// handshake peeked at followed by the connection.
func (c *conn) readFrom(r io.Reader) {
	nc := c.nc
	if c.br == nil {
		c.br = bufio.NewReaderSize(r, readBuf)
	} else {
		c.br.Reset(r) // the handshake's peek: one buffer per connection
	}
	c.fr = protocol.NewFrameReaderOpts(c.br, protocol.FrameOptions{
		Max: protocol.MaxHandshakeFrame, Budget: c.m.budget,
		Deadline: func(t time.Time) error {
			if c.retired.Load() {
				return nil // retire's grace deadline stands
			}
			err := nc.SetReadDeadline(t)
			if c.retired.Load() { // retired meanwhile: put its deadline back
				nc.SetReadDeadline(time.Now().Add(retireGrace))
			}
			return err
		},
	})
}

// afterHandshake arms the per-frame deadline: from now on a frame whose
// first byte arrived must be complete within FrameTimeout. A retired
// connection keeps the deadline retire set.
func (c *conn) afterHandshake() {
	c.fr.SetMax(protocol.MaxFrameSize)
	c.fr.SetFrameTimeout(c.m.cfg.FrameTimeout)
}

// answering reports whether the connection is up for more than settle and
// its peer delivered a frame within window.
func (c *conn) answering(now time.Time, settle, window time.Duration) bool {
	h := c.heard.Load()
	return h != 0 && now.Sub(time.Unix(0, h)) < window && now.Sub(c.up) >= settle
}

// writeDirect writes one frame synchronously; only during the handshake,
// before the writer goroutine exists.
func (c *conn) writeDirect(msg protocol.Message) error {
	b, err := protocol.Frame(msg)
	if err != nil {
		return err
	}
	n, err := c.rw.Write(b)
	c.m.sent.Add(uint64(n))
	if err == nil {
		f := c.m.family(msg.Type())
		f.framesSent.Add(1)
		f.bytesSent.Add(uint64(n))
	}
	return err
}

func (c *conn) enqueue(msg protocol.Message) error {
	select {
	case <-c.done:
		return ErrNotConnected
	default:
	}
	if !c.out.push(msg) {
		c.m.drop(msg)
		return ErrQueueFull
	}
	c.queued.Add(1)
	return nil
}

func (c *conn) pending() int64 { return c.queued.Load() }

// closed reports whether close ran: the connection is gone even if its
// reader has not yet taken it out of the mesh's table.
func (c *conn) closed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// discard empties the queue of a connection that never came up, counting
// what it drops.
func (c *conn) discard() {
	for {
		msg, ok := c.out.pop()
		if !ok {
			c.queued.Store(0)
			return
		}
		c.m.drop(msg)
	}
}

func (c *conn) close(reason error) {
	c.closeOnce.Do(func() {
		c.reason = reason
		close(c.done)
		if c.nc != nil {
			c.nc.Close()
		}
	})
}

// retire stops writing on a connection that lost to another one for the same
// peer; what is queued moves to the winner. Only the side that accepted the
// loser half-closes it: by then both sides have registered the winner (the
// acceptor registers before it answers a handshake), so neither mistakes the
// close for the peer going away. Reading goes on until the peer's side is
// closed, or retireGrace passes.
func (c *conn) retire() {
	c.retOnce.Do(func() {
		c.retired.Store(true)
		close(c.stop)
		c.nc.SetReadDeadline(time.Now().Add(retireGrace))
	})
}

// register records a connection whose handshake completed as the one to its
// peer, or as a loser. Of two connections to one peer, both nodes keep the
// one dialled by the node with the smaller alias; of two dialled by the same
// side, the one with the larger id. Both rules read only what both ends
// know, never the order of arrival, so the two nodes always keep the same
// connection. It returns the connection to retire, if any, and false when
// the mesh is closed or no longer listens.
func (m *Mesh) register(c *conn) (loser *conn, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.releaseLocked(c) // the connection takes over the claim's hold on the alias
	if m.closed || m.ln == nil {
		return nil, false
	}
	m.all[c] = struct{}{}
	m.metLocked(c.peer.Alias)
	c.up = time.Now()
	self := m.cfg.Self().Alias
	prefer := func(x *conn) bool { return (self < x.peer.Alias) == x.dialed }
	old := m.live(c.peer.Alias)
	switch {
	case old == nil:
		m.conns[c.peer.Alias] = c
	case prefer(old) != prefer(c) && prefer(old), prefer(old) == prefer(c) && old.id > c.id:
		loser = c
	default:
		m.conns[c.peer.Alias] = c
		loser = old
	}
	return loser, true
}

// unregister forgets a connection that never started; the connection it
// displaced, if any, is the peer's again.
func (m *Mesh) unregister(c, displaced *conn) {
	m.mu.Lock()
	delete(m.all, c)
	if m.conns[c.peer.Alias] == c {
		delete(m.conns, c.peer.Alias)
		if displaced != nil && displaced != c {
			m.conns[c.peer.Alias] = displaced
		}
	}
	m.mu.Unlock()
}

// launch starts a registered connection's goroutines and retires the loser.
func (m *Mesh) launch(c, loser *conn) {
	c.afterHandshake()
	m.wg.Add(2)
	go c.readLoop()
	go c.writeLoop()
	if loser != nil {
		m.cfg.Log.WithField("alias", c.peer.Alias).Debug("mesh: two connections to one peer; retiring one")
		loser.retire()
	}
	m.h.PeerUp(c.peer, c.introduced)
}

// start registers and launches a dialled connection; false when the mesh
// no longer listens (the node left while the dial was under way).
func (m *Mesh) start(c *conn) bool {
	loser, ok := m.register(c)
	if !ok {
		c.close(ErrClosed)
		return false
	}
	m.launch(c, loser)
	return true
}

func (c *conn) readLoop() {
	m := c.m
	defer m.wg.Done()
	var err error
	for {
		var p []byte
		if p, err = c.fr.Next(); err != nil {
			// A retired connection ends as expected: its peer closed it or
			// its grace ran out (a join storm retires hundreds). A reset
			// between frames is a peer gone, as after its leave: not news.
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, syscall.ECONNRESET) && !c.retired.Load() {
				m.warn.Warn("frame-read", logrus.Fields{"alias": c.peer.Alias, "error": err.Error()}, "mesh: closing connection")
			}
			break
		}
		m.received.Add(uint64(len(p)))
		c.heard.Store(time.Now().UnixNano())
		var msg protocol.Message
		if msg, err = c.dec.DecodeOnly(p, protocol.AfterHandshake); err != nil {
			m.refused.Add(1)
			m.warn.Warn("frame-bad", logrus.Fields{"alias": c.peer.Alias, "error": err.Error()}, "mesh: closing connection after a bad frame")
			break
		}
		f := m.family(msg.Type())
		f.framesReceived.Add(1)
		f.bytesReceived.Add(uint64(len(p)))
		if !c.paceMembership(msg) {
			err = ErrClosed
			break
		}
		m.h.Receive(c.peer.Alias, msg)
	}
	c.close(err)
	c.fr.Release()
	if c.ip != "" {
		m.gate.disconnect(c.ip)
	}
	m.mu.Lock()
	delete(m.all, c)
	registered := m.conns[c.peer.Alias] == c
	if registered {
		delete(m.conns, c.peer.Alias)
	}
	// A clean close of a connection this node dialled, while it dials the
	// same peer again, is normally the peer retiring it for the newer one
	// before this node learnt that the newer one won. The peer-down is held
	// until that dial ends: reported if it fails, dropped if it succeeds,
	// so it is never lost (a dispatch waiting on the peer always ends).
	superseded := registered && c.dialed && errors.Is(err, io.EOF) && m.dialing[c.peer.Alias] != nil
	if superseded {
		m.heldDown[c.peer.Alias] = err
	}
	m.mu.Unlock()
	c.requeue() // what is still queued goes to the newer connection, if any
	if registered && !c.retired.Load() && !superseded {
		m.h.PeerDown(c.peer.Alias, err)
	}
}

// writeState is what a writer needs while it has frames to write; an idle
// connection holds none (a pool shares them), so that a node's thousand
// idle connections do not each keep an encoder and a batch buffer.
type writeState struct {
	enc   *protocol.Encoder
	buf   []byte
	batch []framed // the frames in buf
}

var writeStates = sync.Pool{New: func() any {
	return &writeState{enc: protocol.NewEncoder(), buf: make([]byte, 0, 4096)}
}}

func (c *conn) writeLoop() {
	m := c.m
	defer m.wg.Done()
	for {
		select { // a retired connection takes no more frames, whatever else is ready
		case <-c.stop:
			c.handOver()
			return
		default:
		}
		msg, ok := c.out.pop()
		if !ok {
			select {
			case <-c.out.ready:
			case <-c.stop:
				c.handOver()
				return
			case <-c.done:
				return
			}
			continue
		}
		ws := writeStates.Get().(*writeState)
		err := c.writeBatch(ws, msg)
		clear(ws.batch)
		ws.buf, ws.batch = ws.buf[:0], ws.batch[:0]
		if cap(ws.buf) > 4*maxBatch {
			ws.buf = make([]byte, 0, 4096) // do not keep a huge buffer after a burst
		}
		writeStates.Put(ws)
		if err != nil {
			c.close(err)
			return
		}
	}
}

// writeBatch writes msg and what else is queued, up to maxBatch bytes, in
// one system call.
func (c *conn) writeBatch(ws *writeState, msg protocol.Message) error {
	m := c.m
	n := int64(1)
	buf, batch := c.append(ws.enc, ws.buf[:0], ws.batch[:0], msg)
	for len(buf) < maxBatch {
		var ok bool
		if msg, ok = c.out.pop(); !ok {
			break
		}
		n++
		buf, batch = c.append(ws.enc, buf, batch, msg)
	}
	ws.buf, ws.batch = buf, batch
	c.nc.SetWriteDeadline(time.Now().Add(m.cfg.WriteTimeout))
	w, err := c.rw.Write(buf)
	m.sent.Add(uint64(w))
	c.queued.Add(-n)
	c.countSent(batch, w)
	if err != nil {
		// Frames that did not go out go to the peer's other connection,
		// if it has one: this one may have been retired or superseded
		// while they were on their way.
		next := c.next()
		for _, f := range batch {
			if f.end > w {
				c.moveTo(next, f.msg)
			}
		}
	}
	return err
}

// countSent adds the frames of batch that the write of w bytes got out to
// their families' counters, once per family.
func (c *conn) countSent(batch []framed, w int) {
	var frames, bytes [Families]uint64
	start := 0
	for _, f := range batch {
		if f.end > w {
			break
		}
		i := min(int(f.msg.Type().Family()), Families-1)
		frames[i]++
		bytes[i] += uint64(f.end - start)
		start = f.end
	}
	for i := range frames {
		if frames[i] > 0 {
			c.m.families[i].framesSent.Add(frames[i])
			c.m.families[i].bytesSent.Add(bytes[i])
		}
	}
}

// framed is a message in the writer's buffer and where its frame ends.
type framed struct {
	msg protocol.Message
	end int
}

func (c *conn) append(enc *protocol.Encoder, buf []byte, batch []framed, msg protocol.Message) ([]byte, []framed) {
	out, err := enc.AppendFrame(buf, msg)
	if err != nil {
		c.m.drop(msg)
		c.m.warn.Warn("frame-unsent", logrus.Fields{"alias": c.peer.Alias, "error": err.Error()}, "mesh: message not sent")
		return buf, batch
	}
	return out, append(batch, framed{msg: msg, end: len(out)})
}

// handOver moves what a retired connection still had queued to the winner
// and half-closes the socket.
func (c *conn) handOver() {
	if hc, ok := c.nc.(interface{ CloseWrite() error }); ok && !c.dialed {
		hc.CloseWrite()
	}
	c.requeue()
}

// requeue moves what c still has queued to the peer's connection, or to the
// one being dialled; what finds neither is dropped and counted.
func (c *conn) requeue() {
	next := c.next()
	for {
		msg, ok := c.out.pop()
		if !ok {
			return
		}
		c.queued.Add(-1)
		c.moveTo(next, msg)
	}
}

// next returns the peer's connection other than c, or the one being
// dialled, or nil.
func (c *conn) next() *conn {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	next := c.m.conns[c.peer.Alias]
	if next == nil || next == c {
		next = c.m.dialing[c.peer.Alias]
	}
	if next == c {
		return nil
	}
	return next
}

// moveTo queues msg on next; without one, or when next is full, it is
// dropped and counted.
func (c *conn) moveTo(next *conn, msg protocol.Message) {
	if next == nil {
		c.m.drop(msg)
	} else if err := next.enqueue(msg); err != nil && !errors.Is(err, ErrQueueFull) {
		c.m.drop(msg) // a full queue counted it already
	}
}
