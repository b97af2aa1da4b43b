package swim

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"testing"
	"time"

	"meshell/manager"
	"meshell/protocol"
)

// Unit tests of what hostile or faulty peers send: forged departures and
// incarnations, PingReqs naming strangers, invented members.

const jump = manager.MaxIncarnationJump

// TestIncarnationsSaturate: every raise of the own incarnation stops at
// MaxUint64 instead of wrapping to 0.
func TestIncarnationsSaturate(t *testing.T) {
	c := New(protocol.Member{Alias: "a", Addr: "a:1", Incarnation: math.MaxUint64 - 1}, LANConfig(), 1, simEpoch)
	c.bootstrap(simEpoch, []protocol.Member{member("b", protocol.StateAlive, 0)})
	c.SetTags(simEpoch, map[string]string{"k": "1"})
	c.SetTags(simEpoch, map[string]string{"k": "2"})
	if inc := c.Self().Incarnation; inc != math.MaxUint64 {
		t.Fatalf("after two tag changes from MaxUint64-1: incarnation %d", inc)
	}
	c.Step(simEpoch, "b", &protocol.Gossip{Updates: []protocol.Member{member("a", protocol.StateSuspect, math.MaxUint64)}})
	if s := c.Self(); s.Incarnation != math.MaxUint64 || s.State != protocol.StateAlive {
		t.Fatalf("refuting at MaxUint64: self %s@%d", s.State, s.Incarnation)
	}
	c.Leave(simEpoch)
	c.Rejoin(simEpoch, c.Self().Addr)
	if s := c.Self(); s.Incarnation != math.MaxUint64 || s.State != protocol.StateAlive {
		t.Fatalf("rejoined as %s@%d", s.State, s.Incarnation)
	}
}

// TestImplausibleNewsIsRefused: news that raises a member's incarnation
// beyond the jump bound is refused and counted; news about this node beyond
// it is ignored, and the sender is told the truth.
func TestImplausibleNewsIsRefused(t *testing.T) {
	h := newHarness(t, LANConfig(), 6)
	h.step("b", &protocol.Gossip{Updates: []protocol.Member{
		member("c", protocol.StateFailed, math.MaxUint64),
		member("d", protocol.StateLeft, jump+1),
		member("zz", protocol.StateAlive, jump+1), // unknown
	}})
	if h.state("c") != protocol.StateAlive || h.state("d") != protocol.StateAlive || h.state("zz") != protocol.StateUnknown {
		t.Fatalf("c %s, d %s, zz %s after implausible news", h.state("c"), h.state("d"), h.state("zz"))
	}
	if n := h.c.Stats().Implausible; n != 3 {
		t.Fatalf("%d refusals counted, want 3", n)
	}
	if out := h.drain(); len(out) != 0 {
		t.Fatalf("refused news made this node send %T to %s", out[0].Msg, out[0].To)
	}
	if ev := h.events(); len(ev) != 0 {
		t.Fatalf("events %v", kinds(ev))
	}

	// About itself: ignored, and the sender corrected.
	h.step("b", &protocol.Gossip{Updates: []protocol.Member{member("a", protocol.StateLeft, jump+1)}})
	if s := h.c.Self(); s.Incarnation != 0 || s.State != protocol.StateAlive {
		t.Fatalf("self %s@%d after implausible news of itself", s.State, s.Incarnation)
	}
	to, gossips := sent[*protocol.Gossip](h.drain())
	if len(to) != 1 || to[0] != "b" || !hasUpdate(gossips[0].Updates, "a", protocol.StateAlive, 0) {
		t.Fatalf("sender not corrected: gossip %v to %v", gossips, to)
	}
	if n := h.c.Stats().Implausible; n != 4 {
		t.Fatalf("%d refusals counted, want 4", n)
	}

	// A leave in the member's own word is bounded too.
	h.step("e", &protocol.Leave{Alias: "e", Incarnation: math.MaxUint64})
	if st := h.state("e"); st != protocol.StateAlive {
		t.Fatalf("e %s after its own Leave@MaxUint64", st)
	}
	// At the bound it is believed (of a member whose connection closed:
	// of one in touch, hearsay of a departure is a suspicion, see doubt).
	h.c.ConnLost(h.now, "d")
	h.step("b", &protocol.Gossip{Updates: []protocol.Member{member("d", protocol.StateLeft, jump)}})
	if e, _ := h.c.Get("d"); e.State != protocol.StateLeft || e.Incarnation != jump {
		t.Fatalf("d %s@%d after left@+jump", e.State, e.Incarnation)
	}
}

// TestRefutationBeyondAJumpGoesToEveryone: refuting news above its own
// incarnation (here at +jump) takes this node where members that count
// from its last word could refuse the refutation from a third party, so
// every live member is told directly, and believes it in the member's own
// word.
func TestRefutationBeyondAJumpGoesToEveryone(t *testing.T) {
	h := newHarness(t, LANConfig(), 5)
	h.step("b", &protocol.Gossip{Updates: []protocol.Member{member("a", protocol.StateFailed, jump)}})
	if s := h.c.Self(); s.Incarnation != jump+1 {
		t.Fatalf("self@%d, want %d", s.Incarnation, jump+1)
	}
	to, _ := sent[*protocol.Gossip](h.drain())
	for _, p := range []string{"b", "c", "d", "e", "f"} {
		if !slices.Contains(to, p) {
			t.Fatalf("refutation gossiped to %v, not to every live member", to)
		}
	}

	// The receiving side: an alive entry far ahead is believed from the
	// member itself, and refused from anyone else.
	h.step("c", &protocol.Gossip{Updates: []protocol.Member{member("d", protocol.StateAlive, 5*jump)}})
	if e, _ := h.c.Get("d"); e.Incarnation != 0 {
		t.Fatalf("d@%d on c's word", e.Incarnation)
	}
	h.step("d", &protocol.Gossip{Updates: []protocol.Member{member("d", protocol.StateAlive, 5*jump)}})
	if e, _ := h.c.Get("d"); e.Incarnation != 5*jump {
		t.Fatalf("d@%d on its own word, want %d", e.Incarnation, 5*jump)
	}
}

