package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// KindFunc runs one job of a kind on a worker. args are the job's
// arguments; emit streams one chunk of output back to the caller (in order)
// and fails only when ctx ended, the caller cannot be reached, or the job
// would stream past its limit (ErrStreamLimit). The
// returned string is the job's result; an error is the job's failure (it is
// not retried elsewhere). A KindFunc must return soon after ctx is done:
// that is how timeouts, cancellation and draining reach it.
type KindFunc func(ctx context.Context, args []string, emit func(data string) error) (string, error)

// kind is a registered job kind. Inline kinds are cheap and bounded (no
// waiting, no streaming, work proportional to the request's size): a worker
// runs them on the connection's goroutine once it holds a slot, saving a
// goroutine hand-off per job.
type kind struct {
	fn     KindFunc
	inline bool
	cmd    *cmdKind // set instead of fn: the kind runs a process (run.go)
}

// Limits of the built-in kinds, so that a request cannot pin a worker.
const (
	maxPrimesN  = 50_000_000 // primes N: N at most this
	maxStreamN  = 100_000    // stream N: chunks at most this
	maxInlineIn = 4 << 10    // echo and sha256 run inline up to this many bytes of arguments
)

func builtinKinds() map[string]kind {
	return map[string]kind{
		"echo":   {fn: kindEcho, inline: true},
		"sha256": {fn: kindSHA256, inline: true},
		"sleep":  {fn: kindSleep},
		"primes": {fn: kindPrimes},
		"stream": {fn: kindStream},
	}
}

// builtin reports whether every node runs kind (the run kind included).
func builtin(kind string) bool {
	switch kind {
	case "echo", "sha256", "sleep", "primes", "stream", RunKind:
		return true
	}
	return false
}

func kindEcho(ctx context.Context, args []string, emit func(string) error) (string, error) {
	if len(args) == 1 {
		return args[0], nil
	}
	return strings.Join(args, " "), nil
}

func kindSHA256(ctx context.Context, args []string, emit func(string) error) (string, error) {
	sum := sha256.Sum256([]byte(strings.Join(args, " ")))
	return hex.EncodeToString(sum[:]), nil
}

func kindSleep(ctx context.Context, args []string, emit func(string) error) (string, error) {
	if len(args) != 1 {
		return "", errors.New("usage: sleep DURATION (e.g. sleep 200ms)")
	}
	d, err := time.ParseDuration(args[0])
	if err != nil || d < 0 {
		return "", fmt.Errorf("sleep: %q is not a duration such as 200ms", args[0])
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return "slept " + d.String(), nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func kindPrimes(ctx context.Context, args []string, emit func(string) error) (string, error) {
	if len(args) != 1 {
		return "", errors.New("usage: primes N (counts the primes ≤ N)")
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 0 || n > maxPrimesN {
		return "", fmt.Errorf("primes: N must be a whole number between 0 and %d, not %q", maxPrimesN, args[0])
	}
	if n < 2 {
		return "0", nil
	}
	// Sieve of Eratosthenes over odd numbers, one bit each (a member's
	// largest N takes 3 MiB, not 25); ctx is checked every block.
	composite := make([]uint64, (n/2)/64+1) // bit i stands for 2i+1
	count := 1                              // the prime 2
	for i := 1; 2*i+1 <= n; i++ {
		if i&0xffff == 0 && ctx.Err() != nil {
			return "", ctx.Err()
		}
		if composite[i/64]&(1<<(i%64)) != 0 {
			continue
		}
		count++
		p := 2*i + 1
		for j := p * p; j <= n; j += 2 * p {
			composite[j/128] |= 1 << ((j / 2) % 64)
		}
	}
	return strconv.Itoa(count), nil
}

func kindStream(ctx context.Context, args []string, emit func(string) error) (string, error) {
	if len(args) < 1 || len(args) > 2 {
		return "", errors.New("usage: stream N [INTERVAL] (N chunks, INTERVAL apart)")
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 0 || n > maxStreamN {
		return "", fmt.Errorf("stream: N must be a whole number between 0 and %d, not %q", maxStreamN, args[0])
	}
	var every time.Duration
	if len(args) == 2 {
		if every, err = time.ParseDuration(args[1]); err != nil || every < 0 {
			return "", fmt.Errorf("stream: INTERVAL %q is not a duration such as 100ms", args[1])
		}
	}
	var t *time.Timer
	for i := 1; i <= n; i++ {
		if every > 0 && i > 1 {
			if t == nil {
				t = time.NewTimer(every)
				defer t.Stop()
			} else {
				t.Reset(every)
			}
			select {
			case <-t.C:
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}
		if err := emit(fmt.Sprintf("chunk %d/%d", i, n)); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("%d chunks", n), nil
}
