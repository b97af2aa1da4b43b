package mesh

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"net"
	"os"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (a, b net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	a, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b = <-acc
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// TestRawIOStreamsLikeTheConn: more bytes than the socket buffers hold go
// through intact, so writes wait for the reader and reads for the writer;
// the peer's close reads as io.EOF, and deadlines still apply.
func TestRawIOStreamsLikeTheConn(t *testing.T) {
	a, b := tcpPair(t)
	wa, rb := newIO(a), newIO(b)
	if _, ok := wa.(*rawIO); !ok {
		t.Fatalf("newIO of a TCP conn is %T, want rawIO", wa)
	}
	want := make([]byte, 16<<20)
	rand.New(rand.NewSource(1)).Read(want)
	werr := make(chan error, 1)
	go func() {
		n, err := wa.Write(want)
		if err == nil && n != len(want) {
			err = io.ErrShortWrite
		}
		a.(*net.TCPConn).CloseWrite()
		werr <- err
	}()
	got, err := io.ReadAll(rb)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, not the %d written", len(got), len(want))
	}

	b.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	// a wrote its last byte and half-closed: b reads EOF again, at once.
	if n, err := rb.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("read after the peer's close: %d, %v; want 0, EOF", n, err)
	}
	wb, ra := newIO(b), newIO(a)
	a.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if _, err := ra.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v, want a deadline error", err)
	}
	b.Close()
	if _, err := wb.Write([]byte("x")); err == nil {
		t.Fatal("write on a closed conn succeeded")
	}
}
