package swim

import (
	"strings"
	"testing"
	"time"

	"meshell/protocol"
)

// A failed member forced out is left, with a leave event, and is sent
// nothing more: no re-contact pings for as long as it would have had them.
func TestForceLeaveStopsRecontact(t *testing.T) {
	cfg := LANConfig()
	h := newHarness(t, cfg, 3)
	h.ackAllBut("c")
	h.c.ConnLost(h.now, "c")
	h.step("b", &protocol.Gossip{Updates: []protocol.Member{member("c", protocol.StateFailed, 2)}})
	h.advance(4 * cfg.ReconnectBase)
	pings := 0
	for _, o := range h.drain() {
		if _, ok := o.Msg.(*protocol.Ping); ok && o.To == "c" {
			pings++
		}
	}
	if pings == 0 {
		t.Fatal("a failed member is not re-contacted: the test proves nothing")
	}
	h.events()

	if err := h.c.ForceLeave(h.now, "c"); err != nil {
		t.Fatal(err)
	}
	h.collect()
	if e, _ := h.c.Get("c"); e.State != protocol.StateLeft || e.Incarnation != 2 {
		t.Fatalf("c is %s at %d, want left at 2", e.State, e.Incarnation)
	}
	if ev := h.events(); len(ev) != 1 || ev[0].Kind != MemberLeave || ev[0].Member.Alias != "c" {
		t.Fatalf("events %+v, want one member-leave of c", ev)
	}
	h.advance(10 * cfg.ReconnectMax)
	for _, o := range h.drain() {
		if o.To == "c" {
			t.Fatalf("%T sent to c after it was forced out", o.Msg)
		}
	}
	// Stale news that it failed (a member that missed the request) does
	// not bring the re-contacts back: left beats failed.
	h.step("d", &protocol.Gossip{Updates: []protocol.Member{member("c", protocol.StateFailed, 2)}})
	h.advance(4 * cfg.ReconnectMax)
	for _, o := range h.drain() {
		if o.To == "c" {
			t.Fatalf("%T sent to c after stale news of its failure", o.Msg)
		}
	}
}

func TestForceLeaveRefusals(t *testing.T) {
	h := newHarness(t, LANConfig(), 3)
	h.step("b", &protocol.Gossip{Updates: []protocol.Member{member("c", protocol.StateSuspect, 0)}})
	for _, tc := range []struct{ alias, want string }{
		{"b", "b is alive here"},
		{"c", "c is suspect here"},
		{"a", "a is this node"},
	} {
		err := h.c.ForceLeave(h.now, tc.alias)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ForceLeave(%s) = %v, want %q", tc.alias, err, tc.want)
		}
	}
	if h.state("b") != protocol.StateAlive || h.state("c") != protocol.StateSuspect {
		t.Fatalf("a refused force-leave changed the table: b %s, c %s", h.state("b"), h.state("c"))
	}
	// Unknown and already left: nothing to do, no error.
	if err := h.c.ForceLeave(h.now, "zz"); err != nil {
		t.Fatal(err)
	}
	h.step("d", &protocol.Leave{Alias: "d"})
	if err := h.c.ForceLeave(h.now.Add(time.Millisecond), "d"); err != nil || h.state("d") != protocol.StateLeft {
		t.Fatalf("ForceLeave of a member that left: %v, %s", err, h.state("d"))
	}
}
