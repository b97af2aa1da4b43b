package repl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/chzyer/readline"

	"meshell/node"
)

// Prompt is the alias and a short cluster state, e.g. "node1 [3 alive]> ".
func (s *Shell) Prompt() string {
	alias := clean(s.Node.Alias())
	if alias == "" {
		alias = "meshell"
	}
	state := "not in a cluster"
	if s.Node.Running() {
		sn := s.Node.Members()
		state = s.pal.state(node.StateAlive, fmt.Sprintf("%d alive", sn.Count(node.StateAlive)))
		if n := sn.Count(node.StateSuspect); n > 0 {
			state += ", " + s.pal.state(node.StateSuspect, fmt.Sprintf("%d suspect", n))
		}
		if n := sn.Count(node.StateFailed); n > 0 {
			state += ", " + s.pal.state(node.StateFailed, fmt.Sprintf("%d failed", n))
		}
	}
	return s.pal.bold(alias) + " [" + state + "]> "
}

// minTyping is the room a prompt leaves on its line for typing.
const minTyping = 12

// fitPrompt is prompt p made to fit a terminal width columns wide with
// room to type: readline draws a prompt wider than its line again on every
// key. Too wide, it is the alias alone, "n1> ", cut if need be,
// "averylo…> ".
func fitPrompt(p string, width int) string {
	if width <= 0 || visibleWidth(p)+minTyping <= width {
		return p
	}
	alias, _, _ := strings.Cut(withoutColour(p), " [")
	alias = strings.TrimSuffix(alias, "> ")
	if r := []rune(alias); len(r)+2+minTyping > width {
		alias = string(r[:max(1, width-minTyping-3)]) + "…"
	}
	return alias + "> "
}

// setPrompt gives rl prompt p, fitted to the terminal.
func setPrompt(rl *readline.Instance, p string) {
	rl.SetPrompt(fitPrompt(p, readline.GetScreenWidth()))
}

// Interactive is a readline session bound to a shell.
type Interactive struct {
	s  *Shell
	rl *readline.Instance
	// stdin is what readline reads the terminal through: closing it ends
	// a pending read, so that a remote !shutdown or a signal ends Readline
	// (and rl.Close) without waiting for a key.
	stdin *readline.CancelableStdin
	hist  *history // nil: none kept in a file

	cmd interrupts // Ctrl-C to the running command

	mu       sync.Mutex
	echoBack func()    // turns echo back on while a command runs; nil at the prompt
	stopSig  os.Signal // the signal that makes the shell leave and exit
	leaving  bool
	ended    bool // input ended by a signal or a remote shutdown
}

// NewInteractive opens the terminal. Output of the shell (and of anything
// written to Stdout/Stderr, such as logs) is redrawn above the prompt, with
// the half-typed line intact below it. historyFile "" keeps no history; one
// that cannot be written is warned about once, and no history is kept.
func NewInteractive(s *Shell, historyFile string) (*Interactive, error) {
	in := &Interactive{s: s}
	in.cmd.echo = in.echoInterrupt
	rl, stdin, hist, histErr, err := openTerminal(s.Prompt, historyFile, completer{s}, s.pal.on, ttyHooks{raw: in.cmd.rawMode, hangup: in.hangup, interrupt: in.cmd.interrupt})
	if err != nil {
		return nil, err
	}
	in.rl, in.stdin, in.hist = rl, stdin, hist
	s.setWriters(rl.Stdout(), rl.Stderr())
	if histErr != nil {
		s.warnf("history is not saved: %v (see --history-file)", histErr)
	}
	return in, nil
}

// ttyHooks let a shell follow its terminal: raw runs as readline puts it in
// raw mode (true) and back (false); hangup runs when a read of it fails, the
// terminal being gone; interrupt runs for a Ctrl-C typed right after Enter,
// before raw mode ended (see ttyReader). Any may be nil; without interrupt
// such a Ctrl-C is a key at the next prompt.
type ttyHooks struct {
	raw       func(on bool)
	hangup    func()
	interrupt func()
}

// maxTypeAhead bounds what ttyReader holds past an Enter.
const maxTypeAhead = 64 << 10

