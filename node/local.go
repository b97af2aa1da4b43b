package node

import (
	"meshell/node/attach"
)

// The local control socket (meshell attach), re-exported so that the
// shell imports node alone: the socket's place, its checks and its
// conversation live in node/attach.

type (
	Socket       = attach.Found  // a socket found in a directory
	AttachHello  = attach.Hello  // what a client says of its terminal
	AttachShell  = attach.Shell  // the shell that runs a session's commands
	AttachConfig = attach.Config // the shell's side of a server
	AttachServer = attach.Server
	AttachClient = attach.Client
	AttachOutput = attach.Output // where a client's output and prompts go
	AttachFailed = attach.Failed // a command's failure on the agent
	AttachEnded  = attach.Ended  // why a session is over
)

const (
	MaxAttachSessions = attach.MaxSessions
	SocketExt         = attach.Ext
)

var (
	ErrSocketInUse = attach.ErrInUse
	DialAttach     = attach.Dial
	LocalSockets   = attach.List
	SocketDir      = attach.Dir
	SocketPath     = attach.Path
)

// ServeAttach listens on the control socket at path and serves sessions
// there: each runs its commands as this node on a shell that cfg makes,
// its prompt follows membership, and a !shutdown ends it.
func (n *Node) ServeAttach(path string, cfg AttachConfig) (*AttachServer, error) {
	return attach.Serve(path, cfg, attach.Host{Alias: n.Alias, Shutdown: n.ShutdownRequested(), Changes: n.changes})
}

// changes receives, without blocking the hub, after membership events;
// several events coalesce into one wake-up, since a prompt shows only the
// latest state. It ends when stop is closed.
func (n *Node) changes(stop <-chan struct{}) <-chan struct{} {
	sub := n.Subscribe(16)
	c := make(chan struct{}, 1)
	go func() {
		defer sub.Close()
		for {
			select {
			case <-sub.C:
				select {
				case c <- struct{}{}:
				default:
				}
			case <-stop:
				return
			}
		}
	}()
	return c
}
