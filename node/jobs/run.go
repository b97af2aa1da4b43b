package jobs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"meshell/mesh/keyring"
	"meshell/node/operator"
	"meshell/protocol"
)

// RunKind is the reserved job kind of !run: its arguments are a command
// line, run on the node the request names. It is off unless the node's
// owner allows it (RunConfig.Allow) and, on a node with operators, needs an
// operator's signature over the command.
const RunKind = "run"

// RunConfig is the node owner's settings for commands, fixed at start-up.
type RunConfig struct {
	Allow     bool           // run the run kind (--allow-run)
	Kinds     []DeclaredKind // kinds that run a command (--kind)
	MaxOutput int            // bytes of stdout, and of stderr, kept per command; 0 = DefaultMaxOutput (also the most)
	KillGrace time.Duration  // between SIGTERM and SIGKILL of a command's group; 0 = DefaultKillGrace
}

// Defaults of RunConfig.
const (
	DefaultMaxOutput = protocol.MaxRunOutput
	DefaultKillGrace = 2 * time.Second
)

func (c RunConfig) withDefaults() RunConfig {
	if c.MaxOutput <= 0 {
		c.MaxOutput = DefaultMaxOutput
	}
	if c.KillGrace <= 0 {
		c.KillGrace = DefaultKillGrace
	}
	return c
}

// cmdKind is a kind that runs a process: the run kind, or a declared one.
type cmdKind struct {
	name       string
	argv       []string // a declared kind's program and fixed arguments; nil for run
	idempotent bool
	run        bool // the run kind: the output travels as Stdout and Stderr, streamed when asked
}

// Bounds of the command runner.
const (
	readBuf      = 32 << 10 // bytes read from a pipe at once
	maxLinePiece = 16 << 10 // a streamed line longer than this goes out in pieces
	stderrTail   = 10       // lines of stderr a failed declared kind's error quotes
	stderrTailB  = 1024     // ... at most this many bytes of them
	groupPoll    = 20 * time.Millisecond
	drainWait    = 50 * time.Millisecond // after the leader exited, for its output to be read
	forceClose   = time.Second           // after SIGKILL: how long a pipe held by an escaped process may stay open
)

// cmdResult is how one command ended.
type cmdResult struct {
	exit           int // -1 when it never exited that we saw
	stdout, stderr string
	err            error // it did not start
}

// execute runs argv in a process group of its own with stdin on /dev/null,
// capturing stdout and stderr (each capped at maxOut bytes, then a marker
// line) and, when emit is set, streaming them as they come in whole lines.
// When ctx ends the group is sent SIGTERM, then SIGKILL after grace; when
// the command exits, whatever it left running in its group is ended the
// same way, so that no process outlives its job.
func execute(ctx context.Context, argv, env []string, maxOut int, grace time.Duration, emit func(stream uint8, data string) error) cmdResult {
	if err := ctx.Err(); err != nil {
		return cmdResult{exit: -1, err: err}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	inGroup(cmd)
	outR, outW, err := os.Pipe()
	if err != nil {
		return cmdResult{exit: 127, err: err}
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return cmdResult{exit: 127, err: err}
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	err = cmd.Start()
	outW.Close() // the child holds its own copies
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return cmdResult{exit: 127, err: err}
	}
	stdout := &capture{stream: protocol.StreamStdout, name: "stdout", max: maxOut, emit: emit}
	stderr := &capture{stream: protocol.StreamStderr, name: "stderr", max: maxOut, emit: emit}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); stdout.read(outR) }()
	go func() { defer wg.Done(); stderr.read(errR) }()
	read, exited := make(chan struct{}), make(chan struct{})
	go func() { wg.Wait(); close(read) }()
	go func() { cmd.Wait(); close(exited) }()

	var (
		isExited, isRead, killed, forced bool
		stopping                         bool // SIGTERM sent
		graceC, forceC, pollC, drainC    <-chan time.Time
		timers                           []*time.Timer
	)
	defer func() {
		for _, t := range timers {
			t.Stop()
		}
	}()
	after := func(d time.Duration) <-chan time.Time {
		t := time.NewTimer(d)
		timers = append(timers, t)
		return t.C
	}
	stop := func() {
		if !stopping {
			stopping = true
			terminate(cmd.Process)
			graceC = after(grace)
		}
	}
	done := ctx.Done()
	for {
		if isRead && (isExited || forced) {
			if killed || forced || !groupAlive(cmd.Process) {
				break
			}
			stop() // the leader is gone, the rest of its group is not
			if pollC == nil {
				t := time.NewTicker(groupPoll)
				defer t.Stop()
				pollC = t.C
			}
		}
		select {
		case <-exited:
			isExited, exited = true, nil
			if !isRead {
				drainC = after(drainWait)
			}
		case <-drainC:
			// Output still open after the leader exited: held by what it
			// left running in its group, which ends with it, or by a
			// process that left the group (setsid), which nothing here
			// ends: that one gets forceClose to flush, then the pipes are
			// closed, so that the command's exit is its answer.
			drainC = nil
			switch {
			case isRead:
			case groupAlive(cmd.Process):
				stop()
			case forceC == nil:
				forceC = after(forceClose)
			}
		case <-read:
			isRead, read = true, nil
		case <-done:
			done = nil
			stop()
		case <-graceC:
			graceC = nil
			kill(cmd.Process)
			killed = true
			forceC = after(forceClose)
		case <-forceC:
			// A process that left the group still holds a pipe: stop reading.
			forceC, forced = nil, true
			outR.Close()
			errR.Close()
		case <-pollC:
		}
	}
	r := cmdResult{exit: -1, stdout: stdout.result(), stderr: stderr.result()}
	if isExited {
		r.exit = exitStatus(cmd.ProcessState)
	}
	return r
}

