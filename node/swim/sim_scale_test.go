package swim

import (
	"math"
	"os"
	"testing"
	"time"

	"meshell/protocol"
)

// Scale: the scenarios of sim_scenarios_test.go at 1,000 nodes. A
// 1,000-node full mesh holds a million table entries, so these are the
// heaviest simulations (each 5–11 s of CPU under -race); with -short they
// run at 200 nodes. The 500/500 partition costs about 30 s of CPU (half a
// million failures to spread, then every node re-dialling 500 failed
// members): it runs with MESHELL_SIM_BIG=1 only.

func scaleN() int {
	if testing.Short() {
		return 200
	}
	return 1000
}

// TestSimScaleIdleCostFlat: at idle a node sends the same number of
// messages per second at N = 10 as at N = 1,000 — one ping and one ack per
// probe interval, nothing else.
func TestSimScaleIdleCostFlat(t *testing.T) {
	rates := map[int]float64{}
	sizes := []int{10, 100, scaleN()}
	for _, n := range sizes {
		s := newSim(t, simOptions{n: n, seed: 31, connected: true})
		s.run(time.Second)
		before, pp := s.sentTotal(), s.sentTotal(protocol.TypePing, protocol.TypeAck)
		const window = 5
		s.run(window * time.Second)
		rates[n] = float64(s.sentTotal()-before) / float64(n) / window
		other := s.sentTotal() - before - (s.sentTotal(protocol.TypePing, protocol.TypeAck) - pp)
		t.Logf("idle, N=%d: %.2f msgs/node/s (other than ping/ack: %d)", n, rates[n], other)
		if other != 0 {
			t.Errorf("N=%d: %d messages other than ping and ack at idle", n, other)
		}
	}
	for _, n := range sizes[1:] {
		if d := math.Abs(rates[n]-rates[10]) / rates[10]; d > 0.1 {
			t.Errorf("idle cost at N=%d is %.2f msgs/node/s, at N=10 %.2f: not flat within 10%%", n, rates[n], rates[10])
		}
	}
}

// TestSimScaleCrashOnePercent: 1% of the nodes crash at once; each is
// failed everywhere, nobody else is accused.
func TestSimScaleCrashOnePercent(t *testing.T) {
	n := scaleN()
	s := newSim(t, simOptions{n: n, seed: 32, connected: true})
	s.run(time.Second)
	var victims []int
	for i := 50; i < n; i += 100 {
		victims = append(victims, i)
		if n < 1000 && i+50 < n { // small runs crash two per hundred
			victims = append(victims, i+50)
		}
	}
	for _, v := range victims {
		s.crash(v)
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
		t.Fatalf("after %v not all %d crashed nodes are failed everywhere", took, len(victims))
	}
	t.Logf("crash of %d in %d: failed everywhere after %v (simulated)", len(victims), n, took)
	s.run(2 * time.Second)
	if k := s.count(MemberFailed, s.notAlias(victims...)) + s.count(MemberSuspect, s.notAlias(victims...)); k != 0 {
		t.Errorf("%d suspect or failed events about live nodes", k)
	}
	if k, want := s.count(MemberFailed, s.isAlias(victims...)), len(victims)*(n-len(victims)); k != want {
		t.Errorf("%d failed events for the victims, want one per victim per live node (%d)", k, want)
	}
}

// TestSimScaleLoss: 5% of all messages lost for 10 simulated seconds:
// nobody is ever suspected.
func TestSimScaleLoss(t *testing.T) {
	n := scaleN()
	s := newSim(t, simOptions{n: n, seed: 33, connected: true})
	s.loss = 0.05
	s.run(10 * time.Second)
	sus, failed := s.count(MemberSuspect, nil), s.count(MemberFailed, nil)
	t.Logf("5%% loss, %d nodes, 10 s: %d suspect events, %d failed, %d dropped of %d messages", n, sus, failed, s.dropped, s.delivered+s.dropped)
	if sus != 0 || failed != 0 {
		t.Fatalf("under 5%% loss: %d suspect and %d failed events, want none", sus, failed)
	}
}

// TestSimScalePartitionHeal: the nodes split in halves (500/500). Each half
// sees the other failed and never its own side; after healing everyone is
// alive everywhere with no join.
func TestSimScalePartitionHeal(t *testing.T) {
	if os.Getenv("MESHELL_SIM_BIG") != "1" {
		t.Skip("about 30 s of CPU at 1,000 nodes: set MESHELL_SIM_BIG=1 (TestSimPartitionHeal covers 200)")
	}
	n := scaleN()
	s := newSim(t, simOptions{n: n, seed: 34, connected: true})
	s.run(time.Second)
	var a, b []int
	for i := 0; i < n; i++ {
		if i < n/2 {
			a = append(a, i)
		} else {
			b = append(b, i)
		}
	}
	s.partition(a, b)
	split := func() bool {
		for _, i := range []int{a[0], a[len(a)-1], b[0], b[len(b)-1]} {
			for j := 0; j < n; j++ {
				if want := protocol.StateFailed; (i < n/2) != (j < n/2) && s.state(i, j) != want {
					return false
				}
			}
		}
		for _, i := range a {
			for _, j := range b {
				if s.state(i, j) != protocol.StateFailed || s.state(j, i) != protocol.StateFailed {
					return false
				}
			}
		}
		return true
	}
	took, ok := s.waitFor(60*time.Second, 250*time.Millisecond, split)
	if !ok {
		t.Fatalf("after %v the halves do not see each other failed", took)
	}
	t.Logf("partition %d/%d: each side sees the other failed after %v (simulated)", len(a), len(b), took)
	ownSide := 0
	for _, r := range s.log {
		if r.kind == MemberFailed && (r.observer < n/2) == (s.index[r.member] < n/2) {
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
	took, ok = s.waitFor(30*time.Second, 250*time.Millisecond, all)
	if !ok {
		t.Fatalf("after healing for %v not everyone is alive everywhere", took)
	}
	t.Logf("heal: all %d alive everywhere after %v (simulated)", n, took)
}
