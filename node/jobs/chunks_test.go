package jobs

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"meshell/protocol"
)

func chunk(seq uint32) protocol.JobChunk {
	return protocol.JobChunk{Seq: seq, Data: fmt.Sprint(seq)}
}

// collect returns a deliver func and the Seqs it was given.
func collect() (func(protocol.JobChunk), *[]uint32) {
	var got []uint32
	return func(c protocol.JobChunk) { got = append(got, c.Seq) }, &got
}

func seqs(from, to uint32) []uint32 {
	var out []uint32
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func TestReorderDeliversInOrderEachOnce(t *testing.T) {
	for name, arrivals := range map[string][]uint32{
		"in order":   {1, 2, 3, 4, 5},
		"reversed":   {5, 4, 3, 2, 1},
		"swapped":    {2, 1, 4, 3, 5},
		"duplicates": {1, 3, 3, 2, 2, 1, 5, 4, 5},
		"seq 0":      {0, 1, 2, 0, 3, 4, 5},
	} {
		deliver, got := collect()
		r := newReorder()
		for _, s := range arrivals {
			r.add(chunk(s), deliver)
		}
		if !reflect.DeepEqual(*got, seqs(1, 5)) || len(r.early) != 0 || r.skipped != 0 {
			t.Errorf("%s: arrivals %v delivered %v (held %d, skipped %d), want 1..5", name, arrivals, *got, len(r.early), r.skipped)
		}
	}
}

func TestReorderEndSkipsGapsThatWillNotFill(t *testing.T) {
	deliver, got := collect()
	r := newReorder()
	for _, s := range []uint32{1, 3, 4, 7} { // 2, 5 and 6 never come
		r.add(chunk(s), deliver)
	}
	if !reflect.DeepEqual(*got, []uint32{1}) {
		t.Fatalf("before the answer delivered %v, want [1]: 3, 4 and 7 wait for 2", *got)
	}
	r.end(deliver)
	if !reflect.DeepEqual(*got, []uint32{1, 3, 4, 7}) || r.skipped != 3 {
		t.Fatalf("at the answer delivered %v, skipped %d; want [1 3 4 7], 3", *got, r.skipped)
	}
}

// Overflow policy skip-gap: a missing chunk holds back at most
// maxEarlyChunks others; then it is given up and delivery goes on.
func TestReorderOverflowSkipsTheGap(t *testing.T) {
	deliver, got := collect()
	r := newReorder()
	for s := uint32(2); s <= maxEarlyChunks+1; s++ {
		r.add(chunk(s), deliver)
	}
	if len(*got) != 0 || len(r.early) != maxEarlyChunks {
		t.Fatalf("delivered %d, held %d; want 0 and %d", len(*got), len(r.early), maxEarlyChunks)
	}
	r.add(chunk(maxEarlyChunks+2), deliver) // one more than the buffer holds
	if !reflect.DeepEqual(*got, seqs(2, maxEarlyChunks+2)) || r.skipped != 1 || len(r.early) != 0 {
		t.Fatalf("after overflow delivered %d (first %v), skipped %d, held %d", len(*got), (*got)[:1], r.skipped, len(r.early))
	}
	r.add(chunk(1), deliver) // the late one is not delivered after its successors
	if len(*got) != maxEarlyChunks+1 {
		t.Fatalf("the skipped chunk was delivered late")
	}
	// The byte bound works the same way.
	deliver, got = collect()
	r = newReorder()
	big := protocol.JobChunk{Seq: 2, Data: strings.Repeat("x", maxEarlyBytes/2+1)}
	r.add(big, deliver)
	big.Seq = 3
	r.add(big, deliver)
	if !reflect.DeepEqual(*got, []uint32{2, 3}) || r.bytes != 0 {
		t.Fatalf("byte bound: delivered %v, holding %d bytes", *got, r.bytes)
	}
}

// A lost attempt's held chunks are dropped; the next attempt starts again at
// Seq 1 and only what was not delivered yet reaches the caller.
func TestReorderAcrossAttempts(t *testing.T) {
	deliver, got := collect()
	r := newReorder()
	for _, s := range []uint32{1, 2, 4} {
		r.add(chunk(s), deliver)
	}
	r.lost()
	for _, s := range []uint32{1, 3, 2, 4, 5} {
		r.add(chunk(s), deliver)
	}
	r.end(deliver)
	if !reflect.DeepEqual(*got, seqs(1, 5)) || r.skipped != 0 {
		t.Fatalf("delivered %v, skipped %d; want 1..5, 0", *got, r.skipped)
	}
}

// Chunks that reach the dispatcher out of order (frames moved to another
// connection can overtake) reach the caller in order: none is dropped.
func TestDispatchDeliversReorderedChunksInOrder(t *testing.T) {
	_, d, ws := jobCluster(t, "w1")
	g := newGate()
	ws[0].RegisterKind("job", g.kind("w1"))
	type out struct {
		res DispatchResult
		err error
	}
	done := make(chan out, 1)
	var got []string
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		res, err := d.Dispatch(ctx, DispatchRequest{Kind: "job", Tags: map[string]string{"name": "w1"},
			OnChunk: func(seq int, data string) { got = append(got, fmt.Sprintf("%d:%s", seq, data)) }})
		done <- out{res, err}
	}()
	<-g.started
	id := d.nextID.Load() // the attempt pending on w1
	for _, s := range []uint32{3, 1, 5, 2, 4} {
		d.Receive("w1", &protocol.JobChunk{ID: id, Seq: s, Data: fmt.Sprint("c", s)})
	}
	close(g.release)
	o := <-done
	if o.err != nil {
		t.Fatal(o.err)
	}
	want := []string{"1:c1", "2:c2", "3:c3", "4:c4", "5:c5"}
	if !reflect.DeepEqual(got, want) || o.res.Chunks != 5 {
		t.Fatalf("caller got %v (%d chunks), want %v", got, o.res.Chunks, want)
	}
}

