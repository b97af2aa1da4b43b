//go:build unix

package mesh

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"meshell/protocol"
)

// BenchmarkJoinHandshake is one Join as a join storm makes them, both ends
// in this process, one at a time: a listening mesh dials another, the Join
// and JoinAck cross, and both sides start the connection's reader and
// writer. The diallers are made before the clock runs and closed while it
// is stopped, in batches of 500 (file descriptors). cpu-µs/op is the
// process's CPU (user and system) per Join, both ends together: what each
// of a storm's N·(N−1)/2 connections costs on one host, at the least.
func BenchmarkJoinHandshake(b *testing.B) {
	var addr string
	acfg := DefaultConfig("c", func() protocol.Member { return protocol.Member{Alias: "a", Addr: addr} })
	acfg.Log = quiet()
	a := New(acfg, newRecorder())
	ln, err := a.Listen("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr = ln.String()
	defer a.Close()
	b.StopTimer()
	var cpu time.Duration
	for done := 0; done < b.N; {
		ds := make([]*Mesh, min(500, b.N-done))
		for i := range ds {
			alias := fmt.Sprintf("b%07d", done+i)
			cfg := DefaultConfig("c", func() protocol.Member { return protocol.Member{Alias: alias, Addr: "127.0.0.1:1"} })
			cfg.Log = quiet()
			ds[i] = New(cfg, newRecorder())
			if _, err := ds[i].Listen("127.0.0.1:0"); err != nil {
				b.Fatal(err)
			}
		}
		var ru0, ru1 syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
		b.StartTimer()
		for _, d := range ds {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if _, err := d.Join(ctx, addr); err != nil {
				b.Fatal(err)
			}
			cancel()
		}
		b.StopTimer()
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
		cpu += time.Duration(ru1.Utime.Nano() - ru0.Utime.Nano() + ru1.Stime.Nano() - ru0.Stime.Nano())
		for _, d := range ds {
			d.Close()
		}
		done += len(ds)
	}
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
}
