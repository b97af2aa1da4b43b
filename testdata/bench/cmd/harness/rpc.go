package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// rpcResult is one run of one rpc system at one concurrency.
type rpcResult struct {
	System      string
	Concurrency int
	Trial       int
	JobsPerSec  float64
	P50us       float64
	P99us       float64
	Raw         map[string]any // the line the client / dispatcher printed
	Error       string
}

func (h *Harness) rpcSystemNames() []string {
	var out []string
	for _, s := range h.cfg.rpcSystems {
		if (s == "meshell" || s == "meshell+metrics") && h.cfg.meshell == "" {
			continue
		}
		out = append(out, s)
	}
	return out
}

func (h *Harness) runRPC() {
	trials := h.cfg.trials
	if trials == 0 {
		trials = 1
	}
	// Systems alternate within each trial, so that a ratio between two of
	// them is measured under the same load, and in reverse order on every
	// other trial, so that neither always runs first.
	for _, conc := range h.cfg.rpcConc {
		for t := 1; t <= trials && h.ctx.Err() == nil; t++ {
			order := h.rpcSystemNames()
			if t%2 == 0 {
				slices.Reverse(order)
			}
			for _, sys := range order {
				fmt.Fprintf(os.Stderr, "harness: rpc / %s / concurrency %d / trial %d ...\n", sys, conc, t)
				var r *rpcResult
				switch sys {
				case "raw", "grpc":
					r = h.rpcAnchor(sys, conc, t)
				case "meshell":
					r = h.rpcMeshell(conc, t, false)
				case "meshell+metrics":
					r = h.rpcMeshell(conc, t, true)
				default:
					r = &rpcResult{System: sys, Concurrency: conc, Trial: t, Error: "unknown rpc system"}
				}
				h.recordRPC(r)
				time.Sleep(300 * time.Millisecond)
			}
		}
	}
}

func (h *Harness) recordRPC(r *rpcResult) {
	m := map[string]any{"type": "trial", "scenario": "rpc", "system": r.System,
		"concurrency": r.Concurrency, "trial": r.Trial}
	if r.Error != "" {
		m["error"] = r.Error
		h.hadError = true
		fmt.Fprintf(os.Stderr, "harness:   rpc / %s / c=%d: %s\n", r.System, r.Concurrency, r.Error)
	} else {
		m["jobs_per_sec"] = round3(r.JobsPerSec)
		m["p50_us"] = round3(r.P50us)
		m["p99_us"] = round3(r.P99us)
	}
	if r.Raw != nil {
		m["detail"] = r.Raw
	}
	h.outMu.Lock()
	h.rpcRes = append(h.rpcRes, r)
	h.outMu.Unlock()
	h.emit(m)
}

// lineCatcher keeps the first JSON object line holding key, and the last few
// other lines for error messages.
type lineCatcher struct {
	key  string
	mu   sync.Mutex
	got  chan map[string]any
	tail []string
}

func newLineCatcher(key string) *lineCatcher {
	return &lineCatcher{key: key, got: make(chan map[string]any, 1)}
}

func (lc *lineCatcher) onLine(line []byte, _ time.Time) {
	s := strings.TrimSpace(string(line))
	if strings.HasPrefix(s, "{") {
		var m map[string]any
		d := json.NewDecoder(strings.NewReader(s))
		d.UseNumber()
		if d.Decode(&m) == nil {
			if _, ok := m[lc.key]; ok {
				select {
				case lc.got <- m:
				default:
				}
				return
			}
		}
	}
	lc.mu.Lock()
	lc.tail = append(lc.tail, s)
	if len(lc.tail) > 8 {
		lc.tail = lc.tail[1:]
	}
	lc.mu.Unlock()
}

func (lc *lineCatcher) lastLines() string {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	return strings.Join(lc.tail, " | ")
}

func (h *Harness) killProcs(ps []*Proc) {
	for _, p := range ps {
		if p != nil {
			_ = p.Signal(sigKILL)
		}
	}
	for _, p := range ps {
		if p != nil {
			p.WaitExit(5 * time.Second)
		}
	}
}

