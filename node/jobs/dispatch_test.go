package jobs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"meshell/node/operator"
	"meshell/protocol"
)

// gate is a job kind that tells the test it started and waits for release
// or its context.
type gate struct {
	started chan string
	release chan struct{}
	ended   chan error
}

func newGate() *gate {
	return &gate{started: make(chan string, 64), release: make(chan struct{}), ended: make(chan error, 64)}
}

func (g *gate) kind(name string) KindFunc {
	return func(ctx context.Context, args []string, emit func(string) error) (string, error) {
		g.started <- name
		select {
		case <-g.release:
			g.ended <- nil
			return "released on " + name, nil
		case <-ctx.Done():
			g.ended <- ctx.Err()
			return "", ctx.Err()
		}
	}
}

// jobCluster is a dispatcher d and workers tagged role=worker and
// name=ALIAS, in memory.
func jobCluster(t *testing.T, workers ...string) (*cluster, *Jobs, []*Jobs) {
	t.Helper()
	c := newCluster()
	d := c.add(t, "d", nil, Limits{}, RunConfig{})
	var ws []*Jobs
	for _, a := range workers {
		ws = append(ws, c.add(t, a, map[string]string{"role": "worker", "name": a}, Limits{}, RunConfig{}))
	}
	return c, d, ws
}

func TestWorkerQueueBound(t *testing.T) {
	n, _ := fakeWorker(t, 1)
	g := newGate()
	n.RegisterKind("hold", g.kind("solo"))
	n.SetJobQueue(2)
	w := n.w
	for id := uint64(1); id <= 3; id++ {
		w.submit("x", &protocol.JobRequest{ID: id, Kind: "hold"})
	}
	<-g.started
	if s := n.Stats(); s.Running != 1 || s.Queued != 2 || s.Busy != 0 {
		t.Fatalf("after 3 requests: %+v, want 1 running, 2 queued", s)
	}
	w.submit("x", &protocol.JobRequest{ID: 4, Kind: "hold"})
	if s := n.Stats(); s.Busy != 1 || s.Queued != 2 {
		t.Fatalf("4th request: %+v, want it answered busy", s)
	}
	// Cancelling a queued job frees its place.
	w.cancel("x", 3)
	if s := n.Stats(); s.Queued != 1 {
		t.Fatalf("after cancelling a queued job: %+v", s)
	}
	w.submit("x", &protocol.JobRequest{ID: 5, Kind: "hold"})
	if s := n.Stats(); s.Queued != 2 || s.Busy != 1 {
		t.Fatalf("after a new request: %+v", s)
	}
	// A slot more runs a queued job at once; running jobs are undisturbed.
	n.SetSlots(2)
	<-g.started
	if s := n.Stats(); s.Running != 2 || s.Queued != 1 || s.Slots != 2 {
		t.Fatalf("after SetSlots(2): %+v", s)
	}
	if got := n.OwnTags(nil)[SlotsTag]; got != "2" {
		t.Fatalf("slots tag %q, want 2", got)
	}
	close(g.release)
	<-g.started // the last queued job
	for i := 0; i < 3; i++ {
		if err := <-g.ended; err != nil {
			t.Fatal(err)
		}
	}
}

// Queued jobs hold at most maxQueuedArgs of arguments: a flood of big
// requests is answered busy, not kept, and a small one still queues.
func TestWorkerQueueBoundInArgumentBytes(t *testing.T) {
	n, _ := fakeWorker(t, 1)
	g := newGate()
	n.RegisterKind("hold", g.kind("solo"))
	w := n.w
	w.submit("x", &protocol.JobRequest{ID: 1, Kind: "hold"})
	<-g.started
	const size = 4<<20 - 1024
	fit := maxQueuedArgs / size
	big := []string{strings.Repeat("a", size)}
	for id := uint64(2); id < 100; id++ {
		w.submit("x", &protocol.JobRequest{ID: id, Kind: "hold", Args: big})
	}
	if s := n.Stats(); s.Queued != fit || s.Busy != uint64(98-fit) || w.argBytes > maxQueuedArgs {
		t.Fatalf("after 98 requests of 4 MiB: %+v, %d bytes held; want %d queued within %d", s, w.argBytes, fit, maxQueuedArgs)
	}
	w.submit("x", &protocol.JobRequest{ID: 100, Kind: "hold", Args: []string{"small"}})
	if s := n.Stats(); s.Queued != fit+1 {
		t.Fatalf("a small request was not queued: %+v", s)
	}
	w.cancel("x", 2)
	if w.argBytes != (fit-1)*size+len("small") {
		t.Fatalf("after cancelling a queued job %d bytes are counted", w.argBytes)
	}
	close(g.release)
}