// The reorder buffer makes room before it holds a chunk: it never holds
// more than its bounds, whatever arrives (here chunks as big as a frame,
// all ahead of a chunk that never comes).
func TestReorderNeverExceedsItsBounds(t *testing.T) {
	deliver, got := collect()
	r := newReorder()
	data := strings.Repeat("x", protocol.MaxFrameSize-64)
	for s := uint32(100); s >= 2; s-- { // newest first: each is the earliest held
		r.add(protocol.JobChunk{Seq: s, Data: data}, deliver)
		if r.bytes > maxEarlyBytes || len(r.early) > maxEarlyChunks {
			t.Fatalf("after Seq %d holding %d chunks, %d bytes; bounds %d, %d", s, len(r.early), r.bytes, maxEarlyChunks, maxEarlyBytes)
		}
	}
	r.end(deliver)
	if len(*got) == 0 || len(r.early) != 0 || r.bytes != 0 {
		t.Fatalf("delivered %d, held %d (%d bytes) at the end", len(*got), len(r.early), r.bytes)
	}
}

// heapAfterGC is the live heap, for bounds on what a flood leaves held.
func heapAfterGC() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// stuckConsumer is a caller that takes its first chunk, then stops
// reading until released: the slowest consumer there is.
type stuckConsumer struct {
	mu      sync.Mutex
	bytes   int
	calls   int
	stuck   chan struct{} // closed when the first chunk is being taken
	release chan struct{}
}

func newStuckConsumer() *stuckConsumer {
	return &stuckConsumer{stuck: make(chan struct{}), release: make(chan struct{})}
}

func (c *stuckConsumer) take(data string) {
	c.mu.Lock()
	c.bytes += len(data)
	c.calls++
	first := c.calls == 1
	c.mu.Unlock()
	if first {
		close(c.stuck)
		<-c.release
	}
}

func (c *stuckConsumer) got() (bytes, calls int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes, c.calls
}

// within returns what ch gives, or fails the test after 20 s: a bound on a
// test that would hang, not a way to wait.
func within[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	timer := time.NewTimer(20 * time.Second)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("%s: nothing within 20 s", what)
		panic("unreachable")
	}
}

// megabyte is a fresh 1 MiB line each time, so that what is held shows in
// the heap.
func megabyte() string { return strings.Repeat("A", 1<<20) + "\n" }

type dispatched struct {
	res DispatchResult
	err error
}

