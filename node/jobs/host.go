package jobs

import (
	"errors"

	"github.com/sirupsen/logrus"

	"meshell/manager"
	"meshell/protocol"
)

// Host is what the job plane needs from its node: who it is, who is in the
// cluster, a way to reach a peer and the operator keys. Its methods are
// called on any goroutine, concurrently, and must not block: Send hands a
// message to the peer's queue or fails.
type Host interface {
	Alias() string
	Cluster() string
	Running() bool                               // the node takes part in a cluster
	Members() *manager.Snapshot                  // the latest membership snapshot; a new pointer after every change
	Connected(alias string) bool                 // a connection to alias is up
	Send(alias string, m protocol.Message) error // without blocking: ErrNotConnected, ErrQueueFull
	// Sign signs op and args for target with the node's operator key; nil
	// and no error when it has none.
	Sign(op string, args []string, target string) (*protocol.Signature, error)
	// Verify checks a signature when the node requires operators' (nil
	// otherwise); operator.ErrNotSigned when one is required and sig is nil.
	Verify(op string, args []string, sig *protocol.Signature) error
	// Warn logs a warning a peer can trigger, at most once per kind per period.
	Warn(kind string, fields logrus.Fields, msg string)
}

// ErrNotRunning is returned by operations that need a node in a cluster.
var ErrNotRunning = errors.New("this node is not in a cluster: run !start_cluster or !join_cluster first")

// ErrNotConnected is what Host.Send returns when the peer has no
// connection: the dispatcher prefers other workers until it is back.
var ErrNotConnected = errors.New("not connected")

// ErrQueueFull is what Host.Send returns when the peer's queue is full: a
// worker's answers then wait in a bounded queue of its own (replies.go).
var ErrQueueFull = errors.New("outbound queue full")
