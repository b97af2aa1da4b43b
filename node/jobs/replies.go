package jobs

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"meshell/protocol"
)

// Bounds of the answers a worker holds for one dispatcher whose mesh queue
// is full: results, busy answers and streamed chunks alike.
// Overflow policy "drop-dispatcher": past them its answers are dropped (counted) and its jobs here cancelled.
const (
	DefaultReplyQueue = 4096     // messages
	DefaultReplyBytes = 16 << 20 // bytes of results, errors and chunk data
)

// replyStall is how long a dispatcher's reply queue may go without sending
// one message before the overflow policy applies: it is not reading.
const replyStall = 10 * time.Second

// How a reply sender polls a full mesh queue (the mesh gives no signal when
// room comes back).
const (
	replyBackoffMin = 100 * time.Microsecond
	replyBackoffMax = 50 * time.Millisecond
)

// errJobsClosed ends a streaming job's emit when this node shuts down.
var errJobsClosed = errors.New("this node is shutting down")

// outbox holds the worker's answers that did not fit in their dispatcher's
// mesh queue: one bounded FIFO per dispatcher, drained in order by one
// sender goroutine that lives while that FIFO is not empty.
//
// Overflow policy (drop-dispatcher): when a dispatcher's FIFO is full, or
// sends nothing for replyStall, that dispatcher is not reading: its queued
// answers are dropped (counted in dropped), and its queued and running jobs
// on this worker are cancelled. Its own timeout or peer-down fails them over.
type outbox struct {
	j        *Jobs
	max      int           // messages per dispatcher
	maxBytes int           // bytes per dispatcher
	stall    time.Duration // see replyStall
	backlog  atomic.Int32  // len(peers), read without mu on the fast path

	mu     sync.Mutex
	peers  map[string]*replyQueue
	closed bool

	dropped   atomic.Uint64 // answers dropped by the overflow policy
	overflows atomic.Uint64 // times the policy applied

	stop chan struct{} // closed by close: senders return
	wg   sync.WaitGroup
}

// replyQueue is one dispatcher's FIFO. Its sender owns msgs[head] while it
// sends it; an overflow bumps epoch so that the sender knows it is gone.
type replyQueue struct {
	to    string
	msgs  []protocol.Message
	head  int
	bytes int
	epoch uint64
	room  chan struct{} // closed when the FIFO falls below half its bounds; nil without waiters
}

func (q *replyQueue) len() int { return len(q.msgs) - q.head }

func newOutbox(j *Jobs) *outbox {
	return &outbox{j: j, max: DefaultReplyQueue, maxBytes: DefaultReplyBytes, stall: replyStall,
		peers: map[string]*replyQueue{}, stop: make(chan struct{})}
}

// replySize approximates what m holds on to while queued.
func replySize(m protocol.Message) int {
	switch m := m.(type) {
	case *protocol.JobResult:
		o := m.Output()
		return 48 + len(m.Result) + len(m.Error) + len(o.Stdout) + len(o.Stderr)
	case *protocol.JobChunk:
		return 40 + len(m.Data)
	}
	return 64
}

// reply sends a worker's answer to dispatcher to. It never blocks. The fast
// path sends inline when nothing is queued for to; a full mesh queue puts
// the answer in to's FIFO, and so does a FIFO already there, keeping answers
// in order. A missing connection drops the answer: the dispatcher saw it go
// and sends its jobs elsewhere.
func (j *Jobs) reply(to string, m protocol.Message) {
	if j.out.backlog.Load() == 0 || !j.out.has(to) {
		if err := j.send(to, m); !errors.Is(err, ErrQueueFull) {
			return
		}
	}
	j.out.push(to, m)
}

// sendChunk sends a streamed chunk like reply, except that it waits (until
// ctx ends) while to's FIFO is past half its bounds: a dispatcher that reads
// slowly holds a streaming job back instead of filling its FIFO.
func (j *Jobs) sendChunk(ctx context.Context, to string, m *protocol.JobChunk) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if j.out.backlog.Load() == 0 || !j.out.has(to) {
		if err := j.send(to, m); !errors.Is(err, ErrQueueFull) {
			return err
		}
	}
	return j.out.pushWait(ctx, to, m)
}

func (o *outbox) has(to string) bool {
	o.mu.Lock()
	_, ok := o.peers[to]
	o.mu.Unlock()
	return ok
}

// queueLocked returns to's FIFO, opening it and starting its sender.
func (o *outbox) queueLocked(to string) *replyQueue {
	q := o.peers[to]
	if q == nil {
		q = &replyQueue{to: to}
		o.peers[to] = q
		o.backlog.Add(1)
		o.wg.Add(1)
		go o.run(q)
	}
	return q
}

