package swim

import "time"

// awareness is Lifeguard's local health score: 0 is healthy, max is as
// unhealthy as the score goes. Every probe timeout and the suspicion minimum
// are multiplied by score+1, so that a node that is itself slow (starved of
// CPU, dropping its own packets) waits longer before accusing others.
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
