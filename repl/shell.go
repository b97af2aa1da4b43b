package repl

import (
	"bufio"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/chzyer/readline"

	"meshell/node"
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

	wmu    sync.Mutex // serialises every line written, synchronous or not
	out    io.Writer
	errw   io.Writer
	status string // a transient last line (!bench's progress), or ""

	evMu   sync.Mutex
	evSub  *node.Subscription
	evStop chan struct{}
	evDone chan struct{}

	// neverIn: the node has been in no cluster, as far as this shell
	// knows: it only tried to join, and failed. The node marks itself left
	// after such a join, as after a !leave, and its table alone cannot
	// tell the two apart.
	neverIn atomic.Bool
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
	s.aboveStatus(s.out, fmt.Sprintf(format, args...))
}

// aboveStatus writes text to w, wmu held. While a status line is shown it
// is cleared first and drawn again below the text, so that an event never
// lands on the end of a progress bar.
func (s *Shell) aboveStatus(w io.Writer, text string) {
	if s.status == "" {
		io.WriteString(w, text)
		return
	}
	if !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	io.WriteString(s.out, "\r\x1b[K")
	io.WriteString(w, text)
	io.WriteString(s.out, s.status)
}

// setStatus shows line as the transient last line, replacing the one
// shown; "" removes it. Only the interactive shell uses it.
func (s *Shell) setStatus(line string) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if line == "" && s.status == "" {
		return
	}
	if w := readline.GetScreenWidth(); w > 1 && len(line) >= w {
		line = line[:w-1] // a status line that wrapped would not be redrawn in place
	}
	io.WriteString(s.out, "\r\x1b[K"+line)
	s.status = line
}

// warnf prints a warning line. The message is cleaned (its arguments may
// come from peers) before it is coloured: pass raw arguments.
func (s *Shell) warnf(format string, args ...any) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.aboveStatus(s.errw, s.pal.warnText("warning: "+cleanN(fmt.Sprintf(format, args...), lineCap))+"\n")
}

// errorLine prints err on one line. Errors embed peers' refusal reasons
// and aliases, so the text is cleaned, then coloured.
func (s *Shell) errorLine(err error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.aboveStatus(s.errw, errorText(s.pal, err)+"\n")
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

// exactText is raw output for a JSON document, byte for byte: s itself when
// it is valid UTF-8, else nil and s in standard base64 (json.Marshal would
// turn the bad bytes into U+FFFD).
func exactText(s string) (text, b64 *string) {
	if utf8.ValidString(s) {
		return &s, nil
	}
	e := base64.StdEncoding.EncodeToString([]byte(s))
	return nil, &e
}

// aliases lists the members this node knows, for completion.
func (s *Shell) aliases() []string {
	var out []string
	for _, e := range s.Node.Members().Entries {
		out = append(out, e.Alias)
	}
	return out
}

// errShutDown ends a command that a !shutdown of this node cut short. It
// is an errQuit: the shell ends, quietly, as after !quit.
var errShutDown = fmt.Errorf("%w: this node was shut down by !shutdown", errQuit)

// Exec runs one line. It returns errQuit for !quit, and errShutDown when
// a !shutdown of this node (the node has drained and left) cancelled the
// command: whatever it waits for, it ends at once.
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
	parent := ctx
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-s.Node.ShutdownRequested():
			cancel(errShutDown)
		case <-ctx.Done():
		}
	}()
	wasRunning := s.Node.Running()
	err = cmd.Run(ctx, s, a)
	if errors.Is(err, node.ErrNotRunning) && !wasRunning {
		err = cmp.Or(s.inCluster(), err) // one wording for each state, whichever command met it
	}
	if err != nil && wasRunning && !s.Node.Running() && context.Cause(ctx) == nil {
		// The node left under the command, which failed for it. A
		// !shutdown closes ShutdownRequested only once its leave is over.
		t := time.NewTimer(shutdownLeave)
		select {
		case <-s.Node.ShutdownRequested():
			cancel(errShutDown)
		case <-parent.Done():
		case <-t.C:
		}
		t.Stop()
	}
	// A !shutdown that shut this node down itself says how the others
	// answered; any other command's error is only its cancellation.
	if err != nil && context.Cause(ctx) == errShutDown && cmd.Name != "!shutdown" {
		return errShutDown
	}
	return err
}

// shutdownLeave bounds the leave of a node being shut down (node.Leave
// under a 5 s deadline, then at most 1 s to flush), from the moment the
// node stops running to ShutdownRequested.
const shutdownLeave = 6 * time.Second

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
	if errors.Is(err, errHelp) {
		help := lookup("!help")
		a, err := parseArgs(help, []string{cmd.Name})
		return help, a, err
	}
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

// maxScriptLine is the longest script line read; a longer one fails as
// a command would.
const maxScriptLine = 1 << 20

// scriptLine is one line of a script, without its end of line.
type scriptLine struct {
	text    string
	tooLong bool // over maxScriptLine: text is empty
}

