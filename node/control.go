package node

import "meshell/protocol"

// control answers and sends control-plane commands.
type control struct{ n *Node }

func newControl(n *Node) *control                          { return &control{n: n} }
func (c *control) receive(from string, m protocol.Message) {}
func (c *control) close()                                  {}
