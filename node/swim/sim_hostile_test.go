package swim

import (
	"fmt"
	"maps"
	"math"
	"testing"
	"time"

	"meshell/protocol"
)

// Simulated clusters under hostile or faulty peers. Each attack is one
// frame handed to one node as if it came on a member's connection.

// inject delivers m to node to as if from came with it, and routes what the
// node does about it.
func (s *sim) inject(to int, from string, m protocol.Message) {
	s.nodes[to].core.Step(s.now, from, m)
	s.flush(to)
}

// TestSimForgedDeparture: one node hears that a live member left or
// failed — at its current incarnation, at +jump, at MaxUint64, or ratcheted
// (alive at +jump, then departed at +2·jump) — by gossip, by push/pull or in
// a Leave sent by another member. No node ever shows the member departed:
// hearsay that a member in touch failed is a suspicion at the incarnation
// held (doubt), which the member refutes one above it, alive everywhere
// again within 2 s; hearsay that it left is not believed at all (the member
// is asked, and its own Leave would come on its own connection), nor is news
// at MaxUint64, a third-party Leave, or the ratchet (its alive step is not
// believed, which leaves the departure beyond the incarnation jump allowed).
func TestSimForgedDeparture(t *testing.T) {
	type attack struct {
		name    string
		refused bool // no node ever shows the victim departed
		msg     func(victim protocol.Member) protocol.Message
	}
	var attacks []attack
	for _, st := range []protocol.State{protocol.StateLeft, protocol.StateFailed} {
		for _, at := range []struct {
			name    string
			inc     func(uint64) uint64
			refused bool
		}{
			{"current", func(i uint64) uint64 { return i }, false},
			{"+jump", func(i uint64) uint64 { return i + jump }, false},
			{"MaxUint64", func(uint64) uint64 { return math.MaxUint64 }, true},
		} {
			forged := func(v protocol.Member) protocol.Member {
				v.State, v.Incarnation = st, at.inc(v.Incarnation)
				return v
			}
			refused := at.refused || st == protocol.StateLeft
			attacks = append(attacks,
				attack{fmt.Sprintf("gossip %s@%s", st, at.name), refused, func(v protocol.Member) protocol.Message {
					return &protocol.Gossip{Updates: []protocol.Member{forged(v)}}
				}},
				attack{fmt.Sprintf("push-pull %s@%s", st, at.name), refused, func(v protocol.Member) protocol.Message {
					return &protocol.PushPull{Members: []protocol.Member{forged(v)}}
				}},
			)
		}
	}
	for _, st := range []protocol.State{protocol.StateLeft, protocol.StateFailed} {
		ratchet := func(v protocol.Member) []protocol.Member {
			up, out := v, v
			up.Incarnation += jump
			out.State, out.Incarnation = st, v.Incarnation+2*jump
			return []protocol.Member{up, out}
		}
		attacks = append(attacks, attack{fmt.Sprintf("gossip ratchet to %s", st), true, func(v protocol.Member) protocol.Message {
			return &protocol.Gossip{Updates: ratchet(v)}
		}})
	}
	attacks = append(attacks,
		attack{"leave@current", true, func(v protocol.Member) protocol.Message {
			return &protocol.Leave{Alias: v.Alias, Incarnation: v.Incarnation}
		}},
		attack{"leave@MaxUint64", true, func(v protocol.Member) protocol.Message {
			return &protocol.Leave{Alias: v.Alias, Incarnation: math.MaxUint64}
		}},
	)
	for _, n := range []int{3, 50} {
		for _, a := range attacks {
			t.Run(fmt.Sprintf("N=%d/%s", n, a.name), func(t *testing.T) {
				s := newSim(t, simOptions{n: n, seed: int64(n), connected: true})
				s.run(time.Second)
				const observer, victim, sender = 0, 1, 2
				v, _ := s.nodes[observer].core.Get(s.alias(victim))
				s.inject(observer, s.alias(sender), a.msg(v.Member))
				settled := func() bool {
					self := s.nodes[victim].core.Self()
					if self.State != protocol.StateAlive {
						return false
					}
					for o := range s.nodes {
						e, ok := s.nodes[o].core.Get(s.alias(victim))
						if o != victim && (!ok || e.State != protocol.StateAlive || e.Incarnation != self.Incarnation) {
							return false
						}
					}
					return true
				}
				took, ok := s.waitFor(2*time.Second, time.Millisecond, settled)
				if !ok {
					e, _ := s.nodes[observer].core.Get(s.alias(victim))
					t.Fatalf("after %v the victim is not alive at one incarnation everywhere: observer holds %s@%d, victim is at %d",
						took, e.State, e.Incarnation, s.nodes[victim].core.Self().Incarnation)
				}
				departed := s.count(MemberLeave, s.isAlias(victim)) + s.count(MemberFailed, s.isAlias(victim))
				inc := s.nodes[victim].core.Self().Incarnation
				if departed != 0 {
					t.Fatalf("%d departures shown, want none", departed)
				}
				want := v.Incarnation + 1 // refuted once, one above the incarnation held
				if a.refused {
					want = v.Incarnation
					if k := s.count(MemberSuspect, s.isAlias(victim)); k != 0 {
						t.Fatalf("a refused attack made the victim suspect %d times", k)
					}
				}
				if inc != want {
					t.Fatalf("victim at incarnation %d, want %d", inc, want)
				}
				t.Logf("alive everywhere after %v (simulated), incarnation %d", took, inc)
				s.run(5 * time.Second)
				if !settled() {
					t.Fatal("the victim did not stay alive everywhere")
				}
				// Only the victim is ever suspected.
				if k := s.count(MemberSuspect, s.notAlias(victim)) + s.count(MemberFailed, nil); k != 0 {
					t.Fatalf("%d suspect or failed events", k)
				}
			})
		}
	}
}

