package repl

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"meshell/node"
)

func init() {
	tagFlag := Flag{Name: "tag", Kind: FlagKV, Usage: "workers must carry this tag (repeatable; default role=worker)"}
	strategyFlag := Flag{Name: "strategy", Kind: FlagString, Usage: "least-connections (default), round-robin or random",
		Value: node.Strategies}
	timeoutFlag := Flag{Name: "timeout", Kind: FlagDuration, Usage: "give up on a job after this long, retries included"}
	kinds := func(s *Shell, prev []string) []string {
		if len(prev) == 0 {
			return s.Node.Kinds()
		}
		return nil
	}
	commands = append(commands, []*Command{
		{
			Name: "!workers", Listing: true, Group: "jobs", Max: 0,
			Summary: "workers known to this node, with slots and load",
			Help:    "Members whose tags match every --tag (default role=worker), in any state. IN-FLIGHT and DONE count this node's jobs.",
			Flags:   []Flag{tagFlag, flagJSON},
			Example: "!workers\n!workers --tag role=worker --json",
			Run:     runWorkers,
		},
		{
			Name: "!dispatch", Group: "jobs", Args: "KIND [ARGS…]", Min: 1, Max: -1, Rest: true,
			Summary: "run one job on a chosen worker",
			Help: "Kinds: echo TEXT, sleep DURATION, sha256 TEXT, primes N, stream N [INTERVAL], and any kind a node registered. " +
				"A worker that is busy is skipped; a worker that fails, leaves or drops its connection has the job re-run elsewhere (3 attempts). " +
				"Flags end at KIND. Ctrl-C cancels the job on its worker.",
			Flags:    []Flag{tagFlag, strategyFlag, timeoutFlag, flagJSON},
			Example:  "!dispatch echo hello\n!dispatch --tag role=worker --strategy round-robin sha256 abc\n!dispatch stream 5 200ms",
			Complete: kinds,
			Run:      runDispatch,
		},
		{
			Name: "!bench", Group: "jobs", Args: "KIND [ARGS…]", Min: 1, Max: -1, Rest: true,
			Summary: "run N jobs, report throughput and latency",
			Help: "Runs --n jobs (default 1000) with --concurrency callers (default 16); prints jobs/s, p50/p90/p99/max latency, jobs per worker, retried and failed. " +
				"The first job runs alone: if it fails (an unknown kind, no matching worker), the bench stops with its error. " +
				"Fails when a job failed; Ctrl-C stops it and counts the jobs not started.",
			Flags: []Flag{{Name: "n", Kind: FlagInt, Min: 1, Usage: "jobs to run (default 1000)"},
				{Name: "concurrency", Kind: FlagInt, Min: 1, Usage: "jobs in flight at once (default 16)"},
				tagFlag, strategyFlag, timeoutFlag, flagJSON},
			Example:  "!bench --n 2000 --concurrency 64 echo x\n!bench --n 200 --json sleep 10ms",
			Complete: kinds,
			Run:      runBench,
		},
		{
			Name: "!jobs", Listing: true, Group: "jobs", Max: 0,
			Summary: "recent jobs dispatched by this node: id, kind, worker, attempts, state, latency",
			Help:    "This node keeps its last 256 jobs.",
			Flags:   []Flag{{Name: "n", Kind: FlagInt, Min: 1, Usage: "show the last N jobs (default 20; with --json all 256)"}, flagJSON},
			Example: "!jobs\n!jobs --n 5 --json",
			Run:     runJobs,
		},
	}...)
}

type workerJSON struct {
	Alias    string            `json:"alias"`
	Addr     string            `json:"addr"`
	State    string            `json:"state"`
	Slots    int               `json:"slots"`
	InFlight int               `json:"in_flight"`
	Done     uint64            `json:"done"`
	Tags     map[string]string `json:"tags"`
	Self     bool              `json:"self"`
}

