package operator

import (
	"container/heap"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Reasons Verify refuses a request. Verify's errors match them with
// errors.Is and read plainly on their own, e.g. `aimed at n2, not n3`.
var (
	ErrNotSigned       = errors.New("not signed")
	ErrUnknownOperator = errors.New("signed by unknown operator")
	ErrMalformed       = errors.New("malformed request")
	ErrWrongTarget     = errors.New("aimed at another node")
	ErrEarlierRun      = errors.New("signed for an earlier run of this node; resend")
	ErrNoBoot          = errors.New("signed without the node's boot id")
	ErrExpired         = errors.New("expired")
	ErrTooFarAhead     = errors.New("expires too far ahead")
	ErrBadSignature    = errors.New("bad signature")
	ErrReplayed        = errors.New("replayed")
	ErrReplayCacheFull = errors.New("replay cache full")
)

// DefaultMaxNonces is the default bound of the replay cache. At ~80 bytes an
// entry it costs under 10 MB, and it sustains ~830 requests a second even if
// every request lives the full 2-minute MaxTTL (~3,300 at DefaultTTL).
const DefaultMaxNonces = 100_000

// VerifierConfig tunes a Verifier; the zero value gives the defaults.
type VerifierConfig struct {
	// MaxTTL is how far ahead of the verifier's clock a request's expiry
	// may be (default MaxTTL). It bounds both a request's life and how long
	// its nonce is remembered.
	MaxTTL time.Duration

	// MaxNonces bounds the replay cache (default DefaultMaxNonces). When
	// full, new requests are refused until remembered ones expire.
	MaxNonces int
}

// Verifier checks signed requests against a set of operators and refuses
// replays. It is safe for concurrent use.
type Verifier struct {
	ops       atomic.Pointer[Operators]
	maxTTL    time.Duration
	maxNonces int
	boot      string // random, made with the replay cache: see Boot

	mu   sync.Mutex
	seen map[[NonceSize]byte]struct{}
	exp  expiryHeap // the same nonces, soonest expiry first
}

// NewVerifier returns a Verifier accepting requests signed by ops.
func NewVerifier(ops *Operators, cfg VerifierConfig) (*Verifier, error) {
	if ops == nil {
		return nil, errors.New("new verifier: no operators")
	}
	if cfg.MaxTTL < 0 || cfg.MaxNonces < 0 {
		return nil, fmt.Errorf("new verifier: negative MaxTTL (%v) or MaxNonces (%d)", cfg.MaxTTL, cfg.MaxNonces)
	}
	if cfg.MaxTTL == 0 {
		cfg.MaxTTL = MaxTTL
	}
	if cfg.MaxNonces == 0 {
		cfg.MaxNonces = DefaultMaxNonces
	}
	b := make([]byte, 8)
	rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	v := &Verifier{maxTTL: cfg.MaxTTL, maxNonces: cfg.MaxNonces, boot: hex.EncodeToString(b),
		seen: map[[NonceSize]byte]struct{}{}}
	v.ops.Store(ops)
	return v, nil
}

// Boot is this Verifier's boot id: 16 random hex digits, made with its
// replay cache and never again, so every run of a node has its own. The
// node gossips it; a signer puts it in the request (Sign), and Verify
// refuses a request signed for another boot id: the one of an earlier run,
// whose replay cache died with it.
func (v *Verifier) Boot() string { return v.boot }

// SetOperators replaces the accepted operators, e.g. after the operators
// file changed. The replay cache is kept: a new Verifier would forget it.
func (v *Verifier) SetOperators(ops *Operators) {
	if ops != nil {
		v.ops.Store(ops)
	}
}

// Operators is the set of operators currently accepted.
func (v *Verifier) Operators() *Operators { return v.ops.Load() }

// Verify checks that s is signed by a listed operator, aimed at self (this
// node's alias) in this run (Boot), live at now and not seen before, and
// returns its issuer.
// Cheap checks run first; a nonce is remembered only once the signature
// verified, so forged requests cannot fill the replay cache.
func (v *Verifier) Verify(s Signed, self string, now time.Time) (issuer string, err error) {
	if len(s.Sig) == 0 {
		return "", ErrNotSigned
	}
	if err := s.check(); err != nil { // first: bounds what the errors below quote
		return "", err
	}
	pub, ok := v.ops.Load().lookup(s.Issuer)
	if !ok {
		return "", refuse(ErrUnknownOperator, "signed by unknown operator %q", s.Issuer)
	}
	if s.Target != self {
		return "", refuse(ErrWrongTarget, "aimed at %s, not %s", show(s.Target), show(self))
	}
	switch s.Boot {
	case v.boot:
	case "": // an older signer, whose requests a restart would let be replayed
		return "", refuse(ErrNoBoot, "signed without this node's boot id, as an older meshell signs: upgrade the signing shell")
	default:
		return "", ErrEarlierRun
	}
	t := now.UnixNano()
	if t >= s.Expiry {
		return "", refuse(ErrExpired, "expired %v ago", span(t, s.Expiry).Round(time.Millisecond))
	}
	if ahead := span(s.Expiry, t); ahead > v.maxTTL {
		return "", refuse(ErrTooFarAhead, "expires in %v, more than the %v allowed", ahead.Round(time.Millisecond), v.maxTTL)
	}
	if !ed25519.Verify(pub, s.Message(), s.Sig) {
		return "", ErrBadSignature
	}
	if err := v.remember([NonceSize]byte(s.Nonce), s.Expiry, t); err != nil {
		return "", err
	}
	return s.Issuer, nil
}

// remember records nonce until expiry, refusing one already recorded. It
// first forgets nonces whose requests expired by now: those are refused as
// expired, so remembering them is no longer needed.
func (v *Verifier) remember(nonce [NonceSize]byte, expiry, now int64) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	for len(v.exp) > 0 && v.exp[0].expiry <= now {
		delete(v.seen, heap.Pop(&v.exp).(entry).nonce)
	}
	if _, dup := v.seen[nonce]; dup {
		return ErrReplayed
	}
	if len(v.seen) >= v.maxNonces {
		// Overflow policy: refuse the newest rather than forget a live
		// nonce early, which would let its request be replayed.
		return refuse(ErrReplayCacheFull, "replay cache full (%d requests live); refusing new requests until some expire (at most %v)", len(v.seen), v.maxTTL)
	}
	v.seen[nonce] = struct{}{}
	heap.Push(&v.exp, entry{expiry: expiry, nonce: nonce})
	return nil
}

// Nonces is how many nonces the replay cache remembers.
func (v *Verifier) Nonces() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.seen)
}

type entry struct {
	expiry int64
	nonce  [NonceSize]byte
}

// expiryHeap is a container/heap of entries, soonest expiry first.
type expiryHeap []entry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expiry < h[j].expiry }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(entry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// reasonError is a refusal that reads plainly and matches its reason with
// errors.Is.
type reasonError struct {
	reason error
	msg    string
}

func (e *reasonError) Error() string { return e.msg }
func (e *reasonError) Unwrap() error { return e.reason }

func refuse(reason error, format string, args ...any) error {
	return &reasonError{reason: reason, msg: fmt.Sprintf(format, args...)}
}

// span is later-earlier (later >= earlier) as a duration, saturating instead
// of overflowing on absurd expiries.
func span(later, earlier int64) time.Duration {
	d := later - earlier
	if d < 0 {
		d = math.MaxInt64
	}
	return time.Duration(d)
}

// show prints an alias bare when it is a plain word, quoted otherwise, so a
// hostile alias cannot forge log text.
func show(s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-' || c == ':') {
			return fmt.Sprintf("%q", s)
		}
	}
	if s == "" {
		return `""`
	}
	return s
}