// startOn dispatches kind to worker alone and returns the attempt's id once
// it started there, and where the outcome will be.
func startOn(t *testing.T, d *Jobs, g *gate, worker string, req DispatchRequest) (uint64, chan dispatched) {
	t.Helper()
	req.Worker = worker
	done := make(chan dispatched, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		res, err := d.Dispatch(ctx, req)
		done <- dispatched{res, err}
	}()
	if got := <-g.started; got != worker {
		t.Fatalf("the job started on %s, want %s", got, worker)
	}
	return d.nextID.Load(), done
}

// A hostile worker streams far more of a command's stdout than the output
// limit while its caller does not read: the job ends in one error, the
// dispatcher keeps no more than the limit, the worker is told to cancel,
// and another job in flight and the worker's next job are untouched.
func TestHostileWorkerPastTheOutputLimitEndsItsJob(t *testing.T) {
	_, d, ws := jobCluster(t, "w1", "w2")
	g1, g2 := newGate(), newGate()
	ws[0].RegisterKind("job", g1.kind("w1"))
	ws[1].RegisterKind("job", g2.kind("w2"))
	slow := newStuckConsumer()
	hostile, floodDone := startOn(t, d, g1, "w1", DispatchRequest{Kind: "job", OnOutput: func(_ bool, data string) { slow.take(data) }})
	var other []string
	honest, otherDone := startOn(t, d, g2, "w2", DispatchRequest{Kind: "job", OnChunk: func(_ int, data string) { other = append(other, data) }})

	d.Receive("w1", &protocol.JobChunk{ID: hostile, Seq: 1, Data: megabyte(), Stream: protocol.StreamStdout})
	<-slow.stuck
	before := heapAfterGC()
	const flood = 256 // MiB
	for seq := uint32(2); seq <= flood; seq++ {
		d.Receive("w1", &protocol.JobChunk{ID: hostile, Seq: seq, Data: megabyte(), Stream: protocol.StreamStdout})
		if seq == flood/2 {
			d.Receive("w2", &protocol.JobChunk{ID: honest, Seq: 1, Data: "one"})
		}
	}
	if grew := int64(heapAfterGC()) - int64(before); grew > 2*maxStreamOutput {
		t.Errorf("the heap grew by %d MiB under a %d MiB flood; the output limit is %d bytes", grew>>20, flood, maxStreamOutput)
	}
	close(slow.release)
	if err := within(t, "the hostile worker's job ending", g1.ended); !errors.Is(err, context.Canceled) {
		t.Errorf("the hostile worker's job ended with %v, want it cancelled by the dispatcher", err)
	}
	o := within(t, "the flooded job's outcome", floodDone)
	if !errors.Is(o.err, ErrOverrun) || !strings.Contains(o.err.Error(), "of stdout, the output limit") {
		t.Fatalf("flooded job: %+v, %v; want one error for the output limit", o.res, o.err)
	}
	if got, _ := slow.got(); got > maxStreamOutput {
		t.Errorf("the caller was given %d bytes of output, over the limit of %d", got, maxStreamOutput)
	}
	select {
	case o := <-floodDone:
		t.Fatalf("a second outcome: %+v %v", o.res, o.err)
	default:
	}

	d.Receive("w2", &protocol.JobChunk{ID: honest, Seq: 2, Data: "two"})
	g2.release <- struct{}{}
	if o := within(t, "the other job's outcome", otherDone); o.err != nil || o.res.Result != "released on w2" || !slices.Equal(other, []string{"one", "two"}) {
		t.Fatalf("the other job: %+v %v, chunks %q", o.res, o.err, other)
	}
	go func() { <-g1.started; g1.release <- struct{}{} }()
	if res, err := d.Dispatch(context.Background(), DispatchRequest{Kind: "job", Worker: "w1"}); err != nil || res.Result != "released on w1" {
		t.Fatalf("w1's next job: %+v %v", res, err)
	}
	if n := d.Stats().StreamOverruns; n != 1 {
		t.Errorf("%d overruns counted, want 1", n)
	}
	assertNoInFlight(t, d)
}

