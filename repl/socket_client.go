package repl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"time"

	"github.com/chzyer/readline"

	"meshell/node"
)

// AttachOptions configure Attach.
type AttachOptions struct {
	In          io.Reader
	Out, Err    io.Writer
	Interactive bool   // In and Out are a terminal: a readline prompt
	Color       bool   // colour on Out
	Command     string // with HasCommand: run this one command and exit with its status
	HasCommand  bool
	KeepGoing   bool   // script: go on after a failed command (the status is still 1)
	HistoryFile string // interactive only; "" keeps none
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
		if err := node.ValidAlias(target); err != nil {
			return fail(fmt.Errorf("%q is neither a socket's path nor an alias: %w", target, err))
		}
		path = node.SocketPath(target)
	}
	c, err := dialAgent(path, o)
	if err != nil {
		return fail(err)
	}
	defer c.k.Close()
	switch {
	case o.HasCommand:
		err := c.exec(context.Background(), o.Command)
		if err != nil && !errors.Is(err, errQuit) {
			c.errorLine(err)
			return 1
		}
		return 0
	case !o.Interactive:
		stop := make(chan os.Signal, 1)
		signal.Notify(stop, os.Interrupt)
		defer signal.Stop(stop)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-stop:
				cancel()
			case <-c.closed:
			}
		}()
		return runScript(ctx, o.In, o.KeepGoing, c.exec, c.errorLine, c.closed)
	}
	return c.interactive(o.HistoryFile)
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

// client is the attaching side of a session.
type client struct {
	k     *node.LocalConn
	alias string
	pal   palette

	wmu       sync.Mutex
	out, errw io.Writer
	prompt    string
	onPrompt  func() // redraws the prompt; nil outside the interactive loop

	done    chan *node.Local // the running command's end
	comps   chan *node.Local // completions asked for
	closed  chan struct{}    // the session ended; why is in reason
	reason  string
	stopped bool // the session ended because the node was shut down
}

// dialAgent connects and says hello.
func dialAgent(path string, o AttachOptions) (*client, error) {
	nc, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no node listens at %s (meshell attach lists the sockets found)", path)
		}
		return nil, fmt.Errorf("cannot attach to %s: %w", path, err)
	}
	c := &client{k: node.NewLocalConn(nc), pal: palette{on: o.Color}, out: o.Out, errw: o.Err,
		done: make(chan *node.Local, 1), comps: make(chan *node.Local, 1), closed: make(chan struct{})}
	var flags uint8
	if o.Interactive {
		flags |= node.LocalInteractive
	}
	if o.Color {
		flags |= node.LocalColor
	}
	serr := c.k.Send(&node.Local{Op: node.LocalHello, Flags: flags})
	m, err := c.k.Recv() // a refusal may be waiting even when the hello could not be written
	switch {
	case err != nil && serr != nil:
		c.k.Close()
		return nil, fmt.Errorf("cannot attach to %s: %w", path, serr)
	case err != nil:
		c.k.Close()
		return nil, fmt.Errorf("cannot attach to %s: %w", path, err)
	case m.Op == node.LocalBye:
		c.k.Close()
		return nil, fmt.Errorf("%s: %s", path, m.Data)
	case m.Op != node.LocalHello:
		c.k.Close()
		return nil, fmt.Errorf("%s: unexpected answer (op %d): is it a meshell socket?", path, m.Op)
	}
	c.alias, c.prompt = m.Line, m.Data
	go c.read()
	return c, nil
}

// read routes the agent's frames: output to the writers, the end of a
// command and completions to whoever waits for them.
func (c *client) read() {
	defer close(c.closed)
	for {
		m, err := c.k.Recv()
		if err != nil {
			c.reason = "the connection closed"
			if !errors.Is(err, io.EOF) {
				c.reason = err.Error()
			}
			return
		}
		switch m.Op {
		case node.LocalStdout, node.LocalStderr:
			c.wmu.Lock()
			w := c.out
			if m.Op == node.LocalStderr {
				w = c.errw
			}
			io.WriteString(w, m.Data) // the agent cleaned what came from the network
			c.wmu.Unlock()
		case node.LocalDone:
			select {
			case c.done <- m:
			default: // nothing waits: not ours
			}
		case node.LocalCompletions:
			select {
			case c.comps <- m:
			default:
			}
		case node.LocalPrompt:
			c.wmu.Lock()
			c.prompt = m.Data
			redraw := c.onPrompt
			c.wmu.Unlock()
			if redraw != nil {
				redraw()
			}
		case node.LocalBye:
			c.reason, c.stopped = m.Data, m.Status == 0
			return
		}
	}
}

// remoteError is a command's failure on the agent, as it said it.
type remoteError string

func (e remoteError) Error() string { return string(e) }

