package repl

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// wantPrivate fails t unless the file at path is mode 0600.
func wantPrivate(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS == "windows" {
		return // no group or other bits to check
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("%s has mode %04o, want 0600", path, perm)
	}
}

// writeLines writes n lines "!echo I" to a new file at path, mode perm.
func writeLines(t *testing.T, path string, n int, perm os.FileMode) {
	t.Helper()
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "!echo %d\n", i)
	}
	if err := os.WriteFile(path, []byte(b.String()), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil { // whatever the umask
		t.Fatal(err)
	}
}

// The history file is mode 0600 however it came to be: created by the
// shell, left 0644 by an older one, or cut to the limit at start-up (which
// readline did through HISTFILE.tmp, created 0666 less the umask) — and it
// stays 0600 as lines are saved. openTerminal is the shells' own path: the
// one readline instance they use, with a file past the limit.
func TestHistoryFileIsPrivate(t *testing.T) {
	restore := setUmask(0o022) // the usual one, under which readline's file was 0644
	defer restore()
	dir := t.TempDir()

	t.Run("created", func(t *testing.T) {
		path := filepath.Join(dir, "new")
		h, lines, err := openHistory(path, historyLimit)
		if err != nil {
			t.Fatal(err)
		}
		defer h.close()
		if len(lines) != 0 {
			t.Errorf("a new file has lines: %q", lines)
		}
		wantPrivate(t, path)
	})

	t.Run("rewritten by the shell", func(t *testing.T) {
		path := filepath.Join(dir, "long")
		writeLines(t, path, historyLimit+50, 0o600) // private before: readline made it 0644
		rl, stdin, hist, histErr, err := openTerminal(func() string { return "> " }, path, nil, false, ttyHooks{})
		if err != nil {
			t.Skipf("no readline here: %v", err)
		}
		if histErr != nil {
			t.Fatal(histErr)
		}
		wantPrivate(t, path)
		hist.save(rl, "!echo secret-token")
		hist.save(rl, "!shutdown all") // NoHistory: not written
		// Closing stdin ends readline's read; rl.Close so soon after NewEx
		// would race inside readline.
		stdin.Close()
		hist.close()
		wantPrivate(t, path)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		if len(got) != historyLimit+1 || got[0] != "!echo 50" || got[len(got)-1] != "!echo secret-token" {
			t.Errorf("want lines 50..%d and the saved one, got %d lines: %q .. %q", historyLimit+49, len(got), got[0], got[len(got)-1])
		}
		if m, _ := filepath.Glob(filepath.Join(dir, "*tmp*")); len(m) != 0 {
			t.Errorf("temporary files left: %q", m)
		}
	})

	t.Run("an old 0644 file", func(t *testing.T) {
		path := filepath.Join(dir, "old")
		writeLines(t, path, 3, 0o644)
		h, lines, err := openHistory(path, historyLimit)
		if err != nil {
			t.Fatal(err)
		}
		defer h.close()
		if len(lines) != 3 || lines[2] != "!echo 2" {
			t.Errorf("lines: %q", lines)
		}
		wantPrivate(t, path)
	})

	t.Run("through a symbolic link", func(t *testing.T) {
		if runtime.GOOS == "windows" {
			t.Skip("symbolic links need privileges on windows")
		}
		target := filepath.Join(dir, "target")
		writeLines(t, target, historyLimit+1, 0o644)
		link := filepath.Join(dir, "link")
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		h, lines, err := openHistory(link, historyLimit)
		if err != nil {
			t.Fatal(err)
		}
		h.close()
		if len(lines) != historyLimit {
			t.Errorf("%d lines, want %d", len(lines), historyLimit)
		}
		if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("the link was replaced: %v %v", fi, err)
		}
		wantPrivate(t, target)
	})
}

// Lines saved go to the file once each, a repeat of the line before not
// again, as readline did; lines past the limit are read as the last ones.
func TestHistorySaveAndReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h")
	h, _, err := openHistory(path, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"!a", "!b", "!b", "!c", "!d"} {
		h.append(l)
	}
	h.close()
	b, _ := os.ReadFile(path)
	if string(b) != "!a\n!b\n!c\n!d\n" {
		t.Errorf("file: %q", b)
	}
	h, lines, err := openHistory(path, 3)
	if err != nil {
		t.Fatal(err)
	}
	h.close()
	if strings.Join(lines, ",") != "!b,!c,!d" {
		t.Errorf("lines read: %q", lines)
	}
	if b, _ := os.ReadFile(path); string(b) != "!b\n!c\n!d\n" {
		t.Errorf("file after the cut: %q", b)
	}
}
