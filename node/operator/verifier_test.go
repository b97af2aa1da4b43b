package operator

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestVerifyReplay(t *testing.T) {
	alice := testKey(t, "alice", 1)
	ops := testOperators(t, alice)
	sec := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }

	t.Run("second use refused", func(t *testing.T) {
		v := testVerifier(t, ops, VerifierConfig{})
		s := mustSign(t, alice, "shutdown", nil, "n2", DefaultTTL, t0)
		if _, err := v.Verify(s, "n2", sec(1)); err != nil {
			t.Fatal(err)
		}
		for _, at := range []time.Time{sec(1), sec(2), sec(29)} {
			if _, err := v.Verify(s, "n2", at); !errors.Is(err, ErrReplayed) || err.Error() != "replayed" {
				t.Fatalf("replay at %v: %v, want replayed", at.Sub(t0), err)
			}
		}
	})
	t.Run("same nonce under a fresh signature refused", func(t *testing.T) {
		v := testVerifier(t, ops, VerifierConfig{})
		s := mustSign(t, alice, "scale", []string{"1"}, "n2", DefaultTTL, t0)
		if _, err := v.Verify(s, "n2", t0); err != nil {
			t.Fatal(err)
		}
		again := clone(s)
		again.Args = []string{"2"}
		if _, err := v.Verify(resign(alice, again), "n2", t0); !errors.Is(err, ErrReplayed) {
			t.Fatalf("reused nonce: %v, want replayed", err)
		}
	})
	t.Run("nonce forgotten once its request expired", func(t *testing.T) {
		v := testVerifier(t, ops, VerifierConfig{})
		first := mustSign(t, alice, "ping", nil, "n2", DefaultTTL, t0)
		if _, err := v.Verify(first, "n2", sec(1)); err != nil {
			t.Fatal(err)
		}
		if v.Nonces() != 1 {
			t.Fatalf("%d nonces remembered, want 1", v.Nonces())
		}
		later := mustSign(t, alice, "ping", nil, "n2", DefaultTTL, sec(31))
		if _, err := v.Verify(later, "n2", sec(31)); err != nil {
			t.Fatal(err)
		}
		if v.Nonces() != 1 {
			t.Fatalf("%d nonces remembered after the first expired, want 1", v.Nonces())
		}
		if _, err := v.Verify(first, "n2", sec(31)); !errors.Is(err, ErrExpired) {
			t.Fatalf("forgotten request replayed after expiry: %v, want expired", err)
		}
	})
	t.Run("full cache refuses new requests until some expire", func(t *testing.T) {
		v := testVerifier(t, ops, VerifierConfig{MaxNonces: 2})
		r1 := mustSign(t, alice, "ping", nil, "n2", DefaultTTL, t0)
		r2 := mustSign(t, alice, "ping", nil, "n2", DefaultTTL, t0)
		r3 := mustSign(t, alice, "ping", nil, "n2", DefaultTTL, sec(20))
		for _, r := range []Signed{r1, r2} {
			if _, err := v.Verify(r, "n2", sec(1)); err != nil {
				t.Fatal(err)
			}
		}
		_, err := v.Verify(r3, "n2", sec(21))
		want := "replay cache full (2 requests live); refusing new requests until some expire (at most 2m0s)"
		if !errors.Is(err, ErrReplayCacheFull) || err.Error() != want {
			t.Fatalf("third request: %v, want %q", err, want)
		}
		if _, err := v.Verify(r1, "n2", sec(21)); !errors.Is(err, ErrReplayed) {
			t.Fatalf("replay into a full cache: %v, want replayed", err)
		}
		if _, err := v.Verify(r3, "n2", sec(30)); err != nil {
			t.Fatalf("once the first two expired: %v", err)
		}
		if v.Nonces() != 1 {
			t.Fatalf("%d nonces remembered, want 1", v.Nonces())
		}
	})
	t.Run("shorter MaxTTL", func(t *testing.T) {
		v := testVerifier(t, ops, VerifierConfig{MaxTTL: 10 * time.Second})
		_, err := v.Verify(mustSign(t, alice, "ping", nil, "n2", DefaultTTL, t0), "n2", t0)
		if !errors.Is(err, ErrTooFarAhead) || err.Error() != "expires in 30s, more than the 10s allowed" {
			t.Fatalf("got %v", err)
		}
	})
}

