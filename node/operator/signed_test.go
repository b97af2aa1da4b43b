package operator

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestSignVerify(t *testing.T) {
	alice, bob := testKey(t, "alice", 1), testKey(t, "bob", 2)
	ops := testOperators(t, alice, bob)
	for _, tc := range []struct {
		name  string
		key   *PrivateKey
		op    string
		args  []string
		ttl   time.Duration
		after time.Duration // verifier's clock minus signer's
	}{
		{"ping with no arguments", alice, "ping", nil, DefaultTTL, 0},
		{"config with arguments", bob, "config", []string{"log-level", "debug"}, DefaultTTL, time.Second},
		{"empty and odd arguments", alice, "x", []string{"", " ", "a\x00b", "ünï"}, DefaultTTL, 0},
		{"just before expiry", alice, "ping", nil, DefaultTTL, DefaultTTL - time.Nanosecond},
		{"longest ttl", alice, "ping", nil, MaxTTL, 0},
		{"verifier's clock 90s behind", alice, "ping", nil, DefaultTTL, -90 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := testVerifier(t, ops, VerifierConfig{})
			s := mustSign(t, tc.key, tc.op, tc.args, "n2", tc.ttl, t0)
			issuer, err := v.Verify(s, "n2", t0.Add(tc.after))
			if err != nil || issuer != tc.key.Name() {
				t.Fatalf("Verify = %q, %v; want %q", issuer, err, tc.key.Name())
			}
		})
	}
}

func TestVerifyRefusesTampering(t *testing.T) {
	alice, bob := testKey(t, "alice", 1), testKey(t, "bob", 2)
	ops := testOperators(t, alice, bob)
	base := mustSign(t, alice, "config", []string{"log-level", "debug"}, "n2", DefaultTTL, t0)
	for _, tc := range []struct {
		name   string
		tamper func(s *Signed)
		self   string // the verifying node; n2 unless set
		want   error
		msg    string // the exact error text, when it matters
	}{
		{"op changed", func(s *Signed) { s.Op = "shutdown" }, "", ErrBadSignature, "bad signature"},
		{"one arg changed", func(s *Signed) { s.Args[1] = "trace" }, "", ErrBadSignature, ""},
		{"args reordered", func(s *Signed) { s.Args[0], s.Args[1] = s.Args[1], s.Args[0] }, "", ErrBadSignature, ""},
		{"arg dropped", func(s *Signed) { s.Args = s.Args[:1] }, "", ErrBadSignature, ""},
		{"arg added", func(s *Signed) { s.Args = append(s.Args, "") }, "", ErrBadSignature, ""},
		{"args joined", func(s *Signed) { s.Args = []string{"log-leveldebug"} }, "", ErrBadSignature, ""},
		{"target changed to the verifier", func(s *Signed) { s.Target = "n3" }, "n3", ErrBadSignature, ""},
		{"target changed, verified at the real target", func(s *Signed) { s.Target = "n3" }, "", ErrWrongTarget, "aimed at n3, not n2"},
		{"boot id changed", func(s *Signed) { s.Boot = "fedcba9876543210" }, "", ErrEarlierRun, "signed for an earlier run of this node; resend"},
		{"boot id removed", func(s *Signed) { s.Boot = "" }, "", ErrNoBoot, "signed without this node's boot id, as an older meshell signs: upgrade the signing shell"},
		{"boot id too long", func(s *Signed) { s.Boot = strings.Repeat("b", 65) }, "", ErrMalformed, "malformed request: boot id of 65 bytes, more than 64"},
		{"issuer changed to another operator", func(s *Signed) { s.Issuer = "bob" }, "", ErrBadSignature, ""},
		{"issuer changed to an unknown name", func(s *Signed) { s.Issuer = "mallory" }, "", ErrUnknownOperator, `signed by unknown operator "mallory"`},
		{"nonce changed", func(s *Signed) { s.Nonce[0] ^= 1 }, "", ErrBadSignature, ""},
		{"nonce shortened", func(s *Signed) { s.Nonce = s.Nonce[:8] }, "", ErrMalformed, "malformed request: nonce is 8 bytes, want 16"},
		{"nonce removed", func(s *Signed) { s.Nonce = nil }, "", ErrMalformed, "malformed request: nonce is 0 bytes, want 16"},
		{"expiry extended", func(s *Signed) { s.Expiry += int64(time.Second) }, "", ErrBadSignature, ""},
		{"expiry shortened", func(s *Signed) { s.Expiry -= 1 }, "", ErrBadSignature, ""},
		{"expiry moved to the past", func(s *Signed) { s.Expiry = t0.Add(-3 * time.Second).UnixNano() }, "", ErrExpired, "expired 4s ago"},
		{"expiry moved far ahead", func(s *Signed) { s.Expiry = t0.Add(time.Hour).UnixNano() }, "", ErrTooFarAhead, "expires in 59m59s, more than the 2m0s allowed"},
		{"expiry made endless", func(s *Signed) { s.Expiry = 1<<63 - 1 }, "", ErrTooFarAhead, ""},
		{"signature bit flipped", func(s *Signed) { s.Sig[10] ^= 0x40 }, "", ErrBadSignature, ""},
		{"signature truncated", func(s *Signed) { s.Sig = s.Sig[:63] }, "", ErrBadSignature, ""},
		{"signature from another operator", func(s *Signed) { s.Sig = resign(bob, *s).Sig }, "", ErrBadSignature, ""},
		{"signature removed", func(s *Signed) { s.Sig = nil }, "", ErrNotSigned, "not signed"},
		{"op removed", func(s *Signed) { s.Op = "" }, "", ErrMalformed, "malformed request: no operation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := testVerifier(t, ops, VerifierConfig{})
			s := clone(base)
			tc.tamper(&s)
			self := tc.self
			if self == "" {
				self = "n2"
			}
			issuer, err := v.Verify(s, self, t0.Add(time.Second))
			if !errors.Is(err, tc.want) || issuer != "" {
				t.Fatalf("Verify = %q, %v; want %v", issuer, err, tc.want)
			}
			if tc.msg != "" && err.Error() != tc.msg {
				t.Fatalf("error %q, want %q", err, tc.msg)
			}
			if v.Nonces() != 0 {
				t.Fatal("a refused request's nonce was remembered")
			}
			if _, err := v.Verify(base, "n2", t0.Add(time.Second)); err != nil {
				t.Fatalf("the untampered request is refused after the tampered one: %v", err)
			}
		})
	}
}

