package jobs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"meshell/protocol"
)

// DefaultJobQueue is how many accepted jobs may wait for a slot on a worker.
// Past slots running plus this many waiting (or past its share of them, see
// worker.admits), a request is answered JobBusy at once and its dispatcher
// tries another worker. 256 lets one dispatcher running `!bench
// --concurrency 256` keep a single worker busy without bouncing.
const DefaultJobQueue = 256

// maxQueuedArgs bounds the arguments the queued jobs hold, all dispatchers
// together; past it a request is answered busy (an empty queue takes any).
const maxQueuedArgs = 32 << 20

// maxJobQueue bounds SetJobQueue.
const maxJobQueue = 1 << 20

// Why a worker cancelled a job's context; decides the answer.
const (
	whyNone    uint32 = iota
	whyCancel         // the dispatcher sent JobCancel or went away: JobCancelled
	whyReject         // DrainJobs ran out of time: JobRejected, so it fails over
	whyClose          // this node shuts down: JobCancelled, which fails over
	whyDropped        // the dispatcher did not read its answers: JobCancelled
)

// drainGrace bounds how long DrainJobs waits, after its ctx ended, for the
// jobs it cancelled to return.
const drainGrace = 2 * time.Second

type taskKey struct {
	from string
	id   uint64
}

// task is an accepted job that runs on a goroutine: queued, then running.
type task struct {
	key     taskKey
	d       *disp // its dispatcher's share
	kind    kind
	args    []string
	timeout time.Duration
	capped  bool // timeout is this node's MaxJobTimeout
	stream  bool // the run kind streams its output
	ctx     context.Context
	cancel  context.CancelFunc
	why     atomic.Uint32
	started bool // guarded by worker.mu

	prev, next *task // in d's queue while queued; guarded by worker.mu
}

// disp is one dispatcher's share of a worker: its jobs waiting for a slot
// (FIFO) and the count of its goroutine jobs running. It exists while it
// has either; guarded by worker.mu.
type disp struct {
	from       string
	head, tail *task
	queued     int
	running    int
	served     uint64 // worker.serveSeq when its last job started; 0 = never
	wait       int    // index in worker.waiting while queued > 0
}

// worker is the job-running side of a node. Slots are tokens: a request
// that finds a free slot and an empty queue takes a token and either runs
// at once on the connection's goroutine (inline kinds: cheap and bounded) or
// on a new goroutine; otherwise it waits in its dispatcher's FIFO, and past
// that dispatcher's share it is answered JobBusy. A goroutine that finishes
// a job takes the next queued one while it still holds a token, so a queued
// job never waits for a goroutine hand-off it does not need.
//
// When a slot frees, the next job is the oldest of the waiting dispatcher
// served least recently (round robin, a newcomer first), so that one
// dispatcher's backlog does not delay the others' jobs.
type worker struct {
	j *Jobs

	mu       sync.Mutex
	slots    int
	queueMax int
	running  int // tokens held (inline and goroutine jobs)
	queued   int // tasks waiting, all dispatchers
	argBytes int // their arguments' bytes, at most maxQueuedArgs
	disps    map[string]*disp
	waiting  []*disp // dispatchers with queued tasks, in no order
	serveSeq uint64
	tasks    map[taskKey]*task // queued and goroutine-run tasks, for cancel
	draining bool
	closed   bool
	idle     chan struct{} // closed when running reaches 0 while draining

	done     atomic.Uint64
	busy     atomic.Uint64
	rejected atomic.Uint64

	base context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup
}

func newWorker(j *Jobs, slots int) *worker {
	base, stop := context.WithCancel(context.Background())
	return &worker{j: j, slots: slots, queueMax: DefaultJobQueue, disps: map[string]*disp{},
		tasks: map[taskKey]*task{}, base: base, stop: stop}
}

// dispFor returns from's share, making one. Called with w.mu held.
func (w *worker) dispFor(from string) *disp {
	d := w.disps[from]
	if d == nil {
		d = &disp{from: from, wait: -1}
		w.disps[from] = d
	}
	return d
}

