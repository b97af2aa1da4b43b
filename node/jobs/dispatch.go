package jobs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"meshell/manager"
	"meshell/protocol"
)

// Jobs runs jobs for other nodes (the worker side, jobs_worker.go) and
// dispatches this node's jobs to workers (this file).
//
// Dispatching has no run-loop hop: Dispatch runs on the caller's goroutine.
// It picks a worker from a candidate list cached per membership snapshot and
// filter, stores the attempt in a sharded pending table under a fresh id,
// and sends the request with mesh.SendConnected. Answers arrive on the
// worker connection's reader goroutine, which removes the id from the
// pending table and hands the outcome to the waiting caller through a
// one-slot channel: removal from the table is the single arbiter of who
// finishes an attempt, so every attempt ends once, and an answer for an id
// that is no longer pending (late, duplicate, superseded) is ignored.
//
// The worker side answers through j.out (jobs_replies.go): inline while a
// dispatcher's mesh queue has room, else through a bounded queue per
// dispatcher.
type Jobs struct {
	h   Host
	reg *registry
	w   *worker
	out *outbox   // worker answers waiting for a dispatcher's mesh queue
	lim Limits    // the owner's, fixed by New
	run RunConfig // the owner's, fixed by New

	kinds  atomic.Pointer[map[string]kind] // copy on write
	kindMu sync.Mutex                      // serialises writers of kinds

	nextID   atomic.Uint64
	overruns atomic.Uint64 // attempts ended because their worker streamed past a bound
	pending  [pendingShards]pendingShard
	inflight atomic.Int64
	cache    atomic.Pointer[viewCache]
	counts   *jobCounts // for /metrics (counts.go)

	recentMu sync.Mutex
	recent   [recentJobs]JobRecord
	recentN  uint64

	closed  atomic.Bool
	closing chan struct{}
}

// DefaultMaxAttempts bounds how many times a job is sent again after its
// worker failed, left, dropped its connection or shut down under it. Busy
// and rejected answers do not count: they are bounded by maxBusyRounds.
const DefaultMaxAttempts = 3

// maxBusyRounds bounds how many times a dispatcher goes round every
// matching worker when each answered busy or rejected (or could not be
// reached); between rounds it backs off from 1 ms doubling to 64 ms, about
// 0.9 s in all.
const maxBusyRounds = 16

// recentJobs is the size of the ring RecentJobs reads.
const recentJobs = 256

const pendingShards = 64

type pendingShard struct {
	mu sync.Mutex
	m  map[uint64]pend
	_  [40]byte // keep shards on separate cache lines
}

// pend is one attempt in flight: who runs it and who waits for it.
type pend struct {
	c      *call
	worker string
	load   *Load
	due    time.Time // past it without an answer, the attempt is given up (sweep)
}

// call is a Dispatch waiting for its current attempt. ch has room for the
// one outcome of that attempt: only the goroutine that removed the attempt
// from the pending table sends on it, so a send never blocks.
type call struct {
	ch     chan outcome
	stream *stream // nil unless the caller takes chunks
}

type outcome struct {
	status  protocol.JobStatus
	result  string
	err     string
	lost    string              // not empty: the attempt ended without an answer, and why
	overrun string              // not empty: the worker streamed past a bound, and how (the attempt was ended here)
	closed  bool                // this node shuts down
	res     *protocol.JobResult // the answer itself, when there is one
}

var callPool = sync.Pool{New: func() any { return &call{ch: make(chan outcome, 1)} }}

// New returns the job plane of the node h, under its owner's limits and
// command settings (run must have passed RunConfig.Checked).
func New(h Host, lim Limits, run RunConfig) *Jobs {
	j := &Jobs{h: h, reg: newRegistry(), lim: lim.withDefaults(), run: run.withDefaults(), closing: make(chan struct{}), counts: newJobCounts()}
	for i := range j.pending {
		j.pending[i].m = map[uint64]pend{}
	}
	ks := builtinKinds()
	for _, d := range j.run.Kinds {
		ks[d.Name] = kind{cmd: &cmdKind{name: d.Name, argv: d.Command, idempotent: d.Idempotent}}
	}
	j.kinds.Store(&ks)
	j.out = newOutbox(j)
	slots := min(runtime.NumCPU(), j.lim.MaxSlots)
	j.w = newWorker(j, slots)
	go j.sweep()
	return j
}

// sweepEvery is how often attempts past their due time are looked for.
const sweepEvery = time.Second

// answerGrace is how long after the deadline a worker was given its answer
// may take to arrive: an attempt is due then.
func answerGrace(deadline time.Duration) time.Duration { return deadline/8 + time.Second }

