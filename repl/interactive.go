package repl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/chzyer/readline"

	"meshell/protocol"
)

// Prompt is the alias and a short cluster state, e.g. "node1 [3 alive]> ".
func (s *Shell) Prompt() string {
	alias := s.Node.Alias()
	if alias == "" {
		alias = "meshell"
	}
	state := "not in a cluster"
	if s.Node.Running() {
		sn := s.Node.Members()
		state = fmt.Sprintf("%d alive", sn.Count(protocol.StateAlive))
		if n := sn.Count(protocol.StateSuspect); n > 0 {
			state += fmt.Sprintf(", %d suspect", n)
		}
		if n := sn.Count(protocol.StateFailed); n > 0 {
			state += fmt.Sprintf(", %d failed", n)
		}
	}
	return s.pal.bold(alias) + " [" + state + "]> "
}

// Interactive is a readline session bound to a shell.
type Interactive struct {
	s  *Shell
	rl *readline.Instance
}

// NewInteractive opens the terminal. Output of the shell (and of anything
// written to Stdout/Stderr, such as logs) is redrawn above the prompt.
func NewInteractive(s *Shell, historyFile string) (*Interactive, error) {
	rl, err := readline.NewEx(&readline.Config{
		Prompt:                 s.Prompt(),
		HistoryFile:            historyFile,
		DisableAutoSaveHistory: true, // saved by hand: some commands stay out of it
		HistorySearchFold:      true,
		AutoComplete:           completer{s},
		InterruptPrompt:        "^C",
		EOFPrompt:              "",
		FuncFilterInputRune: func(r rune) (rune, bool) {
			if r == readline.CharCtrlZ { // would suspend or hang the terminal
				return r, false
			}
			return r, true
		},
	})
	if err != nil {
		return nil, err
	}
	s.setWriters(rl.Stdout(), rl.Stderr())
	return &Interactive{s: s, rl: rl}, nil
}

// Stderr is where logs go so that they do not break the prompt.
func (in *Interactive) Stderr() io.Writer { return in.rl.Stderr() }

// Run reads commands until !quit or Ctrl-D. Ctrl-C clears the line, or
// cancels the running command.
func (in *Interactive) Run(base context.Context) int {
	s, rl := in.s, in.rl
	defer rl.Close()
	sub := s.Node.Subscribe(16)
	defer sub.Close()
	stop := make(chan struct{})
	defer close(stop)
	go func() { // keep the prompt's cluster state current
		for {
			select {
			case <-sub.C:
				rl.SetPrompt(s.Prompt())
				rl.Refresh()
			case <-stop:
				return
			}
		}
	}()
	for {
		rl.SetPrompt(s.Prompt())
		line, err := rl.Readline()
		if errors.Is(err, readline.ErrInterrupt) {
			continue
		}
		if err != nil { // io.EOF: Ctrl-D on an empty line
			break
		}
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if cmd := lookup(firstWord(line)); cmd == nil || !cmd.NoHistory {
			rl.SaveHistory(line)
		}
		ctx, cancel := signal.NotifyContext(base, os.Interrupt)
		err = s.Exec(ctx, line)
		cancel()
		if errors.Is(err, errQuit) {
			break
		}
		if err != nil {
			s.errorLine(err)
		}
	}
	// Leaving is bounded; a second Ctrl-C exits at once.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt)
	defer signal.Stop(sig)
	go func() {
		if _, ok := <-sig; ok {
			rl.Close()
			os.Exit(130)
		}
	}()
	s.Close()
	return 0
}

// completer completes from the command table: command names, their flags,
// and each command's own argument candidates (live member aliases, states…).
type completer struct{ s *Shell }

func (c completer) Do(line []rune, pos int) ([][]rune, int) {
	head := string(line[:pos])
	words := strings.Fields(head)
	typing := ""
	if len(words) > 0 && !strings.HasSuffix(head, " ") {
		typing = words[len(words)-1]
		words = words[:len(words)-1]
	}
	var cands []string
	if len(words) == 0 {
		cands = commandNames()
	} else if cmd := lookup(words[0]); cmd != nil {
		if strings.HasPrefix(typing, "-") {
			for _, f := range cmd.Flags {
				cands = append(cands, "--"+f.Name)
			}
		} else {
			pos := 0
			for _, w := range words[1:] {
				if !strings.HasPrefix(w, "-") {
					pos++
				}
			}
			if cmd.Complete != nil {
				cands = cmd.Complete(c.s, pos)
			}
		}
	}
	var out [][]rune
	for _, cand := range cands {
		if strings.HasPrefix(cand, typing) {
			out = append(out, []rune(cand[len(typing):]+" "))
		}
	}
	return out, len([]rune(typing))
}
