package swim

import (
	"math"
	"testing"
	"time"

	"meshell/protocol"
)

// Simulated-time figures are logged with t.Logf; run with -v to see them.

// TestSimCrashOne: a kill -9 in a 200-node full mesh. Every peer's
// connection closes, each probes at once, the dial is refused and so are
// the relays' dials: the member is failed everywhere within milliseconds,
// without a suspicion period, and nobody else is accused.
func TestSimCrashOne(t *testing.T) {
	s := newSim(t, simOptions{n: 200, seed: 7, connected: true})
	s.run(time.Second)
	victim := 42
	s.crash(victim)
	took, ok := s.waitFor(5*time.Second, time.Millisecond, func() bool {
		return s.allSee(victim, protocol.StateFailed, s.running())
	})
	if !ok {
		t.Fatalf("after %v not every node marks %s failed", took, s.alias(victim))
	}
	t.Logf("crash of 1 in 200: failed everywhere after %v (simulated)", took)
	if took > 50*time.Millisecond {
		t.Errorf("fast path took %v, want well under 50ms", took)
	}
	s.run(5 * time.Second)
	if n := s.count(MemberFailed, s.notAlias(victim)); n != 0 {
		t.Errorf("%d false failed events", n)
	}
	if n := s.count(MemberSuspect, s.notAlias(victim)); n != 0 {
		t.Errorf("%d false suspect events", n)
	}
	if n := s.count(MemberFailed, s.isAlias(victim)); n != 199 {
		t.Errorf("%d failed events for the victim, want one per other node (199)", n)
	}
}

// TestSimCrashTenPercent: 20 of 200 nodes crash at once.
func TestSimCrashTenPercent(t *testing.T) {
	s := newSim(t, simOptions{n: 200, seed: 11, connected: true})
	s.run(time.Second)
	var victims []int
	for i := 5; i < 200; i += 10 {
		victims = append(victims, i)
		s.crash(i)
	}
	took, ok := s.waitFor(10*time.Second, time.Millisecond, func() bool {
		for _, v := range victims {
			if !s.allSee(v, protocol.StateFailed, s.running()) {
				return false
			}
		}
		return true
	})
	if !ok {
		t.Fatalf("after %v not all 20 crashed nodes are failed everywhere", took)
	}
	t.Logf("crash of 20 in 200: all failed everywhere after %v (simulated)", took)
	s.run(5 * time.Second)
	if n := s.count(MemberFailed, s.notAlias(victims...)); n != 0 {
		t.Errorf("%d false failed events", n)
	}
	if n := s.count(MemberSuspect, s.notAlias(victims...)); n != 0 {
		t.Errorf("%d false suspect events", n)
	}
	for _, i := range s.running() {
		for _, j := range s.running() {
			if st := s.state(i, j); i != j && st != protocol.StateAlive {
				t.Fatalf("%s sees %s %s", s.alias(i), s.alias(j), st)
			}
		}
	}
}

// TestSimLoss: 5% of all messages lost for 60 simulated seconds in a
// 200-node cluster. Nobody is ever marked suspect, let alone failed: a lost
// ping is sent again, and a probe fails only if every copy of the ping and
// every relay's path lost a message.
func TestSimLoss(t *testing.T) {
	s := newSim(t, simOptions{n: 200, seed: 3, connected: true, verify: true})
	s.loss = 0.05
	s.run(60 * time.Second)
	sus, failed := s.count(MemberSuspect, nil), s.count(MemberFailed, nil)
	t.Logf("5%% loss, 200 nodes, 60 s: %d suspect events, %d failed, %d dropped of %d messages", sus, failed, s.dropped, s.delivered+s.dropped)
	if sus != 0 || failed != 0 {
		t.Fatalf("under 5%% loss: %d suspect and %d failed events, want none", sus, failed)
	}
	s.loss = 0
	s.run(3 * time.Second)
	for _, i := range s.running() {
		for _, j := range s.running() {
			if st := s.state(i, j); i != j && st != protocol.StateAlive {
				t.Fatalf("%s sees %s %s after loss stopped", s.alias(i), s.alias(j), st)
			}
		}
	}
}

