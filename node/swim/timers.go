package swim

import "time"

// timerKind names a per-member timer.
type timerKind uint8

const (
	timerSuspicion timerKind = iota + 1 // a suspect member's suspicion runs out
	timerRedial                         // a failed member is re-contacted
	timerReap                           // a failed or left member is removed
)

func (k timerKind) String() string {
	switch k {
	case timerSuspicion:
		return "suspicion"
	case timerRedial:
		return "redial"
	case timerReap:
		return "reap"
	}
	return "timer"
}

// timer is one entry of the per-member timer heap. Entries are never
// removed when a timer is cancelled or moved: the authoritative time lives
// in the Core's maps, and an entry whose time no longer matches is stale and
// skipped when it reaches the top. This keeps arming O(log n) and
// NextDeadline O(1) with hundreds of members. A suspicion that moves later
// is not armed again: its earlier entry stands for it, and is moved to the
// suspicion's time when it reaches the top (nextTimer).
type timer struct {
	at    time.Time
	kind  timerKind
	alias string
	r     *redial // timerRedial: the schedule armed, checked without a lookup
}

// timerHeap orders timers by time, then kind, then alias, so that timers
// due at the same instant fire in the same order on every run.
type timerHeap []timer

// before orders t against u: by time, then kind, then alias.
func (t timer) before(u *timer) bool {
	if c := t.at.Compare(u.at); c != 0 {
		return c < 0
	}
	if t.kind != u.kind {
		return t.kind < u.kind
	}
	return t.alias < u.alias
}

// push adds t.
func (h *timerHeap) push(t timer) { heapPush(h, t) }

// pop removes the earliest timer.
func (h *timerHeap) pop() { heapPop(h) }

// arm schedules a suspicion or reap timer. The matching map entry must
// already hold at.
func (c *Core) arm(kind timerKind, alias string, at time.Time) {
	c.schedule(timer{at: at, kind: kind, alias: alias})
}

// armRedial schedules the re-dial of alias at r.next.
func (c *Core) armRedial(alias string, r *redial) {
	c.schedule(timer{at: r.next, kind: timerRedial, alias: alias, r: r})
}

// schedule pushes t, and drops the stale entries once they dominate.
func (c *Core) schedule(t timer) {
	c.timers.push(t)
	if len(c.timers) > 4*(len(c.suspicions)+len(c.redials)+len(c.reapAt))+64 {
		c.compactTimers()
	}
}

// compactTimers drops the stale entries: each change of the health score
// re-arms every running suspicion, and the entries it leaves would
// otherwise wait for their old time to reach the top.
func (c *Core) compactTimers() {
	kept := c.timers[:0]
	for _, t := range c.timers {
		if t.kind != timerSuspicion && c.armed(t) {
			kept = append(kept, t)
		}
	}
	// Each running suspicion has an entry at or before its time, so this
	// adds no more entries than were dropped.
	for a, s := range c.suspicions {
		kept = append(kept, timer{at: s.deadline, kind: timerSuspicion, alias: a})
	}
	clear(c.timers[len(kept):])
	c.timers = kept
	heapInit(c.timers)
}

// live reports whether t is still armed: its map entry exists and holds
// the same time.
func (c *Core) armed(t timer) bool {
	switch t.kind {
	case timerSuspicion:
		s, ok := c.suspicions[t.alias]
		return ok && s.deadline.Equal(t.at)
	case timerRedial:
		return t.r != nil && !t.r.done && t.r.next.Equal(t.at)
	case timerReap:
		at, ok := c.reapAt[t.alias]
		return ok && at.Equal(t.at)
	}
	return false
}

// nextTimer returns the earliest armed per-member timer, dropping stale
// entries on the way.
func (c *Core) nextTimer() (timer, bool) {
	for len(c.timers) > 0 {
		t := c.timers[0]
		if c.armed(t) {
			return t, true
		}
		c.timers.pop()
		if t.kind != timerSuspicion {
			continue
		}
		if s := c.suspicions[t.alias]; s != nil && t.at.Before(s.deadline) {
			c.timers.push(timer{at: s.deadline, kind: timerSuspicion, alias: t.alias})
		}
	}
	return timer{}, false
}

// fireTimers runs every per-member timer due at now, earliest first.
func (c *Core) fireTimers(now time.Time) {
	for {
		t, ok := c.nextTimer()
		if !ok || t.at.After(now) {
			return
		}
		c.timers.pop()
		switch t.kind {
		case timerSuspicion:
			c.suspicionExpired(now, t.alias, c.suspicions[t.alias])
		case timerRedial:
			c.redialPaced(now, t.alias, t.r)
		case timerReap:
			c.reap(now, t.alias)
		}
	}
}
