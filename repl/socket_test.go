package repl

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"meshell/node"
)

// attached serves a's shell on a socket and returns a client of it.
func attached(t *testing.T) (*node.AttachServer, *client, *bytes.Buffer, *bytes.Buffer) {
	return attachedHello(t, 0)
}

func attachedHello(t *testing.T, hello time.Duration) (*node.AttachServer, *client, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	sh, _ := clusterShellAndB(t)
	log := logrus.New()
	log.SetOutput(io.Discard)
	srv, err := listenSocket(sh.Node, filepath.Join(t.TempDir(), "s", "a.sock"), log, hello)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	c, out, errb := dial(t, srv.Path())
	return srv, c, out, errb
}

func dial(t *testing.T, path string) (*client, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	var out, errb bytes.Buffer
	// The client's reader writes a command's output before it hands over
	// the command's end: the buffers may be read once exec returns.
	c, err := dialAgent(path, AttachOptions{Out: &out, Err: &errb})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.s.Close() })
	return c, &out, &errb
}

func TestAttachedCommandsRunAsTheNode(t *testing.T) {
	_, c, out, errb := attached(t)
	if c.s.Alias() != "a" || !strings.HasPrefix(c.s.Prompt(), "a [2 alive]") {
		t.Fatalf("hello: alias %q, prompt %q", c.s.Alias(), c.s.Prompt())
	}
	if err := c.exec(context.Background(), "!wait b alive 5s"); err != nil {
		t.Fatal(err)
	}
	err := c.exec(context.Background(), "!wait nobody alive 10ms")
	var re node.AttachFailed
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "waiting for nobody") {
		t.Fatalf("a failing command: %v", err)
	}
	if out.String() != "b is alive\n" || errb.String() != "" {
		t.Fatalf("stdout %q, stderr %q: the error belongs to exec's result only", out.String(), errb.String())
	}
	if err := c.exec(context.Background(), "!quit"); err == nil || !strings.Contains(err.Error(), "attached to, a: use !shutdown a to stop it") {
		t.Fatalf("!quit: %v", err)
	}
	if err := c.exec(context.Background(), "!echo still here"); err != nil {
		t.Fatalf("the session after !quit: %v", err)
	}
}

func TestAttachedCtrlCCancelsTheCommandOnTheNode(t *testing.T) {
	_, c, _, _ := attached(t)
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() { res <- c.exec(ctx, "!sleep 1h") }()
	cancel()
	select {
	case err := <-res:
		if err == nil || !strings.Contains(err.Error(), "sleep cancelled") {
			t.Fatalf("the interrupted command: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Ctrl-C did not end the command on the node")
	}
	if err := c.exec(context.Background(), "!echo next"); err != nil {
		t.Fatalf("the session after Ctrl-C: %v", err)
	}
}

func TestAttachedCompletionUsesTheNodesView(t *testing.T) {
	_, c, _, _ := attached(t)
	line := []rune("!wait ")
	cands, n := c.Do(line, len(line))
	var got []string
	for _, r := range cands {
		got = append(got, string(r))
	}
	if n != 0 || !strings.Contains(strings.Join(got, ","), "b ") {
		t.Fatalf("completions of %q: %q (typing %d), want the live alias b", string(line), got, n)
	}
	line = []rune("!cluster_mem")
	cands, n = c.Do(line, len(line))
	if len(cands) != 1 || string(cands[0]) != "bers " || n != len("!cluster_mem") {
		t.Fatalf("completions of %q: %q, %d", string(line), cands, n)
	}
}

func TestSocketSessionsAreCapped(t *testing.T) {
	srv, _, _, _ := attached(t)
	for i := 1; i < node.MaxAttachSessions; i++ {
		dial(t, srv.Path())
	}
	_, err := dialAgent(srv.Path(), AttachOptions{Out: io.Discard, Err: io.Discard})
	if err == nil || !strings.Contains(err.Error(), "busy: 16 sessions") {
		t.Fatalf("session %d: %v", node.MaxAttachSessions+1, err)
	}
}

func TestSocketDropsAConnectionThatSaysNothing(t *testing.T) {
	srv, _, _, _ := attachedHello(t, 100*time.Millisecond)
	nc, err := net.Dial("unix", srv.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadAll(nc); err != nil {
		t.Fatalf("a silent connection was not closed after the hello timeout: %v", err)
	}
}
