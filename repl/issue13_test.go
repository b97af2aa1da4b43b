package repl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"meshell/node"
)

// lines holds every line of text that contains all of words.
func linesWith(text string, words ...string) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		ok := true
		for _, w := range words {
			ok = ok && strings.Contains(l, w)
		}
		if ok && l != "" {
			out = append(out, l)
		}
	}
	return out
}

func TestTagsAreCheckedAndSlotsAreLeftToScale(t *testing.T) {
	n := startNode(t, "t1", nil, "")
	s := New(n, Options{Out: io.Discard, Err: io.Discard})
	for _, tt := range []struct{ line, err string }{
		{"!tag slots=100", "tag slots is kept by the node: set it with --slots N at start-up or !scale ALIAS N"},
		{"!tag zone=a,slots=1", "tag slots is kept by the node"},
		{"!untag slots", "tag slots is kept by the node"},
		{"!tag kinds=build", "tag kinds is kept by the node: it names the kinds declared with --kind"},
		{"!untag kinds", "tag kinds is kept by the node"},
		{"!tag boot=0123456789abcdef", "tag boot is kept by the node: it is the boot id"},
		{"!untag boot", "tag boot is kept by the node"},
		{"!tag a=b,c", `"c" is not KEY=VALUE`},
		{"!tag a=b;c", `^tag a: value "b;c" is not valid`}, // ^: the error starts so
		{"!tag zone=x zone=y", "^tag zone given twice (zone=x and zone=y): give each key once"},
		{"!tag zone=x,zone=y", "^tag zone given twice (zone=x and zone=y)"},
		{"!tag zone=x a=b zone=x", "^tag zone given twice"},
		{"!tag a=b c=d,e=f", ""},
		{"!untag c,e", ""},
	} {
		t.Run(tt.line, func(t *testing.T) {
			before := n.Self()
			err := s.Exec(context.Background(), tt.line)
			if tt.err == "" {
				if err != nil {
					t.Fatalf("%s: %v", tt.line, err)
				}
				return
			}
			want, whole := strings.CutPrefix(tt.err, "^")
			if err == nil || !strings.Contains(err.Error(), want) || whole && !strings.HasPrefix(err.Error(), want) {
				t.Fatalf("%s: %v, want an error with %q", tt.line, err, tt.err)
			}
			if after := n.Self(); after.Incarnation != before.Incarnation || after.Tags["slots"] != before.Tags["slots"] {
				t.Errorf("a refused %s changed the node: %+v → %+v", tt.line, before, after)
			}
		})
	}
	if tags := n.Self().Tags; tags["a"] != "b" || tags["c"] != "" || tags["e"] != "" || len(tags) != 2 {
		t.Errorf("!tag a=b c=d,e=f then !untag c,e left %v, want a=b and slots", tags)
	}
}

func TestParsingCornerCases(t *testing.T) {
	s := clusterShell(t)
	var out bytes.Buffer
	s.setWriters(&out, &out)
	for _, tt := range []struct{ line, err string }{
		{"!config set probe-interval -5s", "probe-interval -5s"}, // a value, refused by the node, not a flag
		{"!scale b", "N, the number of slots, is missing; usage: !scale"},
		{"!scale 4", "name the nodes: ALIAS[,ALIAS…]… | --all | --tag K=V…; usage: !scale"},
		{"!scale --all", "N, the number of slots, is missing"},
		{"!scale b x", `slots "x": give a whole number`},
		{"!scale b 99999999999999999999", "slots 99999999999999999999 is too large: the most is 9223372036854775807; usage: !scale"},
		{"!wait members 99999999999999999999", "!wait members 99999999999999999999 is too large: the most is 9223372036854775807"},
		{"!wait members 3 -1s", `timeout "-1s": a timeout must be positive, such as 5s`},
		{"!wait members 3 0s", `timeout "0s": a timeout must be positive`},
		{"!wait members 3 soon", `timeout "soon" is not a duration`},
		{"!sleep -1s", `sleep "-1s" is negative`},
		{"!join_cluster 127.0.0.1:24011 extra", `!join_cluster takes one address: HOST PORT or HOST:PORT, not "127.0.0.1:24011" and "extra"`},
		{"!join_cluster 127.0.0.1 extra", `port "extra" is not a number from 1 to 65535; !join_cluster takes one address: HOST PORT or HOST:PORT`},
		{"!join_cluster 127.0.0.1 0", `port "0" is not a number from 1 to 65535`},
		{"!join_cluster 127.0.0.1:0", `port "0" is not a number from 1 to 65535`},
		{"!join_cluster 127.0.0.1 65536", `port "65536" is not a number from 1 to 65535`},
		{"!join_cluster nowhere", `"nowhere" is not HOST:PORT; !join_cluster takes one address`},
		{"!workers --tag a=b,c", `"c" is not KEY=VALUE`},
		{`!wait "" alive`, `alias "" is not valid`},
	} {
		t.Run(tt.line, func(t *testing.T) {
			err := s.Exec(context.Background(), tt.line)
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("%s: %v, want an error with %q", tt.line, err, tt.err)
			}
			if strings.Contains(err.Error(), "has no flag") {
				t.Fatalf("%s: %v", tt.line, err)
			}
		})
	}
}