// TestForgedRecordIsNotKept: third-party news cannot move a live member's
// address, and news of this node alive at its incarnation with another
// address or tags is refuted above it, so that a forged record (a
// suspicion to make the member refute, then alive at the refutation's
// incarnation elsewhere) neither sends dials away nor sticks.
func TestForgedRecordIsNotKept(t *testing.T) {
	h := newHarness(t, LANConfig(), 5)
	forged := member("c", protocol.StateAlive, 1)
	forged.Addr, forged.Tags = "evil:1", map[string]string{"role": "evil"}
	h.step("b", &protocol.Gossip{Updates: []protocol.Member{forged}})
	if e, _ := h.c.Get("c"); e.Addr != "c:1" || e.Incarnation != 0 {
		t.Fatalf("c at %s@%d on b's word, want c:1@0", e.Addr, e.Incarnation)
	}
	// Its own word moves it (a restart elsewhere), and so does news once it
	// is failed.
	moved := member("c", protocol.StateAlive, 1)
	moved.Addr = "c:2"
	h.step("c", &protocol.Gossip{Updates: []protocol.Member{moved}})
	if e, _ := h.c.Get("c"); e.Addr != "c:2" {
		t.Fatalf("c at %s after its own word, want c:2", e.Addr)
	}
	h.hearFailed("b", "d")
	back := member("d", protocol.StateAlive, 1)
	back.Addr = "d:2"
	h.step("b", &protocol.Gossip{Updates: []protocol.Member{back}})
	if e, _ := h.c.Get("d"); e.Addr != "d:2" || e.State != protocol.StateAlive {
		t.Fatalf("failed d back as %s at %s, want alive at d:2", e.State, e.Addr)
	}

	self := h.c.Self()
	for _, f := range []func(*protocol.Member){
		func(m *protocol.Member) { m.Addr = "evil:1" },
		func(m *protocol.Member) { m.Tags = map[string]string{"role": "evil"} },
	} {
		news := self
		f(&news)
		h.step("b", &protocol.Gossip{Updates: []protocol.Member{news}})
		if got := h.c.Self(); got.Incarnation <= news.Incarnation || got.Addr != self.Addr || len(got.Tags) != len(self.Tags) {
			t.Fatalf("self %+v after forged %+v, want refuted above it", got, news)
		}
		self = h.c.Self()
	}
	// News of itself as it is, or without tags, is no reason to refute.
	news := self
	news.Tags = nil
	h.step("b", &protocol.Gossip{Updates: []protocol.Member{self, news}})
	if got := h.c.Self().Incarnation; got != self.Incarnation {
		t.Fatalf("self@%d after true news, want %d", got, self.Incarnation)
	}
}

