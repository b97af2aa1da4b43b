package node

import (
	"sync"
	"sync/atomic"
)

// Subscription receives membership events. Its channel is bounded: when the
// subscriber falls behind, new events are dropped and counted.
type Subscription struct {
	C       <-chan Event
	c       chan Event
	dropped atomic.Uint64
	hub     *hub
}

// Dropped is the number of events this subscriber missed.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Close ends the subscription. Its channel is not closed; stop reading it.
func (s *Subscription) Close() { s.hub.remove(s) }

type hub struct {
	mu   sync.Mutex
	subs map[*Subscription]struct{}
}

func (h *hub) add(buf int) *Subscription {
	if buf < 1 {
		buf = 1
	}
	c := make(chan Event, buf)
	s := &Subscription{C: c, c: c, hub: h}
	h.mu.Lock()
	if h.subs == nil {
		h.subs = map[*Subscription]struct{}{}
	}
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s
}

func (h *hub) remove(s *Subscription) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
}

// publish offers ev to every subscriber without blocking.
func (h *hub) publish(ev Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		select {
		case s.c <- ev:
		default:
			s.dropped.Add(1)
		}
	}
}
