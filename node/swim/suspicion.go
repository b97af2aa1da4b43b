package swim

import (
	"math"
	"slices"
	"time"
)

// suspicion is the timer that turns a suspect member into a failed one,
// with Lifeguard's dogpile rule: the timeout starts at max and shrinks
// towards min as independent confirmations (other members whose own probe
// of the suspect failed) arrive:
//
//	timeout = max(min, max − (max−min)·log(C+1)/log(K+1))
//
// where C counts confirmations beyond the first accuser and K is how many
// are expected. With no confirmation to expect (K < 1) the timeout is min.
type suspicion struct {
	inc      uint64 // the incarnation suspected; a refutation is above it
	start    time.Time
	min, max time.Duration // at full health
	health   int           // the local health multiplier in force (awareness score+1)
	floor    time.Time     // a late call's grace: not due before then (Core.grace)
	k        int           // expected confirmations
	n        int           // confirmations so far, not counting the first accuser
	accusers []string      // the first accuser and every confirmer: at most k+1
	period   time.Duration // timeout's value for the confirmations so far
	deadline time.Time
	hearsay  bool // started by news of a failure, not of a suspicion: only the timer fails it
	heard    bool // the member spoke to us directly since: others' word of its failure does not count
	extended bool // the timer ran out once while the member was heard, and was started again
}

func newSuspicion(now time.Time, inc uint64, accuser string, k int, lo, hi time.Duration, health int) *suspicion {
	s := &suspicion{inc: inc, start: now, min: lo, max: max(lo, hi), health: health, k: k, accusers: []string{accuser}}
	s.period = s.timeout()
	s.deadline = s.due()
	return s
}

// due is when the suspicion runs out: its timeout stretched by the local
// health now, not as it was when the suspicion began, and not before floor.
func (s *suspicion) due() time.Time {
	d := s.start.Add(s.period * time.Duration(s.health))
	if d.Before(s.floor) {
		return s.floor
	}
	return d
}

// retime applies a new local health multiplier and reports whether the
// deadline moved.
func (s *suspicion) retime(health int) bool {
	s.health = health
	d := s.due()
	if d.Equal(s.deadline) {
		return false
	}
	s.deadline = d
	return true
}

// timeout is the suspicion period given the confirmations so far.
func (s *suspicion) timeout() time.Duration {
	if s.k < 1 {
		return s.min
	}
	frac := math.Log(float64(s.n)+1) / math.Log(float64(s.k)+1)
	t := s.max - time.Duration(frac*float64(s.max-s.min))
	if t < s.min {
		t = s.min
	}
	return t
}

// confirm records that accuser independently suspects the member. It
// reports whether this was news that still shortens the timer: a repeated
// accuser, or one beyond the K expected, changes nothing and need not be
// passed on.
func (s *suspicion) confirm(accuser string) bool {
	if s.n >= s.k {
		return false
	}
	if slices.Contains(s.accusers, accuser) {
		return false
	}
	s.accusers = append(s.accusers, accuser)
	s.n++
	s.period = s.timeout()
	s.deadline = s.due()
	return true
}
