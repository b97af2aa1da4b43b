// Package mesh is meshell's TCP transport: a listener, a dialer, and exactly
// one connection per pair of nodes, each introduced by a handshake.
//
// A connection is opened by Hello (joining through a seed, answered with the
// seed's member list) or by Join (introducing oneself to a member, answered
// without one). The first frame must arrive within a deadline and name the
// protocol version and cluster; anything else closes that connection alone.
// When two nodes dial each other at the same moment, both keep the
// connection dialled by the node with the smaller alias; the other is
// half-closed so that frames already written on it are still read.
//
// Each connection has one reader and one writer goroutine. Outbound frames go
// through a bounded queue per peer; when it is full, Send fails with
// ErrQueueFull and the frame is not queued (drop-newest, counted): the caller
// decides what the loss means. Nothing here knows what the messages mean; the
// Handler does.
//
// It imports protocol only.
package mesh