// sweep gives up the attempts whose worker has not answered by their due
// time, whatever the caller's timeout: the worker stops a job at the
// deadline it was sent and answers, so a worker past it is hung, or
// hostile, and cannot hold a job for ever. Each is cancelled there and
// ends as lost, so that it goes to another worker if its kind allows.
func (j *Jobs) sweep() {
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-j.closing:
			return
		case now := <-t.C:
			for i := range j.pending {
				s := &j.pending[i]
				var ids []uint64
				var taken []pend
				s.mu.Lock()
				for id, p := range s.m {
					if now.After(p.due) {
						delete(s.m, id)
						ids, taken = append(ids, id), append(taken, p)
					}
				}
				s.mu.Unlock()
				for k, p := range taken {
					j.send(p.worker, &protocol.JobCancel{ID: ids[k]})
					p.c.ch <- outcome{lost: p.worker + " sent no answer by the job's deadline there and a grace after it"}
				}
			}
		}
	}
}

func (j *Jobs) kind(name string) (kind, bool) {
	k, ok := (*j.kinds.Load())[name]
	return k, ok
}

func (j *Jobs) kindNames() []string {
	m := *j.kinds.Load()
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (j *Jobs) shard(id uint64) *pendingShard { return &j.pending[id%pendingShards] }

func (j *Jobs) store(id uint64, p pend) {
	s := j.shard(id)
	s.mu.Lock()
	s.m[id] = p
	s.mu.Unlock()
}

// remove takes id out of the pending table; false when another goroutine
// already did (its outcome is on the way to the call's channel).
func (j *Jobs) remove(id uint64) bool {
	s := j.shard(id)
	s.mu.Lock()
	_, ok := s.m[id]
	delete(s.m, id)
	s.mu.Unlock()
	return ok
}

// takeFrom removes id if it is pending on worker from.
func (j *Jobs) takeFrom(id uint64, from string) (pend, bool) {
	s := j.shard(id)
	s.mu.Lock()
	p, ok := s.m[id]
	if ok && p.worker == from {
		delete(s.m, id)
	} else {
		ok = false
	}
	s.mu.Unlock()
	return p, ok
}

func (j *Jobs) peek(id uint64, from string) (pend, bool) {
	s := j.shard(id)
	s.mu.Lock()
	p, ok := s.m[id]
	s.mu.Unlock()
	return p, ok && p.worker == from
}

// failWhere ends every pending attempt for which match holds with o.
func (j *Jobs) failWhere(match func(p pend) bool, o outcome) {
	for i := range j.pending {
		s := &j.pending[i]
		var taken []pend
		s.mu.Lock()
		for id, p := range s.m {
			if match(p) {
				delete(s.m, id)
				taken = append(taken, p)
			}
		}
		s.mu.Unlock()
		for _, p := range taken {
			p.c.ch <- o
		}
	}
}

// send delivers a job message to alias: through the mesh, or straight to
// this node's own handlers when alias is this node (a local worker runs
// jobs without the network).
func (j *Jobs) send(alias string, m protocol.Message) error {
	if alias == j.h.Alias() {
		j.Receive(alias, m)
		return nil
	}
	return j.h.Send(alias, m)
}

// Receive handles a job message on the sending peer's reader goroutine.
// It never blocks.
func (j *Jobs) Receive(from string, m protocol.Message) {
	switch m := m.(type) {
	case *protocol.JobRequest:
		j.w.submit(from, m)
	case *protocol.JobCancel:
		j.w.cancel(from, m.ID)
	case *protocol.JobResult:
		if p, ok := j.takeFrom(m.ID, from); ok {
			p.c.ch <- outcome{status: m.Status, result: m.Result, err: m.Error, res: m}
		}
	case *protocol.JobChunk:
		if p, ok := j.peek(m.ID, from); ok && p.c.stream != nil {
			if why := p.c.stream.push(*m); why != "" {
				j.overrun(m.ID, from, why)
			}
		}
	}
}

// overrun ends attempt id, whose worker from streamed past a bound of its
// stream (why): its caller gets one error, the worker a JobCancel, and the
// attempt's later chunks and answer are dropped, as it is no longer pending.
// The connection and other jobs go on.
func (j *Jobs) overrun(id uint64, from, why string) {
	p, ok := j.takeFrom(id, from)
	if !ok {
		return // the attempt ended another way meanwhile
	}
	j.overruns.Add(1)
	j.send(from, &protocol.JobCancel{ID: id})
	j.h.Warn("job-overrun", logrus.Fields{"worker": from, "job": id}, "job ended: its worker streamed "+why)
	p.c.ch <- outcome{overrun: from + " streamed " + why}
}

// PeerDown runs on a mesh goroutine when the connection to alias closed.
func (j *Jobs) PeerDown(alias string) {
	if l, ok := j.reg.peek(alias); ok {
		l.setDown(true)
	}
	j.failWhere(func(p pend) bool { return p.worker == alias }, outcome{lost: alias + " dropped its connection"})
	j.w.dropFrom(alias, whyCancel)
	j.out.forget(alias)
}

// MemberGone runs on the node's run loop when alias failed, left (left
// set) or was reaped: its jobs go to other workers.
func (j *Jobs) MemberGone(alias string, left bool) {
	why := alias + " failed"
	if left {
		why = alias + " left"
	}
	j.failWhere(func(p pend) bool { return p.worker == alias }, outcome{lost: why})
}

// Close ends every job: those this node runs and those it waits for.
func (j *Jobs) Close() {
	if j.closed.Swap(true) {
		return
	}
	close(j.closing)
	j.w.close()
	j.out.close()
	j.failWhere(func(pend) bool { return true }, outcome{closed: true})
}

// viewCache holds the candidate lists of one membership snapshot, per filter.
type viewCache struct {
	snap  *manager.Snapshot
	views sync.Map // filter string → []Candidate
}

var defaultFilter = DefaultFilter()

const defaultFilterKey = "role=worker"

// candidates returns the workers eligible under filter for a job of kind,
// rebuilt only when the membership snapshot changed. A kind that is not
// built in goes to the workers that declare it (their kinds tag), when any
// does; otherwise to every matching worker (a kind registered in Go is not
// gossiped).
func (j *Jobs) candidates(filter map[string]string, kind string) []candidate {
	cands, vc, key := j.filtered(filter)
	if builtin(kind) {
		return cands
	}
	key += "\x00" + kind
	if v, ok := vc.views.Load(key); ok {
		return v.([]candidate)
	}
	var offering []candidate
	for _, c := range cands {
		if declared, _ := offers(c.Tags, kind); declared {
			offering = append(offering, c)
		}
	}
	if len(offering) == 0 {
		offering = cands
	}
	vc.views.Store(key, offering)
	return offering
}

// filtered returns the workers eligible under filter, the cache they are
// in and their key in it.
func (j *Jobs) filtered(filter map[string]string) ([]candidate, *viewCache, string) {
	snap := j.h.Members()
	vc := j.cache.Load()
	if vc == nil || vc.snap != snap {
		vc = &viewCache{snap: snap}
		j.cache.Store(vc)
	}
	key := defaultFilterKey
	if len(filter) > 0 {
		key = FilterString(filter)
	} else {
		filter = defaultFilter
	}
	if v, ok := vc.views.Load(key); ok {
		return v.([]candidate), vc, key
	}
	ms := make([]protocol.Member, len(snap.Entries))
	for i, e := range snap.Entries {
		ms[i] = e.Member
	}
	cands := j.reg.Candidates(ms, j.h.Alias(), filter)
	for _, c := range cands {
		// A worker whose connection dropped and came back is preferred again.
		if c.Load.isDown() && (c.Self || j.h.Connected(c.Alias)) {
			c.Load.setDown(false)
		}
	}
	vc.views.Store(key, cands)
	return cands, vc, key
}

// only is the candidate list of a job for one member (DispatchRequest.Worker):
// it must be alive or suspect.
func (j *Jobs) only(alias string) ([]candidate, error) {
	e, ok := j.h.Members().Get(alias)
	switch {
	case !ok:
		return nil, &NotLiveError{Alias: alias}
	case e.State != protocol.StateAlive && e.State != protocol.StateSuspect:
		return nil, &NotLiveError{Alias: alias, State: e.State, Member: true}
	}
	return []candidate{{Alias: e.Alias, Addr: e.Addr, Self: e.Self, Tags: e.Tags, Slots: Slots(e.Tags), Load: j.reg.Load(alias)}}, nil
}

// NotLiveError is why a job for one member by name
// (DispatchRequest.Worker) was not sent: it is not a member, or not alive
// or suspect.
type NotLiveError struct {
	Alias  string
	Member bool           // it is in the table, in State
	State  protocol.State // failed or left
}

func (e *NotLiveError) Error() string {
	const what = "pick another target (!cluster_members shows each member's state)"
	switch {
	case !e.Member:
		return fmt.Sprintf("%s is not a member, so nothing was sent to it: %s", e.Alias, what)
	case e.State == protocol.StateLeft:
		return fmt.Sprintf("%s has left the cluster, so nothing was sent to it: %s", e.Alias, what)
	}
	return fmt.Sprintf("%s is %s, so nothing was sent to it: %s", e.Alias, e.State, what)
}

// attempts is "1 attempt" or "N attempts".
func attempts(n int) string {
	if n == 1 {
		return "1 attempt"
	}
	return fmt.Sprintf("%d attempts", n)
}

// DispatchRequest describes one job.
type DispatchRequest struct {
	Kind     string
	Args     []string
	Tags     map[string]string // workers must carry all of these; empty = role=worker
	Strategy Strategy          // zero value: least-connections
	// Timeout bounds the whole job, retries included; 0 = none here, but a
	// worker stops an attempt after this node's MaxJobTimeout, which also
	// caps a longer Timeout.
	Timeout time.Duration
	// MaxAttempts bounds re-dispatch after a worker is lost; 0 = DefaultMaxAttempts.
	MaxAttempts int
	// OnChunk receives a streaming job's chunks in order, on the caller's
	// goroutine, each once even when the job was re-dispatched (chunks the
	// caller already saw are skipped, so a kind must stream deterministically).
	OnChunk func(seq int, data string)
	// OnOutput receives a command's output (the run kind) as it comes, in
	// whole lines, on the caller's goroutine; setting it asks the worker to
	// stream.
	OnOutput func(stderr bool, data string)
	// Worker, when set, sends the job to this member only, alive or
	// suspect: no strategy, no failover (at most one attempt is lost), and a
	// draining worker ends the job. Tags are not checked.
	Worker string
}

// DispatchResult describes a finished job; Dispatch fills it in on failure
// too, as far as the job got.
type DispatchResult struct {
	Job      uint64 // the id of its first attempt, unique per dispatcher
	Worker   string // the worker of its last attempt
	Attempts int    // requests sent, busy and rejected ones included
	Retried  bool   // sent to more than one worker, or sent again
	Latency  time.Duration
	Result   string
	Chunks   int
	// WorkerLatency is the last attempt's round trip on Worker, from its
	// request to its answer: what a per-worker latency is made of.
	WorkerLatency time.Duration
	answer        *protocol.JobResult // the worker's final answer; nil when none came
}

// JobResult is a worker's final answer to a job.
type JobResult struct {
	Status string // ok, error, busy, cancelled, rejected or refused
	Result string
	Error  string
	Exit   int // a command's exit status (the run kind and declared kinds)
	Stdout string
	Stderr string
}

// Answer is the worker's final answer, nil when none came: a command's
// exit status and output are in it.
func (r DispatchResult) Answer() *JobResult {
	a := r.answer
	if a == nil {
		return nil
	}
	o := a.Output()
	return &JobResult{Status: a.Status.String(), Result: a.Result, Error: a.Error, Exit: int(o.Exit), Stdout: o.Stdout, Stderr: o.Stderr}
}

// callerEnded is a job's error when ctx ended: text alone for a cancel
// ("job 3 cancelled on w1", as a user pressing Ctrl-C reads it), text and
// ctx's error otherwise; errors.Is sees ctx's error either way.
func callerEnded(ctx context.Context, text string) error {
	if err := ctx.Err(); !errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: %w", text, err)
	}
	return ctxError{text, ctx.Err()}
}

