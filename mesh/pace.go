package mesh

import (
	"time"

	"github.com/sirupsen/logrus"

	"meshell/protocol"
)

// pace is one connection's token bucket for the membership frames it
// delivers to the node's run loop, kept by its reader alone. The run loop
// is shared by every peer and its inbox drops what it cannot take, so a
// peer that sent cheap frames (Pings, PingReqs, PushPulls) as fast as it
// could would crowd out the other members' probes and acks until they were
// suspected. Past the bucket the reader waits for a token (backpressure: the
// flooding peer's own stream slows, nothing is dropped). An honest member
// sends a few tens of membership frames a second on one connection.
type pace struct{ b bucket }

// frameCost is what one membership frame takes of its connection's pace:
// one token, plus one per 16 members or tags it carries, so that a peer
// sending frames of thousands of invented members is held to the same work
// a second as one sending pings (an honest push/pull of 200 members costs 13).
func frameCost(msg protocol.Message) float64 { return 1 + float64(protocol.Carried(msg)/16) }

// wait takes cost tokens at now and returns how long the reader must wait
// before the frame it holds is delivered: zero while the bucket has
// tokens. rate <= 0 turns pacing off.
func (p *pace) wait(now time.Time, cost, rate float64, burst int) time.Duration {
	if rate <= 0 {
		return 0
	}
	if p.b.at.IsZero() {
		p.b = newBucket(now, burst)
	}
	p.b.refill(now, rate, burst)
	p.b.n -= cost
	if p.b.n >= 0 {
		return 0
	}
	// In debt by -n: that many tokens' worth of time.
	return time.Duration(-p.b.n / rate * float64(time.Second))
}

// bucket is a token bucket, kept by one owner: n tokens as of at.
type bucket struct {
	n  float64
	at time.Time
}

func newBucket(now time.Time, burst int) bucket { return bucket{n: float64(burst), at: now} }

// refill adds what rate (tokens a second) earned since at, up to burst.
func (b *bucket) refill(now time.Time, rate float64, burst int) {
	if d := now.Sub(b.at); d > 0 {
		b.n = min(float64(burst), b.n+d.Seconds()*rate)
		b.at = now
	}
}

// paceMembership holds the reader while the peer is over its membership
// rate; false when the connection closed meanwhile.
func (c *conn) paceMembership(msg protocol.Message) bool {
	if msg.Type().Family() != protocol.FamilyMembership {
		return true
	}
	m := c.m
	d := c.pace.wait(time.Now(), frameCost(msg), m.cfg.MembershipRate, m.cfg.MembershipBurst)
	if d <= 0 {
		return true
	}
	m.throttled.Add(1)
	m.warn.Warn("membership-rate", logrus.Fields{"alias": c.peer.Alias, "rate": m.cfg.MembershipRate},
		"mesh: a peer sends membership frames faster than its rate; reading it slower")
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.done:
		return false
	}
}