func TestVerifyRefuses(t *testing.T) {
	alice, carol := testKey(t, "alice", 1), testKey(t, "carol", 3)
	ops := testOperators(t, alice)
	for _, tc := range []struct {
		name string
		req  Signed
		self string
		at   time.Duration // verifier's clock minus t0
		want error
		msg  string
	}{
		{"expired", mustSign(t, alice, "ping", nil, "n2", DefaultTTL, t0), "n2", DefaultTTL + 3*time.Second, ErrExpired, "expired 3s ago"},
		{"expiring this instant", mustSign(t, alice, "ping", nil, "n2", DefaultTTL, t0), "n2", DefaultTTL, ErrExpired, "expired 0s ago"},
		{"over-long ttl, validly signed", resign(alice, Signed{Op: "ping", Target: "n2", Boot: testBoot, Issuer: "alice", Nonce: make([]byte, NonceSize), Expiry: t0.Add(10 * time.Minute).UnixNano()}), "n2", 0, ErrTooFarAhead, "expires in 10m0s, more than the 2m0s allowed"},
		{"verifier's clock far behind", mustSign(t, alice, "ping", nil, "n2", DefaultTTL, t0), "n2", -2 * time.Minute, ErrTooFarAhead, "expires in 2m30s, more than the 2m0s allowed"},
		{"re-aimed at another node", mustSign(t, alice, "shutdown", nil, "n2", DefaultTTL, t0), "n3", 0, ErrWrongTarget, "aimed at n2, not n3"},
		{"aimed at a hostile alias", mustSign(t, alice, "shutdown", nil, "n2\nlevel=info msg=ok", DefaultTTL, t0), "n3", 0, ErrWrongTarget, `aimed at "n2\nlevel=info msg=ok", not n3`},
		{"unknown operator", mustSign(t, carol, "ping", nil, "n2", DefaultTTL, t0), "n2", 0, ErrUnknownOperator, `signed by unknown operator "carol"`},
		{"unknown operator with a hostile name", Signed{Op: "ping", Target: "n2", Issuer: "bob\x1b[2J", Nonce: make([]byte, NonceSize), Sig: []byte{1}}, "n2", 0, ErrUnknownOperator, `signed by unknown operator "bob\x1b[2J"`},
		{"not signed", Signed{Op: "ping", Target: "n2", Issuer: "alice"}, "n2", 0, ErrNotSigned, "not signed"},
		{"too many arguments", resign(alice, Signed{Op: "x", Args: make([]string, MaxArgs+1), Target: "n2", Issuer: "alice", Nonce: make([]byte, NonceSize), Expiry: t0.Add(time.Second).UnixNano()}), "n2", 0, ErrMalformed, "malformed request: 65 arguments, more than 64"},
		{"too large", Signed{Op: strings.Repeat("x", MaxMessageSize), Target: "n2", Issuer: "alice", Nonce: make([]byte, NonceSize), Sig: []byte{1}}, "n2", 0, ErrMalformed, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := testVerifier(t, ops, VerifierConfig{})
			_, err := v.Verify(tc.req, tc.self, t0.Add(tc.at))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
			if tc.msg != "" && err.Error() != tc.msg {
				t.Fatalf("error %q, want %q", err, tc.msg)
			}
		})
	}
}

