package repl

import (
	"slices"
	"testing"
)

// interruptLog records what an interrupts did, in order.
type interruptLog struct{ got []string }

func (l *interruptLog) interrupts() *interrupts {
	return &interrupts{echo: func() { l.got = append(l.got, "^C") }}
}

func (l *interruptLog) cancel() { l.got = append(l.got, "cancel") }

func (l *interruptLog) want(t *testing.T, what string, want ...string) {
	t.Helper()
	if !slices.Equal(l.got, want) {
		t.Errorf("%s: %q, want %q", what, l.got, want)
	}
	l.got = nil
}

// A Ctrl-C is said "^C" when it reaches the command, before the command is
// cancelled (and so before it can say how it ended), once per command; a
// stop (SIGTERM, SIGHUP) cancels without a word, and a Ctrl-C at the
// prompt (raw mode) is readline's key, not the command's.
func TestInterruptsEchoCtrlCWhereItCame(t *testing.T) {
	var l interruptLog
	c := l.interrupts()

	c.start(l.cancel)
	c.interrupt()
	c.interrupt()
	c.done()
	l.want(t, "two Ctrl-C while a command runs", "^C", "cancel", "cancel")

	c.start(l.cancel)
	c.done()
	l.want(t, "a command after it, not interrupted")

	c.interrupt() // out of raw mode, right after Enter
	c.start(l.cancel)
	c.interrupt()
	c.done()
	l.want(t, "a Ctrl-C before the command started", "^C", "cancel", "cancel")

	c.start(l.cancel)
	c.stop()
	c.done()
	c.stop()
	c.start(l.cancel)
	c.done()
	l.want(t, "stops, running and before the start", "cancel", "cancel")

	c.interrupt()
	c.rawMode(true) // the prompt: no command took it
	c.interrupt()   // a key, read by readline
	c.rawMode(false)
	c.start(l.cancel)
	c.done()
	l.want(t, "Ctrl-C with no command to take it")
}
