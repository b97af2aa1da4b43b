package swim

import (
	"testing"
	"time"

	"meshell/protocol"
)

// TestSimSmallCutHealsWithoutOwnSideFailures: the soak's partition. Two of
// twelve nodes are cut off for 4 s on open TCP connections: what each side
// sends meanwhile is not lost but held, and arrives after the heal, each
// link's after its own retransmission delay (up to 3.2 s, Linux's RTO
// backoff after 4 s). The majority marks the cut-off pair failed;
// nobody ever marks a member of its own side failed — during the cut or
// after the heal, when the stale "your neighbour failed" news of the other
// side arrives — and after the heal everyone is alive everywhere.
func TestSimSmallCutHealsWithoutOwnSideFailures(t *testing.T) {
	for seed := int64(1); seed <= 20; seed++ {
		s := newSim(t, simOptions{n: 12, seed: seed, connected: true, verify: true})
		s.tcpCut = 3200 * time.Millisecond
		s.run(2 * time.Second)
		cut := []int{10, 11}
		s.partition(cut)
		s.run(4 * time.Second)
		for _, i := range cut {
			for j := 0; j < 10; j++ {
				if s.state(j, i) != protocol.StateFailed {
					t.Fatalf("seed %d: after a 4 s cut %s sees %s %s", seed, s.alias(j), s.alias(i), s.state(j, i))
				}
			}
		}
		s.heal()
		s.run(15 * time.Second)
		side := func(i int) bool { return i >= 10 }
		for _, r := range s.log {
			if r.kind == MemberFailed && side(r.observer) == side(s.index[r.member]) {
				t.Errorf("seed %d: %s marked %s (its own side) failed at %v, %v after the heal", seed,
					s.alias(r.observer), r.member, r.at.Sub(simEpoch), r.at.Sub(simEpoch.Add(6*time.Second)))
			}
		}
		for i := range s.nodes {
			if !s.allSee(i, protocol.StateAlive, s.running()) {
				t.Errorf("seed %d: 15 s after the heal not everyone sees %s alive", seed, s.alias(i))
			}
		}
	}
}

// TestSimLossyLinkDoesNotFlap: 30% of the segments each way on one node's
// link are lost, as on a TCP link: a lost one arrives after a 200 ms
// retransmission (600 ms when the resend is lost too) and holds up what
// follows it. A probe of that node often fails; it may be suspected, but
// must not flap, and is never failed. Without the second probe of a member
// that refuted lately it made 80.9 state changes per observer per minute;
// with it 2.0–2.9 over seeds 3, 5, 8, 11, 17 (the aim is 2).
func TestSimLossyLinkDoesNotFlap(t *testing.T) {
	const n, v = 10, 9
	s := newSim(t, simOptions{n: n, seed: 17, connected: true, verify: true})
	s.retransmit = func(from, to int) time.Duration {
		if from != v && to != v {
			return 0
		}
		switch r := s.rng.Float64(); {
		case r < 0.09:
			return 600 * time.Millisecond
		case r < 0.3:
			return 200 * time.Millisecond
		}
		return 0
	}
	s.run(time.Second)
	start := len(s.log)
	const minutes = 2
	s.run(minutes * time.Minute)
	changes, failed := 0, 0
	for _, r := range s.log[start:] {
		if r.member == s.alias(v) && (r.kind == MemberSuspect || r.kind == MemberAlive || r.kind == MemberFailed) {
			changes++
		}
		if r.kind == MemberFailed {
			failed++
		}
	}
	perObs := float64(changes) / (n - 1) / minutes
	t.Logf("30%% loss on %s's link: %.1f state changes per observer per minute, %d failed events", s.alias(v), perObs, failed)
	if perObs > 4 {
		t.Errorf("%s flaps: %.1f state changes per observer per minute, want at most 4", s.alias(v), perObs)
	}
	if failed != 0 {
		t.Errorf("%d failed events under loss", failed)
	}
}