func TestScriptLineOverOneMiB(t *testing.T) {
	n, err := node.New(testConfig(t, "long", nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	huge := "!echo " + strings.Repeat("x", 1<<20)
	text := "!echo one\n" + huge + "\n!echo three\n"
	code, out, errs := script(t, n, text, false)
	if code != 1 || errs != "error: line 2: line longer than 1 MiB\n" || out != "one\n" {
		t.Fatalf("fail-fast: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, out, errs = script(t, n, text, true)
	if code != 1 || errs != "error: line 2: line longer than 1 MiB\n" || out != "one\nthree\n" {
		t.Fatalf("--keep-going: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	// A line of exactly 1 MiB is read, also as the last line without a newline.
	exact := "!echo " + strings.Repeat("y", 1<<20-len("!echo "))
	if code, out, errs := script(t, n, exact, false); code != 0 || len(out) != 1<<20-len("!echo ")+1 {
		t.Fatalf("a 1 MiB line: exit %d, %d bytes out, stderr %q", code, len(out), errs)
	}
}

func TestControlFailureReasonsGoToTheErrorLine(t *testing.T) {
	s := clusterShell(t)
	var out, errs bytes.Buffer
	s.setWriters(&out, &errs)
	err := s.Exec(context.Background(), "!config set log-level loud --all")
	if err == nil {
		t.Fatal("a bad log level was accepted")
	}
	if !strings.Contains(err.Error(), `2 of 2 nodes did not confirm: a,b: log-level "loud": use debug, info, warn or error`) {
		t.Errorf("error = %v", err)
	}
	if out.Len() != 0 {
		t.Errorf("the refusals went to stdout too: %q", out.String())
	}
	one := controlFailure([]node.ControlReply{{Alias: "n3", NoAnswer: true, Error: "no answer within 5s"}})
	if one == nil || one.Error() != "n3 did not confirm: no answer within 5s" {
		t.Errorf("one node: %v", one)
	}
	// In a script, the reason is on the error line, on stderr.
	a := startNode(t, "lg", nil, "")
	code, stdout, stderr := script(t, a, "!config set log-level loud --all\n", false)
	if code != 1 || stdout != "" || !strings.HasPrefix(stderr, `error: line 1: !config: lg did not confirm: log-level "loud"`) {
		t.Errorf("script: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestConfigShowAllGathersEveryNode(t *testing.T) {
	s := clusterShell(t)
	var out bytes.Buffer
	s.setWriters(&out, &out)
	ctx := context.Background()
	if err := s.Exec(ctx, "!config set probe-interval 300ms"); err != nil { // here only
		t.Fatal(err)
	}
	if err := s.Exec(ctx, "!config show --all"); err != nil {
		t.Fatal(err)
	}
	table := out.String()
	if len(linesWith(table, "probe-interval *")) != 1 || len(linesWith(table, "300ms", " a")) != 1 || len(linesWith(table, "100ms", " b")) != 1 {
		t.Errorf("the differing probe-interval is not marked, with each node's value:\n%s", table)
	}
	if got := linesWith(table, "suspicion-mult", "all 2"); len(got) != 1 {
		t.Errorf("a value every node shares is not shown once:\n%s", table)
	}
	if !strings.Contains(table, "* differs between nodes") {
		t.Errorf("no note on the mark:\n%s", table)
	}
	out.Reset()
	if err := s.Exec(ctx, "!config show --all --json"); err != nil {
		t.Fatal(err)
	}
	var docs []configJSON
	for _, l := range linesWith(out.String(), "{") {
		var d configJSON
		if err := json.Unmarshal([]byte(l), &d); err != nil {
			t.Fatal(err)
		}
		docs = append(docs, d)
	}
	if len(docs) != 2 || docs[0].Config["probe-interval"] != "300ms" || docs[1].Config["suspicion-mult"] != float64(3) {
		t.Errorf("--json: %+v", docs)
	}
}

func TestBenchFailsAtOnceOrCountsJobsNotStarted(t *testing.T) {
	s := clusterShell(t)
	var out bytes.Buffer
	s.setWriters(&out, &out)
	for line, want := range map[string]string{
		"!bench --n 5000 nosuchkind":            `unknown job kind "nosuchkind"`,
		"!bench --n 5000 --tag role=gpu echo x": "no alive worker matches role=gpu",
		"!bench 2000":                           "KIND 2000 is a number: the count of jobs is --n, e.g. !bench --n 2000 echo x",
	} {
		out.Reset()
		before := len(s.Node.RecentJobs())
		err := s.Exec(context.Background(), line)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: %v, want %q", line, err, want)
		}
		if out.Len() != 0 {
			t.Errorf("%s printed a report before its error: %q", line, out.String())
		}
		if k := len(s.Node.RecentJobs()) - before; k > 1 || k > 0 && strings.HasPrefix(want, "KIND") {
			t.Errorf("%s ran %d jobs", line, k)
		}
	}
	if err := s.Exec(context.Background(), "!bench --n 1 --tag role=gpu echo x"); !strings.Contains(err.Error(), "!tag role=gpu") {
		t.Errorf("no hint on how to get a worker: %v", err)
	}

	// Cancelled once some jobs are done: the rest were never started.
	out.Reset()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	before := len(s.Node.RecentJobs())
	go func() {
		for len(s.Node.RecentJobs()) < before+20 && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	err := s.Exec(ctx, "!bench --n 100000 --concurrency 4 --json sleep 2ms")
	if err == nil || !strings.HasPrefix(err.Error(), "stopped: ") || strings.Contains(err.Error(), "first failure") {
		t.Fatalf("cancelled bench: %v", err)
	}
	var rep benchReport
	if err := json.Unmarshal([]byte(strings.TrimSpace(out.String())), &rep); err != nil {
		t.Fatalf("%v: %q", err, out.String())
	}
	if rep.OK || rep.Failed != 0 || rep.NotStarted < 90000 || rep.Succeeded < 20 ||
		rep.Succeeded+rep.Cancelled+rep.NotStarted != rep.N {
		t.Errorf("report of a cancelled bench: %+v", rep)
	}
}

// A bench stopped midway (Ctrl-C) says that it was stopped and what it did.
func TestBenchStoppedSaysSo(t *testing.T) {
	s, b := clusterShellAndB(t)
	var out bytes.Buffer
	s.setWriters(&out, &out)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var calls atomic.Int64
	if err := b.RegisterKind("halt", func(context.Context, []string, func(string) error) (string, error) {
		if calls.Add(1) == 5 {
			cancel() // as Ctrl-C does, from the fifth job
		}
		return "ok", nil
	}); err != nil {
		t.Fatal(err)
	}
	err := s.Exec(ctx, "!bench --n 1000 --concurrency 1 halt")
	summary := regexp.MustCompile(`^stopped: [45] of 1000 jobs \(halt\) done in \S+: \d+ jobs/s, [45] ok, 0 failed,`)
	if !summary.MatchString(out.String()) {
		t.Errorf("summary of a stopped bench:\n%s", out.String())
	}
	if want := regexp.MustCompile(`^stopped: [45] of 1000 jobs done \([45] ok, 0 failed\); [01] cancelled while running, 995 never started$`); err == nil || !want.MatchString(err.Error()) {
		t.Errorf("error of a stopped bench: %v", err)
	}
	if err := s.Exec(ctx, "!bench --n 10 halt"); err == nil || err.Error() != "stopped before its first job finished: 0 of 10 jobs done" {
		t.Errorf("a bench stopped before it began: %v", err)
	}
}

func TestProgressLineStaysBelowOtherOutput(t *testing.T) {
	var out bytes.Buffer
	s := testShell(t, &out)
	s.setStatus("[####....] 40/100")
	s.printf("%s", "12:00:00.000 member-join n2 127.0.0.1:2 inc=0\n")
	s.errorLine(errors.New("boom"))
	s.setStatus("[########] 100/100")
	s.setStatus("")
	want := "\r\x1b[K[####....] 40/100" +
		"\r\x1b[K12:00:00.000 member-join n2 127.0.0.1:2 inc=0\n[####....] 40/100" +
		"\r\x1b[Kerror: boom\n[####....] 40/100" +
		"\r\x1b[K[########] 100/100" +
		"\r\x1b[K"
	if out.String() != want {
		t.Fatalf("output\n%q\nwant\n%q", out.String(), want)
	}
	out.Reset()
	s.printf("plain\n")
	if out.String() != "plain\n" {
		t.Errorf("without a status line: %q", out.String())
	}
}

func TestWordingOfWaitAndPing(t *testing.T) {
	var out bytes.Buffer
	ctx := context.Background()
	solo := testShell(t, &out)
	if _, err := solo.Node.Start(""); err != nil {
		t.Fatal(err)
	}
	if err := solo.Exec(ctx, "!wait members 1"); err != nil || out.String() != "1 member alive\n" {
		t.Errorf("!wait members 1: %v %q", err, out.String())
	}
	out.Reset()
	s, b := clusterShellAndB(t)
	s.setWriters(&out, &out)
	if err := s.Exec(ctx, "!wait members 2"); err != nil || out.String() != "2 members alive\n" {
		t.Errorf("!wait members 2: %v %q", err, out.String())
	}
	// b leaves: waiting for it says "has left", and a ping is answered
	// from the table at once.
	b.Leave(ctx)
	out.Reset()
	if err := s.Exec(ctx, "!wait b left 20s"); err != nil || out.String() != "b has left\n" {
		t.Errorf("!wait b left: %v %q", err, out.String())
	}
	// A node that is not a member cannot become left, suspect or failed:
	// said at once, not after the timeout.
	for _, state := range []string{"left", "suspect", "failed", "dead"} {
		start := time.Now()
		err := s.Exec(ctx, "!wait nobody "+state+" 20s")
		want := `no member "nobody": members are a, b; a node that is not one cannot become `
		if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), "(!wait nobody alive waits for it to join)") || time.Since(start) > 5*time.Second {
			t.Errorf("!wait nobody %s: %v after %v, want at once %q…", state, err, time.Since(start), want)
		}
	}
	start := time.Now()
	err := s.Exec(ctx, "!ping b")
	if err == nil || err.Error() != "b left the cluster" || time.Since(start) > time.Second {
		t.Errorf("!ping of a member that left: %v after %v", err, time.Since(start))
	}
}

// A node that left says so in the same words whichever command meets it:
// one that shows the cluster, or one that dispatches to it.
func TestALeftNodeSaysSoAlike(t *testing.T) {
	s := clusterShell(t)
	var out bytes.Buffer
	s.setWriters(&out, &out)
	if err := s.Exec(context.Background(), "!leave"); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"!cluster_members", "!run --all -- true", "!dispatch echo x", "!ping --all"} {
		err := s.Exec(context.Background(), line)
		if err == nil || !strings.HasPrefix(err.Error(), "this node left the cluster: run !start_cluster or !join_cluster") {
			t.Errorf("%s after !leave: %v", line, err)
		}
	}
}

// A node whose joins all failed was never in a cluster: it says "not in a
// cluster … first", as before any join, not "this node left the cluster"
// (the node marks itself left after a failed join, as after a !leave).
// Once it has been in one and left, it says that it left.
func TestAFailedFirstJoinIsNotALeave(t *testing.T) {
	var out bytes.Buffer
	s := testShell(t, &out)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nobody := ln.Addr().String()
	ln.Close() // nothing listens there
	ctx := context.Background()
	says := func(when, want string) {
		t.Helper()
		for _, line := range []string{"!cluster_members", "!run --all -- true", "!dispatch echo x", "!ping --all", "!wait x left"} {
			if err := s.Exec(ctx, line); err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Errorf("%s: %s: %v, want %q…", when, line, err, want)
			}
		}
	}
	const never, left = "this node is not in a cluster: run !start_cluster or !join_cluster first", "this node left the cluster: "
	for i := 1; i <= 2; i++ {
		if err := s.Exec(ctx, "!join_cluster "+nobody); err == nil {
			t.Fatalf("join %d through %s: no error", i, nobody)
		}
		says(fmt.Sprintf("after failed join %d", i), never)
	}
	if err := s.Exec(ctx, "!start_cluster"); err != nil {
		t.Fatal(err)
	}
	if err := s.Exec(ctx, "!leave"); err != nil {
		t.Fatal(err)
	}
	says("after !leave", left)
	if err := s.Exec(ctx, "!join_cluster "+nobody); err == nil {
		t.Fatal("join after !leave: no error")
	}
	says("after !leave and a failed join", left)
}
