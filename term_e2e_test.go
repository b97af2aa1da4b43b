package main

// Terminal tests: meshell runs in a real terminal (a tmux pane of fixed
// size) and is typed at with send-keys; the screen is read back with
// capture-pane. Each test has its own tmux server (-L), killed at cleanup.
// The binary is the one TestMain builds, without -race: readline's own data
// races (chzyer/readline #214, #219) cannot show up here.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// tmuxServer is a private tmux server running one session, "t".
type tmuxServer struct {
	t      *testing.T
	socket string
}

func needTmux(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux is not installed: the terminal tests need it (apt-get install tmux)")
	}
}

var (
	unsafeName  = regexp.MustCompile(`[^A-Za-z0-9]+`)
	tmuxServers atomic.Int64
)

// newTmux starts a private tmux server whose first pane runs command.
func newTmux(t *testing.T, command string) *tmuxServer {
	t.Helper()
	needTmux(t)
	name := fmt.Sprintf("meshell-%d-%d-%s", os.Getpid(), tmuxServers.Add(1), unsafeName.ReplaceAllString(t.Name(), "-"))
	if len(name) > 60 {
		name = name[:60]
	}
	ts := &tmuxServer{t: t, socket: name}
	t.Cleanup(func() { exec.Command("tmux", "-L", ts.socket, "kill-server").Run() })
	ts.run("-f", "/dev/null", "new-session", "-d", "-s", "t", "-x", "150", "-y", "40", command)
	return ts
}

