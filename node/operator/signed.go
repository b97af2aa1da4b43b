package operator

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"
)

const (
	// NonceSize is the length of a request's random nonce.
	NonceSize = 16

	// MaxTTL is the longest life Sign gives a request, and the default of
	// VerifierConfig.MaxTTL.
	MaxTTL = 2 * time.Minute

	// DefaultTTL is the life a client should give a request: long enough for
	// a slow network, short enough to leave MaxTTL-DefaultTTL for clock skew.
	DefaultTTL = 30 * time.Second

	// MaxArgs and MaxMessageSize bound a request so that verifying one costs
	// little whatever arrives.
	MaxArgs        = 64
	MaxMessageSize = 16 << 10
)

// signLabel and a version byte start every signed message: a signature
// made for anything else (or another version of this format) never
// verifies. Version 2 adds the target's boot id; version 1, without it, is
// what a request for a node that gossips no boot id (an older release) is
// signed as, and what an older signer sends.
const (
	signLabel      = "meshell-operator-request"
	signVersionOld = 1 // without a boot id
	signVersion    = 2
	maxBootLen     = 64 // a Verifier's boot id is 16
)

// Signed is a control request signed by an operator for one target node.
type Signed struct {
	Op     string   // the operation, e.g. "shutdown"
	Args   []string // its arguments, in order; nil and empty sign alike
	Target string   // alias of the node the request is for
	Boot   string   // the target's boot id (Verifier.Boot); "" only for an older node
	Issuer string   // the operator who signed it
	Nonce  []byte   // NonceSize random bytes; a node accepts each nonce once
	Expiry int64    // unix nanoseconds after which the request is void
	Sig    []byte   // ed25519 signature of Message
}

// Sign makes a request for op with args, aimed at the node target in its run
// boot (the boot id the target gossips, see Verifier.Boot), valid for ttl
// (at most MaxTTL) from now. An empty boot, for a node of an older release
// that gossips none, signs the version 1 format such a node verifies; a
// Verifier of this release refuses it.
func Sign(key *PrivateKey, op string, args []string, target, boot string, ttl time.Duration, now time.Time) (Signed, error) {
	if key == nil || key.key == nil || len(key.key.PrivateKey) != ed25519.PrivateKeySize {
		return Signed{}, errors.New("sign: no operator key")
	}
	if ttl <= 0 || ttl > MaxTTL {
		return Signed{}, fmt.Errorf("sign: ttl %v, want more than 0 and at most %v", ttl, MaxTTL)
	}
	if target == "" {
		return Signed{}, errors.New("sign: no target")
	}
	s := Signed{
		Op:     op,
		Args:   slices.Clone(args), // the caller may reuse its slice
		Target: target,
		Boot:   boot,
		Issuer: key.name,
		Nonce:  make([]byte, NonceSize),
		Expiry: now.Add(ttl).UnixNano(),
	}
	if err := s.check(); err != nil {
		return Signed{}, fmt.Errorf("sign: %w", err)
	}
	rand.Read(s.Nonce) // never fails (crypto/rand, Go 1.24+)
	s.Sig = ed25519.Sign(key.key.PrivateKey, s.Message())
	return s, nil
}

// check refuses requests that are malformed whoever signed them. It runs
// before Message so that an oversized request is never encoded.
func (s *Signed) check() error {
	switch {
	case s.Op == "":
		return refuse(ErrMalformed, "malformed request: no operation")
	case len(s.Args) > MaxArgs:
		return refuse(ErrMalformed, "malformed request: %d arguments, more than %d", len(s.Args), MaxArgs)
	case len(s.Nonce) != NonceSize:
		return refuse(ErrMalformed, "malformed request: nonce is %d bytes, want %d", len(s.Nonce), NonceSize)
	case len(s.Boot) > maxBootLen:
		return refuse(ErrMalformed, "malformed request: boot id of %d bytes, more than %d", len(s.Boot), maxBootLen)
	}
	if n := s.messageSize(); n > MaxMessageSize {
		return refuse(ErrMalformed, "malformed request: %d bytes, more than %d", n, MaxMessageSize)
	}
	return nil
}

// Message is the canonical encoding the signature covers:
//
//	"meshell-operator-request" version(1 byte, =2)
//	str(Op) u32(len(Args)) str(Args[0]) … str(Target) str(Boot) str(Issuer)
//	str(Nonce) i64(Expiry)
//
// where str(x) is u32(len(x)) followed by x, and integers are big-endian.
// Without a Boot it is version 1, the same without str(Boot). Each field is
// length-prefixed, so no two distinct requests encode alike.
func (s *Signed) Message() []byte {
	b := make([]byte, 0, s.messageSize())
	b = append(b, signLabel...)
	if s.Boot == "" {
		b = append(b, signVersionOld)
	} else {
		b = append(b, signVersion)
	}
	b = appendStr(b, s.Op)
	b = binary.BigEndian.AppendUint32(b, uint32(len(s.Args)))
	for _, a := range s.Args {
		b = appendStr(b, a)
	}
	b = appendStr(b, s.Target)
	if s.Boot != "" {
		b = appendStr(b, s.Boot)
	}
	b = appendStr(b, s.Issuer)
	b = appendStr(b, string(s.Nonce))
	return binary.BigEndian.AppendUint64(b, uint64(s.Expiry))
}

func (s *Signed) messageSize() int {
	n := len(signLabel) + 1 + 4 + len(s.Op) + 4
	for _, a := range s.Args {
		n += 4 + len(a)
	}
	if s.Boot != "" {
		n += 4 + len(s.Boot)
	}
	return n + 4 + len(s.Target) + 4 + len(s.Issuer) + 4 + len(s.Nonce) + 8
}

func appendStr(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}
