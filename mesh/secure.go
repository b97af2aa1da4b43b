package mesh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"meshell/mesh/keyring"
	"meshell/protocol"
)

// rawNetConn is a TCP connection whose reads and writes go through newIO's
// raw socket I/O, for crypto/tls to run over: an encrypted connection keeps
// the idle-CPU saving of an unencrypted one.
type rawNetConn struct {
	net.Conn
	rw io.ReadWriter
}

func (c *rawNetConn) Read(p []byte) (int, error)  { return c.rw.Read(p) }
func (c *rawNetConn) Write(p []byte) (int, error) { return c.rw.Write(p) }

func withRawIO(nc net.Conn) net.Conn {
	if rw := newIO(nc); rw != io.ReadWriter(nc) {
		return &rawNetConn{Conn: nc, rw: rw}
	}
	return nc
}

// prefixed reads p first, then r: the bytes a handshake peeked at.
type prefixed struct {
	p []byte
	r io.Reader
}

func (x *prefixed) Read(b []byte) (int, error) {
	if len(x.p) > 0 {
		n := copy(b, x.p)
		x.p = x.p[n:]
		return n, nil
	}
	return x.r.Read(b)
}

// secureAccept runs the acceptor's side of TLS when the node holds a key. It
// returns the connection to use and the alias the peer's certificate names;
// on refusal it has answered and closed nc, and returns an error.
// The deadlines set at accept bound the handshake: a context's end would
// close the connection, with no last look.
func (m *Mesh) secureAccept(nc net.Conn, look *lookAgain) (net.Conn, string, error) {
	ring := m.cfg.Keyring
	tc, err := ring.Server(context.Background(), look, m.cfg.Self().Alias)
	if err == nil {
		return tc, tc.PeerAlias(), nil
	}
	var pe *keyring.PlaintextError
	if errors.As(err, &pe) {
		m.refusePlain(nc, pe.Peeked, fmt.Sprintf("this cluster is encrypted (key ids %s): pass the cluster's key with --key-file or %s", strings.Join(ring.IDs(), ", "), keyring.EnvVar))
	}
	nc.Close()
	return nil, "", &refusedTLS{msg: keyring.Describe(err), timedOut: errors.Is(err, os.ErrDeadlineExceeded)}
}

// refusedTLS is a failed TLS handshake as a log line names it, and whether
// its deadline ended it.
type refusedTLS struct {
	msg      string
	timedOut bool
}

func (e *refusedTLS) Error() string { return e.msg }

// costsIP says whether a failed handshake counts against its source IP
// (gate.keyLeave): one that timed out does not, since a loaded host's
// honest joiners time out too, and a peer that holds a handshake open is
// bounded by the handshakes in progress per IP.
func costsIP(err error) bool {
	var r *refusedTLS
	return err != nil && !(errors.As(err, &r) && r.timedOut)
}

// refusing is this node as a refusal names it: by alias only. The peer is
// not admitted, so this node's address and tags are none of its business.
func refusing(self protocol.Member) protocol.Member { return protocol.Member{Alias: self.Alias} }

// refusePlain answers a plaintext peer's Hello or Join, whose first bytes
// were already read (peeked), with a refusal, in plaintext.
func (m *Mesh) refusePlain(nc net.Conn, peeked []byte, reason string) {
	c := m.newConn(nil, false)
	c.nc, c.rw = nc, newIO(nc)
	fr := protocol.NewFrameReaderOpts(&prefixed{p: peeked, r: c.rw}, protocol.FrameOptions{Max: protocol.MaxHandshakeFrame})
	defer fr.Release()
	p, err := fr.Next()
	if err != nil {
		return
	}
	msg, err := c.dec.DecodeOnly(p, isIntro)
	if err != nil {
		return
	}
	self := refusing(m.cfg.Self())
	if msg.Type() == protocol.TypeHello {
		c.writeDirect(&protocol.HelloAck{Version: m.cfg.Versions.Max, Cluster: m.cfg.Cluster, Error: reason, From: self, MinVersion: m.cfg.Versions.Min, MaxVersion: m.cfg.Versions.Max})
	} else {
		c.writeDirect(&protocol.JoinAck{Version: m.cfg.Versions.Max, Cluster: m.cfg.Cluster, Error: reason, From: self, MinVersion: m.cfg.Versions.Min, MaxVersion: m.cfg.Versions.Max})
	}
}

