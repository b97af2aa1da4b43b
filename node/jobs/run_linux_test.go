package jobs

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"meshell/protocol"
)

// liveGroup lists the processes of group pgid that are not zombies.
func liveGroup(pgid int) []string {
	names, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range names {
		if state, g, ok := procStat(e.Name()); ok && g == pgid && state != 'Z' && state != 'X' {
			out = append(out, e.Name())
		}
	}
	return out
}

// waitGroupGone waits (up to limit) until no process of group pgid runs.
func waitGroupGone(t *testing.T, pgid int, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		left := liveGroup(pgid)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes %v of group %d still run after %v", left, pgid, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lines collects what execute streams, and hands out the first stdout line
// (a command's $$, its process group) as soon as it comes.
type lines struct {
	mu     sync.Mutex
	out    strings.Builder
	err    strings.Builder
	first  chan string
	chunks int
}

func newLines() *lines { return &lines{first: make(chan string, 1)} }

func (l *lines) emit(stream uint8, data string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.chunks++
	if stream == 2 {
		l.err.WriteString(data)
		return nil
	}
	if l.out.Len() == 0 {
		first, _, _ := strings.Cut(data, "\n")
		l.first <- first
	}
	l.out.WriteString(data)
	return nil
}

func pgidOf(t *testing.T, l *lines) int {
	t.Helper()
	select {
	case s := <-l.first:
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("first line %q is not a pid", s)
		}
		return n
	case <-time.After(20 * time.Second):
		t.Fatal("the command printed nothing")
	}
	return 0
}

func TestExecuteCapturesExitAndStreams(t *testing.T) {
	l := newLines()
	r := execute(context.Background(), []string{"sh", "-c", "echo one; echo two; echo oops >&2; printf tail; exit 3"}, nil, 1<<20, time.Second, l.emit)
	if r.err != nil || r.exit != 3 || r.stdout != "one\ntwo\ntail" || r.stderr != "oops\n" {
		t.Fatalf("got %+v", r)
	}
	if l.out.String() != r.stdout || l.err.String() != r.stderr {
		t.Fatalf("streamed %q and %q, captured %q and %q", l.out.String(), l.err.String(), r.stdout, r.stderr)
	}
	// Killed by a signal: 128+N, as a shell says.
	if r := execute(context.Background(), []string{"sh", "-c", "kill -9 $$"}, nil, 100, time.Second, nil); r.exit != 137 {
		t.Fatalf("killed by SIGKILL: %+v, want exit 137", r)
	}
	if r := execute(context.Background(), []string{"/no/such/program"}, nil, 100, time.Second, nil); r.exit != 127 || r.err == nil {
		t.Fatalf("a program that does not exist: %+v, want exit 127 and an error", r)
	}
	// No stdin: /dev/null, read at once to its end.
	if r := execute(context.Background(), []string{"cat"}, nil, 100, time.Second, nil); r.exit != 0 || r.stdout != "" {
		t.Fatalf("cat of no stdin: %+v", r)
	}
	if r := execute(context.Background(), []string{"sh", "-c", "echo $FOO"}, []string{"FOO=bar"}, 100, time.Second, nil); r.stdout != "bar\n" {
		t.Fatalf("environment: %+v", r)
	}
}

