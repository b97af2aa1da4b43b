package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"meshell/mesh/keyring"
)

// benchCluster is a dispatcher and workers joined, each node given opts.
func benchCluster(b *testing.B, workers int, opts ...testOpt) *Node {
	b.Helper()
	d := startNode(b, "d", opts...)
	for i := 0; i < workers; i++ {
		w := startNode(b, fmt.Sprintf("w%d", i+1), append([]testOpt{withTags("role=worker")}, opts...)...)
		if _, err := w.Join(ctxFor(b, 10*time.Second), d.Addr()); err != nil {
			b.Fatal(err)
		}
	}
	err := d.WaitFor(ctxFor(b, 20*time.Second), func(s *Snapshot) bool { return s.Count(StateAlive) == workers+1 })
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// keyed gives every node of a benchmark the same in-memory cluster key.
func keyed(b *testing.B) testOpt {
	k, err := keyring.Generate()
	if err != nil {
		b.Fatal(err)
	}
	return func(c *Config) {
		ring, _ := keyring.New(k)
		c.Keyring = &Keyring{ring}
	}
}

// BenchmarkEncryption compares plaintext and TLS 1.3 on the job path: one job
// at a time (the round trip) and GOMAXPROCS×128 in flight to three workers
// (ns/op is the inverse of throughput).
func BenchmarkEncryption(b *testing.B) {
	req := DispatchRequest{Kind: "echo", Args: []string{payload64}}
	for _, mode := range []string{"plain", "tls"} {
		opts := func(b *testing.B) []testOpt {
			if mode == "tls" {
				return []testOpt{keyed(b)}
			}
			return nil
		}
		b.Run("c1/"+mode, func(b *testing.B) {
			d := benchCluster(b, 1, opts(b)...)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := d.Dispatch(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("c256/"+mode, func(b *testing.B) {
			d := benchCluster(b, 3, opts(b)...)
			b.ReportAllocs()
			b.SetParallelism(128)
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
		})
	}
}
