package keyring

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// safety bounds every test's I/O: a bug fails the test instead of hanging it.
const safety = 10 * time.Second

var noDeadline time.Time

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t testing.TB) (dialer, acceptor net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	d, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	for _, c := range []net.Conn{d, r.c} {
		c.SetDeadline(time.Now().Add(safety))
	}
	t.Cleanup(func() { d.Close(); r.c.Close() })
	return d, r.c
}

type result struct {
	c   *Conn
	err error
}

// accept runs r.Server on nc in a goroutine. On error it closes nc at once,
// as the transport does: a refusal must reach the dialler all the same.
func accept(r *Keyring, nc net.Conn, alias string) <-chan result {
	ch := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), safety)
		defer cancel()
		c, err := r.Server(ctx, nc, alias)
		if err != nil {
			var pe *PlaintextError
			if !errors.As(err, &pe) { // kept open: the test answers in plaintext
				nc.Close()
			}
		}
		ch <- result{c, err}
	}()
	return ch
}

func dial(r *Keyring, nc net.Conn, alias string) (*Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), safety)
	defer cancel()
	return r.Client(ctx, nc, alias)
}

// roundTrip sends a message each way.
func roundTrip(t *testing.T, a, b net.Conn) {
	t.Helper()
	for _, p := range [][2]net.Conn{{a, b}, {b, a}} {
		msg := []byte("hello from " + p[0].LocalAddr().String())
		errc := make(chan error, 1)
		go func() { _, err := p[0].Write(msg); errc <- err }()
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(p[1], got); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		if string(got) != string(msg) {
			t.Fatalf("read %q, want %q", got, msg)
		}
	}
}

