package jobs

import (
	"math/rand/v2"
	"sync"
	"testing"

	"meshell/protocol"
)

func members(specs ...protocol.Member) []protocol.Member { return specs }

func workerMember(alias string, st protocol.State, tags map[string]string) protocol.Member {
	return protocol.Member{Alias: alias, Addr: alias + ":1", State: st, Tags: tags}
}

var roleWorker = map[string]string{"role": "worker"}

func threeWorkers(r *registry) []candidate {
	return r.Candidates(members(
		workerMember("w1", protocol.StateAlive, roleWorker),
		workerMember("w2", protocol.StateAlive, roleWorker),
		workerMember("w3", protocol.StateAlive, roleWorker),
	), "d", DefaultFilter())
}

func TestCandidatesFilterAndState(t *testing.T) {
	r := newRegistry()
	ms := members(
		workerMember("a", protocol.StateAlive, map[string]string{"role": "worker", "zone": "x", "slots": "4"}),
		workerMember("b", protocol.StateSuspect, roleWorker),
		workerMember("c", protocol.StateFailed, roleWorker),
		workerMember("d", protocol.StateLeft, roleWorker),
		workerMember("e", protocol.StateAlive, map[string]string{"role": "gpu"}),
		workerMember("f", protocol.StateAlive, map[string]string{"role": "worker", "zone": "y"}),
		workerMember("g", protocol.StateAlive, nil),
	)
	cases := []struct {
		name   string
		filter map[string]string
		want   []string
	}{
		{"default role=worker keeps suspect, drops failed, left", DefaultFilter(), []string{"a", "b", "f"}},
		{"every tag must match", map[string]string{"role": "worker", "zone": "x"}, []string{"a"}},
		{"no match", map[string]string{"role": "tpu"}, nil},
		{"empty filter matches every alive or suspect member", map[string]string{}, []string{"a", "b", "e", "f", "g"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := r.Candidates(ms, "g", c.filter)
			var aliases []string
			for _, g := range got {
				aliases = append(aliases, g.Alias)
			}
			if len(aliases) != len(c.want) {
				t.Fatalf("candidates %v, want %v", aliases, c.want)
			}
			for i := range aliases {
				if aliases[i] != c.want[i] {
					t.Fatalf("candidates %v, want %v", aliases, c.want)
				}
			}
		})
	}
	if got := r.Candidates(ms, "a", DefaultFilter()); got[0].Slots != 4 || !got[0].Self {
		t.Fatalf("slots/self not read from the member: %+v", got[0])
	}
}