// forgetIfIdle drops d once it has nothing queued or running, so that the
// table holds only active dispatchers. Called with w.mu held.
func (w *worker) forgetIfIdle(d *disp) {
	if d.queued == 0 && d.running == 0 && w.disps[d.from] == d {
		delete(w.disps, d.from)
	}
}

// admits reports whether a request of dispatcher d (nil when it has nothing
// here) may wait for a slot. Share rule: a dispatcher with nothing waiting
// always gets one place; one with jobs waiting gets another while the queue
// holds fewer than queueMax and it holds fewer than queueMax/n, n being the
// dispatchers with jobs waiting. So a flood cannot lock the others out, and
// the queue holds at most queueMax plus one per dispatcher. Called with
// w.mu held.
func (w *worker) admits(d *disp, args int) bool {
	if w.queueMax == 0 || w.queued > 0 && w.argBytes+args > maxQueuedArgs { // 0 slots: submit refused it
		return false
	}
	if d == nil || d.queued == 0 {
		return true
	}
	return w.queued < w.queueMax && d.queued < w.queueMax/len(w.waiting)
}

// enqueue puts t at the end of its dispatcher's FIFO. Called with w.mu held.
func (w *worker) enqueue(t *task) {
	d := t.d
	if d.tail == nil {
		d.head = t
	} else {
		d.tail.next = t
		t.prev = d.tail
	}
	d.tail = t
	if d.queued == 0 {
		d.wait = len(w.waiting)
		w.waiting = append(w.waiting, d)
	}
	d.queued++
	w.queued++
	w.argBytes += argsLen(t.args)
}

// unqueue takes the queued t out of its dispatcher's FIFO. Called with
// w.mu held.
func (w *worker) unqueue(t *task) {
	d := t.d
	if t.prev != nil {
		t.prev.next = t.next
	} else {
		d.head = t.next
	}
	if t.next != nil {
		t.next.prev = t.prev
	} else {
		d.tail = t.prev
	}
	t.prev, t.next = nil, nil
	d.queued--
	w.queued--
	w.argBytes -= argsLen(t.args)
	if d.queued == 0 {
		last := len(w.waiting) - 1
		moved := w.waiting[last]
		w.waiting[d.wait] = moved
		moved.wait = d.wait
		w.waiting[last] = nil
		w.waiting = w.waiting[:last]
		d.wait = -1
		w.forgetIfIdle(d)
	}
}

// serve counts a job of d as started. Called with w.mu held.
func (w *worker) serve(d *disp) {
	w.serveSeq++
	d.served = w.serveSeq
	d.running++
}

// next takes the queued task to run next: the oldest of the waiting
// dispatcher served least recently. Called with w.mu held, queued > 0.
func (w *worker) next() *task {
	d := w.waiting[0]
	for _, o := range w.waiting[1:] {
		if o.served < d.served {
			d = o
		}
	}
	t := d.head
	w.serve(d) // before unqueue, so that d is not forgotten
	w.unqueue(t)
	t.started = true
	return t
}

// takeQueued empties the queue; called with w.mu held.
func (w *worker) takeQueued() []*task {
	out := make([]*task, 0, w.queued)
	for len(w.waiting) > 0 {
		t := w.waiting[0].head
		w.unqueue(t)
		delete(w.tasks, t.key)
		out = append(out, t)
	}
	return out
}

func argsLen(args []string) int {
	n := 0
	for _, a := range args {
		n += len(a)
	}
	return n
}