// TestSimFakeMemberReaped: one gossip frame announces 20 members whose
// address never answers. They spread, are probed, fail, and — never in
// contact with anyone — are gone from every table UnverifiedReap after
// they were learned; after that no message is addressed to them.
func TestSimFakeMemberReaped(t *testing.T) {
	const n, fakes = 50, 20
	s := newSim(t, simOptions{n: n, seed: 13, connected: true})
	s.run(time.Second)
	var ms []protocol.Member
	isFake := map[string]bool{}
	for i := 0; i < fakes; i++ {
		m := protocol.Member{Alias: fmt.Sprintf("fake%02d", i), Addr: fmt.Sprintf("10.66.6.%d:2254", i), State: protocol.StateAlive}
		ms = append(ms, m)
		isFake[m.Alias] = true
	}
	start := s.now
	s.inject(0, s.alias(1), &protocol.Gossip{Updates: ms})
	known := func() int {
		k := 0
		for _, nd := range s.nodes {
			for _, m := range ms {
				if _, ok := nd.core.Get(m.Alias); ok {
					k++
				}
			}
		}
		return k
	}
	// Most tables learn them; a few hear first that they failed, and never
	// learn them at all (failed news about an unknown member is not merged).
	if _, ok := s.waitFor(time.Second, 10*time.Millisecond, func() bool { return known() >= n*fakes*9/10 }); !ok {
		t.Fatalf("the fakes reached %d of %d tables' entries", known(), n*fakes)
	}
	// Learned within a second or two (the last from piggybacked copies),
	// each is reaped UnverifiedReap after it was learned.
	took, ok := s.waitFor(s.cfg.UnverifiedReap+2*time.Second, 10*time.Millisecond, func() bool { return known() == 0 })
	if !ok {
		t.Fatalf("%d fake entries left %v after the announcement", known(), took)
	}
	gone := s.now
	t.Logf("%d fake members in %d tables: gone from every table %v after the announcement (simulated)", fakes, n, gone.Sub(start))
	s.run(20 * time.Second)
	for _, m := range ms {
		if at, ok := s.strays[m.Alias]; !ok || at.After(gone) {
			t.Fatalf("%s: last message at %v, gone at %v (ok=%v)", m.Alias, at.Sub(start), gone.Sub(start), ok)
		}
	}
	if k := known(); k != 0 {
		t.Fatalf("%d fake entries came back", k)
	}
	real := func(a string) bool { return !isFake[a] }
	if k := s.count(MemberSuspect, real) + s.count(MemberFailed, real); k != 0 {
		t.Fatalf("%d suspect or failed events about real members", k)
	}
}

