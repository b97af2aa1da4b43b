package repl

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"unicode/utf8"
)

// A command's error crosses the socket raw and is escaped once, by the
// client that prints it: an ESC shows as \x1b, not as \\x1b.
func TestAttachedErrorIsEscapedOnce(t *testing.T) {
	_, c, _, errb := attached(t)
	err := c.exec(context.Background(), "!nosuch\x1b[31m")
	if err == nil || !strings.Contains(err.Error(), "!nosuch\x1b[31m") {
		t.Fatalf("the error the client got: %q, want the raw text", err)
	}
	c.errorLine(err)
	got := errb.String()
	if !strings.HasPrefix(got, `error: unknown command !nosuch\x1b[31m:`) || strings.Contains(got, "\x1b") || strings.Contains(got, `\\`) {
		t.Fatalf("printed %q, want the ESC escaped exactly once", got)
	}
}

func TestCutUTF8KeepsWholeRunes(t *testing.T) {
	for _, c := range []struct {
		s    string
		max  int
		want string
	}{{"abc", 5, "abc"}, {"abc", 2, "ab"}, {"aé", 2, "a"}, {"aé", 3, "aé"}, {"a😀", 4, "a"}, {"\xff\xff\xff", 2, "\xff\xff"}} {
		got := cutUTF8(c.s, c.max)
		if got != c.want || len(got) > c.max || utf8.ValidString(c.s) && !utf8.ValidString(got) {
			t.Errorf("cutUTF8(%q, %d) = %q, want %q", c.s, c.max, got, c.want)
		}
	}
}

// A session that ends under an interactive command ends the shell, its
// end said once: the loop does not go on to say it again at the prompt.
func TestAttachedSessionEndUnderACommandIsSaidOnce(t *testing.T) {
	srv, c, _, errb := attached(t)
	res := make(chan error, 1)
	go func() { res <- c.exec(context.Background(), "!sleep 1h") }()
	srv.Close() // the node's socket goes, and its sessions with it
	err := <-res
	status, over := c.afterCommand(err)
	if !over || status != 1 {
		t.Fatalf("after %v: status %d, over %v, want the shell over with status 1", err, status, over)
	}
	if n := strings.Count(errb.String(), "error: "); n != 1 || !strings.Contains(errb.String(), "the session ended") {
		t.Fatalf("stderr %q, want the session's end once", errb.String())
	}
	if status, over := c.afterCommand(c.exec(context.Background(), "!echo hi")); !over || status != 1 {
		t.Fatalf("a command after the end: status %d, over %v", status, over)
	}
}

// attachTo runs Attach on the socket at path with stdin and returns its
// status, stdout and stderr.
func attachTo(t *testing.T, path, stdin string, o AttachOptions) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	o.In, o.Out, o.Err = strings.NewReader(stdin), &out, &errb
	status := Attach(path, o)
	return status, out.String(), errb.String()
}

// !quit in an attached script ends it with status 0, as in a local
// script; the agent keeps running.
func TestAttachedScriptEndsAtQuit(t *testing.T) {
	srv, c, _, _ := attached(t)
	status, out, errOut := attachTo(t, srv.Path(), "!echo one\n!quit\n!echo two\n", AttachOptions{})
	if status != 0 || out != "one\n" || errOut != "" {
		t.Fatalf("exit %d\nstdout %q\nstderr %q, want 0 and the lines before !quit", status, out, errOut)
	}
	status, out, _ = attachTo(t, srv.Path(), "!nosuch\n!exit\n!echo two\n", AttachOptions{KeepGoing: true})
	if status != 1 || out != "" {
		t.Fatalf("--keep-going, a failure then !exit: exit %d, stdout %q, want 1 and nothing run after !exit", status, out)
	}
	status, _, errOut = attachTo(t, srv.Path(), "!quit now\n", AttachOptions{})
	if status != 1 || !strings.Contains(errOut, "usage: !quit") {
		t.Fatalf("!quit with an argument: exit %d, stderr %q, want its usage error", status, errOut)
	}
	status, out, errOut = attachTo(t, srv.Path(), "", AttachOptions{Commands: []string{"!quit"}})
	if status != 0 || out != "" || errOut != "" {
		t.Fatalf("-c !quit: exit %d\nstdout %q\nstderr %q, want 0", status, out, errOut)
	}
	if err := c.exec(context.Background(), "!echo still here"); err != nil {
		t.Fatalf("the agent after the scripts' !quit: %v", err)
	}
}

// Several -c run in order, as a script's lines: the first failure stops
// them unless --keep-going, and the error says which -c it is of.
func TestAttachedCommandsRunInOrder(t *testing.T) {
	srv, _, _, _ := attached(t)
	status, out, errOut := attachTo(t, srv.Path(), "", AttachOptions{Commands: []string{"!echo one", "!echo two"}})
	if status != 0 || out != "one\ntwo\n" || errOut != "" {
		t.Fatalf("two commands: exit %d\nstdout %q\nstderr %q", status, out, errOut)
	}
	cmds := []string{"!echo one", "!wait nobody alive 10ms", "!echo three"}
	status, out, errOut = attachTo(t, srv.Path(), "", AttachOptions{Commands: cmds})
	if status != 1 || out != "one\n" || !strings.HasPrefix(errOut, "error: -c 2: !wait: timed out") || strings.Count(errOut, "\n") != 1 {
		t.Fatalf("a failure stops them: exit %d\nstdout %q\nstderr %q", status, out, errOut)
	}
	status, out, _ = attachTo(t, srv.Path(), "", AttachOptions{Commands: cmds, KeepGoing: true})
	if status != 1 || out != "one\nthree\n" {
		t.Fatalf("--keep-going: exit %d, stdout %q", status, out)
	}
	// One -c is named too, as a one-line script's line is: the error's
	// shape does not depend on the count of -c.
	status, _, errOut = attachTo(t, srv.Path(), "", AttachOptions{Commands: []string{"!wait nobody alive 10ms"}})
	if status != 1 || !strings.HasPrefix(errOut, "error: -c 1: !wait: timed out") {
		t.Fatalf("one command: exit %d, stderr %q, want it named -c 1", status, errOut)
	}
}

// A target that is neither a path nor an alias is named escaped once.
func TestAttachNamesABadTargetEscapedOnce(t *testing.T) {
	status, out, errOut := attachTo(t, "a\x1bb", "", AttachOptions{Commands: []string{"!echo hi"}})
	want := `error: "a\x1bb" is neither a socket's path nor an alias: an alias is 1 to 64 letters, digits, '.', '_' or '-'` + "\n"
	if status != 1 || out != "" || errOut != want {
		t.Fatalf("exit %d\nstdout %q\nstderr %q, want 1 and %q", status, out, errOut, want)
	}
}