// ctxError reads as its text and unwraps to a context's error.
type ctxError struct {
	text string
	err  error
}

func (e ctxError) Error() string { return e.text }
func (e ctxError) Unwrap() error { return e.err }

// ErrNoWorker is wrapped by the error Dispatch returns when no alive
// member matches the filter.
var ErrNoWorker = errors.New("no alive worker")

// Dispatch runs one job on a worker chosen by req.Strategy among the alive
// members whose tags match req.Tags and returns its result. The job ends in
// exactly one result or one error: a worker that fails, leaves or drops its
// connection has the job sent to another (at most MaxAttempts times), a
// worker that answers busy or rejected is skipped, ctx's end or the timeout
// withdraws the job from its worker. A job may run more than once when its
// worker was lost after running it; its caller sees one outcome.
func (j *Jobs) Dispatch(ctx context.Context, req DispatchRequest) (res DispatchResult, err error) {
	start := time.Now()
	if !j.h.Running() {
		return res, ErrNotRunning
	}
	if req.Kind == RunKind && req.Worker == "" {
		// A command may have effects: it goes to named nodes, never to
		// whichever worker a strategy picks, nor to a second one.
		return res, errors.New("the run kind runs on named nodes only: use !run (Node.Run)")
	}
	j.inflight.Add(1)
	j.counts.dispatched.Add(1)
	c := callPool.Get().(*call)
	var st *stream
	if req.OnChunk != nil || req.OnOutput != nil {
		st = newStream(req.OnOutput != nil, req.OnChunk != nil)
		c = &call{ch: make(chan outcome, 1), stream: st} // never pooled: a reader may still hold it
	}
	defer func() {
		res.Latency = time.Since(start)
		if st == nil {
			callPool.Put(c)
		}
		j.inflight.Add(-1)
		j.counts.done(ctx, res.Latency, err)
		j.record(req, res, err)
	}()
	timeout := min(req.Timeout, j.lim.MaxJobTimeout)
	var deadline <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		deadline = t.C
	}
	maxAttempts := req.MaxAttempts
	if maxAttempts <= 0 {
		maxAttempts = DefaultMaxAttempts
	}
	if req.Worker != "" {
		maxAttempts = 1
	}
	if err := ctx.Err(); err != nil {
		return res, err // stopped before it began: counted as cancelled, and no worker sees it
	}
	var (
		skip       []string // workers not to try again this round
		notes      []string // why workers were skipped, for the final error
		failures   int
		busyRounds int
		chunkBuf   []heldChunk
		backoff    *time.Timer
		restream   bool // the last attempt failed: the next streams from its start
	)
	deliver := func(ch heldChunk) {
		res.Chunks += ch.n
		switch {
		case ch.Stream != protocol.StreamJob && req.OnOutput != nil:
			req.OnOutput(ch.Stream == protocol.StreamStderr, ch.Data)
		case req.OnChunk != nil:
			req.OnChunk(int(ch.Seq), ch.Data)
		}
	}
	deliverChunks := func() {
		chunkBuf = st.take(chunkBuf)
		for _, ch := range chunkBuf {
			deliver(ch)
		}
		clear(chunkBuf)
		if cap(chunkBuf) > 1024 {
			chunkBuf = nil // do not keep a flood's array
		}
	}
	for {
		if j.closed.Load() {
			return res, fmt.Errorf("job %d: this node is shutting down", res.Job)
		}
		var cands []candidate
		if req.Worker != "" {
			var err error
			if cands, err = j.only(req.Worker); err != nil {
				if res.Job == 0 { // nothing was sent: there is no job to name
					return res, err
				}
				return res, fmt.Errorf("job %d (%s): %w", res.Job, req.Kind, err)
			}
		} else if cands = j.candidates(req.Tags, req.Kind); len(cands) == 0 {
			return res, j.noWorker(req.Tags)
		} else if cands, err = takingJobs(cands); err != nil {
			return res, err
		}
		var rnd uint64
		if req.Strategy == Random {
			rnd = rand.Uint64()
		}
		i := j.reg.pick(cands, req.Strategy, skip, rnd)
		if i < 0 {
			busyRounds++
			if busyRounds > maxBusyRounds {
				return res, fmt.Errorf("job %d: every matching worker is busy or unreachable after %d rounds (%s); add workers, raise their slots or lower the concurrency",
					res.Job, maxBusyRounds, strings.Join(lastNotes(notes, len(cands)), "; "))
			}
			d := time.Millisecond << min(busyRounds-1, 6)
			if backoff == nil {
				backoff = time.NewTimer(d)
				defer backoff.Stop()
			} else {
				backoff.Reset(d)
			}
			select {
			case <-backoff.C:
			case <-ctx.Done():
				return res, callerEnded(ctx, fmt.Sprintf("job %d cancelled while waiting for a free worker", res.Job))
			case <-deadline:
				return res, fmt.Errorf("job %d timed out after %v waiting for a free worker (%s)", res.Job, timeout, strings.Join(lastNotes(notes, len(cands)), "; "))
			case <-j.closing:
			}
			skip = skip[:0]
			continue
		}
		w := &cands[i]
		id := j.nextID.Add(1)
		if res.Job == 0 {
			res.Job = id
		} else if !res.Retried {
			res.Retried = true
		}
		res.Attempts++
		res.Worker = w.Alias
		res.answer = nil
		// Without a timeout of ours, the worker stops the attempt after our
		// MaxJobTimeout (and after its own, when that is shorter).
		wt := j.lim.MaxJobTimeout
		if timeout > 0 {
			// The worker's deadline is a backstop, a little later than ours:
			// normally our timer fires first and cancels the job there.
			left := max(timeout-time.Since(start), 0)
			wt = min(left+left/8+5*time.Millisecond, wt)
		}
		msg := &protocol.JobRequest{ID: id, Kind: req.Kind, Args: req.Args, Attempt: uint8(min(res.Attempts, 255)), Timeout: int64(wt),
			Stream: req.OnOutput != nil}
		if req.Kind == RunKind {
			sig, serr := j.h.Sign(RunKind, req.Args, w.Alias)
			if serr != nil {
				return res, fmt.Errorf("job %d (run) for %s: cannot sign it with the operator key: %w", res.Job, w.Alias, serr)
			}
			msg.Auth = sig
		}
		w.Load.Start()
		if st != nil {
			st.begin(restream)
			restream = false
		}
		sent := time.Now()
		j.store(id, pend{c: c, worker: w.Alias, load: w.Load, due: sent.Add(time.Duration(wt) + answerGrace(wt))})
		if serr := j.send(w.Alias, msg); serr != nil {
			if !j.remove(id) {
				<-c.ch // a peer-down scan got there first; its outcome is ours
			}
			w.Load.finish(Refused)
			if errors.Is(serr, ErrNotConnected) {
				w.Load.setDown(true)
				notes = addNote(notes, w.Alias+" not connected")
			} else {
				notes = addNote(notes, w.Alias+": "+serr.Error())
			}
			skip = append(skip, w.Alias)
			continue
		}
		// Wait for this attempt's outcome.
		var o outcome
		var gaveUp error
	wait:
		for {
			var notify chan struct{}
			if st != nil {
				notify = st.notify
			}
			select {
			case o = <-c.ch:
				break wait
			case <-notify:
				deliverChunks()
			case <-ctx.Done():
				gaveUp = callerEnded(ctx, fmt.Sprintf("job %d cancelled on %s", res.Job, w.Alias))
			case <-deadline:
				gaveUp = fmt.Errorf("job %d timed out after %v on %s (attempt %d)", res.Job, timeout, w.Alias, res.Attempts)
			case <-j.closing:
				gaveUp = fmt.Errorf("job %d: this node is shutting down", res.Job)
			}
			if gaveUp != nil {
				if j.remove(id) {
					w.Load.finish(Abandoned)
					j.send(w.Alias, &protocol.JobCancel{ID: id})
					if st != nil {
						deliverChunks() // what came before the end is the caller's
					}
					return res, gaveUp
				}
				o = <-c.ch // the outcome raced the give-up: take it
				gaveUp = nil
				break wait
			}
		}
		// A busy or rejected answer to an attempt that streamed: the worker
		// ran the job and stopped it (a drain that ran out of time), so the
		// attempt counts as lost there, and the next one streams again.
		stopped := st != nil && o.lost == "" && o.overrun == "" && !o.closed &&
			(o.status == protocol.JobRejected || o.status == protocol.JobBusy) && st.streamed()
		if st != nil {
			deliverChunks()
			st.finish(o.lost != "" || stopped)
			deliverChunks()
		}
		res.WorkerLatency = time.Since(sent)
		res.answer = o.res
		switch {
		case o.closed:
			w.Load.finish(Abandoned)
			return res, fmt.Errorf("job %d: this node is shutting down", res.Job)
		case o.overrun != "":
			w.Load.finish(Answered)
			return res, fmt.Errorf("job %d (%s) on %s: %w: %s; the job was ended and the rest of its output dropped", res.Job, req.Kind, w.Alias, ErrOverrun, o.overrun)
		case stopped && req.Worker == "":
			o.lost = w.Alias + ": " + o.err
			fallthrough
		case o.lost != "":
			w.Load.finish(Lost)
			failures++
			restream = true
			notes = addNote(notes, o.lost)
			if err := notAgain(req.Kind, w, res.Job, o.lost); err != nil {
				return res, err
			}
			if failures >= maxAttempts {
				return res, fmt.Errorf("job %d failed after %s: %s", res.Job, attempts(failures), strings.Join(lastNotes(notes, maxAttempts), "; "))
			}
			skip = append(skip, w.Alias)
			continue
		}
		switch o.status {
		case protocol.JobOK:
			w.Load.finish(Answered)
			res.Result = o.result
			return res, nil
		case protocol.JobError:
			w.Load.finish(Answered)
			return res, fmt.Errorf("job %d (%s) failed on %s: %s", res.Job, req.Kind, w.Alias, o.err)
		case protocol.JobRefused:
			w.Load.finish(Answered)
			return res, fmt.Errorf("job %d (%s) on %s: %s", res.Job, req.Kind, w.Alias, o.err)
		case protocol.JobRejected:
			if req.Worker != "" {
				w.Load.finish(Refused)
				return res, fmt.Errorf("job %d (%s) on %s: %s", res.Job, req.Kind, w.Alias, o.err)
			}
			fallthrough
		case protocol.JobBusy:
			w.Load.finish(Refused)
			notes = addNote(notes, w.Alias+" "+o.status.String())
			skip = append(skip, w.Alias)
		default: // JobCancelled by the worker itself: it shut down under the job
			w.Load.finish(Lost)
			failures++
			restream = true
			notes = addNote(notes, w.Alias+": "+o.err)
			if err := notAgain(req.Kind, w, res.Job, o.err); err != nil {
				return res, err
			}
			if failures >= maxAttempts {
				return res, fmt.Errorf("job %d failed after %s: %s", res.Job, attempts(failures), strings.Join(lastNotes(notes, maxAttempts), "; "))
			}
			skip = append(skip, w.Alias)
		}
	}
}