// readScript sends r's lines to lines until the end of input or done.
func readScript(r io.Reader, lines chan<- scriptLine, done <-chan struct{}) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		var buf []byte
		tooLong, eof := false, false
		for {
			chunk, err := br.ReadSlice('\n')
			if !tooLong && len(buf)+len(chunk) > maxScriptLine+1 {
				tooLong, buf = true, nil
			}
			if !tooLong {
				buf = append(buf, chunk...)
			}
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			if errors.Is(err, io.EOF) {
				eof = true
			} else if err != nil {
				return err
			}
			break
		}
		if !eof || len(buf) > 0 || tooLong {
			select {
			case lines <- scriptLine{text: strings.TrimSuffix(string(buf), "\n"), tooLong: tooLong}:
			case <-done:
				return nil
			}
		}
		if eof {
			return nil
		}
	}
}

// RunScript runs commands read from r, one per line, without prompt or
// colour. Blank lines and lines starting with # are skipped. It returns the
// exit status: 0 if every command succeeded, 1 otherwise; unless keepGoing
// it stops at the first failure. At the end of input the node leaves the
// cluster gracefully.
func (s *Shell) RunScript(ctx context.Context, r io.Reader, keepGoing bool) int {
	status := runScript(ctx, r, keepGoing, s.Exec, s.errorLine, s.Node.ShutdownRequested())
	s.Close()
	return status
}

// runScript runs the lines of r through exec, reporting failures with
// errorLine, until the end of input, a failure (unless keepGoing), !quit or
// ended. It returns the script's exit status.
func runScript(ctx context.Context, r io.Reader, keepGoing bool, exec func(context.Context, string) error, errorLine func(error), ended <-chan struct{}) int {
	status := 0
	lines := make(chan scriptLine)
	readErr := make(chan error, 1)
	done := make(chan struct{})
	defer close(done)
	// The reader goroutine ends at the end of input; a shutdown while it
	// waits for a line ends the script without it (the process exits).
	go func() {
		readErr <- readScript(r, lines, done)
		close(lines)
	}()
	isEnded := func() bool {
		select {
		case <-ended:
			return true
		default:
			return false
		}
	}
	lineNo := 0
loop:
	for {
		var l scriptLine
		var ok bool
		select {
		case l, ok = <-lines:
			if !ok {
				if err := <-readErr; err != nil {
					errorLine(fmt.Errorf("reading commands: %w", err))
					status = 1
				}
				break loop
			}
		case <-ended:
			break loop
		}
		lineNo++
		var err error
		line := strings.TrimSpace(strings.TrimSuffix(l.text, "\r"))
		switch {
		case l.tooLong:
			err = fmt.Errorf("line %d: line longer than 1 MiB", lineNo)
		case line == "" || strings.HasPrefix(line, "#"):
			continue
		default:
			if err = exec(ctx, line); err != nil && !errors.Is(err, errQuit) {
				err = fmt.Errorf("line %d: %s: %w", lineNo, firstWord(line), err)
			}
		}
		if err != nil && !errors.Is(err, errQuit) {
			errorLine(err)
			status = 1
		}
		switch {
		case errors.Is(err, errQuit), isEnded():
			break loop
		case err != nil && !keepGoing, ctx.Err() != nil:
			status = 1
			break loop
		}
	}
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
func (s *Shell) Close() { s.leave(3 * time.Second) }

// leave is Close with a bound on the goodbye.
func (s *Shell) leave(limit time.Duration) {
	s.setEvents(false, false)
	if s.Node.Running() {
		ctx, cancel := context.WithTimeout(context.Background(), limit)
		defer cancel()
		s.Node.Leave(ctx)
	}
}

// eventJSON is one membership event as printed by !events --json.
type eventJSON struct {
	Time        string            `json:"time"`
	Event       string            `json:"event"`
	Alias       string            `json:"alias"`
	Addr        string            `json:"addr"`
	State       string            `json:"state"`
	Incarnation uint64            `json:"incarnation"`
	Tags        map[string]string `json:"tags"`
	Accuser     string            `json:"accuser,omitempty"` // member-suspect: whose probe failed
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

func (s *Shell) printEvent(ev node.Event, asJSON bool) {
	if asJSON {
		tags := ev.Member.Tags
		if tags == nil {
			tags = map[string]string{}
		}
		s.writeJSON(eventJSON{Time: jsonTime(ev.At), Event: ev.Kind.String(), Alias: ev.Member.Alias, Addr: ev.Member.Addr,
			State: ev.Member.State.String(), Incarnation: ev.Member.Incarnation, Tags: tags, Accuser: ev.Accuser})
		return
	}
	s.printf("%s", renderEvent(ev, s.pal))
}

// renderEvent is one event line: time, kind, alias, address, incarnation.
func renderEvent(ev node.Event, p palette) string {
	by := ""
	if ev.Accuser != "" {
		by = " by=" + clean(ev.Accuser)
	}
	return fmt.Sprintf("%s %s %s %s\n", p.dim(ev.At.Format("15:04:05.000")), ev.Kind,
		p.state(ev.Member.State, clean(ev.Member.Alias)), p.dim(fmt.Sprintf("%s inc=%d%s", clean(ev.Member.Addr), ev.Member.Incarnation, by)))
}