func (ts *tmuxServer) run(args ...string) string {
	ts.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-L", ts.socket}, args...)...).CombinedOutput()
	if err != nil {
		ts.t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// typeText types text literally, without Enter.
func (ts *tmuxServer) typeText(text string) {
	ts.t.Helper()
	ts.run("send-keys", "-t", "t", "-l", text)
}

// keys sends named keys: Enter, Tab, C-c, C-d, Up…
func (ts *tmuxServer) keys(keys ...string) {
	ts.t.Helper()
	ts.run(append([]string{"send-keys", "-t", "t"}, keys...)...)
}

// line types text and Enter.
func (ts *tmuxServer) line(text string) { ts.t.Helper(); ts.typeText(text); ts.keys("Enter") }

// screen is what the pane shows, trailing blank lines removed.
func (ts *tmuxServer) screen() string {
	ts.t.Helper()
	return strings.TrimRight(ts.run("capture-pane", "-p", "-t", "t"), "\n")
}

// waitScreen polls the pane until ok holds, or fails after a generous
// deadline showing the screen.
func (ts *tmuxServer) waitScreen(what string, ok func(screen string) bool) string {
	ts.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		s := ts.screen()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			ts.t.Fatalf("the terminal never showed %s; screen:\n%s", what, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (ts *tmuxServer) waitFor(text string) string {
	ts.t.Helper()
	return ts.waitScreen(fmt.Sprintf("%q", text), func(s string) bool { return strings.Contains(s, text) })
}

// lastLine is the screen's last non-blank line (where the prompt is).
func lastLine(screen string) string {
	lines := strings.Split(strings.TrimRight(screen, "\n "), "\n")
	return strings.TrimRight(lines[len(lines)-1], " ")
}

func (ts *tmuxServer) waitLastLine(want string) string {
	ts.t.Helper()
	return ts.waitScreen(fmt.Sprintf("%q on the last line", want), func(s string) bool { return lastLine(s) == want })
}

// waitRunning waits until the command on the last line was entered (the
// cursor went to the next line), then a little longer so that readline has
// left raw mode and Ctrl-C arrives as a signal.
func (ts *tmuxServer) waitRunning(promptAndCommand string) {
	ts.t.Helper()
	ts.waitScreen(fmt.Sprintf("%q running", promptAndCommand), func(s string) bool {
		return lastLine(s) == promptAndCommand && strings.TrimSpace(ts.run("display-message", "-p", "-t", "t", "#{cursor_x}")) == "0"
	})
	time.Sleep(200 * time.Millisecond)
}

// shellCommand runs meshell in the pane, then says how it exited and in
// which mode it left the terminal, and keeps the pane open. NO_COLOR is unset so that hints are drawn.
func shellCommand(args ...string) string {
	q := []string{"env", "-u", "NO_COLOR", binary}
	for _, a := range args {
		q = append(q, "'"+a+"'")
	}
	return strings.Join(q, " ") + "; echo EXITED $?; " + ttyMode + "; sleep 600"
}

func TestTerminalCompletionPromptAndAsyncEvents(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	ts := newTmux(t, shellCommand("--alias", "alpha", "-P", fmt.Sprint(port), "--profile", "local",
		"--history-file", filepath.Join(t.TempDir(), "hist")))
	ts.waitLastLine("alpha [not in a cluster]>")

	t.Run("tab completes a command and shows its hint", func(t *testing.T) {
		ts.t = t
		ts.typeText("!start_cl")
		ts.keys("Tab")
		ts.waitLastLine("alpha [not in a cluster]> !start_cluster [HOST:PORT]") // completed; the grey hint follows
		ts.keys("Enter")
		ts.waitFor(fmt.Sprintf("listening on 127.0.0.1:%d as alpha", port))
		ts.waitLastLine("alpha [1 alive]>")
	})

	t.Run("an event leaves the half-typed line intact", func(t *testing.T) {
		ts.t = t
		ts.line("!events on")
		ts.waitFor("events on")
		ts.typeText("!echo half typed")
		ts.waitLastLine("alpha [1 alive]> !echo half typed")
		bravo := start(t, "", "--alias", "bravo", "-P", "0", "--profile", "local")
		bravo.feed(t, fmt.Sprintf("!join_cluster 127.0.0.1:%d\n", port))
		s := ts.waitScreen("the join event above the prompt", func(s string) bool {
			return strings.Contains(s, "member-join bravo") && lastLine(s) == "alpha [2 alive]> !echo half typed"
		})
		lines := strings.Split(s, "\n")
		if !strings.Contains(lines[len(lines)-2], "bravo") {
			t.Errorf("the event is not right above the prompt:\n%s", s)
		}
		ts.keys("Enter")
		ts.waitScreen("the finished line's output", func(s string) bool {
			return strings.Contains(s, "\nhalf typed\n") && lastLine(s) == "alpha [2 alive]>"
		})

		t.Run("tab completes a member alias", func(t *testing.T) {
			ts.t = t
			ts.typeText("!wait br")
			ts.keys("Tab")
			ts.waitLastLine("alpha [2 alive]> !wait bravo STATE [TIMEOUT]") // the hint goes on after an argument
			ts.typeText("al")
			ts.keys("Tab")
			ts.waitLastLine("alpha [2 alive]> !wait bravo alive [TIMEOUT]")
			ts.keys("Enter")
			ts.waitFor("bravo is alive")
		})

		bravo.stdin.Close() // leaves at the end of its input
		ts.waitScreen("the leave event and the prompt redrawn", func(s string) bool {
			return strings.Contains(s, "member-leave bravo") && lastLine(s) == "alpha [1 alive]>"
		})
	})
}

func TestTerminalHistorySurvivesARestart(t *testing.T) {
	t.Parallel()
	hist := filepath.Join(t.TempDir(), "history")
	ts := newTmux(t, shellCommand("--alias", "h1", "-P", "0", "--history-file", hist))
	ts.waitLastLine("h1 [not in a cluster]>")
	ts.line("!echo remembered-1")
	ts.waitFor("\nremembered-1")
	ts.line("!echo second")
	ts.waitFor("\nsecond")
	ts.keys("C-d")
	ts.waitFor("EXITED 0")
	b, err := os.ReadFile(hist)
	if err != nil || !strings.Contains(string(b), "!echo remembered-1\n!echo second\n") {
		t.Fatalf("history file: %q %v", b, err)
	}

	ts2 := newTmux(t, shellCommand("--alias", "h2", "-P", "0", "--history-file", hist))
	ts2.waitLastLine("h2 [not in a cluster]>")
	ts2.keys("Up")
	ts2.waitLastLine("h2 [not in a cluster]> !echo second")
	ts2.keys("Up")
	ts2.waitLastLine("h2 [not in a cluster]> !echo remembered-1")
	ts2.keys("Enter")
	ts2.waitScreen("the recalled command's output", func(s string) bool {
		return strings.Contains(s, "\nremembered-1\n") && lastLine(s) == "h2 [not in a cluster]>"
	})
	// Ctrl-R searches the history.
	ts2.keys("C-r")
	ts2.typeText("cond")
	ts2.waitScreen("a reverse search finding !echo second", func(s string) bool {
		return strings.Contains(s, "bck-i-search: cond") && strings.Contains(s, "> !echo second")
	})
	ts2.keys("Enter")
	ts2.waitScreen("the found command's output", func(s string) bool {
		return strings.Count(s, "\nsecond\n") == 1 && lastLine(s) == "h2 [not in a cluster]>"
	})
	// Control commands (Command.NoHistory) stay out of the history, in
	// the file and for the Up arrow.
	ts2.line("!restart nosuchnode")
	s := ts2.waitScreen("the control command's answer", func(s string) bool {
		return strings.Count(s, "error: ") >= 1 && lastLine(s) == "h2 [not in a cluster]>"
	})
	if !strings.Contains(s, "unknown command !restart") {
		ts2.keys("Up")
		ts2.waitLastLine("h2 [not in a cluster]> !echo second")
		ts2.keys("C-c")
		if b, _ := os.ReadFile(hist); strings.Contains(string(b), "restart") {
			t.Errorf("!restart was saved in the history:\n%s", b)
		}
	}
	// Two Ctrl-C on an empty line leave and exit.
	ts2.keys("C-c")
	ts2.waitFor("Ctrl-C again")
	ts2.keys("C-c")
	ts2.waitFor("EXITED 0")
}

func TestTerminalCtrlCCtrlZAndCtrlD(t *testing.T) {
	t.Parallel()
	ts := newTmux(t, shellCommand("--alias", "c1", "-P", "0", "--profile", "local", "--history-file", filepath.Join(t.TempDir(), "h")))
	ts.waitLastLine("c1 [not in a cluster]>")
	ts.line("!start_cluster")
	ts.waitLastLine("c1 [1 alive]>")
	if col := ts.run("capture-pane", "-p", "-e", "-t", "t"); !strings.Contains(col, "\x1b[32m1 alive") {
		t.Errorf("colour is on but the prompt's alive count is not green: %q", col)
	}

	// Ctrl-C clears a half-typed line.
	ts.typeText("!echo never")
	ts.waitLastLine("c1 [1 alive]> !echo never")
	ts.keys("C-c")
	ts.waitLastLine("c1 [1 alive]>")

	// Ctrl-C cancels a running !wait and the shell still works.
	ts.line("!wait members 5 60s")
	ts.waitRunning("c1 [1 alive]> !wait members 5 60s")
	start := time.Now()
	ts.keys("C-c")
	ts.waitFor("cancelled waiting for 5 alive members")
	ts.waitLastLine("c1 [1 alive]>")
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the cancelled !wait took %v to return", d)
	}
	// A Ctrl-Z byte neither suspends nor hangs the shell, at the prompt or
	// while a command runs.
	ts.keys("C-z")
	ts.line("!echo after-ctrl-z")
	ts.waitFor("\nafter-ctrl-z")
	// Nor does it flush what was typed ahead around it.
	ts.line("!sleep 2s")
	ts.waitRunning("c1 [1 alive]> !sleep 2s")
	ts.typeText("!echo still-")
	ts.keys("C-z")
	ts.typeText("here")
	ts.waitLastLine("c1 [1 alive]> !echo still-here")
	ts.keys("Enter")
	ts.waitFor("\nstill-here")
	if strings.Contains(ts.screen(), "never\n") {
		t.Errorf("the cleared line ran:\n%s", ts.screen())
	}
	// Ctrl-D on an empty line leaves gracefully and exits 0.
	ts.keys("C-d")
	ts.waitFor("leaving the cluster")
	ts.waitFor("EXITED 0")
}

// Ctrl-C pressed with Enter, in the same read of the terminal (one
// send-keys), cancels the command Enter started, and is not kept for the
// next prompt, where it would clear the line and arm "Ctrl-C again".
func TestTerminalCtrlCWithEnterCancelsTheCommand(t *testing.T) {
	t.Parallel()
	ts := newTmux(t, shellCommand("--alias", "e1", "-P", "0", "--profile", "local", "--demo", "--allow-run",
		"--history-file", filepath.Join(t.TempDir(), "h")))
	prompt := "e1 [3 alive]>"
	ts.waitLastLine(prompt)
	ts.waitFor("\nand !run --all -- uname -a\n") // --allow-run: the demo says what to try
	for i, line := range []string{
		"!bench --n 100000 sleep 10ms",
		"!run worker1 -- sleep 100",
		"!dispatch sleep 60s",
		"!wait members 9 60s",
	} {
		t.Run(line, func(t *testing.T) {
			ts.t = t
			ts.run("clear-history", "-t", "t")
			ts.keys("C-l") // a clear screen: what follows is this case's
			ts.waitLastLine(prompt)
			ts.typeText(line)
			ts.waitLastLine(prompt + " " + line)
			ts.keys("Enter", "C-c")
			ts.waitScreen("the command cancelled and a fresh prompt", func(s string) bool {
				_, out, ran := strings.Cut(s, prompt+" "+line+"\n")
				return ran && strings.Contains(out, "^C\n") && lastLine(s) == prompt
			})
			marker := fmt.Sprintf("after-%d", i)
			ts.line("!echo " + marker) // the lost Ctrl-C would come before it
			s := ts.waitScreen("the next command's output", func(s string) bool {
				return strings.Contains(s, "\n"+marker+"\n") && lastLine(s) == prompt
			})
			if strings.Contains(s, "Ctrl-C again") || strings.Contains(s, prompt+" ^C") {
				t.Errorf("the Ctrl-C came back at the next prompt:\n%s", s)
			}
		})
	}
	// A Ctrl-C pressed once the command printed something is said where it
	// came: after that output, before the command says how it ended.
	t.Run("^C between the output and the end", func(t *testing.T) {
		ts.t = t
		ts.run("clear-history", "-t", "t")
		ts.keys("C-l")
		ts.waitLastLine(prompt)
		ts.line("!run worker1 -- sh -c 'echo ready; sleep 100'")
		ts.waitFor("worker1: ready")
		ts.keys("C-c")
		s := ts.waitScreen("the command cancelled and a fresh prompt", func(s string) bool {
			return strings.Contains(s, "\nerror: cancelled: ") && lastLine(s) == prompt
		})
		if _, out, _ := strings.Cut(s, "worker1: ready\n"); !strings.HasPrefix(out, "^C\nworker1: cancelled") {
			t.Errorf("^C is not between the output and the cancellation:\n%s", s)
		}
	})
	// One Ctrl-C at the prompt now only arms the leave.
	ts.t = t
	ts.keys("C-c")
	ts.waitFor("Ctrl-C again")
	ts.line("!echo still-here")
	ts.waitFor("\nstill-here")
}

// Ctrl-C while Tab's candidates are shown, listed (one Tab) or one of them
// picked (two Tabs), clears the line and gives a fresh prompt, as it does
// elsewhere.
func TestTerminalCtrlCAfterTabTab(t *testing.T) {
	t.Parallel()
	ts := newTmux(t, shellCommand("--alias", "k1", "-P", "0", "--history-file", filepath.Join(t.TempDir(), "h")))
	prompt := "k1 [not in a cluster]>"
	ts.waitLastLine(prompt)
	for _, tabs := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d Tab", tabs), func(t *testing.T) {
			ts.t = t
			ts.typeText("!w")
			ts.keys("Tab")
			ts.waitScreen("the candidates below the line", func(s string) bool {
				return strings.HasPrefix(lastLine(s), "!wait ") && strings.HasSuffix(lastLine(s), "!workers")
			})
			if tabs == 2 {
				ts.keys("Tab")
				ts.waitScreen("!wait picked", func(string) bool {
					return strings.Contains(ts.run("capture-pane", "-p", "-e", "-t", "t"), "\x1b[47m!wait")
				})
			}
			ts.keys("C-c")
			s := ts.waitLastLine(prompt)
			if lines := strings.Split(s, "\n"); strings.TrimRight(lines[len(lines)-2], " ") != prompt+" !w^C" {
				t.Errorf("the line is not ended by ^C above the fresh prompt:\n%s", s)
			}
		})
	}
	ts.t = t
	ts.line("!echo fresh")
	ts.waitScreen("!echo run from an empty line", func(s string) bool {
		return strings.Contains(s, "\nfresh\n") && lastLine(s) == prompt
	})
}

