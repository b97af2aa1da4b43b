package repl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"meshell/node"
)

// SocketDir is where nodes put their control sockets by default.
func SocketDir() string { return node.SocketDir() }

// SocketPath is the default control socket of alias.
func SocketPath(alias string) string { return node.SocketPath(alias) }

// ErrSocketInUse is wrapped by ListenSocket's error when a running node
// holds the socket.
var ErrSocketInUse = node.ErrSocketInUse

// MaxSessions bounds the sessions attached to one node at once; one more
// is told so and closed.
const MaxSessions = 16

// helloTimeout is how long a new connection has to say hello.
const helloTimeout = 5 * time.Second

// SocketServer serves shells on a node's local control socket: each
// session runs its commands as that node (it adds no member) and sees its
// events. Closing the server ends every session and removes the socket.
type SocketServer struct {
	n    *node.Node
	ln   *net.UnixListener
	path string
	log  logrus.FieldLogger

	hello time.Duration // a new connection's time to say hello

	sem  chan struct{} // one token per session
	stop chan struct{}
	wg   sync.WaitGroup

	mu       sync.Mutex
	sessions map[*node.LocalConn]bool
	lastWarn time.Time // refused peers are logged once per 10 s
	held     int
}

// ListenSocket listens on path (see attach.Listen) and serves n there.
func ListenSocket(n *node.Node, path string, log logrus.FieldLogger) (*SocketServer, error) {
	return listenSocket(n, path, log, helloTimeout)
}

func listenSocket(n *node.Node, path string, log logrus.FieldLogger, hello time.Duration) (*SocketServer, error) {
	ln, err := node.ListenLocal(path)
	if err != nil {
		return nil, err
	}
	srv := &SocketServer{n: n, ln: ln, path: path, log: log, hello: hello, sem: make(chan struct{}, MaxSessions),
		stop: make(chan struct{}), sessions: map[*node.LocalConn]bool{}}
	srv.wg.Add(1)
	go srv.accept()
	return srv, nil
}

// Path is the socket's path.
func (srv *SocketServer) Path() string { return srv.path }

// Close stops listening and ends every session: a command still running
// gets up to a second to finish and say so (a !shutdown of this node
// itself), then each client is told why and disconnected. The socket is
// removed.
func (srv *SocketServer) Close() {
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

func (srv *SocketServer) accept() {
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
		k := node.NewLocalConn(c)
		if err := node.CheckLocalPeer(c); err != nil {
			srv.warn(err)
			k.Send(&node.Local{Op: node.LocalBye, Data: "refused: " + err.Error(), Status: 1})
			k.Close()
			continue
		}
		select {
		case srv.sem <- struct{}{}:
		default:
			k.Send(&node.Local{Op: node.LocalBye, Data: fmt.Sprintf("busy: %d sessions are attached already; detach one first", MaxSessions), Status: 1})
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

// warn logs a refused connection, at most once per 10 s.
// shutdownRequested reports whether a !shutdown stopped the node.
func (srv *SocketServer) shutdownRequested() bool {
	select {
	case <-srv.n.ShutdownRequested():
		return true
	default:
		return false
	}
}

func (srv *SocketServer) warn(err error) {
	srv.mu.Lock()
	if time.Since(srv.lastWarn) < 10*time.Second {
		srv.held++
		srv.mu.Unlock()
		return
	}
	held := srv.held
	srv.lastWarn, srv.held = time.Now(), 0
	srv.mu.Unlock()
	srv.log.WithError(err).WithField("suppressed", held).Warn("control socket: connection refused")
}

// sessionWriter sends what a session's shell prints as frames of op.
type sessionWriter struct {
	k  *node.LocalConn
	op node.LocalOp
}

func (w sessionWriter) Write(p []byte) (int, error) {
	if err := w.k.Send(&node.Local{Op: w.op, Data: string(p)}); err != nil {
		return 0, err
	}
	return len(p), nil
}

// errAttachedQuit answers !quit in a session: the agent is not this
// shell's to stop.
var errAttachedQuit = errors.New("!quit would stop the agent: use !shutdown ALIAS to stop it, or Ctrl-D to detach and leave it running")

// session is one attached shell: a hello, then commands one at a time
// (Ctrl-C cancels the one running), completions at the prompt, and the
// prompt pushed as membership changes.
func (srv *SocketServer) session(k *node.LocalConn) {
	helloC := make(chan *node.Local, 1)
	go func() {
		m, err := k.Recv()
		if err != nil || m.Op != node.LocalHello {
			m = nil
		}
		helloC <- m
	}()
	var hello *node.Local
	t := time.NewTimer(srv.hello)
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
	sh := New(srv.n, Options{
		Out: sessionWriter{k, node.LocalStdout}, Err: sessionWriter{k, node.LocalStderr},
		Color: hello.Flags&node.LocalColor != 0, Interactive: hello.Flags&node.LocalInteractive != 0,
	})
	defer sh.setEvents(false, false)
	if k.Send(&node.Local{Op: node.LocalHello, Line: srv.n.Alias(), Data: sh.Prompt()}) != nil {
		return
	}
	// cmd is the running command: its cancel, and a channel closed when
	// it has ended and said so. One at a time.
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
	sub := srv.n.Subscribe(16)
	defer sub.Close()
	ended := make(chan struct{})
	defer close(ended)
	go func() { // the prompt follows the cluster; a !shutdown or the server's end ends the session
		bye := &node.Local{Op: node.LocalBye}
		for {
			select {
			case <-sub.C:
				k.Send(&node.Local{Op: node.LocalPrompt, Data: sh.Prompt()})
				continue
			case <-srv.n.ShutdownRequested():
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
				srv.log.WithError(err).Debug("control socket: session ended")
			}
			return
		}
		switch m.Op {
		case node.LocalExec:
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
				k.Send(&node.Local{Op: node.LocalDone, Status: 1, Data: "a command is running: wait for it or Ctrl-C it"})
				continue
			}
			go func(line string) {
				defer close(fin)
				err := sh.Exec(ctx, line)
				stop()
				cmu.Lock()
				cancel = nil // the client may send the next line as soon as it reads the end
				cmu.Unlock()
				if errors.Is(err, errQuit) {
					err = errAttachedQuit
				}
				done := &node.Local{Op: node.LocalDone}
				if err != nil {
					done.Status, done.Data = 1, cleanN(err.Error(), lineCap)
				}
				k.Send(done)
				k.Send(&node.Local{Op: node.LocalPrompt, Data: sh.Prompt()})
				cmu.Lock()
				if finished == fin {
					finished = nil
				}
				cmu.Unlock()
			}(m.Line)
		case node.LocalInterrupt:
			cmu.Lock()
			if cancel != nil {
				cancel()
			}
			cmu.Unlock()
		case node.LocalComplete:
			typing, cands := sh.completions(m.Line)
			if len(cands) > node.MaxLocalItems {
				cands = cands[:node.MaxLocalItems]
			}
			k.Send(&node.Local{Op: node.LocalCompletions, Pos: int32(len(typing)), Items: cands})
		default:
			k.Send(&node.Local{Op: node.LocalBye, Data: fmt.Sprintf("unexpected frame (op %d): closing", m.Op), Status: 1})
			return
		}
	}
}
