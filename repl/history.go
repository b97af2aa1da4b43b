package repl

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/chzyer/readline"
)

// historyLimit is how many lines the history keeps, in memory and in the file.
const historyLimit = 1000

// history is the history file of a terminal shell. It is kept here, not by
// readline: readline creates its file mode 0666 and, when the file has more
// lines than its limit, rewrites it as HISTFILE.tmp, created mode 0666 too,
// renamed over it, so that under the usual umask 022 the commands typed,
// secrets and all, became readable by every local user. This file is only
// ever opened or created mode 0600, an existing one is made 0600 before
// anything is read from it or written to it, and a rewrite goes through a
// temporary file that os.CreateTemp makes 0600; readline is given no file
// and keeps the lines in memory only. A nil *history keeps no file.
type history struct {
	path string // the file's own path, symbolic links followed

	mu   sync.Mutex
	f    *os.File // opened for appending; nil once closed
	last string   // the line saved last, which readline does not save again
}

// openHistory opens the history file at path, creating it mode 0600, and
// returns its last limit lines, oldest first. A file with more lines than
// that is cut to them (if its directory lets it be rewritten).
func openHistory(path string, limit int) (*history, []string, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, err
	}
	if err := private(f); err != nil {
		f.Close()
		return nil, nil, err
	}
	lines, total, err := lastLines(f, limit)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	h := &history{path: path, f: f}
	if p, err := filepath.EvalSymlinks(path); err == nil {
		h.path = p // a rewrite replaces the file, not a link to it
	}
	if total > limit {
		h.rewrite(lines) // on failure the file just stays long
	}
	if len(lines) > 0 {
		h.last = lines[len(lines)-1]
	}
	return h, lines, nil
}

// private makes the open file f mode 0600 if it is open to others.
func private(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		if err := f.Chmod(0o600); err != nil {
			return fmt.Errorf("%s has mode %04o, readable by other users, and cannot be made 0600: %w", f.Name(), perm, err)
		}
	}
	return nil
}

// lastLines reads r to its end and returns its last limit non-empty lines,
// spaces trimmed, and how many lines it has in all.
func lastLines(r io.Reader, limit int) (lines []string, total int, err error) {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			total++
			if line = strings.TrimSpace(line); line != "" {
				lines = append(lines, line)
				if len(lines) > 2*limit { // bounded, however long the file
					lines = append(lines[:0], lines[len(lines)-limit:]...)
				}
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, 0, err
		}
	}
	if len(lines) > limit {
		lines = lines[len(lines)-limit:]
	}
	return lines, total, nil
}

// rewrite replaces the file by one holding lines only, written first to a
// temporary file of mode 0600 beside it. It leaves h as it was if it fails.
func (h *history) rewrite(lines []string) {
	tmp, err := os.CreateTemp(filepath.Dir(h.path), "."+filepath.Base(h.path)+".*.tmp")
	if err != nil {
		return
	}
	w := bufio.NewWriter(tmp)
	for _, l := range lines {
		w.WriteString(l + "\n")
	}
	err = w.Flush()
	if err == nil {
		err = tmp.Chmod(0o600) // CreateTemp's mode already; said here for other systems
	}
	if err == nil {
		err = tmp.Close()
	} else {
		tmp.Close()
	}
	if err == nil {
		err = os.Rename(tmp.Name(), h.path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return
	}
	f, err := os.OpenFile(h.path, os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		h.f.Close()
		h.f = nil // the old file is gone: no history is written
		return
	}
	h.f.Close()
	h.f = f
}

// load gives readline the lines read from the file, oldest first.
func (h *history) load(rl *readline.Instance, lines []string) {
	for _, l := range lines {
		rl.SaveHistory(l)
	}
}

// save keeps line in the history unless keepInHistory refuses it (saving
// "" forgets the line being edited and writes nothing), in memory and, but
// for a repeat of the line before, in the file.
func (h *history) save(rl *readline.Instance, line string) {
	if !keepInHistory(line) {
		rl.SaveHistory("")
		return
	}
	rl.SaveHistory(line)
	h.append(line)
}

// append writes line to the file, unless it is the line saved before.
func (h *history) append(line string) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.f == nil || line == h.last {
		return
	}
	h.last = line
	h.f.WriteString(line + "\n") // as readline did: a failed write is not said
}

// close closes the file.
func (h *history) close() {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.f != nil {
		h.f.Close()
		h.f = nil
	}
}
