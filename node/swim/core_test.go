package swim

import (
	"fmt"
	"math"
	"math/rand"
	"slices"
	"strings"
	"testing"
	"time"

	"meshell/protocol"
)

// harness drives one Core the way the node's driver does: Tick at
// NextDeadline, Step for messages, and collects what the Core produced.
type harness struct {
	t      *testing.T
	c      *Core
	now    time.Time
	out    []Outbound
	ev     []Event
	answer func(to string) bool // members that ack pings at once (nil: none)
	pinged map[uint32]bool      // probes nextPing returned
}

// ackAllBut makes every member but the listed ones answer pings at once.
func (h *harness) ackAllBut(silent ...string) {
	h.answer = func(to string) bool { return !slices.Contains(silent, to) }
}

// newHarness returns a Core "a" that knows peers b, c, d, … alive.
func newHarness(t *testing.T, cfg Config, peers int) *harness {
	t.Helper()
	c := New(protocol.Member{Alias: "a", Addr: "a:1"}, cfg, 1, simEpoch)
	ms := make([]protocol.Member, peers)
	for i := range ms {
		ms[i] = member(peerName(i), protocol.StateAlive, 0)
	}
	c.bootstrap(simEpoch, ms)
	return &harness{t: t, c: c, now: simEpoch}
}

func peerName(i int) string {
	if i < 25 {
		return string(rune('b' + i))
	}
	return fmt.Sprintf("p%03d", i)
}

func member(alias string, st protocol.State, inc uint64) protocol.Member {
	return protocol.Member{Alias: alias, Addr: alias + ":1", State: st, Incarnation: inc}
}

// withTags gives m the tags kv (key, value, …); none gives it an empty map.
func withTags(m protocol.Member, kv ...string) protocol.Member {
	m.Tags = map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m.Tags[kv[i]] = kv[i+1]
	}
	return m
}

func (h *harness) collect() {
	r := h.c.Ready()
	h.out = append(h.out, r.Msgs...)
	h.ev = append(h.ev, r.Events...)
	if h.answer == nil {
		return
	}
	for _, o := range r.Msgs {
		if p, ok := o.Msg.(*protocol.Ping); ok && h.answer(o.To) {
			h.c.Step(h.now, o.To, &protocol.Ack{Seq: p.Seq, Digest: h.c.table.Digest()})
			h.collect()
		}
	}
}

// advance moves the clock by d, ticking at every deadline on the way.
func (h *harness) advance(d time.Duration) {
	end := h.now.Add(d)
	for i := 0; ; i++ {
		if i > 100000 {
			h.t.Fatal("NextDeadline does not advance")
		}
		dl := h.c.NextDeadline(h.now)
		if dl.After(end) {
			break
		}
		if dl.After(h.now) {
			h.now = dl
		}
		h.c.Tick(h.now)
		h.collect()
	}
	h.now = end
}

// hearFailed makes the members failed here on from's word, as a real
// failure is heard: its suspicion first, then, a probe timeout later (the
// time the member had to refute), the verdict.
func (h *harness) hearFailed(from string, aliases ...string) {
	var sus, failed []protocol.Member
	for _, a := range aliases {
		sus = append(sus, member(a, protocol.StateSuspect, 0))
		failed = append(failed, member(a, protocol.StateFailed, 0))
	}
	h.step(from, &protocol.Gossip{Updates: sus})
	h.now = h.now.Add(h.c.cfg.ProbeTimeout)
	h.step(from, &protocol.Gossip{Updates: failed})
}

func (h *harness) step(from string, m protocol.Message) {
	h.c.Step(h.now, from, m)
	h.collect()
}

// drain returns and forgets the messages sent so far.
func (h *harness) drain() []Outbound {
	o := h.out
	h.out = nil
	return o
}

// events returns and forgets the events so far.
func (h *harness) events() []Event {
	e := h.ev
	h.ev = nil
	return e
}

// nextPing advances until the Core sends a Ping of a new probe (not a
// resend of one returned before) and returns it.
func (h *harness) nextPing() (string, *protocol.Ping) {
	h.t.Helper()
	if h.pinged == nil {
		h.pinged = map[uint32]bool{}
	}
	for i := 0; i < 2000; i++ {
		for _, o := range h.drain() {
			if p, ok := o.Msg.(*protocol.Ping); ok && !h.pinged[p.Seq] {
				h.pinged[p.Seq] = true
				return o.To, p
			}
		}
		h.advance(time.Millisecond)
	}
	h.t.Fatal("no ping within 2s")
	return "", nil
}

func (h *harness) state(alias string) protocol.State {
	e, ok := h.c.Get(alias)
	if !ok {
		return protocol.StateUnknown
	}
	return e.State
}

// sent returns the messages of type T in out, with their recipients.
func sent[T protocol.Message](out []Outbound) (to []string, msgs []T) {
	for _, o := range out {
		if m, ok := o.Msg.(T); ok {
			to = append(to, o.To)
			msgs = append(msgs, m)
		}
	}
	return to, msgs
}

func kinds(ev []Event) []string {
	var out []string
	for _, e := range ev {
		out = append(out, e.Kind.String()+" "+e.Member.Alias)
	}
	return out
}

func hasUpdate(us []protocol.Member, alias string, st protocol.State, inc uint64) bool {
	return slices.ContainsFunc(us, func(m protocol.Member) bool {
		return m.Alias == alias && m.State == st && m.Incarnation == inc
	})
}

func TestDirectAck(t *testing.T) {
	h := newHarness(t, LANConfig(), 5)
	target, ping := h.nextPing()
	h.advance(3 * time.Millisecond)
	h.step(target, &protocol.Ack{Seq: ping.Seq, Digest: h.c.table.Digest()})
	h.advance(h.c.cfg.ProbeInterval - 10*time.Millisecond)
	if to, _ := sent[*protocol.PingReq](h.drain()); len(to) != 0 {
		t.Fatalf("acked probe still sent ping-reqs to %v", to)
	}
	// nextPing found the ping up to 1ms after it was sent.
	if e, _ := h.c.Get(target); e.RTT <= 3*time.Millisecond || e.RTT > 4*time.Millisecond || e.State != protocol.StateAlive {
		t.Fatalf("target %s: RTT %v state %s, want 3–4ms alive", target, e.RTT, e.State)
	}
	if ev := h.events(); len(ev) != 0 {
		t.Fatalf("events %v", kinds(ev))
	}
}

func TestIndirectAckViaRelay(t *testing.T) {
	h := newHarness(t, LANConfig(), 5)
	target, ping := h.nextPing()
	h.advance(h.c.cfg.ProbeTimeout)
	relays, reqs := sent[*protocol.PingReq](h.drain())
	if len(reqs) != h.c.cfg.IndirectChecks {
		t.Fatalf("%d ping-reqs after the probe timeout, want %d", len(reqs), h.c.cfg.IndirectChecks)
	}
	for i, r := range reqs {
		if r.Seq != ping.Seq || r.Target != target || r.Addr != target+":1" || relays[i] == target {
			t.Fatalf("ping-req %+v to %s for probe %d of %s", r, relays[i], ping.Seq, target)
		}
	}
	if len(slices.Compact(slices.Sorted(slices.Values(relays)))) != len(relays) {
		t.Fatalf("relays not distinct: %v", relays)
	}
	h.step(relays[1], &protocol.Ack{Seq: ping.Seq, Digest: h.c.table.Digest()})
	h.advance(2 * h.c.cfg.ProbeInterval)
	if st := h.state(target); st != protocol.StateAlive {
		t.Fatalf("target %s after a relayed ack", st)
	}
	if e, _ := h.c.Get(target); e.RTT != 0 {
		t.Fatalf("a relayed ack recorded RTT %v", e.RTT)
	}
}

func TestRelay(t *testing.T) {
	t.Run("ack is forwarded with the original seq", func(t *testing.T) {
		h := newHarness(t, LANConfig(), 5)
		h.step("b", &protocol.PingReq{Seq: 77, Target: "c", Addr: "c:1"})
		to, pings := sent[*protocol.Ping](h.drain())
		if len(pings) != 1 || to[0] != "c" {
			t.Fatalf("relay pinged %v", to)
		}
		h.step("c", &protocol.Ack{Seq: pings[0].Seq, Digest: h.c.table.Digest()})
		to, acks := sent[*protocol.Ack](h.drain())
		if len(acks) != 1 || to[0] != "b" || acks[0].Seq != 77 {
			t.Fatalf("forwarded %v to %v, want Ack{77} to b", acks, to)
		}
	})
	t.Run("nack on timeout", func(t *testing.T) {
		h := newHarness(t, LANConfig(), 5)
		h.step("b", &protocol.PingReq{Seq: 78, Target: "c", Addr: "c:1"})
		h.advance(h.c.cfg.ProbeTimeout)
		to, nacks := sent[*protocol.Nack](h.drain())
		if len(nacks) != 1 || to[0] != "b" || nacks[0].Seq != 78 || nacks[0].Refused {
			t.Fatalf("sent %v to %v, want Nack{78} to b", nacks, to)
		}
	})
	t.Run("refused dial nacks at once", func(t *testing.T) {
		h := newHarness(t, LANConfig(), 5)
		h.step("b", &protocol.PingReq{Seq: 79, Target: "c", Addr: "c:1"})
		h.c.DialFailed(h.now, "c", true)
		h.collect()
		to, nacks := sent[*protocol.Nack](h.drain())
		if len(nacks) != 1 || to[0] != "b" || !nacks[0].Refused {
			t.Fatalf("sent %v to %v, want Nack{Refused} to b", nacks, to)
		}
	})
}

