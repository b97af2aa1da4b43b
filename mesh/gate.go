package mesh

import (
	"fmt"
	"net"
	"sync"
	"time"
)

// gate bounds what unauthenticated peers can hold: connections still in
// their handshake (in all and per source IP) and established accepted
// connections (in all and per source IP). Past an established bound a new
// connection is refused (refuse-new); for handshakes the policy is
// drop-oldest: a new
// connection evicts the longest-waiting handshake of its IP, or of all, so a
// flood of idle connections cannot lock out a joiner whose Hello arrives at
// once.
type gate struct {
	maxShakes, maxShakesPerIP, maxConns, maxConnsPerIP int

	mu      sync.Mutex
	shakes  []*shake // oldest first
	perIP   map[string]int
	conns   map[string]int // established connections per IP
	total   int            // established connections in all
	evicted uint64

	// Failed TLS handshakes per source IP (keyed mode): each costs this
	// node a key exchange and a signature, and a peer without the key can
	// replay one recorded ClientHello for free. Past failBurst, then
	// failRate a second, that IP's connections are closed on accept.
	failBurst int
	failRate  float64
	fails     map[string]*bucket // how many more failed handshakes each IP may cost
}

// maxFailIPs bounds the failed-handshake buckets kept: past it the full
// ones (IPs that stopped failing) are forgotten, and if every one is still
// in use, all of them (fail open: the bound is on memory, not on peers).
const maxFailIPs = 4096

// shake is one accepted connection in its handshake.
type shake struct {
	nc   net.Conn
	ip   string
	done bool // left the gate: finished, failed or evicted
}

func newGate(maxShakes, maxShakesPerIP, maxConns, maxConnsPerIP int) *gate {
	return &gate{maxShakes: maxShakes, maxShakesPerIP: maxShakesPerIP, maxConns: maxConns, maxConnsPerIP: maxConnsPerIP,
		perIP: map[string]int{}, conns: map[string]int{}, fails: map[string]*bucket{}}
}

// refill brings ip's bucket up to now; nil when ip has no bucket.
func (g *gate) refill(ip string, now time.Time) *bucket {
	b := g.fails[ip]
	if b != nil {
		b.refill(now, g.failRate, g.failBurst)
	}
	return b
}

// keyEnter decides whether a connection from ip may start a TLS
// handshake. An IP that failed lately (its bucket is not full) takes a
// token for it now, given back if the handshake succeeds, so that many
// handshakes started at once cannot all pass on one token; an IP that
// has not failed takes none, so an honest host's join storm is never
// counted. reserved says which, for keyLeave.
func (g *gate) keyEnter(ip string, now time.Time) (ok, reserved bool) {
	if g.failBurst <= 0 {
		return true, false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	b := g.refill(ip, now)
	switch {
	case b == nil || b.n >= float64(g.failBurst):
		return true, false
	case b.n >= 1:
		b.n--
		return true, true
	}
	return false, false
}

// keyLeave records the outcome of a TLS handshake keyEnter let start.
func (g *gate) keyLeave(ip string, now time.Time, reserved, failed bool) {
	if g.failBurst <= 0 || reserved == failed {
		return // a failure already paid for, or a success that took nothing
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	b := g.refill(ip, now)
	if !failed { // succeeded: the token comes back
		if b != nil {
			b.n = min(float64(g.failBurst), b.n+1)
		}
		return
	}
	if b == nil {
		if len(g.fails) >= maxFailIPs {
			for k := range g.fails {
				if g.refill(k, now).n >= float64(g.failBurst) {
					delete(g.fails, k)
				}
			}
			if len(g.fails) >= maxFailIPs {
				clear(g.fails)
			}
		}
		nb := newBucket(now, g.failBurst)
		b = &nb
		g.fails[ip] = b
	}
	b.n = max(0, b.n-1)
}

// remoteIP is the key of a connection's source for the per-IP bounds.
func remoteIP(nc net.Conn) string {
	if ta, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	return nc.RemoteAddr().String()
}

// enter admits nc to the handshake phase, evicting (closing) the oldest
// handshake of its IP or of all when a bound is reached.
func (g *gate) enter(nc net.Conn) *shake {
	s := &shake{nc: nc, ip: remoteIP(nc)}
	var victims []*shake
	g.mu.Lock()
	if g.perIP[s.ip] >= g.maxShakesPerIP {
		for _, o := range g.shakes {
			if o.ip == s.ip {
				victims = append(victims, o)
				g.leaveLocked(o)
				break
			}
		}
	}
	if len(g.shakes) >= g.maxShakes {
		o := g.shakes[0]
		victims = append(victims, o)
		g.leaveLocked(o)
	}
	g.shakes = append(g.shakes, s)
	g.perIP[s.ip]++
	g.evicted += uint64(len(victims))
	g.mu.Unlock()
	for _, v := range victims {
		v.nc.Close()
	}
	return s
}

// leave takes s out of the handshake phase; it may be called more than once.
func (g *gate) leave(s *shake) {
	g.mu.Lock()
	g.leaveLocked(s)
	g.mu.Unlock()
}

func (g *gate) leaveLocked(s *shake) {
	if s.done {
		return
	}
	s.done = true
	for i, o := range g.shakes {
		if o == s {
			g.shakes = append(g.shakes[:i], g.shakes[i+1:]...)
			break
		}
	}
	if g.perIP[s.ip]--; g.perIP[s.ip] <= 0 {
		delete(g.perIP, s.ip)
	}
}

// closeAll closes every connection still in its handshake (a leave or a
// close of the mesh): none is left to run out its handshake timeout.
func (g *gate) closeAll() {
	g.mu.Lock()
	shakes := append([]*shake(nil), g.shakes...)
	g.mu.Unlock()
	for _, s := range shakes {
		s.nc.Close()
	}
}

// connect counts an established connection from ip, or reports why not:
// that IP, or all, hold their maximum already.
func (g *gate) connect(ip string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.total >= g.maxConns:
		return fmt.Errorf("too many connections (at most %d in all); raise --max-members if the cluster is that large", g.maxConns)
	case g.conns[ip] >= g.maxConnsPerIP:
		return fmt.Errorf("too many connections from %s (at most %d); close some or raise the limit", ip, g.maxConnsPerIP)
	}
	g.conns[ip]++
	g.total++
	return nil
}

// disconnect undoes connect.
func (g *gate) disconnect(ip string) {
	g.mu.Lock()
	if g.conns[ip]--; g.conns[ip] <= 0 {
		delete(g.conns, ip)
	}
	g.total--
	g.mu.Unlock()
}

func (g *gate) evictions() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.evicted
}