func TestTmuxClusterScript(t *testing.T) {
	t.Parallel()
	needTmux(t)
	// TMUX_TMPDIR gives the script a tmux server of its own.
	dir, err := os.MkdirTemp("", "mt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "NO_COLOR=") { // the hint is drawn in colour only
			env = append(env, e)
		}
	}
	env = append(env, "TMUX_TMPDIR="+dir, "TMUX=")
	tmux := func(args ...string) (string, error) {
		cmd := exec.Command("tmux", args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() { tmux("kill-server") })
	script := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("scripts/tmux-cluster.sh", args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("tmux-cluster.sh %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	base := reservePorts(t, 3)
	session := fmt.Sprintf("mc%d", os.Getpid())
	script("-d", "-s", session, "-b", binary, "3", fmt.Sprint(base))

	titles, _ := tmux("list-panes", "-t", session, "-F", "#{pane_title}")
	if strings.Fields(titles) == nil || strings.Join(strings.Fields(titles), ",") != "node1,node2,node3" {
		t.Errorf("pane titles %q, want node1..node3", titles)
	}
	send := func(pane int, text string, enter bool) {
		t.Helper()
		target := fmt.Sprintf("%s:cluster.%d", session, pane)
		if out, err := tmux("send-keys", "-t", target, "-l", text); err != nil {
			t.Fatalf("send-keys: %v %s", err, out)
		}
		if enter {
			tmux("send-keys", "-t", target, "Enter")
		}
	}
	capture := func() string {
		s, _ := tmux("capture-pane", "-p", "-t", session+":cluster.0")
		return s
	}
	// What README's capture shows, typed the way it says.
	send(0, "!cluster_members", true)
	alive := func(table string, i int) bool {
		return regexp.MustCompile(fmt.Sprintf(`node%d[ *]+127\.0\.0\.1:%d +alive`, i, base+i-1)).MatchString(table)
	}
	waitPane := func(what string, ok func(string) bool) string {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			screen := capture()
			if ok(screen) {
				return screen
			}
			if time.Now().After(deadline) {
				t.Fatalf("pane 0 never showed %s:\n%s", what, screen)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitPane("3 alive members", func(screen string) bool {
		i := strings.LastIndex(screen, "ALIAS")
		return i >= 0 && alive(screen[i:], 1) && alive(screen[i:], 2) && alive(screen[i:], 3)
	})
	send(0, "!dispatch echo hi", true) // the workers are tagged: it runs
	waitPane("the job's answer", func(screen string) bool {
		return regexp.MustCompile(`\njob 1 on node[23], 1 attempt`).MatchString(screen)
	})
	send(2, "!quit", true)
	waitPane("node3 leaving", func(screen string) bool { return strings.Contains(screen, "member-leave node3") })
	send(0, "!wait ", false)
	screen := waitPane("the hint of !wait", func(screen string) bool {
		return strings.Contains(screen, "node1 [2 alive]> !wait members N [TIMEOUT] | ALIAS STATE [TIMEOUT]")
	})
	t.Logf("pane 0:\n%s", strings.TrimRight(screen, "\n"))

	// Every line of README's capture is on the pane, in order, but for
	// times, latencies, slots, ports and which worker ran the job.
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)### A local cluster in tmux.*?\n```\n(node1 .*?)```").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README's tmux section shows no pane capture")
	}
	norm := func(l string, base int) string {
		l = regexp.MustCompile(`\d\d:\d\d:\d\d\.\d{3}`).ReplaceAllString(l, "TIME")
		l = latencyRE.ReplaceAllString(l, "LAT")
		l = regexp.MustCompile(`slots=\d+`).ReplaceAllString(l, "slots=N")
		l = regexp.MustCompile(`job \d+ on node\d`).ReplaceAllString(l, "job N on W")
		l = regexp.MustCompile(`127\.0\.0\.1:(\d+)`).ReplaceAllStringFunc(l, func(a string) string {
			var p int
			fmt.Sscanf(a, "127.0.0.1:%d", &p)
			return fmt.Sprintf("PORT+%d", p-base)
		})
		l = strings.Join(strings.Fields(l), " ")
		return regexp.MustCompile(`(alive|suspect|failed|left) (\d+) (-|LAT) `).ReplaceAllString(l, "$1 $2 RTT ") // "-": not measured yet
	}
	var got []string
	for _, l := range strings.Split(screen, "\n") {
		got = append(got, norm(l, base))
	}
	at := 0
	for _, want := range strings.Split(strings.TrimRight(string(m[1]), "\n"), "\n") {
		w := norm(want, 2254)
		for at < len(got) && got[at] != w {
			at++
		}
		if at == len(got) {
			t.Fatalf("README's capture line %q is not on the pane (in order):\n%s", want, screen)
		}
		at++
	}

	script("-k", "-s", session)
	if out, err := tmux("has-session", "-t", session); err == nil {
		t.Fatalf("session %s still exists after -k: %s", session, out)
	}

	// A node that cannot start (a bad flag in MESHELL_FLAGS) fails the
	// script with meshell's own error, and its pane stays to look at:
	// without it the pane closed with the error, and the session with it.
	bad := session + "b"
	cmd := exec.Command("scripts/tmux-cluster.sh", "-d", "-s", bad, "-b", binary, "2", fmt.Sprint(reservePorts(t, 2)))
	cmd.Env = append(env, "MESHELL_FLAGS=--bogus")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "error: node1 never showed") || !strings.Contains(string(out), "flag provided but not defined: --bogus") {
		t.Errorf("tmux-cluster.sh with MESHELL_FLAGS=--bogus: %v, want it to fail naming the flag:\n%s", err, out)
	}
	if pane, err := tmux("capture-pane", "-p", "-t", bad+":cluster.0"); err != nil || !strings.Contains(pane, "meshell exited with status 2") {
		t.Errorf("node1's pane after the failed start: %v\n%s", err, pane)
	}
	script("-k", "-s", bad)
}

func TestTerminalNoColour(t *testing.T) {
	t.Parallel()
	for name, command := range map[string]string{
		"--no-color": shellCommand("--alias", "p1", "-P", "0", "--no-color", "--history-file", filepath.Join(t.TempDir(), "h")),
		"NO_COLOR":   "NO_COLOR=1 " + binary + " --alias p1 -P 0 --history-file " + filepath.Join(t.TempDir(), "h2"),
	} {
		t.Run(name, func(t *testing.T) {
			ts := newTmux(t, command)
			ts.waitLastLine("p1 [not in a cluster]>")
			ts.line("!start_cluster")
			ts.line("!nope")
			ts.line("!cluster_members")
			ts.waitFor("p1 *")
			ts.waitFor("error: unknown command !nope")
			if col := ts.run("capture-pane", "-p", "-e", "-t", "t"); strings.Contains(col, "\x1b[") {
				t.Errorf("colour is off but the screen has escape codes: %q", col)
			}
		})
	}
}

// ttyMode prints, once meshell exited, whether it left the terminal in raw
// mode (no canonical input or no echo) or restored it.
const ttyMode = `stty -a | tr ' ;' '\n\n' | grep -qx -e -icanon -e -echo && echo TTY-RAW || echo TTY-COOKED`

// shellCommandPid is shellCommand that also writes meshell's process id to
// pidFile (for signals) and reports the terminal's mode after the exit.
func shellCommandPid(pidFile string, args ...string) string {
	q := []string{"exec", "env", "-u", "NO_COLOR", binary}
	for _, a := range args {
		q = append(q, "'"+a+"'")
	}
	return `sh -c "echo \$\$ > ` + pidFile + `; ` + strings.Join(q, " ") + `"; echo EXITED $?; ` + ttyMode + "; sleep 600"
}

// readPid waits for the pid file shellCommandPid writes.
func readPid(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, err := os.ReadFile(path)
		var pid int
		if err == nil {
			if _, err := fmt.Sscan(string(b), &pid); err == nil && pid > 0 {
				return pid
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pid in %s: %q %v", path, b, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A node shut down by !shutdown from another node exits 0 at once, with no
// key pressed, and leaves the terminal as it found it: at the prompt, or
// while a command runs, which it cancels.
func TestTerminalRemoteShutdownExitsAtOnce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, typed, running, shown string }{
		{"at the prompt, a line half typed", "!echo half typed", "", ""},
		{"while !watch redraws", "", "!watch !workers 1s", "every 1s: !workers  (n3, "}, // it clears the screen
		{"while !wait waits", "", "!wait members 9 60s", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			port := freePort(t)
			ctl := start(t, "", "--alias", "ctl", "-P", fmt.Sprint(port), "--profile", "local")
			ctl.feed(t, "!start_cluster\n")
			waitListening(t, port)
			ts := newTmux(t, shellCommand("--alias", "n3", "-P", "0", "--profile", "local", "--join", fmt.Sprintf("127.0.0.1:%d", port),
				"--history-file", filepath.Join(t.TempDir(), "h")))
			ts.waitLastLine("n3 [2 alive]>")
			if tc.typed != "" { // a half-typed line is not run
				ts.typeText(tc.typed)
				ts.waitLastLine("n3 [2 alive]> " + tc.typed)
			}
			switch {
			case tc.shown != "":
				ts.line(tc.running)
				ts.waitFor(tc.shown)
			case tc.running != "":
				ts.line(tc.running)
				ts.waitRunning("n3 [2 alive]> " + tc.running)
			}
			ctl.feed(t, "!wait members 2 20s\n!shutdown n3\n!echo sent\n")
			ctl.waitOutput(t, "sent", 30*time.Second)
			s := ts.waitFor("EXITED 0")
			checkLastWords(t, s)
			if strings.Contains(s, "\nhalf typed") || strings.Contains(s, "error:") {
				t.Errorf("the half-typed line ran, or the cancelled command said so:\n%s", s)
			}
			ts.waitFor("TTY-COOKED")
		})
	}
}

// SIGTERM (and SIGHUP) make an interactive node leave gracefully, within
// about a second, and exit 128+15 with the terminal restored, at the prompt
// or while a command runs.
func TestTerminalSIGTERMLeavesGracefully(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, typed, running string }{
		{"at the prompt, a line half typed", "!echo not-to-run", ""},
		{"while a command runs", "", "!sleep 60s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := freePort(t)
			watcher := start(t, "", "--alias", "watcher", "-P", fmt.Sprint(port), "--profile", "local")
			watcher.feed(t, "!start_cluster\n!wait t1 alive 30s\n!echo seen\n!wait t1 left 30s\n!echo left-seen\n")
			waitListening(t, port)
			pidFile := filepath.Join(t.TempDir(), "pid")
			ts := newTmux(t, shellCommandPid(pidFile, "--alias", "t1", "-P", "0", "--profile", "local",
				"--join", fmt.Sprintf("127.0.0.1:%d", port), "--history-file", filepath.Join(t.TempDir(), "h")))
			pid := readPid(t, pidFile)
			ts.waitLastLine("t1 [2 alive]>")
			watcher.waitOutput(t, "seen", 30*time.Second)
			if tc.typed != "" {
				ts.typeText(tc.typed)
				ts.waitLastLine("t1 [2 alive]> " + tc.typed)
			}
			if tc.running != "" {
				ts.line(tc.running)
				ts.waitRunning("t1 [2 alive]> " + tc.running)
			}
			if p, err := os.FindProcess(pid); err != nil || p.Signal(syscall.SIGTERM) != nil {
				t.Fatalf("SIGTERM to %d: %v", pid, err)
			}
			sent := time.Now()
			watcher.waitOutput(t, "left-seen", 30*time.Second) // left, not failed
			s := ts.waitFor("EXITED 143")
			t.Logf("left and exited %v after SIGTERM", time.Since(sent).Round(time.Millisecond))
			if strings.Contains(s, "\nnot-to-run") {
				t.Errorf("the half-typed line ran:\n%s", s)
			}
			ts.waitFor("TTY-COOKED")
		})
	}
}

