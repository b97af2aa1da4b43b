package jobs

import (
	"context"
	"sync/atomic"
	"time"

	"meshell/node/metrics"
)

// jobCounts are the dispatcher's job counters: atomics, so the hot path
// takes no lock and allocates nothing.
type jobCounts struct {
	dispatched atomic.Uint64
	ok, failed atomic.Uint64
	cancelled  atomic.Uint64
	latency    *metrics.Histogram
}

func newJobCounts() *jobCounts {
	return &jobCounts{latency: metrics.NewHistogram(metrics.JobBuckets()...)}
}

// done counts a finished dispatch: ok, cancelled by its caller, or failed.
func (c *jobCounts) done(ctx context.Context, d time.Duration, err error) {
	switch {
	case err == nil:
		c.ok.Add(1)
	case ctx.Err() != nil:
		c.cancelled.Add(1)
	default:
		c.failed.Add(1)
	}
	c.latency.Observe(d)
}

// Counts are the jobs this node dispatched, for /metrics.
type Counts struct {
	Dispatched, OK, Failed, Cancelled uint64
	Latency                           metrics.HistogramSnapshot
}

// Counts reads the dispatcher's counters.
func (j *Jobs) Counts() Counts {
	c := j.counts
	return Counts{Dispatched: c.dispatched.Load(), OK: c.ok.Load(), Failed: c.failed.Load(), Cancelled: c.cancelled.Load(),
		Latency: c.latency.Snapshot()}
}
