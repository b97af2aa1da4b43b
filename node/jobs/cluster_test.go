package jobs

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"meshell/protocol"
)

// These tests run the job plane's dispatch, busy, failover, cancel and
// drain paths over the in-memory cluster of host_test.go: no sockets, and
// no sleeps (every wait is on a channel the job kinds signal).

func TestDispatchRunsOnAMatchingWorker(t *testing.T) {
	_, d, _ := jobCluster(t, "w1", "w2")
	seen := map[string]int{}
	for i := 0; i < 4; i++ {
		res, err := d.Dispatch(context.Background(), DispatchRequest{Kind: "echo", Args: []string{"hi"}, Strategy: RoundRobin})
		if err != nil || res.Result != "hi" || res.Attempts != 1 || res.Retried {
			t.Fatalf("echo: %+v %v", res, err)
		}
		seen[res.Worker]++
	}
	if seen["w1"] != 2 || seen["w2"] != 2 {
		t.Fatalf("round robin over two workers: %v", seen)
	}
	if _, err := d.Dispatch(context.Background(), DispatchRequest{Kind: "echo", Tags: map[string]string{"name": "w3"}}); !errors.Is(err, ErrNoWorker) {
		t.Fatalf("no worker matches: %v", err)
	}
	assertNoInFlight(t, d)
}

// TestBusyWorkerIsSkipped: a worker whose slot and queue are full answers
// busy, and the job goes to another at once.
func TestBusyWorkerIsSkipped(t *testing.T) {
	c, d, ws := jobCluster(t, "w1", "w2")
	g, g2 := newGate(), newGate()
	ws[0].RegisterKind("job", g.kind("w1"))
	ws[1].RegisterKind("job", g2.kind("w2"))
	ws[0].SetSlots(1)
	ws[0].SetJobQueue(0)
	c.publish()
	other := c.add(t, "other", nil, Limits{}, RunConfig{}) // fills w1's only slot
	done := make(chan error, 1)
	go func() {
		_, err := other.Dispatch(context.Background(), DispatchRequest{Kind: "job", Tags: map[string]string{"name": "w1"}})
		done <- err
	}()
	if got := <-g.started; got != "w1" {
		t.Fatalf("the filler started on %s", got)
	}
	busyBefore := ws[0].Stats().Busy
	for i := 0; i < 2; i++ {
		go func() { <-g2.started; g2.release <- struct{}{} }()
		res, err := d.Dispatch(context.Background(), DispatchRequest{Kind: "job", Strategy: RoundRobin})
		if err != nil || res.Worker != "w2" {
			t.Fatalf("job %d: %+v %v, want it on w2", i, res, err)
		}
	}
	if ws[0].Stats().Busy == busyBefore {
		t.Fatal("w1 never answered busy")
	}
	close(g.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	assertNoInFlight(t, d)
}

// TestFailoverWhenTheWorkerIsLost: a job whose worker fails, or whose
// connection drops, runs again on another worker; its caller sees one
// result.
func TestFailoverWhenTheWorkerIsLost(t *testing.T) {
	for _, how := range []string{"failed", "dropped its connection"} {
		t.Run(how, func(t *testing.T) {
			c, d, ws := jobCluster(t, "w1", "w2")
			g := newGate()
			ws[0].RegisterKind("job", g.kind("w1"))
			ws[1].RegisterKind("job", g.kind("w2"))
			type out struct {
				res DispatchResult
				err error
			}
			done := make(chan out, 1)
			go func() {
				res, err := d.Dispatch(context.Background(), DispatchRequest{Kind: "job"})
				done <- out{res, err}
			}()
			first := <-g.started
			if how == "failed" {
				c.setState(first, protocol.StateFailed)
				d.MemberGone(first, false)
			} else {
				c.setCut(first, true)
				d.PeerDown(first)
			}
			second := <-g.started
			if second == first {
				t.Fatalf("the job ran again on %s, which was lost", first)
			}
			close(g.release) // the lost attempt's answer, if it comes, is not waited for
			o := <-done
			if o.err != nil || o.res.Result != "released on "+second || !o.res.Retried || o.res.Attempts != 2 || o.res.Worker != second {
				t.Fatalf("after losing %s: %+v %v", first, o.res, o.err)
			}
			assertNoInFlight(t, d)
		})
	}
}

// TestCancelWithdrawsTheJobFromItsWorker: the caller's ctx ending sends
// JobCancel, and the worker's kind sees its context end.
func TestCancelWithdrawsTheJobFromItsWorker(t *testing.T) {
	_, d, ws := jobCluster(t, "w1")
	g := newGate()
	ws[0].RegisterKind("job", g.kind("w1"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := d.Dispatch(ctx, DispatchRequest{Kind: "job"})
		done <- err
	}()
	<-g.started
	cancel()
	// It says "cancelled" plainly, and is still the context's error.
	if err := <-done; err == nil || !strings.HasSuffix(err.Error(), "cancelled on w1") || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled dispatch: %v", err)
	}
	if recs := d.RecentJobs(); len(recs) != 1 || recs[0].State != "cancelled" {
		t.Fatalf("the cancelled job is recorded as %+v, want its state cancelled", recs)
	}
	if err := <-g.ended; !errors.Is(err, context.Canceled) {
		t.Fatalf("the worker's job ended with %v, want its context cancelled", err)
	}
	assertNoInFlight(t, d)
}

// TestDrainSendsJobsElsewhere: a draining worker answers rejected, so its
// dispatchers fail over at once; after Resume it takes jobs again.
func TestDrainSendsJobsElsewhere(t *testing.T) {
	_, d, ws := jobCluster(t, "w1", "w2")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws[0].Drain(ctx) // nothing runs: returns at once
	if !ws[0].Stats().Draining {
		t.Fatal("w1 is not draining")
	}
	for i := 0; i < 4; i++ {
		res, err := d.Dispatch(context.Background(), DispatchRequest{Kind: "echo", Args: []string{"x"}, Strategy: RoundRobin})
		if err != nil || res.Worker != "w2" {
			t.Fatalf("job %d while w1 drains: %+v %v", i, res, err)
		}
	}
	if ws[0].Stats().Rejected == 0 {
		t.Fatal("w1 rejected nothing while draining")
	}
	ws[0].Resume()
	seen := map[string]bool{}
	for i := 0; i < 2; i++ {
		res, err := d.Dispatch(context.Background(), DispatchRequest{Kind: "echo", Args: []string{"x"}, Strategy: RoundRobin})
		if err != nil {
			t.Fatal(err)
		}
		seen[res.Worker] = true
	}
	if !seen["w1"] {
		t.Fatalf("w1 took no job after Resume: %v", seen)
	}
	assertNoInFlight(t, d)
}