// TestLostPingIsSentAgain: a ping unanswered for half the probe timeout
// is sent again with the same sequence number, until the probe ends; an ack
// to the resend completes the probe before any relay is asked, and records
// no RTT, since it cannot tell which copy it answers.
func TestLostPingIsSentAgain(t *testing.T) {
	h := newHarness(t, LANConfig(), 5)
	target, ping := h.nextPing()
	every := h.c.cfg.ProbeTimeout / 2
	h.advance(every - time.Millisecond)
	if to, _ := sent[*protocol.Ping](h.drain()); len(to) != 0 {
		t.Fatalf("pinged %v again before %v", to, every)
	}
	h.advance(time.Millisecond)
	to, pings := sent[*protocol.Ping](h.drain())
	if len(pings) != 1 || to[0] != target || pings[0].Seq != ping.Seq {
		t.Fatalf("after %v sent pings %v to %v, want seq %d to %s", every, pings, to, ping.Seq, target)
	}
	h.step(target, &protocol.Ack{Seq: ping.Seq, Digest: h.c.table.Digest()})
	h.advance(h.c.cfg.ProbeInterval - every - 10*time.Millisecond)
	out := h.drain()
	if to, _ := sent[*protocol.PingReq](out); len(to) != 0 {
		t.Fatalf("acked resend still sent ping-reqs to %v", to)
	}
	if to, pings := sent[*protocol.Ping](out); slices.ContainsFunc(pings, func(p *protocol.Ping) bool { return p.Seq == ping.Seq }) {
		t.Fatalf("acked ping sent again to %v", to)
	}
	if e, _ := h.c.Get(target); e.RTT != 0 || e.State != protocol.StateAlive {
		t.Fatalf("target %s: RTT %v state %s, want no RTT, alive", target, e.RTT, e.State)
	}

	// Unanswered, the ping goes every half timeout for the whole probe,
	// beside the indirect round, and no more after the verdict.
	target, ping = h.nextPing()
	h.advance(2 * h.c.cfg.ProbeInterval)
	n := 0
	for _, o := range h.drain() {
		if p, ok := o.Msg.(*protocol.Ping); ok && p.Seq == ping.Seq {
			if o.To != target {
				t.Fatalf("ping %d sent to %s, not %s", p.Seq, o.To, target)
			}
			n++
		}
	}
	if want := int(h.c.cfg.ProbeInterval/every) - 1; n != want {
		t.Fatalf("unanswered ping sent again %d times, want %d", n, want)
	}
}

// TestRelayPingIsSentAgain: a relay resends its ping once its half
// timeout passes, and the ack to the resend still reaches the originator.
func TestRelayPingIsSentAgain(t *testing.T) {
	h := newHarness(t, LANConfig(), 5)
	h.step("b", &protocol.PingReq{Seq: 80, Target: "c", Addr: "c:1"})
	_, first := sent[*protocol.Ping](h.drain())
	h.advance(h.c.cfg.ProbeTimeout / 2)
	to, again := sent[*protocol.Ping](h.drain())
	if len(again) != 1 || to[0] != "c" || again[0].Seq != first[0].Seq {
		t.Fatalf("relay sent %v to %v, want its ping %d to c again", again, to, first[0].Seq)
	}
	h.step("c", &protocol.Ack{Seq: first[0].Seq, Digest: h.c.table.Digest()})
	to, acks := sent[*protocol.Ack](h.drain())
	if len(acks) != 1 || to[0] != "b" || acks[0].Seq != 80 {
		t.Fatalf("forwarded %v to %v, want Ack{80} to b", acks, to)
	}
	h.advance(h.c.cfg.ProbeTimeout)
	if to, m := sent[*protocol.Nack](h.drain()); len(m) != 0 {
		t.Fatalf("answered relay also nacked %v", to)
	}
}

func TestSuspectAfterNoAck(t *testing.T) {
	h := newHarness(t, LANConfig(), 5)
	target, ping := h.nextPing()
	h.advance(h.c.cfg.ProbeTimeout)
	relays, _ := sent[*protocol.PingReq](h.drain())
	for _, r := range relays {
		h.step(r, &protocol.Nack{Seq: ping.Seq})
	}
	h.advance(h.c.cfg.ProbeInterval - h.c.cfg.ProbeTimeout)
	if st := h.state(target); st != protocol.StateSuspect {
		t.Fatalf("target %s, want suspect", st)
	}
	if got := kinds(h.events()); !slices.Equal(got, []string{"member-suspect " + target}) {
		t.Fatalf("events %v", got)
	}
	to, gossips := sent[*protocol.Gossip](h.drain())
	if !slices.Contains(to, target) {
		t.Fatalf("the suspect itself was not told (gossip to %v)", to)
	}
	if len(to) != h.c.cfg.GossipFanout+1 {
		t.Fatalf("gossip to %v, want fanout %d plus the suspect", to, h.c.cfg.GossipFanout)
	}
	for _, g := range gossips {
		if len(g.Updates) != 1 || g.Updates[0].State != protocol.StateSuspect || g.Updates[0].Accuser != "a" {
			t.Fatalf("gossip %+v", g.Updates)
		}
	}
	if a := h.c.Awareness(); a != 0 {
		t.Fatalf("awareness %d after nacked probe, want 0", a)
	}
}

func TestSuspicionTimeoutFormula(t *testing.T) {
	const min, max = time.Second, 3 * time.Second
	cases := []struct {
		k, n int
		want time.Duration
	}{
		{3, 0, max},
		{3, 1, max - time.Duration(float64(max-min)*math.Log(2)/math.Log(4))},
		{3, 2, max - time.Duration(float64(max-min)*math.Log(3)/math.Log(4))},
		{3, 3, min},
		{0, 0, min}, // nobody to confirm: min at once
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("k=%d,C=%d", c.k, c.n), func(t *testing.T) {
			s := newSuspicion(simEpoch, 0, "x", c.k, min, max, 1)
			for i := 0; i < c.n; i++ {
				if !s.confirm(fmt.Sprintf("y%d", i)) {
					t.Fatalf("confirmation %d not counted", i)
				}
			}
			if got := s.deadline.Sub(simEpoch); got != c.want {
				t.Fatalf("timeout %v, want %v", got, c.want)
			}
			if s.confirm("x") || (c.n > 0 && s.confirm("y0")) {
				t.Fatal("a repeated accuser counted twice")
			}
		})
	}
}

// suspectNews makes h hear that target is suspect from accuser b and
// answers the out-of-turn probe, if the news started one (so that its own
// probe does not count as a confirmation); it returns when h heard.
func suspectNews(h *harness, target string) time.Time {
	h.step("b", &protocol.Gossip{Updates: []protocol.Member{{Alias: target, Addr: target + ":1", State: protocol.StateSuspect, Accuser: "b"}}})
	to, pings := sent[*protocol.Ping](h.drain())
	for i, p := range pings {
		if to[i] == target {
			h.step(target, &protocol.Ack{Seq: p.Seq, Digest: h.c.table.Digest()})
		}
	}
	return h.now
}

// TestNewsOfASuspicionIsCheckedByK: of the members that hear that b
// suspects c, exactly IndirectChecks probe c out of turn, with a ping that
// carries the suspicion (so that c refutes it if it is alive), whatever the
// cluster's size.
func TestNewsOfASuspicionIsCheckedByK(t *testing.T) {
	cfg := LANConfig()
	for _, n := range []int{4, 11, 60} {
		var all []protocol.Member
		for i := 0; i < n; i++ {
			all = append(all, member(fmt.Sprintf("m%02d", i), protocol.StateAlive, 0))
		}
		target, accuser := all[1].Alias, all[0].Alias
		probers := 0
		for i := 2; i < n; i++ {
			c := New(all[i], cfg, int64(i), simEpoch)
			c.bootstrap(simEpoch, all)
			c.Ready()
			c.Step(simEpoch, accuser, &protocol.Gossip{Updates: []protocol.Member{{Alias: target, Addr: target + ":1", State: protocol.StateSuspect, Accuser: accuser}}})
			for _, o := range c.Ready().Msgs {
				if p, ok := o.Msg.(*protocol.Ping); ok && o.To == target && hasUpdate(p.Updates, target, protocol.StateSuspect, 0) {
					probers++
				}
			}
		}
		if want := min(cfg.IndirectChecks, n-2); probers != want {
			t.Errorf("N=%d: %d members probed the suspect on the news, want %d", n, probers, want)
		}
	}
}