// notAgain is the error that ends a job lost on w when its kind is a
// command w declared without idempotence: it may have had effects, so it
// is not run again elsewhere. nil when the job may go to another worker.
func notAgain(kind string, w *candidate, job uint64, why string) error {
	if declared, idem := offers(w.Tags, kind); declared && !idem {
		return fmt.Errorf("job %d (%s) lost on %s (%s) and not run again: %s is not declared idempotent there (--kind %s!=… would allow it)",
			job, kind, w.Alias, why, kind, kind)
	}
	return nil
}

// takingJobs drops the candidates that advertise 0 slots (one that
// advertises none counts as one slot); when that leaves none, the job fails
// at once rather than after the busy rounds. A job sent to one worker by
// name is not filtered: the worker says why it refuses.
func takingJobs(cands []candidate) ([]candidate, error) {
	noSlots := func(c candidate) bool { return c.Slots == 0 && c.Tags[SlotsTag] != "" }
	if !slices.ContainsFunc(cands, noSlots) {
		return cands, nil // the usual case: no copy
	}
	taking := slices.DeleteFunc(slices.Clone(cands), noSlots)
	if len(taking) > 0 {
		return taking, nil
	}
	var names []string
	for _, c := range cands {
		names = append(names, c.Alias)
	}
	return nil, errors.New("no matching worker takes jobs: " + noSlotsText(strings.Join(names, ",")))
}

