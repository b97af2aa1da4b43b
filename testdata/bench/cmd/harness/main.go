// Command harness runs meshell and its anchors (hashicorp/memberlist with
// default and with meshell's timings; gRPC and a raw msgpack RPC) side by side
// and prints one JSON line per measurement plus a table at the end.
//
//	go run ./cmd/harness [--meshell PATH] [--scenario all|crash,hang,...] [--trials N]
//
// See README.md in this directory.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

type config struct {
	meshell       string
	src           string
	mlnodeBin     string
	rpcBin        string
	scenarios     []string
	systems       []string
	rpcSystems    []string
	trials        int
	clusterN      int
	convergeN     int
	convergeSpawn bool
	idleN         int
	idleFailed    bool
	settle        time.Duration
	formTimeout   time.Duration
	detectCap     time.Duration
	hangCap       time.Duration
	recoverCap    time.Duration
	leaveCap      time.Duration
	rejoinCap     time.Duration
	convergeCap   time.Duration
	idleDur       time.Duration
	falsePosDur   time.Duration
	rpcDuration   time.Duration
	rpcN          int
	rpcN1         int
	rpcConc       []int
	rpcTimeout    time.Duration
	rpcPayload    int
	globalTO      time.Duration
	jsonOut       string
	keepLogs      bool
	meshellExtra  []string
}

// Harness holds the run-wide state.
type Harness struct {
	cfg    config
	ctx    context.Context
	cancel context.CancelFunc
	runID  string
	work   string
	logDir string

	procMu  sync.Mutex
	procs   map[*Proc]struct{}
	closing bool

	portMu    sync.Mutex
	usedPorts map[int]bool

	outMu    sync.Mutex
	jsonFile *os.File
	results  []*Result
	rpcRes   []*rpcResult
	hadError bool
}

var allScenarios = []string{"crash", "hang", "leave", "restart", "converge", "idle", "falsepos", "rpc"}

func main() {
	os.Exit(run())
}

