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
