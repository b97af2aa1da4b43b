package operator

import (
	"sync/atomic"
	"testing"
	"time"
)

// signedBatch pre-signs n distinct requests, so a benchmark times Verify
// alone and never trips the replay cache.
func signedBatch(b *testing.B, n int) (*Verifier, []Signed) {
	b.Helper()
	alice := testKey(b, "alice", 1)
	v := testVerifier(b, testOperators(b, alice, testKey(b, "bob", 2)), VerifierConfig{MaxNonces: n + 1})
	reqs := make([]Signed, n)
	for i := range reqs {
		reqs[i] = mustSign(b, alice, "config", []string{"log-level", "debug"}, "n2", DefaultTTL, t0)
	}
	return v, reqs
}

func BenchmarkVerify(b *testing.B) {
	v, reqs := signedBatch(b, b.N)
	now := t0.Add(time.Second)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := v.Verify(reqs[i], "n2", now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyParallel(b *testing.B) {
	v, reqs := signedBatch(b, b.N)
	now := t0.Add(time.Second)
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.Verify(reqs[next.Add(1)-1], "n2", now); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkVerifyRefused is the cost of turning away a forged request that
// passes every cheap check: one failed signature verification.
func BenchmarkVerifyRefused(b *testing.B) {
	v, reqs := signedBatch(b, 1)
	s := clone(reqs[0])
	s.Sig[0] ^= 1
	now := t0.Add(time.Second)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(s, "n2", now); err == nil {
			b.Fatal("forged request accepted")
		}
	}
}

func BenchmarkSign(b *testing.B) {
	alice := testKey(b, "alice", 1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Sign(alice, "config", []string{"log-level", "debug"}, "n2", testBoot, DefaultTTL, t0); err != nil {
			b.Fatal(err)
		}
	}
}