func run() (code int) {
	var cfg config
	var scen, systems, rpcSystems, rpcConc, mlExtra string
	flag.StringVar(&cfg.meshell, "meshell", "", "path to the meshell binary (enables the meshell system)")
	flag.StringVar(&cfg.src, "src", "", "directory of the meshell-bench module (default: found from the working directory)")
	flag.StringVar(&cfg.mlnodeBin, "mlnode", "", "prebuilt mlnode binary (default: go build it)")
	flag.StringVar(&cfg.rpcBin, "rpcanchor", "", "prebuilt rpcanchor binary (default: go build it)")
	flag.StringVar(&scen, "scenario", "all", "comma list of: "+strings.Join(allScenarios, ",")+" (or all)")
	flag.StringVar(&systems, "systems", "memberlist-default,memberlist-fast,meshell", "membership systems: memberlist-default, memberlist-fast, meshell, meshell:PROFILE (adds --profile PROFILE); meshell entries are skipped without --meshell")
	flag.StringVar(&rpcSystems, "rpc-systems", "raw,grpc,meshell", "rpc systems: raw, grpc, meshell, meshell+metrics (every process with --metrics, the dispatcher scraped every second)")
	flag.StringVar(&mlExtra, "meshell-args", "", "extra arguments for every meshell node (space separated)")
	flag.IntVar(&cfg.trials, "trials", 0, "trials per scenario and system (0: 5 for membership scenarios, 1 for idle and rpc)")
	flag.IntVar(&cfg.clusterN, "nodes", 5, "cluster size for crash/hang/leave/restart")
	flag.IntVar(&cfg.convergeN, "converge-n", 40, "processes in the converge scenario")
	flag.BoolVar(&cfg.convergeSpawn, "converge-spawn", false, "converge: each process joins as it starts, and the time includes starting them (default: all start idle, then join at once)")
	flag.IntVar(&cfg.idleN, "idle-n", 10, "processes in the idle scenario")
	flag.BoolVar(&cfg.idleFailed, "idle-failed", false, "idle: kill -9 one node first, so that a failed member is present during the window")
	flag.DurationVar(&cfg.idleDur, "idle-duration", 30*time.Second, "idle measurement window")
	flag.DurationVar(&cfg.falsePosDur, "falsepos-duration", 5*time.Minute, "falsepos: how long the cores stay saturated")
	flag.DurationVar(&cfg.settle, "settle", 2*time.Second, "settle time after the cluster formed")
	flag.DurationVar(&cfg.formTimeout, "form-timeout", 60*time.Second, "cap on forming a cluster")
	flag.DurationVar(&cfg.detectCap, "detect-cap", 60*time.Second, "cap on crash detection")
	flag.DurationVar(&cfg.hangCap, "hang-cap", 30*time.Second, "cap on detecting a SIGSTOPped node")
	flag.DurationVar(&cfg.recoverCap, "recover-cap", 60*time.Second, "cap on seeing a SIGCONTed node alive again")
	flag.DurationVar(&cfg.leaveCap, "leave-cap", 30*time.Second, "cap on seeing a graceful leave")
	flag.DurationVar(&cfg.rejoinCap, "rejoin-cap", 30*time.Second, "cap on seeing a restarted node")
	flag.DurationVar(&cfg.convergeCap, "converge-cap", 120*time.Second, "cap on convergence")
	flag.DurationVar(&cfg.rpcDuration, "rpc-duration", 10*time.Second, "anchor client run time (after 1s warm-up)")
	flag.IntVar(&cfg.rpcN, "rpc-n", 200000, "meshell !bench --n at concurrency > 1")
	flag.IntVar(&cfg.rpcN1, "rpc-n1", 20000, "meshell !bench --n at concurrency 1")
	flag.StringVar(&rpcConc, "rpc-concurrency", "256,1", "comma list of concurrencies")
	flag.IntVar(&cfg.rpcPayload, "rpc-payload", 64, "payload bytes")
	flag.DurationVar(&cfg.rpcTimeout, "rpc-timeout", 300*time.Second, "cap on one rpc run")
	flag.DurationVar(&cfg.globalTO, "timeout", 90*time.Minute, "cap on the whole harness run")
	flag.StringVar(&cfg.jsonOut, "json-out", "", "append every JSON line to this file too")
	flag.BoolVar(&cfg.keepLogs, "keep-logs", false, "keep the process logs (kept anyway when something failed)")
	flag.Parse()

	if scen == "all" || scen == "" {
		cfg.scenarios = allScenarios
	} else {
		for _, s := range strings.Split(scen, ",") {
			s = strings.TrimSpace(s)
			if !slices.Contains(allScenarios, s) {
				fmt.Fprintf(os.Stderr, "harness: unknown scenario %q\n", s)
				return 2
			}
			cfg.scenarios = append(cfg.scenarios, s)
		}
	}
	for _, s := range strings.Split(systems, ",") {
		if s = strings.TrimSpace(s); s != "" {
			cfg.systems = append(cfg.systems, s)
		}
	}
	for _, s := range strings.Split(rpcSystems, ",") {
		if s = strings.TrimSpace(s); s != "" {
			cfg.rpcSystems = append(cfg.rpcSystems, s)
		}
	}
	for _, s := range strings.Split(rpcConc, ",") {
		var n int
		if _, err := fmt.Sscan(strings.TrimSpace(s), &n); err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "harness: bad --rpc-concurrency %q\n", rpcConc)
			return 2
		}
		cfg.rpcConc = append(cfg.rpcConc, n)
	}
	cfg.meshellExtra = strings.Fields(mlExtra)

	ctx, cancel := context.WithTimeout(context.Background(), cfg.globalTO)
	h := &Harness{cfg: cfg, ctx: ctx, cancel: cancel, procs: map[*Proc]struct{}{},
		usedPorts: map[int]bool{}, runID: time.Now().UTC().Format("20060102T150405Z")}
	defer cancel()

	// Whatever happens, no child outlives the harness.
	defer h.killAll()
	defer func() {
		if r := recover(); r != nil {
			h.killAll()
			fmt.Fprintf(os.Stderr, "harness: panic: %v\n", r)
			code = 3
		}
	}()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "harness: %v: killing children\n", s)
		cancel()
		h.killAll()
		os.Exit(130)
	}()

	var err error
	if h.work, err = os.MkdirTemp("", "meshell-bench-"); err != nil {
		fmt.Fprintln(os.Stderr, "harness:", err)
		return 1
	}
	h.logDir = filepath.Join(h.work, "logs")
	os.MkdirAll(h.logDir, 0o755)
	defer func() {
		if h.hadError || cfg.keepLogs {
			fmt.Fprintf(os.Stderr, "harness: process logs kept in %s\n", h.logDir)
			os.RemoveAll(filepath.Join(h.work, "bin"))
		} else {
			os.RemoveAll(h.work)
		}
	}()

	if cfg.jsonOut != "" {
		if h.jsonFile, err = os.OpenFile(cfg.jsonOut, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "harness:", err)
			return 1
		}
		defer h.jsonFile.Close()
	}

	if err := h.build(); err != nil {
		fmt.Fprintln(os.Stderr, "harness:", err)
		return 1
	}

	sysList := h.membershipSystems()
	h.emit(map[string]any{"type": "meta", "go": runtime.Version(), "cpus": runtime.NumCPU(),
		"scenarios": cfg.scenarios, "systems": sysNames(sysList), "rpc_systems": h.rpcSystemNames(),
		"args": os.Args[1:]})

	for _, sc := range cfg.scenarios {
		if ctx.Err() != nil {
			break
		}
		if sc == "rpc" {
			h.runRPC()
			continue
		}
		fn := map[string]trialFunc{"crash": scenarioCrash, "hang": scenarioHang, "leave": scenarioLeave,
			"restart": scenarioRestart, "converge": scenarioConverge, "idle": scenarioIdle, "falsepos": scenarioFalsePos}[sc]
		trials := cfg.trials
		if trials == 0 {
			trials = 5
			if sc == "idle" || sc == "falsepos" {
				trials = 1
			}
		}
		// Systems alternate trial by trial, so that a noisy moment of a
		// shared machine lands on all of them rather than on one.
		for t := 1; t <= trials && ctx.Err() == nil; t++ {
			for _, sys := range sysList {
				if ctx.Err() == nil {
					h.runTrial(sc, sys, t, fn)
				}
			}
		}
	}
	h.printSummary(os.Stdout)
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "harness: stopped early:", ctx.Err())
		return 1
	}
	return 0
}