// noSlotsText says that the workers named (a TARGET: "w1,w2") have 0 slots
// and how to give them some.
func noSlotsText(target string) string {
	if strings.Contains(target, ",") {
		return fmt.Sprintf("%s have 0 slots and take no jobs; give them slots with !scale %s N", target, target)
	}
	return fmt.Sprintf("%s has 0 slots and takes no jobs; give it slots with !scale %s N", target, target)
}

// Bounds of why a job's workers were skipped, kept for its error: a
// worker's words are any size, and a busy job goes round every worker
// (thousands) many times.
const (
	maxNotes      = 64  // kept, the latest
	maxNoteBytes  = 512 // of one
	maxNotesShown = 8   // in an error
)

// addNote appends note to notes within the bounds above.
func addNote(notes []string, note string) []string {
	if len(note) > maxNoteBytes {
		note = strings.ToValidUTF8(note[:maxNoteBytes], "") + "…"
	}
	if len(notes) >= maxNotes {
		notes = append(notes[:0], notes[len(notes)-maxNotes/2:]...)
	}
	return append(notes, note)
}

// lastNotes returns at most k of the latest notes, and at most
// maxNotesShown.
func lastNotes(notes []string, k int) []string {
	k = min(max(k, 1), maxNotesShown)
	if len(notes) > k {
		return notes[len(notes)-k:]
	}
	return notes
}