// TestHearsayAboutAMemberInTouch: a third party's word that a member in
// touch with us was suspect or failed at a later incarnation is a suspicion
// at the incarnation held, told to the member; its word that the member
// left, or has a later incarnation or other tags, is not believed, and the
// member is asked for its record, once a probe interval. Once the member's
// connection is gone, the same word is believed; the member's own word
// always is.
func TestHearsayAboutAMemberInTouch(t *testing.T) {
	h := newHarness(t, LANConfig(), 6)
	evil := map[string]string{"role": "evil"}
	h.step("b", &protocol.Gossip{Updates: []protocol.Member{
		member("c", protocol.StateFailed, 5),
		member("d", protocol.StateLeft, 5),
		withTags(member("e", protocol.StateAlive, 5), "role", "evil"),
		withTags(member("f", protocol.StateSuspect, 5), "role", "evil"),
	}})
	if e, _ := h.c.Get("c"); e.State != protocol.StateSuspect || e.Incarnation != 0 {
		t.Fatalf("c %s@%d on b's word, want suspect@0", e.State, e.Incarnation)
	}
	// Only d itself can say it left: its Leave would come on its connection.
	if e, _ := h.c.Get("d"); e.State != protocol.StateAlive || e.Incarnation != 0 {
		t.Fatalf("d %s@%d on b's word, want alive@0", e.State, e.Incarnation)
	}
	if e, _ := h.c.Get("e"); e.Incarnation != 0 || len(e.Tags) != 0 {
		t.Fatalf("e@%d with tags %v on b's word, want as it was", e.Incarnation, e.Tags)
	}
	if e, _ := h.c.Get("f"); e.State != protocol.StateSuspect || e.Incarnation != 0 || len(e.Tags) != 0 {
		t.Fatalf("f %s@%d with tags %v, want suspect@0 without b's tags", e.State, e.Incarnation, e.Tags)
	}
	to, gossips := sent[*protocol.Gossip](h.drain())
	told := map[string]protocol.Member{}
	for i, a := range to {
		for _, u := range gossips[i].Updates {
			if u.Alias == a {
				told[a] = u
			}
		}
	}
	if told["c"].State != protocol.StateSuspect {
		t.Fatalf("c told %+v, want its suspicion", told["c"])
	}
	for _, a := range []string{"d", "e"} {
		if m, ok := told[a]; !ok || m.State != protocol.StateAlive || m.Incarnation != 0 || len(m.Tags) != 0 {
			t.Fatalf("%s asked with %+v, want its record as held", a, m)
		}
	}
	if n := h.c.Stats().Hearsay; n != 2 {
		t.Fatalf("%d hearsay records counted, want 2 (d's and e's)", n)
	}
	// Asked once a probe interval, however often the news comes.
	h.step("d", &protocol.Gossip{Updates: []protocol.Member{withTags(member("e", protocol.StateAlive, 6), "role", "evil")}})
	if to, _ := sent[*protocol.Gossip](h.drain()); slices.Contains(to, "e") {
		t.Fatal("e asked twice within a probe interval")
	}
	// e answers in its own word: believed.
	h.step("e", &protocol.Gossip{Updates: []protocol.Member{withTags(member("e", protocol.StateAlive, 7), "role", "evil")}})
	if e, _ := h.c.Get("e"); e.Incarnation != 7 || !maps.Equal(e.Tags, evil) {
		t.Fatalf("e@%d with tags %v after its own word", e.Incarnation, e.Tags)
	}
	// c's connection closes: b's word is a verdict now.
	h.c.ConnLost(h.now, "c")
	h.step("b", &protocol.Gossip{Updates: []protocol.Member{member("c", protocol.StateFailed, 5)}})
	if e, _ := h.c.Get("c"); e.State != protocol.StateFailed || e.Incarnation != 5 {
		t.Fatalf("c %s@%d after its connection closed, want failed@5", e.State, e.Incarnation)
	}
}

// TestHearsayCannotRaiseAnIncarnation: a third party's word that a member
// in touch with us is alive at a later incarnation, tags unchanged, is not
// believed; the member is asked, and its own word is.
func TestHearsayCannotRaiseAnIncarnation(t *testing.T) {
	h := newHarness(t, LANConfig(), 3)
	h.step("b", &protocol.Gossip{Updates: []protocol.Member{member("c", protocol.StateAlive, 1<<20)}})
	if e, _ := h.c.Get("c"); e.State != protocol.StateAlive || e.Incarnation != 0 {
		t.Fatalf("c %s@%d on b's word, want alive@0", e.State, e.Incarnation)
	}
	if to, _ := sent[*protocol.Gossip](h.drain()); !slices.Contains(to, "c") {
		t.Fatal("c was not asked for its record")
	}
	if n := h.c.Stats().Hearsay; n != 1 {
		t.Fatalf("%d hearsay records counted, want 1", n)
	}
	h.step("c", &protocol.Gossip{Updates: []protocol.Member{member("c", protocol.StateAlive, 3)}})
	if e, _ := h.c.Get("c"); e.Incarnation != 3 {
		t.Fatalf("c@%d after its own word, want 3", e.Incarnation)
	}
}

// TestLeaveOnlyFromTheLeaver: a Leave is taken only from the member that
// leaves.
func TestLeaveOnlyFromTheLeaver(t *testing.T) {
	h := newHarness(t, LANConfig(), 6)
	h.step("b", &protocol.Leave{Alias: "c", Incarnation: math.MaxUint64})
	h.step("b", &protocol.Leave{Alias: "d"})
	h.step("b", &protocol.Leave{Alias: "a"})
	if h.state("c") != protocol.StateAlive || h.state("d") != protocol.StateAlive || h.c.Self().State != protocol.StateAlive {
		t.Fatalf("a third party's Leave applied: c %s, d %s, self %s", h.state("c"), h.state("d"), h.c.Self().State)
	}
	if n := h.c.Stats().ForeignLeaves; n != 3 {
		t.Fatalf("%d foreign leaves counted, want 3", n)
	}
	h.step("d", &protocol.Leave{Alias: "d"})
	if st := h.state("d"); st != protocol.StateLeft {
		t.Fatalf("d %s after its own Leave", st)
	}
	// Its own Leave is not told back to it.
	if to, _ := sent[*protocol.Gossip](h.drain()); slices.Contains(to, "d") {
		t.Fatalf("the leaver was told of its own leave")
	}
}

