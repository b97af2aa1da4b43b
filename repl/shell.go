package repl

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"meshell/node"
	"meshell/node/swim"
)

// Options configures a Shell.
type Options struct {
	Out, Err    io.Writer
	Color       bool
	Interactive bool
}

// Shell runs commands against one node.
type Shell struct {
	Node        *node.Node
	pal         palette
	interactive bool

	wmu  sync.Mutex // serialises every line written, synchronous or not
	out  io.Writer
	errw io.Writer

	evMu   sync.Mutex
	evSub  *node.Subscription
	evStop chan struct{}
	evDone chan struct{}
}

// New returns a shell for n.
func New(n *node.Node, o Options) *Shell {
	return &Shell{Node: n, pal: palette{on: o.Color}, interactive: o.Interactive, out: o.Out, errw: o.Err}
}

// setWriters swaps the output writers (the interactive loop routes them
// through readline so the prompt is redrawn).
func (s *Shell) setWriters(out, errw io.Writer) {
	s.wmu.Lock()
	s.out, s.errw = out, errw
	s.wmu.Unlock()
}

func (s *Shell) printf(format string, args ...any) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	fmt.Fprintf(s.out, format, args...)
}

// warnf prints a warning line. The message is cleaned (its arguments may
// come from peers) before it is coloured: pass raw arguments.
func (s *Shell) warnf(format string, args ...any) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	fmt.Fprintln(s.errw, s.pal.warnText("warning: "+cleanN(fmt.Sprintf(format, args...), lineCap)))
}

// errorLine prints err on one line. Errors embed peers' refusal reasons
// and aliases, so the text is cleaned, then coloured.
func (s *Shell) errorLine(err error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	fmt.Fprintln(s.errw, errorText(s.pal, err))
}

// errorText is the coloured "error: …" line of err, cleaned and capped.
func errorText(p palette, err error) string {
	return p.errText("error: " + cleanN(err.Error(), lineCap))
}

// writeJSON prints v as one line of JSON. Strings are not cleaned: a JSON
// consumer gets them back byte for byte, since encoding/json escapes C0
// controls (\u001b) and jsonSafe the DEL, C1 and format characters. The
// one exception: json replaces each byte of invalid UTF-8 with U+FFFD.
func (s *Shell) writeJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	s.printf("%s\n", jsonSafe(b))
	return nil
}

// aliases lists the members this node knows, for completion.
func (s *Shell) aliases() []string {
	var out []string
	for _, e := range s.Node.Members().Entries {
		out = append(out, e.Alias)
	}
	return out
}

// Exec runs one line. It returns errQuit for !quit.
func (s *Shell) Exec(ctx context.Context, line string) error {
	words, err := tokenize(strings.TrimSpace(line))
	if err != nil {
		return err
	}
	if len(words) == 0 {
		return nil
	}
	cmd, a, err := resolve(words)
	if err != nil {
		return err
	}
	return cmd.Run(ctx, s, a)
}

// resolve finds the command named by words[0] and parses its arguments.
func resolve(words []string) (*Command, *Args, error) {
	if !strings.HasPrefix(words[0], "!") {
		return nil, nil, fmt.Errorf("%q is not a command: commands start with ! (try !help)", words[0])
	}
	cmd := lookup(words[0])
	if cmd == nil {
		return nil, nil, fmt.Errorf("unknown command %s: !help lists the commands%s", words[0], suggest(words[0]))
	}
	a, err := parseArgs(cmd, words[1:])
	if err != nil {
		return nil, nil, err
	}
	if len(a.Pos) < cmd.Min || (cmd.Max >= 0 && len(a.Pos) > cmd.Max) {
		return nil, nil, fmt.Errorf("usage: %s", cmd.Usage())
	}
	return cmd, a, nil
}

// suggest names commands that start like the unknown word.
func suggest(word string) string {
	var near []string
	for _, n := range commandNames() {
		if len(word) > 2 && strings.HasPrefix(n, word[:3]) {
			near = append(near, n)
		}
	}
	if len(near) == 0 {
		return ""
	}
	return " (did you mean " + strings.Join(near, ", ") + "?)"
}