// noWorker explains an empty candidate list: the filter and the workers
// this node knows of.
func (j *Jobs) noWorker(filter map[string]string) error {
	if len(filter) == 0 {
		filter = defaultFilter
	}
	var known []string
	for _, e := range j.h.Members().Entries {
		tags := maps.Clone(e.Tags)
		delete(tags, SlotsTag)
		if len(tags) == 0 {
			continue // untagged (but for its slots): a worker of no filter but the empty one
		}
		desc := e.Alias + " (" + FilterString(tags)
		if e.State != protocol.StateAlive {
			desc += ", " + e.State.String()
		}
		known = append(known, desc+")")
	}
	list := "none"
	if len(known) > maxKnownListed {
		// One line, however large the cluster: a typo in a filter among
		// thousands of members would print them all.
		list = fmt.Sprintf("%s and %d more (!cluster_members shows every member's tags)",
			strings.Join(known[:maxKnownListed], ", "), len(known)-maxKnownListed)
	} else if len(known) > 0 {
		list = strings.Join(known, ", ")
	}
	return fmt.Errorf("%w matches %s; workers known: %s", ErrNoWorker, FilterString(filter), list)
}

// maxKnownListed bounds the members the error of a filter that matches no
// worker names.
const maxKnownListed = 8

// JobRecord is one finished job as its dispatcher saw it.
type JobRecord struct {
	ID       uint64
	Kind     string
	Worker   string
	Attempts int
	State    string // ok, error, or cancelled (by its caller)
	Latency  time.Duration
	Error    string
	At       time.Time
}