func TestExecuteTruncatesWithMarker(t *testing.T) {
	l := newLines()
	r := execute(context.Background(), []string{"sh", "-c", "yes 123456789 | head -n 100000; echo done >&2"}, nil, 1000, time.Second, l.emit)
	marker := "[meshell: stdout truncated at 1000 bytes]\n"
	if r.exit != 0 || len(r.stdout) != 1000+len(marker) || !strings.HasSuffix(r.stdout, "\n"+marker[:len(marker)-1]+"\n") && !strings.HasSuffix(r.stdout, marker) {
		t.Fatalf("stdout of %d bytes ends %q", len(r.stdout), r.stdout[max(0, len(r.stdout)-80):])
	}
	if !strings.HasPrefix(r.stdout, "123456789\n123456789\n") || r.stderr != "done\n" {
		t.Fatalf("got %q / %q", r.stdout[:40], r.stderr)
	}
	if l.out.String() != r.stdout {
		t.Fatalf("streamed %d bytes, captured %d", l.out.Len(), len(r.stdout))
	}
	// A cut inside a line puts the marker on a line of its own.
	r = execute(context.Background(), []string{"sh", "-c", "printf abcdefghij"}, nil, 4, time.Second, nil)
	if r.stdout != "abcd\n[meshell: stdout truncated at 4 bytes]\n" {
		t.Fatalf("got %q", r.stdout)
	}
}

func TestExecuteCancelEndsTheWholeGroup(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	l := newLines()
	done := make(chan cmdResult, 1)
	go func() {
		done <- execute(ctx, []string{"sh", "-c", "echo $$; sleep 30 & sleep 30 & wait"}, nil, 1000, 5*time.Second, l.emit)
	}()
	pgid := pgidOf(t, l)
	start := time.Now()
	cancel()
	var r cmdResult
	select {
	case r = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("execute did not return after its context ended")
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("took %v: SIGTERM should have ended it well before the 5s grace", took)
	}
	if r.exit != 128+15 {
		t.Errorf("exit %d, want 143 (SIGTERM)", r.exit)
	}
	waitGroupGone(t, pgid, 5*time.Second)
}

func TestExecuteKillsWhatIgnoresSIGTERM(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	l := newLines()
	done := make(chan cmdResult, 1)
	const grace = 300 * time.Millisecond
	go func() {
		done <- execute(ctx, []string{"sh", "-c", `trap "" TERM; echo $$; sleep 30`}, nil, 1000, grace, l.emit)
	}()
	pgid := pgidOf(t, l)
	start := time.Now()
	cancel()
	r := <-done
	if took := time.Since(start); took < grace {
		t.Errorf("returned after %v, before the grace of %v", took, grace)
	}
	if r.exit != 128+9 {
		t.Errorf("exit %d, want 137 (SIGKILL)", r.exit)
	}
	waitGroupGone(t, pgid, 5*time.Second)
}

func TestExecuteEndsWhatTheCommandLeftRunning(t *testing.T) {
	for name, script := range map[string]string{
		"holding the pipe":  "echo $$; sleep 30 &",
		"output redirected": "echo $$; sleep 30 >/dev/null 2>&1 &",
	} {
		t.Run(name, func(t *testing.T) {
			l := newLines()
			start := time.Now()
			r := execute(context.Background(), []string{"sh", "-c", script}, nil, 1000, 5*time.Second, l.emit)
			if took := time.Since(start); took > 4*time.Second || r.exit != 0 {
				t.Errorf("exit %d after %v", r.exit, took)
			}
			waitGroupGone(t, pgidOf(t, l), 5*time.Second)
		})
	}
}

// A command that starts something with setsid, as the README advises for
// what must outlive it, and exits: the process left holds the output pipe
// from outside the group, which nothing here can end. The command's exit
// is its answer, soon, not a wait for the pipe until the job's timeout; the
// process goes on.
func TestExecuteAnswersWhenWhatHoldsThePipeLeftTheGroup(t *testing.T) {
	if _, err := os.Stat("/usr/bin/setsid"); err != nil {
		t.Skip("no setsid")
	}
	l := newLines()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	// The leader waits until the new session's process wrote its pid, then
	// prints it and exits.
	f := t.TempDir() + "/pid"
	script := `setsid sh -c 'echo $$ >` + f + `.new; mv ` + f + `.new ` + f + `; exec sleep 30' & while [ ! -s ` + f + ` ]; do :; done; cat ` + f + `; echo started`
	r := execute(ctx, []string{"sh", "-c", script}, nil, 1000, time.Second, l.emit)
	took := time.Since(start)
	pid := pgidOf(t, l)
	defer syscall.Kill(pid, syscall.SIGKILL)
	if took > 5*time.Second || r.exit != 0 || !strings.Contains(r.stdout, "started") {
		t.Errorf("exit %d, stdout %q after %v; want exit 0 with its output at once", r.exit, r.stdout, took)
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Errorf("the process started with setsid was ended: %v", err)
	}
}