// TestHearsayDepartureIsToldToTheMember: a member marked failed or left on
// someone else's word is told directly, and its own entry rides on what is
// sent to it while it stands left here.
func TestHearsayDepartureIsToldToTheMember(t *testing.T) {
	h := newHarness(t, LANConfig(), 6)
	h.ackAllBut("c")
	h.hearFailed("b", "c")
	to, gossips := sent[*protocol.Gossip](h.drain())
	i := -1 // the last gossip to c: the first told it is suspect
	for j, a := range to {
		if a == "c" {
			i = j
		}
	}
	if i < 0 || !hasUpdate(gossips[i].Updates, "c", protocol.StateFailed, 0) {
		t.Fatalf("c not told it is failed: gossip to %v", to)
	}
	h.c.ConnLost(h.now, "e")
	h.step("d", &protocol.PushPull{Members: []protocol.Member{member("d", protocol.StateAlive, 0), member("e", protocol.StateLeft, 0)}})
	to, gossips = sent[*protocol.Gossip](h.drain())
	i = slices.Index(to, "e")
	if i < 0 || !hasUpdate(gossips[i].Updates, "e", protocol.StateLeft, 0) {
		t.Fatalf("e not told it left: gossip to %v", to)
	}
	// e, alive after all, pings us: the ack carries its left entry.
	h.step("e", &protocol.Ping{Seq: 3})
	_, acks := sent[*protocol.Ack](h.drain())
	if len(acks) != 1 || !hasUpdate(acks[0].Updates, "e", protocol.StateLeft, 0) {
		t.Fatalf("ack to a member held left: %+v", acks)
	}
	// e refutes: alive again.
	h.step("e", &protocol.Gossip{Updates: []protocol.Member{member("e", protocol.StateAlive, 1)}})
	if st := h.state("e"); st != protocol.StateAlive {
		t.Fatalf("e %s after refuting", st)
	}
}

// TestPingReqOnlyForKnownTargets: a relay probes only a member in its table
// (not left), at the address it holds; anything else is nacked at once
// with Refused unset, and nothing is dialled.
func TestPingReqOnlyForKnownTargets(t *testing.T) {
	h := newHarness(t, LANConfig(), 6)
	h.step("b", &protocol.Leave{Alias: "b"}) // b left...
	h.drain()
	for i := 0; i < 200; i++ {
		h.step("c", &protocol.PingReq{Seq: uint32(i), Target: fmt.Sprintf("x%d", i), Addr: fmt.Sprintf("10.9.9.9:%d", 1000+i)})
	}
	h.step("c", &protocol.PingReq{Seq: 500, Target: "b", Addr: "10.9.9.9:22"}) // ...and is not probed either
	out := h.drain()
	to, nacks := sent[*protocol.Nack](out)
	if len(out) != 201 || len(nacks) != 201 {
		t.Fatalf("201 ping-reqs for strangers: %d messages, %d nacks", len(out), len(nacks))
	}
	for i, n := range nacks {
		if to[i] != "c" || n.Refused {
			t.Fatalf("nack %+v to %s", n, to[i])
		}
	}
	if n := h.c.Stats().PingReqsRefused; n != 201 {
		t.Fatalf("%d refused ping-reqs counted", n)
	}
	// A refused dial afterwards cannot turn into a telling nack.
	h.c.DialFailed(h.now, "x7", true)
	h.collect()
	if out := h.drain(); len(out) != 0 {
		t.Fatalf("a refused dial to a stranger sent %T", out[0].Msg)
	}

	// A known target is pinged at its address in the table, whatever the
	// PingReq says.
	h.step("c", &protocol.PingReq{Seq: 600, Target: "d", Addr: "10.9.9.9:22"})
	h.advance(h.c.cfg.ProbeTimeout / 2) // and its resend too
	for _, o := range h.drain() {
		if o.Addr != "d:1" || o.To != "d" {
			t.Fatalf("relay sent %T to %s at %s", o.Msg, o.To, o.Addr)
		}
	}
}

// TestNewMemberRateLimit: one sender introduces at most the burst of new
// members at once, then the refill rate; handshake lists are not limited.
func TestNewMemberRateLimit(t *testing.T) {
	cfg := LANConfig()
	h := newHarness(t, cfg, 3)
	before := h.c.table.Len()
	for f := 0; f < 4; f++ {
		var fakes []protocol.Member
		for i := 0; i < 5000; i++ {
			fakes = append(fakes, member(fmt.Sprintf("f%d-%04d", f, i), protocol.StateAlive, 0))
		}
		h.step("b", &protocol.Gossip{Updates: fakes})
	}
	if grown := h.c.table.Len() - before; grown != cfg.NewMemberBurst {
		t.Fatalf("20,000 new members in 4 frames grew the table by %d, want the burst %d", grown, cfg.NewMemberBurst)
	}
	if n := h.c.Stats().RateLimited; n != 20000-uint64(cfg.NewMemberBurst) {
		t.Fatalf("%d rate limited", n)
	}
	// Another sender has its own bucket; the first refills at the rate.
	h.step("c", &protocol.Gossip{Updates: []protocol.Member{member("from-c", protocol.StateAlive, 0)}})
	h.now = h.now.Add(time.Second)
	var more []protocol.Member
	for i := 0; i < 1000; i++ {
		more = append(more, member(fmt.Sprintf("g%04d", i), protocol.StateAlive, 0))
	}
	n := h.c.table.Len()
	h.step("b", &protocol.Gossip{Updates: more})
	if grown := h.c.table.Len() - n; grown != cfg.NewMemberRate {
		t.Fatalf("a second later the sender added %d, want the rate %d", grown, cfg.NewMemberRate)
	}
	if h.state("from-c") != protocol.StateAlive {
		t.Fatal("another sender's new member refused")
	}
	// Known members are not charged: news about them always applies.
	h.step("b", &protocol.Gossip{Updates: []protocol.Member{member("c", protocol.StateSuspect, 0)}})
	if st := h.state("c"); st != protocol.StateSuspect {
		t.Fatalf("news about a known member refused with an empty bucket: c %s", st)
	}
	// A handshake list is not limited.
	n = h.c.table.Len()
	var hello []protocol.Member
	for i := 0; i < 1000; i++ {
		hello = append(hello, member(fmt.Sprintf("h%04d", i), protocol.StateAlive, 0))
	}
	h.c.Merge(h.now, hello)
	h.collect()
	if grown := h.c.table.Len() - n; grown != 1000 {
		t.Fatalf("a handshake list of 1000 added %d", grown)
	}
}