// maxRecordedError bounds the error text a job record keeps.
const maxRecordedError = 1024

func (j *Jobs) record(req DispatchRequest, res DispatchResult, err error) {
	r := JobRecord{ID: res.Job, Kind: req.Kind, Worker: res.Worker, Attempts: res.Attempts, State: "ok", Latency: res.Latency}
	switch {
	case errors.Is(err, context.Canceled):
		r.State, r.Error = "cancelled", err.Error()
	case err != nil:
		r.State, r.Error = "error", err.Error()
		if len(r.Error) > maxRecordedError { // a worker's error text is any size: keep a line of it
			r.Error = strings.ToValidUTF8(r.Error[:maxRecordedError], "") + "…"
		}
	}
	j.recentMu.Lock()
	r.At = time.Now()
	j.recent[j.recentN%recentJobs] = r
	j.recentN++
	j.recentMu.Unlock()
}

// RecentJobs returns the last jobs this node dispatched (at most 256),
// oldest first.
func (j *Jobs) RecentJobs() []JobRecord {
	j.recentMu.Lock()
	defer j.recentMu.Unlock()
	k := min(j.recentN, recentJobs)
	out := make([]JobRecord, 0, k)
	for i := j.recentN - k; i < j.recentN; i++ {
		out = append(out, j.recent[i%recentJobs])
	}
	return out
}

// WorkerInfo is one worker as this node sees it.
type WorkerInfo struct {
	Alias    string
	Addr     string
	State    protocol.State
	Self     bool
	Tags     map[string]string
	Slots    int    // as advertised in its slots tag
	InFlight int    // jobs this node has on it now
	Done     uint64 // attempts of this node's jobs it answered
}

// Workers lists the members whose tags match filter (role=worker when
// empty), in any state, with this dispatcher's counts.
func (j *Jobs) Workers(filter map[string]string) []WorkerInfo {
	if len(filter) == 0 {
		filter = defaultFilter
	}
	var out []WorkerInfo
	for _, e := range j.h.Members().Entries {
		if !matchTags(e.Tags, filter) {
			continue
		}
		wi := WorkerInfo{Alias: e.Alias, Addr: e.Addr, State: e.State, Self: e.Self, Tags: e.Tags, Slots: Slots(e.Tags)}
		if l, ok := j.reg.peek(e.Alias); ok {
			wi.InFlight, wi.Done = l.InFlight(), l.Done()
		}
		out = append(out, wi)
	}
	return out
}

