package repl

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"meshell/node"
)

// shutDownFrom shuts a down from b, as `!shutdown a` typed on b does.
func shutDownFrom(t *testing.T, b *node.Node, alias string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	replies, err := b.Control(ctx, []string{alias}, node.ControlRequest{Op: node.OpShutdown}, 10*time.Second)
	if err != nil || len(replies) != 1 || !replies[0].OK {
		t.Fatalf("!shutdown %s from %s: %v %+v", alias, b.Alias(), err, replies)
	}
}

// ended waits for res, the end of a command that should end at once; it
// fails the test after a generous bound.
func ended[T any](t *testing.T, what string, res <-chan T) (T, bool) {
	t.Helper()
	select {
	case v := <-res:
		return v, true
	case <-time.After(20 * time.Second):
		t.Errorf("%s still runs 20s after this node was shut down", what)
		var zero T
		return zero, false
	}
}

// A !shutdown of this node from another cancels the command that runs,
// whatever it waits for; the shell ends as after !quit, without an error.
func TestARemoteShutdownEndsTheRunningCommand(t *testing.T) {
	t.Parallel()
	for _, line := range []string{
		"!watch !workers 1s",
		"!top",
		"!wait members 9 1h",
		"!wait b failed 1h",
		"!sleep 1h",
		"!bench --n 100000 sleep 1ms",
		"!run b -- sleep 100",
		"!dispatch sleep 1h",
	} {
		t.Run(line, func(t *testing.T) {
			t.Parallel()
			sh, b := clusterShellAndB(t)
			sh.interactive = true // !watch and !top run until cancelled
			res := make(chan error, 1)
			go func() { res <- sh.Exec(context.Background(), line) }()
			shutDownFrom(t, b, "a")
			if err, ok := ended(t, line, res); ok && err != nil && !errors.Is(err, errQuit) {
				t.Errorf("%s ended with %v, want nothing or the quiet end of a shutdown", line, err)
			}
		})
	}
}

// In script mode the script ends at once, with status 0 when nothing
// failed before.
func TestARemoteShutdownEndsAScriptMidCommand(t *testing.T) {
	t.Parallel()
	sh, b := clusterShellAndB(t)
	var out, errb bytes.Buffer
	sh.setWriters(&out, &errb)
	in, w := io.Pipe() // the script's input never ends by itself
	t.Cleanup(func() { w.Close() })
	started := make(chan struct{})
	go func() {
		io.WriteString(w, "!echo started\n")
		close(started)
		io.WriteString(w, "!wait members 9 1h\n!echo not-run\n")
	}()
	res := make(chan int, 1)
	go func() { res <- sh.RunScript(context.Background(), in, false) }()
	<-started
	shutDownFrom(t, b, "a")
	if code, ok := ended(t, "the script", res); ok && code != 0 {
		t.Errorf("the script exited %d, want 0; stderr:\n%s", code, errb.String())
	}
	if strings.Contains(out.String(), "not-run") || errb.Len() > 0 {
		t.Errorf("stdout:\n%s\nstderr:\n%s", out.String(), errb.String())
	}
}

// An attached session's command ends at once too: its end comes before
// the session's (the agent gives a command that goes on a second), and
// the session ends with the word of the shutdown, status 0.
func TestARemoteShutdownEndsAnAttachedCommand(t *testing.T) {
	t.Parallel()
	sh, b := clusterShellAndB(t)
	log := logrus.New()
	log.SetOutput(io.Discard)
	srv, err := listenSocket(sh.Node, filepath.Join(t.TempDir(), "s", "a.sock"), log, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	c, _, _ := dial(t, srv.Path())
	res := make(chan error, 1)
	go func() { res <- c.exec(context.Background(), "!wait members 9 1h") }()
	shutDownFrom(t, b, "a")
	if err, ok := ended(t, "the attached !wait", res); ok && err != nil {
		t.Errorf("the attached !wait ended with %v, want its own quiet end before the session's", err)
	}
	if _, ok := ended(t, "the session", c.s.Done()); ok {
		if err := c.ended(c.s.Err()); !errors.Is(err, errQuit) {
			t.Errorf("the session ended with %v, want the shutdown's end", err)
		}
	}
}
