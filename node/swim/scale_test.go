package swim

import (
	"testing"
	"time"

	"meshell/protocol"
)

// TestChangesWithinGossipIntervalGoOutTogether: the first change is pushed
// at once; changes within GossipInterval of that push wait and go out in
// one Gossip per fanout target, so a storm of joins costs a bounded rate of
// pushes rather than GossipFanout messages per change.
func TestChangesWithinGossipIntervalGoOutTogether(t *testing.T) {
	h := newHarness(t, LANConfig(), 20)
	h.answer = func(string) bool { return true }
	h.step("b", &protocol.Gossip{Updates: []protocol.Member{member("new1", protocol.StateAlive, 0)}})
	if to, _ := sent[*protocol.Gossip](h.drain()); len(to) != h.c.cfg.GossipFanout {
		t.Fatalf("first change pushed to %d members, want %d at once", len(to), h.c.cfg.GossipFanout)
	}
	for i, a := range []string{"new2", "new3", "new4"} {
		h.advance(h.c.cfg.GossipInterval / 5)
		h.step("c", &protocol.Gossip{Updates: []protocol.Member{member(a, protocol.StateAlive, 0)}})
		if to, _ := sent[*protocol.Gossip](h.drain()); len(to) != 0 {
			t.Fatalf("change %d pushed within the gossip interval to %v", i+2, to)
		}
	}
	h.advance(h.c.cfg.GossipInterval)
	to, gs := sent[*protocol.Gossip](h.drain())
	if len(to) != h.c.cfg.GossipFanout {
		t.Fatalf("batched changes pushed to %d members, want %d", len(to), h.c.cfg.GossipFanout)
	}
	for _, g := range gs {
		for _, a := range []string{"new2", "new3", "new4"} {
			if !hasUpdate(g.Updates, a, protocol.StateAlive, 0) {
				t.Fatalf("batched push %v lacks %s", g.Updates, a)
			}
		}
	}
	for _, a := range to {
		if a == "c" {
			t.Fatal("the batch went back to the member that sent it")
		}
	}
}

// TestNoRepairWhileTheTableChanges: a differing digest on an ack triggers a
// push/pull only once this node's table has been quiet for PushPullMinGap;
// while changes arrive, gossip is still delivering them.
func TestNoRepairWhileTheTableChanges(t *testing.T) {
	h := newHarness(t, LANConfig(), 4)
	h.answer = func(string) bool { return true }
	h.advance(time.Second)
	h.step("b", &protocol.Gossip{Updates: []protocol.Member{member("new1", protocol.StateAlive, 0)}})
	h.drain()
	h.advance(h.c.cfg.PushPullMinGap / 2)
	h.drain()
	h.step("c", &protocol.Ack{Seq: 1, Digest: h.c.table.Digest() + 1})
	if to, _ := sent[*protocol.PushPull](h.drain()); len(to) != 0 {
		t.Fatalf("push/pull to %v while the table just changed", to)
	}
	h.advance(h.c.cfg.PushPullMinGap / 2)
	h.drain()
	h.step("c", &protocol.Ack{Seq: 1, Digest: h.c.table.Digest() + 1})
	if to, _ := sent[*protocol.PushPull](h.drain()); len(to) != 1 || to[0] != "c" {
		t.Fatalf("push/pull to %v once the table is quiet, want [c]", to)
	}
}

// TestNewcomerNotSuspectedBeforeItCouldAnswer: a member learned from others
// and never heard from is not suspected by a probe that fails within the
// suspicion minimum after it was learned (its connection may still be being
// set up); after that, or once it was in contact, a failed probe suspects.
func TestNewcomerNotSuspectedBeforeItCouldAnswer(t *testing.T) {
	h := newHarness(t, LANConfig(), 1)
	h.answer = func(to string) bool { return to == "b" }
	h.step("b", &protocol.Gossip{Updates: []protocol.Member{member("z", protocol.StateAlive, 0)}})
	learned := h.now
	for h.now.Sub(learned) < h.c.suspicionMin()-10*time.Millisecond {
		h.advance(10 * time.Millisecond)
		if h.state("z") != protocol.StateAlive {
			t.Fatalf("newcomer %s %v after it was learned", h.state("z"), h.now.Sub(learned))
		}
	}
	if h.c.Stats().NewcomerGrace == 0 {
		t.Fatal("no probe of the newcomer failed: the test tests nothing")
	}
	h.advance(h.c.suspicionMin() + 2*h.c.cfg.ProbeInterval)
	if h.state("z") == protocol.StateAlive {
		t.Fatal("a newcomer that never answers is never suspected")
	}
}
