package metrics

import (
	"bufio"
	"bytes"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// parse reads text with the official Prometheus text parser.
func parse(t *testing.T, text []byte) map[string]*dto.MetricFamily {
	t.Helper()
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		t.Fatalf("the official parser refuses the output: %v\n%s", err, text)
	}
	return fams
}

func TestWriterOutputParses(t *testing.T) {
	h := NewHistogram(time.Millisecond, 10*time.Millisecond)
	for _, d := range []time.Duration{-time.Second, 500 * time.Microsecond, time.Millisecond, 2 * time.Millisecond, time.Hour} {
		h.Observe(d)
	}
	var w Writer
	w.Metric("x_total", Counter, "help with \\ and\na newline", L(3, "state", `we"ird\`+"\n"), L(1<<60, "state", "big"))
	w.Metric("y", Gauge, "a gauge", L(0.25))
	w.Histogram("lat_seconds", "latency", h.Snapshot())
	fams := parse(t, w.Bytes())

	x := fams["x_total"]
	if x.GetType() != dto.MetricType_COUNTER || x.GetHelp() != "help with \\ and\na newline" {
		t.Fatalf("x_total: %v", x)
	}
	if m := x.Metric[0]; m.Label[0].GetValue() != `we"ird\`+"\n" || m.Counter.GetValue() != 3 {
		t.Fatalf("label value or count not read back: %v", m)
	}
	if v := x.Metric[1].Counter.GetValue(); v != 1<<60 {
		t.Fatalf("big counter read back as %v", v)
	}
	if g := fams["y"].Metric[0].Gauge.GetValue(); g != 0.25 {
		t.Fatalf("gauge %v", g)
	}
	hist := fams["lat_seconds"].Metric[0].Histogram
	if hist.GetSampleCount() != 5 {
		t.Fatalf("count %d, want 5", hist.GetSampleCount())
	}
	// Cumulative: ≤1ms holds -1s (as 0), 0.5ms and 1ms (bounds are inclusive).
	want := map[float64]uint64{0.001: 3, 0.01: 4, math.Inf(1): 5}
	for _, b := range hist.Bucket {
		if want[b.GetUpperBound()] != b.GetCumulativeCount() {
			t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want[b.GetUpperBound()])
		}
	}
	if s := hist.GetSampleSum(); s < 3600 || s > 3600.01 {
		t.Fatalf("sum %v s", s)
	}
}

func TestHandler(t *testing.T) {
	release := make(chan struct{})
	var entered sync.WaitGroup
	h := Handler(func(w *Writer) {
		if release != nil {
			entered.Done()
			<-release
		}
		w.Metric("up", Gauge, "1 when answering", L(1))
	})
	do := func(method, path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
		return rec
	}

	// Renders beyond MaxScrapes at once are answered 503 without waiting.
	entered.Add(MaxScrapes)
	var wg sync.WaitGroup
	for range MaxScrapes {
		wg.Add(1)
		go func() { defer wg.Done(); do("GET", "/metrics") }()
	}
	entered.Wait()
	if rec := do("GET", "/metrics"); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("scrape %d at once: %d, want 503", MaxScrapes+1, rec.Code)
	}
	close(release)
	wg.Wait()
	release = nil

	for _, tc := range []struct {
		method, path string
		code         int
	}{
		{"GET", "/metrics", 200},
		{"HEAD", "/metrics", 200},
		{"POST", "/metrics", 405},
		{"PUT", "/metrics", 405},
		{"GET", "/", 404},
		{"GET", "/metrics/x", 404},
		{"GET", "/debug/pprof/", 404},
	} {
		rec := do(tc.method, tc.path)
		if rec.Code != tc.code {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, rec.Code, tc.code)
		}
		if tc.code == 200 {
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
				t.Errorf("%s %s: Content-Type %q", tc.method, tc.path, ct)
			}
			if body := rec.Body.String(); (tc.method == "HEAD") != (body == "") {
				t.Errorf("%s %s: body %q", tc.method, tc.path, body)
			}
		}
	}
}