func sysNames(s []*System) []string {
	var out []string
	for _, x := range s {
		out = append(out, x.Name)
	}
	return out
}

func (h *Harness) membershipSystems() []*System {
	var out []*System
	for _, name := range h.cfg.systems {
		switch {
		case name == "memberlist-default":
			out = append(out, &System{Name: name, Bin: h.cfg.mlnodeBin, Kind: "mlnode", Extra: []string{"--config", "default"}})
		case name == "memberlist-fast":
			out = append(out, &System{Name: name, Bin: h.cfg.mlnodeBin, Kind: "mlnode", Extra: []string{"--config", "fast"}})
		case name == "meshell" || strings.HasPrefix(name, "meshell:"):
			if h.cfg.meshell == "" {
				fmt.Fprintf(os.Stderr, "harness: no --meshell given: skipping system %s\n", name)
				continue
			}
			extra := slices.Clone(h.cfg.meshellExtra)
			if p, ok := strings.CutPrefix(name, "meshell:"); ok {
				extra = append(extra, "--profile", p)
			}
			out = append(out, &System{Name: name, Bin: h.cfg.meshell, Kind: "meshell", Extra: extra})
		default:
			fmt.Fprintf(os.Stderr, "harness: unknown system %q skipped\n", name)
		}
	}
	return out
}

