// Package node is one meshell cluster node: it composes the TCP mesh, the
// SWIM core and the membership table, runs jobs for other nodes and answers
// the control plane.
//
// A node has one run loop goroutine that owns the SWIM core (and through it
// the membership table). Everything else talks to the loop through bounded
// channels, or reads the immutable snapshot the loop publishes after each
// change of a member (and after round trips alone at most once a second). Events are offered to subscribers through bounded channels: a slow
// subscriber loses events (counted) and never stalls the loop.
//
// The package knows nothing of terminals, readline or colour; it imports
// mesh, manager, protocol, node/swim and node/metrics.
package node