func TestParseStrategy(t *testing.T) {
	for in, want := range map[string]Strategy{"": LeastConnections, "least-connections": LeastConnections,
		"round-robin": RoundRobin, "rr": RoundRobin, "random": Random} {
		got, err := ParseStrategy(in)
		if err != nil || got != want {
			t.Errorf("ParseStrategy(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseStrategy("fastest"); err == nil {
		t.Error("an unknown strategy was accepted")
	}
}

func TestRoundRobinIsExact(t *testing.T) {
	r := newRegistry()
	cands := threeWorkers(r)
	counts := map[string]int{}
	for i := 0; i < 300; i++ {
		counts[cands[r.pick(cands, RoundRobin, nil, 0)].Alias]++
	}
	for _, w := range []string{"w1", "w2", "w3"} {
		if counts[w] != 100 {
			t.Fatalf("round-robin gave %v, want 100 each", counts)
		}
	}
}

func TestRoundRobinExactUnderConcurrency(t *testing.T) {
	r := newRegistry()
	cands := threeWorkers(r)
	var mu sync.Mutex
	counts := map[string]int{}
	var wg sync.WaitGroup
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := map[string]int{}
			for i := 0; i < 500; i++ {
				local[cands[r.pick(cands, RoundRobin, nil, 0)].Alias]++
			}
			mu.Lock()
			for k, v := range local {
				counts[k] += v
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	for _, w := range []string{"w1", "w2", "w3"} {
		if counts[w] != 1000 {
			t.Fatalf("round-robin gave %v, want 1000 each", counts)
		}
	}
}

func TestLeastConnectionsPicksFewestInFlight(t *testing.T) {
	r := newRegistry()
	cands := threeWorkers(r)
	cands[0].Load.Start()
	cands[0].Load.Start()
	cands[2].Load.Start()
	for i := 0; i < 10; i++ {
		if got := cands[r.pick(cands, LeastConnections, nil, 0)].Alias; got != "w2" {
			t.Fatalf("picked %s, want w2 (0 in flight)", got)
		}
	}
	// Ties rotate, so equal loads spread.
	cands[1].Load.Start()
	seen := map[string]bool{}
	for i := 0; i < 10; i++ {
		seen[cands[r.pick(cands, LeastConnections, nil, 0)].Alias] = true
	}
	if !seen["w2"] || !seen["w3"] || seen["w1"] {
		t.Fatalf("ties between w2 and w3 not rotated: %v", seen)
	}
}

func TestLeastConnectionsBalancesAConcurrentLoad(t *testing.T) {
	r := newRegistry()
	cands := threeWorkers(r)
	// 30 jobs started and not finished: 10 each.
	for i := 0; i < 30; i++ {
		cands[r.pick(cands, LeastConnections, nil, 0)].Load.Start()
	}
	for _, c := range cands {
		if c.Load.InFlight() != 10 {
			t.Fatalf("%s has %d in flight, want 10", c.Alias, c.Load.InFlight())
		}
	}
}

// A worker with 8 slots takes jobs in proportion to them: least-connections
// compares in-flight ÷ slots, not in-flight alone.
func TestLeastConnectionsWeighsSlots(t *testing.T) {
	r := newRegistry()
	cands := r.Candidates(members(
		workerMember("big", protocol.StateAlive, map[string]string{"role": "worker", "slots": "8"}),
		workerMember("small", protocol.StateAlive, map[string]string{"role": "worker", "slots": "2"}),
		workerMember("none", protocol.StateAlive, roleWorker), // no slots tag: counts as one
	), "d", DefaultFilter())
	// big at 3 of 8 is less loaded than small at 1 of 2.
	for i := 0; i < 3; i++ {
		cands[0].Load.Start()
	}
	cands[1].Load.Start()
	cands[2].Load.Start()
	if got := cands[r.pick(cands, LeastConnections, nil, 0)].Alias; got != "big" {
		t.Fatalf("picked %s, want big (3/8 in flight beats 1/2 and 1/1)", got)
	}
	for _, c := range cands {
		for c.Load.InFlight() > 0 {
			c.Load.finish(Answered)
		}
	}
	// 55 jobs held in flight fill 11 slots: 40, 10 and 5 of them.
	for i := 0; i < 55; i++ {
		cands[r.pick(cands, LeastConnections, nil, 0)].Load.Start()
	}
	for c, want := range map[int]int{0: 40, 1: 10, 2: 5} {
		if got := cands[c].Load.InFlight(); got != want {
			t.Fatalf("%s has %d in flight, want %d (in proportion to slots 8:2:1)", cands[c].Alias, got, want)
		}
	}
}

// A member's slots tag is its own claim: one past any sane count is capped,
// so the load ratio's arithmetic cannot overflow and pick the busier worker.
func TestLeastConnectionsSurvivesAbsurdSlots(t *testing.T) {
	r := newRegistry()
	cands := r.Candidates(members(
		workerMember("huge", protocol.StateAlive, map[string]string{"role": "worker", "slots": "9223372036854775807"}),
		workerMember("one", protocol.StateAlive, map[string]string{"role": "worker", "slots": "1"}),
		workerMember("neg", protocol.StateAlive, map[string]string{"role": "worker", "slots": "-5"}),
	), "d", DefaultFilter())
	if cands[0].Slots != maxAdvertisedSlots || cands[2].Slots != 0 {
		t.Fatalf("slots read as %d and %d", cands[0].Slots, cands[2].Slots)
	}
	for i := 0; i < 3; i++ {
		cands[0].Load.Start()
	}
	for i := 0; i < 2; i++ {
		cands[1].Load.Start()
		cands[2].Load.Start()
	}
	for i := 0; i < 6; i++ { // every rotation of the tie-break start
		if got := cands[r.pick(cands, LeastConnections, nil, 0)].Alias; got != "huge" {
			t.Fatalf("picked %s, want huge (3 of %d in flight beats 2 of 1)", got, maxAdvertisedSlots)
		}
	}
}

// A suspect worker gets a job only when no alive one is left: a suspicion
// (anyone may raise one) does not stop the jobs of its only worker.
func TestSuspectWorkersArePickedLast(t *testing.T) {
	r := newRegistry()
	cands := r.Candidates(members(
		workerMember("s", protocol.StateSuspect, roleWorker),
		workerMember("a", protocol.StateAlive, roleWorker),
	), "d", DefaultFilter())
	cands[1].Load.Start() // busier than the suspect: still preferred
	for _, st := range []Strategy{LeastConnections, RoundRobin, Random} {
		for i := range 4 {
			if got := cands[r.pick(cands, st, nil, uint64(i))].Alias; got != "a" {
				t.Fatalf("%v picked %s, want the alive worker", st, got)
			}
		}
		if got := cands[r.pick(cands, st, []string{"a"}, 0)].Alias; got != "s" {
			t.Fatalf("%v with the alive worker skipped picked %s, want the suspect", st, got)
		}
	}
	cands[0].Load.setDown(true)
	if got := cands[r.pick(cands, LeastConnections, []string{"a"}, 0)].Alias; got != "s" {
		t.Fatalf("a suspect worker marked down is still the last resort: picked %s", got)
	}
}

func TestRandomUsesTheCallersNumber(t *testing.T) {
	r := newRegistry()
	cands := threeWorkers(r)
	counts := map[string]int{}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 3000; i++ {
		counts[cands[r.pick(cands, Random, nil, rng.Uint64())].Alias]++
	}
	for w, n := range counts {
		if n < 800 || n > 1200 {
			t.Fatalf("random gave %s %d of 3000: %v", w, n, counts)
		}
	}
	if got := cands[r.pick(cands, Random, nil, 4)].Alias; got != "w2" {
		t.Fatalf("rnd=4 of 3 picked %s, want w2", got)
	}
}

func TestPickSkipsAndPrefersWorkersNotDown(t *testing.T) {
	for _, s := range []Strategy{LeastConnections, RoundRobin, Random} {
		t.Run(s.String(), func(t *testing.T) {
			r := newRegistry()
			cands := threeWorkers(r)
			for i := 0; i < 20; i++ {
				if got := cands[r.pick(cands, s, []string{"w1", "w3"}, uint64(i))].Alias; got != "w2" {
					t.Fatalf("picked %s, skipping w1 and w3", got)
				}
			}
			if i := r.pick(cands, s, []string{"w1", "w2", "w3"}, 0); i != -1 {
				t.Fatalf("every worker skipped, picked %d", i)
			}
			cands[1].Load.setDown(true)
			for i := 0; i < 20; i++ {
				if got := cands[r.pick(cands, s, nil, uint64(i))].Alias; got == "w2" {
					t.Fatal("picked a worker marked down while others are up")
				}
			}
			// Down workers are the last resort, not excluded.
			if got := cands[r.pick(cands, s, []string{"w1", "w3"}, 0)].Alias; got != "w2" {
				t.Fatalf("picked %s, want the down worker as last resort", got)
			}
			if r.pick(nil, s, nil, 0) != -1 {
				t.Fatal("no candidates, yet a pick")
			}
		})
	}
}

// TestLoadCountersDoNotDrift drives thousands of attempts through every exit
// path, from several goroutines, the way a dispatcher does: each attempt is
// started once and finished once, whatever its outcome.
func TestLoadCountersDoNotDrift(t *testing.T) {
	r := newRegistry()
	cands := threeWorkers(r)
	outcomes := []outcomeKind{Answered, Refused, Lost, Abandoned}
	var answered [4]uint64
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, 7))
			var open []*Load
			var mine [4]uint64
			for i := 0; i < 5000; i++ {
				strat := Strategy(rng.IntN(3))
				if rng.IntN(3) > 0 || len(open) == 0 {
					l := cands[r.pick(cands, strat, nil, rng.Uint64())].Load
					l.Start()
					open = append(open, l)
					continue
				}
				k := rng.IntN(len(open))
				o := outcomes[rng.IntN(len(outcomes))]
				open[k].finish(o)
				mine[o]++
				open = append(open[:k], open[k+1:]...)
			}
			for _, l := range open {
				o := outcomes[rng.IntN(len(outcomes))]
				l.finish(o)
				mine[o]++
			}
			mu.Lock()
			for i := range mine {
				answered[i] += mine[i]
			}
			mu.Unlock()
		}(uint64(g))
	}
	wg.Wait()
	var done, lost uint64
	for _, c := range cands {
		if c.Load.InFlight() != 0 {
			t.Errorf("%s: %d in flight after every attempt ended", c.Alias, c.Load.InFlight())
		}
		done += c.Load.Done()
		lost += c.Load.Unanswered()
	}
	if done != answered[Answered] || lost != answered[Refused]+answered[Lost]+answered[Abandoned] {
		t.Fatalf("done %d lost %d, want %d and %d", done, lost, answered[Answered], answered[Refused]+answered[Lost]+answered[Abandoned])
	}
}

func TestFilterString(t *testing.T) {
	if got := FilterString(map[string]string{"zone": "a", "role": "gpu"}); got != "role=gpu,zone=a" {
		t.Fatalf("FilterString = %q", got)
	}
	if got := FilterString(DefaultFilter()); got != "role=worker" {
		t.Fatalf("FilterString = %q", got)
	}
}