func runWorkers(ctx context.Context, s *Shell, a *Args) error {
	if err := s.inCluster(); err != nil {
		return err
	}
	ws := s.Node.Workers(a.KV("tag"))
	if a.Bool("json") {
		out := make([]workerJSON, len(ws))
		for i, w := range ws {
			tags := w.Tags
			if tags == nil {
				tags = map[string]string{}
			}
			out[i] = workerJSON{Alias: w.Alias, Addr: w.Addr, State: w.State.String(), Slots: w.Slots,
				InFlight: w.InFlight, Done: w.Done, Tags: tags, Self: w.Self}
		}
		return s.writeJSON(out)
	}
	if len(ws) == 0 {
		filter := a.KV("tag")
		if len(filter) == 0 {
			filter = node.DefaultFilter()
		}
		s.printf("no workers match %s\n", formatTags(filter))
		return nil
	}
	s.printf("%s", renderWorkers(ws, s.pal))
	return nil
}

// renderWorkers is !workers' table.
func renderWorkers(ws []node.WorkerInfo, p palette) string {
	header := []string{"ALIAS", "ADDRESS", "STATE", "SLOTS", "IN-FLIGHT", "DONE", "TAGS"}
	rows := make([][]string, len(ws))
	for i, w := range ws {
		alias := clean(w.Alias)
		if w.Self {
			alias += " *"
		}
		rows[i] = []string{alias, clean(w.Addr), w.State.String(), fmt.Sprint(w.Slots), fmt.Sprint(w.InFlight), fmt.Sprint(w.Done), formatTags(w.Tags)}
	}
	return table(header, rows, func(i, j int, cell string) string {
		switch {
		case i < 0:
			return p.bold(cell)
		case j == 2:
			return p.state(ws[i].State, cell)
		}
		return cell
	})
}

// jobRequest builds a dispatch request from the common flags.
func (s *Shell) jobRequest(a *Args) (node.DispatchRequest, error) {
	strat, err := node.ParseStrategy(a.String("strategy", s.Node.DefaultStrategy()))
	if err != nil {
		return node.DispatchRequest{}, err
	}
	return node.DispatchRequest{Kind: a.Pos[0], Args: a.Pos[1:], Tags: a.KV("tag"), Strategy: strat,
		Timeout: a.Duration("timeout", 0)}, nil
}

// dispatchJSON is one job as !dispatch --json prints it; a result or chunk
// that is not valid UTF-8 goes as result_base64 or chunks_base64.
type dispatchJSON struct {
	Job          *uint64  `json:"job"` // null: it never reached a worker
	OK           bool     `json:"ok"`
	Worker       string   `json:"worker"`
	Attempts     int      `json:"attempts"`
	LatencyMs    float64  `json:"latency_ms"`
	Result       *string  `json:"result,omitempty"`
	ResultBase64 *string  `json:"result_base64,omitempty"`
	Chunks       []string `json:"chunks,omitempty"`
	ChunksBase64 []string `json:"chunks_base64,omitempty"`
	Error        string   `json:"error,omitempty"`
}

// exactChunks is exactText for a job's chunks: all as text, or all in base64.
func exactChunks(chunks []string) (text, b64 []string) {
	if !slices.ContainsFunc(chunks, func(c string) bool { return !utf8.ValidString(c) }) {
		return chunks, nil
	}
	for _, c := range chunks {
		b64 = append(b64, base64.StdEncoding.EncodeToString([]byte(c)))
	}
	return nil, b64
}

// jobID is a job id for JSON: null for 0, a job that never reached a worker.
func jobID(id uint64) *uint64 {
	if id == 0 {
		return nil
	}
	return &id
}

// withWorkerHint adds to a "no alive worker matches" error how to get one.
func withWorkerHint(err error, filter map[string]string) error {
	if !errors.Is(err, node.ErrNoWorker) {
		return err
	}
	if len(filter) == 0 {
		filter = node.DefaultFilter()
	}
	f := node.FilterString(filter)
	return fmt.Errorf("%w; to make a node a worker, run !tag %s on it, or start it with --tags %s", err, strings.ReplaceAll(f, ",", " "), f)
}

func ms(d time.Duration) float64 { return math.Round(float64(d.Nanoseconds())/1e3) / 1e3 }