// TestMaxMembersCap: the table never grows beyond MaxMembers, whatever the
// path; refusals are counted.
func TestMaxMembersCap(t *testing.T) {
	cfg := LANConfig()
	cfg.MaxMembers = 100
	h := newHarness(t, cfg, 3)
	var list []protocol.Member
	for i := 0; i < 500; i++ {
		list = append(list, member(fmt.Sprintf("m%03d", i), protocol.StateAlive, 0))
	}
	h.c.Merge(h.now, list)
	h.step("b", &protocol.Gossip{Updates: []protocol.Member{member("one-more", protocol.StateAlive, 0)}})
	h.c.Connected(h.now, member("peer", protocol.StateAlive, 0))
	h.collect()
	if n := h.c.table.Len(); n != cfg.MaxMembers {
		t.Fatalf("table of %d, cap %d", n, cfg.MaxMembers)
	}
	if n := h.c.Stats().OverCap; n != 500-(100-4)+2 {
		t.Fatalf("%d refused over the cap", n)
	}
	// Members already in the table still change.
	h.step("b", &protocol.Gossip{Updates: []protocol.Member{member("m000", protocol.StateSuspect, 0)}})
	if st := h.state("m000"); st != protocol.StateSuspect {
		t.Fatalf("m000 %s at the cap", st)
	}
}

// TestFullTableMakesRoomFromTheDeparted: a table full of failed members (a
// flood of connections that went away) takes a new member in place of the
// one due to be reaped soonest, and refuses it only when every entry is
// alive.
func TestFullTableMakesRoomFromTheDeparted(t *testing.T) {
	cfg := LANConfig()
	cfg.MaxMembers = 10
	h := newHarness(t, cfg, 9)
	h.hearFailed("b", "c", "d")
	h.now = h.now.Add(time.Second)
	h.hearFailed("b", "e")
	h.c.Connected(h.now, member("new1", protocol.StateAlive, 0))
	h.collect()
	if h.c.table.Has("c") == h.c.table.Has("d") || !h.c.table.Has("e") {
		t.Fatalf("not the soonest reaped made room: c %v, d %v, e %v", h.c.table.Has("c"), h.c.table.Has("d"), h.c.table.Has("e"))
	}
	for _, a := range []string{"new2", "new3"} {
		h.step("b", &protocol.Gossip{Updates: []protocol.Member{member(a, protocol.StateAlive, 0)}})
	}
	for _, a := range []string{"new1", "new2", "new3"} {
		if st := h.state(a); st != protocol.StateAlive {
			t.Fatalf("%s %s, want alive in a table that held failed members", a, st)
		}
	}
	// Now every entry is alive: the next newcomer is refused.
	h.c.Connected(h.now, member("new4", protocol.StateAlive, 0))
	h.collect()
	st := h.c.Stats()
	if h.c.table.Has("new4") || h.c.table.Len() != cfg.MaxMembers || st.MadeRoom != 3 || st.OverCap != 1 {
		t.Fatalf("new4 in: %v, table of %d (cap %d), %d made room, %d over the cap", h.c.table.Has("new4"), h.c.table.Len(), cfg.MaxMembers, st.MadeRoom, st.OverCap)
	}
	if n := kinds(h.events()); !slices.Contains(n, "member-reap e") {
		t.Fatalf("events %v: the room made is not reported as a reap", n)
	}
}

// TestUnverifiedMemberIsReapedSoon: a member heard of only through others
// that never answered is reaped UnverifiedReap after it was learned once it
// failed; one that was ever in contact keeps ReconnectTimeout; one heard
// from later keeps it too.
func TestUnverifiedMemberIsReapedSoon(t *testing.T) {
	cfg := LANConfig()
	h := newHarness(t, cfg, 4)
	h.ackAllBut("x", "y", "z")
	learned := h.now
	h.step("b", &protocol.Gossip{Updates: []protocol.Member{member("x", protocol.StateAlive, 0), member("y", protocol.StateAlive, 0)}})
	h.c.Connected(h.now, member("z", protocol.StateAlive, 0))
	h.collect()
	h.advance(5 * time.Second)
	h.step("b", &protocol.Gossip{Updates: []protocol.Member{
		member("x", protocol.StateFailed, 0), member("y", protocol.StateFailed, 0), member("z", protocol.StateFailed, 0),
	}})
	h.advance(time.Second)
	h.step("y", &protocol.Ping{Seq: 1}) // y talks to us, still failed here
	h.advance(learned.Add(cfg.UnverifiedReap).Sub(h.now) - time.Millisecond)
	if h.state("x") != protocol.StateFailed {
		t.Fatalf("x %s before UnverifiedReap", h.state("x"))
	}
	h.advance(time.Millisecond)
	if _, ok := h.c.Get("x"); ok {
		t.Fatal("x, never in contact, not reaped after UnverifiedReap")
	}
	if h.state("y") != protocol.StateFailed || h.state("z") != protocol.StateFailed {
		t.Fatalf("members in contact reaped early: y %s, z %s", h.state("y"), h.state("z"))
	}
	if n := h.c.Stats().UnverifiedReaped; n != 1 {
		t.Fatalf("%d unverified reaps", n)
	}
	// Once reaped, nothing more goes to x.
	h.drain()
	h.advance(10 * time.Second)
	for _, o := range h.drain() {
		if o.To == "x" {
			t.Fatalf("%T sent to x after its reap", o.Msg)
		}
	}

	// A member that fails later than UnverifiedReap after it was learned
	// goes at once.
	cfg.UnverifiedReap = 100 * time.Millisecond
	h = newHarness(t, cfg, 4)
	h.step("b", &protocol.Gossip{Updates: []protocol.Member{member("w", protocol.StateAlive, 0)}})
	h.advance(2 * cfg.UnverifiedReap)
	if st := h.state("w"); st != protocol.StateAlive {
		t.Fatalf("w %s", st)
	}
	h.hearFailed("b", "w")
	h.advance(0)
	if _, ok := h.c.Get("w"); ok {
		t.Fatal("w not reaped on failing past UnverifiedReap")
	}
	if got := kinds(h.events()); !slices.Equal(got[len(got)-2:], []string{"member-failed w", "member-reap w"}) {
		t.Fatalf("events %v", got)
	}
}

