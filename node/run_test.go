package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"meshell/node/jobs"
)

func allowRun(c *Config) { c.Run.Allow = true }

func withKinds(specs ...string) testOpt {
	return func(c *Config) {
		for _, s := range specs {
			d, err := ParseKindSpec(s)
			if err != nil {
				panic(err)
			}
			c.Run.Kinds = append(c.Run.Kinds, d)
		}
	}
}

// joined starts nodes and joins each to the first, waiting until every one
// sees all of them alive.
func joined(t *testing.T, nodes ...*Node) {
	t.Helper()
	for _, n := range nodes[1:] {
		if _, err := n.Join(ctxFor(t, 10*time.Second), nodes[0].Addr()); err != nil {
			t.Fatalf("%s joining: %v", n.Alias(), err)
		}
	}
	for _, n := range nodes {
		waitAlive(t, n, len(nodes))
	}
}

// waitIdle waits until n runs no job.
func waitIdle(t *testing.T, n *Node) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for n.jobStats().Running > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s still runs %d jobs", n.Alias(), n.jobStats().Running)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// outputs collects what Run streams, per alias.
type outputs struct {
	mu  sync.Mutex
	out map[string]string
}

func (o *outputs) add(alias string, stderr bool, data string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if stderr {
		alias += "!"
	}
	o.out[alias] += data
}

func TestRunOnEveryKindOfTarget(t *testing.T) {
	d := startNode(t, "d", allowRun)
	w1 := startNode(t, "w1", allowRun)
	w2 := startNode(t, "w2") // no --allow-run
	joined(t, d, w1, w2)
	o := &outputs{out: map[string]string{}}
	replies, err := d.Run(ctxFor(t, 30*time.Second), RunRequest{Targets: []string{"d", "w1", "w2", "ghost"},
		Command: []string{"sh", "-c", "echo $MESHELL_ALIAS $MESHELL_CLUSTER; echo warn >&2"}, OnOutput: o.add})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range replies[:2] {
		if !r.OK() || r.Stdout != r.Alias+" meshell\n" || r.Stderr != "warn\n" {
			t.Errorf("%s: %+v", r.Alias, r)
		}
		if o.out[r.Alias] != r.Stdout || o.out[r.Alias+"!"] != "warn\n" {
			t.Errorf("%s streamed %q and %q", r.Alias, o.out[r.Alias], o.out[r.Alias+"!"])
		}
	}
	if r := replies[2]; !r.Refused || r.Error != "refused: started without --allow-run" || r.OK() {
		t.Errorf("w2 without --allow-run: %+v", r)
	}
	if r := replies[3]; r.NoAnswer || !strings.Contains(r.Error, "ghost is not a member, so nothing was sent to it") {
		t.Errorf("ghost: %+v", r)
	}

	replies, _ = d.Run(ctxFor(t, 30*time.Second), RunRequest{Targets: []string{"w1"}, Command: []string{"sh", "-c", "echo partial; exit 4"}})
	if r := replies[0]; !r.Exited || r.Exit != 4 || r.Error != "" || r.Stdout != "partial\n" || r.OK() {
		t.Errorf("exit 4: %+v", r)
	}
	replies, _ = d.Run(ctxFor(t, 30*time.Second), RunRequest{Targets: []string{"w1"}, Command: []string{"no-such-program"}})
	if r := replies[0]; r.Exit != 127 || !strings.Contains(r.Error, "executable file not found") || strings.Contains(r.Error, "on w1") { // the reply names its node; its error need not
		t.Errorf("a missing program: %+v", r)
	}
	if _, err := d.Run(ctxFor(t, 30*time.Second), RunRequest{Targets: []string{"w1"}}); err == nil {
		t.Error("a run without a command was sent")
	}
}

