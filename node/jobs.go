package node

import (
	"meshell/node/swim"
	"meshell/protocol"
)

// Jobs runs and dispatches jobs. (Being written: see the jobs issue.)
type Jobs struct{ n *Node }

func newJobs(n *Node) *Jobs                             { return &Jobs{n: n} }
func (j *Jobs) receive(from string, m protocol.Message) {}
func (j *Jobs) peerDown(alias string)                   {}
func (j *Jobs) memberEvent(ev swim.Event)               {}
func (j *Jobs) close()                                  {}
