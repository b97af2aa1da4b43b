package main

// End-to-end tests: they build the meshell binary and run real processes on
// loopback, driven by the command files in testdata/.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "meshell-e2e")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "meshell")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // as README builds it
	out, err := build.CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building meshell: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freePort returns a loopback port reserved for the test (reservePorts).
func freePort(t testing.TB) int { return reservePorts(t, 1) }

// Ports the tests reserve: below the kernel's ephemeral range (32768 up),
// so no socket bound to port 0 or dialling out is given one meanwhile.
// MESHELL_TEST_PORTS=LOW-HIGH keeps a run to a range of its own (a machine
// shared by several runs that were each given one).
var testPortLow, testPortHigh = testPorts(os.Getenv("MESHELL_TEST_PORTS"))

// testPorts reads MESHELL_TEST_PORTS, 20000-32000 when unset or unreadable.
func testPorts(v string) (low, high int) {
	lo, hi, ok := strings.Cut(v, "-")
	l, err1 := strconv.Atoi(lo)
	h, err2 := strconv.Atoi(hi)
	if !ok || err1 != nil || err2 != nil || l < 1 || h > 65535 || h-l < 20 {
		return 20000, 32000
	}
	return l, h
}

// reservePorts returns p such that p..p+n-1 are free on loopback and held
// for this test alone until it ends (holdPorts).
func reservePorts(t testing.TB, n int) int {
	t.Helper()
	for try := 0; try < 200; try++ {
		if base := testPortLow + rand.IntN(testPortHigh-testPortLow-n); holdPorts(t, base, n) {
			return base
		}
	}
	t.Fatalf("no run of %d free test ports in %d–%d", n, testPortLow, testPortHigh)
	return 0
}

// script reads a command file from testdata and fills in its placeholders.
func script(t testing.TB, name string, vars map[string]string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for k, v := range vars {
		s = strings.ReplaceAll(s, "{{"+k+"}}", v)
	}
	return s
}

// syncBuffer is a bytes.Buffer that a process writes while a test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type proc struct {
	cmd            *exec.Cmd
	stdin          io.WriteCloser
	stdout, stderr syncBuffer
	done           chan struct{}
	err            error
}

// start runs meshell with stdin from input; the process is killed when the
// test ends if it is still running.
func start(t testing.TB, input string, args ...string) *proc {
	t.Helper()
	return startBinary(t, binary, input, args...)
}

