package mesh

import (
	"sync"

	"meshell/protocol"
)

// outq is a connection's outbound queue: bounded like a channel of limit
// frames, and by maxBytes of their protocol.Weight, but its memory grows
// with what is queued and is given back once it drains, so that the 99 idle
// connections of a 100-node mesh hold nothing. Overflow policy: drop-new
// (push fails). One writer pops; anyone pushes.
type outq struct {
	mu       sync.Mutex
	items    []protocol.Message
	head     int // items[head:] are queued
	limit    int
	bytes    int // Weight of what is queued
	maxBytes int
	ready    chan struct{} // signalled when the queue stops being empty
}

func newOutq(limit, maxBytes int) *outq {
	return &outq{limit: limit, maxBytes: maxBytes, ready: make(chan struct{}, 1)}
}

// push queues m; false when the queue holds limit frames already, or m
// would take it past maxBytes (an empty queue takes any one frame).
func (q *outq) push(m protocol.Message) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := len(q.items) - q.head
	w := protocol.Weight(m)
	if n >= q.limit || n > 0 && q.bytes+w > q.maxBytes {
		return false
	}
	q.bytes += w
	if q.head > 0 && len(q.items) == cap(q.items) {
		q.items = q.items[:copy(q.items, q.items[q.head:])]
		clear(q.items[n:cap(q.items)])
		q.head = 0
	}
	q.items = append(q.items, m)
	if n == 0 {
		select {
		case q.ready <- struct{}{}:
		default:
		}
	}
	return true
}

// pop takes the oldest frame; false when the queue is empty.
func (q *outq) pop() (protocol.Message, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head == len(q.items) {
		return nil, false
	}
	m := q.items[q.head]
	q.items[q.head] = nil
	q.head++
	q.bytes -= protocol.Weight(m)
	if q.head == len(q.items) {
		q.head = 0
		if cap(q.items) > keptQueue {
			q.items = nil
		} else {
			q.items = q.items[:0]
		}
	}
	return m, true
}

// keptQueue is the most queue slots an empty queue keeps.
const keptQueue = 16
