package swim

import (
	"slices"

	"meshell/protocol"
)

// queue holds the state changes waiting to ride on pings and acks. There is
// at most one update per member: a newer one replaces the older. Each update
// is sent a limited number of times (λ·⌈log10(N+1)⌉); those sent least, and
// among them the newest, go first. Beyond its limit the queue drops its
// oldest update and counts the drop.
//
// Taking k updates costs O(k log n): the updates sit in a heap ordered by
// (transmissions, newest first); replaced and dropped ones are only marked
// and skipped when they surface. A FIFO in insertion order finds the oldest
// update to drop.
type queue struct {
	limit   int
	items   map[string]*queued // the live update per member
	heap    queuedHeap         // live and dead updates by send priority
	fifo    []*queued          // live and dead updates in insertion order
	nextID  uint64
	dropped uint64
	held    []*queued // scratch for take
}

type queued struct {
	m         protocol.Member
	transmits int
	id        uint64 // insertion order: higher is newer
	dead      bool   // replaced, dropped or sent enough
}

// heapSlot is an update in the heap with its sort key copied beside it, so
// that comparisons do not load the update. An update's transmits change
// only while it is out of the heap (take).
type heapSlot struct {
	transmits int
	id        uint64
	it        *queued
}

func slotOf(it *queued) heapSlot { return heapSlot{it.transmits, it.id, it} }

type queuedHeap []heapSlot

// before puts the update sent least first and, among equals, the newest.
func (s heapSlot) before(o *heapSlot) bool {
	if s.transmits != o.transmits {
		return s.transmits < o.transmits
	}
	return s.id > o.id
}

func newQueue(limit int) queue {
	return queue{limit: limit, items: map[string]*queued{}}
}

// len is the number of updates waiting.
func (q *queue) len() int { return len(q.items) }

// push queues m, replacing any older update about the same member.
func (q *queue) push(m protocol.Member) {
	q.remove(m.Alias)
	q.nextID++
	it := &queued{m: m, id: q.nextID}
	q.items[m.Alias] = it
	heapPush(&q.heap, slotOf(it))
	q.fifo = append(q.fifo, it)
	for len(q.items) > q.limit {
		q.dropOldest()
	}
	q.compact()
}

// remove forgets the update about alias (replaced, or the member was
// reaped).
func (q *queue) remove(alias string) {
	if it, ok := q.items[alias]; ok {
		it.dead = true
		delete(q.items, alias)
	}
}

func (q *queue) dropOldest() {
	for len(q.fifo) > 0 {
		it := q.fifo[0]
		q.fifo[0] = nil
		q.fifo = q.fifo[1:]
		if !it.dead {
			q.remove(it.m.Alias)
			q.dropped++
			return
		}
	}
}

// compact rebuilds the heap and the FIFO when dead updates outnumber live
// ones, so that neither grows without bound.
func (q *queue) compact() {
	if len(q.heap) <= 2*len(q.items)+16 && len(q.fifo) <= 2*len(q.items)+16 {
		return
	}
	q.heap = slices.DeleteFunc(q.heap, func(s heapSlot) bool { return s.it.dead })
	heapInit(q.heap)
	q.fifo = slices.DeleteFunc(slices.Clone(q.fifo), func(it *queued) bool { return it.dead })
}

// take appends to out up to max updates for one message, skipping the
// members named in skip, and counts one transmission for each. Updates sent
// maxTransmits times leave the queue.
func (q *queue) take(out []protocol.Member, max, maxTransmits int, skip ...string) []protocol.Member {
	if max <= 0 || len(q.items) == 0 {
		return out
	}
	q.held = q.held[:0]
	for n := 0; n < max && len(q.heap) > 0; {
		it := heapPop(&q.heap).it
		if it.dead {
			continue
		}
		q.held = append(q.held, it)
		if slices.Contains(skip, it.m.Alias) {
			continue
		}
		if out == nil {
			out = make([]protocol.Member, 0, min(max, len(q.items)))
		}
		out = append(out, it.m)
		n++
		it.transmits++
		if it.transmits >= maxTransmits {
			q.remove(it.m.Alias)
		}
	}
	for _, it := range q.held {
		if !it.dead {
			heapPush(&q.heap, slotOf(it))
		}
	}
	clear(q.held)
	return out
}
