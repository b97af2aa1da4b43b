// Package attach is the local control socket of a node (meshell attach):
// where it lives, who may open it, and the framed, bounded conversation
// over it. It knows nothing of shells or commands: package repl serves
// sessions on it and drives the client. It imports only protocol; node re-exports it (node/local.go), so that the shell imports node alone.
package attach
