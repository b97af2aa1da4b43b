package node

import (
	"context"
	"strings"
	"testing"
)

var payload64 = strings.Repeat("x", 64)

// BenchmarkDispatchLoopback is one dispatcher and one worker node in this
// process over real loopback TCP, one job at a time: ns/op is the round
// trip, allocs/op counts both sides (request, answer, codec).
func BenchmarkDispatchLoopback(b *testing.B) {
	d, _ := jobCluster(b, "w1")
	req := DispatchRequest{Kind: "echo", Args: []string{payload64}}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := d.Dispatch(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDispatchLoopbackParallel keeps many jobs in flight (GOMAXPROCS×32
// callers) from one dispatcher to three workers: ns/op is the inverse of
// throughput.
func BenchmarkDispatchLoopbackParallel(b *testing.B) {
	d, _ := jobCluster(b, "w1", "w2", "w3")
	req := DispatchRequest{Kind: "echo", Args: []string{payload64}}
	b.ReportAllocs()
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if _, err := d.Dispatch(ctx, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkDispatchLocal is the dispatcher's own cost: the node is its own
// worker, so no socket and no codec are involved.
func BenchmarkDispatchLocal(b *testing.B) {
	n := startNode(b, "solo", withTags("role=worker"))
	waitAlive(b, n, 1)
	req := DispatchRequest{Kind: "echo", Args: []string{payload64}}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := n.Dispatch(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}