func TestServe(t *testing.T) {
	s, err := Serve("127.0.0.1:0", func(w *Writer) { w.Metric("up", Gauge, "1 when answering", L(1)) })
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + s.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if fams := parse(t, body); fams["up"].Metric[0].Gauge.GetValue() != 1 {
		t.Fatalf("up: %v", fams["up"])
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get("http://" + s.Addr() + "/metrics"); err == nil {
		t.Fatal("the server still answers after Close")
	}
}

// A histogram observation takes no lock and allocates nothing.
func BenchmarkHistogramObserve(b *testing.B) {
	h := NewHistogram(JobBuckets()...)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		d := time.Duration(0)
		for pb.Next() {
			h.Observe(d)
			d += 37 * time.Microsecond
		}
	})
}

func TestObserveDoesNotAllocate(t *testing.T) {
	h := NewHistogram(JobBuckets()...)
	if a := testing.AllocsPerRun(100, func() { h.Observe(3 * time.Millisecond) }); a != 0 {
		t.Fatalf("Observe allocates %v times", a)
	}
}

// scrapeOn sends GET /metrics on c and reads the answer.
func scrapeOn(c net.Conn) (*http.Response, error) {
	if _, err := io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: metrics\r\n\r\n"); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, err
}

// One address holding MaxConnsPerIP connections does not lock another
// client out, and a connection beyond them is closed at once.
func TestServeCapsConnsPerIP(t *testing.T) {
	s, err := Serve("127.0.0.1:0", func(w *Writer) { w.Metric("up", Gauge, "1 when answering", L(1)) })
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	deadline := time.Now().Add(20 * time.Second) // a bound on a failing test, not a wait

	// The greedy client holds its cap: each connection scraped once is
	// accepted and stays open, idle, until IdleTimeout.
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	dial := func(local string) (net.Conn, error) {
		d := net.Dialer{Deadline: deadline, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		c, err := d.Dial("tcp", s.Addr())
		if err == nil {
			c.SetDeadline(deadline)
		}
		return c, err
	}
	for i := range MaxConnsPerIP {
		c, err := dial("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		if resp, err := scrapeOn(c); err != nil || resp.StatusCode != 200 {
			t.Fatalf("connection %d of 127.0.0.1: %v, %v", i+1, resp, err)
		}
	}

	// Its next ones, as many as would fill MaxConns, are closed unanswered.
	for i := MaxConnsPerIP; i <= MaxConns; i++ {
		c, err := dial("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		resp, err := scrapeOn(c)
		c.Close()
		if err == nil {
			t.Fatalf("connection %d of 127.0.0.1 answered %s; want it closed", i+1, resp.Status)
		}
	}
	if n, want := s.RefusedConns(), uint64(MaxConns+1-MaxConnsPerIP); n != want {
		t.Fatalf("RefusedConns %d, want %d", n, want)
	}

	// Another address scrapes as usual, over a connection of its own.
	other := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}
	if ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: other.IP}); err != nil {
		t.Skipf("no second loopback address here (%v); Linux routes 127.0.0.0/8 to lo", err)
	} else {
		ln.Close()
	}
	client := &http.Client{Timeout: time.Until(deadline), Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: other}).DialContext}}
	defer client.CloseIdleConnections()
	r, err := client.Get("http://" + s.Addr() + "/metrics")
	if err != nil {
		t.Fatalf("127.0.0.2 locked out by 127.0.0.1's %d connections: %v", MaxConnsPerIP, err)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if fams := parse(t, body); r.StatusCode != 200 || fams["up"].Metric[0].Gauge.GetValue() != 1 {
		t.Fatalf("scrape from 127.0.0.2: %s\n%s", r.Status, body)
	}

	// A connection closed gives its address its slot back.
	held[0].Close()
	held = held[1:]
	for {
		c, err := dial("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		if resp, err := scrapeOn(c); err == nil && resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("127.0.0.1 has no slot back after closing a connection")
		}
		// Refused: the server has not yet seen the close; each try is a round trip.
	}
}
