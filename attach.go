package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"

	"meshell/node"
	"meshell/repl"
)

// attachCmd is `meshell attach [SOCKET|ALIAS] [-c CMD] [flags]`: a shell on
// a running node through its control socket, a command or a script, or
// the list of sockets found.
func attachCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("meshell attach", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: meshell attach [SOCKET|ALIAS] [-c COMMAND]... [flags]\n"+
			"  a shell on a running node (its commands run as that node); with no argument, the sockets in %s\n", repl.SocketDir())
		printDefaults(fs.Output(), fs)
	}
	var o repl.AttachOptions
	var noColor bool
	fs.Func("c", "run this `COMMAND` and exit with its status; several -c run in order, as a script's lines", func(v string) error {
		o.Commands = append(o.Commands, v)
		return nil
	})
	fs.BoolVar(&o.KeepGoing, "keep-going", false, "script or several -c: go on after a failed command (exit status is still 1)")
	fs.BoolVar(&noColor, "no-color", false, "no ANSI colour")
	fs.StringVar(&o.HistoryFile, "history-file", "", "readline history file (default ~/.meshell_history)")
	var targets []string
	for { // flags may come before or after the socket
		if status, ok := parseSub(fs, args, stdout, stderr); !ok {
			return status
		}
		if fs.NArg() == 0 {
			break
		}
		targets = append(targets, fs.Arg(0))
		args = fs.Args()[1:]
	}
	for _, c := range o.Commands {
		if strings.TrimSpace(c) == "" {
			fmt.Fprintln(stderr, "error: -c needs a command, e.g. meshell attach n1 -c '!cluster_members'")
			return 2
		}
	}
	switch {
	case len(targets) > 1:
		fmt.Fprintf(stderr, "error: meshell attach takes one socket or alias, not %d (%s)\n", len(targets), repl.Clean(strings.Join(targets, " ")))
		return 2
	}
	target := ""
	if len(targets) == 1 {
		target = targets[0]
	}
	// With no socket, attach lists the sockets; commands to run need one.
	// A terminal or an empty stdin (/dev/null, a closed pipe) is no script.
	switch {
	case target == "" && len(o.Commands) > 0:
		fmt.Fprintln(stderr, "error: -c needs a socket or alias to run on, e.g. meshell attach n1 -c '!cluster_members' (meshell attach alone lists the sockets)")
		return 2
	case target == "" && !isTTY(stdin) && hasScript(stdin):
		fmt.Fprintln(stderr, `error: a script on stdin needs a socket or alias to run on, e.g. printf '!cluster_members\n' | meshell attach n1 (meshell attach alone lists the sockets)`)
		return 2
	}
	o.In, o.Out, o.Err = stdin, stdout, stderr
	o.Interactive = len(o.Commands) == 0 && isTTY(stdin) && isTTY(stdout)
	// -c typed at a terminal is coloured as the shell is; a script on stdin
	// is not, as in script mode.
	tty := o.Interactive || (len(o.Commands) > 0 && isTTY(stdout))
	o.Color = tty && !noColor && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"
	if o.Interactive {
		o.HistoryFile = historyPath(o.HistoryFile)
	}
	return repl.Attach(target, o)
}

// hasScript reads r up to its first command: a line that is neither blank
// nor a # comment, as a script's lines are read. It reports whether there
// is one; a read error is the end of input.
func hasScript(r io.Reader) bool {
	if r == nil {
		return false
	}
	br := bufio.NewReader(r)
	comment := false // the rest of this line is a comment
	for {
		chunk, more, err := br.ReadLine() // a long line comes in chunks
		if err != nil {
			return false
		}
		if !comment {
			switch t := strings.TrimSpace(string(chunk)); {
			case strings.HasPrefix(t, "#"):
				comment = true
			case t != "":
				return true
			}
		}
		if !more {
			comment = false
		}
	}
}

// historyPath is the readline history file: ~/.meshell_history unless
// --history-file says otherwise (a leading ~/ is the home directory).
func historyPath(hist string) string {
	home, err := os.UserHomeDir()
	if hist == "" && err == nil {
		return filepath.Join(home, ".meshell_history")
	} else if strings.HasPrefix(hist, "~/") && err == nil {
		return filepath.Join(home, hist[2:])
	}
	return hist
}

// listenSocket starts the node's control socket: --socket PATH, or the
// default one named after the alias. When another running node holds the
// default name, this one takes NAME-PID.sock. A failure at the default
// place is a warning (the node works without a socket); at an explicit
// --socket it is an error.
func (o *options) listenSocket(n *node.Node, bind string, log logrus.FieldLogger) (*node.AttachServer, error) {
	if o.socket == "none" {
		return nil, nil
	}
	if o.socket != "" {
		return repl.ListenSocket(n, o.socket, log)
	}
	name := n.Alias()
	if name == "" {
		_, port, _ := net.SplitHostPort(bind)
		name = "node-" + port
		if port == "0" {
			name = "node-pid" + strconv.Itoa(os.Getpid())
		}
	}
	srv, err := repl.ListenSocket(n, repl.SocketPath(name), log)
	if errors.Is(err, repl.ErrSocketInUse) {
		srv, err = repl.ListenSocket(n, repl.SocketPath(name+"-"+strconv.Itoa(os.Getpid())), log)
	}
	if err != nil {
		log.WithError(err).Warn("no control socket: meshell attach cannot reach this node")
		return nil, nil
	}
	return srv, nil
}
