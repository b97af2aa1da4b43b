// Package attach is the local control socket of a node (meshell attach):
// where it lives, who may open it, and the conversation over it, framed
// and bounded. It speaks in plain Go terms to both sides: a Server runs
// each session's commands on a Shell the shell provides, a Client drives
// one session; the frames stay inside this package and protocol. node
// re-exports it (node/local.go), so that the shell imports node alone.
package attach