// ttyReader is the terminal as readline reads it. In raw mode a read ends
// with no byte (EOF) or EIO only after a hang-up; Ctrl-D is a byte.
//
// Ctrl-C is a byte in raw mode, and readline reads "\r\x03" (Enter, then
// Ctrl-C at once) in one read: it would return the line and keep the 0x03
// for the next prompt, where it clears the line and arms "Ctrl-C again",
// while the command it was meant to stop runs on. So a read is handed to
// readline only up to its first Enter, the rest waits here; and as readline
// leaves raw mode after a line (exitedRaw), what was typed since then is
// taken from the terminal too. A Ctrl-C in it, before the next Enter, is
// the interrupt of the line's command, as a SIGINT would have been once out
// of raw mode: it is dropped, with what it would have cleared.
type ttyReader struct {
	r      io.Reader
	fd     int // r's, to see what waits there; -1: none
	hangup func()
	intr   func()

	mu      sync.Mutex
	pending []byte // read past an Enter, readline's next
	reading bool   // a read of r is under way
	enter   bool   // the last byte readline got ended a line
}

func isEnter(b byte) bool { return b == readline.CharEnter || b == readline.CharCtrlJ }

// lineEnd is the length of b's first line, Enter included, or len(b).
func lineEnd(b []byte) int {
	for i, c := range b {
		if isEnter(c) {
			return i + 1
		}
	}
	return len(b)
}

func (t *ttyReader) Read(p []byte) (int, error) {
	t.mu.Lock()
	if len(t.pending) > 0 && len(p) > 0 {
		n := copy(p, t.pending[:lineEnd(t.pending)])
		t.pending = t.pending[n:]
		t.enter = isEnter(p[n-1])
		t.mu.Unlock()
		return n, nil
	}
	t.reading = true
	t.mu.Unlock()
	n, err := t.r.Read(p)
	t.mu.Lock()
	t.reading = false
	if n > 0 && err == nil {
		if end := lineEnd(p[:n]); end < n {
			t.pending = append(t.pending, p[end:n]...)
			n = end
		}
		t.enter = isEnter(p[n-1])
	}
	t.mu.Unlock()
	if err != nil && t.hangup != nil {
		t.hangup() // before readline takes the EOF for Ctrl-D, or for Enter after a half-typed line
	}
	return n, err
}

// exitedRaw runs once readline has put the terminal back in cooked mode.
// After a line, the bytes typed while raw mode lasted still wait in the
// terminal (a Ctrl-C typed since is a SIGINT): they are taken, and a
// Ctrl-C among those before the next Enter runs the interrupt hook.
func (t *ttyReader) exitedRaw() {
	t.mu.Lock()
	if !t.enter || t.intr == nil || t.reading {
		t.mu.Unlock()
		return
	}
	t.enter = false
	for t.fd >= 0 && len(t.pending) < maxTypeAhead {
		n := min(queuedInput(t.fd), maxTypeAhead-len(t.pending))
		if n <= 0 {
			break
		}
		buf := make([]byte, n)
		m, err := t.r.Read(buf) // does not block: n bytes are there
		t.pending = append(t.pending, buf[:m]...)
		if err != nil || m == 0 {
			break
		}
	}
	cut := bytes.LastIndexByte(t.pending[:lineEnd(t.pending)], readline.CharInterrupt)
	if cut >= 0 {
		t.pending = t.pending[cut+1:]
	}
	t.mu.Unlock()
	if cut >= 0 {
		t.intr()
	}
}

