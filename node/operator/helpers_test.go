package operator

import (
	"bytes"
	"crypto/ed25519"
	"slices"
	"strings"
	"testing"
	"time"
)

// t0 is the tests' fixed clock; every test passes times explicitly.
var t0 = time.Unix(1_700_000_000, 0)

// testKey is a deterministic key for name.
func testKey(t testing.TB, name string, seed byte) *PrivateKey {
	t.Helper()
	if err := ValidName(name); err != nil {
		t.Fatal(err)
	}
	return &PrivateKey{name: name, key: &secret{ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))}}
}

// testOperators lists keys as an operators file would.
func testOperators(t testing.TB, keys ...*PrivateKey) *Operators {
	t.Helper()
	var lines []string
	for _, k := range keys {
		lines = append(lines, k.PublicLine())
	}
	ops, err := ParseOperators(strings.NewReader(strings.Join(lines, "\n")), "test")
	if err != nil {
		t.Fatal(err)
	}
	return ops
}

// testBoot is the boot id of every testVerifier, which mustSign signs for:
// the tests of anything but boot ids play one run of a node. The tests of
// boot ids use NewVerifier's own.
const testBoot = "0123456789abcdef"

func testVerifier(t testing.TB, ops *Operators, cfg VerifierConfig) *Verifier {
	t.Helper()
	v, err := NewVerifier(ops, cfg)
	if err != nil {
		t.Fatal(err)
	}
	v.boot = testBoot
	return v
}

func mustSign(t testing.TB, k *PrivateKey, op string, args []string, target string, ttl time.Duration, now time.Time) Signed {
	t.Helper()
	s, err := Sign(k, op, args, target, testBoot, ttl, now)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// resign signs s as it stands with k, to build validly signed requests that
// Sign itself would not make.
func resign(k *PrivateKey, s Signed) Signed {
	s.Sig = ed25519.Sign(k.key.PrivateKey, s.Message())
	return s
}

// clone deep-copies s so a test case may tamper with it.
func clone(s Signed) Signed {
	s.Args = slices.Clone(s.Args)
	s.Nonce = slices.Clone(s.Nonce)
	s.Sig = slices.Clone(s.Sig)
	return s
}
