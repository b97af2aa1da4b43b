package mesh

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"meshell/mesh/keyring"
	"meshell/protocol"
)

func ring(t *testing.T, keys ...keyring.Key) *keyring.Keyring {
	t.Helper()
	r, err := keyring.New(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func newKey(t *testing.T) keyring.Key {
	t.Helper()
	k, err := keyring.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func withRing(r *keyring.Keyring) func(*Config) { return func(c *Config) { c.Keyring = r } }

func hello(t *testing.T, from *Mesh, addr string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := from.Hello(ctx, addr)
	return err
}

func TestKeyedNodesTalkOverTLS(t *testing.T) {
	k := newKey(t)
	ra := newRecorder()
	_, addrA := newMesh(t, "a", ra, withRing(ring(t, k)))
	b, _ := newMesh(t, "b", newRecorder(), withRing(ring(t, k)))
	if err := hello(t, b, addrA); err != nil {
		t.Fatalf("join with the cluster key: %v", err)
	}
	if err := b.SendConnected("a", &protocol.Ping{Seq: 7}); err != nil {
		t.Fatal(err)
	}
	awaitPing(t, ra, 7)
}

func TestKeyRefusalsSayWhatDiffers(t *testing.T) {
	k1, k2 := newKey(t), newKey(t)
	cases := []struct {
		name       string
		seed, join *keyring.Keyring
		want       string
	}{
		{"wrong key", ring(t, k1), ring(t, k2), "holds no key of that cluster (its key ids: " + k1.ID()},
		{"no key against a keyed cluster", ring(t, k1), nil, "this cluster is encrypted (key ids " + k1.ID()},
		{"a key against a cluster without one", nil, ring(t, k1), "that node has no cluster key"},
		{"a primary the seed does not hold", ring(t, k1), ring(t, k2, k1), "does not hold this node's primary key " + k2.ID()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, addr := newMesh(t, "seed", newRecorder(), withRing(tc.seed))
			j, _ := newMesh(t, "joiner", newRecorder(), withRing(tc.join))
			err := hello(t, j, addr)
			var re *RefusedError
			if !errors.As(err, &re) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("join error %v, want a refusal saying %q", err, tc.want)
			}
			for _, k := range []keyring.Key{k1, k2} {
				if strings.Contains(err.Error(), k.Encode()) {
					t.Fatal("the error shows key bytes")
				}
			}
		})
	}
}

func TestRotatedKeyringAppliesToNewConnections(t *testing.T) {
	k1, k2 := newKey(t), newKey(t)
	ra := ring(t, k1)
	_, addrA := newMesh(t, "a", newRecorder(), withRing(ra))
	rb := ring(t, k1)
	b, _ := newMesh(t, "b", newRecorder(), withRing(rb))
	if err := rb.Install(k2); err != nil {
		t.Fatal(err)
	}
	if err := rb.Use(k2); err != nil {
		t.Fatal(err)
	}
	if err := hello(t, b, addrA); err == nil {
		t.Fatal("a node whose primary key the seed lacks joined")
	}
	if err := ra.Install(k2); err != nil {
		t.Fatal(err)
	}
	if err := hello(t, b, addrA); err != nil {
		t.Fatalf("after installing the new key the seed still refuses it: %v", err)
	}
}

// TestRefusalsNameOnlyTheAlias: a peer that is refused, before its key is
// known or after, learns the refusing node's alias and nothing of its
// address or tags.
func TestRefusalsNameOnlyTheAlias(t *testing.T) {
	refuser := newRecorder()
	refuser.refuse = "not today"
	seeds := map[string]struct {
		h     Handler
		tweak func(*Config)
	}{
		"keyed seed, plaintext Hello": {newRecorder(), withRing(ring(t, newKey(t)))},
		"refused Hello":               {refuser, func(*Config) {}},
	}
	for name, s := range seeds {
		t.Run(name, func(t *testing.T) {
			_, addr := newMesh(t, "seed", s.h, s.tweak, func(c *Config) {
				self := c.Self
				c.Self = func() protocol.Member { m := self(); m.Tags = map[string]string{"role": "db"}; return m }
			})
			msg := helloAnswer(t, addr, protocol.Member{Alias: "x", Addr: "127.0.0.1:1"})
			ack, ok := msg.(*protocol.HelloAck)
			if !ok || ack.Error == "" {
				t.Fatalf("answered %+v, want a refusal", msg)
			}
			if ack.From.Alias != "seed" || ack.From.Addr != "" || len(ack.From.Tags) != 0 {
				t.Fatalf("the refusal describes the seed as %+v, want its alias only", ack.From)
			}
		})
	}
}

// TestProtectedNodeSpeaksToLoopbackOnly: without a key (and without
// --insecure) a node dials no address off this machine, whatever news named
// it, and refuses a peer that advertises one.
func TestProtectedNodeSpeaksToLoopbackOnly(t *testing.T) {
	a, addr := newMesh(t, "a", newRecorder())
	for _, to := range []string{"192.0.2.1:7001", "[2001:db8::1]:7001"} {
		if err := hello(t, a, to); err == nil || !strings.Contains(err.Error(), "is not on loopback") {
			t.Fatalf("dial to %s: %v, want refused before it leaves", to, err)
		}
	}
	// A member's address that is a name is not looked up: the query would
	// leave the machine. A seed to Hello may be one (localhost).
	if _, err := a.Join(context.Background(), "beacon.example.invalid:7001"); !errors.Is(err, ErrNotLoopback) {
		t.Fatalf("join to a member named by DNS: %v, want refused before a lookup", err)
	}
	far := protocol.Member{Alias: "x", Addr: "192.0.2.1:7001"}
	msg := helloAnswer(t, addr, far)
	if ack, ok := msg.(*protocol.HelloAck); !ok || !strings.Contains(ack.Error, "advertised address 192.0.2.1:7001 is not on loopback") {
		t.Fatalf("answered %+v, want the advertised address refused", msg)
	}
	// A seed on loopback that advertises an address off this machine is
	// refused by the protected node that dials it, as it would refuse it.
	_, seed := newMesh(t, "s", newRecorder(), func(c *Config) {
		c.Insecure = true
		c.Self = func() protocol.Member { return protocol.Member{Alias: "s", Addr: "192.0.2.9:7001"} }
	})
	if err := hello(t, a, seed); !errors.Is(err, ErrNotLoopback) || !strings.Contains(err.Error(), "advertises 192.0.2.9:7001, which is not on loopback") {
		t.Fatalf("hello to a seed advertising 192.0.2.9: %v, want refused", err)
	}
	if a.Stats().Conns != 0 {
		t.Fatalf("a protected node kept a connection to a seed advertising 192.0.2.9")
	}
	// With --insecure both are the operator's choice.
	_, ins := newMesh(t, "b", newRecorder(), func(c *Config) { c.Insecure = true })
	if ack, ok := helloAnswer(t, ins, far).(*protocol.HelloAck); !ok || ack.Error != "" {
		t.Fatalf("insecure node answered %+v, want admitted", ack)
	}
}

// A keyed node's TLS handshake with a peer that never answers times out as
// a plain error, to be tried again (a loaded peer), not as a refusal.
func TestTLSHandshakeTimeoutIsNotARefusal(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			held <- c // accepted, never answered
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		select {
		case c := <-held:
			c.Close()
		default:
		}
	})
	b, _ := newMesh(t, "b", newRecorder(), withRing(ring(t, newKey(t))))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = b.Hello(ctx, ln.Addr().String())
	var re *RefusedError
	if err == nil || errors.As(err, &re) || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("handshake with a silent peer: %v; want a timeout that is not a refusal", err)
	}
}

