package repl

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"meshell/node"
)

func TestFoldNodes(t *testing.T) {
	for in, want := range map[string]string{
		"n1,n2,n3":             "n[1-3]",
		"n3,n1,n2,n5,web":      "n[1-3,5],web",
		"n1":                   "n1",
		"n9,n10,n11":           "n[9-11]",
		"n01,n02,n10":          "n[01-02,10]",
		"a,b,c":                "a,b,c",
		"w1,n1,n2":             "n[1-2],w1",
		"n1,n1,n2":             "n[1-2]",
		"rack1-n1,rack1-n2,x3": "rack1-n[1-2],x3",
	} {
		if got := foldNodes(strings.Split(in, ",")); got != want {
			t.Errorf("foldNodes(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestExpandNodes(t *testing.T) {
	for in, want := range map[string]string{
		"n1,n2":          "n1,n2",
		"n[1-3,5]":       "n1,n2,n3,n5",
		"n[01-03],w1":    "n01,n02,n03,w1",
		"r[1-2]-a,x":     "r1-a,r2-a,x",
		"n[9-11]":        "n9,n10,n11",
		"worker1,n[2-2]": "worker1,n2",
	} {
		got, err := expandNodes(in)
		if err != nil || strings.Join(got, ",") != want {
			t.Errorf("expandNodes(%s) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"n[3-1]", "n[a-b]", "n1,,n2", "n[1-3", "n[1-99999]", "n[1]x[2]"} {
		if got, err := expandNodes(bad); err == nil {
			t.Errorf("expandNodes(%s) = %v, want an error", bad, got)
		}
	}
}

func TestCompareNodesIsNatural(t *testing.T) {
	got := []string{"n10", "n2", "b", "n1", "a3", "n02"}
	want := []string{"a3", "b", "n1", "n02", "n2", "n10"}
	for range 2 {
		slicesSort(got)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

func slicesSort(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && compareNodes(s[j-1], s[j]) > 0; j-- {
			s[j-1], s[j] = s[j], s[j-1]
		}
	}
}

func TestUnifiedDiff(t *testing.T) {
	lines := func(s string) []string {
		if s == "" {
			return nil
		}
		return strings.Split(s, " ")
	}
	cases := []struct{ a, b, want string }{
		{"a b c", "a b c", ""},
		{"a b c", "a x c", "@@ -1,3 +1,3 @@| a|-b|+x| c"},
		{"", "x", "@@ -0,0 +1,1 @@|+x"},
		{"x", "", "@@ -1,1 +0,0 @@|-x"},
		{"1 2 3 4 5 6 7 8 9 10 11 12", "1 2 3 4 5 6 7 8 9 10 11 X", "@@ -9,4 +9,4 @@| 9| 10| 11|-12|+X"},
		{"1 2 3 4 5 6 7 8 9 10 11 12", "X 2 3 4 5 6 7 8 9 10 11 Y",
			"@@ -1,4 +1,4 @@|-1|+X| 2| 3| 4|@@ -9,4 +9,4 @@| 9| 10| 11|-12|+Y"},
		{"a b c d", "a c d e", "@@ -1,4 +1,4 @@| a|-b| c| d|+e"},
	}
	for _, c := range cases {
		got := strings.Join(unifiedDiff(lines(c.a), lines(c.b), 3), "|")
		if got != c.want {
			t.Errorf("diff %q → %q:\n got %s\nwant %s", c.a, c.b, got, c.want)
		}
	}
	// Too big for the table: the middle is shown replaced, still correct.
	a, b := make([]string, 2000), make([]string, 2000)
	for i := range a {
		a[i], b[i] = "a", "b"
	}
	if d := unifiedDiff(a, b, 3); len(d) != 4001 || d[0] != "@@ -1,2000 +1,2000 @@" {
		t.Errorf("large diff: %d lines, first %q", len(d), d[0])
	}
}

func reply(alias string, exit int, out string) node.RunReply {
	return node.RunReply{Alias: alias, Exited: true, Exit: exit, Stdout: out}
}

func TestRenderGatheredAndDiff(t *testing.T) {
	replies := []node.RunReply{
		reply("n1", 0, "same\nlines\n"), reply("n2", 0, "same\nlines\n"), reply("n3", 0, "same\nlines\n"),
		reply("n4", 2, "same\nother\n"),
		{Alias: "n5", Refused: true, Error: "refused: started without --allow-run"},
		reply("n6", 0, ""),
	}
	g := renderGathered(replies, palette{})
	for _, want := range []string{"n[1-3] (3)\n----------\nsame\nlines\n", "n4 (1)\n------\nsame\nother\nexit 2\n",
		"n5 (1)\n------\nrefused: started without --allow-run\n"} {
		if !strings.Contains(g, want) {
			t.Errorf("gathered output lacks %q:\n%s", want, g)
		}
	}
	if strings.Contains(g, "n6") {
		t.Errorf("a node that printed nothing and exited 0 got a block:\n%s", g)
	}
	d := renderRunDiff(replies[:5], palette{})
	want := "----------\nn[1-3] (3)\n----------\nsame\nlines\n--- n[1-3] (3)\n+++ n4 (1)\n@@ -1,2 +1,3 @@\n same\n-lines\n+other\n+[exit 2]\n" +
		"------\nn5 (1)\n------\nrefused: started without --allow-run\n"
	if d != want {
		t.Errorf("diff output:\n%s\nwant:\n%s", d, want)
	}
	// Text from the network is cleaned.
	evil := renderGathered([]node.RunReply{reply("n1", 0, "\x1b[2Jboom\n")}, palette{})
	if strings.Contains(evil, "\x1b") || !strings.Contains(evil, `\x1b[2Jboom`) {
		t.Errorf("escape not cleaned: %q", evil)
	}
}

// A node stopped before it ended (Ctrl-C, --timeout) shows what it printed
// until then, marked with why it stopped, in every mode that gathers.
func TestRenderAnswersCutShort(t *testing.T) {
	cut := func(alias, why string) node.RunReply {
		return node.RunReply{Alias: alias, NoAnswer: true, Error: why, Stdout: "begin\n"}
	}
	replies := []node.RunReply{reply("n1", 0, "begin\nend\n"), cut("n2", "cancelled before an answer"), cut("n3", "cancelled before an answer"),
		cut("n4", "no answer within 1s")}
	replies[3].Stderr = "warn\n"
	cancelled := "n[2-3] (2)\n----------\nbegin\ncancelled before an answer\n"
	timedOut := "n4 (1)\n------\nbegin\nwarn\nno answer within 1s\n"
	g := renderGathered(replies, palette{})
	d := renderRunDiff(replies, palette{})
	for mode, out := range map[string]string{"--gather": g, "--diff": d} {
		for _, want := range []string{cancelled, timedOut} {
			if !strings.Contains(out, want) {
				t.Errorf("%s lacks %q:\n%s", mode, want, out)
			}
		}
	}
	doc := runDoc(replies[1])
	if doc.Exit != nil || doc.Stdout == nil || *doc.Stdout != "begin\n" || doc.Error != "cancelled before an answer" {
		t.Errorf("--json: %+v", doc)
	}
}

func TestRunSummary(t *testing.T) {
	s := summarize([]node.RunReply{reply("n1", 0, ""), reply("n2", 1, ""), reply("n3", 1, ""),
		{Alias: "n4", Refused: true}, {Alias: "n5", NoAnswer: true, Error: "no answer within 1s"}})
	if got := s.String(); got != "4 of 5 nodes failed: 2 exited non-zero (n[2-3]), 1 refused (n4), 1 did not answer (n5); 1 ok" {
		t.Errorf("summary %q", got)
	}
}

// runTestNode starts a node of a test cluster (local timings, quiet).
func runTestNode(t *testing.T, alias string, opts func(*node.Config), join string) *node.Node {
	t.Helper()
	cfg := node.DefaultConfig()
	cfg.Alias, cfg.Bind = alias, "127.0.0.1:0"
	cfg.SWIM, _ = node.Profile("local")
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	cfg.Log = quiet
	if opts != nil {
		opts(&cfg)
	}
	n, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	if _, err := n.Start(""); err != nil {
		t.Fatal(err)
	}
	if join != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := n.Join(ctx, join); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

func TestRunCommand(t *testing.T) {
	allow := func(c *node.Config) { c.Run.Allow = true; c.Tags = map[string]string{"role": "worker"} }
	n1 := runTestNode(t, "n1", allow, "")
	n2 := runTestNode(t, "n2", allow, n1.Addr())
	n3 := runTestNode(t, "n3", func(c *node.Config) { c.Tags = map[string]string{"role": "worker"} }, n1.Addr())
	for _, n := range []*node.Node{n1, n2, n3} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := n.WaitFor(ctx, func(s *node.Snapshot) bool { return s.Count(node.StateAlive) == 3 }); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
	run := func(line string) (string, string, error) {
		var out, errb bytes.Buffer
		s := New(n1, Options{Out: &out, Err: &errb})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		err := s.Exec(ctx, line)
		return out.String(), errb.String(), err
	}
	out, errs, err := run("!run n1,n2 -- sh -c 'echo $MESHELL_ALIAS; echo warn >&2'")
	if err != nil || !strings.Contains(out, "n1: n1\n") || !strings.Contains(out, "n2: n2\n") || !strings.Contains(errs, "n1: warn\n") {
		t.Errorf("stream: %v\nstdout:\n%s\nstderr:\n%s", err, out, errs)
	}
	out, errs, err = run("!run --all -- echo hi")
	if err == nil || !strings.Contains(err.Error(), "1 of 3 nodes failed: 1 refused (n3); 2 ok") ||
		!strings.Contains(errs, "n3: refused: started without --allow-run") || strings.Count(out, ": hi\n") != 2 {
		t.Errorf("--all with a node without --allow-run: %v\nstdout:\n%s\nstderr:\n%s", err, out, errs)
	}
	out, _, err = run("!run n[1-2] -b -- echo same")
	if err != nil || out != "----------\nn[1-2] (2)\n----------\nsame\n" {
		t.Errorf("gather: %v\n%q", err, out)
	}
	out, _, err = run("!run n1 n2 --gather -- echo same")
	if err != nil || out != "----------\nn[1-2] (2)\n----------\nsame\n" {
		t.Errorf("gather after a TARGET of two words: %v\n%q", err, out)
	}
	out, _, err = run("!run n1,n2 --diff -- sh -c 'echo a; echo $MESHELL_ALIAS; test $MESHELL_ALIAS = n1'")
	if err == nil || !strings.Contains(out, "--- n1 (1)\n+++ n2 (1)\n@@ -1,2 +1,3 @@\n a\n-n1\n+n2\n+[exit 1]\n") {
		t.Errorf("diff: %v\n%s", err, out)
	}
	if out, _, err := run("!run n1 -b --json -- touch /tmp/meshell-never"); err == nil || !strings.Contains(err.Error(), "give one of --gather (-b), --diff and --json") || out != "" {
		t.Errorf("two output modes: %v, stdout %q", err, out)
	}
	out, _, err = run("!run --tag role=worker --json -- sh -c 'exit 3'")
	var docs []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var d map[string]any
		if jerr := json.Unmarshal([]byte(l), &d); jerr != nil {
			t.Fatalf("bad JSON %q: %v", l, jerr)
		}
		docs = append(docs, d)
	}
	if err == nil || len(docs) != 3 || docs[0]["alias"] != "n1" || docs[0]["exit"] != 3.0 || docs[2]["exit"] != nil ||
		docs[2]["error"] != "refused: started without --allow-run" {
		t.Errorf("json: %v\n%s", err, out)
	}
	for _, k := range []string{"alias", "exit", "stdout", "stderr", "ms", "error"} {
		if _, ok := docs[0][k]; !ok {
			t.Errorf("json lacks %q: %v", k, docs[0])
		}
	}
	start := time.Now()
	_, errs, err = run("!run n2 --timeout 300ms -- sleep 30")
	if err == nil || !strings.Contains(errs, "n2: no answer within 300ms") || time.Since(start) > 10*time.Second {
		t.Errorf("timeout after %v: %v\n%s", time.Since(start), err, errs)
	}
	for line, want := range map[string]string{
		"!run n1,n2 echo hi":                   "put -- before the command: !run n1,n2 -- echo hi",
		"!run n1":                              "put -- before the command: !run n1 -- CMD [ARGS…]",
		"!run --all echo hi":                   "put -- before the command: !run --all -- echo hi",
		"!run --all ls -la /":                  "put -- before the command: !run --all -- ls -la /",
		"!run --tag role=worker echo hi":       "put -- before the command: !run --tag role=worker -- echo hi",
		"!run --all":                           "usage: !run",
		"!run --all --tag role=worker -- true": "not several",
		"!run ghost -- true":                   `no member "ghost"`,
		"!run n1 stray -- true":                `no member "stray"`,
		"!run --tag role=gpu -- true":          "no live member carries --tag role=gpu; live members carry",
		"!run n1 --":                           "no command to run",
		"!run n1 --all -- true":                "not several",
		"!run n1 --timeout nope -- true":       "--timeout wants a positive duration",
		"!run n1 n2 --nope -- true":            "!run has no flag --nope",
	} {
		if _, _, err := run(line); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", line, err, want)
		}
	}
}

// !run --json and !dispatch --json keep output that is not UTF-8 exact, in
// base64, and valid output as text.
func TestJSONOutputIsExact(t *testing.T) {
	bin, err := node.ParseKindSpec(`bin=printf '\377x'`)
	if err != nil {
		t.Fatal(err)
	}
	n := runTestNode(t, "x1", func(c *node.Config) {
		c.Run.Allow, c.Run.Kinds, c.Tags = true, []node.DeclaredKind{bin}, map[string]string{"role": "worker"}
	}, "")
	run := func(line string) map[string]any {
		t.Helper()
		var out bytes.Buffer
		s := New(n, Options{Out: &out, Err: &out})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.Exec(ctx, line); err != nil {
			t.Fatalf("%s: %v\n%s", line, err, out.String())
		}
		var d map[string]any
		if err := json.Unmarshal(out.Bytes(), &d); err != nil {
			t.Fatalf("%s printed %q: %v", line, out.String(), err)
		}
		return d
	}
	for _, c := range []struct {
		line      string
		key, want string // the key that must hold want
		absent    string // the key that must not be there
	}{
		{`!run x1 --json -- sh -c 'printf "\377x"; printf "\376" >&2'`, "stdout_base64", "/3g=", "stdout"},
		{`!run x1 --json -- sh -c 'printf "\377x"; printf "\376" >&2'`, "stderr_base64", "/g==", "stderr"},
		{`!run x1 --json -- printf 'ok é'`, "stdout", "ok é", "stdout_base64"},
		{`!dispatch --json bin`, "result_base64", "/3g=", "result"},
		{`!dispatch --json echo é`, "result", "é", "result_base64"},
	} {
		d := run(c.line)
		if d[c.key] != c.want {
			t.Errorf("%s: %s is %v, want %q (%v)", c.line, c.key, d[c.key], c.want, d)
		}
		if _, ok := d[c.absent]; ok {
			t.Errorf("%s: has %s as well: %v", c.line, c.absent, d)
		}
	}
	if text, b64 := exactChunks([]string{"a", "\xffb"}); text != nil || !reflect.DeepEqual(b64, []string{"YQ==", "/2I="}) {
		t.Errorf("chunks with a bad byte: %q, %q", text, b64)
	}
}
