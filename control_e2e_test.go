package main

// End-to-end control plane: real processes, real time, generous limits.

import (
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

// jsonLinesWith returns the JSON objects printed on stdout that have key.
func jsonLinesWith(out, key string) []map[string]any {
	var res []map[string]any
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(l, "{") {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			if _, ok := m[key]; ok {
				res = append(res, m)
			}
		}
	}
	return res
}

// workerCluster starts n --serve workers (w1 is the seed) and returns the
// seed address and the processes.
func workerCluster(t *testing.T, n int) (string, []*proc) {
	t.Helper()
	seedPort := freePort(t)
	seed := fmt.Sprintf("127.0.0.1:%d", seedPort)
	var ws []*proc
	for i := 1; i <= n; i++ {
		args := []string{"--serve", "--alias", fmt.Sprintf("w%d", i), "--tags", "role=worker"}
		if i == 1 {
			args = append(args, "-P", fmt.Sprint(seedPort))
		} else {
			args = append(args, "-P", "0", "--join", seed)
		}
		ws = append(ws, start(t, "", args...))
		if i == 1 {
			waitListening(t, seedPort)
		}
	}
	return seed, ws
}

func TestShutdownOfAWorkerDuringABenchLosesNoJob(t *testing.T) {
	seed, ws := workerCluster(t, 3)
	d := start(t, "", "--alias", "d", "-P", "0", "--join", seed)
	// Five members: the three workers, d and ctl. Four could be met by ctl
	// before w2, and the bench would start without w2.
	d.feed(t, "!wait members 5 30s\n!echo bench-start\n!bench --n 3000 --concurrency 32 --json sleep 20ms\n")
	ctl := start(t, "", "--alias", "ctl", "-P", "0", "--join", seed)
	ctl.feed(t, "!wait members 5 30s\n!echo ready\n")
	ctl.waitOutput(t, "ready", 30*time.Second)
	d.waitOutput(t, "bench-start", 30*time.Second)
	// The shutdown must land mid-bench: wait until w2 has run some jobs
	// (its connection to d may come up after the bench started).
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; ; i++ {
		ctl.feed(t, fmt.Sprintf("!status w2 --json\n!echo status-%d\n", i))
		ctl.waitOutput(t, fmt.Sprintf("status-%d\n", i), 30*time.Second)
		st := jsonLinesWith(ctl.stdout.String(), "jobs_done")
		if len(st) > 0 && st[len(st)-1]["jobs_done"].(float64) >= 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("w2 ran no jobs of the bench within 30 s:\n%s\n%s", ctl.stdout.String(), d.stderr.String())
		}
		ctl.feed(t, "!sleep 50ms\n")
	}
	ctl.feed(t, "!shutdown w2\n!echo shutdown-sent\n")
	ctl.waitOutput(t, "shutdown-sent", 30*time.Second)
	if !strings.Contains(ctl.stdout.String(), "ok: shutting down") {
		t.Fatalf("no acknowledgement from w2:\n%s\n%s", ctl.stdout.String(), ctl.stderr.String())
	}
	if code := ws[1].wait(t, 60*time.Second); code != 0 {
		t.Fatalf("w2 exited %d after !shutdown, want 0\n%s", code, ws[1].stderr.String())
	}
	deadline = time.Now().Add(90 * time.Second)
	for !strings.Contains(d.stdout.String(), `"jobs_per_sec"`) {
		if time.Now().After(deadline) {
			d.cmd.Process.Signal(syscall.SIGQUIT) // a goroutine dump in the log
			<-d.done
			t.Fatalf("the bench never finished: a job has no ending\nstdout:\n%s\nstderr:\n%s", d.stdout.String(), d.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	res := jsonLinesWith(d.stdout.String(), "jobs_per_sec")[0]
	if res["succeeded"] != float64(3000) || res["failed"] != float64(0) {
		t.Fatalf("jobs lost across the shutdown: %v\nd stderr:\n%s\nw1:\n%s", res, d.stderr.String(), ws[0].stderr.String())
	}
	// The shutdown came mid-bench: w2 did some of the jobs, not all, and
	// the ones it handed back or refused while draining went elsewhere.
	byWorker, _ := res["by_worker"].(map[string]any)
	if done, _ := byWorker["w2"].(float64); done <= 0 || done >= 3000 {
		t.Fatalf("w2 did %v of 3000 jobs: the shutdown did not land mid-bench: %v", byWorker["w2"], res)
	}
	if res["retried"].(float64) <= 0 {
		t.Fatalf("no job was retried across w2's shutdown: %v", res)
	}
	ctl.feed(t, "!wait w2 left 30s\n!echo w2-left\n")
	ctl.waitOutput(t, "w2-left", 40*time.Second)
}

func TestRestartShowsAHigherIncarnation(t *testing.T) {
	seed, _ := workerCluster(t, 2)
	ctl := start(t, "", "--alias", "ctl", "-P", "0", "--join", seed)
	ctl.feed(t, "!wait members 3 30s\n!cluster_members --json\n")
	ctl.waitOutput(t, `"alias":"w2"`, 30*time.Second)
	incOf := func() uint64 {
		tables := memberTables(t, ctl.stdout.String())
		for _, m := range tables[len(tables)-1] {
			if m.Alias == "w2" && m.State == "alive" {
				return m.Incarnation
			}
		}
		return 0
	}
	before := incOf()
	ctl.feed(t, "!restart w2\n")
	ctl.waitOutput(t, "ok: restarting", 30*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for incOf() <= before {
		if time.Now().After(deadline) {
			t.Fatalf("w2 never came back at an incarnation above %d:\n%s", before, ctl.stdout.String())
		}
		ctl.feed(t, "!sleep 200ms\n!cluster_members --json\n")
		time.Sleep(300 * time.Millisecond)
	}
}

func TestScaleIsVisibleFromAnotherNode(t *testing.T) {
	seed, _ := workerCluster(t, 2)
	ctl := start(t, "", "--alias", "ctl", "-P", "0", "--join", seed)
	other := start(t, "", "--alias", "other", "-P", "0", "--join", seed)
	ctl.feed(t, "!wait members 4 30s\n!scale w2 7\n!echo scaled\n")
	ctl.waitOutput(t, "scaled", 30*time.Second)
	if !strings.Contains(ctl.stdout.String(), "ok: 7 slots") {
		t.Fatalf("scale not acknowledged:\n%s\n%s", ctl.stdout.String(), ctl.stderr.String())
	}
	other.feed(t, "!wait members 4 30s\n!status w2 --json\n")
	other.waitOutput(t, `"slots"`, 30*time.Second)
	st := jsonLinesWith(other.stdout.String(), "slots")[0]
	if st["alias"] != "w2" || st["slots"] != float64(7) {
		t.Fatalf("status of w2 seen from another node: %v", st)
	}
	// And the gossiped slots reach the worker registry.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(other.stdout.String(), `"slots":7`) || !strings.Contains(other.stdout.String(), `"alias":"w2"`) {
		if time.Now().After(deadline) {
			t.Fatalf("!workers never showed w2 with 7 slots:\n%s", other.stdout.String())
		}
		other.feed(t, "!workers --json\n")
		time.Sleep(200 * time.Millisecond)
	}
	// A node started with --accept-control=false refuses, and says so.
	locked := start(t, "", "--alias", "locked", "-P", "0", "--join", seed, "--accept-control=false")
	locked.feed(t, "!echo up\n")
	locked.waitOutput(t, "up", 30*time.Second)
	ctl.feed(t, "!wait members 5 30s\n!scale locked 2\n")
	deadline = time.Now().Add(30 * time.Second)
	for !strings.Contains(ctl.stderr.String(), "did not confirm") {
		if time.Now().After(deadline) {
			t.Fatalf("scaling a locked node did not fail:\n%s\n%s", ctl.stdout.String(), ctl.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(ctl.stderr.String(), "accept-control=false") {
		t.Fatalf("the refusal does not give its reason:\n%s", ctl.stdout.String())
	}
}

func TestRemoteShutdownEndsAShellWaitingForInput(t *testing.T) {
	seed, _ := workerCluster(t, 1)
	idle := start(t, "", "--alias", "idle", "-P", "0", "--join", seed)
	defer func() {
		if t.Failed() {
			t.Logf("idle stderr:\n%s", idle.stderr.String())
		}
	}()
	idle.feed(t, "!echo waiting\n") // then it waits for a line that never comes
	idle.waitOutput(t, "waiting", 30*time.Second)
	ctl := start(t, "", "--alias", "ctl", "-P", "0", "--join", seed)
	ctl.feed(t, "!wait members 3 30s\n!shutdown idle\n!echo sent\n")
	ctl.waitOutput(t, "sent", 30*time.Second)
	if code := idle.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("the shut-down shell exited %d, want 0\n%s", code, idle.stderr.String())
	}
	// And a node that shuts itself down with --all goes last and exits 0.
	ctl.feed(t, "!shutdown --all\n")
	if code := ctl.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("!shutdown --all: the issuing shell exited %d\n%s\n%s", code, ctl.stdout.String(), ctl.stderr.String())
	}
}
