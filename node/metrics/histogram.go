package metrics

import (
	"sync/atomic"
	"time"
)

// Histogram counts durations into fixed buckets. Observe is safe for
// concurrent use and neither locks nor allocates.
type Histogram struct {
	bounds []time.Duration // upper bounds, ascending
	counts []atomic.Uint64 // one per bound, then +Inf
	sum    atomic.Uint64   // nanoseconds
}

// NewHistogram returns a histogram with these upper bounds, ascending.
func NewHistogram(bounds ...time.Duration) *Histogram {
	for i := 1; i < len(bounds); i++ {
		if bounds[i] <= bounds[i-1] {
			panic("metrics: histogram bounds must ascend")
		}
	}
	return &Histogram{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
}

// RTTBuckets suit round trips on a LAN or loopback: 50 µs to 1 s.
func RTTBuckets() []time.Duration {
	return []time.Duration{50 * time.Microsecond, 100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
		time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond,
		50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond, time.Second}
}

// JobBuckets suit job latencies: 100 µs to 1 min.
func JobBuckets() []time.Duration {
	return []time.Duration{100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond, time.Millisecond,
		2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
		100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2500 * time.Millisecond,
		5 * time.Second, 10 * time.Second, time.Minute}
}

// Observe counts d (a negative d counts as 0).
func (h *Histogram) Observe(d time.Duration) {
	d = max(d, 0)
	i := 0
	for i < len(h.bounds) && d > h.bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(uint64(d))
}

// HistogramSnapshot is a histogram's state at one moment.
type HistogramSnapshot struct {
	Bounds []time.Duration // upper bounds, ascending
	Counts []uint64        // per bucket, not cumulative; the last is above every bound
	Sum    time.Duration
}

// Count is the number of observations.
func (s HistogramSnapshot) Count() uint64 {
	var n uint64
	for _, c := range s.Counts {
		n += c
	}
	return n
}

// Snapshot reads the histogram. Observations made meanwhile may be in the
// counts and not yet in the sum.
func (h *Histogram) Snapshot() HistogramSnapshot {
	s := HistogramSnapshot{Bounds: h.bounds, Counts: make([]uint64, len(h.counts))}
	for i := range h.counts {
		s.Counts[i] = h.counts[i].Load()
	}
	s.Sum = time.Duration(h.sum.Load())
	return s
}
