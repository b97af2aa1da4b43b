package swim

import (
	"fmt"
	"slices"
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

// TestRepairWhileChangesNeverStop: changes that keep arriving (suspicions
// flapping elsewhere) delay a repair, but not beyond repairWait: a node
// that missed a member of a join storm would otherwise learn of it only
// from the periodic push/pull a minute later.
func TestRepairWhileChangesNeverStop(t *testing.T) {
	h := newHarness(t, LANConfig(), 4)
	h.answer = func(string) bool { return true }
	h.advance(time.Second)
	step := h.c.cfg.PushPullMinGap / 5
	var first time.Duration
	start := h.now
	for i := 0; h.now.Sub(start) <= 2*h.c.repairWait(); i++ {
		h.step("b", &protocol.Gossip{Updates: []protocol.Member{member(fmt.Sprintf("new%d", i), protocol.StateAlive, 0)}})
		h.step("c", &protocol.Ack{Seq: 1, Digest: h.c.table.Digest() + 1})
		if to, _ := sent[*protocol.PushPull](h.drain()); len(to) > 0 && first == 0 {
			first = h.now.Sub(start)
		}
		h.advance(step)
	}
	switch {
	case first == 0:
		t.Fatalf("no push/pull within %v of a differing digest while the table kept changing", 2*h.c.repairWait())
	case first < h.c.repairWait():
		t.Fatalf("push/pull after %v while the table kept changing, before repairWait (%v)", first, h.c.repairWait())
	}
}

// TestNewcomerNotSuspectedBeforeItCouldAnswer: a member new to the table,
// learned from others (z) or from its own connection (y), is not suspected
// by a probe that fails within the longest suspicion after it was added (in
// a join storm it, its relays and this node are still busy opening
// connections); after that, a failed probe suspects it.
func TestNewcomerNotSuspectedBeforeItCouldAnswer(t *testing.T) {
	h := newHarness(t, LANConfig(), 1)
	h.answer = func(to string) bool { return to == "b" }
	h.step("b", &protocol.Gossip{Updates: []protocol.Member{member("z", protocol.StateAlive, 0)}})
	h.c.Connected(h.now, member("y", protocol.StateAlive, 0))
	learned := h.now
	for h.now.Sub(learned) < h.c.suspicionMax()-10*time.Millisecond {
		h.advance(10 * time.Millisecond)
		for _, a := range []string{"y", "z"} {
			if h.state(a) != protocol.StateAlive {
				t.Fatalf("newcomer %s %s %v after it was added", a, h.state(a), h.now.Sub(learned))
			}
		}
	}
	if h.c.Stats().NewcomerGrace < 2 {
		t.Fatalf("%d failed probes of the newcomers: the test tests nothing", h.c.Stats().NewcomerGrace)
	}
	h.advance(h.c.suspicionMin() + 4*h.c.cfg.ProbeInterval)
	for _, a := range []string{"y", "z"} {
		if h.state(a) == protocol.StateAlive {
			t.Fatalf("newcomer %s that never answers is never suspected", a)
		}
	}
}

// TestMembersJoiningThroughOneSeedLearnOfEachOther: news of members that
// joined through this node (Introduced) is pushed to every live member, the
// newcomers included, at most once per GossipInterval; receivers of such a
// direct push do not push it on.
func TestMembersJoiningThroughOneSeedLearnOfEachOther(t *testing.T) {
	h := newHarness(t, LANConfig(), 5) // b..f
	h.advance(h.c.cfg.GossipInterval)
	h.drain()
	h.c.Introduced(h.now, member("n1", protocol.StateAlive, 0), false)
	h.collect()
	to, msgs := sent[*protocol.Gossip](h.drain())
	slices.Sort(to)
	if want := []string{"b", "c", "d", "e", "f", "n1"}; !slices.Equal(to, want) || !msgs[0].Direct {
		t.Fatalf("news of n1 went to %v (direct %v), want every live member %v", to, len(msgs) > 0 && msgs[0].Direct, want)
	}
	// Two more newcomers within one interval go out together, to all.
	h.c.Introduced(h.now, member("n2", protocol.StateAlive, 0), false)
	h.c.Introduced(h.now, member("n3", protocol.StateAlive, 0), false)
	h.collect()
	if to, _ := sent[*protocol.Gossip](h.drain()); len(to) != 0 {
		t.Fatalf("second push within GossipInterval went to %v", to)
	}
	h.advance(h.c.cfg.GossipInterval)
	to, msgs = sent[*protocol.Gossip](h.drain())
	if len(to) != 8 {
		t.Fatalf("batched news went to %d members, want all 8 live", len(to))
	}
	var got []string
	for _, u := range msgs[0].Updates {
		got = append(got, u.Alias)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"n2", "n3"}) {
		t.Fatalf("batched push carried %v, want [n2 n3]", got)
	}

	// A receiver of a direct push queues it for piggybacking only.
	r := newHarness(t, LANConfig(), 5)
	r.advance(r.c.cfg.GossipInterval)
	r.drain()
	r.step("b", &protocol.Gossip{Updates: []protocol.Member{member("n4", protocol.StateAlive, 0)}, Direct: true})
	if to, _ := sent[*protocol.Gossip](r.drain()); len(to) != 0 {
		t.Fatalf("direct news pushed on to %v", to)
	}
	if r.state("n4") != protocol.StateAlive || r.c.queue.len() == 0 {
		t.Fatalf("direct news not taken (%s) or not queued for piggybacking", r.state("n4"))
	}
	r.step("b", &protocol.Gossip{Updates: []protocol.Member{member("n5", protocol.StateAlive, 0)}})
	if to, _ := sent[*protocol.Gossip](r.drain()); len(to) != r.c.cfg.GossipFanout {
		t.Fatalf("gossiped news pushed on to %v, want %d members", to, r.c.cfg.GossipFanout)
	}
}