func TestRunTimeoutAndCancelKillTheCommand(t *testing.T) {
	d := startNode(t, "d")
	w := startNode(t, "w", allowRun)
	joined(t, d, w)
	start := time.Now()
	replies, _ := d.Run(ctxFor(t, 30*time.Second), RunRequest{Targets: []string{"w"}, Command: []string{"sleep", "30"}, Timeout: 500 * time.Millisecond})
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("a 500ms timeout returned after %v", took)
	}
	if r := replies[0]; !r.NoAnswer || r.Error != "no answer within 500ms" {
		t.Errorf("timed out: %+v", r)
	}
	waitIdle(t, w)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan []RunReply, 1)
	go func() {
		r, _ := d.Run(ctx, RunRequest{Targets: []string{"w"}, Command: []string{"sleep", "30"}})
		done <- r
	}()
	deadline := time.Now().Add(20 * time.Second)
	for w.jobStats().Running == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if r := (<-done)[0]; !r.NoAnswer || r.Error != "cancelled before an answer" {
		t.Errorf("cancelled: %+v", r)
	}
	waitIdle(t, w)

	// The dispatcher goes away: its command goes with it.
	go d.Run(context.Background(), RunRequest{Targets: []string{"w"}, Command: []string{"sleep", "30"}})
	deadline = time.Now().Add(20 * time.Second)
	for w.jobStats().Running == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	d.Close()
	waitIdle(t, w)
}

func TestRunNeedsAnOperatorSignature(t *testing.T) {
	key, verifier := operatorPair(t, "alice")
	d := startNode(t, "d")
	w := startNode(t, "w", allowRun, func(c *Config) { c.Operators = verifier })
	joined(t, d, w)
	run := RunRequest{Targets: []string{"w"}, Command: []string{"echo", "signed"}}
	replies, _ := d.Run(ctxFor(t, 30*time.Second), run)
	if r := replies[0]; !r.Refused || !strings.Contains(r.Error, "only for its operators") {
		t.Fatalf("unsigned run: %+v", r)
	}
	d.cfg.OperatorKey = key
	replies, _ = d.Run(ctxFor(t, 30*time.Second), run)
	if r := replies[0]; !r.OK() || r.Stdout != "signed\n" {
		t.Fatalf("signed run: %+v", r)
	}
	// That the signature covers the command is node/jobs' TestRunSignatureCoversTheCommand.
}

func TestDeclaredKindsRunOnTheWorkersThatDeclareThem(t *testing.T) {
	d := startNode(t, "d")
	worker := func(alias string, extra ...string) *Node {
		return startNode(t, alias, withTags("role=worker"), withKinds(append([]string{"echo2=/bin/echo", `fail=sh -c 'echo out; echo bad news >&2; exit 3'`}, extra...)...))
	}
	w1, w2, w3 := worker("w1", "gpu=echo gpu"), worker("w2"), worker("w3")
	joined(t, d, w1, w2, w3)
	if got := w1.Self().Tags[KindsTag]; got != "echo2+fail+gpu" {
		t.Errorf("w1 gossips kinds=%q", got)
	}
	kinds := strings.Join(d.Kinds(), ",")
	if !strings.Contains(kinds, "echo2") || !strings.Contains(kinds, "gpu") || strings.Contains(kinds, RunKind) {
		t.Errorf("kinds known at d: %s", kinds)
	}
	by := map[string]int{}
	for i := range 30 {
		res, err := d.Dispatch(ctxFor(t, 30*time.Second), DispatchRequest{Kind: "echo2", Args: []string{"hi", fmt.Sprint(i)}, Strategy: jobs.RoundRobin})
		if err != nil || res.Result != "hi "+fmt.Sprint(i) {
			t.Fatalf("echo2: %q %v", res.Result, err)
		}
		by[res.Worker]++
	}
	if by["w1"] != 10 || by["w2"] != 10 || by["w3"] != 10 {
		t.Errorf("round-robin over three workers: %v", by)
	}
	for range 6 {
		res, err := d.Dispatch(ctxFor(t, 30*time.Second), DispatchRequest{Kind: "gpu", Args: []string{"x"}})
		if err != nil || res.Worker != "w1" || res.Result != "gpu x" {
			t.Fatalf("gpu, declared on w1 only: %+v %v", res, err)
		}
	}
	res, err := d.Dispatch(ctxFor(t, 30*time.Second), DispatchRequest{Kind: "fail"})
	if err == nil || !strings.Contains(err.Error(), "exit status 3; stderr: bad news") || res.Answer() == nil || res.Answer().Exit != 3 || res.Attempts != 1 {
		t.Fatalf("a failing kind: %+v %v", res, err)
	}
	if res.WorkerLatency <= 0 || res.WorkerLatency > res.Latency {
		t.Errorf("worker latency %v, job latency %v", res.WorkerLatency, res.Latency)
	}
}