// capture keeps the first max bytes of one output stream and streams them.
// Only its reader goroutine touches it until read returns.
type capture struct {
	stream    uint8
	name      string
	max       int
	emit      func(stream uint8, data string) error // nil: not streamed (or no longer)
	kept      []byte
	streamed  int // bytes of kept already sent
	truncated bool
}

func (c *capture) read(r *os.File) {
	defer r.Close()
	buf := make([]byte, readBuf)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			c.add(buf[:n])
		}
		if err != nil {
			break
		}
	}
	c.flush()
}

func (c *capture) add(p []byte) {
	if c.truncated {
		return // read on, so that the command never blocks on a full pipe
	}
	if room := c.max - len(c.kept); len(p) > room { // exactly max bytes are whole, not cut
		p, c.truncated = p[:room], true
	}
	c.kept = append(c.kept, p...)
	if c.emit == nil {
		return
	}
	if c.truncated {
		// The last piece and the marker go as one chunk, so that the chunk
		// is whole lines: a marker on its own would start with the piece's "\n".
		c.send(string(c.kept[c.streamed:]) + c.marker())
		c.streamed = len(c.kept)
		return
	}
	cut := len(c.kept)
	if i := bytes.LastIndexByte(c.kept[c.streamed:], '\n'); i >= 0 {
		cut = c.streamed + i + 1
	} else if cut-c.streamed < maxLinePiece {
		return // wait for the end of the line
	}
	c.send(string(c.kept[c.streamed:cut]))
	c.streamed = cut
}

// flush streams what is kept and not sent yet: a last line without its end.
func (c *capture) flush() {
	if c.emit != nil && c.streamed < len(c.kept) {
		c.send(string(c.kept[c.streamed:]))
	}
	c.streamed = len(c.kept)
}

func (c *capture) send(data string) {
	if c.emit(c.stream, data) != nil {
		c.emit = nil // the dispatcher is gone or the job ended: capture only
	}
}

// marker is the line that ends a truncated stream, on a line of its own.
func (c *capture) marker() string {
	m := fmt.Sprintf("[meshell: %s truncated at %d bytes]\n", c.name, c.max)
	if len(c.kept) > 0 && c.kept[len(c.kept)-1] != '\n' {
		m = "\n" + m
	}
	return m
}

func (c *capture) result() string {
	if c.truncated {
		return string(c.kept) + c.marker()
	}
	return string(c.kept)
}

// lastLines is at most n of s's last lines, and at most max bytes of them.
func lastLines(s string, n, max int) string {
	s = strings.TrimRight(s, "\n")
	i := len(s)
	for k := 0; k < n && i > 0; k++ {
		i = strings.LastIndexByte(s[:i], '\n')
		if i < 0 {
			i = 0
		}
	}
	s = strings.TrimLeft(s[i:], "\n")
	if len(s) > max {
		s = "…" + s[len(s)-max:]
	}
	return s
}

