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

	"github.com/chzyer/readline"

	"meshell/node"
)

// AttachOptions configure Attach.
type AttachOptions struct {
	In          io.Reader
	Out, Err    io.Writer
	Interactive bool     // In and Out are a terminal: a readline prompt
	Color       bool     // colour on Out
	Commands    []string // -c: run these in order, as lines of a script, and exit with the status
	KeepGoing   bool     // script or -c: go on after a failed command (the status is still 1)
	HistoryFile string   // interactive only; "" keeps none
}

// Attach opens a shell on the node whose control socket is target (a path,
// or an alias for its default socket), or lists the sockets found when
// target is "". Its commands run as that node; detaching leaves it
// running. It returns the exit status: that of the command or script, 1
// when the node cannot be reached.
func Attach(target string, o AttachOptions) int {
	pal := palette{on: o.Color}
	fail := func(err error) int {
		fmt.Fprintln(o.Err, errorText(pal, err))
		return 1
	}
	if target == "" {
		return listSockets(o.Out, fail)
	}
	path := target
	if !strings.ContainsRune(target, os.PathSeparator) && !strings.HasSuffix(target, node.SocketExt) {
		if node.ValidAlias(target) != nil {
			// target raw, escaped once by fail (ValidAlias's error quotes
			// it, and its escapes would be escaped again).
			return fail(fmt.Errorf(`"%s" is neither a socket's path nor an alias: an alias is 1 to 64 letters, digits, '.', '_' or '-'`, target))
		}
		path = node.SocketPath(target)
	}
	c, err := dialAgent(path, o)
	if err != nil {
		return fail(err)
	}
	defer c.s.Close()
	if o.Interactive {
		return c.interactive(o.HistoryFile)
	}
	// Ctrl-C cancels the command on the node, which answers how it ended.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt)
	defer signal.Stop(sigs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-sigs:
			cancel()
		case <-c.s.Done():
		case <-ctx.Done():
		}
	}()
	if len(o.Commands) == 0 {
		return runScript(ctx, o.In, o.KeepGoing, c.scriptExec, c.errorLine, c.s.Done())
	}
	return c.runCommands(ctx, o.Commands, o.KeepGoing)
}

// runCommands runs the -c commands in order, as the lines of a script:
// the first failure stops them unless keepGoing, !quit or the session's
// end stops them, and the status is 1 if one failed. An error names the
// -c it is of, `-c 2: !wait: …`, even when there is one, as a script's
// names its line (and sh -c its line 1): its shape does not depend on how
// many -c a caller passed, and it tells a command's failure from the
// attach's own ("no node listens at …"), which exits 1 too.
func (c *client) runCommands(ctx context.Context, cmds []string, keepGoing bool) int {
	status := 0
	for i, line := range cmds {
		err := c.scriptExec(ctx, line)
		if errors.Is(err, errQuit) {
			break
		}
		if err != nil {
			err = fmt.Errorf("-c %d: %s: %w", i+1, firstWord(strings.TrimSpace(line)), err)
			c.errorLine(err)
			status = 1
		}
		if err != nil && !keepGoing || ctx.Err() != nil || c.s.Err() != nil {
			break
		}
	}
	if ctx.Err() != nil {
		status = 1
	}
	return status
}

// listSockets prints the sockets in the default directory.
func listSockets(out io.Writer, fail func(error) int) int {
	found, err := node.LocalSockets(node.SocketDir())
	if err != nil {
		return fail(fmt.Errorf("listing %s: %w", node.SocketDir(), err))
	}
	if len(found) == 0 {
		return fail(fmt.Errorf("no control socket in %s: start a node (meshell --serve), or give the socket's path (--socket)", node.SocketDir()))
	}
	var rows [][]string
	for _, f := range found {
		state := "running"
		if !f.Live {
			state = "stale (its node is gone)"
		}
		rows = append(rows, []string{clean(f.Name), clean(f.Path), state})
	}
	fmt.Fprint(out, table([]string{"NAME", "SOCKET", "STATE"}, rows, nil))
	return 0
}

// client is the attaching side of a session: node's session, and the
// writers and prompt redraw of this terminal.
type client struct {
	s   *node.AttachClient
	pal palette

	wmu       sync.Mutex
	out, errw io.Writer
	onPrompt  func() // redraws the prompt; nil outside the interactive loop
}

// dialAgent connects and says hello.
func dialAgent(path string, o AttachOptions) (*client, error) {
	c := &client{pal: palette{on: o.Color}, out: o.Out, errw: o.Err}
	s, err := node.DialAttach(path, node.AttachHello{Interactive: o.Interactive, Color: o.Color}, c)
	if err != nil {
		return nil, err
	}
	c.s = s
	return c, nil
}

// Write is a piece of the running command's output: the agent cleaned
// what came from the network.
func (c *client) Write(stderr bool, data string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	w := c.out
	if stderr {
		w = c.errw
	}
	io.WriteString(w, data)
}

// PromptChanged redraws the prompt the agent pushed.
func (c *client) PromptChanged() {
	c.wmu.Lock()
	redraw := c.onPrompt
	c.wmu.Unlock()
	if redraw != nil {
		redraw()
	}
}

// exec runs line on the agent and waits for its end; ctx's end cancels it
// there (as Ctrl-C does in a local shell).
func (c *client) exec(ctx context.Context, line string) error {
	return c.ended(c.s.Exec(ctx, line))
}

