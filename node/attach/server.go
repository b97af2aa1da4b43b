package attach

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"meshell/protocol"
)

// MaxSessions bounds the sessions attached to one node at once; one more
// is told so and closed.
const MaxSessions = 16

// helloTimeout is how long a new connection has to say hello, by default.
const helloTimeout = 5 * time.Second

// Shell runs one session's commands on the agent; the shell makes one per
// session (Config.NewShell) with the session's stdout and stderr.
type Shell interface {
	// Exec runs line; ctx ends when the client interrupts it. The error's
	// text goes to the client as it is: clean it.
	Exec(ctx context.Context, line string) error
	// Complete returns the end of line being typed and its candidates.
	Complete(line string) (typing string, items []string)
	Prompt() string
	Close() // the session is over
}

// Config is the shell's side of a server.
type Config struct {
	NewShell     func(h Hello, stdout, stderr io.Writer) Shell
	Log          logrus.FieldLogger
	HelloTimeout time.Duration // a new connection's time to say hello; 0 = 5 s
}

// Host is the node's side of a server.
type Host struct {
	Alias    func() string
	Shutdown <-chan struct{} // closed by a !shutdown: sessions end, and their shells with status 0
	// Changes returns a channel that receives when the prompt may have
	// changed (membership), until stop is closed.
	Changes func(stop <-chan struct{}) <-chan struct{}
}

// Server serves shells on a node's control socket: each session runs its
// commands as that node (it adds no member) and sees its events. Closing
// the server ends every session and removes the socket.
type Server struct {
	cfg  Config
	host Host
	ln   *net.UnixListener
	path string

	sem  chan struct{} // one token per session
	stop chan struct{}
	wg   sync.WaitGroup

	mu       sync.Mutex
	sessions map[*conn]bool
	lastWarn time.Time // refused peers are logged once per 10 s
	held     int
}

// Serve listens on path (see Listen) and serves sessions there.
func Serve(path string, cfg Config, host Host) (*Server, error) {
	if cfg.HelloTimeout <= 0 {
		cfg.HelloTimeout = helloTimeout
	}
	ln, err := Listen(path)
	if err != nil {
		return nil, err
	}
	if w := DirWarning(path); w != "" && cfg.Log != nil {
		cfg.Log.Warn(w)
	}
	srv := &Server{cfg: cfg, host: host, ln: ln, path: path, sem: make(chan struct{}, MaxSessions),
		stop: make(chan struct{}), sessions: map[*conn]bool{}}
	srv.wg.Add(1)
	go srv.accept()
	return srv, nil
}

// Path is the socket's path.
func (srv *Server) Path() string { return srv.path }

// Close stops listening and ends every session: a command still running
// gets up to a second to finish and say so (a !shutdown of this node
// itself), then each client is told why and disconnected. The socket is
// removed.
func (srv *Server) Close() {
	if srv == nil {
		return // no socket (--socket none): nothing to close
	}
	select {
	case <-srv.stop:
		return
	default:
	}
	close(srv.stop)
	srv.ln.Close()
	done := make(chan struct{})
	go func() { srv.wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-time.After(2 * time.Second): // a client that reads nothing
	}
	srv.mu.Lock()
	for k := range srv.sessions {
		k.Close()
	}
	srv.mu.Unlock()
	<-done
}