func TestLateAndForeignResultsAreIgnored(t *testing.T) {
	_, d, ws := jobCluster(t, "w1", "w2")
	g := newGate()
	ws[0].RegisterKind("job", g.kind("w1"))
	done := make(chan DispatchResult, 1)
	go func() {
		res, _ := d.Dispatch(context.Background(), DispatchRequest{Kind: "job", Tags: map[string]string{"name": "w1"}})
		done <- res
	}()
	<-g.started
	// The job's attempt is pending on w1 under some id ≤ nextID.
	id := d.nextID.Load()
	d.Receive("w2", &protocol.JobResult{ID: id, Status: protocol.JobOK, Result: "forged"}) // wrong worker
	d.Receive("w1", &protocol.JobResult{ID: id + 1000, Status: protocol.JobOK})            // unknown id
	close(g.release)
	res := <-done
	if res.Result != "released on w1" {
		t.Fatalf("got %+v", res)
	}
	d.Receive("w1", &protocol.JobResult{ID: id, Status: protocol.JobOK, Result: "late"}) // finished id
	if r := d.RecentJobs(); len(r) != 1 {
		t.Fatalf("a late duplicate produced another record: %+v", r)
	}
}

// A worker's error of any size is kept in the job's record as a line of at
// most maxRecordedError bytes: 256 records of 4 MiB would hold 1 GiB.
func TestRecordKeepsALineOfAHugeError(t *testing.T) {
	_, d, ws := jobCluster(t, "w1")
	huge := strings.Repeat("e", 4<<20)
	ws[0].RegisterKind("fail", func(context.Context, []string, func(string) error) (string, error) { return "", errors.New(huge) })
	if _, err := d.Dispatch(context.Background(), DispatchRequest{Kind: "fail", Worker: "w1"}); err == nil || !strings.Contains(err.Error(), huge) {
		t.Fatal("the caller was not given the worker's whole error")
	}
	if r := d.RecentJobs(); len(r) != 1 || r[0].State != "error" || len(r[0].Error) > maxRecordedError+len("…") || !strings.HasSuffix(r[0].Error, "…") {
		t.Fatalf("the record keeps %d bytes of the error, want at most %d", len(r[0].Error), maxRecordedError)
	}
}