// TestEchoedSuspicionIsNoConfirmation: only an explicit, distinct accuser
// confirms a suspicion; a copy without one (an echo, a push/pull) does
// not, and a suspicion learned without one is not passed on in its
// sender's name.
func TestEchoedSuspicionIsNoConfirmation(t *testing.T) {
	h := newHarness(t, LANConfig(), 10)
	h.ackAllBut()
	suspectNews(h, "c")
	h.step("d", &protocol.Gossip{Updates: []protocol.Member{member("c", protocol.StateSuspect, 0)}})
	h.step("e", &protocol.PushPull{Members: []protocol.Member{member("c", protocol.StateSuspect, 0)}})
	h.step("f", &protocol.Ping{Seq: 9, Updates: []protocol.Member{member("c", protocol.StateSuspect, 0)}})
	if s := h.c.suspicions["c"]; s == nil || s.n != 0 {
		t.Fatalf("suspicion %+v after three echoes, want no confirmation", s)
	}
	conf := member("c", protocol.StateSuspect, 0)
	conf.Accuser = "g"
	h.step("d", &protocol.Gossip{Updates: []protocol.Member{conf}})
	if s := h.c.suspicions["c"]; s.n != 1 {
		t.Fatalf("%d confirmations after an explicit accuser, want 1", s.n)
	}

	h.drain()
	h.step("d", &protocol.Gossip{Updates: []protocol.Member{member("e", protocol.StateSuspect, 0)}})
	_, gossips := sent[*protocol.Gossip](h.drain())
	for _, g := range gossips {
		for _, m := range g.Updates {
			if m.Alias == "e" && m.Accuser != "" {
				t.Fatalf("a suspicion without accuser passed on as %s's", m.Accuser)
			}
		}
	}
}

// TestResentPingCarriesTheSameUpdates: the resend of an unanswered ping,
// direct or relayed, carries what the first copy did and takes nothing more
// from the retransmit queue.
func TestResentPingCarriesTheSameUpdates(t *testing.T) {
	h := newHarness(t, LANConfig(), 5)
	h.c.SetTags(h.now, map[string]string{"role": "worker"})
	h.collect()
	h.drain()
	target, ping := h.nextPing()
	if !hasUpdate(ping.Updates, "a", protocol.StateAlive, 1) {
		t.Fatalf("first ping carries %+v", ping.Updates)
	}
	h.advance(h.c.cfg.ProbeTimeout / 2)
	to, pings := sent[*protocol.Ping](h.drain())
	if len(pings) != 1 || to[0] != target || !sameUpdates(pings[0].Updates, ping.Updates) {
		t.Fatalf("resend carries %+v, want %+v", pings, ping.Updates)
	}
	if it := h.c.queue.items["a"]; it == nil || it.transmits != 1 {
		t.Fatalf("queued update %+v, want one transmission", it)
	}

	// A fresh update, so that the queue still holds it for the relay's copies.
	h.c.SetTags(h.now, map[string]string{"role": "relay"})
	h.collect()
	h.drain()
	h.step("b", &protocol.PingReq{Seq: 70, Target: "c"})
	_, first := sent[*protocol.Ping](h.drain())
	if len(first) != 1 || !hasUpdate(first[0].Updates, "a", protocol.StateAlive, 2) {
		t.Fatalf("relay ping %+v, want one carrying the fresh update", first)
	}
	sentBefore := h.c.queue.items["a"].transmits
	h.advance(h.c.cfg.ProbeTimeout / 2)
	to, again := sent[*protocol.Ping](h.drain())
	i := slices.Index(to, "c")
	if i < 0 || again[i].Seq != first[0].Seq || !sameUpdates(again[i].Updates, first[0].Updates) {
		t.Fatalf("relay resend %+v, want %+v", again, first)
	}
	if it := h.c.queue.items["a"]; it != nil && it.transmits != sentBefore {
		t.Fatalf("relay resend took from the queue: %d transmissions, was %d", it.transmits, sentBefore)
	}
}