func (srv *Server) accept() {
	defer srv.wg.Done()
	for {
		c, err := srv.ln.AcceptUnix()
		if err != nil {
			select {
			case <-srv.stop:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(50 * time.Millisecond) // out of descriptors, say: do not spin
			continue
		}
		k := newConn(c)
		if err := checkPeer(c); err != nil {
			srv.warn(err)
			k.Send(&protocol.Local{Op: protocol.LocalBye, Data: "refused: " + err.Error(), Status: 1})
			k.Close()
			continue
		}
		select {
		case srv.sem <- struct{}{}:
		default:
			k.Send(&protocol.Local{Op: protocol.LocalBye, Data: fmt.Sprintf("busy: %d sessions are attached already; detach one first", MaxSessions), Status: 1})
			k.Close()
			continue
		}
		srv.mu.Lock()
		srv.sessions[k] = true
		srv.mu.Unlock()
		srv.wg.Add(1)
		go func() {
			defer srv.wg.Done()
			srv.session(k)
			srv.mu.Lock()
			delete(srv.sessions, k)
			srv.mu.Unlock()
			k.Close()
			<-srv.sem
		}()
	}
}

// shutdownRequested reports whether a !shutdown stopped the node.
func (srv *Server) shutdownRequested() bool {
	select {
	case <-srv.host.Shutdown:
		return true
	default:
		return false
	}
}

// warn logs a refused connection, at most once per 10 s.
func (srv *Server) warn(err error) {
	srv.mu.Lock()
	if time.Since(srv.lastWarn) < 10*time.Second {
		srv.held++
		srv.mu.Unlock()
		return
	}
	held := srv.held
	srv.lastWarn, srv.held = time.Now(), 0
	srv.mu.Unlock()
	srv.cfg.Log.WithError(err).WithField("suppressed", held).Warn("control socket: connection refused")
}

// sessionWriter sends what a session's shell prints as frames of op.
type sessionWriter struct {
	k  *conn
	op protocol.LocalOp
}

func (w sessionWriter) Write(p []byte) (int, error) {
	if err := w.k.Send(&protocol.Local{Op: w.op, Data: string(p)}); err != nil {
		return 0, err
	}
	return len(p), nil
}

// session is one attached shell: a hello, then commands one at a time
// (Ctrl-C cancels the one running), completions at the prompt, and the
// prompt pushed as membership changes.
func (srv *Server) session(k *conn) {
	helloC := make(chan *protocol.Local, 1)
	go func() {
		m, err := k.Recv()
		if err != nil || m.Op != protocol.LocalHello {
			m = nil
		}
		helloC <- m
	}()
	var hello *protocol.Local
	t := time.NewTimer(srv.cfg.HelloTimeout)
	select {
	case hello = <-helloC:
	case <-t.C:
	case <-srv.stop:
	}
	t.Stop()
	if hello == nil {
		k.Close() // ends the read above too
		return
	}
	sh := srv.cfg.NewShell(Hello{Interactive: hello.Flags&protocol.LocalInteractive != 0, Color: hello.Flags&protocol.LocalColor != 0},
		sessionWriter{k, protocol.LocalStdout}, sessionWriter{k, protocol.LocalStderr})
	defer sh.Close()
	if k.Send(&protocol.Local{Op: protocol.LocalHello, Line: srv.host.Alias(), Data: sh.Prompt()}) != nil {
		return
	}
	// The running command: its cancel, and a channel closed when it has
	// ended and said so. One at a time.
	var cmu sync.Mutex
	var cancel context.CancelFunc
	var finished chan struct{}
	waitCommand := func(limit time.Duration) {
		cmu.Lock()
		f := finished
		cmu.Unlock()
		if f != nil {
			t := time.NewTimer(limit)
			defer t.Stop()
			select {
			case <-f:
			case <-t.C:
			}
		}
	}
	ended := make(chan struct{})
	defer close(ended)
	var changes <-chan struct{}
	if srv.host.Changes != nil {
		changes = srv.host.Changes(ended)
	}
	go func() { // the prompt follows the cluster; a !shutdown or the server's end ends the session
		bye := &protocol.Local{Op: protocol.LocalBye}
		for {
			select {
			case <-changes:
				k.Send(&protocol.Local{Op: protocol.LocalPrompt, Data: sh.Prompt()})
				continue
			case <-srv.host.Shutdown:
				bye.Data = "this node was shut down by !shutdown" // Status 0: as a local shell, it ends well
			case <-srv.stop:
				bye.Data, bye.Status = "the node is exiting", 1
				if srv.shutdownRequested() {
					bye.Data, bye.Status = "this node was shut down by !shutdown", 0
				}
			case <-ended:
				return
			}
			waitCommand(time.Second)
			k.Send(bye)
			k.Close()
			return
		}
	}()
	defer func() {
		cmu.Lock()
		if cancel != nil {
			cancel()
		}
		cmu.Unlock()
		waitCommand(time.Minute) // a cancelled command returns at once; bounded all the same
	}()
	for {
		m, err := k.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				srv.cfg.Log.WithError(err).Debug("control socket: session ended")
			}
			return
		}
		switch m.Op {
		case protocol.LocalExec:
			ctx, stop := context.WithCancel(context.Background())
			fin := make(chan struct{})
			cmu.Lock()
			busy := cancel != nil
			if !busy {
				cancel, finished = stop, fin
			}
			cmu.Unlock()
			if busy {
				stop()
				k.Send(&protocol.Local{Op: protocol.LocalDone, Status: 1, Data: "a command is running: wait for it or Ctrl-C it"})
				continue
			}
			go func(line string) {
				defer close(fin)
				err := sh.Exec(ctx, line)
				stop()
				cmu.Lock()
				cancel = nil // the client may send the next line as soon as it reads the end
				cmu.Unlock()
				done := &protocol.Local{Op: protocol.LocalDone}
				if err != nil {
					done.Status, done.Data = 1, err.Error()
				}
				k.Send(done)
				k.Send(&protocol.Local{Op: protocol.LocalPrompt, Data: sh.Prompt()})
				cmu.Lock()
				if finished == fin {
					finished = nil
				}
				cmu.Unlock()
			}(m.Line)
		case protocol.LocalInterrupt:
			cmu.Lock()
			if cancel != nil {
				cancel()
			}
			cmu.Unlock()
		case protocol.LocalComplete:
			typing, items := sh.Complete(m.Line)
			if len(items) > protocol.MaxLocalItems {
				items = items[:protocol.MaxLocalItems]
			}
			k.Send(&protocol.Local{Op: protocol.LocalCompletions, Pos: int32(len(typing)), Items: items})
		default:
			k.Send(&protocol.Local{Op: protocol.LocalBye, Data: fmt.Sprintf("unexpected frame (op %d): closing", m.Op), Status: 1})
			return
		}
	}
}