func TestFailedAfterSuspicionTimeout(t *testing.T) {
	cfg := LANConfig()
	// 11 members: min = 4 × log10(11) × 200ms, max = 3 × min, K = 3.
	n := 11.0
	min := time.Duration(float64(cfg.SuspicionMult) * math.Log10(n) * float64(cfg.ProbeInterval))
	max := time.Duration(cfg.SuspicionMaxMult) * min

	t.Run("no confirmation: max", func(t *testing.T) {
		h := newHarness(t, cfg, 10)
		h.ackAllBut() // c acks pings (so no own confirmation) but does not refute
		start := suspectNews(h, "c")
		h.advance(max - time.Millisecond)
		if st := h.state("c"); st != protocol.StateSuspect {
			t.Fatalf("c %s before the max timeout", st)
		}
		h.advance(time.Millisecond)
		if st := h.state("c"); st != protocol.StateFailed {
			t.Fatalf("c %s %v after the news, want failed at %v", st, h.now.Sub(start), max)
		}
		if got := kinds(h.events()); !slices.Equal(got, []string{"member-suspect c", "member-failed c"}) {
			t.Fatalf("events %v", got)
		}
	})
	t.Run("dogpile: K confirmations shorten it to min", func(t *testing.T) {
		h := newHarness(t, cfg, 10)
		h.ackAllBut() // c acks pings (so no own confirmation) but does not refute
		suspectNews(h, "c")
		for _, accuser := range []string{"d", "e", "d", "f"} {
			h.step(accuser, &protocol.Gossip{Updates: []protocol.Member{{Alias: "c", Addr: "c:1", State: protocol.StateSuspect, Accuser: accuser}}})
		}
		h.advance(min - time.Millisecond)
		if st := h.state("c"); st != protocol.StateSuspect {
			t.Fatalf("c %s before min", st)
		}
		h.advance(time.Millisecond)
		if st := h.state("c"); st != protocol.StateFailed {
			t.Fatalf("c %s at min after 3 confirmations", st)
		}
	})
	t.Run("one confirmation: in between", func(t *testing.T) {
		h := newHarness(t, cfg, 10)
		h.ackAllBut() // c acks pings (so no own confirmation) but does not refute
		suspectNews(h, "c")
		h.step("d", &protocol.Gossip{Updates: []protocol.Member{{Alias: "c", Addr: "c:1", State: protocol.StateSuspect, Accuser: "d"}}})
		want := max - time.Duration(float64(max-min)*math.Log(2)/math.Log(4))
		h.advance(want - time.Millisecond)
		if st := h.state("c"); st != protocol.StateSuspect {
			t.Fatalf("c %s early", st)
		}
		h.advance(time.Millisecond)
		if st := h.state("c"); st != protocol.StateFailed {
			t.Fatalf("c %s at %v", st, want)
		}
	})
	t.Run("refutation cancels it", func(t *testing.T) {
		h := newHarness(t, cfg, 10)
		h.ackAllBut() // c acks pings (so no own confirmation) but does not refute
		suspectNews(h, "c")
		h.step("c", &protocol.Gossip{Updates: []protocol.Member{member("c", protocol.StateAlive, 1)}})
		h.advance(2 * max)
		if st := h.state("c"); st != protocol.StateAlive {
			t.Fatalf("c %s after refuting", st)
		}
		if got := kinds(h.events()); !slices.Equal(got, []string{"member-suspect c", "member-alive c"}) {
			t.Fatalf("events %v", got)
		}
	})
}

func TestOwnFailedProbeConfirms(t *testing.T) {
	h := newHarness(t, LANConfig(), 10)
	// e: one of the three members (a among them) that check news about it.
	h.step("b", &protocol.Gossip{Updates: []protocol.Member{{Alias: "e", Addr: "e:1", State: protocol.StateSuspect, Accuser: "b"}}})
	h.drain()
	h.advance(h.c.cfg.ProbeInterval) // nobody answers the out-of-turn probe
	_, gossips := sent[*protocol.Gossip](h.drain())
	confirmed := slices.ContainsFunc(gossips, func(g *protocol.Gossip) bool {
		return slices.ContainsFunc(g.Updates, func(m protocol.Member) bool {
			return m.Alias == "e" && m.State == protocol.StateSuspect && m.Accuser == "a"
		})
	})
	if !confirmed {
		t.Fatal("own failed probe of a suspect was not gossiped as a confirmation")
	}
	if s := h.c.suspicions["e"]; s == nil || s.n != 1 {
		t.Fatalf("suspicion %+v, want one confirmation", s)
	}
}

func TestRefutation(t *testing.T) {
	cases := []struct {
		name    string
		news    protocol.Member
		wantInc uint64
		correct bool // the sender is sent our entry
	}{
		{"suspect at own incarnation", member("a", protocol.StateSuspect, 0), 1, true},
		{"failed at a higher incarnation", member("a", protocol.StateFailed, 5), 6, true},
		{"left while not leaving", member("a", protocol.StateLeft, 0), 1, true},
		{"alive at a later incarnation (restart)", member("a", protocol.StateAlive, 3), 4, true},
		{"alive at own incarnation", member("a", protocol.StateAlive, 0), 0, false},
		{"alive at own incarnation with an earlier run's tags", withTags(member("a", protocol.StateAlive, 0), "boot", "0ld"), 1, true},
		{"alive at own incarnation with its own (empty) tags", withTags(member("a", protocol.StateAlive, 0)), 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, LANConfig(), 6)
			h.step("b", &protocol.Gossip{Updates: []protocol.Member{c.news}})
			self := h.c.Self()
			if self.Incarnation != c.wantInc || self.State != protocol.StateAlive {
				t.Fatalf("self %s@%d, want alive@%d", self.State, self.Incarnation, c.wantInc)
			}
			to, gossips := sent[*protocol.Gossip](h.drain())
			told := slices.Contains(to, "b")
			if told != c.correct {
				t.Fatalf("sender told = %v, want %v (gossip to %v)", told, c.correct, to)
			}
			if c.wantInc > 0 {
				if len(to) < h.c.cfg.GossipFanout || !hasUpdate(gossips[0].Updates, "a", protocol.StateAlive, c.wantInc) {
					t.Fatalf("refutation not gossiped: %v", to)
				}
				if h.c.Stats().Refutations != 1 {
					t.Fatal("refutation not counted")
				}
			}
		})
	}
	t.Run("stale news is corrected, not refuted", func(t *testing.T) {
		h := newHarness(t, LANConfig(), 6)
		h.step("b", &protocol.Gossip{Updates: []protocol.Member{member("a", protocol.StateSuspect, 0)}})
		h.drain()
		h.step("c", &protocol.Ping{Seq: 5, Updates: []protocol.Member{member("a", protocol.StateSuspect, 0)}})
		to, acks := sent[*protocol.Ack](h.drain())
		if h.c.Self().Incarnation != 1 || len(acks) != 1 || to[0] != "c" || !hasUpdate(acks[0].Updates, "a", protocol.StateAlive, 1) {
			t.Fatalf("stale news: self@%d, ack %+v", h.c.Self().Incarnation, acks)
		}
	})
	t.Run("own tags at own incarnation are not refuted", func(t *testing.T) {
		h := newHarness(t, LANConfig(), 6)
		h.c.SetTags(h.now, map[string]string{"boot": "n3w"})
		h.collect()
		h.drain()
		self := h.c.Self()
		h.step("b", &protocol.Gossip{Updates: []protocol.Member{self}})
		if got := h.c.Self().Incarnation; got != self.Incarnation {
			t.Fatalf("own entry refuted: incarnation %d, want %d", got, self.Incarnation)
		}
	})
	t.Run("a peer that restarted is told of its earlier run", func(t *testing.T) {
		h := newHarness(t, LANConfig(), 6)
		h.step("b", &protocol.Gossip{Updates: []protocol.Member{withTags(member("b", protocol.StateAlive, 1), "boot", "0ld")}})
		h.drain()
		h.c.Connected(h.now, withTags(member("b", protocol.StateAlive, 1), "boot", "n3w"))
		h.collect()
		to, gossips := sent[*protocol.Gossip](h.drain())
		if i := slices.Index(to, "b"); i < 0 || !hasUpdate(gossips[i].Updates, "b", protocol.StateAlive, 1) {
			t.Fatalf("the new run of b was not sent the earlier run's entry: gossip to %v", to)
		}
		if e, _ := h.c.Get("b"); e.Tags["boot"] != "0ld" {
			t.Fatalf("b's tags %v: at one incarnation alive news changes nothing until b refutes", e.Tags)
		}
	})
	t.Run("only the node refutes", func(t *testing.T) {
		h := newHarness(t, LANConfig(), 6)
		h.step("b", &protocol.Gossip{Updates: []protocol.Member{member("c", protocol.StateSuspect, 0)}})
		if e, _ := h.c.Get("c"); e.State != protocol.StateSuspect || e.Incarnation != 0 {
			t.Fatalf("c %s@%d", e.State, e.Incarnation)
		}
		h.step("d", &protocol.Gossip{Updates: []protocol.Member{member("c", protocol.StateAlive, 0)}})
		if st := h.state("c"); st != protocol.StateSuspect {
			t.Fatalf("alive news at the same incarnation cleared a suspicion: %s", st)
		}
	})
}