// scriptExec is exec for a script or -c: !quit ends them here, as it
// ends a local script, without a word to the agent (which answers an
// interactive !quit by naming !shutdown: the agent is not the shell's to
// stop).
func (c *client) scriptExec(ctx context.Context, line string) error {
	if isQuit(line) {
		return errQuit
	}
	return c.exec(ctx, line)
}

// isQuit reports whether line is !quit (or !exit), as the shell reads it.
func isQuit(line string) bool {
	words, err := tokenize(strings.TrimSpace(line))
	if err != nil || len(words) == 0 {
		return false
	}
	cmd, _, err := resolve(words)
	return err == nil && cmd.Name == "!quit"
}

// ended passes err on, but for the session's end by a !shutdown of the
// node: errQuit, which ends an attached shell with status 0 as it ends a
// local one.
func (c *client) ended(err error) error {
	var end *node.AttachEnded
	if errors.As(err, &end) && end.Shutdown {
		c.printf("%s\n", c.pal.dim(clean(end.Reason)+"; exiting"))
		return errQuit
	}
	return err
}

// errorLine prints err on stderr, cleaned once here: a command's error
// comes raw from the agent, as it would be in a local shell.
func (c *client) errorLine(err error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	fmt.Fprintln(c.errw, errorText(c.pal, err))
}

func (c *client) printf(format string, args ...any) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	fmt.Fprintf(c.out, format, args...)
}

// Do is readline's AutoCompleter: the agent completes, from its own view
// of the cluster.
func (c *client) Do(line []rune, pos int) ([][]rune, int) {
	typing, items, ok := c.s.Complete(string(line[:pos]))
	if !ok {
		return nil, 0
	}
	var cands []string
	for _, it := range items {
		if strings.HasPrefix(it, typing) && completable(it) {
			cands = append(cands, it)
		}
	}
	return completionSuffixes(typing, cands)
}

// interactive is the readline loop of an attached terminal: the prompt,
// completion and history of a local shell; Ctrl-C cancels the running
// command on the agent; Ctrl-D detaches.
func (c *client) interactive(historyFile string) int {
	cmd := interrupts{echo: func() { c.printf("^C\n") }} // where the key reached the command
	rl, stdin, hist, histErr, err := openTerminal(c.s.Prompt, historyFile, c, c.pal.on, ttyHooks{raw: cmd.rawMode, interrupt: cmd.interrupt})
	if err != nil {
		c.errorLine(fmt.Errorf("terminal: %w", err))
		return 1
	}
	defer hist.close()
	defer rl.Close()
	defer stdin.Close()
	stopSusp := ignoreSuspend()
	defer stopSusp()
	c.wmu.Lock()
	c.out, c.errw = rl.Stdout(), rl.Stderr()
	c.onPrompt = func() { setPrompt(rl, c.s.Prompt()); rl.Refresh() }
	c.wmu.Unlock()
	if histErr != nil {
		c.errorLine(fmt.Errorf("history is not saved: %v (see --history-file)", histErr))
	}
	c.printf("%s\n", c.pal.dim(fmt.Sprintf("attached to %s: its commands run as it; Ctrl-D detaches and leaves it running", clean(c.s.Alias()))))

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, append([]os.Signal{os.Interrupt}, leaveSignals...)...)
	defer signal.Stop(sigs)
	go func() {
		for {
			select {
			case sig := <-sigs:
				if sig == os.Interrupt {
					cmd.interrupt()
				} else {
					rl.Terminal.ExitRawMode()
					os.Exit(exitCode(sig)) // detaching leaves the agent as it is
				}
			case <-c.s.Done():
				rl.Operation.Close() // Readline returns io.EOF
				stdin.Close()
				return
			}
		}
	}()
	for {
		setPrompt(rl, c.s.Prompt())
		line, err := rl.Readline()
		select {
		case <-c.s.Done():
			// The last words replace the prompt, drawn already or drawn
			// again by readline (with no prompt, nothing) below them.
			rl.SetPrompt("")
			c.printf("\r\x1b[K")
			if err := c.ended(c.s.Err()); !errors.Is(err, errQuit) {
				c.errorLine(err)
				return 1
			}
			return 0
		default:
		}
		if errors.Is(err, readline.ErrInterrupt) {
			continue // the line is cleared
		}
		if err != nil { // io.EOF: Ctrl-D
			c.printf("%s\n", c.pal.dim(fmt.Sprintf("detached; %s keeps running", clean(c.s.Alias()))))
			return 0
		}
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		hist.save(rl, line)
		ctx, stop := context.WithCancel(context.Background())
		cmd.start(stop)
		echoBack := echoOff(readline.GetStdin())
		err = c.exec(ctx, line)
		echoBack()
		cmd.done()
		stop()
		if status, over := c.afterCommand(err); over {
			return status
		}
	}
}

// afterCommand prints the error of an interactive command and says
// whether the shell is over, with its exit status: after a !shutdown of
// the node (0), or when the session ended under the command (1: any error
// but the command's own failure). That end is said here, once: the loop
// returns without reading another line, so it is not said again in place
// of the next prompt.
func (c *client) afterCommand(err error) (status int, over bool) {
	var failed node.AttachFailed
	switch {
	case err == nil:
		return 0, false
	case errors.Is(err, errQuit):
		return 0, true
	case errors.As(err, &failed):
		c.errorLine(err)
		return 0, false
	}
	c.errorLine(err)
	return 1, true
}