// submit admits a request from the dispatcher alias from. It runs on that
// peer's reader goroutine (or a local dispatcher's) and never blocks: at
// most it runs an inline kind, which is bounded by maxInlineIn.
func (w *worker) submit(from string, req *protocol.JobRequest) {
	k, ok := w.j.kind(req.Kind)
	if req.Kind == RunKind {
		if st, why := w.j.refuseRun(from, req); why != "" {
			w.j.reply(from, &protocol.JobResult{ID: req.ID, Status: st, Error: why})
			return
		}
		k, ok = runKindEntry, true
	}
	if !ok {
		w.j.reply(from, &protocol.JobResult{ID: req.ID, Status: protocol.JobError,
			Error: fmt.Sprintf("unknown job kind %q on %s: it runs %s", req.Kind, w.j.h.Alias(), strings.Join(w.j.kindNames(), ", "))})
		return
	}
	if k.cmd != nil && !k.cmd.run {
		if why := optionArg(req.Args); why != "" {
			w.j.reply(from, &protocol.JobResult{ID: req.ID, Status: protocol.JobError, Error: why}) // the dispatcher names the kind and the node
			return
		}
	}
	w.mu.Lock()
	if w.closed || w.draining {
		w.mu.Unlock()
		w.rejected.Add(1)
		w.j.reply(from, &protocol.JobResult{ID: req.ID, Status: protocol.JobRejected, Error: w.j.h.Alias() + " takes no new jobs (draining)"})
		return
	}
	if w.slots == 0 {
		w.mu.Unlock()
		w.rejected.Add(1)
		w.j.reply(from, &protocol.JobResult{ID: req.ID, Status: protocol.JobRejected, Error: noSlotsText(w.j.h.Alias())})
		return
	}
	if len(w.tasks) > 0 {
		if _, dup := w.tasks[taskKey{from, req.ID}]; dup {
			w.mu.Unlock()
			w.j.reply(from, &protocol.JobResult{ID: req.ID, Status: protocol.JobError,
				Error: fmt.Sprintf("job %d is already queued or running on %s: a request runs once", req.ID, w.j.h.Alias())})
			return
		}
	}
	if w.running < w.slots && w.queued == 0 {
		w.running++
		if k.inline && argsLen(req.Args) <= maxInlineIn {
			w.mu.Unlock()
			res, err := k.fn(w.base, req.Args, noEmit)
			w.done.Add(1)
			w.j.reply(from, answer(req.ID, res, err))
			w.release()
			return
		}
		t := w.newTask(w.dispFor(from), req, k)
		t.started = true
		w.serve(t.d)
		w.tasks[t.key] = t
		w.wg.Add(1)
		w.mu.Unlock()
		go w.runLoop(t)
		return
	}
	d := w.disps[from]
	size := argsLen(req.Args)
	if w.admits(d, size) {
		if d == nil {
			d = w.dispFor(from)
		}
		t := w.newTask(d, req, k)
		w.tasks[t.key] = t
		w.enqueue(t)
		w.mu.Unlock()
		return
	}
	var why string
	if d != nil && len(w.waiting) > 1 && d.queued >= w.queueMax/len(w.waiting) {
		why = fmt.Sprintf("%s is busy: %d of its %d queued jobs are yours, your share while %d dispatchers wait",
			w.j.h.Alias(), d.queued, w.queued, len(w.waiting))
	} else if w.queued < w.queueMax && w.argBytes+size > maxQueuedArgs {
		why = fmt.Sprintf("%s is busy: its queued jobs' arguments fill %d MiB", w.j.h.Alias(), maxQueuedArgs>>20)
	} else {
		why = fmt.Sprintf("%s is busy: %d slots running and %d queued", w.j.h.Alias(), w.slots, w.queued)
	}
	w.mu.Unlock()
	w.busy.Add(1)
	w.j.reply(from, &protocol.JobResult{ID: req.ID, Status: protocol.JobBusy, Error: why})
}

func noEmit(string) error { return errors.New("this kind does not stream") }

func answer(id uint64, res string, err error) *protocol.JobResult {
	if err != nil {
		return &protocol.JobResult{ID: id, Status: protocol.JobError, Error: err.Error()}
	}
	return &protocol.JobResult{ID: id, Status: protocol.JobOK, Result: res}
}

// newTask is called with w.mu held. A job's timeout runs from its arrival,
// queueing included, as the dispatcher's does; none, or one above this
// node's MaxJobTimeout, is MaxJobTimeout.
func (w *worker) newTask(d *disp, req *protocol.JobRequest, k kind) *task {
	t := &task{key: taskKey{d.from, req.ID}, d: d, kind: k, args: req.Args, timeout: time.Duration(req.Timeout), stream: req.Stream}
	if limit := w.j.lim.MaxJobTimeout; t.timeout <= 0 || t.timeout > limit {
		t.timeout, t.capped = limit, true
	}
	t.ctx, t.cancel = context.WithTimeout(w.base, t.timeout)
	return t
}

