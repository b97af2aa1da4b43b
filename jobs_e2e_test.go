package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

// benchJSON is the one line !bench --json prints.
type benchJSON struct {
	N          int            `json:"n"`
	Succeeded  int            `json:"succeeded"`
	Failed     int            `json:"failed"`
	Retried    int            `json:"retried"`
	Seconds    float64        `json:"seconds"`
	JobsPerSec float64        `json:"jobs_per_sec"`
	P99Ms      float64        `json:"p99_ms"`
	ByWorker   map[string]int `json:"by_worker"`
}

func jsonLine[T any](t *testing.T, out, prefix string) T {
	t.Helper()
	var v T
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, prefix) {
			if err := json.Unmarshal([]byte(line), &v); err != nil {
				t.Fatalf("bad JSON %q: %v", line, err)
			}
			return v
		}
	}
	t.Fatalf("no line starting %q in:\n%s", prefix, out)
	return v
}

func TestJobsScriptOnDemoCluster(t *testing.T) {
	p := start(t, script(t, "jobs.cmds", nil), "--demo", "-P", "0")
	if code := p.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, p.stdout.String(), p.stderr.String())
	}
	out := p.stdout.String()
	for _, want := range []string{
		"hello jobs\n",
		`"ok":true,"worker":"worker`,
		`"result":"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"`,
		`"result":"25"`,
		"chunk 1/3\nchunk 2/3\nchunk 3/3\n3 chunks\n",
		"slept 10ms\n",
		`"slots":`,
		"jobs-done",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	b := jsonLine[benchJSON](t, out, `{"kind":"echo"`)
	if b.N != 500 || b.Succeeded != 500 || b.Failed != 0 || b.ByWorker["worker1"] != 250 || b.ByWorker["worker2"] != 250 {
		t.Errorf("bench: %+v, want 500 ok split evenly by round-robin", b)
	}
	// A dispatch nobody can run fails the script, naming the filter.
	f := start(t, "!wait members 3 20s\n!dispatch --tag role=gpu echo x\n!echo not reached\n", "--demo", "-P", "0")
	if code := f.wait(t, 60*time.Second); code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, f.stderr.String())
	}
	if errText := f.stderr.String(); !strings.Contains(errText, "error: ") || !strings.Contains(errText, "role=gpu") ||
		!strings.Contains(errText, "worker1 (role=worker)") || strings.Contains(f.stdout.String(), "not reached") {
		t.Fatalf("stderr %q stdout %q", errText, f.stdout.String())
	}
}

// The demo's workers log through the shell's logger: at its level, each
// line naming its node.
func TestDemoWorkersLogAtTheShellsLevel(t *testing.T) {
	for _, c := range []struct {
		level      string
		workerLogs bool
	}{{"info", true}, {"warn", false}} {
		p := start(t, "!wait members 3 20s\n", "--demo", "-P", "0", "--log-level", c.level)
		if code := p.wait(t, 60*time.Second); code != 0 {
			t.Fatalf("--log-level %s: exit %d\n%s", c.level, code, p.stderr.String())
		}
		errs := p.stderr.String()
		if got := strings.Contains(errs, "node=worker1") && strings.Contains(errs, "node=worker2"); got != c.workerLogs {
			t.Errorf("--log-level %s: workers logged %v, want %v:\n%s", c.level, got, c.workerLogs, errs)
		}
		if strings.Contains(errs, "level=info") != c.workerLogs {
			t.Errorf("--log-level %s: stderr:\n%s", c.level, errs)
		}
	}
}

// TestBenchSurvivesWorkerKill kills one of three worker processes with
// SIGKILL while a dispatcher process runs a bench: every job still ends ok.
func TestBenchSurvivesWorkerKill(t *testing.T) {
	seed := freePort(t)
	ports := []int{seed, freePort(t), freePort(t)}
	var workers []*proc
	for i, port := range ports {
		args := []string{"--serve", "--alias", fmt.Sprintf("w%d", i+1), "-P", fmt.Sprint(port), "--tags", "role=worker"}
		if i > 0 {
			args = append(args, "--join", fmt.Sprintf("127.0.0.1:%d", seed))
		}
		workers = append(workers, start(t, "", args...))
		if i == 0 {
			waitListening(t, seed)
		}
	}
	for _, port := range ports[1:] {
		waitListening(t, port)
	}
	const n = 4000
	d := start(t, fmt.Sprintf("!wait members 4 30s\n!sleep 2s\n!echo bench-start\n!bench --n %d --concurrency 64 --json sleep 2ms\n!echo bench-end\n", n),
		"--alias", "d", "-P", "0", "--join", fmt.Sprintf("127.0.0.1:%d", seed))
	d.waitOutput(t, "bench-start", 60*time.Second)
	time.Sleep(400 * time.Millisecond) // the bench is under way (it lasts well over a second)
	victim := workers[1]
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	if code := d.wait(t, 120*time.Second); code != 0 {
		t.Fatalf("dispatcher exit %d\nstdout:\n%s\nstderr:\n%s", code, d.stdout.String(), d.stderr.String())
	}
	b := jsonLine[benchJSON](t, d.stdout.String(), `{"kind":"sleep"`)
	t.Logf("bench: %+v (worker killed %v before the end)", b, time.Since(killedAt).Round(time.Millisecond))
	if b.Succeeded != n || b.Failed != 0 {
		t.Fatalf("bench %+v: want %d ok and none failed", b, n)
	}
	if b.ByWorker["w2"] == 0 || b.ByWorker["w2"] >= b.Succeeded/3 {
		t.Fatalf("the kill did not land mid-run: %+v", b)
	}
	if b.Retried == 0 {
		t.Errorf("no job was re-dispatched after the kill: %+v", b)
	}
}
