//go:build unix

package mesh

import (
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"meshell/protocol"
)

// A seed's HelloAck to a joiner that reads it late (starved of CPU in a
// join storm) is written for as long as a joiner waits for it (HelloWait),
// not the handshake timeout: the answer carries the member list, more than
// the sockets buffer. 3 of 199 joiners once lost their answer this way.
func TestSeedWritesItsAnswerToALateReader(t *testing.T) {
	const timeout = 100 * time.Millisecond
	rb := newRecorder()
	for i := range 4000 {
		rb.members = append(rb.members, protocol.Member{Alias: fmt.Sprintf("member-%04d", i), Addr: "127.0.0.1:1", State: protocol.StateAlive,
			Tags: map[string]string{"role": strings.Repeat("w", 64)}})
	}
	b, _ := newMesh(t, "b", rb, func(c *Config) { c.HandshakeTimeout = timeout })
	addr := acceptVia(t, b, func(raw net.Conn) net.Conn {
		if rc, err := raw.(*net.TCPConn).SyscallConn(); err == nil {
			rc.Control(func(fd uintptr) { // so that the answer does not fit the seed's buffers
				syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, 4096)
			})
		}
		return raw
	})
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return nil
	}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	hello, _ := protocol.Frame(protocol.NewHello(protocol.Supported(), "c", protocol.Member{Alias: "a", Addr: "127.0.0.1:2"}, 1))
	if _, err := nc.Write(hello); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * timeout) // the joiner, starved, reads late: the behaviour under test
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	fr := protocol.NewFrameReader(nc, protocol.MaxFrameSize)
	p, err := fr.Next()
	if err != nil {
		t.Fatalf("the answer to a joiner that read it %v late was cut off: %v", 5*timeout, err)
	}
	msg, err := protocol.NewDecoder().DecodeOnly(p, onlyHelloAck)
	if err != nil {
		t.Fatal(err)
	}
	if ack := msg.(*protocol.HelloAck); ack.Error != "" || len(ack.Members) != len(rb.members) {
		t.Fatalf("answer: error %q, %d members, want %d", ack.Error, len(ack.Members), len(rb.members))
	}
}
