package jobs

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"meshell/protocol"
)

// Strategy chooses one worker among the candidates that match a job.
type Strategy uint8

const (
	LeastConnections Strategy = iota // lowest in-flight ÷ slots from this dispatcher (default)
	RoundRobin                       // each candidate in turn
	Random                           // uniformly at random
)

func (s Strategy) String() string {
	switch s {
	case LeastConnections:
		return "least-connections"
	case RoundRobin:
		return "round-robin"
	case Random:
		return "random"
	}
	return "strategy(" + strconv.Itoa(int(s)) + ")"
}

// Strategies lists the strategy names, for help and completion.
func Strategies() []string { return []string{"least-connections", "round-robin", "random"} }

// ParseStrategy reads a strategy name ("" is the default, least-connections).
func ParseStrategy(s string) (Strategy, error) {
	switch s {
	case "", "least-connections", "least-conn", "lc":
		return LeastConnections, nil
	case "round-robin", "rr":
		return RoundRobin, nil
	case "random", "rand":
		return Random, nil
	}
	return 0, fmt.Errorf("unknown strategy %q: use %s", s, strings.Join(Strategies(), ", "))
}

// DefaultFilter is the tag filter used when a job names none.
func DefaultFilter() map[string]string { return map[string]string{"role": "worker"} }

