package node

import (
	"net"
	"strings"
	"testing"
	"time"
)

func TestRetryBackoffDoublesUpToTheCapWithJitter(t *testing.T) {
	r := Retry{First: 250 * time.Millisecond, Cap: 2 * time.Second}
	for round, want := range map[int]time.Duration{1: 250 * time.Millisecond, 2: 500 * time.Millisecond, 3: time.Second, 4: 2 * time.Second, 50: 2 * time.Second} {
		seen := map[time.Duration]bool{}
		for range 200 {
			w := r.wait(round)
			if w < want*8/10 || w > want*12/10 {
				t.Fatalf("round %d waits %v, want %v ±20%%", round, w, want)
			}
			seen[w] = true
		}
		if len(seen) < 10 {
			t.Errorf("round %d: only %d distinct waits in 200: no jitter", round, len(seen))
		}
	}
}

func TestJoinRetryTriesAgainUntilMaxButNotAfterARefusal(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close() // nothing listens there: each round fails without an answer

	n := startNode(t, "joiner")
	var rounds []int
	r := Retry{Max: 2, First: time.Millisecond, Cap: time.Millisecond, Failed: func(round int, err error, wait time.Duration) { rounds = append(rounds, round) }}
	if _, err := n.JoinRetry(ctxFor(t, time.Minute), []string{closed}, 5*time.Second, r); err == nil || Final(err) {
		t.Fatalf("joining through a closed port: %v", err)
	}
	if len(rounds) != 1 || rounds[0] != 1 {
		t.Fatalf("Failed was told of rounds %v, want [1] (the second and last is not retried)", rounds)
	}

	seed := startNode(t, "seed")
	if _, err := startNode(t, "dup").Join(ctxFor(t, 10*time.Second), seed.Addr()); err != nil {
		t.Fatal(err)
	}
	waitAlive(t, seed, 2) // the seed lists the first dup before the second claims its alias
	dup := startNode(t, "dup")
	rounds = nil
	r.Max = 0 // no limit: only the refusal can end it
	_, err = dup.JoinRetry(ctxFor(t, time.Minute), []string{seed.Addr()}, 5*time.Second, r)
	if err == nil || !Final(err) || !strings.Contains(err.Error(), "already used") || len(rounds) != 0 {
		t.Fatalf("a refused join: %v after rounds %v; want one final refusal", err, rounds)
	}
}

// In protected mode an address off this machine is never dialled, so a
// join through it ends at once instead of trying it round after round.
func TestJoinRetryOffLoopbackInProtectedModeIsFinal(t *testing.T) {
	n := startNode(t, "joiner")
	var rounds []int
	r := Retry{First: time.Millisecond, Cap: time.Millisecond, Failed: func(round int, err error, wait time.Duration) { rounds = append(rounds, round) }}
	_, err := n.JoinRetry(ctxFor(t, time.Minute), []string{"192.0.2.1:7001"}, 5*time.Second, r)
	if err == nil || !Final(err) || !strings.Contains(err.Error(), "is not on loopback") || len(rounds) != 0 {
		t.Fatalf("a protected node joining 192.0.2.1: %v after rounds %v; want one final error", err, rounds)
	}
}