// runCommand runs a command kind's job t and returns its answer.
func (w *worker) runCommand(t *task) *protocol.JobResult {
	c := t.kind.cmd
	argv := t.args
	if !c.run {
		argv = append(slices.Clip(c.argv), t.args...)
	}
	var emit func(uint8, string) error
	if c.run && t.stream {
		var mu sync.Mutex // one sequence over both streams
		var seq uint32
		emit = func(stream uint8, data string) error {
			mu.Lock()
			defer mu.Unlock()
			seq++
			return w.j.sendChunk(t.ctx, t.key.from, &protocol.JobChunk{ID: t.key.id, Seq: seq, Data: data, Stream: stream})
		}
	}
	cfg := w.j.run
	r := execute(t.ctx, argv, w.j.runEnv(), cfg.MaxOutput, cfg.KillGrace, emit)
	out := &protocol.JobResult{ID: t.key.id, Run: &protocol.RunOutput{Exit: int32(r.exit), Stderr: r.stderr}}
	if c.run {
		out.Run.Stdout = r.stdout
	} else {
		out.Result = strings.TrimSuffix(r.stdout, "\n")
	}
	switch {
	case r.err != nil:
		out.Status, out.Error = protocol.JobError, r.err.Error() // the dispatcher names the node
	case r.exit != 0:
		out.Status, out.Error = protocol.JobError, fmt.Sprintf("exit status %d", r.exit)
		if tail := lastLines(r.stderr, stderrTail, stderrTailB); tail != "" && !c.run {
			out.Error += "; stderr: " + tail
		}
	}
	return out
}

// runEnv is a command's environment: the node's, and who runs it, less the
// cluster key when it came in the environment (MESHELL_KEY): `!run -- env`
// would print it, and a declared kind's command, or whatever it runs,
// would hold the key to the cluster.
func (j *Jobs) runEnv() []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, keyring.EnvVar+"=") })
	return append(env, "MESHELL_ALIAS="+j.h.Alias(), "MESHELL_CLUSTER="+j.h.Cluster())
}

// refuseRun decides a run request of dispatcher from before it is queued:
// "" to run it, else the answer's status and reason.
func (j *Jobs) refuseRun(from string, req *protocol.JobRequest) (protocol.JobStatus, string) {
	if !j.run.Allow {
		return protocol.JobRefused, "refused: started without --allow-run"
	}
	if len(req.Args) == 0 || req.Args[0] == "" {
		return protocol.JobError, "run: no command given"
	}
	if from == j.h.Alias() {
		return protocol.JobOK, "" // this node's own shell, as for control
	}
	err := j.h.Verify(RunKind, req.Args, req.Auth)
	switch {
	case errors.Is(err, operator.ErrNotSigned):
		return protocol.JobRefused, "refused: this node runs commands only for its operators: sign the request with --operator-key"
	case err != nil:
		j.h.Warn("run-unsigned", logrus.Fields{"from": from, "error": err.Error()}, "run: refused a badly signed request")
		return protocol.JobRefused, "refused: " + err.Error()
	}
	return protocol.JobOK, ""
}

var runKindEntry = kind{cmd: &cmdKind{name: RunKind, run: true}}

// optionArg says why a declared kind refuses a job's arguments, "" when it
// does not. They come from any member and are appended to the owner's
// command as data: one that begins with '-' would be taken as an option or
// an expression (find … -exec, tar --to-command, git -c), turning a kind
// into a shell for every member.
func optionArg(args []string) string {
	for i, a := range args {
		if strings.HasPrefix(a, "-") {
			if len(a) > 40 {
				a = a[:40] + "…"
			}
			return fmt.Sprintf("refused: argument %d (%q) begins with '-': a declared kind takes its arguments as data, never as options; declare a kind with the options it needs", i+1, a)
		}
	}
	return ""
}

// RunRequest is one command for several nodes (!run).
type RunRequest struct {
	Targets []string // aliases; each runs the command once
	Command []string // the program and its arguments (no shell)
	// Timeout bounds the whole run; a node that has not answered by then is
	// counted as not answering, and its command is killed. 0 = DefaultRunTimeout.
	Timeout time.Duration
	// OnOutput, when set, receives each node's output as it comes: whole
	// lines, several at a time. Calls for one node are in order; calls for
	// different nodes are concurrent.
	OnOutput func(alias string, stderr bool, data string)
	// OnDone, when set, receives each node's reply as soon as it is known,
	// concurrently for different nodes (after that node's last OnOutput).
	OnDone func(RunReply)
}

// Every node streams its output, OnOutput or not: a node that gives no
// answer (cancelled, timed out, lost) has in its reply what it streamed.

// DefaultRunTimeout is RunRequest.Timeout when none is given.
const DefaultRunTimeout = time.Minute