func TestAwareness(t *testing.T) {
	h := newHarness(t, LANConfig(), 6)
	cfg := h.c.cfg
	// A probe that nobody answers, not even with a nack.
	_, ping := h.nextPing()
	h.advance(cfg.ProbeInterval)
	want := 1
	if a := h.c.Awareness(); a != want {
		t.Fatalf("awareness %d after an unanswered probe, want %d", a, want)
	}
	// The next probe waits (score+1)× as long before its indirect round.
	_, ping2 := h.nextPing()
	if ping2.Seq == ping.Seq {
		t.Fatal("same probe")
	}
	h.advance(time.Duration(want) * cfg.ProbeTimeout)
	if to, _ := sent[*protocol.PingReq](h.drain()); len(to) != 0 {
		t.Fatalf("ping-reqs after %v at awareness %d", time.Duration(want)*cfg.ProbeTimeout, want)
	}
	h.advance(cfg.ProbeTimeout)
	if to, _ := sent[*protocol.PingReq](h.drain()); len(to) != cfg.IndirectChecks {
		t.Fatalf("%d ping-reqs after %d×timeout at awareness %d", len(to), want+1, want)
	}
	// It gets acked: health recovers by one.
	h.step("b", &protocol.Ack{Seq: ping2.Seq, Digest: h.c.table.Digest()})
	if a := h.c.Awareness(); a != want-1 {
		t.Fatalf("awareness %d after a successful probe, want %d", a, want-1)
	}
	for h.c.Awareness() > 0 { // later successful probes bring it to 0
		to, p := h.nextPing()
		h.step(to, &protocol.Ack{Seq: p.Seq, Digest: h.c.table.Digest()})
	}
	// A late tick (CPU starvation) raises it.
	d := h.c.NextDeadline(h.now)
	h.now = d.Add(2 * cfg.ProbeTimeout)
	h.c.Tick(h.now)
	h.collect()
	if a, late := h.c.Awareness(), h.c.Stats().LateTicks; a != 1 || late != 1 {
		t.Fatalf("awareness %d, late ticks %d after a tick late by 2×timeout", a, late)
	}
	// It is clamped.
	for i := 0; i < 20; i++ {
		h.c.aware.apply(1)
	}
	if a := h.c.Awareness(); a != cfg.AwarenessMax {
		t.Fatalf("awareness %d, max %d", a, cfg.AwarenessMax)
	}
}

func TestLateTickGivesGrace(t *testing.T) {
	h := newHarness(t, LANConfig(), 6)
	target, ping := h.nextPing()
	// The driver was starved: its next call comes a second late. The ack
	// is already in its inbox; reading it must not follow an accusation.
	h.now = h.now.Add(time.Second)
	h.c.Tick(h.now)
	h.collect()
	if st := h.state(target); st != protocol.StateAlive {
		t.Fatalf("starved node accused %s on its first tick back", target)
	}
	h.step(target, &protocol.Ack{Seq: ping.Seq, Digest: h.c.table.Digest()})
	h.advance(time.Second)
	if st := h.state(target); st != protocol.StateAlive {
		t.Fatalf("target %s", st)
	}
}

func TestHardEvidenceFastPath(t *testing.T) {
	t.Run("refused everywhere: failed at once", func(t *testing.T) {
		h := newHarness(t, LANConfig(), 6)
		h.c.ConnLost(h.now, "c")
		h.collect()
		to, pings := sent[*protocol.Ping](h.drain())
		if len(pings) != 1 || to[0] != "c" {
			t.Fatalf("lost connection: pinged %v, want c at once", to)
		}
		h.c.DialFailed(h.now, "c", true)
		h.collect()
		relays, reqs := sent[*protocol.PingReq](h.drain())
		if len(reqs) != 3 {
			t.Fatalf("refused dial: %d ping-reqs at once, want 3", len(reqs))
		}
		for i, r := range relays {
			h.step(r, &protocol.Nack{Seq: reqs[i].Seq, Refused: true})
			if st := h.state("c"); (i < len(relays)-1) != (st == protocol.StateAlive) {
				t.Fatalf("after %d refused nacks c is %s", i+1, st)
			}
		}
		if got := kinds(h.events()); !slices.Equal(got, []string{"member-failed c"}) {
			t.Fatalf("events %v, want one failed and no suspect", got)
		}
		if h.c.Stats().FailedFast != 1 {
			t.Fatal("fast failure not counted")
		}
	})
	t.Run("a relay that is not refused: suspect", func(t *testing.T) {
		h := newHarness(t, LANConfig(), 6)
		h.c.ConnLost(h.now, "c")
		h.c.DialFailed(h.now, "c", true)
		h.collect()
		relays, reqs := sent[*protocol.PingReq](h.drain())
		h.step(relays[0], &protocol.Nack{Seq: reqs[0].Seq, Refused: true})
		h.step(relays[1], &protocol.Nack{Seq: reqs[1].Seq}) // timed out: maybe alive
		h.step(relays[2], &protocol.Nack{Seq: reqs[2].Seq, Refused: true})
		if st := h.state("c"); st != protocol.StateAlive {
			t.Fatalf("c %s", st)
		}
		h.advance(h.c.cfg.ProbeInterval)
		if st := h.state("c"); st != protocol.StateSuspect {
			t.Fatalf("c %s, want suspect", st)
		}
	})
	t.Run("relays that never answer: refused ones decide at the end", func(t *testing.T) {
		h := newHarness(t, LANConfig(), 6)
		h.c.ConnLost(h.now, "c")
		h.c.DialFailed(h.now, "c", true)
		h.collect()
		relays, reqs := sent[*protocol.PingReq](h.drain())
		h.step(relays[0], &protocol.Nack{Seq: reqs[0].Seq, Refused: true})
		h.advance(h.c.cfg.ProbeInterval)
		if st := h.state("c"); st != protocol.StateFailed {
			t.Fatalf("c %s, want failed", st)
		}
	})
	t.Run("no relay at all", func(t *testing.T) {
		h := newHarness(t, LANConfig(), 1)
		h.c.ConnLost(h.now, "b")
		h.c.DialFailed(h.now, "b", true)
		h.collect()
		if st := h.state("b"); st != protocol.StateFailed {
			t.Fatalf("b %s, want failed", st)
		}
	})
	t.Run("relay unreachable is not waited for", func(t *testing.T) {
		h := newHarness(t, LANConfig(), 4)
		h.c.ConnLost(h.now, "c")
		h.c.DialFailed(h.now, "c", true)
		h.collect()
		relays, reqs := sent[*protocol.PingReq](h.drain())
		h.c.DialFailed(h.now, relays[0], true) // that relay is gone too
		h.step(relays[1], &protocol.Nack{Seq: reqs[1].Seq, Refused: true})
		h.step(relays[2], &protocol.Nack{Seq: reqs[2].Seq, Refused: true})
		if st := h.state("c"); st != protocol.StateFailed {
			t.Fatalf("c %s, want failed", st)
		}
	})
	t.Run("a dial that times out is not hard evidence", func(t *testing.T) {
		h := newHarness(t, LANConfig(), 6)
		h.c.ConnLost(h.now, "c")
		h.c.DialFailed(h.now, "c", false)
		h.collect()
		relays, reqs := sent[*protocol.PingReq](h.drain())
		for i, r := range relays {
			h.step(r, &protocol.Nack{Seq: reqs[i].Seq, Refused: true})
		}
		if st := h.state("c"); st != protocol.StateAlive {
			t.Fatalf("c %s before the end of the probe", st)
		}
	})
}

func TestLeave(t *testing.T) {
	t.Run("leaver tells every live member and stops", func(t *testing.T) {
		h := newHarness(t, LANConfig(), 6)
		h.hearFailed("b", "g")
		h.drain()
		h.c.Leave(h.now)
		h.collect()
		to, leaves := sent[*protocol.Leave](h.drain())
		if !slices.Equal(to, []string{"b", "c", "d", "e", "f"}) || leaves[0].Alias != "a" {
			t.Fatalf("leave sent to %v, want every live member", to)
		}
		if st := h.c.Self().State; st != protocol.StateLeft {
			t.Fatalf("self %s", st)
		}
		h.step("b", &protocol.Gossip{Updates: []protocol.Member{member("a", protocol.StateSuspect, 0)}})
		h.advance(5 * time.Second)
		if out := h.drain(); len(out) != 0 {
			t.Fatalf("a left node sent %d messages (first %T to %s)", len(out), out[0].Msg, out[0].To)
		}
		h.step("c", &protocol.Ping{Seq: 9})
		to, acks := sent[*protocol.Ack](h.drain())
		if len(acks) != 1 || to[0] != "c" || !hasUpdate(acks[0].Updates, "a", protocol.StateLeft, 0) {
			t.Fatalf("a left node answers a ping with %v", acks)
		}
		h.c.Rejoin(h.now, "127.0.0.1:9999")
		h.collect()
		if s := h.c.Self(); s.State != protocol.StateAlive || s.Incarnation != 1 || s.Addr != "127.0.0.1:9999" {
			t.Fatalf("rejoined as %s@%d at %s, want alive@1 at the new address", s.State, s.Incarnation, s.Addr)
		}
		// Started again, it is a cluster of its own: it forgot the members
		// of the cluster it left when it left, and neither probes nor
		// re-dials them.
		if ms := h.c.table.Members(); len(ms) != 1 || ms[0].Alias != "a" {
			t.Fatalf("after starting again the table holds %v, want this node alone", ms)
		}
		h.advance(30 * time.Second)
		if out := h.drain(); len(out) != 0 {
			t.Fatalf("a node started again sent %d messages (first %T to %s) to the cluster it left", len(out), out[0].Msg, out[0].To)
		}
	})
	t.Run("receiver marks left, never failed, and reaps it", func(t *testing.T) {
		cfg := LANConfig()
		cfg.LeftReap = 10 * time.Second
		h := newHarness(t, cfg, 6)
		h.ackAllBut("c")
		h.step("c", &protocol.Leave{Alias: "c"})
		if st := h.state("c"); st != protocol.StateLeft {
			t.Fatalf("c %s", st)
		}
		if to, _ := sent[*protocol.Gossip](h.drain()); len(to) != cfg.GossipFanout {
			t.Fatalf("leave re-gossiped to %v", to)
		}
		h.c.ConnLost(h.now, "c")
		h.step("d", &protocol.Gossip{Updates: []protocol.Member{member("c", protocol.StateFailed, 0)}})
		h.advance(cfg.LeftReap - time.Millisecond)
		if st := h.state("c"); st != protocol.StateLeft {
			t.Fatalf("c %s", st)
		}
		h.advance(time.Millisecond)
		if _, ok := h.c.Get("c"); ok {
			t.Fatal("left member not reaped")
		}
		if got := kinds(h.events()); !slices.Equal(got, []string{"member-leave c", "member-reap c"}) {
			t.Fatalf("events %v", got)
		}
	})
}

