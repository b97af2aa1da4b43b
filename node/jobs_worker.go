package node

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

	"meshell/manager"
	"meshell/mesh"
	"meshell/protocol"
)

// DefaultJobQueue is how many accepted jobs may wait for a slot on a worker.
// Past slots running plus this many waiting, a request is answered JobBusy
// at once and its dispatcher tries another worker. 256 lets one dispatcher
// running `!bench --concurrency 256` keep a single worker busy without
// bouncing.
const DefaultJobQueue = 256

// maxSlots bounds SetSlots.
const maxSlots = 4096

// Why a worker cancelled a job's context; decides the answer.
const (
	whyNone   uint32 = iota
	whyCancel        // the dispatcher sent JobCancel or went away: JobCancelled
	whyReject        // DrainJobs ran out of time: JobRejected, so it fails over
	whyClose         // this node shuts down: JobCancelled, which fails over
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
	kind    kind
	args    []string
	timeout time.Duration
	ctx     context.Context
	cancel  context.CancelFunc
	why     atomic.Uint32
	started bool // guarded by worker.mu
}

// worker is the job-running side of a node. Slots are tokens: a request
// that finds a free slot and an empty queue takes a token and either runs
// at once on the connection's goroutine (inline kinds: cheap and bounded) or
// on a new goroutine; otherwise it waits in a FIFO queue of bounded length,
// and past that it is answered JobBusy. A goroutine that finishes a job
// takes the next queued one while it still holds a token, so a queued job
// never waits for a goroutine hand-off it does not need.
type worker struct {
	j *Jobs

	mu       sync.Mutex
	slots    int
	queueMax int
	running  int     // tokens held (inline and goroutine jobs)
	queue    []*task // FIFO from qhead
	qhead    int
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
	return &worker{j: j, slots: slots, queueMax: DefaultJobQueue, tasks: map[taskKey]*task{}, base: base, stop: stop}
}

func (w *worker) queued() int { return len(w.queue) - w.qhead }

func (w *worker) push(t *task) { w.queue = append(w.queue, t) }

func (w *worker) pop() *task {
	t := w.queue[w.qhead]
	w.queue[w.qhead] = nil
	w.qhead++
	if w.qhead == len(w.queue) {
		w.queue, w.qhead = w.queue[:0], 0
	}
	return t
}

func (w *worker) unqueue(t *task) bool {
	for i := w.qhead; i < len(w.queue); i++ {
		if w.queue[i] == t {
			copy(w.queue[i:], w.queue[i+1:])
			w.queue[len(w.queue)-1] = nil
			w.queue = w.queue[:len(w.queue)-1]
			if w.qhead == len(w.queue) {
				w.queue, w.qhead = w.queue[:0], 0
			}
			return true
		}
	}
	return false
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
	if !ok {
		w.j.reply(from, &protocol.JobResult{ID: req.ID, Status: protocol.JobError,
			Error: fmt.Sprintf("unknown job kind %q on %s: it runs %s", req.Kind, w.j.n.Alias(), strings.Join(w.j.kindNames(), ", "))})
		return
	}
	w.mu.Lock()
	if w.closed || w.draining {
		w.mu.Unlock()
		w.rejected.Add(1)
		w.j.reply(from, &protocol.JobResult{ID: req.ID, Status: protocol.JobRejected, Error: w.j.n.Alias() + " takes no new jobs (draining)"})
		return
	}
	if w.running < w.slots && w.queued() == 0 {
		w.running++
		if k.inline && argsLen(req.Args) <= maxInlineIn {
			w.mu.Unlock()
			res, err := k.fn(w.base, req.Args, noEmit)
			w.done.Add(1)
			w.j.reply(from, answer(req.ID, res, err))
			w.release()
			return
		}
		t := w.newTask(from, req, k)
		t.started = true
		w.tasks[t.key] = t
		w.wg.Add(1)
		w.mu.Unlock()
		go w.runLoop(t)
		return
	}
	if w.slots > 0 && w.queued() < w.queueMax {
		t := w.newTask(from, req, k)
		w.tasks[t.key] = t
		w.push(t)
		w.mu.Unlock()
		return
	}
	w.mu.Unlock()
	w.busy.Add(1)
	w.j.reply(from, &protocol.JobResult{ID: req.ID, Status: protocol.JobBusy,
		Error: fmt.Sprintf("%s is busy: %d slots running and %d queued", w.j.n.Alias(), w.slots, w.queueMax)})
}

func noEmit(string) error { return errors.New("this kind does not stream") }

func answer(id uint64, res string, err error) *protocol.JobResult {
	if err != nil {
		return &protocol.JobResult{ID: id, Status: protocol.JobError, Error: err.Error()}
	}
	return &protocol.JobResult{ID: id, Status: protocol.JobOK, Result: res}
}

// newTask is called with w.mu held. A job's timeout runs from its arrival,
// queueing included, as the dispatcher's does.
func (w *worker) newTask(from string, req *protocol.JobRequest, k kind) *task {
	t := &task{key: taskKey{from, req.ID}, kind: k, args: req.Args, timeout: time.Duration(req.Timeout)}
	if t.timeout > 0 {
		t.ctx, t.cancel = context.WithTimeout(w.base, t.timeout)
	} else {
		t.ctx, t.cancel = context.WithCancel(w.base)
	}
	return t
}

