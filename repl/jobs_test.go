package repl

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
)

// onWrite is a writer that calls f once, on its first write holding text.
type onWrite struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	text string
	once sync.Once
	f    func()
}

func (w *onWrite) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.text) {
		w.once.Do(w.f)
	}
	return len(p), nil
}

// A !dispatch stopped by Ctrl-C (its context cancelled) says it was
// cancelled, in words, and !jobs lists it as cancelled, not as an error.
func TestCancelledDispatchSaysCancelled(t *testing.T) {
	s := clusterShell(t) // b is the worker
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &onWrite{text: "chunk 1/", f: cancel}
	s.setWriters(out, out)
	err := s.Exec(ctx, "!dispatch stream 1000 100ms")
	if err == nil || !strings.HasSuffix(err.Error(), "cancelled on b") || strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("cancelled !dispatch: %v", err)
	}
	var jobs bytes.Buffer
	s.setWriters(&jobs, &jobs)
	if err := s.Exec(context.Background(), "!jobs"); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(jobs.String()), "\n")
	if last := strings.Fields(lines[len(lines)-1]); len(last) < 5 || last[1] != "stream" || last[4] != "cancelled" {
		t.Errorf("!jobs lists the cancelled job as:\n%s", jobs.String())
	}
}