// startBinary is start with another build of meshell.
func startBinary(t testing.TB, bin, input string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if input != "" {
		p.feed(t, input)
		p.stdin.Close()
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// feed writes more commands to the process.
func (p *proc) feed(t testing.TB, s string) {
	t.Helper()
	if _, err := io.WriteString(p.stdin, s); err != nil {
		t.Fatalf("%v: writing commands: %v", p.cmd.Args, err)
	}
}

// waitOutput waits until the process printed marker on stdout.
func (p *proc) waitOutput(t testing.TB, marker string, limit time.Duration) {
	t.Helper()
	deadline := time.After(limit)
	for !strings.Contains(p.stdout.String(), marker) {
		select {
		case <-deadline:
			t.Fatalf("%v did not print %q within %v\nstdout:\n%s\nstderr:\n%s", p.cmd.Args, marker, limit, p.stdout.String(), p.stderr.String())
		case <-p.done:
			t.Fatalf("%v exited before printing %q\nstdout:\n%s\nstderr:\n%s", p.cmd.Args, marker, p.stdout.String(), p.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// phases splits a command file at its "# barrier" comment.
func phases(s string) (string, string) {
	i := strings.Index(s, "# barrier")
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i:]
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(t testing.TB, limit time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(limit):
		p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("%v did not exit within %v\nstdout:\n%s\nstderr:\n%s", p.cmd.Args, limit, p.stdout.String(), p.stderr.String())
	}
	return p.cmd.ProcessState.ExitCode()
}

type member struct {
	Alias, Addr, State string
	Incarnation        uint64
	Self               bool
	Tags               map[string]string
}

// jsonLines returns every line of out that is a JSON array of members.
func memberTables(t testing.TB, out string) [][]member {
	var tables [][]member
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "[") {
			continue
		}
		var ms []member
		if err := json.Unmarshal([]byte(line), &ms); err != nil {
			t.Fatalf("bad members JSON %q: %v", line, err)
		}
		tables = append(tables, ms)
	}
	return tables
}

func TestThreeProcessesFromCommandFiles(t *testing.T) {
	p1, p2, p3 := freePort(t), freePort(t), freePort(t)
	vars := map[string]string{"PORT1": fmt.Sprint(p1)}
	seed1, seed2 := phases(script(t, "seed.cmds", vars))
	join1, join2 := phases(script(t, "join.cmds", vars))
	seed := start(t, "", "--alias", "n1")
	seed.feed(t, seed1)
	waitListening(t, p1)
	j2 := start(t, "", "--alias", "n2", "--bind", fmt.Sprintf("127.0.0.1:%d", p2))
	j3 := start(t, "", "--alias", "n3", "-P", fmt.Sprint(p3))
	j2.feed(t, join1)
	j3.feed(t, join1)
	// Barrier: every node converged before any of them goes on.
	for _, p := range []*proc{seed, j2, j3} {
		p.waitOutput(t, "converged", 30*time.Second)
	}
	for _, p := range []*proc{j2, j3, seed} {
		p.feed(t, map[*proc]string{seed: seed2, j2: join2, j3: join2}[p])
		p.stdin.Close()
	}
	want := map[string]string{
		"n1": fmt.Sprintf("127.0.0.1:%d", p1),
		"n2": fmt.Sprintf("127.0.0.1:%d", p2),
		"n3": fmt.Sprintf("127.0.0.1:%d", p3),
	}
	for _, p := range []*proc{j2, j3, seed} {
		if code := p.wait(t, 60*time.Second); code != 0 {
			for _, q := range []*proc{seed, j2, j3} {
				t.Logf("%v\nstdout:\n%s\nstderr:\n%s", q.cmd.Args, q.stdout.String(), q.stderr.String())
			}
			t.Fatalf("%v exited %d", p.cmd.Args, code)
		}
	}
	for _, p := range []*proc{seed, j2, j3} {
		tables := memberTables(t, p.stdout.String())
		if len(tables) == 0 {
			t.Fatalf("%v printed no member table:\n%s", p.cmd.Args, p.stdout.String())
		}
		first := tables[0]
		if len(first) != 3 {
			t.Fatalf("%v lists %d members, want 3: %+v", p.cmd.Args, len(first), first)
		}
		for _, m := range first {
			if m.State != "alive" {
				t.Errorf("%v: %s is %s, want alive", p.cmd.Args, m.Alias, m.State)
			}
			if m.Addr != want[m.Alias] {
				t.Errorf("%v: %s at %s, want its listen address %s", p.cmd.Args, m.Alias, m.Addr, want[m.Alias])
			}
		}
	}
	// The seed saw both joiners leave gracefully at the end of their input.
	tables := memberTables(t, seed.stdout.String())
	last := tables[len(tables)-1]
	for _, m := range last {
		if !m.Self && m.State != "left" {
			t.Errorf("after end of input %s is %s at the seed, want left", m.Alias, m.State)
		}
	}
	if !strings.Contains(seed.stdout.String(), "converged") {
		t.Errorf("the seed's !echo marker is missing:\n%s", seed.stdout.String())
	}
}

func waitListening(t testing.TB, port int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("nothing listens on port %d", port)
}

func TestScriptErrorsFailFastOrKeepGoing(t *testing.T) {
	input := script(t, "errors.cmds", nil)
	p := start(t, input, "--alias", "e1", "-P", "0")
	if code := p.wait(t, 20*time.Second); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if n := strings.Count(p.stderr.String(), "error: "); n != 1 {
		t.Fatalf("fail-fast printed %d errors, want 1:\n%s", n, p.stderr.String())
	}
	if strings.Contains(p.stdout.String(), "still running") {
		t.Fatal("the script went on after the first failure")
	}
	if !strings.Contains(p.stderr.String(), "!help") {
		t.Errorf("the error does not say what to do: %s", p.stderr.String())
	}

	k := start(t, input, "--alias", "e2", "-P", "0", "--keep-going")
	if code := k.wait(t, 20*time.Second); code != 1 {
		t.Fatalf("--keep-going: exit %d, want 1", code)
	}
	if n := strings.Count(k.stderr.String(), "error: "); n != 4 {
		t.Fatalf("--keep-going printed %d errors, want 4:\n%s", n, k.stderr.String())
	}
	if !strings.Contains(k.stdout.String(), "still running") {
		t.Fatal("--keep-going stopped early")
	}
	ok := start(t, "# a comment\n\n!echo fine\r\n", "-P", "0")
	if code := ok.wait(t, 20*time.Second); code != 0 || strings.TrimSpace(ok.stdout.String()) != "fine" {
		t.Fatalf("a clean script exited %d with %q", code, ok.stdout.String())
	}
}

// An agent leaves gracefully on SIGTERM, and on the SIGHUPs of a closed
// terminal (several come: the kernel's, a shell's), which do not cut its
// leave short.
func TestServeLeavesOnSIGTERMAndSIGHUP(t *testing.T) {
	for _, sigs := range [][]syscall.Signal{{syscall.SIGTERM}, {syscall.SIGHUP, syscall.SIGHUP, syscall.SIGHUP}} {
		t.Run(sigs[0].String(), func(t *testing.T) { serveLeavesOn(t, sigs) })
	}
}

func serveLeavesOn(t *testing.T, sigs []syscall.Signal) {
	port := freePort(t)
	agent := start(t, "", "--serve", "--alias", "agent", "-P", fmt.Sprint(port), "--tags", "role=worker")
	waitListening(t, port)
	watcher := start(t, fmt.Sprintf("!join_cluster 127.0.0.1:%d\n!wait members 2 20s\n!echo joined\n!wait agent left 30s\n!cluster_members --json\n", port),
		"--alias", "watcher", "-P", "0")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for !strings.Contains(watcher.stdout.String(), "joined") {
		select {
		case <-ctx.Done():
			t.Fatalf("watcher never joined: %s %s", watcher.stdout.String(), watcher.stderr.String())
		case <-watcher.done:
			t.Fatalf("watcher exited early: %s %s", watcher.stdout.String(), watcher.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	for _, sig := range sigs {
		agent.cmd.Process.Signal(sig)
	}
	if code := agent.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("agent exited %d after %v", code, sigs)
	}
	if code := watcher.wait(t, 40*time.Second); code != 0 {
		t.Fatalf("watcher did not see the agent leave: %d\n%s\n%s", code, watcher.stdout.String(), watcher.stderr.String())
	}
	tables := memberTables(t, watcher.stdout.String())
	for _, m := range tables[len(tables)-1] {
		if m.Alias == "agent" && (m.State != "left" || m.Tags["role"] != "worker") {
			t.Fatalf("agent shown as %+v, want left with its tags", m)
		}
	}
}

func TestVersionAndBadFlags(t *testing.T) {
	out, err := exec.Command(binary, "--version").Output()
	if err != nil || !strings.HasPrefix(string(out), "meshell ") {
		t.Fatalf("--version: %q %v", out, err)
	}
	for _, args := range [][]string{{"--profile", "moon"}, {"--tags", "novalue"}, {"--bind", "nohost"}, {"stray"},
		{"--port", "-5"}, {"-P", "70000"}, {"--suspicion-mult", "0"}, {"--probe-interval", "-1s"},
		{"--indirect-checks", "-3"}, {"--indirect-checks", "99999999999"}, {"--cluster", ""}, {"--alias", ""},
		{"--alias", "a b"}, {"--tags", "k=a,b=c d"}, {"--max-slots", "0"}, {"--max-members", "1"}, {"--metrics", "9100"},
		{"--kind", "bad"}, {"--retry-max", "x"}, {"--bogus"}, {"--bind", "0.0.0.0:2999"}, {"--bind", "[::]:2999"}} {
		cmd := exec.Command(binary, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		cmd.Stdin = strings.NewReader("")
		err := cmd.Run()
		if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 2 || !strings.HasPrefix(stderr.String(), "error: ") || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("%v: err=%v stderr=%q, want exit status 2 and one error line", args, err, stderr.String())
		}
		if flag := strings.TrimLeft(args[0], "-"); flag != "stray" && !strings.Contains(stderr.String(), strings.Replace(flag, "P", "port", 1)) {
			t.Errorf("%v: %q does not name the flag", args, stderr.String())
		}
	}
	// --bind on every interface needs --advertise: no peer could dial 0.0.0.0.
	cmd := exec.Command(binary, "--serve", "--bind", "0.0.0.0:0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil || !strings.Contains(stderr.String(), "--advertise") {
		t.Errorf("--bind 0.0.0.0:0 without --advertise: err=%v stderr=%q, want a refusal naming --advertise", err, stderr.String())
	}
}

// --help starts with the usage of meshell and of its subcommands; a word
// that is no subcommand is one error line naming them, exit status 2.
func TestHelpListsTheSubcommands(t *testing.T) {
	cmd := exec.Command(binary, "--help")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || stderr.Len() != 0 {
		t.Fatalf("--help: %v, stderr %q", err, stderr.String())
	}
	help := stdout.String() // asked for: on stdout, where | less reads it
	for i, want := range []string{"usage: meshell [flags]", "meshell attach [SOCKET|ALIAS]", "meshell keygen [--operator NAME --out FILE]", "\n  --join string\n", "\n  -P int\n"} {
		if !strings.Contains(help, want) || i == 0 && !strings.HasPrefix(help, want) {
			t.Errorf("--help lacks %q (first) in:\n%s", want, help)
		}
	}
	for _, args := range [][]string{{"--bogus"}, {"attach", "n1", "--bogus"}, {"keygen", "--bogus"}} {
		cmd = exec.Command(binary, args...)
		stderr.Reset()
		cmd.Stderr = &stderr
		cmd.Stdin = strings.NewReader("")
		cmd.Run()
		if !strings.HasPrefix(stderr.String(), "error: flag provided but not defined: --bogus (see ") {
			t.Errorf("%v: %q, want the flag named as typed", args, stderr.String())
		}
	}
	cmd = exec.Command(binary, "foo")
	stderr.Reset()
	cmd.Stderr = &stderr
	cmd.Stdin = strings.NewReader("")
	cmd.Run()
	want := "error: unknown command \"foo\": meshell takes flags, or one of: attach, keygen (see meshell --help)\n"
	if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 2 || stderr.String() != want {
		t.Errorf("meshell foo: %v stderr=%q, want exit status 2 and %q", cmd.ProcessState, stderr.String(), want)
	}
}

// The tags a node keeps itself are refused by --tags, naming the flag that
// sets them; --slots sets the slot count at start-up.
func TestTagsFlagRefusesTheNodesOwnTags(t *testing.T) {
	for _, tt := range []struct{ tags, want string }{
		{"slots=3", "error: --tags: tag slots is kept by the node: set it with --slots N"},
		{"role=worker,kinds=build", "error: --tags: tag kinds is kept by the node: it names the kinds declared with --kind"},
		{"boot=0123", "error: --tags: tag boot is kept by the node"},
	} {
		cmd := exec.Command(binary, "--tags", tt.tags, "-P", "0")
		var stderr bytes.Buffer
		cmd.Stderr, cmd.Stdin = &stderr, strings.NewReader("!echo ran\n")
		out, _ := cmd.Output()
		if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 2 || !strings.HasPrefix(stderr.String(), tt.want) || len(out) > 0 {
			t.Errorf("--tags %s: exit %v, stdout %q, stderr %q; want exit 2 and %q", tt.tags, cmd.ProcessState, out, stderr.String(), tt.want)
		}
	}
	p := start(t, "!start_cluster\n!workers --json\n", "--slots", "1", "--tags", "role=worker", "-P", "0")
	if code := p.wait(t, 20*time.Second); code != 0 || !strings.Contains(p.stdout.String(), `"slots":1,`) {
		t.Fatalf("--slots 1: exit %d, stdout %s, stderr %s", code, p.stdout.String(), p.stderr.String())
	}
	for _, n := range []string{"-1", "100000"} {
		cmd := exec.Command(binary, "--slots", n, "-P", "0")
		var stderr bytes.Buffer
		cmd.Stderr, cmd.Stdin = &stderr, strings.NewReader("")
		if cmd.Run(); cmd.ProcessState.ExitCode() != 2 || !strings.HasPrefix(stderr.String(), "error: --slots "+n+": give 0 to ") {
			t.Errorf("--slots %s: exit %d, stderr %q", n, cmd.ProcessState.ExitCode(), stderr.String())
		}
	}
}
