// Package manager holds meshell's bookkeeping that has no I/O: the membership
// table with its precedence rule, and the worker registry with its balancing
// strategies.
//
// Nothing here reads the clock, opens a socket or starts a goroutine; callers
// pass time in. The membership Table is owned by one goroutine (a node's run
// loop) and is not safe for concurrent use; readers elsewhere work from the
// immutable snapshots it hands out.
//
// It imports only protocol; it must not import mesh, node or repl.
package manager
