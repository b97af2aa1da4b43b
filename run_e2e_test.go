package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// procInfo is one process as /proc/PID/stat tells it.
type procInfo struct {
	pid, ppid, pgrp int
	state           byte
}

// processes lists the processes that are not zombies (PID 1 of a container
// may never reap orphans; a zombie runs nothing).
func processes(t *testing.T) []procInfo {
	t.Helper()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []procInfo
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		i := bytes.LastIndexByte(b, ')')
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		pgrp, _ := strconv.Atoi(f[2])
		out = append(out, procInfo{pid: pid, ppid: ppid, pgrp: pgrp, state: f[0][0]})
	}
	return out
}

// childGroups waits until the node processes have n children in all and
// returns their process groups (each command leads its own).
func childGroups(t *testing.T, n int, nodes ...*proc) map[int]bool {
	t.Helper()
	pids := map[int]bool{}
	for _, p := range nodes {
		pids[p.cmd.Process.Pid] = true
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		groups := map[int]bool{}
		for _, p := range processes(t) {
			if pids[p.ppid] {
				if p.pgrp != p.pid {
					t.Errorf("command %d runs in group %d, not in a group of its own", p.pid, p.pgrp)
				}
				groups[p.pgrp] = true
			}
		}
		if len(groups) >= n {
			return groups
		}
		if time.Now().After(deadline) {
			t.Fatalf("the nodes started %d commands, want %d", len(groups), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitNoProcesses waits until nothing runs in groups nor as a child of the
// node processes.
func waitNoProcesses(t *testing.T, groups map[int]bool, nodes ...*proc) {
	t.Helper()
	pids := map[int]bool{}
	for _, p := range nodes {
		pids[p.cmd.Process.Pid] = true
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var left []procInfo
		for _, p := range processes(t) {
			if groups[p.pgrp] || pids[p.ppid] {
				left = append(left, p)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes survived their command: %+v", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// section is the stdout between the marker lines "== name" and the next "== ".
func section(out, name string) string {
	_, rest, ok := strings.Cut(out, "== "+name+"\n")
	if !ok {
		return ""
	}
	s, _, _ := strings.Cut(rest, "== ")
	return s
}

// serveNode starts a headless node on port, joined to join unless it is 0.
func serveNode(t *testing.T, alias string, port, join int, extra ...string) *proc {
	t.Helper()
	args := []string{"--serve", "--alias", alias, "-P", fmt.Sprint(port), "--profile", "local"}
	if join != 0 {
		args = append(args, "--join", fmt.Sprintf("127.0.0.1:%d", join))
	}
	p := start(t, "", append(args, extra...)...)
	waitListening(t, port)
	return p
}

func needLinux(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the run tests read /proc")
	}
}

func TestRunOnFourNodes(t *testing.T) {
	needLinux(t)
	p2, p3, p4 := freePort(t), freePort(t), freePort(t)
	n2 := serveNode(t, "n2", p2, 0, "--allow-run")
	n3 := serveNode(t, "n3", p3, p2, "--allow-run")
	n4 := serveNode(t, "n4", p4, p2) // no --allow-run
	n1 := start(t, "", "--alias", "n1", "-P", "0", "--profile", "local", "--join", fmt.Sprintf("127.0.0.1:%d", p2), "--allow-run", "--keep-going")
	n1.feed(t, `!wait members 4 30s
!echo == all
!run --all -- sh -c 'echo line-from-$MESHELL_ALIAS in $MESHELL_CLUSTER'
!echo == gather
!run n[1-3] --gather -- echo identical
!echo == diff
!run n1,n2,n3 --diff -- sh -c 'echo common; test $MESHELL_ALIAS != n3 || echo odd'
!echo == exit
!run n2 -- sh -c 'echo about to fail; exit 7'
!echo == cap
!run n3 --gather -- sh -c 'yes 0123456789 | head -c 3000000'
!echo == timeout
`)
	n1.waitOutput(t, "== timeout", 120*time.Second)
	// The timeout: the command is killed on both nodes, with its group.
	begin := time.Now()
	n1.feed(t, "!run n2,n3 --timeout 1s -- sh -c 'sleep 30 & sleep 30'\n!echo == end\n")
	groups := childGroups(t, 2, n2, n3)
	n1.waitOutput(t, "== end", 30*time.Second)
	took := time.Since(begin)
	waitNoProcesses(t, groups, n2, n3, n4)
	n1.stdin.Close()
	code := n1.wait(t, 30*time.Second)
	out, errs := n1.stdout.String(), n1.stderr.String()
	t.Logf("stderr:\n%s", errs)
	if code != 1 {
		t.Errorf("exit status %d, want 1 (commands failed)", code)
	}
	if took < time.Second || took > 4*time.Second {
		t.Errorf("--timeout 1s returned after %v", took)
	}

	all := section(out, "all")
	for _, want := range []string{"n1: line-from-n1 in meshell\n", "n2: line-from-n2 in meshell\n", "n3: line-from-n3 in meshell\n"} {
		if !strings.Contains(all, want) {
			t.Errorf("!run --all lacks %q:\n%s", want, all)
		}
	}
	for _, want := range []string{
		"n4: refused: started without --allow-run\n",
		"error: line 3: !run: 1 of 4 nodes failed: 1 refused (n4); 3 ok\n",
		"n2: exit 7\n",
		"error: line 9: !run: 1 of 1 node failed: 1 exited non-zero (n2); 0 ok\n",
		"n2: no answer within 1s\n", "n3: no answer within 1s\n",
		"!run: 2 of 2 nodes failed: 2 did not answer (n[2-3]); 0 ok\n",
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q", want)
		}
	}
	if got := section(out, "gather"); got != "----------\nn[1-3] (3)\n----------\nidentical\n" {
		t.Errorf("--gather printed:\n%s", got)
	}
	diff := section(out, "diff")
	if !strings.HasPrefix(diff, "----------\nn[1-2] (2)\n----------\ncommon\n--- n[1-2] (2)\n+++ n3 (1)\n@@ -1,1 +1,2 @@\n common\n+odd\n") ||
		strings.Contains(diff, "+++ n1") || strings.Contains(diff, "+++ n2") {
		t.Errorf("--diff printed:\n%s", diff)
	}
	if got := section(out, "exit"); got != "n2: about to fail\n" {
		t.Errorf("the failing command printed %q", got)
	}
	capped := section(out, "cap")
	lines := strings.Count(capped, "\n")
	if !strings.HasSuffix(capped, "\n[meshell: stdout truncated at 1048576 bytes]\n") || lines < 95000 || lines > 96000 {
		t.Errorf("output over the cap: %d lines ending %q", lines, capped[max(0, len(capped)-100):])
	}
}

func TestDeclaredKindThroughRoundRobin(t *testing.T) {
	seed := freePort(t)
	for i := 1; i <= 3; i++ {
		port, join := seed, seed
		if i == 1 {
			join = 0
		} else {
			port = freePort(t)
		}
		serveNode(t, fmt.Sprintf("w%d", i), port, join, "--tags", "role=worker", "--kind", "echo2=/bin/echo", "--kind", "say!=sh -c 'echo \"$0 on $MESHELL_ALIAS\"'")
	}
	d := start(t, `!wait members 4 30s
!workers --json
!bench --n 30 --concurrency 1 --strategy round-robin --json echo2 hi
!dispatch echo2 hello world
!dispatch --tag role=worker say hi
`, "--alias", "d", "-P", "0", "--profile", "local", "--join", fmt.Sprintf("127.0.0.1:%d", seed))
	if code := d.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, d.stdout.String(), d.stderr.String())
	}
	out := d.stdout.String()
	b := jsonLine[struct {
		Succeeded int            `json:"succeeded"`
		ByWorker  map[string]int `json:"by_worker"`
	}](t, out, `{"kind":"echo2"`)
	if b.Succeeded != 30 || b.ByWorker["w1"] != 10 || b.ByWorker["w2"] != 10 || b.ByWorker["w3"] != 10 {
		t.Errorf("bench of a declared kind: %+v, want 10 on each worker", b)
	}
	for _, want := range []string{`"kinds":"echo2+say:idem"`, "\nhello world\n", "\nhi on w"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestRunNeedsAnOperatorSignature(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "alice.key")
	pub, err := exec.Command(binary, "keygen", "--operator", "alice", "--out", keyFile).Output()
	if err != nil {
		t.Fatal(err)
	}
	ops := filepath.Join(dir, "operators")
	if err := os.WriteFile(ops, pub, 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	serveNode(t, "w", port, 0, "--allow-run", "--operators", ops)
	join := fmt.Sprintf("127.0.0.1:%d", port)
	script := "!wait members 2 30s\n!run w -- echo signed-ok\n"
	unsigned := start(t, script, "--alias", "d1", "-P", "0", "--join", join)
	if code := unsigned.wait(t, 60*time.Second); code != 1 || !strings.Contains(unsigned.stderr.String(), "w: refused: this node runs commands only for its operators") {
		t.Errorf("unsigned run: exit %d\nstdout:\n%s\nstderr:\n%s", code, unsigned.stdout.String(), unsigned.stderr.String())
	}
	signed := start(t, script, "--alias", "d2", "-P", "0", "--join", join, "--operator-key", keyFile)
	if code := signed.wait(t, 60*time.Second); code != 0 || !strings.HasSuffix(signed.stdout.String(), "alive\nw: signed-ok\n") {
		t.Errorf("signed run: exit %d\nstdout:\n%s\nstderr:\n%s", code, signed.stdout.String(), signed.stderr.String())
	}
}

func TestRunCtrlCInATerminal(t *testing.T) {
	needLinux(t)
	needTmux(t)
	port := freePort(t)
	w := serveNode(t, "w", port, 0, "--allow-run")
	ts := newTmux(t, shellCommand("--alias", "sh1", "-P", "0", "--profile", "local", "--join", fmt.Sprintf("127.0.0.1:%d", port),
		"--history-file", filepath.Join(t.TempDir(), "hist")))
	ts.waitLastLine("sh1 [2 alive]>")
	ts.waitFor(fmt.Sprintf("joined cluster meshell through w (127.0.0.1:%d) as sh1: 2 live members", port)) // --join says so, as !join_cluster does
	ts.line("!run w -- sh -c 'echo started; sleep 30 & sleep 30'")
	ts.waitFor("w: started")
	groups := childGroups(t, 1, w)
	ts.keys("C-c")
	ts.waitFor("error: cancelled: 1 of 1 node failed: 1 cancelled (w); 0 ok")
	waitNoProcesses(t, groups, w)
	ts.waitLastLine("sh1 [2 alive]>")
}