func TestDeclaredKindRunsAgainOnlyWhenIdempotent(t *testing.T) {
	for _, c := range []struct {
		kind  string
		again bool
	}{{"once", false}, {"again", true}} {
		t.Run(c.kind, func(t *testing.T) {
			d := startNode(t, "d")
			opts := []testOpt{withTags("role=worker"), withKinds("once=sleep", "again!=sleep")}
			w1, w2 := startNode(t, "w1", opts...), startNode(t, "w2", opts...)
			joined(t, d, w1, w2)
			type result struct {
				res DispatchResult
				err error
			}
			done := make(chan result, 1)
			go func() {
				res, err := d.Dispatch(context.Background(), DispatchRequest{Kind: c.kind, Args: []string{"1"}, Timeout: 30 * time.Second})
				done <- result{res, err}
			}()
			var victim *Node
			deadline := time.Now().Add(20 * time.Second)
			for victim == nil && time.Now().Before(deadline) {
				for _, w := range []*Node{w1, w2} {
					if w.jobStats().Running > 0 {
						victim = w
					}
				}
				time.Sleep(5 * time.Millisecond)
			}
			if victim == nil {
				t.Fatal("the job never started")
			}
			victim.Close()
			r := <-done
			if c.again {
				if r.err != nil || r.res.Attempts != 2 || r.res.Worker == victim.Alias() {
					t.Fatalf("idempotent kind after its worker was lost: %+v %v", r.res, r.err)
				}
				return
			}
			if r.err == nil || !strings.Contains(r.err.Error(), "not run again") && !strings.Contains(r.err.Error(), "not idempotent") || r.res.Attempts != 1 {
				t.Fatalf("a kind that is not idempotent ran again: %+v %v", r.res, r.err)
			}
		})
	}
}

func TestTheRunKindIsNeverStrategyPicked(t *testing.T) {
	d := startNode(t, "d", allowRun, withTags("role=worker"))
	waitAlive(t, d, 1)
	if _, err := d.Dispatch(ctxFor(t, 10*time.Second), DispatchRequest{Kind: RunKind, Args: []string{"true"}}); err == nil || !strings.Contains(err.Error(), "named nodes only") {
		t.Fatalf("run through a strategy: %v", err)
	}
	if err := d.RegisterKind(RunKind, quick("d")); err == nil {
		t.Fatal("a Go kind took the name run")
	}
}

// A shutdown without Now drains: a command running on the node finishes
// (exit 0, all its output) before the node leaves.
func TestShutdownLetsARunningCommandFinish(t *testing.T) {
	d, w := startNode(t, "d"), startNode(t, "w", allowRun)
	joined(t, d, w)
	release := filepath.Join(t.TempDir(), "release")
	started := make(chan struct{})
	var once sync.Once
	done := make(chan []RunReply, 1)
	go func() {
		r, _ := d.Run(ctxFor(t, 30*time.Second), RunRequest{Targets: []string{"w"},
			Command:  []string{"sh", "-c", `echo started; while [ ! -e "$0" ]; do sleep 0.01; done; echo finished`, release},
			OnOutput: func(string, bool, string) { once.Do(func() { close(started) }) }})
		done <- r
	}()
	<-started
	replies, err := d.Control(ctxFor(t, 10*time.Second), []string{"w"}, ControlRequest{Op: OpShutdown}, 5*time.Second)
	if err != nil || !replies[0].OK {
		t.Fatalf("shutdown: %+v %v", replies, err)
	}
	for !w.jobStats().Draining {
		runtime.Gosched()
	}
	if err := os.WriteFile(release, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if len(r) != 1 || !r[0].OK() || r[0].Stdout != "started\nfinished\n" {
		t.Fatalf("the command under a draining shutdown: %+v", r)
	}
	select {
	case <-w.ShutdownRequested():
	case <-time.After(20 * time.Second):
		t.Fatal("w did not finish its shutdown after the command ended")
	}
}