func TestSignRefuses(t *testing.T) {
	alice := testKey(t, "alice", 1)
	for _, tc := range []struct {
		name   string
		key    *PrivateKey
		op     string
		args   []string
		target string
		ttl    time.Duration
		want   string
	}{
		{"no key", nil, "ping", nil, "n2", DefaultTTL, "sign: no operator key"},
		{"zero key", &PrivateKey{}, "ping", nil, "n2", DefaultTTL, "sign: no operator key"},
		{"zero ttl", alice, "ping", nil, "n2", 0, "sign: ttl 0s, want more than 0 and at most 2m0s"},
		{"negative ttl", alice, "ping", nil, "n2", -time.Second, "sign: ttl -1s, want more than 0 and at most 2m0s"},
		{"ttl over the maximum", alice, "ping", nil, "n2", MaxTTL + time.Nanosecond, "sign: ttl 2m0.000000001s, want more than 0 and at most 2m0s"},
		{"no target", alice, "ping", nil, "", DefaultTTL, "sign: no target"},
		{"no op", alice, "", nil, "n2", DefaultTTL, "sign: malformed request: no operation"},
		{"too many arguments", alice, "x", make([]string, MaxArgs+1), "n2", DefaultTTL, "sign: malformed request: 65 arguments, more than 64"},
		{"too large", alice, "x", []string{strings.Repeat("a", MaxMessageSize)}, "n2", DefaultTTL, "sign: malformed request: 16485 bytes, more than 16384"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Sign(tc.key, tc.op, tc.args, tc.target, testBoot, tc.ttl, t0)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got  %v\nwant %s", err, tc.want)
			}
		})
	}
}

func TestSignCopiesArgs(t *testing.T) {
	alice := testKey(t, "alice", 1)
	args := []string{"log-level", "debug"}
	s := mustSign(t, alice, "config", args, "n2", DefaultTTL, t0)
	args[1] = "trace" // the caller reuses its slice
	v := testVerifier(t, testOperators(t, alice), VerifierConfig{})
	if _, err := v.Verify(s, "n2", t0); err != nil || s.Args[1] != "debug" {
		t.Fatalf("Verify = %v, Args %q", err, s.Args)
	}
}

func TestSignFillsTheRequest(t *testing.T) {
	alice := testKey(t, "alice", 1)
	a := mustSign(t, alice, "ping", nil, "n2", 5*time.Second, t0)
	b := mustSign(t, alice, "ping", nil, "n2", 5*time.Second, t0)
	switch {
	case a.Issuer != "alice" || a.Target != "n2" || a.Boot != testBoot || a.Op != "ping":
		t.Fatalf("fields %+v", a)
	case a.Expiry != t0.Add(5*time.Second).UnixNano():
		t.Fatalf("expiry %d, want %d", a.Expiry, t0.Add(5*time.Second).UnixNano())
	case len(a.Nonce) != NonceSize || bytes.Equal(a.Nonce, b.Nonce) || bytes.Equal(a.Nonce, make([]byte, NonceSize)):
		t.Fatalf("nonces %x and %x, want two different random ones", a.Nonce, b.Nonce)
	}
}

func withBoot(s Signed, boot string) Signed {
	s.Boot = boot
	return s
}