// openTerminal sets readline up for a shell, local or attached: history in
// historyFile unless it cannot be opened (histErr says why; hist is then
// nil, and lines are kept in memory only), completion by ac, the grey hint
// when colour is on, Ctrl-Z defused, the terminal followed by hooks. The
// caller closes hist after rl.
func openTerminal(prompt func() string, historyFile string, ac readline.AutoCompleter, color bool, hooks ttyHooks) (rl *readline.Instance, stdin *readline.CancelableStdin, hist *history, histErr, err error) {
	var lines []string
	if historyFile != "" {
		hist, lines, histErr = openHistory(historyFile, historyLimit)
	}
	tty := &ttyReader{r: os.Stdin, fd: -1, hangup: hooks.hangup, intr: hooks.interrupt}
	if hooks.interrupt != nil {
		tty.fd = readline.GetStdin()
	}
	stdin = readline.NewCancelableStdin(tty)
	raw := new(readline.RawMode)
	var op atomic.Pointer[readline.Operation] // set once readline is up
	cfg := &readline.Config{
		Prompt:                 fitPrompt(prompt(), readline.GetScreenWidth()),
		Stdin:                  stdin,
		HistoryFile:            "", // kept by hist, mode 0600: readline's would be 0666
		HistoryLimit:           historyLimit,
		DisableAutoSaveHistory: true, // saved by hand: some commands stay out of it
		HistorySearchFold:      true,
		AutoComplete:           ac,
		InterruptPrompt:        "^C",
		EOFPrompt:              "",
		FuncFilterInputRune:    func(r rune) (rune, bool) { return filterInput(op.Load(), r) },
		FuncMakeRaw: func() error {
			if hooks.raw != nil {
				hooks.raw(true)
			}
			return raw.Enter()
		},
		FuncExitRaw: func() error {
			if hooks.raw != nil {
				hooks.raw(false) // first: a SIGINT can follow at once
			}
			err := raw.Exit()
			tty.exitedRaw()
			return err
		},
	}
	if color { // a grey hint needs colour; without it, it would read as typed text
		cfg.Painter = hintPainter{prompt: prompt, width: readline.GetScreenWidth}
	}
	if rl, err = readline.NewEx(cfg); err != nil {
		stdin.Close()
		hist.close()
		return nil, nil, nil, nil, err
	}
	op.Store(rl.Operation)
	hist.load(rl, lines)
	return rl, stdin, hist, histErr, nil
}

// filterInput sees each key in readline's loop before readline does. The
// Ctrl-Z byte would suspend the process, which hangs a shell that runs
// without job control (a tmux pane): it becomes Ctrl-G (cancel search or
// completion), which readline handles without touching the terminal.
// Ctrl-C while Tab's candidates are shown leaves completion first: readline
// would only close the list, where Ctrl-C elsewhere clears the line.
func filterInput(op *readline.Operation, r rune) (rune, bool) {
	switch {
	case r == readline.CharCtrlZ:
		return readline.CharBell, true
	case r == readline.CharInterrupt && op != nil && op.IsInCompleteMode():
		op.ExitCompleteMode(false)
	}
	return r, true
}

// Stderr is where logs go so that they do not break the prompt.
func (in *Interactive) Stderr() io.Writer { return in.rl.Stderr() }

// keepInHistory reports whether a line goes to the history file: commands
// marked NoHistory (remote shutdown, restart, scale) never do, so that an
// Up arrow and Enter cannot repeat them by accident, nor does !keys, whose
// install takes a key. A broken line (an open quote) is kept so it can be
// fixed, unless its first word is one of those.
func keepInHistory(line string) bool {
	line = strings.TrimSpace(line)
	words, err := tokenize(line)
	if err != nil {
		first, _, _ := strings.Cut(strings.ReplaceAll(line, "\t", " "), " ")
		words = []string{strings.Trim(first, `"'`)}
	}
	if len(words) == 0 {
		return false
	}
	cmd := lookup(words[0])
	return cmd == nil || !cmd.NoHistory
}