// TestSimTableFlood: 20,000 invented members in 4 frames to one node grow
// every table by at most the burst; with a lower MaxMembers the cap holds
// everywhere. Real members are not accused meanwhile.
func TestSimTableFlood(t *testing.T) {
	flood := func(s *sim) {
		for f := 0; f < 4; f++ {
			ms := make([]protocol.Member, 5000)
			for i := range ms {
				ms[i] = protocol.Member{Alias: fmt.Sprintf("flood%d-%04d", f, i), Addr: "10.66.0.1:2254", State: protocol.StateAlive}
			}
			s.inject(0, s.alias(1), &protocol.Gossip{Updates: ms})
		}
	}
	const n = 10
	s := newSim(t, simOptions{n: n, seed: 17, connected: true})
	s.run(time.Second)
	flood(s)
	s.run(5 * time.Second)
	for i, nd := range s.nodes {
		if l := nd.core.table.Len(); l > n+s.cfg.NewMemberBurst {
			t.Fatalf("%s holds %d entries, want at most %d", s.alias(i), l, n+s.cfg.NewMemberBurst)
		}
	}
	if k := s.count(MemberSuspect, s.isAlias(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)) + s.count(MemberFailed, s.isAlias(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)); k != 0 {
		t.Fatalf("%d suspect or failed events about real members", k)
	}
	t.Logf("flood of 20,000: %d entries at the flooded node, %d refused by the rate limit", s.nodes[0].core.table.Len(), s.nodes[0].core.Stats().RateLimited)

	cfg := LANConfig()
	cfg.MaxMembers = 64
	s = newSim(t, simOptions{n: n, seed: 17, connected: true, cfg: cfg})
	s.run(time.Second)
	flood(s)
	s.run(5 * time.Second)
	for i, nd := range s.nodes {
		if l := nd.core.table.Len(); l > cfg.MaxMembers {
			t.Fatalf("%s holds %d entries, cap %d", s.alias(i), l, cfg.MaxMembers)
		}
	}
	if s.nodes[0].core.Stats().OverCap == 0 {
		t.Fatal("the flooded node refused nothing over the cap")
	}
}

// TestSimMassJoin: 199 fresh nodes join one seed at the same instant. The
// rate limit on new members must not stand in the way: every node knows
// every other alive within seconds.
func TestSimMassJoin(t *testing.T) {
	const n = 200
	s := newSim(t, simOptions{n: n, seed: 19, outsiders: n - 1})
	seed := 0
	for j := 1; j < n; j++ {
		s.conns[pair(j, seed)] = true
		s.nodes[seed].core.Connected(s.now, s.nodes[j].core.Self())
		s.flush(seed)
		s.nodes[j].core.Connected(s.now, s.nodes[seed].core.Self())
		s.nodes[j].core.Merge(s.now, s.nodes[seed].core.table.Members())
		s.flush(j)
	}
	took, ok := s.waitFor(20*time.Second, 10*time.Millisecond, func() bool {
		for i := 0; i < n; i++ {
			if !s.allSee(i, protocol.StateAlive, s.running()) {
				return false
			}
		}
		return true
	})
	var limited uint64
	for _, nd := range s.nodes {
		limited += nd.core.Stats().RateLimited
	}
	if !ok {
		t.Fatalf("mass join not converged after %v (%d new members rate limited)", took, limited)
	}
	t.Logf("199 nodes joining one seed at once: all alive everywhere after %v (simulated), %d rate limited", took, limited)
	if limited != 0 {
		t.Errorf("%d legitimate new members were rate limited", limited)
	}
}