// TestFailedTLSHandshakesAreBoundedPerIP: each TLS handshake costs a keyed
// node a key exchange and a signature before it knows the peer has no key.
// Past KeyFailBurst failures from one IP, its connections are closed on
// accept, before any TLS work, and counted.
func TestFailedTLSHandshakesAreBoundedPerIP(t *testing.T) {
	const burst = 5
	a, addr := newMesh(t, "a", newRecorder(), withRing(ring(t, newKey(t))), func(c *Config) {
		c.KeyFailBurst, c.KeyFailRate = burst, 1e-9
	})
	keyless := func() (answered bool) {
		nc := rawDial(t, addr)
		nc.SetDeadline(time.Now().Add(5 * time.Second))
		tc := tls.Client(nc, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
		err := tc.Handshake()
		if err == nil {
			tc.Read(make([]byte, 1)) // TLS 1.3: the server's verdict on our (empty) certificate
		}
		nc.Close()
		return tc.ConnectionState().HandshakeComplete || err == nil || !errors.Is(err, io.EOF)
	}
	for i := range burst {
		if !keyless() {
			t.Fatalf("handshake %d of the burst was not answered", i)
		}
		for deadline := time.Now().Add(5 * time.Second); a.Stats().Refused < uint64(i+1); {
			if time.Now().After(deadline) {
				t.Fatalf("handshake %d not refused", i)
			}
			time.Sleep(time.Millisecond)
		}
	}
	// Past it, replays sent at once: none is answered.
	hello := clientHelloBytes(t)
	const replays = 50
	errs := make(chan error, replays)
	for i := range replays {
		go func() {
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer nc.Close()
			nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			nc.Write(hello)
			if n, err := nc.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
				errs <- fmt.Errorf("replay %d past the bound: read %d bytes, %v; want it closed unanswered", i, n, err)
				return
			}
			errs <- nil
		}()
	}
	for range replays {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := a.Stats().KeyThrottled; n != replays {
		t.Fatalf("%d connections counted as closed for their IP's failures, want %d", n, replays)
	}
}

// TestKeyGateReservesOnlyForFailingIPs: an IP that never failed starts any
// number of handshakes at once (a join storm from one host); one that
// failed lately starts as many as it has tokens, and a success gives its
// token back.
func TestKeyGateReservesOnlyForFailingIPs(t *testing.T) {
	g := newGate(1024, 256, 4096, 1024)
	g.failBurst, g.failRate = 4, 1e-9
	now := time.Unix(1000, 0)
	for i := range 300 {
		if ok, reserved := g.keyEnter("10.0.0.1", now); !ok || reserved {
			t.Fatalf("handshake %d of a clean IP: ok %v, reserved %v", i, ok, reserved)
		}
	}
	g.keyLeave("10.0.0.2", now, false, true) // one failure: 3 tokens left
	for i := range 3 {
		if ok, reserved := g.keyEnter("10.0.0.2", now); !ok || !reserved {
			t.Fatalf("handshake %d of a failing IP: ok %v, reserved %v", i, ok, reserved)
		}
	}
	if ok, _ := g.keyEnter("10.0.0.2", now); ok {
		t.Fatal("a failing IP started more handshakes at once than its tokens")
	}
	g.keyLeave("10.0.0.2", now, true, false) // one of them succeeded
	if ok, _ := g.keyEnter("10.0.0.2", now); !ok {
		t.Fatal("a success did not give its token back")
	}
}

// clientHelloBytes is a keyless client's first flight, as an attacker
// records it once and replays it.
func clientHelloBytes(t *testing.T) []byte {
	t.Helper()
	c1, c2 := net.Pipe()
	defer c1.Close()
	go tls.Client(c2, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}).Handshake()
	buf := make([]byte, 4096)
	n, err := c1.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	c2.Close()
	return buf[:n]
}

