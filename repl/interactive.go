package repl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"time"

	"github.com/chzyer/readline"

	"meshell/protocol"
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
		state = s.pal.state(protocol.StateAlive, fmt.Sprintf("%d alive", sn.Count(protocol.StateAlive)))
		if n := sn.Count(protocol.StateSuspect); n > 0 {
			state += ", " + s.pal.state(protocol.StateSuspect, fmt.Sprintf("%d suspect", n))
		}
		if n := sn.Count(protocol.StateFailed); n > 0 {
			state += ", " + s.pal.state(protocol.StateFailed, fmt.Sprintf("%d failed", n))
		}
	}
	return s.pal.bold(alias) + " [" + state + "]> "
}

// Interactive is a readline session bound to a shell.
type Interactive struct {
	s  *Shell
	rl *readline.Instance

	mu      sync.Mutex
	cancel  context.CancelFunc // of the running command; nil at the prompt
	leaving bool
}

// NewInteractive opens the terminal. Output of the shell (and of anything
// written to Stdout/Stderr, such as logs) is redrawn above the prompt, with
// the half-typed line intact below it. historyFile "" keeps no history.
func NewInteractive(s *Shell, historyFile string) (*Interactive, error) {
	cfg := &readline.Config{
		Prompt:                 s.Prompt(),
		HistoryFile:            historyFile,
		HistoryLimit:           1000,
		DisableAutoSaveHistory: true, // saved by hand: some commands stay out of it
		HistorySearchFold:      true,
		AutoComplete:           completer{s},
		InterruptPrompt:        "^C",
		EOFPrompt:              "",
		FuncFilterInputRune:    filterInput,
	}
	if s.pal.on { // a grey hint needs colour; without it, it would read as typed text
		cfg.Painter = hintPainter{s: s, width: readline.GetScreenWidth}
	}
	rl, err := readline.NewEx(cfg)
	if err != nil {
		return nil, err
	}
	s.setWriters(rl.Stdout(), rl.Stderr())
	return &Interactive{s: s, rl: rl}, nil
}

// filterInput drops the Ctrl-Z byte: readline would suspend the process,
// which hangs a shell that runs without job control (a tmux pane). It is
// turned into Ctrl-G (cancel search or completion), which readline handles
// without touching the terminal.
func filterInput(r rune) (rune, bool) {
	if r == readline.CharCtrlZ {
		return readline.CharBell, true
	}
	return r, true
}

// Stderr is where logs go so that they do not break the prompt.
func (in *Interactive) Stderr() io.Writer { return in.rl.Stderr() }

// keepInHistory reports whether a line goes to the history file: commands
// marked NoHistory (remote shutdown, restart, scale) never do, so that an
// Up arrow and Enter cannot repeat them by accident.
func keepInHistory(line string) bool {
	words, err := tokenize(strings.TrimSpace(line))
	if err != nil || len(words) == 0 {
		return err != nil // a broken line is kept so it can be fixed
	}
	cmd := lookup(words[0])
	return cmd == nil || !cmd.NoHistory
}

// Run reads commands until !quit or Ctrl-D. Ctrl-C clears the line, or
// cancels the running command (the terminal is not in raw mode while a
// command runs, so Ctrl-C arrives as SIGINT); two Ctrl-C within a second on
// an empty line leave. While leaving, Ctrl-C exits at once (status 130).
func (in *Interactive) Run(base context.Context) int {
	s, rl := in.s, in.rl
	defer rl.Close()
	stopSusp := ignoreSuspend()
	defer stopSusp()

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt)
	defer signal.Stop(sigs)
	go in.interrupts(sigs)

	sub := s.Node.Subscribe(16)
	defer sub.Close()
	stop := make(chan struct{})
	defer close(stop)
	go func() { // keep the prompt's cluster state current
		for {
			select {
			case <-sub.C:
				rl.SetPrompt(s.Prompt())
				rl.Refresh() // only redraws while a line is being read
			case <-s.Node.ShutdownRequested():
				// A !shutdown from another node: it drained and left
				// already; end the pending Readline as Ctrl-D would.
				s.printf("%s\n", s.pal.dim("this node was shut down by !shutdown; exiting"))
				rl.Operation.Close()
				return
			case <-stop:
				return
			}
		}
	}()
	var lastInterrupt time.Time
	for {
		rl.SetPrompt(s.Prompt())
		line, err := rl.Readline()
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
		if keepInHistory(line) {
			rl.SaveHistory(line)
		} else {
			rl.SaveHistory("") // forgets the line being edited; writes nothing
		}
		ctx, cancel := context.WithCancel(base)
		in.mu.Lock()
		in.cancel = cancel
		in.mu.Unlock()
		err = s.Exec(ctx, line)
		in.mu.Lock()
		in.cancel = nil
		in.mu.Unlock()
		interrupted := ctx.Err() != nil && base.Err() == nil
		cancel()
		if interrupted {
			s.printf("\n") // past the ^C the terminal echoed
		}
		if err != nil && !errors.Is(err, errQuit) {
			s.errorLine(err)
		}
		if errors.Is(err, errQuit) || s.shutdownRequested() {
			break
		}
	}
	in.mu.Lock()
	in.leaving = true
	in.mu.Unlock()
	if s.Node.Running() {
		s.printf("%s\n", s.pal.dim("leaving the cluster… (Ctrl-C to exit now)"))
	}
	s.Close()
	return 0
}

// interrupts routes SIGINT: it cancels the running command, exits at once
// while leaving, and is ignored at the prompt (readline reads Ctrl-C as a
// key there).
func (in *Interactive) interrupts(sigs <-chan os.Signal) {
	for range sigs {
		in.mu.Lock()
		cancel, leaving := in.cancel, in.leaving
		in.mu.Unlock()
		switch {
		case leaving:
			os.Exit(130) // the terminal is not in raw mode while leaving
		case cancel != nil:
			cancel()
		}
	}
}