// TestSimPartitionHeal: 200 nodes split in two halves. Each half marks the
// other failed and never its own side; after healing, failed members are
// re-contacted and everyone is alive everywhere without any join.
func TestSimPartitionHeal(t *testing.T) {
	const n = 200
	s := newSim(t, simOptions{n: n, seed: 5, connected: true})
	s.run(time.Second)
	var a, b []int
	for i := 0; i < n; i++ {
		if i%2 == 0 {
			a = append(a, i)
		} else {
			b = append(b, i)
		}
	}
	s.partition(a, b)
	split := func() bool {
		for _, i := range a {
			for _, j := range b {
				if s.state(i, j) != protocol.StateFailed || s.state(j, i) != protocol.StateFailed {
					return false
				}
			}
		}
		return true
	}
	took, ok := s.waitFor(30*time.Second, 100*time.Millisecond, split)
	if !ok {
		t.Fatalf("after %v the halves do not see each other failed", took)
	}
	t.Logf("partition 100/100: each side sees the other failed after %v (simulated)", took)
	for _, side := range [][]int{a, b} {
		for _, i := range side {
			for _, j := range side {
				if i != j && s.state(i, j) != protocol.StateAlive {
					t.Fatalf("%s sees %s on its own side %s", s.alias(i), s.alias(j), s.state(i, j))
				}
			}
		}
	}
	ownSide := 0
	for _, r := range s.log {
		if r.kind == MemberFailed && r.observer%2 == s.index[r.member]%2 {
			ownSide++
		}
	}
	if ownSide != 0 {
		t.Fatalf("%d failed events about the own side", ownSide)
	}

	s.heal()
	all := func() bool {
		for i := 0; i < n; i++ {
			if !s.allSee(i, protocol.StateAlive, s.running()) {
				return false
			}
		}
		return true
	}
	took, ok = s.waitFor(20*time.Second, 100*time.Millisecond, all)
	if !ok {
		t.Fatalf("after healing for %v not everyone is alive everywhere", took)
	}
	t.Logf("heal: all 200 alive everywhere after %v (simulated)", took)
	if took > 5*time.Second {
		t.Errorf("heal took %v, want a few seconds", took)
	}
}

// TestSimPause: a node stopped for 3 s (SIGSTOP) is suspected and failed;
// when it resumes it reads what was held for it, refutes and is alive
// everywhere again.
func TestSimPause(t *testing.T) {
	s := newSim(t, simOptions{n: 50, seed: 9, connected: true, verify: true})
	s.run(time.Second)
	p := 17
	s.pause(p)
	others := s.running()
	tSus, ok := s.waitFor(3*time.Second, 10*time.Millisecond, func() bool {
		for _, o := range others {
			if s.state(o, p) == protocol.StateSuspect || s.state(o, p) == protocol.StateFailed {
				return true
			}
		}
		return false
	})
	if !ok {
		t.Fatalf("paused node not suspected after %v", tSus)
	}
	tFail, ok := s.waitFor(3*time.Second-tSus, 10*time.Millisecond, func() bool {
		return s.allSee(p, protocol.StateFailed, others)
	})
	if !ok {
		t.Fatalf("paused node not failed everywhere 3s into the pause")
	}
	s.run(3*time.Second - tSus - tFail)
	t.Logf("pause of 3 s in 50: first suspect after %v, failed everywhere after %v (simulated)", tSus, tSus+tFail)
	s.resume(p)
	took, ok := s.waitFor(5*time.Second, 10*time.Millisecond, func() bool {
		return s.allSee(p, protocol.StateAlive, s.running())
	})
	if !ok {
		t.Fatalf("resumed node not alive everywhere after %v", took)
	}
	t.Logf("resume: alive everywhere after %v (simulated), incarnation %d", took, s.nodes[p].core.Self().Incarnation)
	if n := s.count(MemberFailed, s.notAlias(p)); n != 0 {
		t.Errorf("%d failed events about other nodes", n)
	}
}

// TestSimIdleCostFlat: at idle every node sends about one ping and one ack
// per probe interval whatever the cluster size.
func TestSimIdleCostFlat(t *testing.T) {
	rates := map[int]float64{}
	for _, n := range []int{10, 50, 200} {
		s := newSim(t, simOptions{n: n, seed: 1, connected: true})
		s.run(time.Second)
		before := s.sentTotal()
		const window = 5
		s.run(window * time.Second)
		rates[n] = float64(s.sentTotal()-before) / float64(n) / window
		other := s.sentTotal() - s.sentTotal(protocol.TypePing, protocol.TypeAck)
		t.Logf("idle, N=%d: %.2f msgs/node/s (other than ping/ack: %d)", n, rates[n], other)
		if other != 0 {
			t.Errorf("N=%d: %d messages other than ping and ack at idle", n, other)
		}
	}
	for _, n := range []int{50, 200} {
		if d := math.Abs(rates[n]-rates[10]) / rates[10]; d > 0.2 {
			t.Errorf("idle cost at N=%d is %.2f, at N=10 %.2f: not flat", n, rates[n], rates[10])
		}
	}
}

