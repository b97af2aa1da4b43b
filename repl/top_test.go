package repl

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"meshell/node"
)

func TestTopRowRatesComeFromTheLastFrame(t *testing.T) {
	e := node.Member{Alias: "w1", State: node.StateAlive, RTT: 2 * time.Millisecond}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	reply := func(cpu, done uint64) node.ControlReply {
		return node.ControlReply{Alias: "w1", OK: true, Status: &node.Status{CPUMs: cpu, JobsDone: done, RSSBytes: 3 << 20, InFlight: 4, Slots: 8}}
	}
	prev := map[string]topSample{}
	first := topRow(e, reply(1000, 100), t0, prev)
	if want := []string{"w1", "alive", "2.00ms", "-", "3.0MiB", "-", "4", "8"}; strings.Join(first, "|") != strings.Join(want, "|") {
		t.Fatalf("first frame: %q, want %q (no rate before a second sample)", first, want)
	}
	second := topRow(e, reply(1500, 130), t0.Add(2*time.Second), prev)
	if second[3] != "25.0%" || second[5] != "15.0" {
		t.Fatalf("after 500ms of CPU and 30 jobs in 2s: CPU %s, jobs/s %s; want 25.0%% and 15.0", second[3], second[5])
	}
	silent := topRow(e, node.ControlReply{Alias: "w1", NoAnswer: true, Error: "no answer within 2s"}, t0.Add(4*time.Second), prev)
	if strings.Join(silent[3:], "") != "-----" {
		t.Fatalf("a member that did not answer: %q", silent)
	}
}

func TestTopInAScriptPrintsCountFrames(t *testing.T) {
	sh, _ := clusterShellAndB(t)
	var out bytes.Buffer
	sh.setWriters(&out, &out)
	if err := sh.Exec(context.Background(), "!top --count 2 --interval 500ms"); err != nil {
		t.Fatal(err)
	}
	frames := strings.Split(out.String(), "every 500ms: !top")
	if len(frames) != 3 || strings.Contains(out.String(), "\x1b[2J") {
		t.Fatalf("want 2 frames without clearing:\n%s", out.String())
	}
	for _, f := range frames[1:] {
		if !strings.Contains(f, "ALIAS") || !strings.Contains(f, "a *") || !strings.Contains(f, "\nb ") {
			t.Fatalf("a frame without a row per member:\n%s", f)
		}
	}
	if !strings.Contains(frames[2], "%") {
		t.Errorf("the second frame has no CPU %%:\n%s", frames[2])
	}
	if err := sh.Exec(context.Background(), "!top --interval 10ms"); err == nil {
		t.Error("an interval under 500ms was taken")
	}
}