// RunReply is one node's answer to a RunRequest.
type RunReply struct {
	Alias    string
	Exited   bool // the command ran and Exit is its status (127: it did not start)
	Exit     int
	Stdout   string // capped, with a marker line when truncated; with NoAnswer, what came before the end
	Stderr   string
	Refused  bool   // the node will not run commands for this node (see Error)
	NoAnswer bool   // no answer within the timeout, cancelled, or the node was lost
	Error    string // why it did not run to an exit status, or what else went wrong
	Latency  time.Duration
}

// OK reports whether the command ran and exited 0.
func (r RunReply) OK() bool { return r.Exited && r.Exit == 0 && r.Error == "" }

// Run runs req.Command on every target at once, each as a job of the run
// kind sent to that node (no strategy, no failover), and returns the
// replies in the order of req.Targets once every node answered, the
// timeout passed or ctx ended (a cancelled run keeps the answers it got).
// Nodes need --allow-run, and the signature of an operator when they have
// operators; this node signs with its operator key when it has one.
func (j *Jobs) Run(ctx context.Context, req RunRequest) ([]RunReply, error) {
	if !j.h.Running() {
		return nil, ErrNotRunning
	}
	// The shell prints these after "!run: ": they do not say "run" again.
	if len(req.Command) == 0 || req.Command[0] == "" {
		return nil, errors.New("no command given: the program's name is empty")
	}
	if len(req.Command) > protocol.MaxJobArgs {
		return nil, fmt.Errorf("the command's %d words exceed the limit of %d", len(req.Command), protocol.MaxJobArgs)
	}
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = DefaultRunTimeout
	}
	replies := make([]RunReply, len(req.Targets))
	var wg sync.WaitGroup
	for i, alias := range req.Targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replies[i] = j.runOn(ctx, alias, req, timeout)
			if req.OnDone != nil {
				req.OnDone(replies[i])
			}
		}()
	}
	wg.Wait()
	return replies, nil
}

func (j *Jobs) runOn(ctx context.Context, alias string, req RunRequest, timeout time.Duration) RunReply {
	dr := DispatchRequest{Kind: RunKind, Args: req.Command, Worker: alias, Timeout: timeout, MaxAttempts: 1}
	// What the node streamed, kept for a reply without an answer; each
	// stream is bounded by the dispatcher (maxStreamOutput).
	var streamed [2]strings.Builder
	dr.OnOutput = func(stderr bool, data string) {
		if stderr {
			streamed[1].WriteString(data)
		} else {
			streamed[0].WriteString(data)
		}
		if req.OnOutput != nil {
			req.OnOutput(alias, stderr, data)
		}
	}
	start := time.Now()
	res, err := j.Dispatch(ctx, dr)
	r := RunReply{Alias: alias, Latency: time.Since(start)}
	a := res.answer
	if a == nil {
		r.Stdout, r.Stderr = streamed[0].String(), streamed[1].String()
	}
	switch {
	case a == nil && ctx.Err() != nil:
		r.NoAnswer, r.Error = true, "cancelled before an answer"
	case a == nil && errors.As(err, new(*NotLiveError)):
		r.Error = err.Error() // never asked: not silence
	case a == nil && errors.Is(err, ErrOverrun):
		r.Error = err.Error() // it answered too much: an error, not silence
	case a == nil && time.Since(start) >= timeout:
		r.NoAnswer, r.Error = true, fmt.Sprintf("no answer within %v", timeout)
	case a == nil:
		r.NoAnswer = true
		if err != nil {
			r.Error = err.Error()
		}
	case a.Status == protocol.JobRefused:
		r.Refused, r.Error = true, a.Error
	case a.Status == protocol.JobRejected: // it has 0 slots, or drains
		r.Refused, r.Error = true, "refused: "+a.Error
	case a.Status == protocol.JobOK || a.Status == protocol.JobError && a.Output().Exit != 0:
		o := a.Output()
		r.Exited, r.Exit, r.Stdout, r.Stderr = o.Exit >= 0, int(o.Exit), o.Stdout, o.Stderr
		if a.Status == protocol.JobError && a.Error != fmt.Sprintf("exit status %d", o.Exit) {
			r.Error = a.Error // it did not start, timed out there, or was stopped
		}
	default: // no command, an old node without the run kind, stopped by the worker
		r.Error, r.Stdout, r.Stderr = a.Error, a.Output().Stdout, a.Output().Stderr
	}
	return r
}
