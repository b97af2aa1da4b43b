package swim

import "time"

// awareness is Lifeguard's local health score: 0 is healthy, max is as
// unhealthy as the score goes. Every probe timeout and every suspicion
// timeout are multiplied by score+1, so that a node that is itself slow
// (starved of CPU, dropping its own packets) waits longer before accusing
// others. Running suspicions follow the score as it moves (Core.health).
type awareness struct {
	max   int
	score int
}

// apply adds delta to the score, clamped to 0..max.
func (a *awareness) apply(delta int) {
	a.score += delta
	if a.score < 0 {
		a.score = 0
	}
	if a.score > a.max {
		a.score = a.max
	}
}

// scale stretches d by the current health: d × (score+1).
func (a *awareness) scale(d time.Duration) time.Duration {
	return d * time.Duration(a.score+1)
}

// factor is the multiplier of the current score: score+1.
func (a *awareness) factor() int { return a.score + 1 }

// health moves the local health score by delta. Running suspicions are
// re-timed at the new score: one that began while this node was unhealthy
// does not keep its stretched timeout after the node recovered (across a
// partition the score rises for a few seconds, and a suspicion begun then
// would otherwise wait up to (AwarenessMax+1)× its timeout).
func (c *Core) health(delta int) {
	old := c.aware.score
	c.aware.apply(delta)
	if c.aware.score == old {
		return
	}
	c.deadlineOK = false
	for a, s := range c.suspicions {
		if was := s.deadline; s.retime(c.aware.factor()) && s.deadline.Before(was) {
			c.arm(timerSuspicion, a, s.deadline) // later needs no entry: see timer
		}
	}
}