// Overflow policy end-job: a worker that streams a kind's chunks faster
// than its caller takes them has its job ended once maxStreamHeld waits;
// the dispatcher holds no more than that, and delivers what it held.
func TestStreamAheadOfItsCallerEndsTheJob(t *testing.T) {
	_, d, ws := jobCluster(t, "w1")
	g := newGate()
	ws[0].RegisterKind("job", g.kind("w1"))
	slow := newStuckConsumer()
	id, done := startOn(t, d, g, "w1", DispatchRequest{Kind: "job", OnChunk: func(_ int, data string) { slow.take(data) }})
	d.Receive("w1", &protocol.JobChunk{ID: id, Seq: 1, Data: megabyte()})
	<-slow.stuck
	before := heapAfterGC()
	const flood = 256
	for seq := uint32(2); seq <= flood; seq++ {
		d.Receive("w1", &protocol.JobChunk{ID: id, Seq: seq, Data: megabyte()})
	}
	if grew := int64(heapAfterGC()) - int64(before); grew > 2*maxStreamHeld {
		t.Errorf("the heap grew by %d MiB under a %d MiB flood; the stream bound is %d MiB", grew>>20, flood, maxStreamHeld>>20)
	}
	close(slow.release)
	if err := within(t, "the worker's job ending", g.ended); !errors.Is(err, context.Canceled) {
		t.Errorf("the worker's job ended with %v, want it cancelled by the dispatcher", err)
	}
	o := within(t, "the flooded job's outcome", done)
	if !errors.Is(o.err, ErrOverrun) || !strings.Contains(o.err.Error(), "the stream bound") {
		t.Fatalf("flooded job: %+v, %v; want one error for the stream bound", o.res, o.err)
	}
	if got, calls := slow.got(); got > maxStreamHeld+len(megabyte()) || calls != o.res.Chunks || calls < 2 {
		t.Errorf("the caller was given %d chunks, %d bytes (result says %d chunks); the bound holds %d bytes", calls, got, o.res.Chunks, maxStreamHeld)
	}
	assertNoInFlight(t, d)
}

// An honest command's many small pieces of output, to a caller that does
// not read for a while, are held as one chunk per stream: far below the
// bound, and delivered whole and in order.
func TestCommandOutputWaitingIsMerged(t *testing.T) {
	_, d, ws := jobCluster(t, "w1")
	g := newGate()
	ws[0].RegisterKind("job", g.kind("w1"))
	slow := newStuckConsumer()
	var out strings.Builder
	id, done := startOn(t, d, g, "w1", DispatchRequest{Kind: "job", OnOutput: func(stderr bool, data string) {
		if !stderr {
			out.WriteString(data)
		}
		slow.take(data)
	}})
	d.Receive("w1", &protocol.JobChunk{ID: id, Seq: 1, Data: "first\n", Stream: protocol.StreamStdout})
	<-slow.stuck
	const pieces = 150_000 // unmerged, more than maxStreamHeld: 150,000 × (2 + chunkCost) bytes
	var want strings.Builder
	want.WriteString("first\n")
	for i := range pieces {
		line := fmt.Sprintf("%d\n", i%10)
		want.WriteString(line)
		d.Receive("w1", &protocol.JobChunk{ID: id, Seq: uint32(i + 2), Data: line, Stream: protocol.StreamStdout})
	}
	d.Receive("w1", &protocol.JobChunk{ID: id, Seq: pieces + 2, Data: "warn\n", Stream: protocol.StreamStderr})
	g.release <- struct{}{}
	within(t, "the job ending", g.ended)
	close(slow.release)
	o := within(t, "the job's outcome", done)
	if o.err != nil || o.res.Chunks != pieces+2 {
		t.Fatalf("honest output: %+v %v; want it whole, %d chunks", o.res, o.err, pieces+2)
	}
	if _, calls := slow.got(); out.String() != want.String() || calls != 3 {
		t.Fatalf("the caller was given %d bytes of stdout in %d calls; want %d bytes in 3 (first, stdout, stderr)", out.Len(), calls, want.Len())
	}
}

