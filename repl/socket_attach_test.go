package repl

import (
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