// push queues m for to, or applies the overflow policy when to's FIFO is full.
func (o *outbox) push(to string, m protocol.Message) {
	size := replySize(m)
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	q := o.queueLocked(to)
	if q.len() >= o.max || q.bytes+size > o.maxBytes {
		n := o.dropLocked(q) + 1 // m too
		o.mu.Unlock()
		o.overflow(to, n, "its reply queue is full")
		return
	}
	q.msgs = append(q.msgs, m)
	q.bytes += size
	o.mu.Unlock()
}

// pushWait queues the chunk m for to once to's FIFO is below half its bounds.
func (o *outbox) pushWait(ctx context.Context, to string, m protocol.Message) error {
	size := replySize(m)
	o.mu.Lock()
	for {
		if o.closed {
			o.mu.Unlock()
			return errJobsClosed
		}
		q := o.queueLocked(to)
		if q.len() < o.max/2 && q.bytes+size <= o.maxBytes/2 || q.len() == 0 {
			q.msgs = append(q.msgs, m)
			q.bytes += size
			o.mu.Unlock()
			return nil
		}
		if q.room == nil {
			q.room = make(chan struct{})
		}
		room := q.room
		o.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return ctx.Err()
		case <-o.stop:
			return errJobsClosed
		}
		o.mu.Lock()
	}
}

// dropLocked empties q, returning how many messages it held.
func (o *outbox) dropLocked(q *replyQueue) int {
	n := q.len()
	clear(q.msgs)
	q.msgs, q.head, q.bytes = nil, 0, 0
	q.epoch++
	q.wake()
	return n
}

// removeLocked forgets q; its sender is returning.
func (o *outbox) removeLocked(q *replyQueue) {
	if o.peers[q.to] == q {
		delete(o.peers, q.to)
		o.backlog.Add(-1)
	}
	q.wake()
}

func (q *replyQueue) wake() {
	if q.room != nil {
		close(q.room)
		q.room = nil
	}
}

// overflow applies the policy to dispatcher to, whose n answers were dropped.
func (o *outbox) overflow(to string, n int, why string) {
	o.overflows.Add(1)
	o.dropped.Add(uint64(n))
	o.j.h.Warn("jobs-overflow", logrus.Fields{"alias": to, "dropped": n, "why": why},
		"jobs: a dispatcher is not reading its answers: answers dropped, its jobs cancelled")
	o.j.w.dropFrom(to, whyDropped)
}

// run is q's sender: it sends q's messages in order, waiting out a full mesh
// queue, and returns once q is empty, its dispatcher is gone or the outbox
// closes.
func (o *outbox) run(q *replyQueue) {
	defer o.wg.Done()
	backoff := replyBackoffMin
	var t *time.Timer
	progress := time.Now()
	o.mu.Lock()
	for {
		if o.closed || q.len() == 0 {
			o.removeLocked(q)
			o.mu.Unlock()
			return
		}
		m, epoch := q.msgs[q.head], q.epoch
		o.mu.Unlock()
		err := o.j.send(q.to, m)
		if err == nil {
			o.mu.Lock()
			if q.epoch == epoch {
				q.msgs[q.head] = nil
				q.head++
				q.bytes -= replySize(m)
				if q.head == len(q.msgs) {
					q.msgs, q.head = q.msgs[:0], 0
				}
				if q.room != nil && q.len() < o.max/2 && q.bytes <= o.maxBytes/2 {
					q.wake()
				}
			}
			backoff, progress = replyBackoffMin, time.Now()
			continue
		}
		if !errors.Is(err, ErrQueueFull) {
			// The dispatcher is gone: it fails its jobs over, and peerDown
			// cancels them here.
			o.mu.Lock()
			o.dropLocked(q)
			continue
		}
		if time.Since(progress) >= o.stall {
			o.mu.Lock()
			n := o.dropLocked(q)
			o.mu.Unlock()
			o.overflow(q.to, n, "nothing sent for "+o.stall.String())
			progress = time.Now()
			o.mu.Lock()
			continue
		}
		if t == nil {
			t = time.NewTimer(backoff)
			defer t.Stop()
		} else {
			t.Reset(backoff)
		}
		select {
		case <-t.C:
		case <-o.stop:
		}
		backoff = min(backoff*2, replyBackoffMax)
		o.mu.Lock()
	}
}

// close drops every queued answer and waits for the senders to return.
func (o *outbox) close() {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	o.closed = true
	for _, q := range o.peers {
		o.dropLocked(q)
	}
	close(o.stop)
	o.mu.Unlock()
	o.wg.Wait()
}

// stats returns the answers queued now, dropped so far and overflows.
func (o *outbox) stats() (queued int, dropped, overflows uint64) {
	o.mu.Lock()
	for _, q := range o.peers {
		queued += q.len()
	}
	o.mu.Unlock()
	return queued, o.dropped.Load(), o.overflows.Load()
}

// forget drops what is queued for a dispatcher whose connection closed: its
// jobs fail over, so the answers are moot. Its sender returns.
func (o *outbox) forget(to string) {
	o.mu.Lock()
	if q := o.peers[to]; q != nil {
		o.dropLocked(q)
	}
	o.mu.Unlock()
}
