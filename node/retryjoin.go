package node

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"meshell/mesh"
)

// Retry says how JoinRetry tries again after a round in which no seed
// answered (nothing listens there yet, a reset, a timeout). A refusal is
// final: another round would be refused the same way.
type Retry struct {
	Max   int           // rounds at most; 0 = no limit
	For   time.Duration // no round starts later than this after the first; 0 = no limit
	First time.Duration // wait after the first failed round; it doubles up to Cap
	Cap   time.Duration // longest wait between two rounds
	// Failed, when set, is told of each failed round that will be tried
	// again and of the wait before the next one.
	Failed func(round int, err error, wait time.Duration)
}

// RetryForever retries until the context ends, waiting 250 ms, then
// doubling up to 2 s: an agent whose seed starts later joins within about
// 2 s of it.
var RetryForever = Retry{First: 250 * time.Millisecond, Cap: 2 * time.Second}

// wait is the pause after failed round n (1-based): First·2^(n-1), at most
// Cap, jittered by ±20% so that agents started together do not retry in step.
func (r Retry) wait(n int) time.Duration {
	d := max(r.First, time.Millisecond)
	for i := 1; i < n && d < r.Cap; i++ {
		d *= 2
	}
	if r.Cap > 0 {
		d = min(d, r.Cap)
	}
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// JoinRetry joins through the first of addrs that accepts (each attempt
// given at most perAddr), round after round as r says, while the failures
// are not refusals. It returns the last round's error; a node it started is
// then left in no cluster, as by Join.
func (n *Node) JoinRetry(ctx context.Context, addrs []string, perAddr time.Duration, r Retry) (JoinResult, error) {
	return n.joinStarted(func() (JoinResult, error) { return n.joinRounds(ctx, addrs, perAddr, r) })
}

// joinRounds is JoinRetry on a node joinStarted has started.
func (n *Node) joinRounds(ctx context.Context, addrs []string, perAddr time.Duration, r Retry) (JoinResult, error) {
	start := time.Now()
	for round := 1; ; round++ {
		res, err := n.joinFirst(ctx, addrs, perAddr)
		if err == nil || Final(err) || ctx.Err() != nil || (r.Max > 0 && round >= r.Max) {
			return res, err
		}
		wait := r.wait(round)
		if r.For > 0 && time.Since(start)+wait > r.For {
			return res, err
		}
		if r.Failed != nil {
			r.Failed(round, err, wait)
		}
		if !pause(ctx, wait) {
			return res, err
		}
	}
}

// pause waits d, or less if ctx ends first; false then.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Final reports whether a join error will not go away by trying again: a
// seed refused this node (alias, cluster, key, version), the address is this
// node's own or, in protected mode, off this machine, or this node cannot
// join at all. A round through several
// addresses is final when one refused, or when every one was this node's.
func Final(err error) bool {
	var je *joinError
	if errors.As(err, &je) {
		self, final := 0, false
		for _, e := range je.errs {
			switch {
			case errors.Is(e, mesh.ErrSelf):
				self++
			case Final(e):
				final = true
			}
		}
		return final || self == len(je.errs)
	}
	var re *mesh.RefusedError
	return errors.As(err, &re) || errors.Is(err, mesh.ErrSelf) || errors.Is(err, mesh.ErrNotLoopback) ||
		errors.Is(err, ErrNotRunning) || errors.Is(err, errShutDown)
}

// joinFirst is one round of JoinRetry: each address in turn until one
// accepts.
func (n *Node) joinFirst(ctx context.Context, addrs []string, perAddr time.Duration) (JoinResult, error) {
	var errs []error
	for _, a := range addrs {
		jctx, cancel := context.WithTimeout(ctx, perAddr)
		res, err := n.joinRetrying(jctx, a)
		cancel()
		if err == nil {
			return res, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil || Final(err) && !errors.Is(err, mesh.ErrSelf) {
			break // this node's own address among several is passed over
		}
	}
	return JoinResult{}, &joinError{n: len(addrs), errs: errs}
}

// joinError is a round's failure through several addresses; errors.As sees
// each address's error.
type joinError struct {
	n    int
	errs []error
}

func (e *joinError) Error() string {
	if e.n == 1 && len(e.errs) == 1 {
		return e.errs[0].Error()
	}
	texts := make([]string, len(e.errs))
	for i, err := range e.errs {
		texts[i] = err.Error()
	}
	return fmt.Sprintf("could not join through any of %d addresses: %s", e.n, strings.Join(texts, "; "))
}

func (e *joinError) Unwrap() []error { return e.errs }
