package jobs

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"meshell/protocol"
)

// fakePeer stands in for the mesh under a worker. While stuck, every send
// fails with mesh.ErrQueueFull, as to a dispatcher that does not read;
// while reading, it records what it is sent.
type fakePeer struct {
	mu      sync.Mutex
	reading bool
	got     []protocol.Message
	notify  chan struct{} // a value after messages were recorded
}

func (p *fakePeer) send(alias string, m protocol.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.reading {
		return ErrQueueFull
	}
	p.got = append(p.got, m)
	select {
	case p.notify <- struct{}{}:
	default:
	}
	return nil
}

func (p *fakePeer) setReading(b bool) {
	p.mu.Lock()
	p.reading = b
	p.mu.Unlock()
}

func (p *fakePeer) received() []protocol.Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]protocol.Message(nil), p.got...)
}

// waitFor blocks until cond holds for the messages received so far.
func (p *fakePeer) waitFor(t *testing.T, what string, cond func([]protocol.Message) bool) []protocol.Message {
	t.Helper()
	timeout := time.NewTimer(20 * time.Second)
	defer timeout.Stop()
	for {
		got := p.received()
		if cond(got) {
			return got
		}
		select {
		case <-p.notify:
		case <-timeout.C:
			t.Fatalf("never received %s; got %d messages", what, len(got))
		}
	}
}

// resultsByID indexes the JobResults among ms.
func resultsByID(ms []protocol.Message) map[uint64]*protocol.JobResult {
	out := map[uint64]*protocol.JobResult{}
	for _, m := range ms {
		if r, ok := m.(*protocol.JobResult); ok {
			out[r.ID] = r
		}
	}
	return out
}

// holdKind registers kind "hold": it reports its first argument on started
// and returns it once released (one job per value on release) or ends with
// its context.
func holdKind(n *Jobs) (started chan string, release chan struct{}, ended chan error) {
	started, release, ended = make(chan string, 1024), make(chan struct{}), make(chan error, 1024)
	n.RegisterKind("hold", func(ctx context.Context, args []string, emit func(string) error) (string, error) {
		name := ""
		if len(args) > 0 {
			name = args[0]
		}
		select { // a flood may start more than the buffers hold: drop those signals
		case started <- name:
		default:
		}
		var err error
		select {
		case <-release:
		case <-ctx.Done():
			err = ctx.Err()
		}
		select {
		case ended <- err:
		default:
		}
		if err != nil {
			return "", err
		}
		return name, nil
	})
	return started, release, ended
}

// until spins (yielding) until cond holds, for state changed by another
// goroutine that signals nothing.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
	}
}

