package repl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"

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

// ListenSocket serves shells of n on its control socket at path: each
// session runs its commands as n (it adds no member) and sees its events.
func ListenSocket(n *node.Node, path string, log logrus.FieldLogger) (*node.AttachServer, error) {
	return listenSocket(n, path, log, 0)
}

// listenSocket is ListenSocket with a hello timeout (0: the default).
func listenSocket(n *node.Node, path string, log logrus.FieldLogger, hello time.Duration) (*node.AttachServer, error) {
	return n.ServeAttach(path, node.AttachConfig{Log: log, HelloTimeout: hello,
		NewShell: func(h node.AttachHello, stdout, stderr io.Writer) node.AttachShell {
			return attachedShell{New(n, Options{Out: stdout, Err: stderr, Color: h.Color, Interactive: h.Interactive})}
		}})
}

// attachedShell is a session's shell on the agent.
type attachedShell struct{ sh *Shell }

// attachedQuit answers !quit in a session: the agent, named, is not this
// shell's to stop; the !shutdown that would stop it is given whole.
func attachedQuit(alias string) error {
	return fmt.Errorf("!quit would stop the node you are attached to, %s: use !shutdown %s to stop it, or Ctrl-D to detach and leave it running", alias, alias)
}

func (a attachedShell) Exec(ctx context.Context, line string) error {
	err := a.sh.Exec(ctx, line)
	if errors.Is(err, errShutDown) {
		return nil // the session's end says so
	}
	if errors.Is(err, errQuit) {
		err = attachedQuit(a.sh.Node.Alias())
	}
	if err != nil {
		// Raw, as the local shell keeps it: the client cleans it once,
		// where it prints it. Cut to bound the frame, far beyond the
		// lineCap runes the client shows.
		return errors.New(cutUTF8(err.Error(), maxErrorBytes))
	}
	return nil
}

// maxErrorBytes bounds the text of a command's error sent to the client:
// one frame (under protocol.MaxLocalData), and more than the client shows.
const maxErrorBytes = 64 << 10

// cutUTF8 is s cut to at most max bytes, not within a UTF-8 sequence.
func cutUTF8(s string, max int) string {
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && i > max-utf8.UTFMax && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

func (a attachedShell) Complete(line string) (string, []string) { return a.sh.completions(line) }
func (a attachedShell) Prompt() string                          { return a.sh.Prompt() }
func (a attachedShell) Close()                                  { a.sh.setEvents(false, false) }
