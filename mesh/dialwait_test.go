package mesh

import (
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"meshell/protocol"
)

// A member never met, at an address that answers no handshake, is dialled
// once, then not again until its backoff (100 ms, doubling) has passed,
// whatever is sent to it meanwhile; a member once met is dialled again at
// once after a failure.
func TestDialsToAMemberNeverMetBackOff(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepts atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepts.Add(1)
			c.Close()
		}
	}()
	rec := newRecorder()
	a, _ := newMesh(t, "a", rec)
	var clock atomic.Int64
	clock.Store(time.Unix(1000, 0).UnixNano())
	a.mu.Lock()
	a.now = func() time.Time { return time.Unix(0, clock.Load()) }
	a.mu.Unlock()
	advance := func(d time.Duration) { clock.Add(int64(d)) }
	failures := func() int {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.failed)
	}
	dialOnce := func(want int) {
		t.Helper()
		if err := a.Send("ghost", ln.Addr().String(), &protocol.Ping{}); err != nil {
			t.Fatalf("send that dials: %v", err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for failures() < want {
			if time.Now().After(deadline) {
				t.Fatalf("dial %d never failed", want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	refused := func(what string) {
		t.Helper()
		before := accepts.Load()
		for range 20 {
			var bo *BackoffError
			if err := a.Send("ghost", ln.Addr().String(), &protocol.Ping{}); !errors.Is(err, ErrNotConnected) || !errors.As(err, &bo) || bo.Alias != "ghost" {
				t.Fatalf("%s: send %v, want a BackoffError for ghost", what, err)
			}
		}
		a.mu.Lock()
		dialing := len(a.dialing)
		a.mu.Unlock()
		if dialing != 0 || accepts.Load() != before {
			t.Fatalf("%s: %d dials under way, %d connections made, want none", what, dialing, accepts.Load()-before)
		}
	}
	dialOnce(1)
	refused("right after the first failure")
	advance(99 * time.Millisecond)
	refused("99 ms after it")
	advance(time.Millisecond)
	dialOnce(2)
	advance(199 * time.Millisecond)
	refused("199 ms after the second failure")
	advance(time.Millisecond)
	dialOnce(3)

	a.mu.Lock()
	a.metLocked("ghost") // as a connection with it would
	a.dialFailedLocked("ghost", false, a.now())
	ok := a.mayDialLocked("ghost", a.now())
	a.mu.Unlock()
	if !ok {
		t.Error("a member once met backs off after a failed dial")
	}
}