// RunScript runs commands read from r, one per line, without prompt or
// colour. Blank lines and lines starting with # are skipped. It returns the
// exit status: 0 if every command succeeded, 1 otherwise; unless keepGoing
// it stops at the first failure. At the end of input the node leaves the
// cluster gracefully.
func (s *Shell) RunScript(ctx context.Context, r io.Reader, keepGoing bool) int {
	status := 0
	lines := make(chan string)
	readErr := make(chan error, 1)
	// The reader goroutine ends at the end of input; a shutdown while it
	// waits for a line ends the script without it (the process exits).
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		readErr <- sc.Err()
		close(lines)
	}()
	lineNo := 0
loop:
	for {
		var raw string
		var ok bool
		select {
		case raw, ok = <-lines:
			if !ok {
				if err := <-readErr; err != nil {
					s.errorLine(fmt.Errorf("reading commands: %w", err))
					status = 1
				}
				break loop
			}
		case <-s.Node.ShutdownRequested():
			break loop
		}
		lineNo++
		line := strings.TrimSpace(strings.TrimSuffix(raw, "\r"))
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		err := s.Exec(ctx, line)
		if err != nil && !errors.Is(err, errQuit) {
			s.errorLine(fmt.Errorf("line %d: %s: %w", lineNo, firstWord(line), err))
			status = 1
		}
		switch {
		case errors.Is(err, errQuit), s.shutdownRequested():
			break loop
		case err != nil && !keepGoing, ctx.Err() != nil:
			status = 1
			break loop
		}
	}
	s.Close()
	return status
}

func firstWord(line string) string {
	w, _, _ := strings.Cut(line, " ")
	return w
}

// shutdownRequested reports whether a !shutdown stopped this node.
func (s *Shell) shutdownRequested() bool {
	select {
	case <-s.Node.ShutdownRequested():
		return true
	default:
		return false
	}
}

// Close stops the event printer and leaves the cluster gracefully if the
// node is in one.
func (s *Shell) Close() {
	s.setEvents(false, false)
	if s.Node.Running() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		s.Node.Leave(ctx)
	}
}

// eventJSON is one membership event as printed by !events --json.
type eventJSON struct {
	T           int64             `json:"t"` // Unix nanoseconds
	Event       string            `json:"event"`
	Member      string            `json:"member"`
	Addr        string            `json:"addr"`
	State       string            `json:"state"`
	Incarnation uint64            `json:"incarnation"`
	Tags        map[string]string `json:"tags,omitempty"`
}

// setEvents starts or stops the live event printer.
func (s *Shell) setEvents(on, asJSON bool) {
	s.evMu.Lock()
	defer s.evMu.Unlock()
	if s.evSub != nil {
		close(s.evStop)
		<-s.evDone
		s.evSub.Close()
		s.evSub = nil
	}
	if !on {
		return
	}
	sub := s.Node.Subscribe(1024)
	stop, done := make(chan struct{}), make(chan struct{})
	s.evSub, s.evStop, s.evDone = sub, stop, done
	go func() {
		defer close(done)
		var lost uint64
		for {
			select {
			case <-stop:
				return
			case ev := <-sub.C:
				if d := sub.Dropped(); d != lost {
					s.warnf("%d events were dropped: the printer fell behind", d-lost)
					lost = d
				}
				s.printEvent(ev, asJSON)
			}
		}
	}()
}

func (s *Shell) printEvent(ev swim.Event, asJSON bool) {
	if asJSON {
		s.writeJSON(eventJSON{T: ev.At.UnixNano(), Event: ev.Kind.String(), Member: ev.Member.Alias, Addr: ev.Member.Addr,
			State: ev.Member.State.String(), Incarnation: ev.Member.Incarnation, Tags: ev.Member.Tags})
		return
	}
	s.printf("%s", renderEvent(ev, s.pal))
}

// renderEvent is one event line: time, kind, alias, address, incarnation.
func renderEvent(ev swim.Event, p palette) string {
	return fmt.Sprintf("%s %s %s %s\n", p.dim(ev.At.Format("15:04:05.000")), ev.Kind,
		p.state(ev.Member.State, clean(ev.Member.Alias)), p.dim(fmt.Sprintf("%s inc=%d", clean(ev.Member.Addr), ev.Member.Incarnation)))
}