// TestNewcomerGetsTheTableWhenItsAnswerWasStale: a member introduced while
// the table changed since its Hello answer is sent the whole table; one
// whose answer is current is not.
func TestNewcomerGetsTheTableWhenItsAnswerWasStale(t *testing.T) {
	h := newHarness(t, LANConfig(), 3)
	h.c.Introduced(h.now, member("n1", protocol.StateAlive, 0), false)
	h.collect()
	if to, _ := sent[*protocol.PushPull](h.drain()); len(to) != 0 {
		t.Fatalf("table sent to %v after a current answer", to)
	}
	h.c.Introduced(h.now, member("n2", protocol.StateAlive, 0), true)
	h.collect()
	to, pp := sent[*protocol.PushPull](h.drain())
	if len(to) != 1 || to[0] != "n2" || !pp[0].Reply {
		t.Fatalf("table went to %v, want [n2] as a reply", to)
	}
	if len(pp[0].Members) != 6 {
		t.Fatalf("table of %d members sent, want all 6 (n1 included)", len(pp[0].Members))
	}
}

// TestNewcomersOfAJoinStormKeepTheirGraceUntilItEnds: while new members
// keep arriving, each within the longest suspicion of the one before (a
// join storm), none of them is suspected by this node's own probes, however
// long ago it arrived; once the storm is over, the grace runs out one
// longest suspicion after its last newcomer. A member of the table from
// before the storm has no such grace.
func TestNewcomersOfAJoinStormKeepTheirGraceUntilItEnds(t *testing.T) {
	h := newHarness(t, LANConfig(), 2) // b answers, c (an old member) does not
	silent := []string{"c", "x"}       // x: the storm's first newcomer, which never answers
	h.answer = func(to string) bool { return !slices.Contains(silent, to) }
	h.step("b", &protocol.Gossip{Updates: []protocol.Member{member("x", protocol.StateAlive, 0)}})
	first := h.now
	var last time.Time
	for k := 0; h.now.Sub(first) < 4*h.c.suspicionMax(); k++ {
		h.advance(h.c.suspicionMax() / 3)
		h.step("b", &protocol.Gossip{Updates: []protocol.Member{member(fmt.Sprintf("new%02d", k), protocol.StateAlive, 0)}})
		last = h.now
		if st := h.state("x"); st != protocol.StateAlive {
			t.Fatalf("x %s %v after it arrived, while newcomers still arrive", st, h.now.Sub(first))
		}
	}
	if h.state("c") == protocol.StateAlive {
		t.Fatal("c, in the table before the storm, was never suspected during it")
	}
	if h.c.Stats().NewcomerGrace < 2 {
		t.Fatalf("%d failed probes of x in the storm: the test tests nothing", h.c.Stats().NewcomerGrace)
	}
	for h.state("x") == protocol.StateAlive {
		if h.now.Sub(last) > 2*h.c.suspicionMax()+10*h.c.cfg.ProbeInterval {
			t.Fatalf("x, which never answers, still alive %v after the storm's last newcomer", h.now.Sub(last))
		}
		h.advance(10 * time.Millisecond)
	}
	if since := h.now.Sub(last); since < h.c.suspicionMax()/2 {
		t.Fatalf("x suspected %v after the storm's last newcomer, before its grace ran out", since)
	}
}
