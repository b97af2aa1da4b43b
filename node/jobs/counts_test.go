package jobs

import (
	"context"
	"testing"
	"time"
)

// BenchmarkDispatchCounters is what the job counters add to one dispatch,
// with every core dispatching at once (the cache lines contended).
func BenchmarkDispatchCounters(b *testing.B) {
	c := newJobCounts()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		d := time.Duration(0)
		for pb.Next() {
			c.dispatched.Add(1)
			c.done(ctx, 300*time.Microsecond+d, nil)
			d = (d + 97*time.Microsecond) % (3 * time.Millisecond)
		}
	})
}
