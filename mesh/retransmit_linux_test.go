package mesh

import (
	"context"
	"syscall"
	"testing"
	"time"

	"meshell/protocol"
)

// rtoMax reads TCP_RTO_MAX_MS of c's socket.
func rtoMax(t *testing.T, c *conn) (int, error) {
	t.Helper()
	rc, err := c.nc.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	rc.Control(func(fd uintptr) { v, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpRTOMaxMS) })
	return v, gerr
}

// TestConnectionsCapRetransmitBackoff: both ends of a mesh connection cap
// TCP's retransmission backoff at MaxRetransmit, so a healed cut is heard
// within it.
func TestConnectionsCapRetransmitBackoff(t *testing.T) {
	ra, rb := newRecorder(), newRecorder()
	a, _ := newMesh(t, "a", ra)
	b, bAddr := newMesh(t, "b", rb)
	if _, err := a.Hello(context.Background(), bAddr); err != nil {
		t.Fatal(err)
	}
	if err := a.Send("b", "", &protocol.Ping{Seq: 1}); err != nil {
		t.Fatal(err)
	}
	<-rb.recv // b has registered its end
	want := int(a.cfg.MaxRetransmit / time.Millisecond)
	for _, end := range []struct {
		m    *Mesh
		peer string
	}{{a, "b"}, {b, "a"}} {
		end.m.mu.Lock()
		c := end.m.conns[end.peer]
		end.m.mu.Unlock()
		if c == nil {
			t.Fatalf("no connection to %s", end.peer)
		}
		got, err := rtoMax(t, c)
		if err != nil {
			t.Skipf("this kernel has no TCP_RTO_MAX_MS (Linux 6.15+): %v", err)
		}
		if got != want {
			t.Errorf("connection to %s: TCP_RTO_MAX_MS %d, want %d", end.peer, got, want)
		}
	}
}