// exec runs line on the agent and waits for its end; ctx's end cancels it
// there (as Ctrl-C does in a local shell).
func (c *client) exec(ctx context.Context, line string) error {
	if err := c.k.Send(&node.Local{Op: node.LocalExec, Line: line}); err != nil {
		return fmt.Errorf("the session ended: %w", err)
	}
	interrupted := false
	for {
		select {
		case m := <-c.done:
			if m.Status != 0 {
				return remoteError(m.Data)
			}
			return nil
		case <-ctx.Done():
			if !interrupted {
				interrupted = true
				c.k.Send(&node.Local{Op: node.LocalInterrupt})
			}
			ctx = context.Background() // wait for the command's end
		case <-c.closed:
			return c.ended()
		}
	}
}

// ended is why the session is over: errQuit when the node was shut down,
// which ends an attached shell with status 0 as it ends a local one.
func (c *client) ended() error {
	if c.stopped {
		c.printf("%s\n", c.pal.dim(clean(c.reason)+"; exiting"))
		return errQuit
	}
	return fmt.Errorf("the session ended: %s", c.reason)
}

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

func (c *client) getPrompt() string {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.prompt
}

// Do is readline's AutoCompleter: the agent completes, from its own view
// of the cluster.
func (c *client) Do(line []rune, pos int) ([][]rune, int) {
	select {
	case <-c.comps: // a late answer to an earlier question
	default:
	}
	if c.k.Send(&node.Local{Op: node.LocalComplete, Line: string(line[:pos])}) != nil {
		return nil, 0
	}
	t := time.NewTimer(2 * time.Second)
	defer t.Stop()
	select {
	case m := <-c.comps:
		if int(m.Pos) > pos || int(m.Pos) > len(string(line[:pos])) {
			return nil, 0
		}
		typing := string(line[:pos])[len(string(line[:pos]))-int(m.Pos):]
		var cands []string
		for _, it := range m.Items {
			if strings.HasPrefix(it, typing) && completable(it) {
				cands = append(cands, it)
			}
		}
		return completionSuffixes(typing, cands)
	case <-t.C:
	case <-c.closed:
	}
	return nil, 0
}

// interactive is the readline loop of an attached terminal: the prompt,
// completion and history of a local shell; Ctrl-C cancels the running
// command on the agent; Ctrl-D detaches.
func (c *client) interactive(historyFile string) int {
	rl, stdin, histErr, err := openTerminal(c.getPrompt, historyFile, c, c.pal.on)
	if err != nil {
		c.errorLine(fmt.Errorf("terminal: %w", err))
		return 1
	}
	defer rl.Close()
	defer stdin.Close()
	stopSusp := ignoreSuspend()
	defer stopSusp()
	c.wmu.Lock()
	c.out, c.errw = rl.Stdout(), rl.Stderr()
	c.onPrompt = func() { rl.SetPrompt(c.getPrompt()); rl.Refresh() }
	c.wmu.Unlock()
	if histErr != nil {
		c.errorLine(fmt.Errorf("history is not saved: %v (see --history-file)", histErr))
	}
	c.printf("%s\n", c.pal.dim(fmt.Sprintf("attached to %s: its commands run as it; Ctrl-D detaches and leaves it running", clean(c.alias))))

	var mu sync.Mutex
	var cancel context.CancelFunc
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, append([]os.Signal{os.Interrupt}, leaveSignals...)...)
	defer signal.Stop(sigs)
	go func() {
		for {
			select {
			case sig := <-sigs:
				mu.Lock()
				if cancel != nil {
					cancel()
				}
				mu.Unlock()
				if sig != os.Interrupt {
					rl.Terminal.ExitRawMode()
					os.Exit(exitCode(sig)) // detaching leaves the agent as it is
				}
			case <-c.closed:
				rl.Operation.Close() // Readline returns io.EOF
				stdin.Close()
				return
			}
		}
	}()
	for {
		rl.SetPrompt(c.getPrompt())
		line, err := rl.Readline()
		select {
		case <-c.closed:
			if err := c.ended(); !errors.Is(err, errQuit) {
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
			c.printf("%s\n", c.pal.dim(fmt.Sprintf("detached; %s keeps running", clean(c.alias))))
			return 0
		}
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		saveHistory(rl, line)
		ctx, stop := context.WithCancel(context.Background())
		mu.Lock()
		cancel = stop
		mu.Unlock()
		echoBack := echoOff(readline.GetStdin())
		err = c.exec(ctx, line)
		echoBack()
		mu.Lock()
		cancel = nil
		mu.Unlock()
		if ctx.Err() != nil {
			c.printf("^C\n")
		}
		stop()
		if errors.Is(err, errQuit) {
			return 0
		}
		if err != nil {
			c.errorLine(err)
		}
	}
}
