package mesh

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"meshell/protocol"
)

// Frames and bytes are counted by family on both ends, and a frame dropped
// by a full queue is counted in its family.
func TestStatsByFamily(t *testing.T) {
	rb := newRecorder()
	a, _ := newMesh(t, "a", newRecorder())
	b, bAddr := newMesh(t, "b", rb)
	if _, err := a.Hello(context.Background(), bAddr); err != nil {
		t.Fatal(err)
	}
	const jobs, pings = 30, 7
	for range jobs {
		if err := a.SendConnected("b", &protocol.JobCancel{ID: 1}); err != nil {
			t.Fatal(err)
		}
	}
	for range pings {
		if err := a.SendConnected("b", &protocol.Control{ID: 1, Op: "ping"}); err != nil {
			t.Fatal(err)
		}
	}
	for range jobs + pings {
		select {
		case <-rb.recv:
		case <-time.After(20 * time.Second):
			t.Fatal("frames not delivered")
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for a.Stats().ByFamily[protocol.FamilyJobs].FramesSent < jobs && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // the writer counts after its write returns
	}
	sa, sb := a.Stats().ByFamily, b.Stats().ByFamily
	for _, tc := range []struct {
		f      protocol.Family
		frames uint64
	}{{protocol.FamilyJobs, jobs}, {protocol.FamilyControl, pings}} {
		if sa[tc.f].FramesSent != tc.frames || sb[tc.f].FramesReceived != tc.frames {
			t.Errorf("%s: a sent %d, b received %d frames; want %d", tc.f, sa[tc.f].FramesSent, sb[tc.f].FramesReceived, tc.frames)
		}
		if sa[tc.f].BytesSent == 0 || sb[tc.f].BytesReceived == 0 || sb[tc.f].BytesReceived > sa[tc.f].BytesSent {
			t.Errorf("%s: a sent %d bytes, b received %d", tc.f, sa[tc.f].BytesSent, sb[tc.f].BytesReceived)
		}
	}
	if sa[protocol.FamilyMembership].FramesSent == 0 {
		t.Error("the handshake's frames are not counted as membership")
	}

	rc := newRecorder()
	rc.block = make(chan struct{}) // c does not read: a's queue to it fills
	defer close(rc.block)
	_, cAddr := newMesh(t, "c", rc)
	if _, err := a.Hello(context.Background(), cAddr); err != nil {
		t.Fatal(err)
	}
	big := &protocol.JobResult{Result: strings.Repeat("x", 1<<20)}
	for i := 0; ; i++ {
		err := a.SendConnected("c", big)
		if errors.Is(err, ErrQueueFull) {
			break
		}
		if err != nil || i > 100000 {
			t.Fatalf("the queue never filled: %v", err)
		}
	}
	if d := a.Stats().ByFamily; d[protocol.FamilyJobs].Dropped == 0 || d[protocol.FamilyControl].Dropped != 0 {
		t.Fatalf("dropped by family: %+v", d)
	}
}
