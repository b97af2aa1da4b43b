package mesh

import (
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// logPeriod is how often one kind of outsider-triggered warning may reach
// the log; the occurrences in between are counted into the next line.
const logPeriod = 10 * time.Second

// RateLog writes at most one line per kind per logPeriod, so that a peer
// repeating a refused handshake or request costs a counter, not a log line
// per attempt. The node's control and job planes use it too.
type RateLog struct {
	log   logrus.FieldLogger
	now   func() time.Time
	mu    sync.Mutex
	kinds map[string]*rateKind
}

type rateKind struct {
	last       time.Time
	suppressed int
}

// NewRateLog returns a RateLog writing to log, with now as its clock.
func NewRateLog(log logrus.FieldLogger, now func() time.Time) *RateLog {
	return &RateLog{log: log, now: now, kinds: map[string]*rateKind{}}
}

// Warn logs msg under kind unless a line of that kind went out less than
// logPeriod ago; the next line that goes out says how many were held back.
// kind must come from a fixed set (never from the network), so the map stays
// small.
func (r *RateLog) Warn(kind string, fields logrus.Fields, msg string) {
	if e := r.entry(kind, fields); e != nil {
		e.Warn(msg)
	}
}

// Info is Warn at level info, for what a peer can cause that is not worth
// a warning.
func (r *RateLog) Info(kind string, fields logrus.Fields, msg string) {
	if e := r.entry(kind, fields); e != nil {
		e.Info(msg)
	}
}

// entry is the line of kind to write now, or nil while its period runs.
func (r *RateLog) entry(kind string, fields logrus.Fields) *logrus.Entry {
	now := r.now()
	r.mu.Lock()
	k := r.kinds[kind]
	if k == nil {
		k = &rateKind{}
		r.kinds[kind] = k
	}
	if !k.last.IsZero() && now.Sub(k.last) < logPeriod {
		k.suppressed++
		r.mu.Unlock()
		return nil
	}
	held := k.suppressed
	k.last, k.suppressed = now, 0
	r.mu.Unlock()
	e := r.log.WithFields(fields)
	if held > 0 {
		e = e.WithField("suppressed", held)
	}
	return e
}
