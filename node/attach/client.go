package attach

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"meshell/protocol"
)

// Hello is what a client says of its terminal.
type Hello struct {
	Interactive bool // a terminal: progress bars, redrawn frames
	Color       bool // colour the output
}

// Output receives what the agent says unasked, from the client's reader:
// the running command's output (cleaned by the agent) and a new prompt.
type Output interface {
	Write(stderr bool, data string)
	PromptChanged()
}

// Failed is a command's failure on the agent, as it said it.
type Failed string

func (e Failed) Error() string { return string(e) }

// Ended is why a session is over. Shutdown: the node was stopped by a
// !shutdown, which ends an attached shell as well as it ends a local one.
type Ended struct {
	Reason   string
	Shutdown bool
}

func (e *Ended) Error() string { return "the session ended: " + e.Reason }

// dialHelloTimeout bounds the wait for the agent's hello (a variable for
// tests).
var dialHelloTimeout = helloTimeout

// completeTimeout bounds the wait for the agent's completions.
const completeTimeout = 2 * time.Second

// Client is the attaching side of a session.
type Client struct {
	k     *conn
	alias string
	out   Output

	mu     sync.Mutex
	prompt string

	done   chan *protocol.Local // the running command's end
	comps  chan *protocol.Local // completions asked for
	closed chan struct{}        // the session ended; why is in end
	end    *Ended
}

// Dial opens a session on the socket at path and says hello.
func Dial(path string, h Hello, out Output) (*Client, error) {
	nc, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no node listens at %s (meshell attach lists the sockets found)", path)
		}
		if errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("no node listens at %s: the socket is stale, left by a node that exited (the next node of that alias replaces it)", path)
		}
		return nil, fmt.Errorf("cannot attach to %s: %w", path, err)
	}
	if uc, ok := nc.(*net.UnixConn); ok {
		if err := checkAgent(uc, path); err != nil {
			nc.Close() // before a byte of it is read
			return nil, err
		}
	}
	c := &Client{k: newConn(nc), out: out,
		done: make(chan *protocol.Local, 1), comps: make(chan *protocol.Local, 1), closed: make(chan struct{})}
	var flags uint8
	if h.Interactive {
		flags |= protocol.LocalInteractive
	}
	if h.Color {
		flags |= protocol.LocalColor
	}
	serr := c.k.Send(&protocol.Local{Op: protocol.LocalHello, Flags: flags})
	// A node answers a hello at once (busy or refused included); one that
	// does not, stopped (SIGSTOP) or no meshell at all, would hold the
	// shell for the whole Idle.
	silent := time.AfterFunc(dialHelloTimeout, func() { nc.SetReadDeadline(time.Now()) })
	m, err := c.k.Recv() // a refusal may be waiting even when the hello could not be written
	if !silent.Stop() && errors.Is(err, os.ErrDeadlineExceeded) {
		err = fmt.Errorf("no answer within %v: its node is stopped or hung, or it is no meshell socket", dialHelloTimeout)
	}
	switch {
	case err != nil && serr != nil:
		err = fmt.Errorf("cannot attach to %s: %w", path, serr)
	case err != nil:
		err = fmt.Errorf("cannot attach to %s: %w", path, err)
	case m.Op == protocol.LocalBye:
		err = fmt.Errorf("%s: %s", path, m.Data)
	case m.Op != protocol.LocalHello:
		err = fmt.Errorf("%s: unexpected answer (op %d): is it a meshell socket?", path, m.Op)
	}
	if err != nil {
		c.k.Close()
		return nil, err
	}
	c.alias, c.prompt = m.Line, m.Data
	go c.read()
	return c, nil
}

// read routes the agent's frames: output and prompts to Output, the end
// of a command and completions to whoever waits for them.
func (c *Client) read() {
	end := &Ended{Reason: "the connection closed"}
	defer func() { c.end = end; close(c.closed) }()
	for {
		m, err := c.k.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				end.Reason = err.Error()
			}
			return
		}
		switch m.Op {
		case protocol.LocalStdout, protocol.LocalStderr:
			c.out.Write(m.Op == protocol.LocalStderr, m.Data)
		case protocol.LocalDone:
			select {
			case c.done <- m:
			default: // nothing waits: not ours
			}
		case protocol.LocalCompletions:
			select {
			case c.comps <- m:
			default:
			}
		case protocol.LocalPrompt:
			c.mu.Lock()
			c.prompt = m.Data
			c.mu.Unlock()
			c.out.PromptChanged()
		case protocol.LocalBye:
			end.Reason, end.Shutdown = m.Data, m.Status == 0
			return
		}
	}
}

// Alias is the agent's alias, as its hello said.
func (c *Client) Alias() string { return c.alias }

// Prompt is the agent's latest prompt.
func (c *Client) Prompt() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.prompt
}

// Done is closed when the session is over; Err then says why.
func (c *Client) Done() <-chan struct{} { return c.closed }

// Err is nil while the session lasts, then an *Ended.
func (c *Client) Err() error {
	select {
	case <-c.closed:
		return c.end
	default:
		return nil
	}
}

// Exec runs line on the agent and waits for its end; ctx's end cancels it
// there (as Ctrl-C does in a local shell). The error is a Failed when the
// command failed, an *Ended when the session is over.
func (c *Client) Exec(ctx context.Context, line string) error {
	if err := c.k.Send(&protocol.Local{Op: protocol.LocalExec, Line: line}); err != nil {
		return fmt.Errorf("the session ended: %w", err)
	}
	interrupted := false
	for {
		select {
		case m := <-c.done:
			if m.Status != 0 {
				return Failed(m.Data)
			}
			return nil
		case <-ctx.Done():
			if !interrupted {
				interrupted = true
				c.k.Send(&protocol.Local{Op: protocol.LocalInterrupt})
			}
			ctx = context.Background() // wait for the command's end
		case <-c.closed:
			return c.end
		}
	}
}

// Complete asks the agent to complete line: typing is the end of line
// its items start with. ok is false when no answer came in time.
func (c *Client) Complete(line string) (typing string, items []string, ok bool) {
	select {
	case <-c.comps: // a late answer to an earlier question
	default:
	}
	if c.k.Send(&protocol.Local{Op: protocol.LocalComplete, Line: line}) != nil {
		return "", nil, false
	}
	t := time.NewTimer(completeTimeout)
	defer t.Stop()
	select {
	case m := <-c.comps:
		if m.Pos < 0 || int(m.Pos) > len(line) {
			return "", nil, false
		}
		return line[len(line)-int(m.Pos):], m.Items, true
	case <-t.C:
	case <-c.closed:
	}
	return "", nil, false
}

// Close ends the session: detaching leaves the agent running.
func (c *Client) Close() error { return c.k.Close() }