// TestSimLeave: a graceful leave reaches every member within 50 ms and is
// never shown as a failure.
func TestSimLeave(t *testing.T) {
	s := newSim(t, simOptions{n: 200, seed: 2, connected: true})
	s.run(time.Second)
	l := 100
	s.nodes[l].core.Leave(s.now)
	s.flush(l)
	took, ok := s.waitFor(time.Second, time.Millisecond, func() bool {
		return s.allSee(l, protocol.StateLeft, s.running())
	})
	if !ok || took > 50*time.Millisecond {
		t.Fatalf("leave reached everyone after %v (ok=%v), want within 50ms", took, ok)
	}
	t.Logf("leave of 1 in 200: left everywhere after %v (simulated)", took)
	s.crash(l) // the process exits after leaving
	s.run(5 * time.Second)
	if n := s.count(MemberFailed, nil) + s.count(MemberSuspect, nil); n != 0 {
		t.Fatalf("%d suspect/failed events after a graceful leave", n)
	}
	if n := s.count(MemberLeave, s.isAlias(l)); n != 199 {
		t.Fatalf("%d leave events, want 199", n)
	}
}

// TestSimJoin: a new node joins through one seed — the seed's handshake
// introduces it there (Introduced) and makes the joiner Connected, the
// joiner merges the seed's member list — and every member learns of it
// from the seed's push, with one join event each.
func TestSimJoin(t *testing.T) {
	const n = 50
	s := newSim(t, simOptions{n: n, seed: 4, connected: true, outsiders: 1, verify: true})
	s.run(time.Second)
	j, seed := n-1, 0
	s.conns[pair(j, seed)] = true
	s.nodes[seed].core.Introduced(s.now, s.nodes[j].core.Self(), false)
	s.flush(seed)
	s.nodes[j].core.Connected(s.now, s.nodes[seed].core.Self())
	s.nodes[j].core.Merge(s.now, s.nodes[seed].core.table.Members())
	s.flush(j)
	took, ok := s.waitFor(5*time.Second, time.Millisecond, func() bool {
		for i := 0; i < n; i++ {
			if !s.allSee(i, protocol.StateAlive, s.running()) {
				return false
			}
		}
		return true
	})
	if !ok {
		t.Fatalf("join not converged after %v", took)
	}
	t.Logf("join of a fresh node through one seed in %d: known everywhere after %v (simulated)", n, took)
	if got := s.count(MemberJoin, s.isAlias(j)); got != n-1 {
		t.Errorf("%d join events for the joiner, want %d", got, n-1)
	}
	if got := s.count(MemberJoin, s.notAlias(j)); got != n-1 {
		t.Errorf("the joiner saw %d joins, want %d", got, n-1)
	}
}

// TestSimDeterministic: a seed gives the same run, event for event.
func TestSimDeterministic(t *testing.T) {
	run := func() string {
		s := newSim(t, simOptions{n: 40, seed: 21, connected: true, verify: true})
		s.loss = 0.02
		s.run(time.Second)
		s.crash(3)
		s.pause(8)
		s.partition([]int{1, 2, 4, 5, 6})
		s.run(4 * time.Second)
		s.heal()
		s.resume(8)
		s.run(4 * time.Second)
		return s.fingerprint()
	}
	a, b := run(), run()
	if a != b {
		t.Fatalf("same seed, different runs:\n%s\n%s", a, b)
	}
	t.Logf("fingerprint %s", a)
}

// TestSimStragglerRepairedByDigest: one node misses every gossiped and
// piggybacked copy of an update; the digest on the acks it exchanges makes
// it pull the full state within about a probe round, not a push/pull period.
func TestSimStragglerRepairedByDigest(t *testing.T) {
	s := newSim(t, simOptions{n: 50, seed: 5, connected: true})
	s.run(time.Second)
	const changer, straggler = 7, 3
	mentions := func(ms []protocol.Member) bool {
		for _, m := range ms {
			if m.Alias == s.alias(changer) {
				return true
			}
		}
		return false
	}
	// Once it pulls the state, the straggler doubts a third party's word
	// for the changer's tags (doubt) and asks the changer, whose answer
	// gets through.
	pulled := false
	s.drop = func(from, to int, m protocol.Message) bool {
		if to != straggler || pulled && from == changer {
			return false
		}
		switch m := m.(type) {
		case *protocol.PushPull:
			pulled = true
		case *protocol.Gossip:
			return mentions(m.Updates)
		case *protocol.Ping:
			return mentions(m.Updates)
		case *protocol.Ack:
			return mentions(m.Updates)
		}
		return false
	}
	s.nodes[changer].core.SetTags(s.now, map[string]string{"role": "worker"})
	s.flush(changer)
	has := func(i int) bool {
		e, ok := s.nodes[i].core.Get(s.alias(changer))
		return ok && e.Tags["role"] == "worker"
	}
	took, ok := s.waitFor(10*time.Second, 10*time.Millisecond, func() bool { return has(straggler) })
	if !ok || took > 2*time.Second {
		t.Fatalf("the straggler had the update after %v (ok=%v), want within 2s", took, ok)
	}
	for _, i := range s.running() {
		if !has(i) {
			t.Fatalf("%s never got the update", s.alias(i))
		}
	}
	t.Logf("straggler repaired after %v (simulated), the push/pull period being %v", took, s.cfg.PushPullInterval)
}
