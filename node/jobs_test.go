package node

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"meshell/node/jobs"
	"meshell/node/swim"
	"meshell/protocol"
)

func withTags(kv ...string) testOpt {
	return func(c *Config) {
		c.Tags = map[string]string{}
		for _, s := range kv {
			k, v, _ := strings.Cut(s, "=")
			c.Tags[k] = v
		}
	}
}

// jobCluster starts a dispatcher d and workers tagged role=worker and
// name=ALIAS, joined through d, and waits until d sees every worker alive.
func jobCluster(t testing.TB, workers ...string) (*Node, []*Node) {
	t.Helper()
	d := startNode(t, "d")
	var ws []*Node
	for _, a := range workers {
		w := startNode(t, a, withTags("role=worker", "name="+a))
		if _, err := w.Join(ctxFor(t, 10*time.Second), d.Addr()); err != nil {
			t.Fatalf("%s joining: %v", a, err)
		}
		ws = append(ws, w)
	}
	err := d.WaitFor(ctxFor(t, 20*time.Second), func(s *Snapshot) bool {
		for _, a := range workers {
			e, ok := s.Get(a)
			if !ok || e.State != StateAlive || e.Tags["role"] != "worker" {
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Fatalf("d does not see the workers: %v %+v", err, d.Members().Entries)
	}
	for _, w := range ws {
		waitAlive(t, w, len(workers)+1)
	}
	return d, ws
}

// gate is a job kind that tells the test it started and waits for release
// or its context.
type gate struct {
	started chan string
	release chan struct{}
	ended   chan error
}

func newGate() *gate {
	return &gate{started: make(chan string, 64), release: make(chan struct{}), ended: make(chan error, 64)}
}

func (g *gate) kind(name string) KindFunc {
	return func(ctx context.Context, args []string, emit func(string) error) (string, error) {
		g.started <- name
		select {
		case <-g.release:
			g.ended <- nil
			return "released on " + name, nil
		case <-ctx.Done():
			g.ended <- ctx.Err()
			return "", ctx.Err()
		}
	}
}

func quick(name string) KindFunc {
	return func(ctx context.Context, args []string, emit func(string) error) (string, error) {
		return "quick on " + name, nil
	}
}

func assertNoInFlight(t *testing.T, d *Node) {
	t.Helper()
	if s := d.jobStats(); s.InFlight != 0 {
		t.Errorf("dispatcher reports %d jobs in flight after all returned", s.InFlight)
	}
	for _, w := range d.Workers(nil) {
		if w.InFlight != 0 {
			t.Errorf("%s: %d in flight after all jobs returned", w.Alias, w.InFlight)
		}
	}
}

func TestDispatchBuiltinKinds(t *testing.T) {
	d, _ := jobCluster(t, "w1", "w2")
	ctx := ctxFor(t, 20*time.Second)
	cases := []struct {
		kind string
		args []string
		want string
	}{
		{"echo", []string{"hello", "world"}, "hello world"},
		{"sha256", []string{"abc"}, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		{"primes", []string{"100"}, "25"},
		{"primes", []string{"1"}, "0"},
		{"sleep", []string{"1ms"}, "slept 1ms"},
	}
	for _, c := range cases {
		t.Run(c.kind+" "+strings.Join(c.args, " "), func(t *testing.T) {
			res, err := d.Dispatch(ctx, DispatchRequest{Kind: c.kind, Args: c.args})
			if err != nil {
				t.Fatal(err)
			}
			if res.Result != c.want || res.Attempts != 1 || (res.Worker != "w1" && res.Worker != "w2") || res.Job == 0 {
				t.Fatalf("got %+v, want result %q from w1 or w2 in one attempt", res, c.want)
			}
		})
	}
	_, err := d.Dispatch(ctx, DispatchRequest{Kind: "primes", Args: []string{"x"}})
	if err == nil || !strings.Contains(err.Error(), "primes: N must be") {
		t.Fatalf("bad argument: %v", err)
	}
	_, err = d.Dispatch(ctx, DispatchRequest{Kind: "teleport"})
	if err == nil || !strings.Contains(err.Error(), `unknown job kind "teleport"`) {
		t.Fatalf("unknown kind: %v", err)
	}
	recent := d.RecentJobs()
	if len(recent) != len(cases)+2 || recent[0].State != "ok" || recent[len(recent)-1].State != "error" {
		t.Fatalf("recent jobs: %+v", recent)
	}
	assertNoInFlight(t, d)
}

func TestDispatchStreamsChunksInOrder(t *testing.T) {
	d, _ := jobCluster(t, "w1")
	var got []string
	res, err := d.Dispatch(ctxFor(t, 20*time.Second), DispatchRequest{Kind: "stream", Args: []string{"50"},
		OnChunk: func(seq int, data string) {
			if seq != len(got)+1 {
				t.Errorf("chunk seq %d after %d chunks", seq, len(got))
			}
			got = append(got, data)
		}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 50 || got[0] != "chunk 1/50" || got[49] != "chunk 50/50" || res.Result != "50 chunks" || res.Chunks != 50 {
		t.Fatalf("result %+v, chunks %v", res, got)
	}
}

func TestRoundRobinSpreadsExactly(t *testing.T) {
	d, _ := jobCluster(t, "w1", "w2", "w3")
	counts := map[string]int{}
	for i := 0; i < 30; i++ {
		res, err := d.Dispatch(ctxFor(t, 10*time.Second), DispatchRequest{Kind: "echo", Args: []string{"x"}, Strategy: jobs.RoundRobin})
		if err != nil {
			t.Fatal(err)
		}
		counts[res.Worker]++
	}
	if counts["w1"] != 10 || counts["w2"] != 10 || counts["w3"] != 10 {
		t.Fatalf("round-robin: %v", counts)
	}
	for _, w := range d.Workers(nil) {
		if w.Done != 10 || w.Slots != runtime.NumCPU() {
			t.Errorf("%+v: want 10 done and %d slots", w, runtime.NumCPU())
		}
	}
}

func TestNoMatchingWorkerNamesFilterAndWorkers(t *testing.T) {
	d, _ := jobCluster(t, "w1", "w2")
	_, err := d.Dispatch(ctxFor(t, 5*time.Second), DispatchRequest{Kind: "echo", Tags: map[string]string{"role": "gpu"}})
	if !errors.Is(err, ErrNoWorker) {
		t.Fatalf("err = %v, want ErrNoWorker", err)
	}
	for _, want := range []string{"matches role=gpu", "w1 (name=w1,role=worker)", "w2 (name=w2,role=worker)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
}

// TestWorkerQueueBound drives a worker's admission directly: slots run,
// the queue holds up to its bound, and past that requests are busy.
func TestBusyWorkerSendsJobElsewhere(t *testing.T) {
	d, ws := jobCluster(t, "w1", "w2")
	w1 := ws[0]
	w1.SetSlots(1)
	w1.SetJobQueue(0)
	g := newGate()
	w1.RegisterKind("hold", g.kind("w1"))
	// w1 fills its only slot with a job of its own (a local worker).
	done := make(chan error, 1)
	go func() {
		_, err := w1.Dispatch(context.Background(), DispatchRequest{Kind: "hold", Tags: map[string]string{"name": "w1"}})
		done <- err
	}()
	<-g.started
	// Round-robin from a fresh dispatcher starts with w1, which is busy.
	res, err := d.Dispatch(ctxFor(t, 10*time.Second), DispatchRequest{Kind: "echo", Args: []string{"x"}, Strategy: jobs.RoundRobin})
	if err != nil {
		t.Fatal(err)
	}
	if res.Worker != "w2" || res.Attempts != 2 || !res.Retried {
		t.Fatalf("got %+v, want w2 after w1 answered busy", res)
	}
	if s := w1.jobStats(); s.Busy != 1 {
		t.Fatalf("w1 stats %+v, want one busy answer", s)
	}
	close(g.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	assertNoInFlight(t, d)
}

func TestEveryWorkerBusyFailsWithAnExplanation(t *testing.T) {
	d, ws := jobCluster(t, "w1")
	w1 := ws[0]
	w1.SetJobQueue(0)
	w1.SetSlots(1)
	g := newGate()
	w1.RegisterKind("hold", g.kind("w1"))
	done := make(chan error, 1)
	go func() {
		_, err := w1.Dispatch(context.Background(), DispatchRequest{Kind: "hold", Tags: map[string]string{"name": "w1"}})
		done <- err
	}()
	<-g.started // w1's only slot is taken, and it queues nothing
	_, err := d.Dispatch(ctxFor(t, 10*time.Second), DispatchRequest{Kind: "echo"})
	if err == nil || !strings.Contains(err.Error(), "busy") || !strings.Contains(err.Error(), "w1 busy") {
		t.Fatalf("err = %v", err)
	}
	close(g.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	assertNoInFlight(t, d)
}

// A worker with 0 slots says so, and how to give it some, whether the
// dispatcher saw its slots tag already (every candidate has 0) or not (the
// worker answers).
func TestWorkerWithNoSlotsSaysSo(t *testing.T) {
	d := startNode(t, "d")
	w1 := startNode(t, "w1", withTags("role=worker"), func(c *Config) { c.Run.Allow = true })
	if _, err := w1.Join(ctxFor(t, 10*time.Second), d.Addr()); err != nil {
		t.Fatal(err)
	}
	waitAlive(t, d, 2)
	if err := w1.SetSlots(0); err != nil {
		t.Fatal(err)
	}
	want := "w1 has 0 slots and takes no jobs; give it slots with !scale w1 N"
	_, err := d.Dispatch(ctxFor(t, 10*time.Second), DispatchRequest{Kind: "echo", Worker: "w1"})
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("sent to w1 by name: %v", err)
	}
	replies, err := d.Run(ctxFor(t, 10*time.Second), RunRequest{Targets: []string{"w1"}, Command: []string{"true"}})
	if err != nil || len(replies) != 1 || !replies[0].Refused || replies[0].Error != "refused: w1 has 0 slots and takes no jobs; give it slots with !scale w1 N" {
		t.Errorf("!run on w1: %+v %v", replies, err)
	}
	if err := d.WaitFor(ctxFor(t, 10*time.Second), func(s *Snapshot) bool {
		e, ok := s.Get("w1")
		return ok && e.Tags["slots"] == "0"
	}); err != nil {
		t.Fatal(err)
	}
	_, err = d.Dispatch(ctxFor(t, 10*time.Second), DispatchRequest{Kind: "echo"})
	if err == nil || err.Error() != "no matching worker takes jobs: "+want {
		t.Errorf("by strategy: %v", err)
	}
	assertNoInFlight(t, d)
}

// A worker with 0 slots is passed over: every job goes to one that takes
// jobs, at the first attempt, whatever the strategy.
func TestWorkerWithNoSlotsIsPassedOver(t *testing.T) {
	d, ws := jobCluster(t, "w1", "w2")
	if err := ws[1].SetSlots(0); err != nil {
		t.Fatal(err)
	}
	if err := d.WaitFor(ctxFor(t, 10*time.Second), func(s *Snapshot) bool { e, _ := s.Get("w2"); return e.Tags["slots"] == "0" }); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"least-connections", "round-robin", "random"} {
		st, err := ParseStrategy(name)
		if err != nil {
			t.Fatal(err)
		}
		for range 6 {
			res, err := d.Dispatch(ctxFor(t, 10*time.Second), DispatchRequest{Kind: "echo", Args: []string{"x"}, Strategy: st})
			if err != nil || res.Worker != "w1" || res.Attempts != 1 {
				t.Fatalf("%s: %+v %v; want w1 at the first attempt", name, res, err)
			}
		}
	}
}

func TestTimeoutCancelsTheJobOnItsWorker(t *testing.T) {
	d, ws := jobCluster(t, "w1")
	g := newGate()
	ws[0].RegisterKind("hold", g.kind("w1"))
	_, err := d.Dispatch(ctxFor(t, 10*time.Second), DispatchRequest{Kind: "hold", Timeout: 100 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "timed out after") || !strings.Contains(err.Error(), "on w1") {
		t.Fatalf("err = %v", err)
	}
	if err := <-g.ended; err == nil {
		t.Fatal("the worker's job was not cancelled")
	}
	assertNoInFlight(t, d)
}

func TestCallerCancelSendsJobCancel(t *testing.T) {
	d, ws := jobCluster(t, "w1")
	g := newGate()
	ws[0].RegisterKind("hold", g.kind("w1"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := d.Dispatch(ctx, DispatchRequest{Kind: "hold"})
		done <- err
	}()
	<-g.started
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if err := <-g.ended; !errors.Is(err, context.Canceled) {
		t.Fatalf("the worker's job ended with %v, want its context cancelled", err)
	}
	assertNoInFlight(t, d)
}

func TestFailoverWhenWorkerClosesMidJob(t *testing.T) {
	d, ws := jobCluster(t, "w1", "w2")
	g := newGate()
	ws[0].RegisterKind("job", g.kind("w1"))
	ws[1].RegisterKind("job", quick("w2"))
	done := make(chan struct{})
	var res DispatchResult
	var err error
	go func() {
		defer close(done)
		res, err = d.Dispatch(ctxFor(t, 20*time.Second), DispatchRequest{Kind: "job", Strategy: jobs.RoundRobin})
	}()
	<-g.started
	ws[0].Close()
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if res.Result != "quick on w2" || res.Attempts != 2 || res.Worker != "w2" {
		t.Fatalf("got %+v, want the job re-run on w2", res)
	}
	assertNoInFlight(t, d)
}

func TestFailoverIsBounded(t *testing.T) {
	d, ws := jobCluster(t, "w1")
	g := newGate()
	ws[0].RegisterKind("job", g.kind("w1"))
	done := make(chan error, 1)
	go func() {
		_, err := d.Dispatch(ctxFor(t, 20*time.Second), DispatchRequest{Kind: "job", MaxAttempts: 1})
		done <- err
	}()
	<-g.started
	ws[0].Close()
	err := <-done
	if err == nil || !strings.Contains(err.Error(), "failed after 1 attempt:") || !strings.Contains(err.Error(), "w1") {
		t.Fatalf("err = %v", err)
	}
	assertNoInFlight(t, d)
}

func TestCustomKindAndLocalWorker(t *testing.T) {
	solo := startNode(t, "solo", withTags("role=worker"))
	solo.RegisterKind("upper", func(ctx context.Context, args []string, emit func(string) error) (string, error) {
		for _, a := range args {
			if err := emit(a); err != nil {
				return "", err
			}
		}
		return strings.ToUpper(strings.Join(args, " ")), nil
	})
	waitAlive(t, solo, 1)
	var chunks []string
	res, err := solo.Dispatch(ctxFor(t, 5*time.Second), DispatchRequest{Kind: "upper", Args: []string{"a", "b"},
		OnChunk: func(seq int, data string) { chunks = append(chunks, data) }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Result != "A B" || res.Worker != "solo" || strings.Join(chunks, ",") != "a,b" {
		t.Fatalf("got %+v chunks %v", res, chunks)
	}
	if err := solo.RegisterKind("two words", quick("x")); err == nil {
		t.Fatal("a kind name with a space was accepted")
	}
}

func TestDrainJobsRejectsNewAndFailsOverStragglers(t *testing.T) {
	d, ws := jobCluster(t, "w1", "w2")
	w1 := ws[0]
	g := newGate()
	w1.RegisterKind("job", g.kind("w1"))
	ws[1].RegisterKind("job", quick("w2"))
	ctx := ctxFor(t, 20*time.Second)
	// Round-robin: A → w1, B → w2, C → w1.
	aDone := make(chan struct{})
	var a DispatchResult
	var aErr error
	go func() {
		defer close(aDone)
		a, aErr = d.Dispatch(ctx, DispatchRequest{Kind: "job", Strategy: jobs.RoundRobin})
	}()
	<-g.started
	if b, err := d.Dispatch(ctx, DispatchRequest{Kind: "echo", Strategy: jobs.RoundRobin}); err != nil || b.Worker != "w2" {
		t.Fatalf("B: %+v %v", b, err)
	}
	dctx, stopDrain := context.WithCancel(context.Background())
	drained := make(chan struct{})
	go func() { w1.drainJobs(dctx); close(drained) }()
	for !w1.jobStats().Draining {
		runtime.Gosched()
	}
	c, err := d.Dispatch(ctx, DispatchRequest{Kind: "echo", Args: []string{"c"}, Strategy: jobs.RoundRobin})
	if err != nil || c.Worker != "w2" || c.Attempts != 2 {
		t.Fatalf("C: %+v %v, want rejected by w1 then run on w2", c, err)
	}
	stopDrain() // the drain's time is up: A is cancelled on w1 and fails over
	<-drained
	<-aDone
	if aErr != nil || a.Worker != "w2" || a.Result != "quick on w2" || a.Attempts != 2 {
		t.Fatalf("A: %+v %v, want it failed over to w2", a, aErr)
	}
	if s := w1.jobStats(); s.Rejected != 2 || s.Running != 0 {
		t.Fatalf("w1 stats %+v, want 2 rejected and nothing running", s)
	}
	w1.resumeJobs()
	if s := w1.jobStats(); s.Draining {
		t.Fatal("still draining after ResumeJobs")
	}
	assertNoInFlight(t, d)
}

func TestDrainJobsWaitsForRunningJobs(t *testing.T) {
	d, ws := jobCluster(t, "w1")
	g := newGate()
	ws[0].RegisterKind("job", g.kind("w1"))
	done := make(chan error, 1)
	go func() {
		_, err := d.Dispatch(context.Background(), DispatchRequest{Kind: "job"})
		done <- err
	}()
	<-g.started
	drained := make(chan struct{})
	go func() { ws[0].drainJobs(context.Background()); close(drained) }()
	select {
	case <-drained:
		t.Fatal("DrainJobs returned while a job was running")
	default:
	}
	close(g.release)
	<-drained
	if err := <-done; err != nil {
		t.Fatalf("the running job was disturbed by the drain: %v", err)
	}
}

func TestSlotsAreGossiped(t *testing.T) {
	d, ws := jobCluster(t, "w1")
	if err := ws[0].SetSlots(7); err != nil {
		t.Fatal(err)
	}
	err := d.WaitFor(ctxFor(t, 20*time.Second), func(s *Snapshot) bool {
		e, _ := s.Get("w1")
		return e.Tags["slots"] == "7" && e.Tags["role"] == "worker"
	})
	if err != nil {
		t.Fatalf("d never saw slots=7: %+v", d.Workers(nil))
	}
	if ws := d.Workers(map[string]string{"slots": "7"}); len(ws) != 1 || ws[0].Slots != 7 {
		t.Fatalf("workers: %+v", ws)
	}
}

// TestNoInFlightDriftAfterMixedOutcomes runs many jobs that end every way a
// job can: answered, failed, busy, timed out, cancelled, lost.
func TestNoInFlightDriftAfterMixedOutcomes(t *testing.T) {
	d, ws := jobCluster(t, "w1", "w2", "w3")
	for _, w := range ws {
		w.SetSlots(2)
		w.SetJobQueue(4)
		w.RegisterKind("fail", func(ctx context.Context, args []string, emit func(string) error) (string, error) {
			return "", errors.New("boom")
		})
	}
	ws[2].RegisterKind("hang", func(ctx context.Context, args []string, emit func(string) error) (string, error) {
		<-ctx.Done()
		return "", ctx.Err()
	})
	var wg sync.WaitGroup
	var oks, errs atomic.Int64
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 60; i++ {
				req := DispatchRequest{Kind: "echo", Args: []string{"x"}, Strategy: jobs.Strategy(i % 3)}
				ctx, cancel := context.WithCancel(context.Background())
				switch (g + i) % 5 {
				case 1:
					req.Kind = "fail"
				case 2:
					req.Kind, req.Args, req.Timeout = "sleep", []string{"50ms"}, 5*time.Millisecond
				case 3:
					req.Kind, req.Args = "sleep", []string{"2ms"}
				case 4:
					req.Kind, req.Args = "sleep", []string{"1s"}
					time.AfterFunc(3*time.Millisecond, cancel)
				}
				if _, err := d.Dispatch(ctx, req); err != nil {
					errs.Add(1)
				} else {
					oks.Add(1)
				}
				cancel()
			}
		}(g)
	}
	// A hanging job is lost when its worker goes.
	lostDone := make(chan error, 1)
	go func() {
		_, err := d.Dispatch(context.Background(), DispatchRequest{Kind: "hang", Tags: map[string]string{"name": "w3"}, MaxAttempts: 1})
		lostDone <- err
	}()
	wg.Wait()
	ws[2].Close()
	if err := <-lostDone; err == nil {
		t.Fatal("a job lost with its only worker succeeded")
	}
	if oks.Load() == 0 || errs.Load() == 0 {
		t.Fatalf("ok %d, errors %d: the mix did not exercise both", oks.Load(), errs.Load())
	}
	assertNoInFlight(t, d)
	t.Logf("ok %d, errors %d", oks.Load(), errs.Load())
}

func ExampleNode_Dispatch() {
	n, _ := New(Config{Alias: "solo", Bind: "127.0.0.1:0", Tags: map[string]string{"role": "worker"}, Log: quietLog()})
	defer n.Close()
	n.Start("")
	n.WaitFor(context.Background(), func(s *Snapshot) bool { return s.Count(StateAlive) == 1 })
	n.RegisterKind("greet", func(ctx context.Context, args []string, emit func(string) error) (string, error) {
		return "hello, " + strings.Join(args, " "), nil
	})
	res, err := n.Dispatch(context.Background(), DispatchRequest{Kind: "greet", Args: []string{"world"}})
	fmt.Println(res.Result, res.Worker, err)
	// Output: hello, world solo <nil>
}

// TestRemoteScaleIsBoundedByMaxSlots: the remote scale command goes through
// SetSlots and so refuses more than the owner's MaxSlots.
func TestRemoteScaleIsBoundedByMaxSlots(t *testing.T) {
	d, ws := jobCluster(t, "w1")
	limit := ws[0].jobStats().MaxSlots
	want := fmt.Sprintf("slots %d exceeds this node's --max-slots %d (set by its owner at start-up)", limit+1, limit)
	replies, err := d.Control(ctxFor(t, 20*time.Second), []string{"w1"}, ControlRequest{Op: OpScale, N: int64(limit + 1)}, 10*time.Second)
	if err != nil || len(replies) != 1 || replies[0].OK || replies[0].Error != want {
		t.Fatalf("remote scale to %d: %+v %v, want the error %q", limit+1, replies, err, want)
	}
	replies, err = d.Control(ctxFor(t, 20*time.Second), []string{"w1"}, ControlRequest{Op: OpScale, N: int64(limit)}, 10*time.Second)
	if err != nil || len(replies) != 1 || !replies[0].OK || replies[0].Status.Slots != limit {
		t.Fatalf("remote scale to %d: %+v %v", limit, replies, err)
	}
}

// News that a worker left, while its connection works, does not end its
// jobs: it may be forged (one frame from anyone), and a worker that leaves
// drains and closes, which ends them then. The worker refutes the news.
func TestLeftNewsOverAWorkingConnectionKeepsTheJobs(t *testing.T) {
	d, ws := jobCluster(t, "w1", "w2")
	g := newGate()
	ws[0].RegisterKind("hold", g.kind("w1"))
	done := make(chan error, 1)
	go func() {
		_, err := d.Dispatch(ctxFor(t, 20*time.Second), DispatchRequest{Kind: "hold", Tags: map[string]string{"name": "w1"}})
		done <- err
	}()
	<-g.started
	e, _ := d.Members().Get("w1")
	forged := protocol.Member{Alias: "w1", Addr: e.Addr, State: protocol.StateLeft, Incarnation: e.Incarnation, Tags: e.Tags}
	if err := d.call(ctxFor(t, 5*time.Second), func(c *swim.Core) {
		c.Step(time.Now(), "w2", &protocol.Gossip{Updates: []protocol.Member{forged}})
	}); err != nil {
		t.Fatal(err)
	}
	close(g.release)
	if err := <-done; err != nil {
		t.Fatalf("the job ended with %v after forged news that its worker left", err)
	}
	waitState(t, d, "w1", StateAlive) // refuted
}