// Run reads commands until !quit or Ctrl-D. Ctrl-C clears the line, or
// cancels the running command (the terminal is not in raw mode while a
// command runs, so Ctrl-C arrives as SIGINT); two Ctrl-C within a second on
// an empty line leave. A remote !shutdown ends the shell at once (status
// 0), cancelling the running command (Exec does); SIGTERM or SIGHUP (or a
// hang-up seen reading the terminal) cancel the running command, leave
// within about a second and exit 128+signal. While leaving, SIGINT or
// SIGTERM exits at once; SIGHUP does not.
func (in *Interactive) Run(base context.Context) int {
	s, rl := in.s, in.rl
	defer in.hist.close() // after rl.Close
	defer rl.Close()
	defer in.stdin.Close() // first: rl.Close waits for a pending read
	stopSusp := ignoreSuspend()
	defer stopSusp()

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, append([]os.Signal{os.Interrupt}, leaveSignals...)...)
	defer signal.Stop(sigs)
	go in.signals(sigs)

	sub := s.Node.Subscribe(16)
	defer sub.Close()
	stop := make(chan struct{})
	defer close(stop)
	go func() { // keep the prompt's cluster state current
		for {
			select {
			case <-sub.C:
				setPrompt(rl, s.Prompt())
				rl.Refresh() // only redraws while a line is being read
			case <-s.Node.ShutdownRequested():
				// A !shutdown from another node: it drained and left
				// already; end the pending Readline as Ctrl-D would (a
				// running command is cancelled by Exec).
				in.endInput()
				return
			case <-stop:
				return
			}
		}
	}()
	var lastInterrupt time.Time
	for {
		setPrompt(rl, s.Prompt())
		line, err := rl.Readline()
		if in.inputEnded() {
			break // a half-typed line is not run
		}
		if errors.Is(err, readline.ErrInterrupt) {
			if strings.TrimSpace(line) != "" {
				lastInterrupt = time.Time{}
				continue // the line is cleared
			}
			if time.Since(lastInterrupt) < time.Second {
				break
			}
			lastInterrupt = time.Now()
			s.printf("%s\n", s.pal.dim("(Ctrl-C again or Ctrl-D to leave the cluster and exit)"))
			continue
		}
		if err != nil { // io.EOF: Ctrl-D on an empty line
			break
		}
		lastInterrupt = time.Time{}
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		in.hist.save(rl, line)
		err = in.exec(base, line)
		if err != nil && !errors.Is(err, errQuit) {
			s.errorLine(err)
		}
		if errors.Is(err, errQuit) || s.shutdownRequested() || in.inputEnded() {
			break
		}
	}
	in.mu.Lock()
	in.leaving = true
	sig := in.stopSig
	in.mu.Unlock()
	if s.shutdownRequested() {
		rl.SetPrompt("") // what readline may still redraw below the last words
		s.printf("%s\n", s.pal.dim("this node was shut down by !shutdown; exiting"))
		return 0 // it left already
	}
	if s.Node.Running() {
		s.printf("%s\n", s.pal.dim("leaving the cluster… (Ctrl-C to exit now)"))
	}
	if sig != nil {
		s.leave(time.Second)
		return exitCode(sig)
	}
	s.Close()
	return 0
}

// exec runs one command line with Ctrl-C cancelling it (even one pressed
// before it started, with Enter or after it: see ttyReader), said "^C"
// when it comes, and the terminal's echo off, so that what is typed
// meanwhile waits for the next prompt.
func (in *Interactive) exec(base context.Context, line string) error {
	ctx, cancel := context.WithCancel(base)
	defer cancel()
	in.mu.Lock()
	if in.stopSig != nil || in.ended {
		cancel() // a signal came between Enter and now
	}
	in.echoBack = echoOff(readline.GetStdin())
	in.mu.Unlock()
	in.cmd.start(cancel)
	err := in.s.Exec(ctx, line)
	in.cmd.done()
	in.mu.Lock()
	in.echoBack()
	in.echoBack = nil
	in.mu.Unlock()
	return err
}

// echoInterrupt says "^C" where a Ctrl-C reached the running command (see
// interrupts), unless the shell is stopping: a signal that stops it is no
// key.
func (in *Interactive) echoInterrupt() {
	in.mu.Lock()
	stopping := in.stopSig != nil || in.ended || in.leaving
	in.mu.Unlock()
	if !stopping {
		in.s.printf("^C\n")
	}
}

// endInput ends the pending Readline, at once and for good.
func (in *Interactive) endInput() {
	in.mu.Lock()
	in.ended = true
	in.mu.Unlock()
	in.rl.Operation.Close() // Readline returns io.EOF
	in.stdin.Close()        // and the terminal's read ends, not waiting for a key
}

func (in *Interactive) inputEnded() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.ended
}

// signals routes SIGINT, SIGTERM and SIGHUP: SIGINT interrupts, SIGTERM
// and SIGHUP stop. While the shell stops or leaves, SIGINT or SIGTERM exits
// at once with the terminal restored; SIGHUP is ignored, as a closed
// terminal sends several (the kernel's, a shell's, tmux's).
func (in *Interactive) signals(sigs <-chan os.Signal) {
	for sig := range sigs {
		in.mu.Lock()
		stopping := in.leaving || in.stopSig != nil
		in.mu.Unlock()
		switch {
		case stopping && sig == syscall.SIGHUP:
		case stopping:
			in.restoreTerminal()
			os.Exit(exitCode(sig))
		case sig == os.Interrupt:
			in.cmd.interrupt()
		default:
			in.stop(sig)
		}
	}
}

