package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type result struct {
	System      string  `json:"system"`
	Concurrency int     `json:"concurrency"`
	Payload     int     `json:"payload"`
	Servers     int     `json:"servers"`
	Seconds     float64 `json:"seconds"`
	JobsPerSec  float64 `json:"jobs_per_sec"`
	P50us       float64 `json:"p50_us"`
	P90us       float64 `json:"p90_us"`
	P99us       float64 `json:"p99_us"`
	MaxUs       float64 `json:"max_us"`
	OK          int64   `json:"ok"`
	Errors      int64   `json:"errors"`
	FirstError  string  `json:"first_error,omitempty"`
}

func client(args []string) error {
	fs := flag.NewFlagSet("client", flag.ExitOnError)
	system := fs.String("system", "raw", "grpc | raw")
	servers := fs.String("servers", "", "comma-separated host:port list")
	conc := fs.Int("concurrency", 256, "concurrent in-flight requests (worker goroutines)")
	dur := fs.Duration("duration", 10*time.Second, "measured duration")
	warm := fs.Duration("warmup", time.Second, "warm-up before measuring (not counted)")
	payload := fs.Int("payload", 64, "request payload bytes")
	callTimeout := fs.Duration("call-timeout", 5*time.Second, "per-request timeout")
	fs.Parse(args)

	addrs := strings.Split(*servers, ",")
	if *servers == "" || len(addrs) == 0 {
		return fmt.Errorf("--servers is required")
	}
	if *conc < 1 {
		return fmt.Errorf("--concurrency must be >= 1")
	}

	type caller func(ctx context.Context, req []byte, st *workerState) ([]byte, error)
	var calls []caller
	var closers []func()
	switch *system {
	case "grpc":
		for _, a := range addrs {
			g, err := newGRPCCaller(a)
			if err != nil {
				return err
			}
			closers = append(closers, g.close)
			calls = append(calls, func(ctx context.Context, req []byte, st *workerState) ([]byte, error) {
				err := g.call(ctx, req, &st.resp)
				return st.resp, err
			})
		}
	case "raw":
		for _, a := range addrs {
			r, err := newRawCaller(a)
			if err != nil {
				return err
			}
			closers = append(closers, r.close)
			calls = append(calls, func(ctx context.Context, req []byte, st *workerState) ([]byte, error) {
				resp, err := r.call(ctx, req, st.ch)
				if err != nil {
					st.ch = make(chan []byte, 1) // a late reply may still land in the old one
				}
				return resp, err
			})
		}
	default:
		return fmt.Errorf("unknown --system %q", *system)
	}
	defer func() {
		for _, c := range closers {
			c()
		}
	}()

	req := bytes.Repeat([]byte{'x'}, *payload)
	var rr atomic.Uint64
	var okN, errN atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	measureFrom := start.Add(*warm)
	end := measureFrom.Add(*dur)

	lats := make([][]int64, *conc)
	var wg sync.WaitGroup
	for w := 0; w < *conc; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			st := &workerState{ch: make(chan []byte, 1)}
			var mine []int64
			for {
				t0 := time.Now()
				if !t0.Before(end) {
					break
				}
				i := rr.Add(1) - 1
				ctx, cancel := context.WithTimeout(context.Background(), *callTimeout)
				resp, err := calls[i%uint64(len(calls))](ctx, req, st)
				cancel()
				t1 := time.Now()
				if err == nil && len(resp) != len(req) {
					err = fmt.Errorf("bad reply length %d", len(resp))
				}
				if t0.Before(measureFrom) || t1.After(end) {
					continue // warm-up or straddling the end: not counted
				}
				if err != nil {
					errN.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				okN.Add(1)
				mine = append(mine, t1.Sub(t0).Nanoseconds())
			}
			lats[w] = mine
		}(w)
	}
	wg.Wait()

	var all []int64
	for _, l := range lats {
		all = append(all, l...)
	}
	slices.Sort(all)
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		i := int(p * float64(len(all)-1))
		return float64(all[i]) / 1e3
	}
	res := result{
		System: *system, Concurrency: *conc, Payload: *payload, Servers: len(addrs),
		Seconds: dur.Seconds(), OK: okN.Load(), Errors: errN.Load(),
		JobsPerSec: float64(okN.Load()) / dur.Seconds(),
		P50us:      pct(0.50), P90us: pct(0.90), P99us: pct(0.99), MaxUs: pct(1),
	}
	if s, ok := firstErr.Load().(string); ok {
		res.FirstError = s
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

type workerState struct {
	resp []byte      // grpc: reused reply buffer
	ch   chan []byte // raw: reply channel
}
