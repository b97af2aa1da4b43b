package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// frame is the msgpack body of every raw request and reply.
type frame struct {
	ID      uint64 `codec:"id"`
	Payload []byte `codec:"payload"`
}

var mh = func() *codec.MsgpackHandle {
	h := &codec.MsgpackHandle{}
	h.WriteExt = true // []byte as msgpack bin
	return h
}()

const maxFrame = 16 << 20

// readFrame reads one 4-byte big-endian length prefix and its body into buf.
func readFrame(r *bufio.Reader, buf []byte) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return buf, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxFrame {
		return buf, fmt.Errorf("frame too large: %d", n)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	_, err := io.ReadFull(r, buf)
	return buf, err
}

// encoder appends length-prefixed msgpack frames.
type encoder struct {
	body []byte
	enc  *codec.Encoder
}

func newEncoder() *encoder {
	e := &encoder{}
	e.enc = codec.NewEncoderBytes(&e.body, mh)
	return e
}

// encode returns a freshly allocated length-prefixed frame.
func (e *encoder) encode(f *frame) ([]byte, error) {
	e.body = e.body[:0]
	e.enc.ResetBytes(&e.body)
	if err := e.enc.Encode(f); err != nil {
		return nil, err
	}
	out := make([]byte, 4+len(e.body))
	binary.BigEndian.PutUint32(out, uint32(len(e.body)))
	copy(out[4:], e.body)
	return out, nil
}

// writeLoop writes queued frames, flushing only when the queue is empty so
// that replies/requests are batched into few syscalls under load.
func writeLoop(c net.Conn, q <-chan []byte, done <-chan struct{}) error {
	w := bufio.NewWriterSize(c, 64*1024)
	for {
		var b []byte
		select {
		case b = <-q:
		case <-done:
			return nil
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	drain:
		for {
			select {
			case b = <-q:
				if _, err := w.Write(b); err != nil {
					return err
				}
			default:
				break drain
			}
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
}

func rawServer(args []string) error {
	fs := flag.NewFlagSet("raw-server", flag.ExitOnError)
	port := fs.Int("port", 0, "TCP port on 127.0.0.1")
	fs.Parse(args)
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		return err
	}
	go func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
		<-ch
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go serveRaw(c)
	}
}

func serveRaw(c net.Conn) {
	defer c.Close()
	q := make(chan []byte, 1024)
	done := make(chan struct{})
	go func() {
		if err := writeLoop(c, q, done); err != nil {
			c.Close()
		}
	}()
	defer close(done)
	r := bufio.NewReaderSize(c, 64*1024)
	enc := newEncoder()
	dec := codec.NewDecoderBytes(nil, mh)
	var buf []byte
	for {
		var err error
		buf, err = readFrame(r, buf)
		if err != nil {
			return
		}
		var f frame
		dec.ResetBytes(buf)
		if err := dec.Decode(&f); err != nil {
			return
		}
		// Handler, inline: echo the payload back under the same id.
		out, err := enc.encode(&f)
		if err != nil {
			return
		}
		q <- out
	}
}

// rawCaller is one TCP connection per server with any number of requests in
// flight, matched to their callers by id.
type rawCaller struct {
	c    net.Conn
	q    chan []byte
	done chan struct{}

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]chan []byte
	encs    sync.Pool
	err     error
}

func newRawCaller(addr string) (*rawCaller, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	rc := &rawCaller{c: c, q: make(chan []byte, 1024), done: make(chan struct{}),
		pending: map[uint64]chan []byte{}}
	rc.encs.New = func() any { return newEncoder() }
	go func() {
		if err := writeLoop(c, rc.q, rc.done); err != nil {
			rc.fail(err)
		}
	}()
	go rc.readLoop()
	return rc, nil
}

func (rc *rawCaller) fail(err error) {
	rc.mu.Lock()
	if rc.err == nil {
		rc.err = err
	}
	for id, ch := range rc.pending {
		close(ch)
		delete(rc.pending, id)
	}
	rc.mu.Unlock()
	rc.c.Close()
}

func (rc *rawCaller) readLoop() {
	r := bufio.NewReaderSize(rc.c, 64*1024)
	dec := codec.NewDecoderBytes(nil, mh)
	var buf []byte
	for {
		var err error
		buf, err = readFrame(r, buf)
		if err != nil {
			rc.fail(err)
			return
		}
		var f frame
		dec.ResetBytes(buf)
		if err := dec.Decode(&f); err != nil {
			rc.fail(err)
			return
		}
		rc.mu.Lock()
		ch := rc.pending[f.ID]
		delete(rc.pending, f.ID)
		rc.mu.Unlock()
		if ch != nil {
			ch <- f.Payload
		}
	}
}

// call sends req and waits for the reply on ch (a caller-owned channel with
// capacity 1).
func (rc *rawCaller) call(ctx context.Context, req []byte, ch chan []byte) ([]byte, error) {
	rc.mu.Lock()
	if rc.err != nil {
		err := rc.err
		rc.mu.Unlock()
		return nil, err
	}
	rc.nextID++
	id := rc.nextID
	rc.pending[id] = ch
	rc.mu.Unlock()

	enc := rc.encs.Get().(*encoder)
	out, err := enc.encode(&frame{ID: id, Payload: req})
	rc.encs.Put(enc)
	if err != nil {
		rc.forget(id)
		return nil, err
	}
	select {
	case rc.q <- out:
	case <-ctx.Done():
		rc.forget(id)
		return nil, ctx.Err()
	}
	select {
	case resp, ok := <-ch:
		if !ok {
			return nil, errors.New("connection failed")
		}
		return resp, nil
	case <-ctx.Done():
		rc.forget(id)
		return nil, ctx.Err()
	}
}

func (rc *rawCaller) forget(id uint64) {
	rc.mu.Lock()
	delete(rc.pending, id)
	rc.mu.Unlock()
}

func (rc *rawCaller) close() {
	close(rc.done)
	rc.c.Close()
}