// rpcAnchor: 3 rpcanchor servers + 1 client process.
func (h *Harness) rpcAnchor(sys string, conc, trial int) *rpcResult {
	r := &rpcResult{System: sys, Concurrency: conc, Trial: trial}
	var procs []*Proc
	defer func() { h.killProcs(procs) }()
	var addrs []string
	for i := 1; i <= 3; i++ {
		port, err := h.freePort()
		if err != nil {
			r.Error = err.Error()
			return r
		}
		p, err := h.startProc(fmt.Sprintf("%s-server%d", sys, i), fmt.Sprintf("rpc-%s-c%d-t%d-server%d", sys, conc, trial, i),
			h.cfg.rpcBin, []string{sys + "-server", "--port", strconv.Itoa(port)}, nil)
		if err != nil {
			r.Error = err.Error()
			return r
		}
		procs = append(procs, p)
		if err := waitTCP(h.ctx, port, 10*time.Second, p); err != nil {
			r.Error = err.Error()
			return r
		}
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", port))
	}
	lc := newLineCatcher("jobs_per_sec")
	args := []string{"client", "--system", sys, "--servers", strings.Join(addrs, ","),
		"--concurrency", strconv.Itoa(conc), "--duration", h.cfg.rpcDuration.String(),
		"--payload", strconv.Itoa(h.cfg.rpcPayload)}
	fmt.Fprintf(os.Stderr, "harness:   %s %s\n", h.cfg.rpcBin, strings.Join(args, " "))
	cl, err := h.startProc(sys+"-client", fmt.Sprintf("rpc-%s-c%d-t%d-client", sys, conc, trial), h.cfg.rpcBin, args, lc.onLine)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	procs = append(procs, cl)
	h.collectRPC(r, lc, cl, h.cfg.rpcDuration+time.Minute, "p50_us", "p99_us", 1)
	return r
}

// collectRPC waits for the result line and fills r.
func (h *Harness) collectRPC(r *rpcResult, lc *lineCatcher, p *Proc, d time.Duration, p50, p99 string, scale float64) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case m := <-lc.got:
		r.Raw = m
		r.JobsPerSec, _ = numField(m, "jobs_per_sec")
		if v, ok := numField(m, p50); ok {
			r.P50us = v * scale
		}
		if v, ok := numField(m, p99); ok {
			r.P99us = v * scale
		}
	case <-p.done:
		// The line may have been read just before exit.
		select {
		case m := <-lc.got:
			lc.got <- m
			h.collectRPC(r, lc, p, time.Second, p50, p99, scale)
			return
		default:
		}
		r.Error = fmt.Sprintf("%s exited without a result (%v); last output: %s; log %s", p.Name, p.err, lc.lastLines(), p.Log)
	case <-t.C:
		r.Error = fmt.Sprintf("no result within %v; last output: %s; log %s", d, lc.lastLines(), p.Log)
	case <-h.ctx.Done():
		r.Error = "harness stopped"
	}
}

// rpcMeshell: 3 `meshell --serve` workers and a script-mode dispatcher
// running !bench.
// rpcMeshell runs one meshell trial; withMetrics gives every process
// --metrics and scrapes the dispatcher's /metrics every second meanwhile.
func (h *Harness) rpcMeshell(conc, trial int, withMetrics bool) *rpcResult {
	r := &rpcResult{System: "meshell", Concurrency: conc, Trial: trial}
	metricsFlag := func() []string { return nil }
	if withMetrics {
		r.System = "meshell+metrics"
		metricsFlag = func() []string {
			port, err := h.freePort()
			if err != nil {
				return nil
			}
			return []string{"--metrics", fmt.Sprintf("127.0.0.1:%d", port)}
		}
	}
	var procs []*Proc
	defer func() { h.killProcs(procs) }()
	seed := 0
	for i := 1; i <= 3; i++ {
		port, err := h.freePort()
		if err != nil {
			r.Error = err.Error()
			return r
		}
		args := []string{"--serve", "--alias", fmt.Sprintf("w%d", i), "--bind", fmt.Sprintf("127.0.0.1:%d", port)}
		if seed != 0 {
			args = append(args, "--join", fmt.Sprintf("127.0.0.1:%d", seed))
		}
		args = append(args, "--tags", "role=worker")
		args = append(args, metricsFlag()...)
		args = append(args, h.cfg.meshellExtra...)
		if i == 1 {
			fmt.Fprintf(os.Stderr, "harness:   %s %s\n", h.cfg.meshell, strings.Join(args, " "))
		}
		p, err := h.startProc(fmt.Sprintf("w%d", i), fmt.Sprintf("rpc-meshell-c%d-t%d-w%d", conc, trial, i), h.cfg.meshell, args, nil)
		if err != nil {
			r.Error = err.Error()
			return r
		}
		procs = append(procs, p)
		if err := waitTCP(h.ctx, port, 15*time.Second, p); err != nil {
			r.Error = err.Error()
			return r
		}
		if seed == 0 {
			seed = port
		}
	}
	port, err := h.freePort()
	if err != nil {
		r.Error = err.Error()
		return r
	}
	n := h.cfg.rpcN
	if conc == 1 {
		n = h.cfg.rpcN1
	}
	args := []string{"--alias", "d", "--bind", fmt.Sprintf("127.0.0.1:%d", port),
		"--join", fmt.Sprintf("127.0.0.1:%d", seed), "--no-color"}
	mflag := metricsFlag()
	args = append(args, mflag...)
	args = append(args, h.cfg.meshellExtra...)
	script := []string{
		"!wait members 4 10s",
		fmt.Sprintf("!bench --n %d --concurrency %d --json echo %s", n, conc, strings.Repeat("x", h.cfg.rpcPayload)),
		"!quit",
	}
	fmt.Fprintf(os.Stderr, "harness:   %s %s <<< %q\n", h.cfg.meshell, strings.Join(args, " "), strings.Join(script, "\n"))
	lc := newLineCatcher("jobs_per_sec")
	d, err := h.startProc("d", fmt.Sprintf("rpc-meshell-c%d-t%d-d", conc, trial), h.cfg.meshell, args, lc.onLine)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	procs = append(procs, d)
	for _, l := range script {
		if err := d.Send(l); err != nil {
			r.Error = "dispatcher stdin: " + err.Error()
			return r
		}
	}
	if len(mflag) == 2 {
		stop := scrapeEvery(time.Second, "http://"+mflag[1]+"/metrics")
		defer stop()
	}
	h.collectRPC(r, lc, d, h.cfg.rpcTimeout, "p50_ms", "p99_ms", 1000)
	if r.Error == "" {
		d.WaitExit(15 * time.Second)
	}
	return r
}