// release gives a token back, or hands it to the next queued task.
func (w *worker) release() {
	w.mu.Lock()
	if !w.closed && w.running <= w.slots && w.queued() > 0 {
		t := w.pop()
		t.started = true
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
		t = nil
		if !w.closed && w.running <= w.slots && w.queued() > 0 {
			t = w.pop()
			t.started = true
		} else {
			w.running--
			w.signalIdle()
		}
		w.mu.Unlock()
	}
}

func (w *worker) run(t *task) {
	defer t.cancel()
	var seq uint32
	emit := func(data string) error {
		seq++
		return w.j.sendChunk(t.ctx, t.key.from, &protocol.JobChunk{ID: t.key.id, Seq: seq, Data: data})
	}
	var res string
	var err error
	if t.ctx.Err() == nil {
		res, err = t.kind.fn(t.ctx, t.args, emit)
	} else {
		err = t.ctx.Err()
	}
	w.done.Add(1)
	var out *protocol.JobResult
	switch t.why.Load() {
	case whyReject:
		w.rejected.Add(1)
		out = &protocol.JobResult{ID: t.key.id, Status: protocol.JobRejected, Error: w.j.n.Alias() + " is draining: job stopped"}
	case whyCancel:
		out = &protocol.JobResult{ID: t.key.id, Status: protocol.JobCancelled, Error: "cancelled"}
	case whyClose:
		out = &protocol.JobResult{ID: t.key.id, Status: protocol.JobCancelled, Error: w.j.n.Alias() + " is shutting down"}
	default:
		if err != nil && errors.Is(err, context.DeadlineExceeded) && t.ctx.Err() != nil {
			err = fmt.Errorf("timed out after %v on %s", t.timeout, w.j.n.Alias())
		}
		out = answer(t.key.id, res, err)
	}
	w.j.reply(t.key.from, out)
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

// dropFrom cancels every job of a dispatcher whose connection dropped: its
// answers could not be delivered, and the dispatcher sends them elsewhere.
func (w *worker) dropFrom(from string) {
	w.mu.Lock()
	var stop []*task
	for k, t := range w.tasks {
		if k.from != from {
			continue
		}
		if !t.started {
			w.unqueue(t)
			delete(w.tasks, k)
		} else {
			t.why.CompareAndSwap(whyNone, whyCancel)
		}
		stop = append(stop, t)
	}
	w.mu.Unlock()
	for _, t := range stop {
		t.cancel()
	}
}

// takeQueued empties the queue; called with w.mu held.
func (w *worker) takeQueued() []*task {
	var out []*task
	for w.queued() > 0 {
		t := w.pop()
		delete(w.tasks, t.key)
		out = append(out, t)
	}
	return out
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
		w.j.reply(t.key.from, &protocol.JobResult{ID: t.key.id, Status: protocol.JobRejected, Error: w.j.n.Alias() + " is draining"})
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
	for !w.closed && w.running < w.slots && w.queued() > 0 {
		t := w.pop()
		t.started = true
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
		w.j.reply(t.key.from, &protocol.JobResult{ID: t.key.id, Status: protocol.JobCancelled, Error: w.j.n.Alias() + " is shutting down"})
	}
	w.stop()
	w.wg.Wait()
}

func (w *worker) stats() (slots, running, queued int, draining bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.slots, w.running, w.queued(), w.draining
}

// reply sends a worker's message to dispatcher to. A full outbound queue is
// retried from a goroutine for a while (the answer is the only thing that
// ends the job for its caller); a missing connection is not: the
// dispatcher saw it drop and sends the job elsewhere.
func (j *Jobs) reply(to string, m protocol.Message) {
	err := j.send(to, m)
	if !errors.Is(err, mesh.ErrQueueFull) {
		return
	}
	w := j.w
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.wg.Add(1)
	w.mu.Unlock()
	go func() {
		defer w.wg.Done()
		ctx, cancel := context.WithTimeout(w.base, 10*time.Second)
		defer cancel()
		if err := j.sendRetry(ctx, to, m); err != nil {
			j.n.log.WithField("alias", to).WithError(err).Warn("jobs: answer not sent")
		}
	}()
}

func (j *Jobs) sendChunk(ctx context.Context, to string, m *protocol.JobChunk) error {
	return j.sendRetry(ctx, to, m)
}

// sendRetry sends m, waiting out a full queue until ctx ends.
func (j *Jobs) sendRetry(ctx context.Context, to string, m protocol.Message) error {
	backoff := 100 * time.Microsecond
	var t *time.Timer
	for {
		err := j.send(to, m)
		if !errors.Is(err, mesh.ErrQueueFull) {
			return err
		}
		if t == nil {
			t = time.NewTimer(backoff)
			defer t.Stop()
		} else {
			t.Reset(backoff)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
		if backoff < 50*time.Millisecond {
			backoff *= 2
		}
	}
}

// slotsTags returns tags with the slots tag set to k.
func slotsTags(tags map[string]string, k int) map[string]string {
	out := maps.Clone(tags)
	if out == nil {
		out = map[string]string{}
	}
	out[manager.SlotsTag] = strconv.Itoa(k)
	return out
}
