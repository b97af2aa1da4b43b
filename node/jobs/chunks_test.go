package jobs

import (
	"context"
	"fmt"
	"reflect"
	"strings"
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
