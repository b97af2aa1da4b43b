package node

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"meshell/node/metrics"
)

// scrape GETs /metrics and parses it with the official text parser.
func scrape(t testing.TB, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("scrape: %d %v", resp.StatusCode, err)
	}
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("the official parser refuses /metrics: %v\n%s", err, body)
	}
	return fams
}

// value is the sample of family name whose labels include want (k, v, …).
func value(t testing.TB, fams map[string]*dto.MetricFamily, name string, want ...string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("no family %s", name)
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(want); i += 2 {
			found := false
			for _, l := range m.Label {
				found = found || l.GetName() == want[i] && l.GetValue() == want[i+1]
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("no sample of %s with %v", name, want)
	return 0
}

func TestMetricsCountWhatTheNodeDid(t *testing.T) {
	d, ws := jobCluster(t, "w1", "w2")
	addr, err := d.ServeMetrics("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const jobs = 20
	for range jobs {
		if _, err := d.Dispatch(ctxFor(t, 10*time.Second), DispatchRequest{Kind: "echo", Args: []string{"x"}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.Dispatch(ctxFor(t, 10*time.Second), DispatchRequest{Kind: "no-such-kind"}); err == nil {
		t.Fatal("a job of an unknown kind succeeded")
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	d.Dispatch(cancelled, DispatchRequest{Kind: "sleep", Args: []string{"1s"}})
	// Control requests are counted where they are handled.
	d.Control(ctxFor(t, 10*time.Second), []string{"w1", "w2"}, ControlRequest{Op: OpPing}, 5*time.Second)
	ws[1].Control(ctxFor(t, 10*time.Second), []string{"d"}, ControlRequest{Op: OpPing}, 5*time.Second)
	ws[0].Control(ctxFor(t, 10*time.Second), []string{"d"}, ControlRequest{Op: OpScale, N: 1}, 5*time.Second)
	ws[0].Control(ctxFor(t, 10*time.Second), []string{"d"}, ControlRequest{Op: "no-such-op"}, 5*time.Second)

	fams := scrape(t, addr)
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"meshell_members", []string{"state", "alive"}, 3},
		{"meshell_members", []string{"state", "failed"}, 0},
		{"meshell_jobs_dispatched_total", nil, jobs + 2},
		{"meshell_jobs_total", []string{"result", "ok"}, jobs},
		{"meshell_jobs_total", []string{"result", "error"}, 1},
		{"meshell_jobs_total", []string{"result", "cancelled"}, 1},
		{"meshell_job_latency_seconds", nil, jobs + 2},
		{"meshell_jobs_in_flight", nil, 0},
		{"meshell_control_requests_total", []string{"op", "ping", "result", "ok"}, 1},
		{"meshell_control_requests_total", []string{"op", "scale", "result", "ok"}, 1},
		{"meshell_control_requests_total", []string{"op", "other", "result", "error"}, 1},
		{"meshell_connections", nil, 2},
		{"meshell_metrics_conns_refused_total", nil, 0},
		{"meshell_membership_frames_paced_total", nil, 0},
		{"meshell_tls_conns_refused_total", nil, 0},
	} {
		if got := value(t, fams, tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	if v := value(t, fams, "meshell_frames_sent_total", "family", "jobs"); v < jobs {
		t.Errorf("%v job frames sent for %d jobs", v, jobs)
	}
	if value(t, fams, "go_goroutines") == 0 || value(t, fams, "process_resident_memory_bytes") == 0 {
		t.Error("goroutines or RSS is 0")
	}
	// Probes run on their own schedule: wait for one measured round trip.
	deadline := time.Now().Add(30 * time.Second)
	for value(t, scrape(t, addr), "meshell_probe_rtt_seconds") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no probe round trip counted within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	fams = scrape(t, addr)
	if value(t, fams, "meshell_probes_total") == 0 {
		t.Error("round trips measured, but no probe counted")
	}
	// A measured round trip means an ack came in: every family has traffic.
	for _, fam := range []string{"membership", "control", "jobs"} {
		for _, name := range []string{"meshell_frames_sent_total", "meshell_frames_received_total", "meshell_sent_bytes_total", "meshell_received_bytes_total"} {
			if v := value(t, fams, name, "family", fam); v == 0 {
				t.Errorf("%s{family=%q} is 0", name, fam)
			}
		}
	}
}

// BenchmarkScrape is the cost of rendering /metrics of a node with two
// peers (without HTTP).
func BenchmarkScrape(b *testing.B) {
	d, _ := jobCluster(b, "w1", "w2")
	for range 100 {
		d.Dispatch(context.Background(), DispatchRequest{Kind: "echo", Args: []string{"x"}})
	}
	var w metrics.Writer
	b.ReportAllocs()
	for b.Loop() {
		w.Reset()
		d.writeMetrics(&w)
	}
	b.ReportMetric(float64(len(w.Bytes())), "bytes/scrape")
}
