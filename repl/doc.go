// Package repl is meshell's shell: the command table, the parser, the
// renderers, the interactive readline loop and the non-interactive script
// runner.
//
// One table (commands.go) drives parsing, !help, tab completion and the
// README's command reference. The shell talks to the cluster only through
// package node and decides alone how things look: colour is chosen once
// (flag, NO_COLOR, TTY) and handed to the renderers, and asynchronous lines
// go through one writer that keeps the prompt intact.
package repl
