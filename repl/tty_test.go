package repl

import (
	"os"
	"testing"
)

// ttyPipe is a ttyReader over a pipe standing for the terminal, counting
// the interrupts it raises.
type ttyPipe struct {
	t     *testing.T
	w     *os.File
	tty   *ttyReader
	intrs int
}

func newTTYPipe(t *testing.T, hook bool) *ttyPipe {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	p := &ttyPipe{t: t, w: w}
	p.tty = &ttyReader{r: r, fd: int(r.Fd())}
	if hook {
		p.tty.intr = func() { p.intrs++ }
	}
	return p
}

// typed is what the terminal receives.
func (p *ttyPipe) typed(s string) {
	p.t.Helper()
	if _, err := p.w.WriteString(s); err != nil {
		p.t.Fatal(err)
	}
}

// read is one read by readline, which must give want.
func (p *ttyPipe) read(want string) {
	p.t.Helper()
	buf := make([]byte, 4096) // as readline's bufio asks
	n, err := p.tty.Read(buf)
	if err != nil || string(buf[:n]) != want {
		p.t.Fatalf("readline read %q, %v; want %q", buf[:n], err, want)
	}
}

// line is readline returning a line: it leaves raw mode.
func (p *ttyPipe) line(wantIntrs int) {
	p.t.Helper()
	p.tty.exitedRaw()
	if p.intrs != wantIntrs {
		p.t.Fatalf("%d interrupts after the line, want %d", p.intrs, wantIntrs)
	}
}

// A Ctrl-C typed right after Enter interrupts the line's command and is
// not handed to readline; one anywhere else stays a key.
func TestTTYReaderTakesACtrlCRightAfterEnter(t *testing.T) {
	t.Run("in the same read as Enter", func(t *testing.T) {
		p := newTTYPipe(t, true)
		p.typed("!sleep 1m\r\x03!echo next\r")
		p.read("!sleep 1m\r")
		p.line(1)
		p.read("!echo next\r")
		p.line(1)
	})
	t.Run("queued after the read, before raw mode ended", func(t *testing.T) {
		p := newTTYPipe(t, true)
		p.typed("!sleep 1m\r")
		p.read("!sleep 1m\r")
		p.typed("ab\x03cd")
		if queuedInput(p.tty.fd) == 0 {
			t.Skip("this system does not tell what waits in a pipe")
		}
		p.line(1)
		p.read("cd") // what the Ctrl-C would have cleared is gone with it
	})
	t.Run("twice: one interrupt", func(t *testing.T) {
		p := newTTYPipe(t, true)
		p.typed("!sleep 1m\r\x03\x03x")
		p.read("!sleep 1m\r")
		p.line(1)
		p.read("x")
	})
	t.Run("at the prompt it is a key", func(t *testing.T) {
		p := newTTYPipe(t, true)
		p.typed("abc\x03")
		p.read("abc\x03")
		p.line(0)
	})
	t.Run("after the next Enter it is the next line's", func(t *testing.T) {
		p := newTTYPipe(t, true)
		p.typed("!a\r!b\n\x03")
		p.read("!a\r")
		p.line(0)
		p.read("!b\n")
		p.line(1)
	})
	t.Run("without the hook it is a key at the next prompt", func(t *testing.T) {
		p := newTTYPipe(t, false)
		p.typed("!a\r\x03")
		p.read("!a\r")
		p.line(0)
		p.read("\x03")
	})
}