func TestRetransmitLimit(t *testing.T) {
	for _, peers := range []int{9, 99} {
		n := peers + 1
		want := LANConfig().RetransmitMult * int(math.Ceil(math.Log10(float64(n+1))))
		t.Run(fmt.Sprintf("N=%d", n), func(t *testing.T) {
			h := newHarness(t, LANConfig(), peers)
			h.c.SetTags(h.now, map[string]string{"role": "worker"})
			h.collect()
			h.drain()
			carried := 0
			for i := 0; i < 3*want; i++ {
				h.step("b", &protocol.Ping{Seq: uint32(i)})
				_, acks := sent[*protocol.Ack](h.drain())
				if hasUpdate(acks[0].Updates, "a", protocol.StateAlive, 1) {
					carried++
				}
			}
			if carried != want {
				t.Fatalf("update carried by %d acks, want λ·⌈log10(N+1)⌉ = %d", carried, want)
			}
		})
	}
	t.Run("queue bound drops the oldest", func(t *testing.T) {
		cfg := LANConfig()
		cfg.QueueLimit = 3
		h := newHarness(t, cfg, 3)
		var joins []protocol.Member
		for i := 1; i <= 5; i++ {
			joins = append(joins, member(fmt.Sprintf("x%d", i), protocol.StateAlive, 0))
		}
		h.step("b", &protocol.Gossip{Updates: joins})
		if d := h.c.Stats().QueueDropped; d != 2 {
			t.Fatalf("dropped %d, want 2", d)
		}
		h.drain()
		h.step("b", &protocol.Ping{Seq: 1})
		_, acks := sent[*protocol.Ack](h.drain())
		var got []string
		for _, m := range acks[0].Updates {
			got = append(got, m.Alias)
		}
		if !slices.Equal(got, []string{"x5", "x4", "x3"}) {
			t.Fatalf("piggybacked %v, want the newest three, newest first", got)
		}
	})
	t.Run("piggyback is bounded", func(t *testing.T) {
		h := newHarness(t, LANConfig(), 3)
		var joins []protocol.Member
		for i := 0; i < 20; i++ {
			joins = append(joins, member(fmt.Sprintf("x%02d", i), protocol.StateAlive, 0))
		}
		h.step("b", &protocol.Gossip{Updates: joins})
		h.step("b", &protocol.Ping{Seq: 1})
		_, acks := sent[*protocol.Ack](h.drain())
		if len(acks[0].Updates) != h.c.cfg.MaxPiggyback {
			t.Fatalf("%d updates on one ack, want %d", len(acks[0].Updates), h.c.cfg.MaxPiggyback)
		}
	})
}

func TestDigestMismatchTriggersPushPull(t *testing.T) {
	h := newHarness(t, LANConfig(), 4)
	h.answer = func(string) bool { return true } // nobody is suspected meanwhile
	h.step("b", &protocol.Ack{Seq: 1, Digest: h.c.table.Digest()})
	if to, _ := sent[*protocol.PushPull](h.drain()); len(to) != 0 {
		t.Fatal("push/pull on a matching digest")
	}
	h.step("b", &protocol.Ack{Seq: 1, Digest: h.c.table.Digest() + 1})
	to, pps := sent[*protocol.PushPull](h.drain())
	if len(pps) != 1 || to[0] != "b" || pps[0].Reply || len(pps[0].Members) != 5 {
		t.Fatalf("digest mismatch: push/pull %v to %v", pps, to)
	}
	h.advance(h.c.cfg.PushPullMinGap / 2)
	h.drain()
	h.step("c", &protocol.Ack{Seq: 1, Digest: 7})
	if to, _ := sent[*protocol.PushPull](h.drain()); len(to) != 0 {
		t.Fatal("push/pull not rate-limited")
	}
	h.advance(h.c.cfg.PushPullMinGap / 2)
	h.drain()
	h.step("c", &protocol.Ack{Seq: 1, Digest: 7})
	if to, _ := sent[*protocol.PushPull](h.drain()); len(to) != 1 {
		t.Fatal("no push/pull after the gap")
	}
	// A push/pull request is answered (and merged); a reply is not.
	h.step("d", &protocol.PushPull{Members: []protocol.Member{member("d", protocol.StateAlive, 0), member("z", protocol.StateAlive, 0)}})
	to, pps = sent[*protocol.PushPull](h.drain())
	if len(pps) != 1 || to[0] != "d" || !pps[0].Reply || h.state("z") != protocol.StateAlive {
		t.Fatalf("push/pull request answered with %v to %v; z %s", pps, to, h.state("z"))
	}
	h.step("d", &protocol.PushPull{Reply: true, Members: []protocol.Member{member("d", protocol.StateAlive, 0)}})
	if to, _ := sent[*protocol.PushPull](h.drain()); len(to) != 0 {
		t.Fatal("a push/pull reply was answered")
	}
}

func TestPeriodicPushPull(t *testing.T) {
	cfg := LANConfig()
	cfg.PushPullInterval = 2 * time.Second
	h := newHarness(t, cfg, 4)
	h.ackAllBut()
	h.advance(20 * time.Second)
	to, _ := sent[*protocol.PushPull](h.drain())
	count := len(to)
	if count < 9 || count > 11 {
		t.Fatalf("%d periodic push/pulls in 20s at one per 2s", count)
	}
}

func TestReconnectBackoffAndReap(t *testing.T) {
	cfg := LANConfig()
	cfg.ReconnectTimeout = 20 * time.Second
	h := newHarness(t, cfg, 4)
	h.ackAllBut("c", "d")
	h.hearFailed("b", "c", "d")
	failedAt := h.now
	var times []time.Duration
	for h.now.Sub(failedAt) < 10*time.Second {
		h.advance(time.Millisecond)
		for _, o := range h.drain() {
			switch m := o.Msg.(type) {
			case *protocol.Ping:
				if o.To == "c" {
					if !hasUpdate(m.Updates, "c", protocol.StateFailed, 0) {
						t.Fatalf("re-contact ping does not carry c's failed state: %+v", m.Updates)
					}
					times = append(times, h.now.Sub(failedAt))
					h.c.DialFailed(h.now, "c", true)
					h.collect()
				}
			}
		}
	}
	if len(times) < 6 {
		t.Fatalf("re-contacts at %v", times)
	}
	gaps := []time.Duration{times[0]}
	for i := 1; i < len(times); i++ {
		gaps = append(gaps, times[i]-times[i-1])
	}
	within := func(d, want time.Duration, frac float64) bool {
		return math.Abs(float64(d-want)) <= frac*float64(want)
	}
	if !within(gaps[0], cfg.ReconnectBase, 0.5) || !within(gaps[1], 2*cfg.ReconnectBase, 0.11) ||
		!within(gaps[2], 4*cfg.ReconnectBase, 0.11) || !within(gaps[len(gaps)-1], cfg.ReconnectMax, 0.11) {
		t.Fatalf("backoff gaps %v, want ~%v doubling up to %v", gaps, cfg.ReconnectBase, cfg.ReconnectMax)
	}
	// c answers a re-contact with its refutation: alive again.
	h.step("c", &protocol.Ack{Seq: 1, Digest: h.c.table.Digest(), Updates: []protocol.Member{member("c", protocol.StateAlive, 1)}})
	h.ackAllBut("d")
	if st := h.state("c"); st != protocol.StateAlive {
		t.Fatalf("c %s after answering", st)
	}
	// d never answers: reaped ReconnectTimeout after its failure.
	h.advance(cfg.ReconnectTimeout - h.now.Sub(failedAt) - time.Millisecond)
	if st := h.state("d"); st != protocol.StateFailed {
		t.Fatalf("d %s before the reconnect timeout", st)
	}
	h.advance(time.Millisecond)
	if _, ok := h.c.Get("d"); ok {
		t.Fatal("d not reaped")
	}
	if got := kinds(h.events()); !slices.Equal(got, []string{"member-suspect c", "member-suspect d", "member-failed c", "member-failed d", "member-alive c", "member-reap d"}) {
		t.Fatalf("events %v", got)
	}
}

