package jobs

import "meshell/protocol"

// Bounds of a stream's reorder buffer (see reorder).
const (
	maxEarlyChunks = 256     // chunks held while an earlier one is missing
	maxEarlyBytes  = 4 << 20 // their data, in bytes
)

// reorder hands one job's streamed chunks to its caller in Seq order, each
// once across attempts (a re-dispatched job starts again at Seq 1; what was
// delivered is not repeated). Frames moved between connections can arrive
// out of order, so a chunk ahead of the next due waits in a bounded buffer.
// Overflow policy, skip-gap: when a chunk would not fit in the buffer, the
// missing chunks are given up (counted in skipped) and delivery resumes at
// the earliest held, so the buffer never holds more than its bounds.
// It is used by the dispatching goroutine only.
type reorder struct {
	next    uint32 // the Seq due next; everything before it was delivered or skipped
	early   map[uint32]protocol.JobChunk
	bytes   int
	skipped int
}

func newReorder() *reorder { return &reorder{next: 1} }

// add takes chunk c and delivers every chunk now in order.
func (r *reorder) add(c protocol.JobChunk, deliver func(protocol.JobChunk)) {
	switch {
	case c.Seq < r.next:
		return // delivered already (an earlier attempt), or a duplicate
	case c.Seq > r.next:
		if _, dup := r.early[c.Seq]; dup {
			return
		}
		// Make room before holding c: skip to the earliest of c and the
		// held chunks, and deliver what is then in order.
		for c.Seq > r.next && (len(r.early) >= maxEarlyChunks || r.bytes+len(c.Data) > maxEarlyBytes) {
			r.skipTo(c.Seq)
			r.drain(deliver)
		}
		if c.Seq > r.next {
			if r.early == nil {
				r.early = map[uint32]protocol.JobChunk{}
			}
			r.early[c.Seq] = c
			r.bytes += len(c.Data)
			return
		}
		fallthrough // c is due now: the chunks before it were delivered or skipped
	default:
		deliver(c)
		r.next++
	}
	r.drain(deliver)
}

// end delivers what is held, in order, skipping the gaps: the attempt
// answered, so a missing chunk will not come.
func (r *reorder) end(deliver func(protocol.JobChunk)) {
	for len(r.early) > 0 {
		r.skipTo(0)
		r.drain(deliver)
	}
}

// lost forgets what is held: the next attempt sends those chunks again.
func (r *reorder) lost() {
	clear(r.early)
	r.bytes = 0
}

// skipTo moves next to the earliest chunk held, or to seq when that is
// earlier (and not 0).
func (r *reorder) skipTo(seq uint32) {
	low := seq
	for s := range r.early {
		if low == 0 || s < low {
			low = s
		}
	}
	if low > r.next {
		r.skipped += int(low - r.next)
		r.next = low
	}
}

func (r *reorder) drain(deliver func(protocol.JobChunk)) {
	for {
		c, ok := r.early[r.next]
		if !ok {
			return
		}
		delete(r.early, r.next)
		r.bytes -= len(c.Data)
		deliver(c)
		r.next++
	}
}