// release gives a token back, or hands it to the next queued task.
func (w *worker) release() {
	w.mu.Lock()
	if !w.closed && w.running <= w.slots && w.queued > 0 {
		t := w.next()
		w.wg.Add(1)
		w.mu.Unlock()
		go w.runLoop(t)
		return
	}
	w.running--
	w.signalIdle()
	w.mu.Unlock()
}

// signalIdle is called with w.mu held.
func (w *worker) signalIdle() {
	if w.running == 0 && w.idle != nil {
		close(w.idle)
		w.idle = nil
	}
}

// runLoop runs t, then the queued tasks while it keeps its token.
func (w *worker) runLoop(t *task) {
	defer w.wg.Done()
	for t != nil {
		w.run(t)
		w.mu.Lock()
		delete(w.tasks, t.key)
		t.d.running--
		w.forgetIfIdle(t.d)
		t = nil
		if !w.closed && w.running <= w.slots && w.queued > 0 {
			t = w.next()
		} else {
			w.running--
			w.signalIdle()
		}
		w.mu.Unlock()
	}
}

func (w *worker) run(t *task) {
	defer t.cancel()
	var out *protocol.JobResult
	if t.kind.cmd != nil {
		out = w.runCommand(t)
	} else {
		var seq uint32
		var sent int
		emit := func(data string) error {
			if seq >= protocol.MaxJobChunks || sent+len(data) > protocol.MaxJobStream {
				return ErrStreamLimit
			}
			seq++
			sent += len(data)
			return w.j.sendChunk(t.ctx, t.key.from, &protocol.JobChunk{ID: t.key.id, Seq: seq, Data: data})
		}
		var res string
		var err error
		if t.ctx.Err() == nil {
			res, err = t.kind.fn(t.ctx, t.args, emit)
		} else {
			err = t.ctx.Err()
		}
		out = answer(t.key.id, res, err)
	}
	w.done.Add(1)
	w.j.reply(t.key.from, w.stopped(t, out))
}

// stopped turns out into the answer of a job that was stopped (cancelled,
// drained, shut down, dropped, timed out); a command's output and exit
// status stay in it. A command kind that is not idempotent answers an error
// where others answer rejected or cancelled, so that it is not run again.
func (w *worker) stopped(t *task, out *protocol.JobResult) *protocol.JobResult {
	alias := w.j.h.Alias()
	why := t.why.Load()
	if c := t.kind.cmd; c != nil && !c.idempotent && (why == whyReject || why == whyClose) {
		what := "is draining"
		if why == whyClose {
			what = "is shutting down"
		}
		out.Status = protocol.JobError
		out.Error = fmt.Sprintf("stopped: %s %s", alias, what)
		if !c.run {
			out.Error += fmt.Sprintf("; %s is not idempotent, so it is not run again", c.name)
		}
		return out
	}
	switch why {
	case whyReject:
		w.rejected.Add(1)
		out.Status, out.Error = protocol.JobRejected, alias+" is draining: job stopped"
	case whyCancel:
		out.Status, out.Error = protocol.JobCancelled, "cancelled"
	case whyClose:
		out.Status, out.Error = protocol.JobCancelled, alias+" is shutting down"
	case whyDropped:
		out.Status, out.Error = protocol.JobCancelled, "cancelled: "+alias+" dropped this dispatcher's answers, which it was not reading"
	default:
		if t.ctx.Err() != nil && errors.Is(t.ctx.Err(), context.DeadlineExceeded) && out.Status != protocol.JobOK {
			out.Status = protocol.JobError
			out.Error = fmt.Sprintf("timed out after %v on %s", t.timeout, alias)
			if t.capped {
				out.Error += " (its --max-job-timeout)"
			}
		}
	}
	if out.Status != protocol.JobOK && out.Status != protocol.JobError {
		out.Result = ""
	}
	return out
}