func TestConnected(t *testing.T) {
	h := newHarness(t, LANConfig(), 4)
	h.c.ConnLost(h.now, "c") // then b's word for its failure is a verdict
	h.step("b", &protocol.Gossip{Updates: []protocol.Member{member("c", protocol.StateFailed, 2)}})
	h.drain()
	// c reconnects still at incarnation 2: it must be told, and refute.
	h.c.Connected(h.now, member("c", protocol.StateAlive, 2))
	h.collect()
	to, gossips := sent[*protocol.Gossip](h.drain())
	if len(to) != 1 || to[0] != "c" || !hasUpdate(gossips[0].Updates, "c", protocol.StateFailed, 2) {
		t.Fatalf("stale peer told %v", gossips)
	}
	if st := h.state("c"); st != protocol.StateFailed {
		t.Fatalf("c %s", st)
	}
	// At a higher incarnation it speaks for itself.
	h.c.Connected(h.now, member("c", protocol.StateAlive, 3))
	h.collect()
	if st := h.state("c"); st != protocol.StateAlive {
		t.Fatalf("c %s", st)
	}
	// A new member: join.
	h.c.Connected(h.now, member("new", protocol.StateAlive, 0))
	h.collect()
	if got := kinds(h.events()); !slices.Equal(got, []string{"member-failed c", "member-alive c", "member-join new"}) {
		t.Fatalf("events %v", got)
	}
}

func TestEventsOncePerTransition(t *testing.T) {
	h := newHarness(t, LANConfig(), 4)
	g := func(ms ...protocol.Member) {
		h.step("b", &protocol.Gossip{Updates: ms})
		h.step("d", &protocol.Gossip{Updates: ms}) // the same news twice
	}
	tagged := member("c", protocol.StateAlive, 3)
	tagged.Tags = map[string]string{"role": "worker"}
	h.c.ConnLost(h.now, "c") // hearsay about c is all there is
	g(member("c", protocol.StateSuspect, 0))
	h.now = h.now.Add(h.c.cfg.ProbeTimeout) // time to refute
	g(member("c", protocol.StateFailed, 0))
	g(member("c", protocol.StateAlive, 1))
	g(member("c", protocol.StateAlive, 2)) // a new incarnation, nothing else: no event
	g(tagged)
	g(member("c", protocol.StateLeft, 3))
	g(member("c", protocol.StateAlive, 4))
	want := []string{"member-suspect c", "member-failed c", "member-alive c", "member-update c", "member-leave c", "member-join c"}
	if got := kinds(h.events()); !slices.Equal(got, want) {
		t.Fatalf("events %v\nwant   %v", got, want)
	}
}

func TestNextDeadlineIdle(t *testing.T) {
	h := newHarness(t, LANConfig(), 9)
	ticks, pings := 0, 0
	for h.now.Sub(simEpoch) < 10*time.Second {
		dl := h.c.NextDeadline(h.now)
		if !dl.After(h.now) && ticks > 0 {
			t.Fatalf("deadline %v not after now at %v", dl.Sub(simEpoch), h.now.Sub(simEpoch))
		}
		h.now = dl
		h.c.Tick(h.now)
		h.collect()
		ticks++
		for _, o := range h.drain() {
			if m, ok := o.Msg.(*protocol.Ping); ok {
				pings++
				h.now = h.now.Add(time.Millisecond)
				h.step(o.To, &protocol.Ack{Seq: m.Seq, Digest: h.c.table.Digest()})
			} else {
				t.Fatalf("idle node sent %T", o.Msg)
			}
		}
	}
	want := int(10 * time.Second / h.c.cfg.ProbeInterval)
	if pings < want-2 || pings > want+1 || ticks > pings+1 {
		t.Fatalf("10s idle: %d ticks, %d pings; want one tick and one ping per probe interval", ticks, pings)
	}
}

// TestTurnGoesOutWithTraffic: a message that arrives less than half an
// interval before the next turn is due starts that turn's probe at once; an
// earlier one does not; and the turn after is still due one interval after
// the first was, so the pace is unchanged.
func TestTurnGoesOutWithTraffic(t *testing.T) {
	h := newHarness(t, LANConfig(), 5)
	target, ping := h.nextPing()
	h.step(target, &protocol.Ack{Seq: ping.Seq, Digest: h.c.table.Digest()})
	due := h.c.nextProbe
	slack := h.c.cfg.ProbeInterval / 2
	h.now = due.Add(-slack - time.Millisecond)
	h.step("b", &protocol.Gossip{})
	if to, _ := sent[*protocol.Ping](h.drain()); len(to) != 0 {
		t.Fatalf("a message %v before the turn started it early (ping to %v)", slack+time.Millisecond, to)
	}
	h.now = due.Add(-slack + time.Millisecond)
	h.step("b", &protocol.Gossip{})
	if to, _ := sent[*protocol.Ping](h.drain()); len(to) != 1 {
		t.Fatalf("a message %v before the turn sent pings to %v, want the turn's probe", slack-time.Millisecond, to)
	}
	if next := h.c.nextProbe; !next.Equal(due.Add(h.c.cfg.ProbeInterval)) {
		t.Fatalf("next turn due %v after the early one's due time, want one interval", next.Sub(due))
	}
}

func TestSetConfigAndTags(t *testing.T) {
	h := newHarness(t, LANConfig(), 4)
	bad := LANConfig()
	bad.ProbeTimeout = bad.ProbeInterval
	if err := h.c.SetConfig(bad); err == nil {
		t.Fatal("invalid config accepted")
	}
	if err := h.c.SetConfig(LocalConfig()); err != nil || h.c.Config() != LocalConfig() {
		t.Fatalf("SetConfig: %v", err)
	}
	h.c.SetTags(h.now, map[string]string{"role": "worker"})
	h.collect()
	if s := h.c.Self(); s.Incarnation != 1 || s.Tags["role"] != "worker" {
		t.Fatalf("self %+v", s)
	}
	// To every live member: in touch, they believe only its own word.
	if to, _ := sent[*protocol.Gossip](h.drain()); len(to) != 4 {
		t.Fatalf("tags gossiped to %v, want all 4 members", to)
	}
}

func TestEnumStrings(t *testing.T) {
	for k := MemberJoin; k <= MemberReap; k++ {
		if s := k.String(); s == "member-event" || s == "" {
			t.Fatalf("EventKind %d has no name", k)
		}
	}
	for k := timerSuspicion; k <= timerReap; k++ {
		if k.String() == "timer" {
			t.Fatalf("timerKind %d has no name", k)
		}
	}
}

func TestAnyMessageFromTargetCountsAsAck(t *testing.T) {
	h := newHarness(t, LANConfig(), 5)
	target, _ := h.nextPing()
	h.ackAllBut(target)
	h.advance(h.c.cfg.ProbeTimeout / 2)
	h.step(target, &protocol.Ping{Seq: 4242}) // the target is busy, but runs
	h.advance(h.c.cfg.ProbeInterval)
	h.drain()
	if st := h.state(target); st != protocol.StateAlive {
		t.Fatalf("target %s though it talked to us during the probe", st)
	}
	if f := h.c.Stats().ProbesFailed; f != 0 {
		t.Fatalf("%d failed probes", f)
	}
}

func TestAccusationsFromACutOffSenderAreNotMerged(t *testing.T) {
	h := newHarness(t, LANConfig(), 3) // a knows b, c, d
	h.c.Merge(h.now, []protocol.Member{member("c", protocol.StateFailed, 0)})
	h.collect()
	// c, failed here, comes back across a healed partition with its view:
	// b failed, d suspect — both alive on our side — and itself alive.
	// Its own entry comes first: reviving it must not let the rest in.
	h.c.Step(h.now, "c", &protocol.PushPull{Members: []protocol.Member{
		member("c", protocol.StateAlive, 1), member("b", protocol.StateFailed, 0), member("d", protocol.StateSuspect, 0),
	}})
	h.collect()
	for _, alias := range []string{"b", "d"} {
		if e, _ := h.c.Get(alias); e.State != protocol.StateAlive {
			t.Errorf("%s became %s on the word of a cut-off sender", alias, e.State)
		}
	}
	if e, _ := h.c.Get("c"); e.State != protocol.StateAlive || e.Incarnation != 1 {
		t.Errorf("the sender's news about itself was not merged: %+v", e)
	}
	// Freshly back, c still speaks for its side of the cut...
	h.c.Step(h.now, "c", &protocol.Gossip{Updates: []protocol.Member{member("b", protocol.StateFailed, 0)}})
	h.collect()
	if e, _ := h.c.Get("b"); e.State != protocol.StateAlive {
		t.Errorf("b became %s on the word of a sender just back from failed", e.State)
	}
	// ...and a longest suspicion later its accusations count as anyone's
	// (a failure we never suspected makes b suspect: see merge).
	h.now = h.now.Add(h.c.suspicionMax())
	h.c.Step(h.now, "c", &protocol.Gossip{Updates: []protocol.Member{member("b", protocol.StateFailed, 0)}})
	h.collect()
	if e, _ := h.c.Get("b"); e.State != protocol.StateSuspect {
		t.Errorf("an accusation from a live sender was ignored: %+v", e)
	}
}

