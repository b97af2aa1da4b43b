//go:build unix

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// attachRun runs `meshell attach ARGS…` with stdin and returns its stdout,
// stderr and exit status.
func attachRun(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	p := start(t, stdin, append([]string{"attach"}, args...)...)
	if stdin == "" {
		p.stdin.Close()
	}
	code := p.wait(t, 30*time.Second)
	return p.stdout.String(), p.stderr.String(), code
}

// attachedMembers is the membership table of the node at socket, read
// through its control socket.
func attachedMembers(t *testing.T, socket string) []member {
	t.Helper()
	out, errOut, code := attachRun(t, "", socket, "-c", "!cluster_members --json")
	tables := memberTables(t, out)
	if code != 0 || len(tables) != 1 {
		t.Fatalf("attach %s -c '!cluster_members --json': exit %d\nstdout:\n%s\nstderr:\n%s", socket, code, out, errOut)
	}
	return tables[0]
}

// sockets gives each test its own socket directory, so that its nodes'
// default sockets (named after their aliases) meet no other test's.
func sockets(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "run")
	t.Setenv("XDG_RUNTIME_DIR", dir)
	return filepath.Join(dir, "meshell")
}

func TestAgentStartedBeforeItsSeedJoinsWhenTheSeedStarts(t *testing.T) {
	dir := sockets(t)
	seedPort, agentPort := freePort(t), freePort(t)
	agent := serveNode(t, "early", agentPort, seedPort)
	time.Sleep(3 * time.Second) // the scenario: the seed starts 3 s after its agent
	seedStart := time.Now()
	serveNode(t, "seed", seedPort, 0)
	if _, err := os.Stat(filepath.Join(dir, "early.sock")); err != nil {
		t.Fatalf("the agent has no socket: %v\nagent stderr:\n%s", err, agent.stderr.String())
	}
	for _, sock := range []string{"early", "seed"} {
		for {
			alive := 0
			for _, m := range attachedMembers(t, filepath.Join(dir, sock+".sock")) {
				if m.State == "alive" {
					alive++
				}
			}
			if alive == 2 {
				break
			}
			if time.Since(seedStart) > 5*time.Second {
				t.Fatalf("%s does not see both nodes alive 5 s after the seed started\nagent stderr:\n%s", sock, agent.stderr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if n := strings.Count(agent.stderr.String(), "--join round"); n < 1 || n > 2 {
		t.Errorf("the agent said %d lines about its failed rounds in 3 s, want 1 or 2 (one every 5 s at most):\n%s", n, agent.stderr.String())
	}
}

func TestAttachRunsCommandsAsTheAgentAndAddsNoMember(t *testing.T) {
	dir := sockets(t)
	p1, p2, p3 := freePort(t), freePort(t), freePort(t)
	serveNode(t, "n1", p1, 0, "--allow-run")
	serveNode(t, "n2", p2, p1)
	serveNode(t, "n3", p3, p1)
	socks := []string{filepath.Join(dir, "n1.sock"), filepath.Join(dir, "n2.sock"), filepath.Join(dir, "n3.sock")}
	deadline := time.Now().Add(20 * time.Second)
	for _, s := range socks {
		for len(attachedMembers(t, s)) != 3 {
			if time.Now().After(deadline) {
				t.Fatalf("%s never saw 3 members", s)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	t.Run("one command by alias lists the members", func(t *testing.T) {
		out, errOut, code := attachRun(t, "", "n2", "-c", "!cluster_members --json")
		tables := memberTables(t, out)
		if code != 0 || errOut != "" || len(tables) != 1 || len(tables[0]) != 3 {
			t.Fatalf("exit %d, stderr %q, tables %v", code, errOut, tables)
		}
		for _, m := range tables[0] {
			if m.Self != (m.Alias == "n2") {
				t.Errorf("the command did not run as n2: %+v", m)
			}
		}
	})
	t.Run("no member appears anywhere afterwards", func(t *testing.T) {
		for _, s := range socks {
			ms := attachedMembers(t, s)
			var names []string
			for _, m := range ms {
				names = append(names, m.Alias+" "+m.State)
			}
			if len(ms) != 3 {
				t.Errorf("%s lists %s, want n1, n2 and n3 alive only", s, strings.Join(names, ", "))
			}
		}
	})
	t.Run("a failed command exits 1 with its error on stderr only", func(t *testing.T) {
		out, errOut, code := attachRun(t, "", socks[0], "-c", "!wait nobody alive 100ms")
		if code != 1 || out != "" || !strings.HasPrefix(errOut, "error: -c 1: !wait: timed out after 100ms waiting for nobody") {
			t.Fatalf("exit %d\nstdout %q\nstderr %q", code, out, errOut)
		}
	})
	t.Run("a script's exit status", func(t *testing.T) {
		out, errOut, code := attachRun(t, "!echo one\n# a comment\n!wait n3 alive 5s\n!echo two\n", socks[0])
		if code != 0 || out != "one\nn3 is alive\ntwo\n" || errOut != "" {
			t.Fatalf("good script: exit %d\nstdout %q\nstderr %q", code, out, errOut)
		}
		out, errOut, code = attachRun(t, "!echo one\n!wait nobody alive 100ms\n!echo two\n", socks[0])
		if code != 1 || out != "one\n" || !strings.HasPrefix(errOut, "error: line 2: !wait: timed out") {
			t.Fatalf("failing script: exit %d\nstdout %q\nstderr %q", code, out, errOut)
		}
		out, _, code = attachRun(t, "!nosuch\n!echo two\n", socks[0], "--keep-going")
		if code != 1 || out != "two\n" {
			t.Fatalf("--keep-going: exit %d, stdout %q", code, out)
		}
	})
	t.Run("several -c run in order, as a script", func(t *testing.T) {
		out, errOut, code := attachRun(t, "", "n1", "-c", "!echo one", "-c", "!echo two")
		if code != 0 || out != "one\ntwo\n" || errOut != "" {
			t.Fatalf("exit %d\nstdout %q\nstderr %q, want both commands' output in order", code, out, errOut)
		}
		out, errOut, code = attachRun(t, "", "n1", "-c", "!nosuch", "-c", "!echo two", "--keep-going")
		if code != 1 || out != "two\n" || !strings.HasPrefix(errOut, "error: -c 1: !nosuch: unknown command") {
			t.Fatalf("--keep-going: exit %d\nstdout %q\nstderr %q", code, out, errOut)
		}
	})
	t.Run("Ctrl-C cancels the one command on the node", func(t *testing.T) {
		p := start(t, "", "attach", socks[0], "-c", "!run n1 -- sh -c 'echo ready; sleep 30'")
		p.stdin.Close()
		p.waitOutput(t, "ready", 20*time.Second)
		p.cmd.Process.Signal(syscall.SIGINT)
		code := p.wait(t, 10*time.Second)
		if errOut := p.stderr.String(); code != 1 || !strings.Contains(errOut, "\nerror: -c 1: !run: cancelled: ") || !strings.Contains(errOut, "1 cancelled (n1)") {
			t.Fatalf("exit %d\nstdout %q\nstderr %q, want 1 and the cancellation on stderr", code, p.stdout.String(), errOut)
		}
	})
	t.Run("bad flags and an empty -c are one error line", func(t *testing.T) {
		for _, args := range [][]string{{"-x"}, {socks[0], "-c", ""}} {
			out, errOut, code := attachRun(t, "", args...)
			if code != 2 || out != "" || !strings.HasPrefix(errOut, "error: ") || strings.Count(errOut, "\n") != 1 {
				t.Errorf("attach %q: exit %d\nstdout %q\nstderr %q, want 2 and one error line", args, code, out, errOut)
			}
		}
	})
	t.Run("!quit ends a script with status 0 and the agent keeps running", func(t *testing.T) {
		out, errOut, code := attachRun(t, "!cluster_members\n!quit\n!echo after\n", socks[2])
		if code != 0 || errOut != "" || !strings.Contains(out, "n3") || strings.Contains(out, "after") {
			t.Fatalf("exit %d\nstdout %q\nstderr %q", code, out, errOut)
		}
		if len(attachedMembers(t, socks[2])) != 3 {
			t.Fatal("n3 lost members after !quit")
		}
	})
	t.Run("commands with no socket are refused", func(t *testing.T) {
		for _, c := range []struct{ stdin, args []string }{{nil, []string{"-c", "!cluster_members"}}, {[]string{"!cluster_members\n!quit\n"}, nil}} {
			out, errOut, code := attachRun(t, strings.Join(c.stdin, ""), c.args...)
			if code != 2 || out != "" || !strings.HasPrefix(errOut, "error: ") || !strings.Contains(errOut, "needs a socket or alias") || strings.Count(errOut, "\n") != 1 {
				t.Errorf("attach %q, stdin %q: exit %d\nstdout %q\nstderr %q, want 2 and one error line", c.args, c.stdin, code, out, errOut)
			}
		}
	})
	t.Run("with no argument it lists the sockets", func(t *testing.T) {
		out, _, code := attachRun(t, "")
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
		for _, s := range socks {
			if !strings.Contains(out, s) {
				t.Errorf("the list does not name %s:\n%s", s, out)
			}
		}
	})
}

func TestAttachStaleAndTakenSockets(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s", "a.sock")
	port := freePort(t)
	first := serveNode(t, "a", port, 0, "--socket", sock)
	// A second node cannot take a socket a live node answers on.
	second := start(t, "", "--serve", "--alias", "b", "-P", fmt.Sprint(freePort(t)), "--socket", sock)
	if code := second.wait(t, 20*time.Second); code != 1 || !strings.Contains(second.stderr.String(), "in use by a running node") {
		t.Fatalf("second node on a taken socket: exit %d, stderr %q", code, second.stderr.String())
	}
	// A node killed with -9 leaves its socket behind; the next one takes it.
	first.cmd.Process.Kill()
	<-first.done
	if _, err := os.Stat(sock); err != nil {
		t.Fatalf("the killed node left no socket to test with: %v", err)
	}
	_, errOut, code := attachRun(t, "", sock, "-c", "!echo hi")
	if code != 1 || !strings.Contains(errOut, "the socket is stale") {
		t.Errorf("attach to a stale socket: exit %d, stderr %q", code, errOut)
	}
	serveNode(t, "a", freePort(t), 0, "--socket", sock)
	if ms := attachedMembers(t, sock); len(ms) != 1 || ms[0].Alias != "a" {
		t.Fatalf("the new node's socket: %v", ms)
	}
}

func TestAnotherUserCannotOpenTheSocket(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root, to run the client as the user nobody")
	}
	// nobody must be able to run the binary: a copy in a world-readable place.
	bin := filepath.Join(t.TempDir(), "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Dir(bin), filepath.Dir(filepath.Dir(bin))} {
		os.Chmod(p, 0o755) // the test's own directories
	}
	b, err := os.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(bin, "meshell")
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	asNobody := func(sock string) (string, int) {
		cmd := exec.Command(exe, "attach", sock, "-c", "!cluster_members")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if cmd.ProcessState == nil {
			t.Skipf("cannot run a process as nobody: %v", err)
		}
		return string(out), cmd.ProcessState.ExitCode()
	}
	if out, code := asNobody("/"); code == -1 || strings.Contains(out, "permission denied") && strings.Contains(out, "exec") {
		t.Skipf("cannot run the binary as nobody: %s", out)
	}
	dir := filepath.Join(t.TempDir(), "sock")
	sock := filepath.Join(dir, "n1.sock")
	serveNode(t, "n1", freePort(t), 0, "--socket", sock)
	for _, p := range []string{filepath.Dir(filepath.Dir(dir)), filepath.Dir(dir)} {
		os.Chmod(p, 0o755) // the test's own directories: only the socket's modes should stop nobody
	}

	out, code := asNobody(sock)
	if code != 1 || !strings.Contains(out, "permission denied") {
		t.Fatalf("nobody attached through a 0700 directory and a 0600 socket: exit %d, %q", code, out)
	}
	// Opened up by mistake, the socket still refuses another uid (SO_PEERCRED).
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sock, 0o666); err != nil {
		t.Fatal(err)
	}
	out, code = asNobody(sock)
	if code != 1 || !strings.Contains(out, "refused: uid 65534 may not use the control socket") {
		t.Fatalf("nobody attached through an open socket: exit %d, %q", code, out)
	}
	if ms := attachedMembers(t, sock); len(ms) != 1 {
		t.Fatalf("the owner cannot attach any more: %v", ms)
	}

	// The other way round: a node of another user (here nobody's, attached
	// to by root) is not attached to, since what it sends reaches the
	// terminal unchecked.
	theirs := filepath.Join(t.TempDir(), "theirs")
	if err := os.Mkdir(theirs, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(theirs, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Dir(theirs), 0o755)
	theirSock := filepath.Join(theirs, "evil.sock")
	agent := exec.Command(exe, "--serve", "--alias", "evil", "-P", fmt.Sprint(freePort(t)), "--socket", theirSock)
	agent.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var agentErr strings.Builder
	agent.Stderr = &agentErr
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Process.Kill(); agent.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(theirSock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nobody's node never made its socket:\n%s", agentErr.String())
		}
	}
	out, errOut, code := attachRun(t, "", theirSock, "-c", "!echo hi")
	if code != 1 || out != "" || !strings.Contains(errOut, "its node runs as uid 65534, not as this user (uid 0)") {
		t.Fatalf("root attached to nobody's node: exit %d\nstdout %q\nstderr %q", code, out, errOut)
	}
}

func TestAttachInATerminal(t *testing.T) {
	t.Parallel()
	needTmux(t)
	dir := filepath.Join(t.TempDir(), "s")
	sock := filepath.Join(dir, "a.sock")
	port := freePort(t)
	agent := serveNode(t, "a", port, 0, "--socket", sock, "--allow-run")
	ts := newTmux(t, shellCommand("attach", sock, "--history-file", filepath.Join(t.TempDir(), "hist")))
	ts.waitFor("attached to a")
	ts.waitLastLine("a [1 alive]>")

	ts.typeText("!cluster_mem")
	ts.keys("Tab")
	ts.waitScreen("!cluster_members completed", func(s string) bool { // by the agent; the hint after it drawn by the client
		return strings.HasPrefix(lastLine(s), "a [1 alive]> !cluster_members [--")
	})
	ts.keys("Enter")
	ts.waitFor("a *    127.0.0.1:")

	ts.line("!events on")
	ts.waitFor("events on")
	serveNode(t, "b", freePort(t), port)
	ts.waitFor("member-join b")
	ts.waitLastLine("a [2 alive]>")

	ts.line("!sleep 1h")
	ts.waitRunning("a [2 alive]> !sleep 1h")
	ts.keys("C-c")
	ts.waitFor("sleep cancelled")
	ts.waitLastLine("a [2 alive]>")

	// Enter and Ctrl-C in one read: the Ctrl-C cancels the command, and is
	// not kept for the next prompt.
	ts.typeText("!sleep 1h")
	ts.waitLastLine("a [2 alive]> !sleep 1h")
	ts.keys("Enter", "C-c")
	ts.waitScreen("the second sleep cancelled", func(s string) bool {
		return strings.Count(s, "sleep cancelled") == 2 && lastLine(s) == "a [2 alive]>"
	})
	ts.line("!echo after-enter-ctrl-c")
	if s := ts.waitScreen("the next command's output", func(s string) bool {
		return strings.Contains(s, "\nafter-enter-ctrl-c\n") && lastLine(s) == "a [2 alive]>"
	}); strings.Contains(s, "a [2 alive]> ^C") {
		t.Errorf("the Ctrl-C came back at the next prompt:\n%s", s)
	}

	// A Ctrl-C after some output is said where it came, before the node
	// says how the command ended.
	ts.keys("C-l")
	ts.waitLastLine("a [2 alive]>")
	ts.line("!run a -- sh -c 'echo ready; sleep 100'")
	ts.waitFor("a: ready")
	ts.keys("C-c")
	s := ts.waitScreen("the !run cancelled", func(s string) bool {
		return strings.Contains(s, "\nerror: cancelled: ") && lastLine(s) == "a [2 alive]>"
	})
	if _, out, _ := strings.Cut(s, "a: ready\n"); !strings.HasPrefix(out, "^C\na: cancelled") {
		t.Errorf("^C is not between the output and the cancellation:\n%s", s)
	}

	ts.line("!quit")
	ts.waitFor("!quit would stop the node you are attached to")
	ts.keys("C-d")
	ts.waitFor("detached; a keeps running")
	ts.waitFor("EXITED 0")
	select {
	case <-agent.done:
		t.Fatalf("the agent exited when the shell detached:\n%s", agent.stderr.String())
	default:
	}
	if ms := attachedMembers(t, sock); len(ms) != 2 {
		t.Fatalf("after detaching: %v", ms)
	}

	// A !shutdown from elsewhere, while a command runs here: the shell's
	// last words replace its prompt, and it exits 0.
	ts2 := newTmux(t, shellCommand("attach", sock, "--history-file", filepath.Join(t.TempDir(), "hist2")))
	ts2.waitLastLine("a [2 alive]>")
	ts2.line("!wait members 5 60s")
	ts2.waitRunning("a [2 alive]> !wait members 5 60s")
	if _, errOut, code := attachRun(t, "", sock, "-c", "!shutdown a"); code != 0 {
		t.Fatalf("!shutdown a: exit %d, %s", code, errOut)
	}
	screen := ts2.waitFor("EXITED 0")
	checkLastWords(t, screen)
}

// attach -c typed at a terminal is coloured as the shell is; --no-color
// and a pipe are not.
func TestAttachCommandColouredOnATerminal(t *testing.T) {
	t.Parallel()
	needTmux(t)
	sock := filepath.Join(t.TempDir(), "s", "a.sock")
	serveNode(t, "a", freePort(t), 0, "--socket", sock)
	attach := "env -u NO_COLOR " + binary + " attach '" + sock + "' "
	ts := newTmux(t, attach+"-c '!cluster_members' -c '!echo coloured-done'; "+
		attach+"--no-color -c '!cluster_members' -c '!echo plain-done'; sleep 600")
	ts.waitFor("plain-done")
	screen := ts.run("capture-pane", "-p", "-e", "-t", "t")
	coloured, plain, _ := strings.Cut(screen, "coloured-done")
	if !strings.Contains(coloured, "\x1b[") || !strings.Contains(coloured, "alive") {
		t.Errorf("attach -c on a terminal printed no colour: %q", coloured)
	}
	if strings.Contains(plain, "\x1b[") {
		t.Errorf("attach --no-color -c printed escape codes: %q", plain)
	}
	if out, _, code := attachRun(t, "", sock, "-c", "!cluster_members"); code != 0 || strings.Contains(out, "\x1b[") {
		t.Errorf("attach -c into a pipe: exit %d, %q", code, out)
	}
}

func TestAShellWhoseJoinFailsOpensThePrompt(t *testing.T) {
	t.Parallel()
	needTmux(t)
	port := freePort(t)
	ts := newTmux(t, shellCommand("--alias", "x", "-P", fmt.Sprint(port), "--join", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--retry-max", "2",
		"--socket", "none", "--history-file", filepath.Join(t.TempDir(), "hist")))
	ts.waitFor("connection refused")
	ts.waitLastLine("x [1 alive]>")
	ts.line("!echo still here")
	ts.waitFor("still here")
}

// A node killed under an attached shell's command ends the shell with
// status 1, the session's end said once.
func TestAttachedShellWhoseNodeDiesSaysSoOnce(t *testing.T) {
	t.Parallel()
	needTmux(t)
	sock := filepath.Join(t.TempDir(), "s", "a.sock")
	agent := serveNode(t, "a", freePort(t), 0, "--socket", sock)
	ts := newTmux(t, shellCommand("attach", sock, "--history-file", filepath.Join(t.TempDir(), "hist")))
	ts.waitLastLine("a [1 alive]>")
	ts.line("!sleep 1h")
	ts.waitRunning("a [1 alive]> !sleep 1h")
	agent.cmd.Process.Kill()
	screen := ts.waitFor("EXITED 1")
	if n := strings.Count(screen, "the session ended"); n != 1 {
		t.Fatalf("the session's end said %d times, want once:\n%s", n, screen)
	}
}

// With no socket, attach lists the sockets; a command or a script on
// stdin needs one: exit 2 and an error line with an example.
func TestAttachWithNoSocketRefusesCommands(t *testing.T) {
	sockets(t)
	run := func(stdin string, args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := attachCmd(args, strings.NewReader(stdin), &out, &errb)
		return code, out.String(), errb.String()
	}
	for _, c := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{"", []string{"-c", "!cluster_members"}, "error: -c needs a socket or alias to run on, e.g. meshell attach n1 -c '!cluster_members' (meshell attach alone lists the sockets)\n"},
		{"!cluster_members\n", []string{"--keep-going"}, `error: a script on stdin needs a socket or alias to run on, e.g. printf '!cluster_members\n' | meshell attach n1 (meshell attach alone lists the sockets)` + "\n"},
		{"# a comment\n\n  !echo hi\n", nil, "error: a script on stdin needs a socket or alias"},
	} {
		code, out, errOut := run(c.stdin, c.args...)
		if code != 2 || out != "" || !strings.HasPrefix(errOut, c.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("attach %q, stdin %q: exit %d\nstdout %q\nstderr %q, want 2 and %q", c.args, c.stdin, code, out, errOut, c.want)
		}
	}
	// No script: the sockets are listed (here none, exit 1).
	for _, stdin := range []string{"", "\n# only a comment\n  \n"} {
		if code, _, errOut := run(stdin); code != 1 || !strings.HasPrefix(errOut, "error: no control socket in ") {
			t.Errorf("stdin %q: exit %d, stderr %q, want the (empty) list of sockets", stdin, code, errOut)
		}
	}
}

func TestHasScript(t *testing.T) {
	long := strings.Repeat("x", 10000)
	for _, c := range []struct {
		in   string
		want bool
	}{
		{"", false}, {"\n\n", false}, {"  \t\r\n", false}, {"# a\n  # b\n", false}, {"#" + long + "\n", false},
		{"!a", true}, {"\n  !a\n", true}, {"# x\n!a\n", true}, {"#" + long + "\n!a", true}, {"#" + long + "!a", false},
		{strings.Repeat(" ", 10000) + "!a\n", true}, {strings.Repeat(" ", 10000) + "#!a\n", false},
	} {
		if got := hasScript(strings.NewReader(c.in)); got != c.want {
			t.Errorf("hasScript(%.40q) = %v, want %v", c.in, got, c.want)
		}
	}
	if hasScript(nil) {
		t.Error("hasScript(nil) = true")
	}
}
