package swim

import (
	"time"

	"meshell/protocol"
)

// bucket is a token bucket: how many new members one sender may still
// introduce.
type bucket struct {
	tokens float64
	at     time.Time // when tokens was last brought up to date
}

// refill adds what rate (tokens per second) earned since the last refill,
// up to burst.
func (b *bucket) refill(now time.Time, burst, rate int) {
	if d := now.Sub(b.at); d > 0 {
		b.tokens = min(float64(burst), b.tokens+d.Seconds()*float64(rate))
	}
	b.at = now
}

// admit decides whether a new member, learned from the member from ("" for
// a handshake), may enter the table. MaxMembers bounds the table; when it
// is full, the failed or left member due to be reaped soonest makes room
// (its news is days old, or the member never answered), and with none to
// reap the newcomer is refused. A token bucket per sender (NewMemberBurst,
// refilled at NewMemberRate a second) bounds how fast one sender can add
// to it, so that a flood of invented members neither fills the table nor
// makes this node dial them all. Handshake lists are not rate limited: a
// seed's HelloAck legitimately carries the whole table.
func (c *Core) admit(now time.Time, from string) bool {
	full := c.table.Len() >= c.cfg.MaxMembers
	victim, ok := "", true
	if full {
		victim, ok = c.soonestReaped()
	}
	if !ok {
		c.stats.OverCap++
		return false
	}
	if from != "" {
		b := c.buckets[from]
		if b == nil {
			if len(c.buckets) >= c.cfg.MaxMembers {
				c.pruneBuckets(now)
			}
			b = &bucket{tokens: float64(c.cfg.NewMemberBurst), at: now}
			c.buckets[from] = b
		}
		b.refill(now, c.cfg.NewMemberBurst, c.cfg.NewMemberRate)
		if b.tokens < 1 {
			c.stats.RateLimited++
			return false
		}
		b.tokens--
	}
	if full {
		if c.reap(now, victim); c.table.Len() >= c.cfg.MaxMembers {
			c.stats.OverCap++
			return false
		}
		c.stats.MadeRoom++
	}
	return true
}

// soonestReaped is the failed or left member whose reap is due first.
// It scans the reap deadlines: only a full table asks.
func (c *Core) soonestReaped() (string, bool) {
	var alias string
	var at time.Time
	for a, t := range c.reapAt {
		if alias == "" || t.Before(at) || (t.Equal(at) && a < alias) {
			alias, at = a, t
		}
	}
	return alias, alias != ""
}

// pruneBuckets forgets the buckets that are full again: a full bucket and
// no bucket admit the same. The order of deletion does not matter.
func (c *Core) pruneBuckets(now time.Time) {
	for a, b := range c.buckets {
		b.refill(now, c.cfg.NewMemberBurst, c.cfg.NewMemberRate)
		if b.tokens >= float64(c.cfg.NewMemberBurst) {
			delete(c.buckets, a)
		}
	}
}

// contact records that this node is in direct contact with alias: a
// handshake completed or a message came on its connection. A member heard
// of only through others that was failed or left on that hearsay now keeps
// the full re-contact period.
func (c *Core) contact(alias string) {
	if _, ok := c.unverified[alias]; !ok {
		return
	}
	delete(c.unverified, alias)
	if _, ok := c.reapAt[alias]; ok {
		e, _ := c.table.Get(alias)
		c.reapAt[alias] = c.reapTime(e.Since, alias, e.State)
		c.arm(timerReap, alias, c.reapAt[alias])
	}
}

// reapTime is when a member that became failed or left (st) at now is
// removed: ReconnectTimeout or LeftReap later, or, for a member this node
// was never in contact with, UnverifiedReap after it was learned (now, if
// that has passed) when that is sooner.
func (c *Core) reapTime(now time.Time, alias string, st protocol.State) time.Time {
	t := now.Add(c.cfg.ReconnectTimeout)
	if st == protocol.StateLeft {
		t = now.Add(c.cfg.LeftReap)
	}
	if learned, ok := c.unverified[alias]; ok {
		u := learned.Add(c.cfg.UnverifiedReap)
		if u.Before(now) {
			u = now
		}
		if u.Before(t) {
			t = u
		}
	}
	return t
}