// TestSimIdlePushPullWithAFailedMember: after one crash and one join the
// joiner holds no entry for the failed member. The digest covers only what
// a joiner can learn, so acks between it and the others match and push/pull
// is at its periodic rate from one probe round after the join.
func TestSimIdlePushPullWithAFailedMember(t *testing.T) {
	const n = 12
	cfg := LANConfig()
	cfg.PushPullInterval = 10 * time.Second // several periods in the minute measured
	s := newSim(t, simOptions{n: n, seed: 23, connected: true, outsiders: 1, cfg: cfg})
	s.run(time.Second)
	crashed, j, seed := 3, n-1, 0
	s.crash(crashed)
	members := []int{}
	for i := 0; i < n-1; i++ {
		if i != crashed {
			members = append(members, i)
		}
	}
	if _, ok := s.waitFor(5*time.Second, 10*time.Millisecond, func() bool { return s.allSee(crashed, protocol.StateFailed, members) }); !ok {
		t.Fatal("crash not detected")
	}
	s.conns[pair(j, seed)] = true
	s.nodes[seed].core.Connected(s.now, s.nodes[j].core.Self())
	s.flush(seed)
	s.nodes[j].core.Connected(s.now, s.nodes[seed].core.Self())
	s.nodes[j].core.Merge(s.now, s.nodes[seed].core.table.Members())
	s.flush(j)
	if _, ok := s.waitFor(5*time.Second, 10*time.Millisecond, func() bool {
		for _, i := range s.running() {
			if !s.allSee(i, protocol.StateAlive, s.running()) {
				return false
			}
		}
		return true
	}); !ok {
		t.Fatal("join not converged")
	}
	if _, ok := s.nodes[j].core.Get(s.alias(crashed)); ok {
		t.Fatal("the joiner learned the failed member: the test no longer tests the digest")
	}
	s.run(time.Duration(n) * cfg.ProbeInterval) // one probe round after the join
	before := s.sentTotal(protocol.TypePushPull)
	s.run(time.Minute)
	got := s.sentTotal(protocol.TypePushPull) - before
	// Periodic: one request and one reply per running node per interval.
	periodic := 2 * uint64(len(s.running())) * uint64(time.Minute/cfg.PushPullInterval)
	t.Logf("one failed member, one joiner, %d nodes: %d push/pull messages in an idle minute (periodic %d)", len(s.running()), got, periodic)
	if got > periodic+2*uint64(len(s.running())) {
		t.Fatalf("%d push/pull messages in an idle minute, want about the periodic %d", got, periodic)
	}
}

// TestSimForgedNewsRepeated: a hostile member sends every other node, ten
// times a second for ten seconds, news of a live member failed, left, or
// alive with forged tags, each time 1000 incarnations above the member's
// own. No node ever holds it failed or left or with other tags, its
// incarnation rises by at most one per forgery (each is a suspicion at the
// incarnation held, refuted one above), and once the forgeries stop it is
// alive at one incarnation everywhere.
func TestSimForgedNewsRepeated(t *testing.T) {
	const n, victim, sender = 20, 1, 2
	s := newSim(t, simOptions{n: n, seed: 17, connected: true})
	s.run(time.Second)
	tags := map[string]string{"boot": "b1", "role": "worker"}
	s.nodes[victim].core.SetTags(s.now, tags)
	s.flush(victim)
	s.run(time.Second)
	start := s.nodes[victim].core.Self().Incarnation
	forgeries := 0
	for i := range 100 {
		self := s.nodes[victim].core.Self()
		forged := self
		forged.Incarnation += 1000
		switch i % 3 {
		case 0:
			forged.State = protocol.StateFailed
		case 1:
			forged.State = protocol.StateLeft
		case 2:
			forged.Tags = map[string]string{"boot": "forged", "role": "worker"}
		}
		for o := range s.nodes {
			if o != victim && o != sender {
				s.inject(o, s.alias(sender), &protocol.Gossip{Updates: []protocol.Member{forged}})
			}
		}
		forgeries++
		s.run(100 * time.Millisecond)
		for o := range s.nodes {
			e, ok := s.nodes[o].core.Get(s.alias(victim))
			if o == victim || !ok {
				continue
			}
			if e.State == protocol.StateFailed || e.State == protocol.StateLeft || !maps.Equal(e.Tags, tags) {
				t.Fatalf("after %d forgeries %s holds the victim %s with tags %v", forgeries, s.alias(o), e.State, e.Tags)
			}
		}
	}
	if rise := s.nodes[victim].core.Self().Incarnation - start; rise > uint64(forgeries) {
		t.Fatalf("the victim's incarnation rose %d in %d forgeries", rise, forgeries)
	}
	settled := func() bool {
		self := s.nodes[victim].core.Self()
		for o := range s.nodes {
			e, ok := s.nodes[o].core.Get(s.alias(victim))
			if o != victim && (!ok || e.State != protocol.StateAlive || e.Incarnation != self.Incarnation) {
				return false
			}
		}
		return true
	}
	if took, ok := s.waitFor(2*time.Second, time.Millisecond, settled); !ok {
		t.Fatalf("the victim not alive at one incarnation everywhere %v after the forgeries", took)
	}
	if k := s.count(MemberFailed, nil) + s.count(MemberLeave, nil) + s.count(MemberSuspect, s.notAlias(victim)); k != 0 {
		t.Fatalf("%d failed, left or other suspect events", k)
	}
}