// matchTags reports whether tags carry every key=value of filter.
func matchTags(tags, filter map[string]string) bool {
	for k, v := range filter {
		if got, ok := tags[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// FilterString renders a filter as sorted k=v pairs joined by commas; it is
// also the key under which a dispatcher caches the candidates of a filter.
func FilterString(filter map[string]string) string {
	if len(filter) == 1 {
		for k, v := range filter {
			return k + "=" + v
		}
	}
	keys := make([]string, 0, len(filter))
	for k := range filter {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k + "=" + filter[k])
	}
	return b.String()
}

// SlotsTag is the tag under which a worker advertises its slot count.
const SlotsTag = "slots"

// maxAdvertisedSlots caps what a member's slots tag may claim, so that the
// load ratio's cross-multiplication in pick cannot overflow.
const maxAdvertisedSlots = 1 << 16

// Slots reads the slot count a member advertises (0 when it advertises none
// or nonsense), at most maxAdvertisedSlots.
func Slots(tags map[string]string) int {
	n, _ := strconv.Atoi(tags[SlotsTag])
	return min(max(n, 0), maxAdvertisedSlots)
}

// Load counts one worker's jobs as seen by one dispatcher. Its methods are
// safe for concurrent use (atomics only). Every Start must be paired with
// exactly one Finish: the dispatcher's code guarantees that by finishing an
// attempt only on the path that removed it from its pending table.
type Load struct {
	inflight atomic.Int64
	done     atomic.Uint64 // attempts that ended with an answer (ok or job error)
	lost     atomic.Uint64 // attempts that ended without one: lost, busy, timed out, cancelled
	down     atomic.Bool   // the connection dropped: prefer other workers until a send succeeds
}

// outcomeKind is how one attempt on a worker ended.
type outcomeKind uint8

const (
	Answered  outcomeKind = iota // the worker answered: ok or a job error
	Refused                      // busy or rejected, or the request could not be queued
	Lost                         // the worker failed, left or dropped its connection
	Abandoned                    // timed out or cancelled by the caller
)

// Start records one more attempt in flight.
func (l *Load) Start() { l.inflight.Add(1) }

// finish records the end of an attempt begun with Start.
func (l *Load) finish(o outcomeKind) {
	l.inflight.Add(-1)
	if o == Answered {
		l.done.Add(1)
	} else {
		l.lost.Add(1)
	}
}

// InFlight is the number of attempts started and not finished.
func (l *Load) InFlight() int { return int(l.inflight.Load()) }

// Done is the number of attempts this worker answered.
func (l *Load) Done() uint64 { return l.done.Load() }

// Unanswered is the number of attempts that ended without an answer.
func (l *Load) Unanswered() uint64 { return l.lost.Load() }

// setDown marks (or clears) a worker whose connection dropped; pickers
// prefer workers that are not down.
func (l *Load) setDown(d bool) {
	if l.down.Load() != d {
		l.down.Store(d)
	}
}

// isDown reports SetDown's mark.
func (l *Load) isDown() bool { return l.down.Load() }

// candidate is one worker eligible for a job.
type candidate struct {
	Alias string
	Addr  string
	Self  bool
	Tags  map[string]string
	Slots int
	Load  *Load
	// Suspect: picked only when no alive worker is left (pick).
	Suspect bool
}

// registry is a dispatcher's view of the workers: one Load per alias (kept
// across membership changes, so counts survive a snapshot rebuild) and the
// cursors of the strategies. It is safe for concurrent use.
type registry struct {
	mu    sync.Mutex
	loads map[string]*Load
	rr    atomic.Uint64 // round-robin cursor
	tie   atomic.Uint64 // rotates ties of least-connections
}

// newRegistry returns an empty registry.
func newRegistry() *registry { return &registry{loads: map[string]*Load{}} }

// Load returns alias's counters, creating them on first use.
func (r *registry) Load(alias string) *Load {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.loads[alias]
	if l == nil {
		l = &Load{}
		r.loads[alias] = l
	}
	return l
}

// peek returns alias's counters if it has any.
func (r *registry) peek(alias string) (*Load, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	l, ok := r.loads[alias]
	return l, ok
}

// Candidates returns the members eligible for a job under filter: alive or
// suspect (failed and left ones are dropped) and tagged with every
// key=value of filter. self is the dispatcher's own alias.
func (r *registry) Candidates(members []protocol.Member, self string, filter map[string]string) []candidate {
	var out []candidate
	for _, m := range members {
		if (m.State != protocol.StateAlive && m.State != protocol.StateSuspect) || !matchTags(m.Tags, filter) {
			continue
		}
		out = append(out, candidate{Alias: m.Alias, Addr: m.Addr, Self: m.Alias == self, Tags: m.Tags,
			Slots: Slots(m.Tags), Load: r.Load(m.Alias), Suspect: m.State == protocol.StateSuspect})
	}
	return out
}

// pick returns the index in cands of the worker strategy s chooses, skipping
// the aliases in skip; -1 when every candidate is skipped. rnd is a random
// number supplied by the caller (Random uses it; the registry has no source
// of its own). A suspect worker is chosen only when no alive one is left,
// and one marked down only when no other is: a suspicion that anyone may
// raise (and a refutation ends) does not stop the jobs when it is all
// there is, and a worker that is really gone loses the attempt, which is
// retried.
func (r *registry) pick(cands []candidate, s Strategy, skip []string, rnd uint64) int {
	for tier := range 3 {
		if i := r.pickFrom(cands, s, skip, rnd, tier); i >= 0 {
			return i
		}
	}
	return -1
}

// tier orders the candidates for pick: alive, suspect, down.
func (c *candidate) tier() int {
	switch {
	case c.Load.isDown():
		return 2
	case c.Suspect:
		return 1
	}
	return 0
}

func (r *registry) pickFrom(cands []candidate, s Strategy, skip []string, rnd uint64, tier int) int {
	n := len(cands)
	if n == 0 {
		return -1
	}
	ok := func(i int) bool {
		c := &cands[i]
		if c.tier() != tier {
			return false
		}
		for _, a := range skip {
			if a == c.Alias {
				return false
			}
		}
		return true
	}
	switch s {
	case RoundRobin:
		start := int(r.rr.Add(1)-1) % n
		for k := 0; k < n; k++ {
			if i := (start + k) % n; ok(i) {
				return i
			}
		}
	case Random:
		start := int(rnd % uint64(n))
		for k := 0; k < n; k++ {
			if i := (start + k) % n; ok(i) {
				return i
			}
		}
	default: // LeastConnections
		start := 0
		if n > 1 {
			start = int(r.tie.Add(1) % uint64(n))
		}
		// Lowest load ratio in-flight ÷ slots, compared by cross-multiplying
		// (a worker advertising no slots counts as one).
		best, bestLoad, bestSlots := -1, int64(0), int64(1)
		for k := 0; k < n; k++ {
			i := (start + k) % n
			if !ok(i) {
				continue
			}
			l, sl := cands[i].Load.inflight.Load(), int64(max(cands[i].Slots, 1))
			if best < 0 || l*bestSlots < bestLoad*sl {
				best, bestLoad, bestSlots = i, l, sl
			}
		}
		return best
	}
	return -1
}