// plainAccept peeks at the first bytes of a connection to a node without a
// key: a TLS handshake is a keyed node dialling the wrong cluster, answered
// in plaintext so that its side can say so. It returns the peeked bytes.
func (m *Mesh) plainAccept(nc net.Conn, rw io.Reader) ([]byte, error) {
	peek := make([]byte, 3)
	if _, err := io.ReadFull(rw, peek); err != nil {
		return nil, err
	}
	if keyring.LooksLikeTLS(peek) {
		b, _ := protocol.Frame(&protocol.HelloAck{Version: m.cfg.Versions.Max, Cluster: m.cfg.Cluster, MinVersion: m.cfg.Versions.Min, MaxVersion: m.cfg.Versions.Max,
			Error: "this node has no cluster key: the cluster is not encrypted", From: refusing(m.cfg.Self())})
		nc.Write(b)
		return nil, errors.New("a peer with a cluster key dialled this node, which has none")
	}
	return peek, nil
}

// lookAgain reads an accepted connection's handshake, in plaintext or under
// TLS. A process starved of CPU past the deadline (a join storm on few
// cores) runs the deadline's timer before it sees bytes that came in time,
// so the first read that times out looks once more, for lastLook: the peer
// is not refused for this node's delay, and a silent one is held lastLook
// longer at most. The handshake's end spends the look.
type lookAgain struct {
	net.Conn           // the deadlines, and the writes of a TLS handshake
	r        io.Reader // the reads
	spent    bool
}

func (l *lookAgain) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	if n == 0 && !l.spent && errors.Is(err, os.ErrDeadlineExceeded) {
		l.spent = true
		l.Conn.SetReadDeadline(time.Now().Add(lastLook))
		n, err = l.r.Read(p)
	}
	return n, err
}

// lastLook is how long a handshake's first read that timed out is given
// to find the bytes already there.
const lastLook = 500 * time.Millisecond

// loopback reports whether the connection comes from this machine.
func loopback(nc net.Conn) bool {
	ta, ok := nc.RemoteAddr().(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// protected reports whether this node speaks to loopback only: it has no
// cluster key and was not started --insecure.
func (m *Mesh) protected() bool { return m.cfg.Keyring == nil && !m.cfg.Insecure }

// loopbackAddr reports whether an advertised host:port names this machine:
// a loopback IP, or localhost (from /etc/hosts; the dial checks what it
// resolves to). Another name would be looked up off this machine.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	ip := net.ParseIP(host)
	return err == nil && (ip == nil && host == "localhost" || ip != nil && ip.IsLoopback())
}

// dialLoopbackOnly is a protected node's net.Dialer Control: a dial to a
// resolved address off this machine is refused before any packet leaves,
// so news of a member elsewhere cannot make the node dial out.
func dialLoopbackOnly(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s %w: %s", address, ErrNotLoopback, protectedRefusal)
	}
	return nil
}

// ErrNotLoopback is wrapped by the error of a dial in protected mode to an
// address off this machine (it never leaves), or to a node that advertises
// one: trying again cannot help.
var ErrNotLoopback = errors.New("is not on loopback")

// protectedRefusal is the answer of a node without a key to a remote peer.
const protectedRefusal = "this node has no cluster key and takes peers from loopback only (protected mode): " +
	"give every node the same --key-file (meshell keygen makes a key), or start this node with --insecure"

// secureDial runs the dialler's side of TLS when the node holds a key.
func (m *Mesh) secureDial(ctx context.Context, nc net.Conn, addr string) (net.Conn, error) {
	tc, err := m.cfg.Keyring.Client(ctx, withRawIO(nc), m.cfg.Self().Alias)
	switch {
	case err == nil:
	case ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded):
		// No answer in time, as on a loaded peer: worth another try.
		return nil, fmt.Errorf("handshake with %s: the TLS handshake timed out, the peer did not answer in time: %w", addr, err)
	default:
		return nil, &RefusedError{Addr: addr, Reason: keyring.Describe(err)}
	}
	return tc, nil
}

// CloseKeyed closes the connections whose peer was authenticated by the key
// with id: a key removed from the keyring admits nobody any longer.
func (m *Mesh) CloseKeyed(id string) {
	m.mu.Lock()
	var victims []*conn
	for c := range m.all {
		if tc, ok := c.nc.(*keyring.Conn); ok && tc.PeerKeyID() == id {
			victims = append(victims, c)
		}
	}
	m.mu.Unlock()
	for _, c := range victims {
		c.close(errors.New("mesh: its cluster key was removed"))
	}
}