// build compiles mlnode and rpcanchor unless prebuilt paths were given.
func (h *Harness) build() error {
	if h.cfg.meshell != "" {
		abs, err := filepath.Abs(h.cfg.meshell)
		if err != nil {
			return err
		}
		if _, err := os.Stat(abs); err != nil {
			return fmt.Errorf("--meshell: %w", err)
		}
		h.cfg.meshell = abs
	}
	if h.cfg.mlnodeBin != "" && h.cfg.rpcBin != "" {
		return nil
	}
	src := h.cfg.src
	if src == "" {
		var err error
		if src, err = findModule(); err != nil {
			return err
		}
	}
	bin := filepath.Join(h.work, "bin")
	for _, b := range []struct {
		dst *string
		pkg string
	}{{&h.cfg.mlnodeBin, "./cmd/mlnode"}, {&h.cfg.rpcBin, "./cmd/rpcanchor"}} {
		if *b.dst != "" {
			continue
		}
		out := filepath.Join(bin, filepath.Base(b.pkg))
		ctx, cancel := context.WithTimeout(h.ctx, 5*time.Minute)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", out, b.pkg)
		cmd.Dir = src
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		fmt.Fprintf(os.Stderr, "harness: (cd %s && go build -o %s %s)\n", src, out, b.pkg)
		err := cmd.Run()
		cancel()
		if err != nil {
			return fmt.Errorf("build %s: %w", b.pkg, err)
		}
		*b.dst = out
	}
	return nil
}

// findModule looks for the meshell-bench module from the working directory
// upwards, and in testdata/bench below each of those directories.
func findModule() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		for _, cand := range []string{dir, filepath.Join(dir, "testdata", "bench")} {
			b, err := os.ReadFile(filepath.Join(cand, "go.mod"))
			if err == nil && bytes.Contains(b, []byte("module meshell-bench")) {
				return cand, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find the meshell-bench module; pass --src")
		}
		dir = parent
	}
}

// runTrial runs one trial of a membership scenario with a fresh cluster.
func (h *Harness) runTrial(sc string, sys *System, trial int, fn trialFunc) {
	r := &Result{Scenario: sc, System: sys.Name, Trial: trial, Metrics: map[string]float64{}, Extra: map[string]any{}}
	c := h.newCluster(sys, fmt.Sprintf("%s-t%d", sc, trial))
	fmt.Fprintf(os.Stderr, "harness: %s / %s / trial %d ...\n", sc, sys.Name, trial)
	if trial == 1 {
		fmt.Fprintf(os.Stderr, "harness:   seed:   %s %s\n", sys.Bin, strings.Join(sys.nodeArgs("node1", 20001, 0), " "))
		fmt.Fprintf(os.Stderr, "harness:   others: %s %s   (ports vary; stdin: \"!events on --json\")\n", sys.Bin, strings.Join(sys.nodeArgs("node2", 20002, 20001), " "))
	}
	start := time.Now()
	func() {
		defer func() {
			if p := recover(); p != nil {
				r.Error = fmt.Sprintf("panic: %v", p)
			}
		}()
		fn(h, c, trial, r)
	}()
	c.close()
	r.Extra["trial_s"] = time.Since(start).Seconds()
	if h.ctx.Err() != nil && r.Error == "" && len(r.Metrics) == 0 {
		r.Error = "harness stopped: " + h.ctx.Err().Error()
	}
	h.record(r)
	time.Sleep(200 * time.Millisecond)
}

// ---- small helpers -----------------------------------------------------------

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func maxOf(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	return slices.Max(v)
}

func numField(m map[string]any, k string) (float64, bool) {
	switch x := m[k].(type) {
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	case float64:
		return x, true
	case string:
		var f float64
		_, err := fmt.Sscan(x, &f)
		return f, err == nil
	}
	return 0, false
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

func safe(s string) string { return strings.NewReplacer(":", "_", "/", "_").Replace(s) }