// scrapeEvery GETs url every period, as a Prometheus server would, until
// the returned func is called.
func scrapeEvery(period time.Duration, url string) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		client := &http.Client{Timeout: 5 * time.Second}
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			if resp, err := client.Get(url); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
	}()
	return func() { close(done); <-finished }
}

func (h *Harness) printRPCTable(w io.Writer, rs []*rpcResult) {
	type key struct {
		sys  string
		conc int
	}
	agg := map[key][]*rpcResult{}
	var concs []int
	var systems []string
	for _, r := range rs {
		if !slices.Contains(concs, r.Concurrency) {
			concs = append(concs, r.Concurrency)
		}
		if !slices.Contains(systems, r.System) {
			systems = append(systems, r.System)
		}
		agg[key{r.System, r.Concurrency}] = append(agg[key{r.System, r.Concurrency}], r)
	}
	med := func(k key, f func(*rpcResult) float64) (float64, int) {
		var v []float64
		for _, r := range agg[k] {
			if r.Error == "" {
				v = append(v, f(r))
			}
		}
		return median(v), len(v)
	}
	jps := func(r *rpcResult) float64 { return r.JobsPerSec }
	p50 := func(r *rpcResult) float64 { return r.P50us }
	p99 := func(r *rpcResult) float64 { return r.P99us }

	fmt.Fprintln(w)
	fmt.Fprintf(w, "== rpc: 3 server processes, 1 client process, %d-byte echo (median over trials) ==\n", h.cfg.rpcPayload)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "concurrency\tsystem\tjobs/s\tp50 us\tp99 us\tok trials")
	for _, c := range concs {
		for _, s := range systems {
			k := key{s, c}
			j, n := med(k, jps)
			if n == 0 {
				fmt.Fprintf(tw, "%d\t%s\tfailed\t\t\t0/%d\n", c, s, len(agg[k]))
				continue
			}
			a, _ := med(k, p50)
			b, _ := med(k, p99)
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d/%d\n", c, s, fmtNum(j), fmtNum(a), fmtNum(b), n, len(agg[k]))
		}
		for _, base := range []string{"raw", "grpc"} {
			mk, bk := key{"meshell", c}, key{base, c}
			mj, mn := med(mk, jps)
			bj, bn := med(bk, jps)
			if mn == 0 || bn == 0 || bj == 0 {
				continue
			}
			m50, _ := med(mk, p50)
			b50, _ := med(bk, p50)
			m99, _ := med(mk, p99)
			b99, _ := med(bk, p99)
			fmt.Fprintf(tw, "%d\tmeshell/%s\t%.2fx\t%.2fx\t%.2fx\t\n", c, base, mj/bj, ratio(m50, b50), ratio(m99, b99))
		}
	}
	tw.Flush()
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
