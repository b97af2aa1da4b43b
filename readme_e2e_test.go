package main

// README end to end: every shell block of README.md is run as a reader
// would paste it (or is named here with the reason it cannot be), and every
// JSON shape in its "JSON output" section is checked against what the
// commands print.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// fence is one fenced block of README.md.
type fence struct {
	lang, text string
	line       int // of the opening fence
	heading    string
}

func readmeFences(t *testing.T) []fence {
	t.Helper()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var out []fence
	var cur *fence
	heading := ""
	for i, l := range strings.Split(string(b), "\n") {
		switch {
		case cur == nil && strings.HasPrefix(l, "```"):
			cur = &fence{lang: strings.TrimPrefix(l, "```"), line: i + 1, heading: heading}
		case cur != nil && l == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.text += l + "\n"
		case strings.HasPrefix(l, "#"):
			heading = strings.TrimSpace(strings.TrimLeft(l, "#"))
		}
	}
	return out
}

// readmeRun says how a shell block is run, by its first line. A block not
// listed runs as written with bash (a block added to README is run too).
type readmeRun struct {
	skip  string   // not run at all, and why
	drop  []string // lines not run (by prefix), and why, after " — "
	walk  bool     // the walkthrough of three terminals (runWalkthrough)
	tmux  bool     // needs tmux, on a private server
	ports [2]int   // the run of fixed ports it names: first, count
	check func(t *testing.T, stdout string)
}

var readmeRuns = map[string]readmeRun{
	"go run . --demo          # a shell on a 3-node cluster (this node + worker1, worker2)": {
		skip: "an interactive demo, and `go test` is this very suite (the demo's examples: TestEveryHelpExampleRuns)"},
	"CGO_ENABLED=0 go build -o meshell .": {walk: true, ports: [2]int{7001, 3}},
	"sed s/{{PORT1}}/7001/ testdata/seed.cmds | ./meshell --alias n1 &": {ports: [2]int{7001, 3},
		check: func(t *testing.T, stdout string) {
			if n := strings.Count(stdout, "converged\n"); n != 3 {
				t.Errorf("%d of 3 nodes converged:\n%s", n, stdout)
			}
		}},
	"scripts/tmux-cluster.sh                      # 3 panes, ports 2254..2256, attach": {tmux: true, ports: [2]int{7000, 5},
		drop: []string{"scripts/tmux-cluster.sh                      # — it attaches a terminal (its cluster: TestTmuxClusterScript)"}},
}

func TestREADMEShellBlocks(t *testing.T) {
	for _, f := range readmeFences(t) {
		if f.lang != "sh" {
			continue
		}
		first, _, _ := strings.Cut(f.text, "\n")
		run := readmeRuns[first]
		t.Run(fmt.Sprintf("line %d %s", f.line, first), func(t *testing.T) {
			if run.skip != "" {
				t.Skip(run.skip)
			}
			if run.tmux {
				needTmux(t)
			}
			text, moved := remapPorts(t, f.text, run.ports)
			if run.walk {
				runWalkthrough(t, text, func(s string) string { return shiftPorts(s, run.ports[0], run.ports[1], moved) })
				return
			}
			var kept []string
		lines:
			for _, l := range strings.Split(text, "\n") {
				for _, d := range run.drop {
					prefix, why, _ := strings.Cut(d, " — ")
					if strings.HasPrefix(l, prefix) {
						t.Logf("not run: %s: %s", strings.TrimSpace(l), why)
						continue lines
					}
				}
				kept = append(kept, l)
			}
			stdout := runBlock(t, strings.Join(kept, "\n"), run.tmux)
			if run.check != nil {
				run.check(t, stdout)
			}
		})
	}
}

// remapPorts gives a block reserved ports in place of the fixed run it
// names when one of those is taken or held; otherwise it runs as written.
// It returns the text and how far the ports moved.
func remapPorts(t *testing.T, text string, ports [2]int) (string, int) {
	t.Helper()
	first, n := ports[0], ports[1]
	if holdPorts(t, first, n) {
		return text, 0
	}
	base := reservePorts(t, n)
	t.Logf("ports %d..%d are taken here: the block runs on %d..%d", first, first+n-1, base, base+n-1)
	return shiftPorts(text, first, n, base-first), base - first
}

