package jobs

import (
	"errors"
	"fmt"
	"sync"

	"meshell/protocol"
)

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
// Its stream's mutex guards it.
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

// Bounds of what a dispatcher keeps of one job's streamed chunks, whatever
// its worker sends.
const (
	// maxStreamOutput is how much of a command's stdout, and of its
	// stderr, one attempt may stream: what an honest worker keeps
	// (protocol.MaxRunOutput and the truncation marker).
	maxStreamOutput = protocol.MaxJobOutput
	// maxStreamHeld bounds the chunks received and not yet taken by the
	// caller, in bytes, counting chunkCost for each chunk besides its data:
	// 8 MiB of output, or some 100,000 small chunks.
	maxStreamHeld = 8 << 20
	chunkCost     = 64
)

// ErrOverrun is wrapped by the error of a job whose worker streamed more
// than this dispatcher keeps (maxStreamOutput, protocol.MaxJobChunks and
// protocol.MaxJobStream, or maxStreamHeld): the job
// was ended here, cancelled on its worker, and the rest of its chunks
// dropped.
var ErrOverrun = errors.New("stream overrun")

// ErrStreamLimit is emit's error for a chunk past what one job may stream;
// a dispatcher ends a job whose worker sends it anyway (ErrOverrun).
var ErrStreamLimit = fmt.Errorf("a job streams at most %d chunks and %d bytes", protocol.MaxJobChunks, protocol.MaxJobStream)

// stream collects one job's chunks, pushed by its worker connection's
// reader goroutine, for the caller's goroutine, without ever blocking the
// reader. Chunks are put in order as they arrive and held until the caller
// takes them; consecutive pieces of a command's output on one stream are
// held as one chunk, so that an honest command stays far below the bounds.
// Overflow policy, end-job: a chunk past maxStreamOutput, a kind's chunk
// past protocol.MaxJobChunks or MaxJobStream, or one past maxStreamHeld ends
// the job with one error (ErrOverrun); it and every later chunk are
// dropped.
type stream struct {
	output bool // the caller takes a command's output (OnOutput)
	jobs   bool // the caller takes a kind's chunks (OnChunk)
	notify chan struct{}

	mu    sync.Mutex
	order *reorder    // owns next: what was held is never held again
	held  []heldChunk // in order, not yet taken
	tail  []byte      // held's last chunk's data, while output is merged into it
	bytes int         // held, chunkCost included
	sent  [3]int      // bytes streamed, by Stream, since the count last started afresh (begin)
	count int         // a kind's chunks (StreamJob) streamed since then
	this  bool        // the current attempt streamed a chunk
	ended string      // not empty: why the job was ended here; later chunks are dropped
}

// heldChunk is a chunk waiting for the caller, n chunks merged.
type heldChunk struct {
	protocol.JobChunk
	n int
}

func newStream(output, jobs bool) *stream {
	return &stream{output: output, jobs: jobs, notify: make(chan struct{}, 1), order: newReorder()}
}

// begin readies the stream for a new attempt. Its output counts afresh
// only when again is set: the attempt before was lost or stopped by its
// worker after it streamed, which the next attempt streams again from its
// start (bounded by the job's attempts). After a busy or rejected answer
// to a job that streamed nothing it does not: a hostile worker would
// otherwise reset the limits round after round.
func (s *stream) begin(again bool) {
	s.mu.Lock()
	if again {
		s.sent = [3]int{}
		s.count = 0
	}
	s.this = false
	s.ended = ""
	s.mu.Unlock()
}

// streamed reports whether the current attempt streamed a chunk.
func (s *stream) streamed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.this
}

// push takes chunk c on the reader goroutine. It returns why, when c ended
// the job (once: later chunks are dropped without a word).
func (s *stream) push(c protocol.JobChunk) (why string) {
	kind := c.Stream == protocol.StreamJob
	if c.Stream > protocol.StreamStderr || kind && !s.jobs || !kind && !s.output {
		return "" // no such stream, or none the caller asked for: dropped
	}
	s.mu.Lock()
	defer func() {
		s.mu.Unlock()
		select {
		case s.notify <- struct{}{}:
		default:
		}
	}()
	if s.ended != "" {
		return ""
	}
	if !kind && c.Data == "" {
		// A worker streams output only when it has some: empty chunks
		// would pass every byte bound, one printed line each.
		s.ended = fmt.Sprintf("an empty chunk of %s: a worker sends none", streamName(c.Stream))
		return s.ended
	}
	limit, what := maxStreamOutput, "the output limit"
	if kind {
		limit, what = protocol.MaxJobStream, "the stream limit"
		if s.count++; s.count > protocol.MaxJobChunks {
			s.ended = fmt.Sprintf("more than %d chunks, the stream limit", protocol.MaxJobChunks)
			return s.ended
		}
	}
	if s.sent[c.Stream]+len(c.Data) > limit {
		s.ended = fmt.Sprintf("more than %d bytes of %s, %s", limit, streamName(c.Stream), what)
		return s.ended
	}
	s.sent[c.Stream] += len(c.Data)
	s.this = true
	s.order.add(c, s.hold)
	return s.ended
}

// hold appends c, in order, to what waits for the caller (under s.mu).
func (s *stream) hold(c protocol.JobChunk) {
	if s.ended != "" {
		return
	}
	merge := false
	if n := len(s.held); n > 0 && s.output && c.Stream != protocol.StreamJob {
		merge = s.held[n-1].Stream == c.Stream
	}
	cost := len(c.Data)
	if !merge {
		cost += chunkCost
	}
	if s.bytes+cost > maxStreamHeld {
		s.ended = fmt.Sprintf("more than %d bytes of chunks waited for the caller to take them, the stream bound", maxStreamHeld)
		return
	}
	s.bytes += cost
	if !merge {
		s.seal()
		s.held = append(s.held, heldChunk{c, 1})
		return
	}
	last := &s.held[len(s.held)-1]
	if s.tail == nil {
		s.tail = append(make([]byte, 0, 2*(len(last.Data)+len(c.Data))), last.Data...)
		last.Data = ""
	}
	s.tail = append(s.tail, c.Data...)
	last.n++
}

// seal gives the last held chunk its merged data (under s.mu).
func (s *stream) seal() {
	if s.tail != nil {
		s.held[len(s.held)-1].Data = string(s.tail)
		s.tail = nil
	}
}

// take moves the chunks waiting into buf, for the caller's goroutine.
func (s *stream) take(buf []heldChunk) []heldChunk {
	s.mu.Lock()
	s.seal()
	buf = append(buf[:0], s.held...)
	clear(s.held)
	s.held = s.held[:0]
	if cap(s.held) > 1024 {
		s.held = nil // do not keep a flood's array
	}
	s.bytes = 0
	s.mu.Unlock()
	return buf
}

// finish ends the attempt's reordering: when it answered, the chunks held
// back are put in order, skipping the gaps; when it was lost, they are
// forgotten, for the next attempt sends them again. The caller takes what
// waits first: then what the reorder holds always fits (maxEarlyBytes and
// maxEarlyChunks are well below maxStreamHeld).
func (s *stream) finish(lost bool) {
	s.mu.Lock()
	if lost {
		s.order.lost()
	} else {
		s.order.end(s.hold)
	}
	s.mu.Unlock()
}

func streamName(s uint8) string {
	switch s {
	case protocol.StreamStdout:
		return "stdout"
	case protocol.StreamStderr:
		return "stderr"
	}
	return "chunks"
}