// connect handshakes dialler d (alias "a") with acceptor s (alias "b") and
// checks that the link works and each side knows the other's alias.
func connect(t *testing.T, d, s *Keyring, pipe bool) {
	t.Helper()
	var dc, sc net.Conn
	if pipe {
		dc, sc = net.Pipe()
		defer dc.Close()
		defer sc.Close()
	} else {
		dc, sc = tcpPair(t)
	}
	ch := accept(s, sc, "b")
	c, err := dial(d, dc, "a")
	if err != nil {
		t.Fatal("dialler:", err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal("acceptor:", r.err)
	}
	roundTrip(t, c, r.c)
	if c.PeerAlias() != "b" || r.c.PeerAlias() != "a" {
		t.Fatalf("peer aliases %q and %q, want b and a", c.PeerAlias(), r.c.PeerAlias())
	}
	if got := PeerAlias(c.ConnectionState()); got != "b" {
		t.Fatalf("PeerAlias = %q", got)
	}
	// Each side's primary, unless a rotation runs concurrently: then one
	// of its keys.
	if !slices.Contains(s.IDs(), c.PeerKeyID()) || !slices.Contains(d.IDs(), r.c.PeerKeyID()) {
		t.Fatalf("peer key ids %s and %s, want keys of %v and %v", c.PeerKeyID(), r.c.PeerKeyID(), s.IDs(), d.IDs())
	}
	cs := c.ConnectionState()
	if cs.Version != tls.VersionTLS13 || cs.DidResume {
		t.Fatalf("version %x, resumed %v", cs.Version, cs.DidResume)
	}
	if n := len(r.c.ConnectionState().PeerCertificates); n != 2 {
		t.Fatalf("peer presented %d certificates, want leaf and CA", n)
	}
}

func TestHandshake(t *testing.T) {
	k := newKey(t)
	a, b := newRing(t, k), newRing(t, k)
	t.Run("tcp a dials b", func(t *testing.T) { connect(t, a, b, false) })
	t.Run("tcp b dials a", func(t *testing.T) { connect(t, b, a, false) })
	t.Run("pipe", func(t *testing.T) { connect(t, a, b, true) })
	t.Run("one keyring both ends", func(t *testing.T) { connect(t, a, a, false) })
}

// mismatch handshakes d with s, which share no usable key, and returns both
// sides' errors. The dialler writes and reads first, as the transport does,
// to learn a refusal that comes after its own handshake completed.
func mismatch(t *testing.T, d, s *Keyring) (dialErr, acceptErr error) {
	t.Helper()
	dc, sc := tcpPair(t)
	ch := accept(s, sc, "b")
	c, err := dial(d, dc, "a")
	if err == nil {
		if _, err = c.Write([]byte("join")); err == nil {
			_, err = c.Read(make([]byte, 1))
		}
	}
	dc.Close()
	r := <-ch
	if err == nil || r.err == nil {
		t.Fatalf("handshake succeeded: dialler %v, acceptor %v", err, r.err)
	}
	for _, e := range []error{err, r.err} {
		assertNoKeyBytes(t, "handshake error", e.Error(), append(d.Keys(), s.Keys()...)...)
		assertNoKeyBytes(t, "Describe", Describe(e), append(d.Keys(), s.Keys()...)...)
		if strings.Contains(Describe(e), "\n") {
			t.Fatalf("Describe is more than a line: %q", Describe(e))
		}
	}
	return err, r.err
}

func asMismatch(t *testing.T, err error) *KeyMismatchError {
	t.Helper()
	var km *KeyMismatchError
	if !errors.As(err, &km) {
		t.Fatalf("error %v (%T) is not a *KeyMismatchError", err, err)
	}
	if Describe(err) != km.Error() {
		t.Fatalf("Describe = %q, want %q", Describe(err), km.Error())
	}
	return km
}

func TestWrongKey(t *testing.T) {
	k1, k2 := newKey(t), newKey(t)
	a, b := newRing(t, k1), newRing(t, k2)
	dErr, aErr := mismatch(t, a, b)

	d := asMismatch(t, dErr)
	if !d.Dialed || d.Refused || !slices.Equal(d.PeerKeyIDs, ids(k2)) || !slices.Equal(d.OurKeyIDs, ids(k1)) {
		t.Fatalf("dialler: %+v", *d)
	}
	want := "this node holds no key of that cluster (its key ids: " + k2.ID() + "; this node's: " + k1.ID() + "); pass the cluster's --key-file"
	if d.Error() != want {
		t.Fatalf("dialler's message:\n%s\nwant\n%s", d.Error(), want)
	}

	s := asMismatch(t, aErr)
	if s.Dialed || !s.Refused || !slices.Equal(s.OurKeyIDs, ids(k2)) {
		t.Fatalf("acceptor: %+v", *s)
	}
	if !strings.Contains(s.Error(), k2.ID()) {
		t.Fatalf("acceptor's message names not its key: %s", s.Error())
	}
	t.Log("dialler: ", d)
	t.Log("acceptor:", s)
}

func TestRotation(t *testing.T) {
	k1, k2 := newKey(t), newKey(t)
	a := newRing(t, k1, k2) // primary k1
	b := newRing(t, k1)
	t.Run("a=[k1,k2] b=[k1]", func(t *testing.T) {
		connect(t, a, b, false)
		connect(t, b, a, false)
	})

	if err := a.Use(k2); err != nil {
		t.Fatal(err)
	}
	t.Run("a=[k2,k1] dials b=[k1]", func(t *testing.T) {
		dErr, aErr := mismatch(t, a, b)
		s := asMismatch(t, aErr)
		if s.Dialed || s.Refused || !slices.Equal(s.PeerKeyIDs, ids(k2)) || !slices.Equal(s.OurKeyIDs, ids(k1)) {
			t.Fatalf("acceptor: %+v", *s)
		}
		want := "peer presented a certificate from key " + k2.ID() + ", not one of ours (" + k1.ID() + ")"
		if !strings.HasPrefix(s.Error(), want) {
			t.Fatalf("acceptor's message:\n%s\nwant it to start\n%s", s.Error(), want)
		}
		// The dialler accepted b's k1 certificate; b refused its k2 one.
		d := asMismatch(t, dErr)
		if !d.Dialed || !d.Refused || !slices.Equal(d.PeerKeyIDs, ids(k1)) || !slices.Equal(d.OurKeyIDs, ids(k2, k1)) {
			t.Fatalf("dialler: %+v", *d)
		}
		t.Log("dialler: ", d)
		t.Log("acceptor:", s)
	})
	t.Run("b=[k1] dials a=[k2,k1]", func(t *testing.T) {
		dErr, aErr := mismatch(t, b, a)
		d := asMismatch(t, dErr)
		if !d.Dialed || d.Refused || !slices.Equal(d.PeerKeyIDs, ids(k2)) || !slices.Equal(d.OurKeyIDs, ids(k1)) {
			t.Fatalf("dialler: %+v", *d)
		}
		s := asMismatch(t, aErr)
		if s.Dialed || !s.Refused || !slices.Equal(s.OurKeyIDs, ids(k2, k1)) {
			t.Fatalf("acceptor: %+v", *s)
		}
		t.Log("dialler: ", d)
		t.Log("acceptor:", s)
	})

	// b learns k2: it accepts a's new certificates and still presents k1.
	if err := b.Install(k2); err != nil {
		t.Fatal(err)
	}
	t.Run("a=[k2,k1] b=[k1,k2]", func(t *testing.T) {
		connect(t, a, b, false)
		connect(t, b, a, false)
	})
	// The old key goes everywhere: a and b talk on k2 alone.
	if err := b.Use(k2); err != nil {
		t.Fatal(err)
	}
	if err := a.Remove(k1); err != nil {
		t.Fatal(err)
	}
	if err := b.Remove(k1); err != nil {
		t.Fatal(err)
	}
	t.Run("a=[k2] b=[k2]", func(t *testing.T) {
		connect(t, a, b, false)
		connect(t, b, a, false)
	})
	// And a node still on k1 alone is out.
	t.Run("c=[k1] is out", func(t *testing.T) {
		dErr, aErr := mismatch(t, newRing(t, k1), a)
		asMismatch(t, dErr)
		asMismatch(t, aErr)
	})
}

// TestRotationDuringHandshakes flips one side's primary while handshakes run:
// the other side holds both keys, so every handshake must succeed.
func TestRotationDuringHandshakes(t *testing.T) {
	k1, k2 := newKey(t), newKey(t)
	a, b := newRing(t, k1, k2), newRing(t, k2, k1)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			k := k1
			if i%2 == 0 {
				k = k2
			}
			if err := a.Use(k); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for range 8 {
		connect(t, a, b, false)
		connect(t, b, a, false)
	}
	close(done)
	wg.Wait()
}

func TestPlaintextPeerAtAcceptor(t *testing.T) {
	r := newRing(t, newKey(t))
	for name, first := range map[string][]byte{
		"hello frame":        append([]byte{0x2a, 0x01}, strings.Repeat("x", 0x29)...),
		"frame of 22 bytes":  append([]byte{0x16, 0x03}, strings.Repeat("\x85", 0x15)...),
		"one byte at a time": []byte("GET / HTTP/1.1\r\n"),
	} {
		t.Run(name, func(t *testing.T) {
			dc, sc := tcpPair(t)
			ch := accept(r, sc, "b")
			if name == "one byte at a time" {
				for i := range first {
					dc.Write(first[i : i+1])
				}
			} else if _, err := dc.Write(first); err != nil {
				t.Fatal(err)
			}
			res := <-ch
			var pe *PlaintextError
			if !errors.As(res.err, &pe) || pe.Dialed {
				t.Fatalf("acceptor: %v (%T), want a *PlaintextError", res.err, res.err)
			}
			if len(pe.Peeked) == 0 || !strings.HasPrefix(string(first), string(pe.Peeked)) {
				t.Fatalf("Peeked % x, want a prefix of % x", pe.Peeked, first)
			}
			if !strings.Contains(Describe(res.err), "peer has no cluster key") {
				t.Fatalf("Describe = %q", Describe(res.err))
			}
			// Nothing TLS was written to the plaintext peer, and the
			// connection is still open for a plaintext answer.
			if _, err := sc.Write([]byte("refused")); err != nil {
				t.Fatal("the acceptor closed the connection:", err)
			}
			sc.(*net.TCPConn).CloseWrite() // not Close: unread bytes would reset
			got, _ := io.ReadAll(dc)
			if string(got) != "refused" {
				t.Fatalf("the plaintext peer read %q", got)
			}
		})
	}
}

func TestPlaintextPeerAtDialler(t *testing.T) {
	r := newRing(t, newKey(t))
	// A node without a key answers the ClientHello with a plaintext refusal.
	plainNode := func(t *testing.T, sc net.Conn) chan struct{} {
		done := make(chan struct{})
		go func() {
			defer close(done)
			buf := make([]byte, 5)
			if _, err := io.ReadFull(sc, buf); err != nil {
				t.Error(err)
				return
			}
			if !LooksLikeTLS(buf) {
				t.Errorf("LooksLikeTLS(ClientHello % x) = false", buf)
			}
			sc.Write([]byte("\x20\x02this node speaks plaintext...."))
		}()
		return done
	}
	t.Run("Client", func(t *testing.T) {
		dc, sc := tcpPair(t)
		done := plainNode(t, sc)
		_, err := dial(r, dc, "a")
		<-done
		var pe *PlaintextError
		if !errors.As(err, &pe) || !pe.Dialed {
			t.Fatalf("dialler: %v (%T), want a *PlaintextError", err, err)
		}
		want := "that node has no cluster key: the cluster is not encrypted; start this node without --key-file/MESHELL_KEY, or give that node the key"
		if Describe(err) != want {
			t.Fatalf("Describe = %q", Describe(err))
		}
		if !strings.HasPrefix(string(pe.Peeked), "\x20\x02") {
			t.Fatalf("Peeked % x", pe.Peeked)
		}
	})
	t.Run("ClientConfig", func(t *testing.T) {
		dc, sc := tcpPair(t)
		done := plainNode(t, sc)
		err := tls.Client(dc, r.ClientConfig("a")).Handshake()
		<-done
		if err == nil || !strings.Contains(Describe(err), "does not speak TLS: it has no cluster key") {
			t.Fatalf("raw tls.Client: %v; Describe %q", err, Describe(err))
		}
	})
}

// cutConn closes its connection once limit bytes were written through it:
// a peer that goes away in the middle of its handshake.
type cutConn struct {
	net.Conn
	limit int
}

func (c *cutConn) Write(p []byte) (int, error) {
	if len(p) >= c.limit {
		n, _ := c.Conn.Write(p[:c.limit])
		c.Conn.Close()
		return n, io.ErrClosedPipe
	}
	c.limit -= len(p)
	return c.Conn.Write(p)
}

func TestTruncatedHandshake(t *testing.T) {
	r := newRing(t, newKey(t))
	closedDuring := "closed the connection during the TLS handshake"
	for _, limit := range []int{1, 5, 60, 300} {
		t.Run("acceptor cut after "+strconv.Itoa(limit), func(t *testing.T) {
			dc, sc := tcpPair(t)
			ch := accept(r, &cutConn{Conn: sc, limit: limit}, "b")
			_, err := dial(r, dc, "a")
			<-ch
			if err == nil {
				t.Fatal("handshake succeeded")
			}
			if d := Describe(err); !strings.Contains(d, closedDuring) {
				t.Fatalf("dialler: %v; Describe %q", err, d)
			}
		})
		t.Run("dialler cut after "+strconv.Itoa(limit), func(t *testing.T) {
			dc, sc := tcpPair(t)
			ch := accept(r, sc, "b")
			_, derr := dial(r, &cutConn{Conn: dc, limit: limit}, "a")
			res := <-ch
			if derr == nil || res.err == nil {
				t.Fatalf("dialler %v, acceptor %v", derr, res.err)
			}
			if d := Describe(res.err); !strings.Contains(d, closedDuring) {
				t.Fatalf("acceptor: %v; Describe %q", res.err, d)
			}
		})
	}
	// A peer that stops in the middle and stays: the deadline ends it.
	t.Run("stalled acceptor", func(t *testing.T) {
		dc, sc := tcpPair(t)
		go io.Copy(io.Discard, sc)
		dc.SetDeadline(time.Now().Add(50 * time.Millisecond))
		_, err := r.Client(context.Background(), dc, "a")
		if !errors.Is(err, os.ErrDeadlineExceeded) || !strings.Contains(Describe(err), "timed out") {
			t.Fatalf("dialler: %v; Describe %q", err, Describe(err))
		}
	})
	t.Run("stalled dialler", func(t *testing.T) {
		_, sc := tcpPair(t)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := r.Server(ctx, sc, "b")
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(Describe(err), "timed out") {
			t.Fatalf("acceptor: %v; Describe %q", err, Describe(err))
		}
	})
}

// TestConfigsFollowTheKeyring checks the plain configurations, as a caller of
// tls.Server and tls.Client uses them, across a change of the keyring.
func TestConfigsFollowTheKeyring(t *testing.T) {
	k1, k2 := newKey(t), newKey(t)
	a, b := newRing(t, k1), newRing(t, k2)
	scfg, ccfg := b.ServerConfig("b"), a.ClientConfig("a")
	for _, c := range []*tls.Config{scfg, ccfg} {
		if c.MinVersion != tls.VersionTLS13 || c.MaxVersion != tls.VersionTLS13 {
			t.Fatal("not TLS 1.3 only")
		}
	}
	if scfg.ClientAuth != tls.RequireAnyClientCert || !scfg.SessionTicketsDisabled {
		t.Fatal("server config does not require a client certificate or resumes sessions")
	}
	shake := func() (error, error) {
		dc, sc := tcpPair(t)
		errc := make(chan error, 1)
		go func() {
			s := tls.Server(sc, scfg)
			err := s.Handshake()
			if err == nil {
				_, err = s.Read(make([]byte, 1))
			}
			errc <- err
		}()
		c := tls.Client(dc, ccfg)
		err := c.Handshake()
		if err == nil {
			_, err = c.Write([]byte("x"))
		}
		return err, <-errc
	}
	cerr, serr := shake()
	var km *KeyMismatchError
	if !errors.As(cerr, &km) || serr == nil {
		t.Fatalf("before install: client %v, server %v", cerr, serr)
	}
	if !strings.Contains(Describe(serr), "refused this node's certificate") {
		t.Fatalf("Describe(%v) = %q", serr, Describe(serr))
	}
	if err := a.Install(k2); err != nil {
		t.Fatal(err)
	}
	if err := b.Install(k1); err != nil {
		t.Fatal(err)
	}
	if cerr, serr := shake(); cerr != nil || serr != nil {
		t.Fatalf("after install, same configs: client %v, server %v", cerr, serr)
	}
}

func TestDescribe(t *testing.T) {
	if Describe(nil) != "" {
		t.Fatal("Describe(nil) is not empty")
	}
	err := errors.New("first\nsecond")
	if got := Describe(err); got != "first second" {
		t.Fatalf("Describe = %q", got)
	}
	wrapped := &net.OpError{Op: "read", Err: &PlaintextError{Dialed: true}}
	if !strings.HasPrefix(Describe(wrapped), "that node has no cluster key") {
		t.Fatalf("Describe of a wrapped error: %q", Describe(wrapped))
	}
}

func TestEmptyAlias(t *testing.T) {
	r := newRing(t, newKey(t))
	dc, sc := tcpPair(t)
	ch := accept(r, sc, "b")
	_, err := dial(r, dc, "")
	dc.Close()
	<-ch
	if err == nil || !strings.Contains(err.Error(), "empty alias") {
		t.Fatalf("dial with an empty alias: %v", err)
	}
}

// TestForeignServers dials TLS servers that are not keyed meshell nodes: one
// presenting a cluster's CA certificate itself (it holds the CA key, so it
// holds the cluster key; still not a node), and one with a random
// self-signed certificate.
func TestForeignServers(t *testing.T) {
	k := newKey(t)
	r := newRing(t, k)
	a, err := deriveAuthority(k)
	if err != nil {
		t.Fatal(err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "example.com"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cert tls.Certificate
		want string
	}{
		{"CA as leaf", tls.Certificate{Certificate: [][]byte{a.cert.Raw}, PrivateKey: a.priv}, "presented a CA certificate"},
		{"self-signed", tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}, "names no meshell cluster key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dc, sc := tcpPair(t)
			go tls.Server(sc, &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{tc.cert}}).Handshake()
			_, err := dial(r, dc, "a")
			if err == nil || !strings.Contains(Describe(err), tc.want) {
				t.Fatalf("dial: %v; Describe %q, want %q", err, Describe(err), tc.want)
			}
		})
	}
}