// A hostile worker streams a kind's chunks past the stream limit to a
// caller that takes them all (as !dispatch --json keeps them): the job ends
// in one error and the caller is given no more than the limit, by count and
// by bytes.
func TestHostileWorkerPastTheStreamLimitEndsItsJob(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    int
		data func() string
	}{
		{"chunks", protocol.MaxJobChunks + 1000, func() string { return "x" }},
		{"bytes", protocol.MaxJobStream>>20 + 4, megabyte},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, d, ws := jobCluster(t, "w1")
			g := newGate()
			ws[0].RegisterKind("job", g.kind("w1"))
			var mu sync.Mutex
			var calls, bytes int
			id, done := startOn(t, d, g, "w1", DispatchRequest{Kind: "job", OnChunk: func(_ int, data string) {
				mu.Lock()
				calls++
				bytes += len(data)
				mu.Unlock()
			}})
			for seq := 1; seq <= tc.n; seq++ {
				d.Receive("w1", &protocol.JobChunk{ID: id, Seq: uint32(seq), Data: tc.data()})
			}
			if err := within(t, "the worker's job ending", g.ended); !errors.Is(err, context.Canceled) {
				t.Errorf("the worker's job ended with %v, want it cancelled by the dispatcher", err)
			}
			o := within(t, "the flooded job's outcome", done)
			if !errors.Is(o.err, ErrOverrun) || !strings.Contains(o.err.Error(), "the stream limit") {
				t.Fatalf("flooded job: %+v, %v; want one error for the stream limit", o.res, o.err)
			}
			mu.Lock()
			defer mu.Unlock()
			if calls > protocol.MaxJobChunks || bytes > protocol.MaxJobStream {
				t.Errorf("the caller was given %d chunks, %d bytes; the limit is %d chunks, %d bytes", calls, bytes, protocol.MaxJobChunks, protocol.MaxJobStream)
			}
		})
	}
}

// A kind that streams without end is stopped by emit at the stream limit:
// its job fails with that error, after the caller was given every chunk
// up to the limit.
func TestEmitRefusesPastTheStreamLimit(t *testing.T) {
	_, d, ws := jobCluster(t, "w1")
	ws[0].RegisterKind("endless", func(ctx context.Context, _ []string, emit func(string) error) (string, error) {
		for {
			if err := emit("x"); err != nil {
				return "", err
			}
		}
	})
	var calls int
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := d.Dispatch(ctx, DispatchRequest{Kind: "endless", Worker: "w1", OnChunk: func(int, string) { calls++ }})
	if err == nil || !strings.Contains(err.Error(), ErrStreamLimit.Error()) {
		t.Fatalf("endless stream: %v; want the job to fail with %q", err, ErrStreamLimit)
	}
	if calls != protocol.MaxJobChunks {
		t.Errorf("the caller was given %d chunks, want the %d the limit allows", calls, protocol.MaxJobChunks)
	}
}

// A hostile worker's output chunks that pass no byte bound: an empty one
// ends the job in one error (a worker streams only what it has), and
// stdout sent to a caller that asked only for a kind's chunks is dropped,
// not printed as a kind's chunk.
func TestHostileWorkerEmptyOrUnaskedOutputChunks(t *testing.T) {
	_, d, ws := jobCluster(t, "w1")
	g := newGate()
	ws[0].RegisterKind("job", g.kind("w1"))

	var outputs int
	id, done := startOn(t, d, g, "w1", DispatchRequest{Kind: "job", OnOutput: func(bool, string) { outputs++ }})
	d.Receive("w1", &protocol.JobChunk{ID: id, Seq: 1, Data: "", Stream: protocol.StreamStdout})
	o := within(t, "the job's outcome", done)
	if !errors.Is(o.err, ErrOverrun) || !strings.Contains(o.err.Error(), "an empty chunk of stdout") || outputs != 0 {
		t.Fatalf("an empty stdout chunk: %+v, %v, %d outputs; want one error and nothing printed", o.res, o.err, outputs)
	}
	if err := within(t, "the job ending on w1", g.ended); !errors.Is(err, context.Canceled) {
		t.Fatalf("the job on w1 ended with %v, want it cancelled", err)
	}

	var chunks []string
	id, done = startOn(t, d, g, "w1", DispatchRequest{Kind: "job", OnChunk: func(_ int, data string) { chunks = append(chunks, data) }})
	d.Receive("w1", &protocol.JobChunk{ID: id, Seq: 1, Data: "not asked for", Stream: protocol.StreamStdout})
	d.Receive("w1", &protocol.JobChunk{ID: id, Seq: 1, Data: "one"})
	g.release <- struct{}{}
	if o := within(t, "the second job's outcome", done); o.err != nil || !slices.Equal(chunks, []string{"one"}) {
		t.Fatalf("second job: %+v %v, chunks %q; want only the kind's chunk", o.res, o.err, chunks)
	}
	assertNoInFlight(t, d)
}