// While a command runs: an event is printed above the progress bar, not
// glued to it, and text typed ahead is not echoed into the output but
// waits at the next prompt.
func TestTerminalProgressBarEventsAndTypeAhead(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	ts := newTmux(t, shellCommand("--alias", "d1", "-P", fmt.Sprint(port), "--profile", "local", "--demo",
		"--history-file", filepath.Join(t.TempDir(), "h")))
	ts.waitLastLine("d1 [3 alive]>")
	ts.waitFor("\ncommands run on them with meshell --demo --allow-run\n")
	ts.line("!events on")
	ts.waitFor("events on")
	ts.line("!bench --n 100000 --concurrency 1 sleep 10ms")
	ts.waitFor("jobs/s") // the progress bar
	late := start(t, "", "--alias", "late", "-P", "0", "--profile", "local", "--join", fmt.Sprintf("127.0.0.1:%d", port))
	late.feed(t, "!echo up\n")
	s := ts.waitScreen("the join event on a line of its own, the bar below it", func(s string) bool {
		ev := linesContaining(s, "member-join late")
		return len(ev) == 1 && strings.Contains(lastLine(s), "jobs/s")
	})
	if ev := linesContaining(s, "member-join late")[0]; strings.Contains(ev, "jobs/s") || strings.Contains(ev, "[#") || !regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d{3} member-join`).MatchString(ev) {
		t.Errorf("the event is glued to the progress bar: %q\n%s", ev, s)
	}
	ts.keys("C-c")
	s = ts.waitScreen("the cancelled bench's report", func(s string) bool {
		return strings.Contains(s, "never started") && lastLine(s) == "d1 [4 alive]>"
	})
	if !strings.Contains(s, "\nstopped: ") || !strings.Contains(s, "error: stopped: ") || strings.Contains(s, "first failure") {
		t.Errorf("a cancelled bench is reported as failed:\n%s", s)
	}

	ts.line("!sleep 2s")
	ts.waitRunning("d1 [4 alive]> !sleep 2s")
	ts.typeText("!echo typed-ahead")
	s = ts.waitLastLine("d1 [4 alive]> !echo typed-ahead") // shown at the next prompt, not before
	if n := len(linesContaining(s, "typed-ahead")); n != 1 {
		t.Errorf("text typed during !sleep was echoed raw:\n%s", s)
	}
	ts.keys("Enter")
	ts.waitScreen("the typed-ahead command's output", func(s string) bool {
		return strings.Contains(s, "\ntyped-ahead\n") && lastLine(s) == "d1 [4 alive]>"
	})
}

func linesContaining(screen, text string) []string {
	var out []string
	for _, l := range strings.Split(screen, "\n") {
		if strings.Contains(l, text) {
			out = append(out, l)
		}
	}
	return out
}

// The hint stays after the first argument, and an unwritable history file
// is said at start-up.
func TestTerminalHintsAndHistoryWarning(t *testing.T) {
	t.Parallel()
	ts := newTmux(t, shellCommand("--alias", "w1", "-P", "0", "--history-file", "/nonexistent-meshell-dir/h"))
	s := ts.waitLastLine("w1 [not in a cluster]>")
	if n := len(linesContaining(s, "warning: history is not saved: open /nonexistent-meshell-dir/h: no such file or directory")); n != 1 {
		t.Errorf("want one warning about the history file:\n%s", s)
	}
	ts.typeText("!wait members ")
	ts.waitLastLine("w1 [not in a cluster]> !wait members N [TIMEOUT]")
	ts.typeText("3")
	ts.waitLastLine("w1 [not in a cluster]> !wait members 3 [TIMEOUT]")
	ts.keys("C-u")
	ts.typeText("!config set ")
	ts.waitLastLine("w1 [not in a cluster]> !config set KEY VALUE [TARGET]")
	ts.typeText("log-level ")
	ts.keys("Tab")
	ts.waitFor("debug")
	ts.waitFor("warn")
}

// In a narrow terminal the progress bar is cut to the width, so that it is
// redrawn in place instead of wrapping into a stack of partial lines.
func TestTerminalProgressBarFitsANarrowPane(t *testing.T) {
	t.Parallel()
	ts := newTmux(t, shellCommand("--alias", "d1", "-P", "0", "--profile", "local", "--demo",
		"--history-file", filepath.Join(t.TempDir(), "h")))
	ts.waitLastLine("d1 [3 alive]>")
	ts.run("resize-window", "-t", "t", "-x", "40")
	ts.line("!bench --n 400 --concurrency 1 sleep 10ms")
	s := ts.waitScreen("the bar a quarter full", func(s string) bool { return strings.Contains(s, "[########") })
	if bars := linesContaining(s, "[#"); len(bars) != 1 || len(bars[0]) > 40 {
		t.Errorf("the bar is not one line within 40 columns: %q\n%s", bars, s)
	}
	ts.keys("C-c")
	ts.waitLastLine("d1 [3 alive]>")
}

// checkLastWords checks that a shell ended by a !shutdown said so on a line
// of its own, with no prompt left before it or after it.
func checkLastWords(t *testing.T, screen string) {
	t.Helper()
	for _, l := range strings.Split(screen, "\n") {
		if strings.Contains(l, "this node was shut down by !shutdown") && !strings.HasPrefix(l, "this node was shut down") ||
			strings.Contains(l, "EXITED ") && !strings.HasPrefix(l, "EXITED ") {
			t.Errorf("a prompt left on the line %q:\n%s", l, screen)
		}
	}
	if !strings.Contains(screen, "\nthis node was shut down by !shutdown; exiting\n") {
		t.Errorf("no word on the shutdown:\n%s", screen)
	}
}
