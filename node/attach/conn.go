package attach

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"meshell/protocol"
)

// Deadlines of the conversation. Each side sends a keepalive when it has
// said nothing for Keepalive, so a read that waits longer than Idle means
// the other side is gone or stuck.
const (
	Keepalive    = 20 * time.Second
	Idle         = 70 * time.Second
	FrameTimeout = 10 * time.Second // a started frame must be complete within it
	WriteTimeout = 10 * time.Second // a peer that reads nothing for this long is dropped
)

// conn is one side of a conversation on the socket: frames of
// protocol.Local, bounded in size, with a deadline on every read and
// write. Send may be called from any goroutine; Recv from one.
type conn struct {
	c   net.Conn
	fr  *protocol.FrameReader
	dec *protocol.Decoder

	wmu  sync.Mutex // one writer at a time
	enc  *protocol.Encoder
	buf  []byte
	last time.Time // of the last frame sent

	stop chan struct{}
	once sync.Once
}

// newConn starts the conversation on c, with its keepalive.
func newConn(c net.Conn) *conn {
	k := &conn{c: c, dec: protocol.NewDecoder(), enc: protocol.NewEncoder(), stop: make(chan struct{}), last: time.Now()}
	k.fr = protocol.NewFrameReaderOpts(c, protocol.FrameOptions{Max: protocol.MaxLocalFrame + 8, Deadline: c.SetReadDeadline, FrameTimeout: FrameTimeout})
	go k.keepalive()
	return k
}

func (k *conn) keepalive() {
	t := time.NewTicker(Keepalive / 4)
	defer t.Stop()
	for {
		select {
		case <-k.stop:
			return
		case <-t.C:
			k.wmu.Lock()
			quiet := time.Since(k.last) >= Keepalive
			k.wmu.Unlock()
			if quiet && k.Send(&protocol.Local{Op: protocol.LocalKeepalive}) != nil {
				return
			}
		}
	}
}

// Send writes one frame. Data over protocol.MaxLocalData is split into
// several frames of the same op.
func (k *conn) Send(m *protocol.Local) error {
	k.wmu.Lock()
	defer k.wmu.Unlock()
	for {
		part := *m
		if len(part.Data) > protocol.MaxLocalData {
			part.Data = m.Data[:protocol.MaxLocalData]
		}
		var err error
		if k.buf, err = k.enc.AppendFrame(k.buf[:0], &part); err != nil {
			return err
		}
		k.c.SetWriteDeadline(time.Now().Add(WriteTimeout))
		if _, err := k.c.Write(k.buf); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				k.c.Close() // the other side reads nothing: end the conversation
			}
			return err // gone: its last words may still be read
		}
		k.last = time.Now()
		if len(part.Data) == len(m.Data) {
			return nil
		}
		rest := *m
		rest.Data = m.Data[len(part.Data):]
		m = &rest
	}
}

// Recv returns the next frame other than a keepalive. It fails with io.EOF
// when the other side closed the socket, or with a timeout after Idle
// without a frame.
func (k *conn) Recv() (*protocol.Local, error) {
	for {
		k.c.SetReadDeadline(time.Now().Add(Idle))
		p, err := k.fr.Next()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				return nil, io.EOF
			}
			return nil, err
		}
		m, err := k.dec.DecodeLocal(p)
		if err != nil {
			return nil, err
		}
		if m.Op != protocol.LocalKeepalive {
			return m, nil
		}
	}
}

// Close ends the conversation; it is safe to call more than once.
func (k *conn) Close() error {
	k.once.Do(func() { close(k.stop) })
	return k.c.Close()
}
