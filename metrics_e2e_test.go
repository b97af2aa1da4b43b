package main

// End-to-end /metrics and !force-leave: real processes, real time.

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// scrapeMetrics GETs http://addr/metrics, polling until it answers, and
// parses it with the official Prometheus text parser.
func scrapeMetrics(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err == nil {
			body, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr != nil || resp.StatusCode != 200 {
				t.Fatalf("GET /metrics: %d %v", resp.StatusCode, rerr)
			}
			var p expfmt.TextParser
			fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
			if err != nil {
				t.Fatalf("the official parser refuses /metrics: %v\n%s", err, body)
			}
			return fams
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /metrics: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sample is the value of family name's sample with label k=v (or its only
// sample when k is empty).
func sample(t *testing.T, fams map[string]*dto.MetricFamily, name, k, v string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("/metrics has no %s", name)
	}
	for _, m := range f.Metric {
		if k != "" && !(len(m.Label) > 0 && m.Label[0].GetName() == k && m.Label[0].GetValue() == v) {
			continue
		}
		if m.Counter != nil {
			return m.Counter.GetValue()
		}
		return m.Gauge.GetValue()
	}
	t.Fatalf("/metrics has no %s{%s=%q}", name, k, v)
	return 0
}

func TestMetricsMatchMembersAndBench(t *testing.T) {
	seed, _ := workerCluster(t, 2)
	maddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	d := start(t, "", "--alias", "d", "-P", "0", "--join", seed, "--metrics", maddr)
	d.feed(t, "!wait members 3 30s\n!bench --n 300 --json echo x\n!cluster_members --json\n!echo measured\n")
	d.waitOutput(t, "measured", 90*time.Second)
	out := d.stdout.String()
	bench := jsonLine[benchJSON](t, out, `{"kind"`)
	tables := memberTables(t, out)
	alive := 0
	for _, m := range tables[len(tables)-1] {
		if m.State == "alive" {
			alive++
		}
	}

	fams := scrapeMetrics(t, maddr)
	if got := sample(t, fams, "meshell_members", "state", "alive"); got != float64(alive) || alive != 3 {
		t.Errorf("meshell_members{state=alive} = %v; !cluster_members lists %d alive", got, alive)
	}
	if got := sample(t, fams, "meshell_jobs_total", "result", "ok"); got != float64(bench.Succeeded) || bench.Succeeded != 300 {
		t.Errorf("meshell_jobs_total{result=ok} = %v; !bench says %d succeeded", got, bench.Succeeded)
	}
	if got := sample(t, fams, "meshell_jobs_dispatched_total", "", ""); got != 300 {
		t.Errorf("meshell_jobs_dispatched_total = %v after a bench of 300", got)
	}
	if got := sample(t, fams, "meshell_jobs_in_flight", "", ""); got != 0 {
		t.Errorf("meshell_jobs_in_flight = %v after the bench", got)
	}
	if h := fams["meshell_job_latency_seconds"].Metric[0].Histogram; h.GetSampleCount() != 300 {
		t.Errorf("job latency histogram counts %d jobs", h.GetSampleCount())
	}

	// Only GET /metrics is answered.
	for _, tc := range []struct {
		method, path string
		code         int
	}{{"POST", "/metrics", 405}, {"GET", "/", 404}, {"GET", "/debug/pprof/", 404}} {
		req, _ := http.NewRequest(tc.method, "http://"+maddr+tc.path, strings.NewReader("x"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.code)
		}
	}
}

func TestForceLeaveStopsTheRedial(t *testing.T) {
	seed, _ := workerCluster(t, 2)
	vport := freePort(t)
	v := start(t, "", "--serve", "--alias", "v", "-P", fmt.Sprint(vport), "--join", seed)
	ctl := start(t, "", "--alias", "ctl", "-P", "0", "--join", seed, "--keep-going")
	ctl.feed(t, "!wait members 4 30s\n!force-leave v\n!echo refused-alive\n")
	ctl.waitOutput(t, "refused-alive", 30*time.Second)
	if !strings.Contains(ctl.stderr.String(), "v is alive: !force-leave removes only failed members") {
		t.Fatalf("force-leave of an alive member was not refused:\n%s\n%s", ctl.stdout.String(), ctl.stderr.String())
	}

	v.cmd.Process.Kill() // kill -9
	<-v.done
	ctl.feed(t, "!wait v failed 30s\n!echo v-failed\n")
	ctl.waitOutput(t, "v-failed", 40*time.Second)
	dials := countAt(t, fmt.Sprintf("127.0.0.1:%d", vport)) // where v listened
	// The three members re-dial a failed member (250 ms doubling to 2 s).
	deadline := time.Now().Add(30 * time.Second)
	for dials.n.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connection attempts at the dead address in 30s: nothing re-dials it, the test proves nothing", dials.n.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}

	ctl.feed(t, "!force-leave v\n!cluster_members --json\n!echo forced\n")
	ctl.waitOutput(t, "forced", 30*time.Second)
	if out := ctl.stdout.String(); !strings.Contains(out, "ctl,w1,w2 (3)") || !strings.Contains(out, "ok: v left") {
		t.Fatalf("ctl, w1 and w2 did not all confirm the force-leave:\n%s\n%s", out, ctl.stderr.String())
	}
	tables := memberTables(t, ctl.stdout.String())
	for _, m := range tables[len(tables)-1] {
		if m.Alias == "v" && m.State != "left" {
			t.Fatalf("v is %s after force-leave", m.State)
		}
	}
	time.Sleep(time.Second) // a dial already under way may still land
	before := dials.n.Load()
	time.Sleep(6 * time.Second) // three times the longest re-dial backoff
	if after := dials.n.Load(); after != before {
		t.Fatalf("%d connection attempts at v's address in the 6 s after force-leave, want 0", after-before)
	}
}