// TestConnLostSendsPingsAgain: a Ping sent to a member whose connection is
// then lost, by our probe or as a relay, may have gone down with it. It is
// sent again at once, so that the transport dials and a refused dial (a
// crash) is seen now, not after the probe's timeouts.
func TestConnLostSendsPingsAgain(t *testing.T) {
	h := newHarness(t, LANConfig(), 10)
	h.ackAllBut("b", "c", "d", "e", "f", "g", "h", "i", "j", "k")
	target, first := h.nextPing()
	h.c.ConnLost(h.now, target)
	h.collect()
	to, pings := sent[*protocol.Ping](h.drain())
	if !slices.Contains(to, target) || !slices.ContainsFunc(pings, func(p *protocol.Ping) bool { return p.Seq == first.Seq }) {
		t.Fatalf("after the connection to %s was lost: pings to %v, want probe %d's ping again", target, to, first.Seq)
	}

	relayFor := "b"
	if target == "b" {
		relayFor = "c"
	}
	other := "k"
	if target == "k" || relayFor == "k" {
		other = "j"
	}
	h.step(relayFor, &protocol.PingReq{Seq: 77, Target: other, Addr: other + ":1"})
	_, relayed := sent[*protocol.Ping](h.drain())
	if len(relayed) != 1 {
		t.Fatalf("relay: %d pings to %s, want 1", len(relayed), other)
	}
	h.c.ConnLost(h.now, other)
	h.collect()
	to, pings = sent[*protocol.Ping](h.drain())
	if !slices.ContainsFunc(pings, func(p *protocol.Ping) bool { return p.Seq == relayed[0].Seq }) || !slices.Contains(to, other) {
		t.Fatalf("relay: after the connection to %s was lost, pings %v to %v, want the relay's ping again", other, pings, to)
	}
}

// TestFailureHearsayAboutAMemberThatSpokeSinceIsIgnored: a member suspected
// here that has sent us a message since the suspicion began is not failed
// on someone else's word; its suspicion's own timer decides (on a healed
// cut, the other side's verdict may be about a member we talk to).
func TestFailureHearsayAboutAMemberThatSpokeSinceIsIgnored(t *testing.T) {
	for _, spoke := range []bool{false, true} {
		h := newHarness(t, LANConfig(), 10)
		h.step("b", &protocol.Gossip{Updates: []protocol.Member{{Alias: "c", Addr: "c:1", State: protocol.StateSuspect, Accuser: "b"}}})
		h.now = h.now.Add(2 * h.c.cfg.ProbeTimeout)
		if spoke {
			h.step("c", &protocol.Ping{Seq: 5})
		}
		h.step("d", &protocol.Gossip{Updates: []protocol.Member{member("c", protocol.StateFailed, 0)}})
		want := protocol.StateFailed
		if spoke {
			want = protocol.StateSuspect
		}
		if st := h.state("c"); st != want {
			t.Fatalf("c spoke since its suspicion: %v; after news of its failure it is %s, want %s", spoke, st, want)
		}
	}
}

// TestRefusedDialToASuspectStartsAProbe: a refused dial is evidence about a
// suspect as much as about a live member (news of someone else's verdict
// may have made it suspect here first): it is probed at once.
func TestRefusedDialToASuspectStartsAProbe(t *testing.T) {
	h := newHarness(t, LANConfig(), 10)
	h.step("b", &protocol.Gossip{Updates: []protocol.Member{{Alias: "c", Addr: "c:1", State: protocol.StateSuspect, Accuser: "b"}}})
	h.drain()
	if p := h.c.probeOf("c"); p != nil {
		h.c.endProbe(p) // a not among c's checkers: no probe of c in flight
	}
	h.c.DialFailed(h.now, "c", true)
	h.collect()
	if to, _ := sent[*protocol.Ping](h.drain()); !slices.Contains(to, "c") {
		t.Fatalf("a refused dial to suspect c: pings to %v, want a probe of c", to)
	}
}

// TestSilentDialStartsAProbe: a dial that timed out (an address that
// accepts and says nothing) to a live member starts a probe at once, so a
// member heard of at such an address is not left alive for a probe round.
func TestSilentDialStartsAProbe(t *testing.T) {
	h := newHarness(t, LANConfig(), 10)
	h.step("b", &protocol.Gossip{Updates: []protocol.Member{{Alias: "z", Addr: "z:1", State: protocol.StateAlive}}})
	h.drain()
	if p := h.c.probeOf("z"); p != nil {
		t.Fatal("z probed before any dial failed")
	}
	h.c.DialFailed(h.now, "z", false)
	h.collect()
	if to, _ := sent[*protocol.Ping](h.drain()); !slices.Contains(to, "z") {
		t.Fatalf("a silent dial to z: pings to %v, want a probe of z", to)
	}
}

// TestAwarenessCountsAMissingNack: a failed probe in which some relays
// nacked and one did not raises this node's health score: the silent relay
// may be our own lossy link at work, as may the missing ack.
func TestAwarenessCountsAMissingNack(t *testing.T) {
	h := newHarness(t, LANConfig(), 6)
	h.ackAllBut("b", "c", "d", "e", "f")
	_, ping := h.nextPing()
	h.advance(h.c.cfg.ProbeTimeout)
	to, _ := sent[*protocol.PingReq](h.drain())
	if len(to) < 2 {
		t.Fatalf("%d relays asked, want at least 2", len(to))
	}
	h.step(to[0], &protocol.Nack{Seq: ping.Seq})
	h.advance(h.c.cfg.ProbeInterval)
	if a := h.c.Awareness(); a != 1 {
		t.Fatalf("awareness %d after a failed probe with %d of %d nacks, want 1", a, 1, len(to))
	}
}

// TestSuspectEventNamesTheAccuser: a member-suspect event says whose probe
// failed: the news's accuser, or this node for its own probe.
func TestSuspectEventNamesTheAccuser(t *testing.T) {
	h := newHarness(t, LANConfig(), 10)
	h.step("b", &protocol.Gossip{Updates: []protocol.Member{{Alias: "c", Addr: "c:1", State: protocol.StateSuspect, Accuser: "b"}}})
	h.step("b", &protocol.Gossip{Updates: []protocol.Member{{Alias: "d", Addr: "d:1", State: protocol.StateSuspect}}})
	got := map[string]string{}
	for _, ev := range h.events() {
		if ev.Kind == MemberSuspect {
			got[ev.Member.Alias] = ev.Accuser
		}
	}
	if got["c"] != "b" || got["d"] != "" {
		t.Fatalf("suspect events' accusers %v, want c by b and d by nobody named", got)
	}

	h.ackAllBut("b", "c", "d", "e", "f", "g", "h", "i", "j", "k")
	target, _ := h.nextPing()
	h.advance(2 * h.c.cfg.ProbeInterval)
	found := false
	for _, ev := range h.events() {
		if ev.Kind == MemberSuspect && ev.Member.Alias == target {
			found = true
			if ev.Accuser != "a" {
				t.Fatalf("own probe's suspicion of %s names %q, want a", target, ev.Accuser)
			}
		}
	}
	if !found {
		t.Fatalf("no suspicion of %s after its probe failed", target)
	}
}

// TestFailureNewsAboutALostConnectionIsAVerdict: others' word that a member
// failed only makes it suspect here while its connection to us is up; once
// that connection closed, in either order, the member is failed at once.
func TestFailureNewsAboutALostConnectionIsAVerdict(t *testing.T) {
	t.Run("news first", func(t *testing.T) {
		h := newHarness(t, LANConfig(), 10)
		h.step("b", &protocol.Gossip{Updates: []protocol.Member{member("c", protocol.StateFailed, 0)}})
		if st := h.state("c"); st != protocol.StateSuspect {
			t.Fatalf("c %s on others' word alone, want suspect", st)
		}
		h.c.ConnLost(h.now, "c")
		h.collect()
		if st := h.state("c"); st != protocol.StateFailed {
			t.Fatalf("c %s after its connection closed too, want failed", st)
		}
	})
	t.Run("connection first", func(t *testing.T) {
		h := newHarness(t, LANConfig(), 10)
		h.c.ConnLost(h.now, "c")
		h.collect()
		h.step("b", &protocol.Gossip{Updates: []protocol.Member{member("c", protocol.StateFailed, 0)}})
		if st := h.state("c"); st != protocol.StateFailed {
			t.Fatalf("c %s after its connection closed and b's verdict, want failed", st)
		}
	})
	t.Run("connection back", func(t *testing.T) {
		h := newHarness(t, LANConfig(), 10)
		h.c.ConnLost(h.now, "c")
		h.c.Connected(h.now, member("c", protocol.StateAlive, 0))
		h.collect()
		h.step("b", &protocol.Gossip{Updates: []protocol.Member{member("c", protocol.StateFailed, 0)}})
		if st := h.state("c"); st != protocol.StateSuspect {
			t.Fatalf("c %s: reconnected, then others' word of its failure; want suspect", st)
		}
	})
}

// TestSuspectThatSpeaksGetsOneMoreTimeout: a suspect that spoke to this
// node since its suspicion began runs, and has not heard of the suspicion
// (after a cut heals, the news waits in TCP's retransmission): when the
// timer runs out it is told again and given one more timeout. One that
// talks and still does not refute is failed then; a silent one at once.
func TestSuspectThatSpeaksGetsOneMoreTimeout(t *testing.T) {
	cfg := LANConfig()
	cfg.AwarenessMax = 0       // the failing probes must not stretch the timeouts measured here
	h := newHarness(t, cfg, 4) // b..e; nobody answers probes
	sus := member("b", protocol.StateSuspect, 0)
	sus.Accuser = "c"
	h.step("c", &protocol.Gossip{Updates: []protocol.Member{sus}})
	silent := member("d", protocol.StateSuspect, 0)
	silent.Accuser = "c"
	h.step("c", &protocol.Gossip{Updates: []protocol.Member{silent}})
	timeout := h.c.suspicionMax()
	h.advance(timeout / 2)
	h.step("b", &protocol.Gossip{}) // b speaks, without refuting
	h.drain()
	h.advance(timeout/2 + 10*time.Millisecond)
	if st := h.state("d"); st != protocol.StateFailed {
		t.Fatalf("silent suspect %s after its timeout, want failed", st)
	}
	if st := h.state("b"); st != protocol.StateSuspect {
		t.Fatalf("suspect that spoke %s after its timeout, want still suspect", st)
	}
	told := false
	for _, o := range h.drain() {
		if g, ok := o.Msg.(*protocol.Gossip); ok && o.To == "b" && len(g.Updates) == 1 && g.Updates[0].State == protocol.StateSuspect {
			told = true
		}
	}
	if !told {
		t.Fatal("the suspect that spoke was not told of its suspicion again")
	}
	h.step("b", &protocol.Gossip{}) // speaks again, still no refutation
	h.advance(timeout + 10*time.Millisecond)
	if st := h.state("b"); st != protocol.StateFailed {
		t.Fatalf("suspect that talks and never refutes is %s after a second timeout, want failed", st)
	}
}