// TestVerifyRefusesAnEarlierRun is a node restarted within a captured
// request's life: its new Verifier remembers no nonce, and refuses the
// request for the boot id it names.
func TestVerifyRefusesAnEarlierRun(t *testing.T) {
	alice := testKey(t, "alice", 1)
	ops := testOperators(t, alice)
	first, err := NewVerifier(ops, VerifierConfig{})
	if err != nil {
		t.Fatal(err)
	}
	captured, err := Sign(alice, "shutdown", nil, "n2", first.Boot(), MaxTTL, t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Verify(captured, "n2", t0); err != nil {
		t.Fatalf("first run: %v", err)
	}
	if _, err := first.Verify(captured, "n2", t0); !errors.Is(err, ErrReplayed) {
		t.Fatalf("first run, again: %v, want replayed", err)
	}

	restarted, err := NewVerifier(ops, VerifierConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if restarted.Boot() == first.Boot() {
		t.Fatalf("two runs share the boot id %s", first.Boot())
	}
	for _, at := range []time.Duration{time.Second, MaxTTL - time.Nanosecond} {
		_, err := restarted.Verify(captured, "n2", t0.Add(at))
		if !errors.Is(err, ErrEarlierRun) || err.Error() != "signed for an earlier run of this node; resend" {
			t.Fatalf("captured request replayed %v later to the restarted node: %v, want refused as of an earlier run", at, err)
		}
	}
	reaimed := clone(captured)
	reaimed.Boot = restarted.Boot()
	if _, err := restarted.Verify(reaimed, "n2", t0); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("captured request with the new boot id written in: %v, want bad signature", err)
	}
	if restarted.Nonces() != 0 {
		t.Fatalf("%d nonces remembered from refused requests", restarted.Nonces())
	}

	fresh, err := Sign(alice, "shutdown", nil, "n2", restarted.Boot(), DefaultTTL, t0.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := restarted.Verify(fresh, "n2", t0.Add(time.Second)); err != nil {
		t.Fatalf("a request signed for the new run: %v", err)
	}
	if _, err := first.Verify(fresh, "n2", t0.Add(time.Second)); !errors.Is(err, ErrEarlierRun) {
		t.Fatalf("a request for the new run shown to the old one: %v, want refused", err)
	}

	old, err := Sign(alice, "shutdown", nil, "n2", "", DefaultTTL, t0) // an older signer's
	if err != nil {
		t.Fatal(err)
	}
	if old.Message()[len(signLabel)] != signVersionOld {
		t.Fatalf("a request without a boot id is not signed as version %d", signVersionOld)
	}
	if _, err := restarted.Verify(old, "n2", t0); !errors.Is(err, ErrNoBoot) {
		t.Fatalf("a request without a boot id: %v, want refused", err)
	}
}

func TestBootIDs(t *testing.T) {
	ops := testOperators(t, testKey(t, "alice", 1))
	seen := map[string]bool{}
	for range 100 {
		v, err := NewVerifier(ops, VerifierConfig{})
		if err != nil {
			t.Fatal(err)
		}
		b := v.Boot()
		if len(b) != 16 || strings.Trim(b, "0123456789abcdef") != "" {
			t.Fatalf("boot id %q, want 16 hex digits", b)
		}
		if seen[b] {
			t.Fatalf("boot id %s made twice", b)
		}
		seen[b] = true
		if v.SetOperators(ops); v.Boot() != b {
			t.Fatal("reloading the operators changed the boot id; the replay cache is kept")
		}
	}
}

func TestVerifyConcurrentReplayAcceptsOnce(t *testing.T) {
	alice := testKey(t, "alice", 1)
	v := testVerifier(t, testOperators(t, alice), VerifierConfig{})
	s := mustSign(t, alice, "shutdown", nil, "n2", DefaultTTL, t0)
	const n = 32
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			_, err := v.Verify(s, "n2", t0)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	accepted := 0
	for err := range errs {
		switch {
		case err == nil:
			accepted++
		case !errors.Is(err, ErrReplayed):
			t.Errorf("unexpected refusal: %v", err)
		}
	}
	if accepted != 1 {
		t.Fatalf("accepted %d times, want once", accepted)
	}
}

func TestVerifyConcurrentWithReload(t *testing.T) {
	alice, bob := testKey(t, "alice", 1), testKey(t, "bob", 2)
	both, justAlice := testOperators(t, alice, bob), testOperators(t, alice)
	v := testVerifier(t, both, VerifierConfig{})
	const workers, each = 8, 50
	reqs := make([][]Signed, workers)
	for w := range reqs {
		for range each {
			reqs[w] = append(reqs[w], mustSign(t, alice, "ping", nil, "n2", DefaultTTL, t0))
		}
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i, s := range reqs[w] {
				if _, err := v.Verify(s, "n2", t0.Add(time.Duration(i)*time.Millisecond)); err != nil {
					t.Errorf("worker %d request %d: %v", w, i, err)
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 100 {
			if i%2 == 0 {
				v.SetOperators(justAlice)
			} else {
				v.SetOperators(both)
			}
		}
	})
	wg.Wait()
	if v.Nonces() != workers*each {
		t.Fatalf("%d nonces remembered, want %d", v.Nonces(), workers*each)
	}
}

func TestSetOperators(t *testing.T) {
	alice, bob := testKey(t, "alice", 1), testKey(t, "bob", 2)
	v := testVerifier(t, testOperators(t, alice, bob), VerifierConfig{})
	fromBob := mustSign(t, bob, "ping", nil, "n2", DefaultTTL, t0)
	fromAlice := mustSign(t, alice, "ping", nil, "n2", DefaultTTL, t0)
	if _, err := v.Verify(fromAlice, "n2", t0); err != nil {
		t.Fatal(err)
	}

	v.SetOperators(testOperators(t, alice)) // bob left the operators file
	if _, err := v.Verify(fromBob, "n2", t0); !errors.Is(err, ErrUnknownOperator) {
		t.Fatalf("removed operator: %v, want unknown operator", err)
	}
	if _, err := v.Verify(fromAlice, "n2", t0); !errors.Is(err, ErrReplayed) {
		t.Fatalf("replay after a reload: %v, want replayed (the cache must survive)", err)
	}
	if got := strings.Join(v.Operators().Names(), ","); got != "alice" {
		t.Fatalf("Operators = %s", got)
	}
	v.SetOperators(nil) // ignored: a nil set would accept nobody by accident
	if v.Operators().Len() != 1 {
		t.Fatal("SetOperators(nil) replaced the operators")
	}
}

func TestNewVerifierRefuses(t *testing.T) {
	ops := testOperators(t, testKey(t, "alice", 1))
	for _, tc := range []struct {
		name string
		ops  *Operators
		cfg  VerifierConfig
		want string
	}{
		{"no operators", nil, VerifierConfig{}, "new verifier: no operators"},
		{"negative MaxTTL", ops, VerifierConfig{MaxTTL: -1}, "new verifier: negative MaxTTL (-1ns) or MaxNonces (0)"},
		{"negative MaxNonces", ops, VerifierConfig{MaxNonces: -1}, "new verifier: negative MaxTTL (0s) or MaxNonces (-1)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewVerifier(tc.ops, tc.cfg); err == nil || err.Error() != tc.want {
				t.Fatalf("got %v, want %s", err, tc.want)
			}
		})
	}
}