// TestRunSignatureCoversTheCommand: on a node with operators, a run
// request's signature covers its command, and is good once.
func TestRunSignatureCoversTheCommand(t *testing.T) {
	k, err := operator.Generate("alice")
	if err != nil {
		t.Fatal(err)
	}
	ops, err := operator.ParseOperators(strings.NewReader(k.PublicLine()+"\n"), "operators")
	if err != nil {
		t.Fatal(err)
	}
	v, err := operator.NewVerifier(ops, operator.VerifierConfig{})
	if err != nil {
		t.Fatal(err)
	}
	c := newCluster()
	w := c.add(t, "w", nil, Limits{}, RunConfig{Allow: true})
	c.host("w").verify = func(op string, args []string, a *protocol.Signature) error {
		s := operator.Signed{Op: op, Args: args}
		if a != nil {
			s.Target, s.Boot, s.Issuer, s.Nonce, s.Expiry, s.Sig = a.Target, a.Boot, a.Issuer, a.Nonce, a.Expiry, a.Sig
		}
		_, err := v.Verify(s, "w", time.Now())
		return err
	}
	s, err := operator.Sign(k, RunKind, []string{"echo", "signed"}, "w", v.Boot(), operator.DefaultTTL, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sig := &protocol.Signature{Target: s.Target, Boot: s.Boot, Issuer: s.Issuer, Nonce: s.Nonce, Expiry: s.Expiry, Sig: s.Sig}
	req := &protocol.JobRequest{Kind: RunKind, Args: []string{"rm", "-rf", "/tmp/x"}, Auth: sig}
	if st, why := w.refuseRun("d", req); st != protocol.JobRefused || !strings.Contains(why, "bad signature") {
		t.Fatalf("a signature over another command: %v %q", st, why)
	}
	req.Args = []string{"echo", "signed"}
	if st, why := w.refuseRun("d", req); why != "" {
		t.Fatalf("the genuine request: %v %q", st, why)
	}
	if st, why := w.refuseRun("d", req); st != protocol.JobRefused || !strings.Contains(why, "replayed") {
		t.Fatalf("the same request again: %v %q", st, why)
	}
	if v, err = operator.NewVerifier(ops, operator.VerifierConfig{}); err != nil { // w restarted
		t.Fatal(err)
	}
	if st, why := w.refuseRun("d", req); st != protocol.JobRefused || why != "refused: signed for an earlier run of this node; resend" {
		t.Fatalf("the same request after a restart: %v %q", st, why)
	}
	req.Auth = nil
	if st, why := w.refuseRun("d", req); st != protocol.JobRefused || !strings.Contains(why, "only for its operators") {
		t.Fatalf("an unsigned request: %v %q", st, why)
	}
}

// BenchmarkWorkerSubmit is the worker's cost for one decoded request:
// admission, a slot token, the inline kind and the answer handed to the
// transport (here to a peer that is not connected, so nothing is written).
func BenchmarkWorkerSubmit(b *testing.B) {
	h := &fakeHost{alias: "w", send: func(string, protocol.Message) error { return ErrNotConnected }}
	j := New(h, Limits{}, RunConfig{})
	defer j.Close()
	w := j.w
	req := &protocol.JobRequest{Kind: "echo", Args: []string{strings.Repeat("x", 64)}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req.ID = uint64(i)
		w.submit("peer", req)
	}
}

// A filter that matches no worker names the tagged members it knows, a
// few of them, not every member of a large cluster.
func TestNoWorkerNamesAFewOfTheMembers(t *testing.T) {
	c := newCluster()
	d := c.add(t, "d", nil, Limits{}, RunConfig{})
	for i := 0; i < 40; i++ {
		c.add(t, fmt.Sprintf("w%02d", i), map[string]string{"role": "worker"}, Limits{}, RunConfig{})
	}
	_, err := d.Dispatch(context.Background(), DispatchRequest{Kind: "echo", Tags: map[string]string{"role": "wrker"}})
	if !errors.Is(err, ErrNoWorker) {
		t.Fatalf("dispatch: %v, want no worker", err)
	}
	if msg := err.Error(); strings.Count(msg, "role=worker") > maxKnownListed || !strings.Contains(msg, "w00 (role=worker") ||
		!strings.Contains(msg, fmt.Sprintf("and %d more", 40-maxKnownListed)) {
		t.Errorf("error %q: want %d members named and the count of the rest", msg, maxKnownListed)
	}
}

// A job whose caller has already given up (Ctrl-C before it began) is not
// sent: it ends in the context's error and no worker sees it.
func TestDispatchWithACancelledContextSendsNothing(t *testing.T) {
	c, d, _ := jobCluster(t, "w1")
	var sent []protocol.Message
	c.host("d").send = func(_ string, m protocol.Message) error {
		sent = append(sent, m)
		return ErrNotConnected
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.Dispatch(ctx, DispatchRequest{Kind: "echo"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("dispatch with a cancelled context: %v", err)
	}
	if len(sent) != 0 {
		t.Errorf("sent %d messages for a job cancelled before it began: %v", len(sent), sent)
	}
}