func TestMessageIsUnambiguous(t *testing.T) {
	nonce := bytes.Repeat([]byte{9}, NonceSize)
	req := func(op string, args []string, target, issuer string) Signed {
		return Signed{Op: op, Args: args, Target: target, Issuer: issuer, Nonce: nonce, Expiry: 42}
	}
	variants := map[string]Signed{
		`args ["a","b"]`:             req("x", []string{"a", "b"}, "n2", "alice"),
		`args ["ab"]`:                req("x", []string{"ab"}, "n2", "alice"),
		`args ["a","","b"]`:          req("x", []string{"a", "", "b"}, "n2", "alice"),
		`args ["","ab"]`:             req("x", []string{"", "ab"}, "n2", "alice"),
		`args ["b","a"]`:             req("x", []string{"b", "a"}, "n2", "alice"),
		`args [""]`:                  req("x", []string{""}, "n2", "alice"),
		`no args`:                    req("x", nil, "n2", "alice"),
		`op "xa" args ["b"]`:         req("xa", []string{"b"}, "n2", "alice"),
		`op "x" target "n2a"`:        req("x", nil, "n2a", "lice"),
		`op "x" args ["n2"]`:         req("x", []string{"n2"}, "", "alice"),
		`target "n2alice" issuer ""`: req("x", nil, "n2alice", ""),
		`target "n2" boot "a"`:       withBoot(req("x", nil, "n2", "lice"), "a"),
		`target "n2" boot "alice"`:   withBoot(req("x", nil, "n2", ""), "alice"),
		`target "n2" boot "n2"`:      withBoot(req("x", nil, "n2", "alice"), "n2"),
	}
	seen := map[string]string{}
	for name, s := range variants {
		m := string(s.Message())
		if other, dup := seen[m]; dup {
			t.Errorf("%s and %s encode alike", name, other)
		}
		seen[m] = name
	}

	t.Run("signature over one does not verify another", func(t *testing.T) {
		alice := testKey(t, "alice", 1)
		v := testVerifier(t, testOperators(t, alice), VerifierConfig{})
		ab := mustSign(t, alice, "x", []string{"a", "b"}, "n2", DefaultTTL, t0)
		for _, args := range [][]string{{"ab"}, {"a", "", "b"}, {"", "ab"}, {"a", "b", ""}} {
			s := clone(ab)
			s.Args = args
			if _, err := v.Verify(s, "n2", t0); !errors.Is(err, ErrBadSignature) {
				t.Errorf("args %q with the signature of [a b]: %v, want bad signature", args, err)
			}
		}
	})
	t.Run("nil and empty args sign alike", func(t *testing.T) {
		a, b := req("x", nil, "n2", "alice"), req("x", []string{}, "n2", "alice")
		if !bytes.Equal(a.Message(), b.Message()) {
			t.Fatal("nil and empty Args encode differently; a codec that decodes one as the other would break signatures")
		}
	})
}

// TestMessageFormat pins the wire format: changing it breaks every signer
// and verifier that is not upgraded at once, so it needs a new version byte.
func TestMessageFormat(t *testing.T) {
	s := Signed{
		Op:     "scale",
		Args:   []string{"4", ""},
		Target: "n2",
		Issuer: "alice",
		Nonce:  []byte("0123456789abcdef"),
		Expiry: 0x0102030405060708,
		Sig:    []byte("not part of the message"),
	}
	want := "meshell-operator-request" + "\x01" +
		"\x00\x00\x00\x05scale" +
		"\x00\x00\x00\x02" + "\x00\x00\x00\x014" + "\x00\x00\x00\x00" +
		"\x00\x00\x00\x02n2" +
		"\x00\x00\x00\x05alice" +
		"\x00\x00\x00\x100123456789abcdef" +
		"\x01\x02\x03\x04\x05\x06\x07\x08"
	if got := string(s.Message()); got != want {
		t.Fatalf("Message\n got %q\nwant %q", got, want)
	}
	if got := len(s.Message()); got != s.messageSize() {
		t.Fatalf("messageSize %d, Message is %d bytes", s.messageSize(), got)
	}

	t.Run("version 2, with a boot id", func(t *testing.T) {
		s := s
		s.Boot = "b007"
		want := "meshell-operator-request" + "\x02" +
			"\x00\x00\x00\x05scale" +
			"\x00\x00\x00\x02" + "\x00\x00\x00\x014" + "\x00\x00\x00\x00" +
			"\x00\x00\x00\x02n2" +
			"\x00\x00\x00\x04b007" +
			"\x00\x00\x00\x05alice" +
			"\x00\x00\x00\x100123456789abcdef" +
			"\x01\x02\x03\x04\x05\x06\x07\x08"
		if got := string(s.Message()); got != want {
			t.Fatalf("Message\n got %q\nwant %q", got, want)
		}
		if got := len(s.Message()); got != s.messageSize() {
			t.Fatalf("messageSize %d, Message is %d bytes", s.messageSize(), got)
		}
	})
}

func ExampleSign() {
	alice, _ := Generate("alice")
	ops, _ := ParseOperators(strings.NewReader(alice.PublicLine()), "operators")
	v, _ := NewVerifier(ops, VerifierConfig{})

	now := time.Now()
	req, _ := Sign(alice, "scale", []string{"4"}, "n2", v.Boot(), DefaultTTL, now)
	fmt.Println(v.Verify(req, "n2", now))
	fmt.Println(v.Verify(req, "n2", now))
	fmt.Println(v.Verify(req, "n3", now))

	restarted, _ := NewVerifier(ops, VerifierConfig{}) // n2 after a restart
	fmt.Println(restarted.Verify(req, "n2", now))
	// Output:
	// alice <nil>
	//  replayed
	//  aimed at n2, not n3
	//  signed for an earlier run of this node; resend
}
