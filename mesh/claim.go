package mesh

import (
	"fmt"
	"time"

	"meshell/protocol"
)

// claim holds an alias for the accepted handshakes from one address between
// the decision to admit them and their registration, so that two processes
// claiming one alias at the same instant cannot both be admitted: the second
// sees the first's claim (or, once registered, its connection) under m.mu.
type claim struct {
	alias, addr string
	n           int           // handshakes holding it
	done        chan struct{} // closed when the last one lets go
}

// hold reserves peer's alias for the accepted handshake c. A connection or a
// claim holding the alias from another address is given up to cfg.Takeover
// to go (a node restarted on another port: its old connection closing);
// when it does not, the answer is that the alias is in use. Handshakes from
// the same address share the claim: crossed dials, or two dials of one node,
// are ordered by register's rule.
func (m *Mesh) hold(c *conn, peer protocol.Member) error {
	timer := time.NewTimer(m.cfg.Takeover)
	defer timer.Stop()
	for {
		m.mu.Lock()
		stop := m.dialCtx.Done() // CloseAll: the node is leaving
		holder, gone := "", (<-chan struct{})(nil)
		if old := m.live(peer.Alias); old != nil && old.peer.Addr != peer.Addr {
			holder, gone = old.peer.Addr, old.done
		} else if cl := m.claims[peer.Alias]; cl != nil && cl.addr != peer.Addr {
			holder, gone = cl.addr, cl.done
		} else {
			if cl == nil {
				cl = &claim{alias: peer.Alias, addr: peer.Addr, done: make(chan struct{})}
				m.claims[peer.Alias] = cl
			}
			cl.n++
			c.claim = cl
		}
		m.mu.Unlock()
		if gone == nil {
			return nil
		}
		select {
		case <-gone:
		case <-stop:
			return ErrUnavailable
		case <-timer.C:
			return fmt.Errorf("alias %q is already used by %s; pick another --alias", peer.Alias, holder)
		}
	}
}

// release lets go of c's claim, if it still has one.
func (m *Mesh) release(c *conn) {
	m.mu.Lock()
	m.releaseLocked(c)
	m.mu.Unlock()
}

// releaseLocked is release with m.mu held; register calls it, so the claim
// ends in the same step as the connection takes the alias.
func (m *Mesh) releaseLocked(c *conn) {
	cl := c.claim
	if cl == nil {
		return
	}
	c.claim = nil
	if cl.n--; cl.n == 0 {
		delete(m.claims, cl.alias)
		close(cl.done)
	}
}