// TestWorkerRepliesToAStuckDispatcherAreBounded floods a worker with 80,000
// requests from a dispatcher that never reads: goroutines and memory stay
// bounded, and once it reads again its later jobs are answered.
func TestWorkerRepliesToAStuckDispatcherAreBounded(t *testing.T) {
	n, p := fakeWorker(t, 2)
	_, release, _ := holdKind(n)
	p.setReading(false)
	w := n.w
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	base := runtime.NumGoroutine()
	peak := 0
	reqs := [][]string{{"echo", "x"}, {"hold", "flood"}, {"sha256", "abc"}, {"primes", "1000"}}
	const flood = 80_000
	for id := uint64(1); id <= flood; id++ {
		r := reqs[id%uint64(len(reqs))]
		w.submit("d", &protocol.JobRequest{ID: id, Kind: r[0], Args: r[1:]})
		if id%256 == 0 {
			peak = max(peak, runtime.NumGoroutine()-base)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if peak > 100 {
		t.Errorf("%d goroutines above the baseline during the flood, want at most 100", peak)
	}
	grew := int64(after.HeapInuse+after.StackInuse) - int64(before.HeapInuse+before.StackInuse)
	if grew > 64<<20 {
		t.Errorf("heap and stacks grew by %d MiB during the flood, want at most 64", grew>>20)
	}
	s := n.Stats()
	if s.ReplyOverflows == 0 || s.RepliesDropped < DefaultReplyQueue || s.RepliesQueued > DefaultReplyQueue {
		t.Errorf("stats %+v: want overflows counted and at most %d answers queued", s, DefaultReplyQueue)
	}
	t.Logf("peak %d goroutines above baseline, heap+stacks %+d KiB, %d answers queued, %d dropped in %d overflows",
		peak, grew>>10, s.RepliesQueued, s.RepliesDropped, s.ReplyOverflows)

	// The dispatcher reads again: later jobs are answered.
	p.setReading(true)
	close(release) // the flood's held jobs end
	until(t, "the flood's jobs to end", func() bool { s := n.Stats(); return s.Running == 0 && s.Queued == 0 })
	const later = 1_000_000
	for id := uint64(later + 1); id <= later+10; id++ {
		w.submit("d", &protocol.JobRequest{ID: id, Kind: "echo", Args: []string{"later"}})
	}
	p.waitFor(t, "the later jobs' answers", func(ms []protocol.Message) bool {
		rs := resultsByID(ms)
		for id := uint64(later + 1); id <= later+10; id++ {
			if r := rs[id]; r == nil || r.Status != protocol.JobOK || r.Result != "later" {
				return false
			}
		}
		return true
	})
}

// TestWorkerRepliesKeepTheirOrderBehindAFullQueue: answers that wait for a
// full mesh queue go out in order, by one sender that returns once they
// are out; then answers go inline again.
func TestWorkerRepliesKeepTheirOrderBehindAFullQueue(t *testing.T) {
	n, p := fakeWorker(t, 2)
	w := n.w
	base := runtime.NumGoroutine()
	p.setReading(false)
	const jobs = 1000
	for id := uint64(1); id <= jobs; id++ {
		w.submit("d", &protocol.JobRequest{ID: id, Kind: "echo", Args: []string{"x"}})
	}
	if g := runtime.NumGoroutine() - base; g > 1 {
		t.Errorf("%d goroutines for one stuck dispatcher, want one sender", g)
	}
	if s := n.Stats(); s.RepliesQueued != jobs {
		t.Fatalf("%d answers queued, want %d", s.RepliesQueued, jobs)
	}
	p.setReading(true)
	got := p.waitFor(t, "every answer", func(ms []protocol.Message) bool { return len(ms) >= jobs })
	for i, m := range got {
		if r := m.(*protocol.JobResult); r.ID != uint64(i+1) {
			t.Fatalf("answer %d is for job %d: out of order", i+1, r.ID)
		}
	}
	until(t, "the sender to return", func() bool { return n.out.backlog.Load() == 0 })
	w.submit("d", &protocol.JobRequest{ID: jobs + 1, Kind: "echo", Args: []string{"x"}})
	if got := p.received(); len(got) != jobs+1 {
		t.Fatalf("the answer after the backlog was not sent inline: %d messages", len(got))
	}
	if s := n.Stats(); s.RepliesDropped != 0 || s.ReplyOverflows != 0 || s.RepliesQueued != 0 {
		t.Fatalf("stats %+v: nothing should have been dropped", s)
	}
}

// TestWorkerOverflowCancelsTheStuckDispatchersJobs: past its reply queue's
// bound, a dispatcher's answers are dropped and its jobs cancelled; another
// dispatcher's are not.
func TestWorkerOverflowCancelsTheStuckDispatchersJobs(t *testing.T) {
	n, p := fakeWorker(t, 1)
	started, release, ended := holdKind(n)
	w := n.w
	p.setReading(false)
	w.submit("d", &protocol.JobRequest{ID: 1, Kind: "hold", Args: []string{"d1"}})
	if got := <-started; got != "d1" {
		t.Fatalf("started %q", got)
	}
	w.submit("d", &protocol.JobRequest{ID: 2, Kind: "hold", Args: []string{"d2"}})
	w.submit("e", &protocol.JobRequest{ID: 1, Kind: "hold", Args: []string{"e1"}})
	// d's further requests are answered busy (past its share) until its
	// answers overflow.
	for id := uint64(3); n.Stats().ReplyOverflows == 0; id++ {
		if id > 2*DefaultReplyQueue {
			t.Fatalf("no overflow after %d busy answers: %+v", id, n.Stats())
		}
		w.submit("d", &protocol.JobRequest{ID: id, Kind: "hold", Args: []string{"flood"}})
	}
	if err := <-ended; !errors.Is(err, context.Canceled) {
		t.Fatalf("d's running job ended with %v, want cancelled", err)
	}
	if got := <-started; got != "e1" {
		t.Fatalf("after d's jobs were cancelled, %q started, want e's job (d's queued job is dropped)", got)
	}
	s := n.Stats()
	if s.ReplyOverflows != 1 || s.RepliesDropped != DefaultReplyQueue+1 || s.Queued != 0 || s.Running != 1 {
		t.Fatalf("stats %+v: want one overflow of %d answers and e's job running alone", s, DefaultReplyQueue+1)
	}
	p.setReading(true)
	p.waitFor(t, "d1's cancellation", func(ms []protocol.Message) bool {
		r := resultsByID(ms)[1]
		return r != nil && r.Status == protocol.JobCancelled && strings.Contains(r.Error, "not reading")
	})
	close(release)
	p.waitFor(t, "e1's answer", func(ms []protocol.Message) bool {
		for _, m := range ms {
			if r, ok := m.(*protocol.JobResult); ok && r.Status == protocol.JobOK && r.Result == "e1" {
				return true
			}
		}
		return false
	})
}

// TestWorkerStreamWaitsForASlowDispatcher: a streaming job's chunks fill at
// most half its dispatcher's reply queue; the job waits for room, and every
// chunk then the result arrive in order.
func TestWorkerStreamWaitsForASlowDispatcher(t *testing.T) {
	n, p := fakeWorker(t, 1)
	w := n.w
	p.setReading(false)
	const chunks = 10_000
	w.submit("d", &protocol.JobRequest{ID: 1, Kind: "stream", Args: []string{fmt.Sprint(chunks)}})
	until(t, "the stream to fill half the reply queue", func() bool { return n.Stats().RepliesQueued == DefaultReplyQueue/2 })
	if s := n.Stats(); s.Running != 1 || s.ReplyOverflows != 0 {
		t.Fatalf("stats %+v: want the stream job waiting, nothing dropped", s)
	}
	p.setReading(true)
	got := p.waitFor(t, "the stream's result", func(ms []protocol.Message) bool { return resultsByID(ms)[1] != nil })
	if len(got) != chunks+1 {
		t.Fatalf("%d messages, want %d chunks and the result", len(got), chunks)
	}
	for i, m := range got[:chunks] {
		if c, ok := m.(*protocol.JobChunk); !ok || c.Seq != uint32(i+1) {
			t.Fatalf("message %d is %#v, want chunk %d", i+1, m, i+1)
		}
	}
	if r := got[chunks].(*protocol.JobResult); r.Status != protocol.JobOK || r.Result != fmt.Sprintf("%d chunks", chunks) {
		t.Fatalf("result %+v", r)
	}
}

// TestWorkerQueueIsSharedRoundRobin: dispatcher A floods a one-slot worker;
// B's single job gets in past the full queue and starts as soon as A's
// running job ends, before A's backlog; A is busy past its share.
func TestWorkerQueueIsSharedRoundRobin(t *testing.T) {
	n, p := fakeWorker(t, 1)
	started, release, _ := holdKind(n)
	w := n.w
	const flood = 3000
	for id := uint64(1); id <= flood; id++ {
		w.submit("A", &protocol.JobRequest{ID: id, Kind: "hold", Args: []string{"A"}})
	}
	if got := <-started; got != "A" {
		t.Fatalf("started %q", got)
	}
	if s := n.Stats(); s.Queued != DefaultJobQueue || s.Busy != flood-1-DefaultJobQueue {
		t.Fatalf("alone, A should fill the queue: %+v", s)
	}
	w.submit("B", &protocol.JobRequest{ID: 1, Kind: "hold", Args: []string{"B"}})
	if s := n.Stats(); s.Queued != DefaultJobQueue+1 {
		t.Fatalf("B did not get in past A's backlog: %+v", s)
	}
	w.submit("A", &protocol.JobRequest{ID: flood + 1, Kind: "hold", Args: []string{"A"}})
	r := resultsByID(p.received())[flood+1]
	if r == nil || r.Status != protocol.JobBusy || !strings.Contains(r.Error, "your share while 2 dispatchers wait") {
		t.Fatalf("A past its share: %+v, want busy", r)
	}
	w.submit("C", &protocol.JobRequest{ID: 1, Kind: "hold", Args: []string{"C"}})
	for _, want := range []string{"B", "C", "A", "A"} {
		release <- struct{}{} // the running job ends
		if got := <-started; got != want {
			t.Fatalf("next job from %s, want %s", got, want)
		}
	}
}

// TestWorkerRefusesUnknownKindsAndDuplicateIDs: an unknown kind is answered
// with one error naming the known kinds; a request whose id is queued or
// running for the same dispatcher is answered with an error, not run twice.
func TestWorkerRefusesUnknownKindsAndDuplicateIDs(t *testing.T) {
	n, p := fakeWorker(t, 2)
	started, release, _ := holdKind(n)
	w := n.w
	w.submit("d", &protocol.JobRequest{ID: 1, Kind: "teleport"})
	got := p.received()
	if len(got) != 1 {
		t.Fatalf("%d answers to an unknown kind, want 1", len(got))
	}
	if r := got[0].(*protocol.JobResult); r.ID != 1 || r.Status != protocol.JobError ||
		r.Error != `unknown job kind "teleport" on w: it runs echo, hold, primes, sha256, sleep, stream` {
		t.Fatalf("unknown kind: %+v", r)
	}
	w.submit("d", &protocol.JobRequest{ID: 2, Kind: "hold", Args: []string{"first"}})
	<-started
	w.submit("d", &protocol.JobRequest{ID: 2, Kind: "hold", Args: []string{"again"}})
	r := resultsByID(p.received())[2]
	if r == nil || r.Status != protocol.JobError || !strings.Contains(r.Error, "job 2 is already queued or running on w") {
		t.Fatalf("duplicate of a running job: %+v", r)
	}
	w.submit("e", &protocol.JobRequest{ID: 2, Kind: "hold", Args: []string{"e"}}) // another dispatcher's id 2
	<-started
	w.submit("d", &protocol.JobRequest{ID: 3, Kind: "hold", Args: []string{"queued"}})
	w.submit("d", &protocol.JobRequest{ID: 3, Kind: "hold", Args: []string{"again"}})
	if s := n.Stats(); s.Running != 2 || s.Queued != 1 {
		t.Fatalf("stats %+v: want 2 running, 1 queued", s)
	}
	if got := p.received(); len(got) != 3 {
		t.Fatalf("answers %v: want the unknown kind's and two duplicates'", got)
	}
	close(release)
	p.waitFor(t, "three jobs' answers", func(ms []protocol.Message) bool {
		ok := 0
		for _, m := range ms {
			if r, _ := m.(*protocol.JobResult); r != nil && r.Status == protocol.JobOK {
				ok++
			}
		}
		return ok == 3
	})
	if len(started) != 1 || <-started != "queued" {
		t.Fatal("a duplicate ran")
	}
}

// TestJobTimeoutIsCappedByMaxJobTimeout: a worker runs a request without a
// timeout, or with a longer one, for its MaxJobTimeout; a dispatcher asks
// for at most its own.
func TestJobTimeoutIsCappedByMaxJobTimeout(t *testing.T) {
	t.Run("worker", func(t *testing.T) {
		n, p := fakeWorkerLimits(t, 3, Limits{MaxJobTimeout: 50 * time.Millisecond})
		holdKind(n)
		w := n.w
		w.submit("d", &protocol.JobRequest{ID: 1, Kind: "hold"})
		w.submit("d", &protocol.JobRequest{ID: 2, Kind: "hold", Timeout: int64(time.Hour)})
		w.submit("d", &protocol.JobRequest{ID: 3, Kind: "hold", Timeout: int64(20 * time.Millisecond)})
		got := p.waitFor(t, "three answers", func(ms []protocol.Message) bool { return len(resultsByID(ms)) == 3 })
		rs := resultsByID(got)
		for id, want := range map[uint64]string{1: "timed out after 50ms on w (its --max-job-timeout)", 2: "timed out after 50ms on w (its --max-job-timeout)", 3: "timed out after 20ms on w"} {
			if r := rs[id]; r.Status != protocol.JobError || r.Error != want {
				t.Errorf("job %d: %+v, want error %q", id, r, want)
			}
		}
	})
	t.Run("dispatcher", func(t *testing.T) {
		c := newCluster()
		d := c.add(t, "d", nil, Limits{MaxJobTimeout: 100 * time.Millisecond}, RunConfig{})
		holdKind(c.add(t, "w1", roleWorker, Limits{}, RunConfig{}))
		c.publish()
		for _, timeout := range []time.Duration{0, time.Hour} {
			_, err := d.Dispatch(context.Background(), DispatchRequest{Kind: "hold", Timeout: timeout})
			if err == nil || !strings.Contains(err.Error(), "timed out after 100ms") {
				t.Errorf("Timeout %v: err = %v, want it capped at 100ms", timeout, err)
			}
		}
		assertNoInFlight(t, d)
	})
	t.Run("worker that never answers", func(t *testing.T) {
		c := newCluster()
		d := c.add(t, "d", nil, Limits{MaxJobTimeout: 50 * time.Millisecond}, RunConfig{})
		holdKind(c.add(t, "w1", roleWorker, Limits{}, RunConfig{}))
		c.setMute("w1")
		c.publish()
		start := time.Now()
		_, err := d.Dispatch(context.Background(), DispatchRequest{Kind: "hold", MaxAttempts: 1})
		want := "w1 sent no answer by the job's deadline there and a grace after it"
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("err = %v, want %q", err, want)
		}
		if took, due := time.Since(start), 50*time.Millisecond+answerGrace(50*time.Millisecond); took < due {
			t.Fatalf("given up after %v, before the attempt was due (%v)", took, due)
		}
		assertNoInFlight(t, d)
	})
}

// TestScaleIsBoundedByMaxSlots: SetSlots refuses more than the owner's
// MaxSlots (the remote scale command, which goes through it, is tested in
// node).
func TestScaleIsBoundedByMaxSlots(t *testing.T) {
	w1, _ := fakeWorker(t, runtime.NumCPU())
	limit := w1.Stats().MaxSlots
	if limit != 4*runtime.NumCPU() {
		t.Fatalf("default MaxSlots %d, want 4 per CPU", limit)
	}
	want := fmt.Sprintf("slots %d exceeds this node's --max-slots %d (set by its owner at start-up)", limit+1, limit)
	if err := w1.SetSlots(limit + 1); err == nil || err.Error() != want {
		t.Fatalf("SetSlots(%d) = %v, want %q", limit+1, err, want)
	}
	if s := w1.Stats(); s.Slots != runtime.NumCPU() {
		t.Fatalf("a refused SetSlots changed the slots: %+v", s)
	}
	n, _ := fakeWorkerLimits(t, 1, Limits{MaxSlots: 3})
	if err := n.SetSlots(4); err == nil || err.Error() != "slots 4 exceeds this node's --max-slots 3 (set by its owner at start-up)" {
		t.Fatalf("SetSlots(4) above an owner's 3: %v", err)
	}
	if err := n.SetSlots(-1); err == nil || !strings.Contains(err.Error(), "use 0 to 3") {
		t.Fatalf("SetSlots(-1): %v", err)
	}
}

func assertNoInFlight(t *testing.T, d *Jobs) {
	t.Helper()
	if s := d.Stats(); s.InFlight != 0 {
		t.Errorf("dispatcher reports %d jobs in flight after all returned", s.InFlight)
	}
	for _, w := range d.Workers(nil) {
		if w.InFlight != 0 {
			t.Errorf("%s: %d in flight after all jobs returned", w.Alias, w.InFlight)
		}
	}
}
