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
type pace struct {
	tokens float64
	at     time.Time
}

// wait takes one token at now and returns how long the reader must wait
// before the frame it holds is delivered: zero while the bucket has
// tokens. rate <= 0 turns pacing off.
func (p *pace) wait(now time.Time, rate float64, burst int) time.Duration {
	if rate <= 0 {
		return 0
	}
	if p.at.IsZero() {
		p.tokens, p.at = float64(burst), now
	}
	if d := now.Sub(p.at); d > 0 {
		p.tokens = min(float64(burst), p.tokens+d.Seconds()*rate)
		p.at = now
	}
	p.tokens--
	if p.tokens >= 0 {
		return 0
	}
	// In debt by -tokens: that many tokens' worth of time.
	return time.Duration(-p.tokens / rate * float64(time.Second))
}

// paceMembership holds the reader while the peer is over its membership
// rate; false when the connection closed meanwhile.
func (c *conn) paceMembership(msg protocol.Message) bool {
	if msg.Type().Family() != protocol.FamilyMembership {
		return true
	}
	m := c.m
	d := c.pace.wait(time.Now(), m.cfg.MembershipRate, m.cfg.MembershipBurst)
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