// shiftPorts adds by to every port of first..first+n-1 named in text.
func shiftPorts(text string, first, n, by int) string {
	return regexp.MustCompile(`\b\d{4,5}\b`).ReplaceAllStringFunc(text, func(w string) string {
		var p int
		fmt.Sscan(w, &p)
		if p >= first && p < first+n {
			return fmt.Sprint(p + by)
		}
		return w
	})
}

// shadowRepo is a directory that looks like the repository root (links to
// its files) with ./meshell the binary TestMain built, as after README's
// `CGO_ENABLED=0 go build -o meshell .`.
func shadowRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	root, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := e.Name()
		if name == "meshell" || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".test") {
			continue
		}
		if err := os.Symlink(filepath.Join(root, name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(binary, filepath.Join(dir, "meshell")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// runBlock runs text with bash at a shadow repository root, meshell on the
// PATH too, and wants exit status 0 and no error line.
func runBlock(t *testing.T, text string, tmux bool) string {
	t.Helper()
	dir := shadowRepo(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-e", "-o", "pipefail", "-c", text)
	cmd.WaitDelay = 5 * time.Second // a node left in the background holds the pipes: fail, do not hang
	cmd.Dir = dir
	// Sockets of its own, as a user's machine would have: a node of another
	// test, or of another run, holding w1.sock would leave the block's
	// nodes under w1-PID.sock, where its meshell attach w1 cannot find them.
	cmd.Env = append(os.Environ(), "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"), "XDG_RUNTIME_DIR="+t.TempDir())
	if tmux {
		tmp, err := os.MkdirTemp("", "mt")
		if err != nil {
			t.Fatal(err)
		}
		cmd.Env = append(cmd.Env, "TMUX_TMPDIR="+tmp, "TMUX=")
		t.Cleanup(func() {
			kill := exec.Command("tmux", "kill-server")
			kill.Env = cmd.Env
			kill.Run()
			os.RemoveAll(tmp)
		})
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil || strings.Contains(stderr.String(), "error: ") {
		t.Fatalf("the block failed (%v):\n%s\nstdout:\n%s\nstderr:\n%s", err, text, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// walkLine is a line of the three-terminal walkthrough:
// ./meshell FLAGS   # then: COMMAND  (a remark)
var walkLine = regexp.MustCompile(`^\./meshell (.+?)\s+# then: (![^(]+?)\s*(\(.*\))?$`)

// runWalkthrough starts each node of the walkthrough as a process, types
// its "then:" command, and compares the last node's !cluster_members with
// the table README shows under the block (its ports moved as the block's).
func runWalkthrough(t *testing.T, text string, movePorts func(string) string) {
	t.Helper()
	var procs []*proc
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		if l == "CGO_ENABLED=0 go build -o meshell ." {
			continue // TestMain built it so
		}
		m := walkLine.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("a walkthrough line the test cannot read: %q", l)
		}
		p := start(t, "", strings.Fields(m[1])...)
		p.feed(t, m[2]+"\n")
		want := "joined cluster"
		if strings.HasPrefix(m[2], "!start_cluster") {
			want = "listening on"
		}
		p.waitOutput(t, want, 30*time.Second)
		procs = append(procs, p)
	}
	last := procs[len(procs)-1]
	last.feed(t, "!cluster_members\n!echo walked\n")
	last.waitOutput(t, "walked", 30*time.Second)
	var table string
	for _, f := range readmeFences(t) {
		if f.lang == "" && strings.Contains(f.text, "> !cluster_members\nALIAS") && f.heading == "Try it" {
			table = f.text
			break
		}
	}
	if table == "" {
		t.Fatal(`README shows no "!cluster_members" table after the walkthrough`)
	}
	wantRows := strings.Split(strings.TrimSpace(table), "\n")[1:] // after the prompt line
	got := last.stdout.String()
	i := strings.Index(got, "ALIAS")
	if i < 0 {
		t.Fatalf("no table:\n%s", got)
	}
	gotRows := strings.Split(strings.TrimSpace(strings.TrimSuffix(got[i:], "walked\n")), "\n")
	norm := func(row string) string {
		row = strings.Join(strings.Fields(strings.Replace(row, " *", "*", 1)), " ")
		row = latencyRE.ReplaceAllString(row, "RTT")
		row = regexp.MustCompile(`slots=\d+`).ReplaceAllString(row, "slots=N")
		return regexp.MustCompile(` (RTT|-) `).ReplaceAllString(row, " RTT ") // unmeasured yet: "-"
	}
	if len(gotRows) != len(wantRows) {
		t.Fatalf("the table has %d rows, README shows %d:\n%s", len(gotRows), len(wantRows), got[i:])
	}
	for k := range wantRows {
		w := norm(movePorts(wantRows[k]))
		if g := norm(gotRows[k]); g != w {
			t.Errorf("row %d: got %q, README shows %q", k, gotRows[k], wantRows[k])
		}
	}
	for _, p := range procs {
		p.stdin.Close()
	}
	for _, p := range procs {
		if code := p.wait(t, 30*time.Second); code != 0 {
			t.Errorf("%v exited %d\n%s", p.cmd.Args, code, p.stderr.String())
		}
	}
}

// latencyRE matches a latency as the shell prints it: 337µs, 1.02ms, 2s.
var latencyRE = regexp.MustCompile(`\b\d+(\.\d+)?(µs|ms|s)\b`)

// jsonShape is one entry of README's JSON output section: commands that
// print documents of one of shapes.
type jsonShape struct {
	cmds   []string
	shapes []any
}

func readmeJSONShapes(t *testing.T) []jsonShape {
	t.Helper()
	var block string
	for _, f := range readmeFences(t) {
		if f.heading == "JSON output" && f.lang == "text" {
			block = f.text
		}
	}
	if block == "" {
		t.Fatal(`README has no "JSON output" section with a text block of shapes`)
	}
	var out []jsonShape
	var cur *jsonShape
	for _, l := range strings.Split(block, "\n") {
		switch {
		case l == "":
			cur = nil
		case strings.HasPrefix(l, "!"):
			if cur == nil || len(cur.shapes) > 0 {
				out = append(out, jsonShape{})
				cur = &out[len(out)-1]
			}
			cur.cmds = append(cur.cmds, l)
		default:
			var shape any
			if err := json.Unmarshal([]byte(l), &shape); err != nil || cur == nil {
				t.Fatalf("README: a shape that is not JSON, or has no command above it: %q: %v", l, err)
			}
			cur.shapes = append(cur.shapes, shape)
		}
	}
	return out
}

var jsonTimeRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$`)

// matchShape checks a decoded JSON value against a README shape.
func matchShape(v, shape any) error {
	switch sh := shape.(type) {
	case string:
		for _, typ := range strings.Split(sh, "|") {
			switch x := v.(type) {
			case string:
				if typ == "string" || typ == "time" && jsonTimeRE.MatchString(x) {
					return nil
				}
			case float64:
				if typ == "number" || typ == "int" && x == float64(int64(x)) {
					return nil
				}
			case bool:
				if typ == "bool" || typ == fmt.Sprint(x) {
					return nil
				}
			case nil:
				if typ == "null" {
					return nil
				}
			}
		}
		return fmt.Errorf("%v is not %s", v, sh)
	case []any:
		arr, ok := v.([]any)
		if !ok || len(sh) != 1 {
			return fmt.Errorf("%v is not an array", v)
		}
		for i, e := range arr {
			if err := matchShape(e, sh[0]); err != nil {
				return fmt.Errorf("[%d]: %w", i, err)
			}
		}
		return nil
	case map[string]any:
		obj, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%v is not an object", v)
		}
		if elem, wild := sh["*"]; wild && len(sh) == 1 {
			for k, e := range obj {
				if err := matchShape(e, elem); err != nil {
					return fmt.Errorf("%s: %w", k, err)
				}
			}
			return nil
		}
		known := map[string]bool{}
		for key, elem := range sh {
			name, optional := strings.CutSuffix(key, "?")
			known[name] = true
			e, present := obj[name]
			if !present {
				if optional {
					continue
				}
				return fmt.Errorf("no key %q", name)
			}
			if err := matchShape(e, elem); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		for k := range obj {
			if !known[k] {
				return fmt.Errorf("key %q is not in README", k)
			}
		}
		return nil
	}
	return fmt.Errorf("README shape %v is not understood", shape)
}

// TestREADMEJSONSchemas runs every command of README's JSON output section
// on a node of a small cluster (two --serve workers) and checks each
// document it prints against the shapes README gives; then, with a worker
// killed, that an unanswered !ping and !status print the error object.
func TestREADMEJSONSchemas(t *testing.T) {
	entries := readmeJSONShapes(t)
	seed, ws := workerCluster(t, 2)
	j := start(t, "", "--alias", "j", "-P", "0", "--keep-going", "--allow-run")
	var script strings.Builder
	fmt.Fprintf(&script, "!events on --json\n!join_cluster %s\n!wait members 3 30s\n", seed)
	type run struct {
		entry int
		cmd   string
	}
	var runs []run
	for i, e := range entries {
		for _, c := range e.cmds {
			runs = append(runs, run{i, c})
		}
	}
	// The control commands again, at a worker that was killed: no answer.
	second := len(runs)
	for i, e := range entries {
		for _, c := range e.cmds {
			if strings.HasPrefix(c, "!ping") || strings.HasPrefix(c, "!status") {
				runs = append(runs, run{i, strings.Replace(c, "--all", "w2", 1) + " --timeout 2s"})
			}
		}
	}
	for k, r := range runs[:second] {
		fmt.Fprintf(&script, "!echo @@%d\n%s\n", k, r.cmd)
	}
	script.WriteString("!echo @@killing\n")
	j.feed(t, script.String())
	j.waitOutput(t, "@@killing", 60*time.Second)
	ws[1].cmd.Process.Kill()
	script.Reset()
	script.WriteString("!wait w2 failed 30s\n")
	for k, r := range runs[second:] {
		fmt.Fprintf(&script, "!echo @@%d\n%s\n", second+k, r.cmd)
	}
	script.WriteString("!echo @@end\n")
	j.feed(t, script.String())
	j.waitOutput(t, "@@end", 90*time.Second)

	printed := make([]int, len(runs))
	errorObjects := 0
	events := 0
	cur := -1
	check := func(line string, shapes []any, what string) bool {
		var v any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Errorf("%s printed a line that is not JSON: %q", what, line)
			return false
		}
		var whyNot []string
		for _, sh := range shapes {
			err := matchShape(v, sh)
			if err == nil {
				return true
			}
			whyNot = append(whyNot, err.Error())
		}
		t.Errorf("%s: %s\ndoes not match README: %s", what, line, strings.Join(whyNot, "; "))
		return false
	}
	var eventShapes []any
	for _, e := range entries {
		if strings.HasPrefix(e.cmds[0], "!events") {
			eventShapes = e.shapes
		}
	}
	for _, line := range strings.Split(j.stdout.String(), "\n") {
		switch {
		case strings.HasPrefix(line, "@@"):
			cur = -1
			fmt.Sscanf(line, "@@%d", &cur)
		case strings.HasPrefix(line, `{"time":`): // an event, whenever it comes
			check(line, eventShapes, "!events on --json")
			events++
		case cur < 0 || line == "":
		default:
			r := runs[cur]
			if check(line, entries[r.entry].shapes, r.cmd) {
				printed[cur]++
				if strings.Contains(line, `"ok":false`) && cur >= second {
					errorObjects++
				}
			}
		}
	}
	for k, r := range runs {
		if printed[k] == 0 && !strings.HasPrefix(r.cmd, "!events") {
			t.Errorf("%s printed no document", r.cmd)
		}
	}
	if events == 0 {
		t.Error("!events on --json printed no event")
	}
	if errorObjects < len(runs)-second {
		t.Errorf("%d error objects for the %d commands addressed to a dead worker", errorObjects, len(runs)-second)
	}
	if t.Failed() {
		t.Logf("stdout:\n%s\nstderr:\n%s", j.stdout.String(), j.stderr.String())
	}
}