func TestShutdownEndsRunningCommands(t *testing.T) {
	c := newCluster()
	d := c.add(t, "d", nil, Limits{}, RunConfig{})
	w := c.add(t, "w", nil, Limits{}, RunConfig{Allow: true})
	c.publish()
	pgid := make(chan string, 1)
	go d.Run(context.Background(), RunRequest{Targets: []string{"w"}, Command: []string{"sh", "-c", "echo $$; sleep 30 & sleep 30"},
		OnOutput: func(alias string, stderr bool, data string) { pgid <- strings.TrimSpace(data) }})
	var g int
	select {
	case s := <-pgid:
		g, _ = strconv.Atoi(s)
	case <-time.After(20 * time.Second):
		t.Fatal("the command never started")
	}
	w.Close() // returns once its commands are gone
	if left := liveGroup(g); len(left) > 0 {
		t.Fatalf("processes %v outlived the node's shutdown", left)
	}
}

// !run on a worker that streams past the output limit: that node's reply
// is one error (not silence), and its command is killed there.
func TestRunPastTheOutputLimitIsAnError(t *testing.T) {
	c := newCluster()
	d := c.add(t, "d", nil, Limits{}, RunConfig{})
	c.add(t, "w", nil, Limits{}, RunConfig{Allow: true})
	c.publish()
	started := make(chan string, 1)
	done := make(chan []RunReply, 1)
	go func() {
		replies, _ := d.Run(context.Background(), RunRequest{Targets: []string{"w"}, Command: []string{"sh", "-c", "echo $$; exec sleep 30"},
			OnOutput: func(alias string, stderr bool, data string) {
				select {
				case started <- strings.TrimSpace(data):
				default:
				}
			}})
		done <- replies
	}()
	g, _ := strconv.Atoi(within(t, "the command's first line", started))
	id := d.nextID.Load()
	for seq := uint32(2); seq < 10; seq++ { // as w, past the command's own cap
		d.Receive("w", &protocol.JobChunk{ID: id, Seq: seq, Data: megabyte(), Stream: protocol.StreamStdout})
	}
	r := within(t, "the run's replies", done)[0]
	if r.NoAnswer || r.Exited || !strings.Contains(r.Error, "stream overrun") || !strings.Contains(r.Error, "the output limit") {
		t.Fatalf("reply %+v; want one error for the output limit", r)
	}
	waitGroupGone(t, g, 5*time.Second)
}

// A node given its cluster key in MESHELL_KEY runs commands without it in
// their environment: `!run -- env` does not print it, and a command does
// not hold it.
func TestCommandsDoNotInheritTheClusterKey(t *testing.T) {
	t.Setenv("MESHELL_KEY", "k1:c2VjcmV0")
	c := newCluster()
	d := c.add(t, "d", nil, Limits{}, RunConfig{Allow: true})
	replies, err := d.Run(context.Background(), RunRequest{Targets: []string{"d"}, Command: []string{"env"}})
	if err != nil {
		t.Fatal(err)
	}
	r := replies[0]
	if !r.OK() || !strings.Contains(r.Stdout, "MESHELL_ALIAS=d\n") {
		t.Fatalf("env: %+v", r)
	}
	if strings.Contains(r.Stdout, "MESHELL_KEY") || strings.Contains(r.Stdout, "c2VjcmV0") {
		t.Errorf("the command's environment holds the cluster key:\n%s", r.Stdout)
	}
}