// JobStats are a node's job counters, as a worker and as a dispatcher.
type JobStats struct {
	Slots      int    // jobs this node runs at once as a worker
	Running    int    // running now
	Queued     int    // accepted and waiting for a slot
	QueueLimit int    // waiting jobs beyond which requests are answered busy (see SetJobQueue)
	Done       uint64 // jobs finished on this node as a worker
	Busy       uint64 // requests answered busy
	Rejected   uint64 // requests answered rejected (draining)
	Draining   bool
	InFlight   int // jobs this node dispatched that have not finished

	RepliesQueued  int    // answers waiting for a dispatcher's full mesh queue
	RepliesDropped uint64 // answers dropped because their dispatcher was not reading
	ReplyOverflows uint64 // times a dispatcher's answers were dropped and its jobs cancelled
	StreamOverruns uint64 // jobs this node dispatched that it ended because their worker streamed past a bound

	MaxSlots      int           // the owner's bound on Slots
	MaxJobTimeout time.Duration // the owner's bound on one job's run
}

// JobStats returns the job counters.
func (j *Jobs) Stats() JobStats {
	w := j.w
	slots, running, queued, draining := w.stats()
	w.mu.Lock()
	limit := w.queueMax
	w.mu.Unlock()
	rq, rd, ro := j.out.stats()
	return JobStats{Slots: slots, Running: running, Queued: queued, QueueLimit: limit, Done: w.done.Load(),
		Busy: w.busy.Load(), Rejected: w.rejected.Load(), Draining: draining, InFlight: int(j.inflight.Load()),
		RepliesQueued: rq, RepliesDropped: rd, ReplyOverflows: ro, StreamOverruns: j.overruns.Load(),
		MaxSlots: j.lim.MaxSlots, MaxJobTimeout: j.lim.MaxJobTimeout}
}

// SetSlots changes how many jobs this node runs at once, at most its
// owner's MaxSlots. Running jobs are not disturbed (with fewer slots, the
// queue waits until enough finish); the node gossips the new count.
func (j *Jobs) SetSlots(k int) error {
	limit := j.lim.MaxSlots
	if k < 0 {
		return fmt.Errorf("slots %d out of range: use 0 to %d", k, limit)
	}
	if k > limit {
		return fmt.Errorf("slots %d exceeds this node's --max-slots %d (set by its owner at start-up)", k, limit)
	}
	j.w.setSlots(k)
	return nil
}

// SetJobQueue sets how many accepted jobs may wait for a slot (default
// DefaultJobQueue); past that requests are answered busy. A dispatcher
// alone may fill it; while others wait, each holds at most its share of it,
// and one with nothing waiting always gets a place.
func (j *Jobs) SetJobQueue(k int) error {
	if k < 0 || k > maxJobQueue {
		return fmt.Errorf("job queue %d out of range: use 0 to %d", k, maxJobQueue)
	}
	w := j.w
	w.mu.Lock()
	w.queueMax = k
	w.mu.Unlock()
	return nil
}

// DrainJobs stops taking new jobs: requests are answered rejected, so that
// dispatchers fail over at once, and queued jobs are rejected too. It waits
// for running jobs until ctx ends; those still running then are cancelled
// and answered rejected, so they fail over. The node stays draining until
// ResumeJobs.
func (j *Jobs) Drain(ctx context.Context) { j.w.drain(ctx) }

// Resume undoes Drain.
func (j *Jobs) Resume() { j.w.resume() }

// RegisterKind makes this node run jobs of kind name with fn (replacing a
// kind of that name, built-in ones included). Dispatchers need nothing: the
// kind travels by name.
func (j *Jobs) RegisterKind(name string, fn KindFunc) error {
	if name == "" || strings.ContainsAny(name, " \t\n") {
		return fmt.Errorf("job kind %q: a kind is one word", name)
	}
	if name == RunKind {
		return fmt.Errorf("job kind %s is reserved for !run", name)
	}
	if fn == nil {
		return fmt.Errorf("job kind %q: nil function", name)
	}
	j.kindMu.Lock()
	defer j.kindMu.Unlock()
	m := maps.Clone(*j.kinds.Load())
	m[name] = kind{fn: fn}
	j.kinds.Store(&m)
	return nil
}

// Kinds lists the job kinds this node runs and those the live members
// declare (their kinds tag), sorted: what a dispatch here may name.
func (j *Jobs) Kinds() []string {
	names := j.kindNames()
	for _, e := range j.h.Members().Entries {
		if e.State != protocol.StateAlive && e.State != protocol.StateSuspect {
			continue
		}
		for item := range strings.SplitSeq(e.Tags[KindsTag], "+") {
			if name := strings.TrimSuffix(item, idemSuffix); name != "" && protocol.ValidKind(name) == nil {
				names = append(names, name)
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}