func runDispatch(ctx context.Context, s *Shell, a *Args) error {
	req, err := s.jobRequest(a)
	if err != nil {
		return err
	}
	asJSON := a.Bool("json")
	var chunks []string
	req.OnChunk = func(seq int, data string) {
		if asJSON {
			chunks = append(chunks, data)
			return
		}
		s.printf("%s\n", cleanText(data))
	}
	res, err := s.Node.Dispatch(ctx, req)
	err = withWorkerHint(err, req.Tags)
	if asJSON {
		out := dispatchJSON{Job: jobID(res.Job), OK: err == nil, Worker: res.Worker, Attempts: res.Attempts, LatencyMs: ms(res.Latency)}
		out.Result, out.ResultBase64 = exactText(res.Result)
		out.Chunks, out.ChunksBase64 = exactChunks(chunks)
		if err != nil {
			out.Error = err.Error()
		}
		if jerr := s.writeJSON(out); jerr != nil {
			return jerr
		}
		return err
	}
	if err != nil {
		return err
	}
	s.printf("%s", renderDispatch(res, s.pal))
	return nil
}

// renderDispatch is a finished job: its result (free text from the worker,
// cleaned line by line), then a dim line saying where and how it ran.
func renderDispatch(res node.DispatchResult, p palette) string {
	attempts := "1 attempt"
	if res.Attempts != 1 {
		attempts = fmt.Sprintf("%d attempts", res.Attempts)
	}
	return cleanText(res.Result) + "\n" +
		p.dim(fmt.Sprintf("job %d on %s, %s, %s", res.Job, clean(res.Worker), attempts, formatLatency(res.Latency))) + "\n"
}

// benchReport is !bench's result; its JSON form is one line.
type benchReport struct {
	Kind       string         `json:"kind"`
	N          int            `json:"n"`
	OK         bool           `json:"ok"` // every job succeeded
	Succeeded  int            `json:"succeeded"`
	Failed     int            `json:"failed"`
	Cancelled  int            `json:"cancelled"`   // in flight when the bench was cancelled
	NotStarted int            `json:"not_started"` // never sent: the bench was cancelled first
	Retried    int            `json:"retried"`
	Seconds    float64        `json:"seconds"`
	JobsPerSec float64        `json:"jobs_per_sec"`
	P50Ms      float64        `json:"p50_ms"`
	P90Ms      float64        `json:"p90_ms"`
	P99Ms      float64        `json:"p99_ms"`
	MaxMs      float64        `json:"max_ms"`
	ByWorker   map[string]int `json:"by_worker"`
	Workers    []benchWorker  `json:"workers"` // per worker, by alias: jobs, p50, p99
	Strategy   string         `json:"strategy"`
	Concurrent int            `json:"concurrency"`
	Error      string         `json:"error,omitempty"` // the first failure
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// benchWorker is one worker's line of !bench: the jobs it answered and
// their round trips on it (DispatchResult.WorkerLatency).
type benchWorker struct {
	Alias string  `json:"alias"`
	Jobs  int     `json:"jobs"`
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
}

// benchCaller is what one of !bench's callers saw.
type benchCaller struct {
	lat       []time.Duration
	byWorker  map[string][]time.Duration // the worker latencies of its jobs
	failed    int
	cancelled int
	retried   int
	firstErr  error
}

func (c *benchCaller) add(ctx context.Context, res node.DispatchResult, err error) {
	if res.Attempts > 1 {
		c.retried++
	}
	switch {
	case err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled):
		c.cancelled++
	case err != nil:
		c.failed++
		if c.firstErr == nil {
			c.firstErr = err
		}
	default:
		c.lat = append(c.lat, res.Latency)
		c.byWorker[res.Worker] = append(c.byWorker[res.Worker], res.WorkerLatency)
	}
}

