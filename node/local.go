package node

import (
	"meshell/node/attach"
	"meshell/protocol"
)

// The local control socket (meshell attach), re-exported so that the
// shell imports node alone: the socket's place and checks live in
// node/attach, its one message in protocol.

type (
	Local     = protocol.Local // one frame on the socket
	LocalOp   = protocol.LocalOp
	LocalConn = attach.Conn // one side of a conversation on the socket
	Socket    = attach.Found
)

const (
	LocalHello       = protocol.LocalHello
	LocalExec        = protocol.LocalExec
	LocalInterrupt   = protocol.LocalInterrupt
	LocalComplete    = protocol.LocalComplete
	LocalCompletions = protocol.LocalCompletions
	LocalStdout      = protocol.LocalStdout
	LocalStderr      = protocol.LocalStderr
	LocalDone        = protocol.LocalDone
	LocalPrompt      = protocol.LocalPrompt
	LocalBye         = protocol.LocalBye
	LocalKeepalive   = protocol.LocalKeepalive
	LocalInteractive = protocol.LocalInteractive
	LocalColor       = protocol.LocalColor
	MaxLocalItems    = protocol.MaxLocalItems
	SocketExt        = attach.Ext
)

var (
	ErrSocketInUse = attach.ErrInUse
	ListenLocal    = attach.Listen
	NewLocalConn   = attach.NewConn
	CheckLocalPeer = attach.CheckPeer
	LocalSockets   = attach.List
	SocketDir      = attach.Dir
	SocketPath     = attach.Path
)