// TestSuspicionIsToldToAMemberThatSpokeJustNow: news of a suspicion from
// others is passed straight to the suspect if it spoke to this node within
// heardLately (this link works where the accuser's may not), not to one
// that has been silent.
func TestSuspicionIsToldToAMemberThatSpokeJustNow(t *testing.T) {
	cfg := LANConfig()
	cfg.GossipFanout = 0       // only direct notices go out
	h := newHarness(t, cfg, 4) // b..e
	h.step("d", &protocol.Gossip{})
	h.advance(h.c.heardLately() + time.Millisecond)
	h.step("b", &protocol.Gossip{})
	h.drain()
	for _, a := range []string{"b", "d"} {
		sus := member(a, protocol.StateSuspect, 0)
		sus.Accuser = "c"
		h.step("c", &protocol.Gossip{Updates: []protocol.Member{sus}})
	}
	told := map[string]bool{}
	for _, o := range h.drain() {
		if g, ok := o.Msg.(*protocol.Gossip); ok && len(g.Updates) == 1 && g.Updates[0].Alias == o.To && g.Updates[0].State == protocol.StateSuspect {
			told[o.To] = true
		}
	}
	if !told["b"] {
		t.Fatal("b, heard from just now, was not told it is suspected")
	}
	if told["d"] {
		t.Fatal("d, silent for longer than heardLately, was told directly")
	}
}

// TestTimerHeapPopsInOrder: the timer heap hands out timers by time, then
// kind, then alias, whatever the order they were armed in.
func TestTimerHeapPopsInOrder(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	var h timerHeap
	var want []timer
	for i := 0; i < 500; i++ {
		tm := timer{at: simEpoch.Add(time.Duration(rng.Intn(50)) * time.Millisecond), kind: timerKind(1 + rng.Intn(3)), alias: fmt.Sprintf("m%d", rng.Intn(20))}
		h.push(tm)
		want = append(want, tm)
	}
	slices.SortStableFunc(want, func(a, b timer) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		if a.kind != b.kind {
			return int(a.kind) - int(b.kind)
		}
		return strings.Compare(a.alias, b.alias)
	})
	for i, w := range want {
		if got := h[0]; !got.at.Equal(w.at) || got.kind != w.kind || got.alias != w.alias {
			t.Fatalf("pop %d: %v %v %s, want %v %v %s", i, got.at, got.kind, got.alias, w.at, w.kind, w.alias)
		}
		h.pop()
	}
	if len(h) != 0 {
		t.Fatalf("%d timers left", len(h))
	}
}

// TestSuspicionFollowsLocalHealth: a suspicion's timeout is stretched by
// the local health score as it is now, not as it was when the suspicion
// began: one begun while this node was unhealthy is due at its
// full-health time once the node has recovered, and one running while the
// node grows unhealthy stretches with it.
func TestSuspicionFollowsLocalHealth(t *testing.T) {
	h := newHarness(t, LANConfig(), 6)
	for i := 0; i < 3; i++ {
		h.c.health(1)
	}
	sus := member("b", protocol.StateSuspect, 0)
	sus.Accuser = "c"
	start := h.now
	h.step("c", &protocol.Gossip{Updates: []protocol.Member{sus}})
	s := h.c.suspicions["b"]
	full := s.max // no confirmation: the longest timeout at full health
	if got := s.deadline.Sub(start); got != 4*full {
		t.Fatalf("begun at score 3: due after %v, want %v", got, 4*full)
	}
	for h.c.Awareness() > 0 {
		h.c.health(-1)
	}
	if got := s.deadline.Sub(start); got != full {
		t.Fatalf("recovered to score 0: due after %v, want %v", got, full)
	}
	h.c.health(1)
	if got := s.deadline.Sub(start); got != 2*full {
		t.Fatalf("score 1: due after %v, want %v", got, 2*full)
	}
	if d := h.c.NextDeadline(h.now); d.After(s.deadline) {
		t.Fatalf("next deadline %v is after the suspicion's %v", d, s.deadline)
	}
	h.c.health(-1)
	h.ackAllBut("b") // every other probe succeeds: the score stays 0
	h.advance(full + 10*time.Millisecond)
	if st := h.state("b"); st != protocol.StateFailed {
		t.Fatalf("b %s after its full-health timeout at score 0, want failed", st)
	}
}

// A node that lost many members re-dials at most RedialRate of them a
// second (burst as many), in turn, so that every one is still re-dialled;
// a member that comes back while it waits is not re-dialled.
func TestRedialsArePacedAcrossFailedMembers(t *testing.T) {
	cfg := LANConfig()
	cfg.RedialRate = 16
	h := newHarness(t, cfg, 61)
	var failed []string
	for i := 1; i <= 60; i++ {
		failed = append(failed, peerName(i))
	}
	h.ackAllBut(failed...)
	h.hearFailed("b", failed...)
	start := h.now
	perSecond := map[int]int{}
	redialled := map[string]int{}
	var back string // a member that comes back while it waits
	var backAt time.Time
	for h.now.Sub(start) < 10*time.Second {
		h.advance(time.Millisecond)
		if backAt.IsZero() && h.now.Sub(start) >= time.Second {
			for _, a := range failed {
				if redialled[a] == 0 {
					back = a
					break
				}
			}
			if back == "" {
				t.Fatal("every failed member was re-dialled within 1 s: the pace did not hold any back")
			}
			// back refutes before its turn came: alive again.
			h.step(back, &protocol.Gossip{Updates: []protocol.Member{member(back, protocol.StateAlive, 1)}})
			backAt = h.now
		}
		for _, o := range h.drain() {
			p, ok := o.Msg.(*protocol.Ping)
			if !ok || !hasUpdate(p.Updates, o.To, protocol.StateFailed, 0) {
				continue
			}
			if o.To == back && !backAt.IsZero() {
				t.Fatalf("%s re-dialled after it came back", back)
			}
			perSecond[int(h.now.Sub(start)/time.Second)]++
			redialled[o.To]++
			h.c.DialFailed(h.now, o.To, true)
			h.collect()
		}
	}
	total := 0
	for s, n := range perSecond {
		total += n
		if n > 2*cfg.RedialRate {
			t.Fatalf("%d re-dials in second %d, want at most %d (burst and rate)", n, s, 2*cfg.RedialRate)
		}
	}
	if max := cfg.RedialRate + 10*cfg.RedialRate; total > max || total < max-cfg.RedialRate {
		t.Fatalf("%d re-dials in 10 s, want about %d: paced at %d/s and never idle", total, max, cfg.RedialRate)
	}
	for _, a := range failed {
		if a != back && redialled[a] < 2 {
			t.Fatalf("%s re-dialled %d times in 10 s, want its turn at least twice: %v", a, redialled[a], redialled)
		}
	}
	if h.c.Stats().RedialsPaced == 0 {
		t.Fatal("no re-dial counted as paced")
	}
}

// TestTimerHeapStaysBoundedAsHealthMoves: every change of the health score
// re-arms every running suspicion; the entries left behind are dropped, so
// the heap stays proportional to the timers armed, and the suspicions
// still run out at their time.
func TestTimerHeapStaysBoundedAsHealthMoves(t *testing.T) {
	h := newHarness(t, LANConfig(), 40)
	var sus []protocol.Member
	for i := 1; i < 40; i++ {
		sus = append(sus, member(peerName(i), protocol.StateSuspect, 0))
	}
	h.step("b", &protocol.Gossip{Updates: sus})
	if len(h.c.suspicions) != 39 {
		t.Fatalf("%d suspicions running, want 39", len(h.c.suspicions))
	}
	for range 1000 { // a score that moves up and down, as a hostile peer's accusations can make it
		h.c.health(1)
		h.c.health(-1)
	}
	if live, n := len(h.c.suspicions)+len(h.c.redials)+len(h.c.reapAt), len(h.c.timers); n > 4*live+64 {
		t.Fatalf("%d heap entries for %d armed timers", n, live)
	}
	// Nothing answers, so the score rises as they run: twice the longest
	// suspicion at the highest score bounds them (a suspect may get one more).
	limit := 2 * time.Duration((h.c.cfg.AwarenessMax+1)*h.c.cfg.SuspicionMaxMult) * h.c.suspicionBase()
	for start := h.now; h.c.table.Count(protocol.StateSuspect) > 0; h.advance(10 * time.Millisecond) {
		if h.now.Sub(start) > limit {
			t.Fatalf("%d members still suspect %v later", h.c.table.Count(protocol.StateSuspect), limit)
		}
	}
}
