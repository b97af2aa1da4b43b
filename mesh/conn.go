package mesh

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"meshell/protocol"
)

// retireGrace bounds how long a retired connection is read after its
// replacement won: frames the peer wrote before it saw the winner arrive
// within it, and the peer normally closes its side much sooner.
const retireGrace = 2 * time.Second

// maxBatch is how many bytes the writer gathers before one write.
const maxBatch = 64 << 10

// conn is one TCP connection to a peer. Its reader and writer goroutines are
// its only users of nc after the handshake; close is the single, idempotent
// teardown path.
type conn struct {
	m      *Mesh
	nc     net.Conn
	dialed bool   // this node dialled it
	id     uint64 // the dialler's random id for it, from the handshake
	peer   protocol.Member
	rw     io.ReadWriter // nc's reads and writes (newIO)
	fr     *protocol.FrameReader
	dec    *protocol.Decoder
	out    chan protocol.Message
	queued atomic.Int64 // enqueued and not yet written

	retired   atomic.Bool
	stop      chan struct{} // closed by retire
	done      chan struct{} // closed by close
	closeOnce sync.Once
	retOnce   sync.Once
	reason    error
}

func (m *Mesh) newConn(nc net.Conn, dialed bool) *conn {
	c := &conn{m: m, dialed: dialed, dec: protocol.NewDecoder(),
		out: make(chan protocol.Message, m.cfg.QueueLen), stop: make(chan struct{}), done: make(chan struct{})}
	if nc != nil {
		c.attach(nc)
	}
	return c
}

func (c *conn) attach(nc net.Conn) {
	c.nc = nc
	c.rw = newIO(nc)
	c.fr = protocol.NewFrameReader(c.rw, 0)
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
	return err
}

func (c *conn) enqueue(msg protocol.Message) error {
	select {
	case <-c.done:
		return ErrNotConnected
	default:
	}
	select {
	case c.out <- msg:
		c.queued.Add(1)
		return nil
	default:
		c.m.dropped.Add(1)
		return ErrQueueFull
	}
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

// discard empties the queue of a connection that never came up.
func (c *conn) discard() int {
	n := 0
	for {
		select {
		case <-c.out:
			n++
		default:
			c.queued.Store(0)
			return n
		}
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
// the mesh is closed.
func (m *Mesh) register(c *conn) (loser *conn, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, false
	}
	m.all[c] = struct{}{}
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
	m.wg.Add(2)
	go c.readLoop()
	go c.writeLoop()
	if loser != nil {
		m.cfg.Log.WithField("alias", c.peer.Alias).Debug("mesh: two connections to one peer; retiring one")
		loser.retire()
	}
	m.h.PeerUp(c.peer)
}

// start registers and launches a dialled connection.
func (m *Mesh) start(c *conn) {
	loser, ok := m.register(c)
	if !ok {
		c.close(ErrClosed)
		return
	}
	m.launch(c, loser)
}

func (c *conn) readLoop() {
	m := c.m
	defer m.wg.Done()
	var err error
	for {
		var p []byte
		if p, err = c.fr.Next(); err != nil {
			break
		}
		m.received.Add(uint64(len(p)))
		var msg protocol.Message
		if msg, err = c.dec.Decode(p); err != nil {
			m.cfg.Log.WithField("alias", c.peer.Alias).WithError(err).Warn("mesh: closing connection after a bad frame")
			break
		}
		switch msg.Type() {
		case protocol.TypeHello, protocol.TypeHelloAck, protocol.TypeJoin, protocol.TypeJoinAck:
			m.cfg.Log.WithField("alias", c.peer.Alias).Warnf("mesh: closing connection: %s after the handshake", msg.Type())
			c.close(nil)
		default:
			m.h.Receive(c.peer.Alias, msg)
			continue
		}
		break
	}
	c.close(err)
	m.mu.Lock()
	delete(m.all, c)
	registered := m.conns[c.peer.Alias] == c
	if registered {
		delete(m.conns, c.peer.Alias)
	}
	// A clean close of a connection this node dialled, while it dials the
	// same peer again, is the peer retiring it for the newer one before
	// this node learnt that the newer one won: the peer is not down.
	superseded := c.dialed && errors.Is(err, io.EOF) && m.dialing[c.peer.Alias] != nil
	m.mu.Unlock()
	c.requeue() // what is still queued goes to the newer connection, if any
	if registered && !c.retired.Load() && !superseded {
		m.h.PeerDown(c.peer.Alias, err)
	}
}

func (c *conn) writeLoop() {
	m := c.m
	defer m.wg.Done()
	enc := protocol.NewEncoder()
	buf := make([]byte, 0, 4096)
	var batch []framed // the frames in buf
	for {
		select { // a retired connection takes no more frames, whatever else is ready
		case <-c.stop:
			c.handOver()
			return
		default:
		}
		var msg protocol.Message
		select {
		case msg = <-c.out:
		case <-c.stop:
			c.handOver()
			return
		case <-c.done:
			return
		}
		n := int64(1)
		buf, batch = c.append(enc, buf[:0], batch[:0], msg)
	gather:
		for len(buf) < maxBatch {
			select {
			case msg = <-c.out:
				n++
				buf, batch = c.append(enc, buf, batch, msg)
			default:
				break gather
			}
		}
		c.nc.SetWriteDeadline(time.Now().Add(m.cfg.WriteTimeout))
		w, err := c.rw.Write(buf)
		m.sent.Add(uint64(w))
		c.queued.Add(-n)
		if err != nil {
			// Frames that did not go out go to the peer's other
			// connection, if it has one: this one may have been retired
			// or superseded while they were on their way.
			next := c.next()
			for _, f := range batch {
				if f.end > w {
					c.moveTo(next, f.msg)
				}
			}
			c.close(err)
			return
		}
		clear(batch)
		if cap(buf) > 4*maxBatch {
			buf = make([]byte, 0, 4096) // do not keep a huge buffer after a burst
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
		c.m.dropped.Add(1)
		c.m.cfg.Log.WithField("alias", c.peer.Alias).WithError(err).Warn("mesh: message not sent")
		return buf, batch
	}
	return out, append(batch, framed{msg: msg, end: len(out)})
}

// handOver moves what a retired connection still had queued to the winner
// and half-closes the socket.
func (c *conn) handOver() {
	if tc, ok := c.nc.(*net.TCPConn); ok && !c.dialed {
		tc.CloseWrite()
	}
	c.requeue()
}

// requeue moves what c still has queued to the peer's connection, or to the
// one being dialled; what finds neither is dropped and counted.
func (c *conn) requeue() {
	next := c.next()
	for {
		select {
		case msg := <-c.out:
			c.queued.Add(-1)
			c.moveTo(next, msg)
		default:
			return
		}
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
	if next == nil || next.enqueue(msg) != nil {
		c.m.dropped.Add(1)
	}
}
