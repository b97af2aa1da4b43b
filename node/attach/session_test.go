package attach

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// fakeShell answers a session's commands: "out X" and "err X" print X,
// "fail X" fails with X, "block" waits for its cancel.
type fakeShell struct {
	stdout, stderr io.Writer
	prompt         string
}

func (f *fakeShell) Exec(ctx context.Context, line string) error {
	verb, arg, _ := strings.Cut(line, " ")
	switch verb {
	case "out":
		fmt.Fprintln(f.stdout, arg)
	case "err":
		fmt.Fprintln(f.stderr, arg)
	case "fail":
		return errors.New(arg)
	case "block":
		<-ctx.Done()
		return errors.New("cancelled")
	}
	return nil
}

func (f *fakeShell) Complete(line string) (string, []string) {
	return "wo", []string{"world", "work"}
}
func (f *fakeShell) Prompt() string { return f.prompt }
func (f *fakeShell) Close()         {}

// sink is a client's Output.
type sink struct {
	mu       sync.Mutex
	out, err strings.Builder
	prompts  chan struct{}
}

func (s *sink) Write(stderr bool, data string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if stderr {
		s.err.WriteString(data)
	} else {
		s.out.WriteString(data)
	}
}

func (s *sink) PromptChanged() {
	select {
	case s.prompts <- struct{}{}:
	default:
	}
}

func (s *sink) text() (string, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String(), s.err.String()
}

// serve starts a server of fake shells; shutdown and changes are the host's.
func serve(t *testing.T) (srv *Server, shutdown chan struct{}, changes chan struct{}) {
	t.Helper()
	log := logrus.New()
	log.SetOutput(io.Discard)
	shutdown, changes = make(chan struct{}), make(chan struct{}, 1)
	srv, err := Serve(filepath.Join(t.TempDir(), "s", "n1.sock"), Config{Log: log,
		NewShell: func(h Hello, stdout, stderr io.Writer) Shell {
			return &fakeShell{stdout: stdout, stderr: stderr, prompt: fmt.Sprintf("n1 color=%v> ", h.Color)}
		}},
		Host{Alias: func() string { return "n1" }, Shutdown: shutdown,
			Changes: func(stop <-chan struct{}) <-chan struct{} { return changes }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv, shutdown, changes
}

func TestASessionRunsCommandsWithOutputAndStatusApart(t *testing.T) {
	srv, _, _ := serve(t)
	out := &sink{prompts: make(chan struct{}, 1)}
	c, err := Dial(srv.Path(), Hello{Color: true}, out)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Alias() != "n1" || c.Prompt() != "n1 color=true> " {
		t.Fatalf("hello: alias %q, prompt %q (the client's hello carries its colour)", c.Alias(), c.Prompt())
	}
	ctx := context.Background()
	if err := c.Exec(ctx, "out hello"); err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(ctx, "err oops"); err != nil {
		t.Fatal(err)
	}
	err = c.Exec(ctx, "fail no such thing")
	var f Failed
	if !errors.As(err, &f) || string(f) != "no such thing" {
		t.Fatalf("a failed command: %v (%T)", err, err)
	}
	if o, e := out.text(); o != "hello\n" || e != "oops\n" {
		t.Fatalf("stdout %q, stderr %q", o, e)
	}
	typing, items, ok := c.Complete("!say wo")
	if !ok || typing != "wo" || strings.Join(items, ",") != "world,work" {
		t.Fatalf("completion: %q %q %v", typing, items, ok)
	}
}

func TestASessionsInterruptAndEnd(t *testing.T) {
	srv, shutdown, changes := serve(t)
	out := &sink{prompts: make(chan struct{}, 1)}
	c, err := Dial(srv.Path(), Hello{}, out)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() { res <- c.Exec(ctx, "block") }()
	cancel()
	select {
	case err := <-res:
		if err == nil || err.Error() != "cancelled" {
			t.Fatalf("the interrupted command: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the interrupt did not reach the command")
	}

	waitPrompt := func(what string) {
		t.Helper()
		select {
		case <-out.prompts:
		case <-time.After(20 * time.Second):
			t.Fatalf("%s did not push the prompt", what)
		}
	}
	waitPrompt("the command's end")
	changes <- struct{}{}
	waitPrompt("a change")

	if c.Err() != nil {
		t.Fatalf("the session is over already: %v", c.Err())
	}
	close(shutdown)
	select {
	case <-c.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("a shutdown did not end the session")
	}
	var end *Ended
	if !errors.As(c.Err(), &end) || !end.Shutdown || !strings.Contains(end.Reason, "!shutdown") {
		t.Fatalf("the session's end: %v", c.Err())
	}
	if err := c.Exec(context.Background(), "out late"); err == nil {
		t.Fatal("a command after the end succeeded")
	}
}

// A socket whose listener never answers the hello (a node stopped with
// SIGSTOP, or no meshell) fails the dial after dialHelloTimeout, saying
// so, instead of holding the shell for Idle.
func TestDialGivesUpOnASilentSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "silent.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, silent
		}
	}()
	old := dialHelloTimeout
	dialHelloTimeout = 200 * time.Millisecond
	t.Cleanup(func() { dialHelloTimeout = old })
	done := make(chan error, 1)
	go func() {
		_, err := Dial(path, Hello{}, nil)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "no answer within 200ms: its node is stopped or hung") {
			t.Fatalf("dial of a silent socket: %v", err)
		}
	case <-time.After(Idle / 2):
		t.Fatal("dial of a silent socket still waits")
	}
}