// stop makes Run leave and exit 128+sig: it cancels the running command
// and ends the input. Only the first stop counts.
func (in *Interactive) stop(sig os.Signal) {
	in.mu.Lock()
	if in.leaving || in.stopSig != nil {
		in.mu.Unlock()
		return
	}
	in.stopSig = sig
	in.mu.Unlock()
	in.cmd.stop()
	in.endInput()
}

// hangup is a failed read of the terminal: it is gone, as after SIGHUP.
func (in *Interactive) hangup() { in.stop(syscall.SIGHUP) }

// interrupts hands a Ctrl-C to the command it was meant for: the running
// one, or, out of raw mode before it started (Ctrl-C right after Enter),
// the one about to start. In raw mode (at the prompt) readline reads Ctrl-C
// as a key, so a SIGINT then is ignored.
//
// echo, if set, says "^C" for the first Ctrl-C that reaches a command,
// when it does: the terminal's echo is off while a command runs, and a
// terminal that echoed would have put it there, between the output before
// the key and what the command says of its end ("cancelled"), not below
// all of it. It runs before the command is cancelled, without mu.
type interrupts struct {
	echo func()

	mu     sync.Mutex
	cancel context.CancelFunc // of the running command; nil at the prompt
	raw    bool               // readline reads keys: Ctrl-C is a key, not SIGINT
	// early: an interrupt (or a stop) came with no command to cancel yet;
	// the command about to start takes it. earlyKey: one was a Ctrl-C, to
	// echo as that command starts.
	early, earlyKey bool
	echoed          bool // the running command's Ctrl-C was echoed
}

// start makes cancel the running command's, cancelled at once when an
// interrupt came first.
func (c *interrupts) start(cancel context.CancelFunc) {
	c.mu.Lock()
	early, key := c.early, c.earlyKey
	c.early, c.earlyKey, c.echoed, c.cancel = false, false, key, cancel
	c.mu.Unlock()
	if key && c.echo != nil {
		c.echo()
	}
	if early {
		cancel()
	}
}

// done: no command runs.
func (c *interrupts) done() {
	c.mu.Lock()
	c.cancel = nil
	c.mu.Unlock()
}

// interrupt is a Ctrl-C (SIGINT, or ttyReader's hook).
func (c *interrupts) interrupt() { c.cancelRunning(false) }

// stop cancels the running command, or the next, in any terminal mode.
func (c *interrupts) stop() { c.cancelRunning(true) }

func (c *interrupts) cancelRunning(always bool) {
	c.mu.Lock()
	cancel, echo := c.cancel, false
	switch {
	case cancel != nil:
		echo = !always && !c.echoed
		c.echoed = c.echoed || echo
	case always || !c.raw:
		c.early = true
		c.earlyKey = c.earlyKey || !always
	}
	c.mu.Unlock()
	if echo && c.echo != nil {
		c.echo() // before the command says that it was cancelled
	}
	if cancel != nil {
		cancel()
	}
}

// rawMode follows readline's terminal mode. Entering raw mode drops an
// interrupt that no command took.
func (c *interrupts) rawMode(on bool) {
	c.mu.Lock()
	c.raw = on
	if on {
		c.early, c.earlyKey = false, false
	}
	c.mu.Unlock()
}

// restoreTerminal puts the terminal back as the shell found it, before an
// exit that skips Run's deferred cleanup.
func (in *Interactive) restoreTerminal() {
	in.mu.Lock()
	if in.echoBack != nil {
		in.echoBack()
	}
	in.mu.Unlock()
	if in.rl != nil {
		in.rl.Terminal.ExitRawMode()
	}
}

// exitCode is the shell's conventional status after a signal: 128+signal.
func exitCode(sig os.Signal) int {
	if n, ok := sig.(syscall.Signal); ok {
		return 128 + int(n)
	}
	return 1
}
