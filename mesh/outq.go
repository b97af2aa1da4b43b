package mesh

import (
	"sync"

	"meshell/protocol"
)

// outq is a connection's outbound queue: bounded like a channel of limit
// frames, but its memory grows with what is queued and is given back once
// it drains, so that the 99 idle connections of a 100-node mesh hold
// nothing. One writer pops; anyone pushes.
type outq struct {
	mu    sync.Mutex
	items []protocol.Message
	head  int // items[head:] are queued
	limit int
	ready chan struct{} // signalled when the queue stops being empty
}

func newOutq(limit int) *outq { return &outq{limit: limit, ready: make(chan struct{}, 1)} }

// push queues m; false when the queue holds limit frames already.
func (q *outq) push(m protocol.Message) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := len(q.items) - q.head
	if n >= q.limit {
		return false
	}
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