// cancel withdraws the job id of dispatcher from.
func (w *worker) cancel(from string, id uint64) {
	w.mu.Lock()
	t := w.tasks[taskKey{from, id}]
	if t == nil {
		w.mu.Unlock()
		return
	}
	if !t.started {
		w.unqueue(t)
		delete(w.tasks, t.key)
		w.mu.Unlock()
		t.cancel()
		w.j.reply(from, &protocol.JobResult{ID: id, Status: protocol.JobCancelled, Error: "cancelled"})
		return
	}
	t.why.CompareAndSwap(whyNone, whyCancel)
	w.mu.Unlock()
	t.cancel()
}

// dropFrom cancels every job of dispatcher from, for why (whyCancel: its
// connection dropped; whyDropped: it did not read its answers). Queued jobs
// go without an answer; running ones answer when they return.
func (w *worker) dropFrom(from string, why uint32) {
	w.mu.Lock()
	var stop []*task
	if d := w.disps[from]; d != nil {
		for t := d.head; t != nil; {
			next := t.next
			w.unqueue(t)
			delete(w.tasks, t.key)
			stop = append(stop, t)
			t = next
		}
		if d.running > 0 {
			for k, t := range w.tasks {
				if k.from == from && t.started {
					t.why.CompareAndSwap(whyNone, why)
					stop = append(stop, t)
				}
			}
		}
	}
	w.mu.Unlock()
	for _, t := range stop {
		t.cancel()
	}
}

func (w *worker) drain(ctx context.Context) {
	w.mu.Lock()
	w.draining = true
	queued := w.takeQueued()
	var idle chan struct{}
	if w.running > 0 {
		if w.idle == nil {
			w.idle = make(chan struct{})
		}
		idle = w.idle
	}
	w.mu.Unlock()
	for _, t := range queued {
		t.cancel()
		w.rejected.Add(1)
		w.j.reply(t.key.from, &protocol.JobResult{ID: t.key.id, Status: protocol.JobRejected, Error: w.j.h.Alias() + " is draining"})
	}
	if idle == nil {
		return
	}
	select {
	case <-idle:
		return
	case <-ctx.Done():
	}
	w.mu.Lock()
	var stop []*task
	for _, t := range w.tasks {
		if t.started {
			t.why.CompareAndSwap(whyNone, whyReject)
			stop = append(stop, t)
		}
	}
	w.mu.Unlock()
	for _, t := range stop {
		t.cancel()
	}
	grace := time.NewTimer(drainGrace)
	defer grace.Stop()
	select {
	case <-idle:
	case <-grace.C:
	}
}

func (w *worker) resume() {
	w.mu.Lock()
	w.draining = false
	w.mu.Unlock()
}

func (w *worker) setSlots(k int) {
	w.mu.Lock()
	w.slots = k
	for !w.closed && w.running < w.slots && w.queued > 0 {
		t := w.next()
		w.running++
		w.wg.Add(1)
		go w.runLoop(t)
	}
	w.mu.Unlock()
}

func (w *worker) close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	queued := w.takeQueued()
	for _, t := range w.tasks {
		t.why.CompareAndSwap(whyNone, whyClose)
	}
	w.mu.Unlock()
	for _, t := range queued {
		t.cancel()
		w.j.reply(t.key.from, &protocol.JobResult{ID: t.key.id, Status: protocol.JobCancelled, Error: w.j.h.Alias() + " is shutting down"})
	}
	w.stop()
	w.wg.Wait()
}

func (w *worker) stats() (slots, running, queued int, draining bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.slots, w.running, w.queued, w.draining
}

// slotsTags returns tags with the slots tag set to k.
func slotsTags(tags map[string]string, k int) map[string]string {
	out := maps.Clone(tags)
	if out == nil {
		out = map[string]string{}
	}
	out[SlotsTag] = strconv.Itoa(k)
	return out
}

// OwnTags returns tags with the tags the job plane keeps itself: slots set
// to the current slot count, and kinds naming the declared kinds (absent
// without any). The node gossips what it returns.
func (j *Jobs) OwnTags(tags map[string]string) map[string]string {
	slots, _, _, _ := j.w.stats()
	out := slotsTags(tags, slots)
	if v := kindsTagValue(j.run.Kinds); v != "" {
		out[KindsTag] = v
	} else {
		delete(out, KindsTag)
	}
	return out
}