// TestTimedOutTLSHandshakesDoNotCostTheIP: handshakes that end at their
// deadline (a loaded host's joiners are slow, not hostile) do not use up
// their IP's failures; a later handshake from it is still answered.
func TestTimedOutTLSHandshakesDoNotCostTheIP(t *testing.T) {
	const burst = 2
	a, addr := newMesh(t, "a", newRecorder(), withRing(ring(t, newKey(t))), func(c *Config) {
		c.KeyFailBurst, c.KeyFailRate = burst, 1e-9
		c.HandshakeTimeout = 200 * time.Millisecond
	})
	hello := clientHelloBytes(t)
	// answered sends a ClientHello, says nothing more, and reports whether
	// the node answered it before closing the connection.
	answered := func() bool {
		nc := rawDial(t, addr)
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(5 * time.Second))
		nc.Write(hello)
		n, _ := io.Copy(io.Discard, nc) // to the node's close at its deadline
		return n > 0
	}
	for i := range 2 * burst {
		if !answered() {
			t.Fatalf("silent handshake %d was not answered", i)
		}
	}
	if !answered() {
		t.Fatalf("after %d handshakes that timed out, the IP's next one was closed unanswered", 2*burst)
	}
	if n := a.Stats().KeyThrottled; n != 0 {
		t.Fatalf("%d connections closed for their IP's failures; timeouts are not failures", n)
	}
}