func runBench(ctx context.Context, s *Shell, a *Args) error {
	if _, err := strconv.ParseUint(a.Pos[0], 10, 64); err == nil {
		// redis-benchmark and ab take the count first; here it is --n.
		return fmt.Errorf("KIND %s is a number: the count of jobs is --n, e.g. !bench --n %s echo x", a.Pos[0], a.Pos[0])
	}
	req, err := s.jobRequest(a)
	if err != nil {
		return err
	}
	n := a.Int("n", 1000)                    // ≥ 1: the flag's Min
	conc := min(a.Int("concurrency", 16), n) // ≥ 1 too
	stats := make([]benchCaller, conc)
	for i := range stats {
		stats[i].byWorker = map[string][]time.Duration{}
	}
	start := time.Now()
	// The first job runs alone: when it fails (an unknown kind, no worker
	// that matches, bad arguments) every job would, so the bench stops
	// with that one error.
	res, err := s.Node.Dispatch(ctx, req)
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("stopped before its first job finished: 0 of %d jobs done", n)
	} else if err != nil {
		return withWorkerHint(err, req.Tags)
	}
	stats[0].add(ctx, res, nil)
	started, finished := atomic.Int64{}, atomic.Int64{}
	started.Store(1)
	finished.Store(1)
	var wg sync.WaitGroup
	for c := range stats {
		wg.Add(1)
		go func(st *benchCaller) {
			defer wg.Done()
			for ctx.Err() == nil && started.Add(1) <= int64(n) {
				res, err := s.Node.Dispatch(ctx, req)
				finished.Add(1)
				st.add(ctx, res, err)
			}
		}(&stats[c])
	}
	progressDone := make(chan struct{})
	var progressWG sync.WaitGroup
	if s.interactive {
		progressWG.Add(1)
		go func() {
			defer progressWG.Done()
			t := time.NewTicker(100 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-progressDone:
					s.setStatus("")
					return
				case <-t.C:
					s.setStatus(progressBar(int(finished.Load()), n, time.Since(start)))
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(progressDone)
	progressWG.Wait()

	rep := benchReport{Kind: req.Kind, N: n, ByWorker: map[string]int{}, Strategy: req.Strategy.String(), Concurrent: conc,
		Seconds: math.Round(elapsed.Seconds()*1e4) / 1e4, NotStarted: n - min(int(started.Load()), n)}
	var all []time.Duration
	var firstErr error
	byWorker := map[string][]time.Duration{}
	for _, st := range stats {
		all = append(all, st.lat...)
		rep.Failed += st.failed
		rep.Cancelled += st.cancelled
		rep.Retried += st.retried
		for w, lat := range st.byWorker {
			byWorker[w] = append(byWorker[w], lat...)
			rep.ByWorker[w] += len(lat)
		}
		if firstErr == nil && st.firstErr != nil {
			firstErr = st.firstErr
		}
	}
	rep.Succeeded = len(all)
	rep.OK = rep.Succeeded == n
	if firstErr != nil {
		rep.Error = firstErr.Error()
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	rep.JobsPerSec = math.Round(float64(rep.Succeeded) / elapsed.Seconds())
	rep.P50Ms, rep.P90Ms, rep.P99Ms = ms(percentile(all, .50)), ms(percentile(all, .90)), ms(percentile(all, .99))
	rep.MaxMs = ms(percentile(all, 1))
	rep.Workers = make([]benchWorker, 0, len(byWorker))
	for w, lat := range byWorker {
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		rep.Workers = append(rep.Workers, benchWorker{Alias: w, Jobs: len(lat), P50Ms: ms(percentile(lat, .5)), P99Ms: ms(percentile(lat, .99))})
	}
	sort.Slice(rep.Workers, func(i, j int) bool { return rep.Workers[i].Alias < rep.Workers[j].Alias })
	stopped, done := rep.Cancelled+rep.NotStarted > 0, rep.Succeeded+rep.Failed
	if a.Bool("json") {
		if err := s.writeJSON(rep); err != nil {
			return err
		}
	} else {
		what := fmt.Sprintf("%d jobs (%s)", n, clean(req.Kind))
		if stopped {
			what = fmt.Sprintf("stopped: %d of %d jobs (%s) done", done, n, clean(req.Kind))
		}
		s.printf("%s in %s: %.0f jobs/s, %d ok, %d failed, %d retried, concurrency %d, %s\n",
			what, elapsed.Round(time.Millisecond), rep.JobsPerSec, rep.Succeeded, rep.Failed, rep.Retried, conc, rep.Strategy)
		s.printf("latency p50 %s  p90 %s  p99 %s  max %s\n", formatLatency(percentile(all, .5)), formatLatency(percentile(all, .9)),
			formatLatency(percentile(all, .99)), formatLatency(percentile(all, 1)))
		s.printf("%s", renderBenchWorkers(rep.Workers, rep.Succeeded, s.pal))
	}
	switch {
	case stopped:
		first := ""
		if firstErr != nil {
			first = "; first failure: " + withWorkerHint(firstErr, req.Tags).Error()
		}
		return fmt.Errorf("stopped: %d of %d jobs done (%d ok, %d failed); %d cancelled while running, %d never started%s",
			done, n, rep.Succeeded, rep.Failed, rep.Cancelled, rep.NotStarted, first)
	case rep.Failed > 0:
		return fmt.Errorf("%d of %d jobs failed; first: %v", rep.Failed, n, withWorkerHint(firstErr, req.Tags))
	}
	return nil
}

// renderBenchWorkers is !bench's table per worker: jobs, share, and the
// p50 and p99 of their round trips on it, so that a slow worker shows.
func renderBenchWorkers(ws []benchWorker, ok int, p palette) string {
	rows := make([][]string, len(ws))
	for i, w := range ws {
		rows[i] = []string{clean(w.Alias), fmt.Sprint(w.Jobs), fmt.Sprintf("%.1f%%", 100*float64(w.Jobs)/float64(max(ok, 1))),
			formatLatency(time.Duration(w.P50Ms * 1e6)), formatLatency(time.Duration(w.P99Ms * 1e6))}
	}
	return table([]string{"WORKER", "JOBS", "SHARE", "P50", "P99"}, rows, func(i, j int, cell string) string {
		if i < 0 {
			return p.bold(cell)
		}
		return cell
	})
}

func progressBar(done, total int, elapsed time.Duration) string {
	const width = 30
	fill := width * done / max(total, 1)
	rate := float64(done) / max(elapsed.Seconds(), 1e-9)
	return fmt.Sprintf("[%s%s] %d/%d  %.0f jobs/s", strings.Repeat("#", fill), strings.Repeat(".", width-fill), done, total, rate)
}

type jobJSON struct {
	Job       *uint64 `json:"job"` // null: it never reached a worker
	Kind      string  `json:"kind"`
	OK        bool    `json:"ok"`
	Worker    string  `json:"worker"`
	Attempts  int     `json:"attempts"`
	LatencyMs float64 `json:"latency_ms"`
	Time      string  `json:"time"` // when it ended
	Error     string  `json:"error,omitempty"`
}

func runJobs(ctx context.Context, s *Shell, a *Args) error {
	recs := s.Node.RecentJobs()
	def := 20
	if a.Bool("json") {
		def = len(recs)
	}
	if k := a.Int("n", def); k < len(recs) {
		recs = recs[len(recs)-k:]
	}
	if a.Bool("json") {
		out := make([]jobJSON, len(recs))
		for i, r := range recs {
			out[i] = jobJSON{Job: jobID(r.ID), Kind: r.Kind, OK: r.State == "ok", Worker: r.Worker, Attempts: r.Attempts,
				LatencyMs: ms(r.Latency), Time: jsonTime(r.At), Error: r.Error}
		}
		return s.writeJSON(out)
	}
	if len(recs) == 0 {
		s.printf("no jobs dispatched from this node yet (try !dispatch echo hi)\n")
		return nil
	}
	s.printf("%s", renderJobs(recs, s.pal))
	return nil
}

// jobErrCap is how much of a job's error the jobs table shows.
const jobErrCap = 60

// renderJobs is !jobs' table.
func renderJobs(recs []node.JobRecord, p palette) string {
	rows := make([][]string, len(recs))
	for i, r := range recs {
		worker := clean(r.Worker)
		if worker == "" {
			worker = "-"
		}
		id := "-" // it never reached a worker
		if r.ID != 0 {
			id = fmt.Sprint(r.ID)
		}
		rows[i] = []string{id, clean(r.Kind), worker, fmt.Sprint(r.Attempts), clean(r.State), formatLatency(r.Latency), cleanN(r.Error, jobErrCap)}
	}
	return table([]string{"ID", "KIND", "WORKER", "ATTEMPTS", "STATE", "LATENCY", "ERROR"}, rows, func(i, j int, cell string) string {
		switch {
		case i < 0:
			return p.bold(cell)
		case j == 4 && recs[i].State == "cancelled": // stopped by its caller: no failure
			return p.state(node.StateLeft, cell)
		case j == 4 && recs[i].State != "ok":
			return p.state(node.StateFailed, cell)
		case j == 4:
			return p.state(node.StateAlive, cell)
		}
		return cell
	})
}