func TestValidateHostileLimits(t *testing.T) {
	for name, mod := range map[string]func(*Config){
		"max members 1":      func(c *Config) { c.MaxMembers = 1 },
		"max members huge":   func(c *Config) { c.MaxMembers = maxMembersLimit + 1 },
		"burst 0":            func(c *Config) { c.NewMemberBurst = 0 },
		"rate 0":             func(c *Config) { c.NewMemberRate = 0 },
		"unverified reap 0s": func(c *Config) { c.UnverifiedReap = 0 },
	} {
		c := LANConfig()
		mod(&c)
		if c.Validate() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for _, name := range []string{"lan", "local", "wan"} {
		c, _ := Profile(name)
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// sameUpdates compares two update lists by alias, state and incarnation.
func sameUpdates(a, b []protocol.Member) bool {
	return slices.EqualFunc(a, b, func(x, y protocol.Member) bool {
		return x.Alias == y.Alias && x.State == y.State && x.Incarnation == y.Incarnation
	})
}

// TestResentPingCarriesWhatTheTableHoldsNow: a member that left between a
// ping and its resend, direct or relayed, goes out left, never as the alive
// copy the first ping took: a newcomer, which knows nothing of the member
// and ignores news of its departure, would list it alive.
func TestResentPingCarriesWhatTheTableHoldsNow(t *testing.T) {
	h := newHarness(t, LANConfig(), 5)
	h.step("b", &protocol.Gossip{Updates: []protocol.Member{member("x", protocol.StateAlive, 0)}})
	h.drain()
	target, ping := h.nextPing()
	if !hasUpdate(ping.Updates, "x", protocol.StateAlive, 0) {
		t.Fatalf("first ping carries %+v, want x alive", ping.Updates)
	}
	h.step("b", &protocol.PingReq{Seq: 70, Target: "c"})
	_, first := sent[*protocol.Ping](h.drain())
	if len(first) != 1 || !hasUpdate(first[0].Updates, "x", protocol.StateAlive, 0) {
		t.Fatalf("relay ping %+v, want one carrying x alive", first)
	}
	h.step("x", &protocol.Leave{Alias: "x", Incarnation: 0})
	h.drain()
	h.advance(h.c.cfg.ProbeTimeout / 2)
	to, pings := sent[*protocol.Ping](h.drain())
	for _, want := range []struct {
		to  string
		seq uint32
	}{{target, ping.Seq}, {"c", first[0].Seq}} {
		i := slices.IndexFunc(pings, func(p *protocol.Ping) bool { return p.Seq == want.seq })
		if i < 0 || to[i] != want.to {
			t.Fatalf("no resend of ping %d to %s: %v", want.seq, want.to, to)
		}
		if !hasUpdate(pings[i].Updates, "x", protocol.StateLeft, 0) || hasUpdate(pings[i].Updates, "x", protocol.StateAlive, 0) {
			t.Fatalf("resend to %s carries %+v, want x left", want.to, pings[i].Updates)
		}
	}
}

// A node that restarts after refuting far-fetched news (alive at +2^20,
// say) finds the cluster holding it far above its new run's incarnation:
// the table of the member it joins through is believed, and it comes back
// above it. The same news from gossip stays implausible, and so does a
// handshake's beyond manager.MaxBelievedIncarnation, which would leave no
// room to refute.
func TestRestartAboveFarFetchedNewsThroughTheSeed(t *testing.T) {
	high := uint64(3 << 20)
	c := New(protocol.Member{Alias: "a", Addr: "a:1"}, LANConfig(), 1, simEpoch)
	c.bootstrap(simEpoch, []protocol.Member{member("b", protocol.StateAlive, 0)})
	c.Step(simEpoch, "b", &protocol.Gossip{Updates: []protocol.Member{member("a", protocol.StateLeft, high)}})
	if s := c.Self(); s.Incarnation != 0 {
		t.Fatalf("gossip of itself left at %d moved it to %d", high, s.Incarnation)
	}
	c.Merge(simEpoch, []protocol.Member{member("a", protocol.StateLeft, high), member("b", protocol.StateAlive, 0)})
	if s := c.Self(); s.Incarnation != high+1 || s.State != protocol.StateAlive {
		t.Fatalf("after the seed's table holding it left at %d: %s@%d, want alive@%d", high, s.State, s.Incarnation, high+1)
	}
	before := c.Stats().Implausible
	c.Merge(simEpoch, []protocol.Member{member("a", protocol.StateFailed, manager.MaxBelievedIncarnation+1)})
	if s := c.Self(); s.Incarnation != high+1 || c.Stats().Implausible != before+1 {
		t.Fatalf("after a handshake holding it failed at %d: self@%d, %d refusals counted", uint64(manager.MaxBelievedIncarnation+1), s.Incarnation, c.Stats().Implausible-before)
	}
	c.Merge(simEpoch, []protocol.Member{member("a", protocol.StateFailed, manager.MaxBelievedIncarnation)})
	if s := c.Self(); s.Incarnation != manager.MaxBelievedIncarnation+1 {
		t.Fatalf("at the bound: self@%d", s.Incarnation)
	}
}

// TestRefutationsToAllArePaced: the first refutation in a probe interval
// goes to every live member; forged news repeated within it is refuted by
// gossip only, so one frame cannot cost N−1 messages each time.
func TestRefutationsToAllArePaced(t *testing.T) {
	h := newHarness(t, LANConfig(), 20)
	told := func() int {
		to, gs := sent[*protocol.Gossip](h.drain())
		n := 0
		for i := range to {
			if slices.ContainsFunc(gs[i].Updates, func(m protocol.Member) bool { return m.Alias == "a" && m.State == protocol.StateAlive }) {
				n++
			}
		}
		return n
	}
	for i, tc := range []struct {
		advance time.Duration
		toAll   bool
	}{{0, true}, {0, false}, {0, false}, {LANConfig().ProbeInterval, true}} {
		h.advance(tc.advance)
		h.drain()
		inc := h.c.Self().Incarnation
		h.step("b", &protocol.Gossip{Updates: []protocol.Member{member("a", protocol.StateSuspect, inc)}})
		if got := h.c.Self().Incarnation; got != inc+1 {
			t.Fatalf("forgery %d: a at incarnation %d, want %d", i, got, inc+1)
		}
		n := told()
		h.advance(h.c.cfg.GossipInterval) // a push held back by the gossip interval goes
		n += told()
		switch {
		case tc.toAll && n < 20:
			t.Fatalf("forgery %d: refutation sent to %d members, want all 20", i, n)
		case !tc.toAll && n >= 20:
			t.Fatalf("forgery %d within the interval: refutation sent to %d members, want a gossip fan-out", i, n)
		}
	}
}

// TestPingReqFloodIsBounded: a member that sends PingReqs for an honest
// target as fast as it can gets at most maxRelaysPerOrigin relays run for
// it (each would ping the target), the rest nacked at once; many askers
// together get at most maxRelays. An honest asker still gets its relay,
// and relays that ended make room again.
func TestPingReqFloodIsBounded(t *testing.T) {
	h := newHarness(t, LANConfig(), 80)
	h.drain()
	for i := range 10_000 {
		h.step("b", &protocol.PingReq{Seq: uint32(i), Target: "c"})
	}
	out := h.drain()
	pingsTo, _ := sent[*protocol.Ping](out)
	nackTo, _ := sent[*protocol.Nack](out)
	if len(pingsTo) != maxRelaysPerOrigin || len(nackTo) != 10_000-maxRelaysPerOrigin {
		t.Fatalf("10,000 ping-reqs from b: %d pings, %d nacks; want %d pings", len(pingsTo), len(nackTo), maxRelaysPerOrigin)
	}
	if n := h.c.Stats().PingReqsOverCap; n != 10_000-maxRelaysPerOrigin {
		t.Fatalf("%d ping-reqs over the bound counted", n)
	}
	if len(h.c.relays) != maxRelaysPerOrigin {
		t.Fatalf("%d relays in flight", len(h.c.relays))
	}
	// d, honest, asks once: its relay runs.
	h.step("d", &protocol.PingReq{Seq: 1, Target: "c"})
	if to, _ := sent[*protocol.Ping](h.drain()); len(to) != 1 || to[0] != "c" {
		t.Fatalf("honest ping-req beside the flood: pings to %v", to)
	}
	// Many askers at once: the total bound.
	for i := range 80 {
		for j := range maxRelaysPerOrigin {
			h.step(peerName(i), &protocol.PingReq{Seq: uint32(1000 + j), Target: "e"})
		}
	}
	h.drain()
	if len(h.c.relays) != maxRelays {
		t.Fatalf("%d relays in flight, want the bound %d", len(h.c.relays), maxRelays)
	}
	// Once they time out (nacked), b is served again.
	h.advance(h.c.relayTimeout() + time.Millisecond)
	h.drain()
	h.step("b", &protocol.PingReq{Seq: 20_000, Target: "c"})
	if to, _ := sent[*protocol.Ping](h.drain()); len(to) != 1 {
		t.Fatalf("after the relays ended, b's ping-req sent %d pings", len(to))
	}
}

// TestPushPullFloodIsAnsweredAtMostOncePerHalfGap: every answer to a
// PushPull carries the whole table, so a member asking as fast as it can
// is answered at most once per half PushPullMinGap (its news still
// merged), and another member asking meanwhile is answered.
func TestPushPullFloodIsAnsweredAtMostOncePerHalfGap(t *testing.T) {
	h := newHarness(t, LANConfig(), 6)
	h.drain()
	for range 1000 {
		h.step("b", &protocol.PushPull{Members: []protocol.Member{member("b", protocol.StateAlive, 0)}})
	}
	to, _ := sent[*protocol.PushPull](h.drain())
	if len(to) != 1 || to[0] != "b" {
		t.Fatalf("1,000 push-pulls from b at once: answers to %v, want one", to)
	}
	if n := h.c.Stats().PushPullsUnanswered; n != 999 {
		t.Fatalf("%d unanswered push-pulls counted, want 999", n)
	}
	// Its news is still taken.
	h.step("b", &protocol.PushPull{Members: []protocol.Member{member("zz", protocol.StateAlive, 0)}})
	if st := h.state("zz"); st != protocol.StateAlive {
		t.Fatalf("news in an unanswered push-pull: zz %s", st)
	}
	h.step("c", &protocol.PushPull{})
	if to, _ := sent[*protocol.PushPull](h.drain()); len(to) != 1 || to[0] != "c" {
		t.Fatalf("c's push-pull beside b's flood: answers to %v", to)
	}
	h.advance(h.c.cfg.PushPullMinGap / 2)
	h.drain()
	h.step("b", &protocol.PushPull{})
	if to, _ := sent[*protocol.PushPull](h.drain()); len(to) != 1 || to[0] != "b" {
		t.Fatalf("b after half the gap: answers to %v", to)
	}
}
