package node

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkRunTrue10Nodes is `!run --all -- true` on 10 in-process nodes
// over loopback: each op is one round, from the request to every exit
// status gathered, beside the floor of spawning `true` 10 times in parallel
// here with os/exec, measured in the same op. Reported: p50/p99 of both and
// p50 above the floor. Run it with -benchtime=200x for 200 rounds.
func BenchmarkRunTrue10Nodes(b *testing.B) {
	d := startNode(b, "n00", allowRun)
	nodes := []*Node{d}
	for i := 1; i < 10; i++ {
		n := startNode(b, fmt.Sprintf("n%02d", i), allowRun)
		if _, err := n.Join(ctxFor(b, 10*time.Second), d.Addr()); err != nil {
			b.Fatal(err)
		}
		nodes = append(nodes, n)
	}
	for _, n := range nodes {
		waitAlive(b, n, len(nodes))
	}
	targets := make([]string, len(nodes))
	for i, n := range nodes {
		targets[i] = n.Alias()
	}
	truePath, err := exec.LookPath("true")
	if err != nil {
		b.Skip("no true program")
	}
	req := RunRequest{Targets: targets, Command: []string{truePath}}
	ctx := context.Background()
	round := func() time.Duration {
		start := time.Now()
		replies, err := d.Run(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range replies {
			if !r.OK() {
				b.Fatalf("%s: %+v", r.Alias, r)
			}
		}
		return time.Since(start)
	}
	floor := func() time.Duration {
		start := time.Now()
		var wg sync.WaitGroup
		for range len(nodes) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := exec.Command(truePath).Run(); err != nil {
					b.Error(err)
				}
			}()
		}
		wg.Wait()
		return time.Since(start)
	}
	round() // connections warm
	var runs, floors []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%2 == 0 { // alternate, so that neither always runs on a cooler machine
			runs = append(runs, round())
			floors = append(floors, floor())
		} else {
			floors = append(floors, floor())
			runs = append(runs, round())
		}
	}
	b.StopTimer()
	slices.Sort(runs)
	slices.Sort(floors)
	pct := func(s []time.Duration, p float64) float64 {
		return float64(s[min(len(s)-1, int(p*float64(len(s))))].Microseconds()) / 1e3
	}
	b.ReportMetric(pct(runs, .5), "run-p50-ms")
	b.ReportMetric(pct(runs, .99), "run-p99-ms")
	b.ReportMetric(pct(floors, .5), "floor-p50-ms")
	b.ReportMetric(pct(floors, .99), "floor-p99-ms")
	b.ReportMetric(pct(runs, .5)-pct(floors, .5), "above-floor-p50-ms")
}

// benchKind is the !bench path for kind on three workers that declare
// echo2=/bin/echo: 16 callers (!bench's default concurrency) dispatching
// jobs; ns/op is the inverse of the throughput, jobs/s is reported.
func benchKind(b *testing.B, kind string) {
	echo, err := exec.LookPath("echo")
	if err != nil {
		b.Skip("no echo program")
	}
	d := startNode(b, "d")
	for _, a := range []string{"w1", "w2", "w3"} {
		w := startNode(b, a, withTags("role=worker"), withKinds("echo2="+echo))
		if _, err := w.Join(ctxFor(b, 10*time.Second), d.Addr()); err != nil {
			b.Fatal(err)
		}
	}
	waitAlive(b, d, 4)
	req := DispatchRequest{Kind: kind, Args: []string{payload64}}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	next := make(chan struct{}, b.N)
	for range b.N {
		next <- struct{}{}
	}
	close(next)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				if _, err := d.Dispatch(ctx, req); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "jobs/s")
}

func BenchmarkBenchDeclaredEcho2(b *testing.B) { benchKind(b, "echo2") }
func BenchmarkBenchBuiltinEcho(b *testing.B)   { benchKind(b, "echo") }
