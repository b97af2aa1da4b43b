package repl

import (
	"bytes"
	"context"
	"io"
	"os"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"meshell/node"
)

// testShell returns a shell on a node that is not in a cluster, writing
// to out.
func testShell(t testing.TB, out io.Writer) *Shell {
	t.Helper()
	n, err := node.New(testConfig(t, "solo", nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return New(n, Options{Out: out, Err: out})
}

func testConfig(t testing.TB, alias string, tags map[string]string) node.Config {
	t.Helper()
	cfg := node.DefaultConfig()
	cfg.Alias, cfg.Bind, cfg.Tags = alias, "127.0.0.1:0", tags
	cfg.Run.Allow = true // !run's help examples run commands
	prof, err := node.Profile("local")
	if err != nil {
		t.Fatal(err)
	}
	cfg.SWIM = prof
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	cfg.Log = quiet
	return cfg
}

// clusterShell returns a shell on node "a" (tag zone=1) joined by node "b"
// (tag role=worker), both alive.
func clusterShell(t *testing.T) *Shell {
	t.Helper()
	s, _ := clusterShellAndB(t)
	return s
}

// clusterShellAndB is clusterShell, and node b.
func clusterShellAndB(t *testing.T) (*Shell, *node.Node) {
	t.Helper()
	a, err := node.New(testConfig(t, "a", map[string]string{"zone": "1"}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	addr, err := a.Start("")
	if err != nil {
		t.Fatal(err)
	}
	b, err := node.New(testConfig(t, "b", map[string]string{"role": "worker"}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := b.Join(ctx, addr); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitFor(ctx, func(sn *node.Snapshot) bool {
		e, ok := sn.Get("b")
		return ok && e.Tags["role"] == "worker"
	}); err != nil {
		t.Fatal("b never showed up at a with its tags")
	}
	return New(a, Options{Out: io.Discard, Err: io.Discard}), b
}

func TestCompletionFromTheTable(t *testing.T) {
	s := testShell(t, io.Discard)
	tests := []struct {
		head, typing string
		want         []string
	}{
		{"!start_cl", "!start_cl", []string{"!start_cluster"}},
		{"!cluster_m", "!cluster_m", []string{"!cluster_members"}},
		{"!ex", "!ex", []string{"!exit"}},
		{"!cluster_members -", "-", []string{"--detailed", "--json", "--state", "--tag"}},
		{"!cluster_members --json -", "-", []string{"--detailed", "--state", "--tag"}}, // --json used already
		{"!cluster_members --state ", "", []string{"alive", "failed", "left", "suspect"}},
		{"!events ", "", []string{"off", "on"}},
		{"!wait members 3 ", "", []string{"10s", "30s", "5s"}},
		{"!wait solo ", "", []string{"alive", "failed", "left", "suspect"}},
		{"!wait solo a", "a", []string{"alive"}},
		{"!help cluster_", "cluster_", []string{"cluster_members"}},
		{"!help !cluster_", "!cluster_", []string{"!cluster_members"}},
		{"!watch ", "", []string{"!cluster_members", "!jobs", "!status", "!workers"}},
		{"!watch --count 2 !cl", "!cl", []string{"!cluster_members"}},
		{"!cluster_members x ", "", nil}, // no more arguments
		{"!nope ", "", nil},
		{"hello", "hello", nil},
	}
	for _, tt := range tests {
		t.Run(tt.head, func(t *testing.T) {
			typing, got := s.completions(tt.head)
			if typing != tt.typing || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("completions(%q) = %q %q, want %q %q", tt.head, typing, got, tt.typing, tt.want)
			}
		})
	}
	// readline wants the rest of each candidate, and the length replaced.
	cands, n := completer{s}.Do([]rune("!start_cl"), len("!start_cl"))
	if n != len("!start_cl") || len(cands) != 1 || string(cands[0]) != "uster " {
		t.Fatalf("Do = %q %d", cands, n)
	}
}

func TestCompletionOfLiveAliasesAndTags(t *testing.T) {
	s := clusterShell(t)
	// A command of another family, declared the way they will be.
	cmd := &Command{
		Name: "!testtags", Group: "jobs", Max: -1,
		Flags: []Flag{
			{Name: "tag", Kind: FlagKV, Usage: "only workers with this tag"},
			{Name: "strategy", Kind: FlagString, Value: func() []string { return []string{"random", "round-robin"} }},
		},
		Complete: func(s *Shell, prev []string) []string {
			if len(prev) == 0 {
				return s.aliasCandidates(false)
			}
			return s.Node.Kinds()
		},
	}
	commands = append(commands, cmd)
	t.Cleanup(func() { commands = slices.DeleteFunc(commands, func(c *Command) bool { return c == cmd }) })

	tests := []struct {
		head string
		want []string
	}{
		{"!wait ", []string{"a", "b", "members"}},
		{"!wait b", []string{"b"}},
		{"!testtags ", []string{"b"}}, // live members other than self
		{"!testtags b ", []string{"echo", "primes", "sha256", "sleep", "stream"}},
		{"!testtags b s", []string{"sha256", "sleep", "stream"}},
		{"!testtags --tag ", []string{"role=worker", "zone=1"}},
		{"!testtags --tag r", []string{"role=worker"}},
		{"!testtags --tag=", []string{"--tag=role=worker", "--tag=zone=1"}},
		{"!testtags --tag=z", []string{"--tag=zone=1"}},
		{"!testtags --tag role=worker --tag ", []string{"role=worker", "zone=1"}},
		{"!workers --tag ", []string{"role=worker", "zone=1"}}, // live tags, not a fixed list
		{"!dispatch --tag z", []string{"zone=1"}},              // …in every job command
		{"!config set ", slices.Sorted(slices.Values(node.ConfigKeys()))},
		{"!config set log-level ", []string{"debug", "error", "info", "warn"}},
		{"!config set strategy r", []string{"random", "round-robin"}},
		{"!testtags --tag role=worker ", []string{"b"}},                    // the flag's value is not a positional
		{"!testtags --tag role=worker -", []string{"--strategy", "--tag"}}, // K=V flags repeat
		{"!testtags --strategy r", []string{"random", "round-robin"}},
		{"!tag ", []string{"role=worker", "zone=1"}},
		{"!untag ", []string{"zone"}},
		{"!run ", []string{"a", "b"}},
		{"!run a ", []string{"b"}},         // a TARGET of several words
		{"!run a -b ", []string{"b"}},      // flags among them
		{"!run a --d", []string{"--diff"}}, // ... flags until "--"
		{"!run a -- ", nil},                // CMD is the user's
		{"!run a -- ls -", nil},            // its words are no flags of !run
		{"!run --all --", nil},             // "--" ends the flags: none is offered
		{"!run a --", nil},
		{"!dispatch --", nil},
		{"!run a,", []string{"a,b"}}, // the next alias of a list, after what is typed
		{"!run b,", []string{"b,a"}},
		{"!run a,b", []string{"a,b"}},
		{"!run a,b,", nil}, // every live member named
		{"!run a,b ", nil},
		{"!run x,", []string{"x,a", "x,b"}},
		{"!run n[1,", nil},              // a range's numbers are not aliases
		{"!run a,,", nil},               // an empty alias: no list to go on with
		{"!status a,", []string{"a,b"}}, // every command with a TARGET
		{"!config show a,", []string{"a,b"}},
		{"!config set probe-interval,", nil}, // not a TARGET: no list
		{"!run a -- echo a,", nil},
		{"!run --tag role=worker,", []string{"role=worker,zone=1"}}, // a --tag's K=V list
		{"!run --tag role=worker,z", []string{"role=worker,zone=1"}},
		{"!run --tag=zone=1,", []string{"--tag=zone=1,role=worker"}},
		{"!run --tag zone=1,role=worker,", nil},
	}
	for _, tt := range tests {
		t.Run(tt.head, func(t *testing.T) {
			_, got := s.completions(tt.head)
			// Other families may add tags of their own (slots=…): the tags
			// set here must be offered, in order, among them.
			got = slices.DeleteFunc(got, func(c string) bool {
				return strings.Contains(c, "=") && !strings.Contains(c, "role=") && !strings.Contains(c, "zone=")
			})
			if tt.head == "!untag " {
				got = slices.DeleteFunc(got, func(c string) bool { return c != "zone" })
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("completions(%q) = %q, want %q", tt.head, got, tt.want)
			}
		})
	}
	// readline gets the rest of the list's next element, and replaces the
	// whole word typed.
	if cands, n := (completer{s}).Do([]rune("!run a,"), len("!run a,")); n != len("a,") || len(cands) != 1 || string(cands[0]) != "b " {
		t.Errorf("Do(!run a,) = %q %d, want [\"b \"] 2", cands, n)
	}
}

// The tags a node keeps itself (slots, kinds, boot) are never offered to
// !tag or !untag, which would refuse them.
func TestTagCompletionLeavesOutTheNodesOwnTags(t *testing.T) {
	d, err := node.ParseKindSpec("build=true")
	if err != nil {
		t.Fatal(err)
	}
	n := runTestNode(t, "k", func(c *node.Config) {
		c.Tags = map[string]string{"zone": "1"}
		c.Run.Kinds = []node.DeclaredKind{d}
	}, "")
	if tags := n.Self().Tags; tags[node.KindsTag] == "" || tags[node.SlotsTag] == "" {
		t.Fatalf("the node does not carry its own tags: %v", tags)
	}
	s := New(n, Options{Out: io.Discard, Err: io.Discard})
	for head, want := range map[string][]string{"!untag ": {"zone"}, "!tag ": {"role=worker", "zone=1"}} {
		if _, got := s.completions(head); !reflect.DeepEqual(got, want) {
			t.Errorf("completions(%q) = %q, want %q", head, got, want)
		}
	}
}

func TestTagFilterCompletesKeysThenValues(t *testing.T) {
	s, b := clusterShellAndB(t)
	ctx := context.Background()
	if err := b.SetTags(ctx, map[string]string{"role": "worker", "zone": "2"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Node.WaitFor(ctx, func(sn *node.Snapshot) bool { e, _ := sn.Get("b"); return e.Tags["zone"] == "2" }); err != nil {
		t.Fatal(err)
	}
	for head, want := range map[string][]string{
		"!workers --tag ":       {"role=worker", "zone="}, // zone has two values: the key first
		"!workers --tag zone=":  {"zone=1", "zone=2"},
		"!workers --tag zone=2": {"zone=2"},
		"!bench --tag=zo":       {"--tag=zone="},
		"!dispatch --tag s":     nil, // slots is not a filter to offer
	} {
		if _, got := s.completions(head); !slices.Equal(got, want) {
			t.Errorf("completions(%q) = %q, want %q", head, got, want)
		}
	}
	// A key goes on with its value: no space after the '='.
	cands, _ := completer{s}.Do([]rune("!workers --tag z"), len("!workers --tag z"))
	if len(cands) != 1 || string(cands[0]) != "one=" {
		t.Errorf("Do = %q, want the key completed without a space", cands)
	}
	// Tags of members that left are not offered.
	b.Leave(ctx)
	if err := s.Node.WaitFor(ctx, func(sn *node.Snapshot) bool { e, _ := sn.Get("b"); return e.State == node.StateLeft }); err != nil {
		t.Fatal(err)
	}
	if _, got := s.completions("!workers --tag "); !slices.Equal(got, []string{"zone=1"}) {
		t.Errorf("after b left: %q", got)
	}
}

func TestConfigCompletion(t *testing.T) {
	s := testShell(t, io.Discard)
	for head, want := range map[string][]string{
		"!config ":                       {"set", "show"},
		"!config set p":                  {"probe-interval", "probe-timeout"},
		"!config set probe-interval 1":   {"100ms", "1s"},
		"!config set suspicion-mult ":    {"3", "4", "6"},
		"!config set strategy ":          {"least-connections", "random", "round-robin"},
		"!config set log-level w":        {"warn"},
		"!config show ":                  nil,
		"!config set indirect-checks 3 ": nil,
	} {
		_, got := s.completions(head)
		if !slices.Equal(got, want) {
			t.Errorf("completions(%q) = %q, want %q", head, got, want)
		}
	}
}

func TestHints(t *testing.T) {
	tests := []struct{ line, want string }{
		{"", ""},
		{"  ", ""}, // found by FuzzParse: a space at the prompt crashed the painter
		{"!wait", " members N [TIMEOUT] | ALIAS STATE [TIMEOUT]"},
		{"!wait ", "members N [TIMEOUT] | ALIAS STATE [TIMEOUT]"},
		{"!wait members ", "N [TIMEOUT]"}, // the alternative that fits
		{"!wait members 3", " [TIMEOUT]"},
		{"!wait n2 ", "STATE [TIMEOUT]"},
		{"!wait n2 alive ", "[TIMEOUT]"},
		{"!wait n2 alive 5s ", ""},
		{"!join_cluster 127.0.0.1 ", "PORT"},
		{"!join_cluster 127.0.0.1:7001 ", ""},
		{"!config set ", "KEY VALUE [TARGET]"},
		{"!config set probe-interval ", "VALUE [TARGET]"},
		{"!config show ", "[TARGET]"},
		{"!scale --all ", "N"},
		{"!scale w1 ", "N"},
		{"!ping --json ", "TARGET"},
		{"!ping --tag role=worker ", ""},
		{"!config show --all ", ""},
		{"!scale --timeout ", "D"}, // a flag's value comes next
		{"!dispatch echo ", "[ARGS…]"},
		{"!dispatch echo hi ", ""},
		{"!dispatch --tag role=worker ", "KIND [ARGS…]"},
		{"!wait --x", ""}, // typing a flag
		{"!join_cluster ", "[--retry D] HOST PORT | HOST:PORT"},
		{"!join_cluster --retry 5s ", "HOST PORT | HOST:PORT"},
		{"!start_cluster", " [HOST:PORT]"},
		{"!sleep ", "DURATION"},
		{"!sleep 1s ", ""},
		{"!cluster_members", " [--state STATE] [--tag K=V]… [--detailed] [--json]"},
		{"!watch !cluster_members ", "[ARGS…] [INTERVAL]"},
		{"!leave", ""},
		{"!nope ", ""},
		{"wait ", ""},
		{"!wait members 3\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			if got := hintFor(tt.line); got != tt.want {
				t.Fatalf("hintFor(%q) = %q, want %q", tt.line, got, tt.want)
			}
		})
	}
}

func TestHintPainterKeepsTheCursor(t *testing.T) {
	s := testShell(t, io.Discard)
	s.pal = palette{on: true}
	wide := hintPainter{prompt: s.Prompt, width: func() int { return 120 }}
	line := []rune("!sleep ")
	got := string(wide.Paint(line, len(line)))
	want := "!sleep \x1b[90mDURATION\x1b[0m\x1b[8D" // grey hint, then back over it
	if got != want {
		t.Fatalf("Paint = %q, want %q", got, want)
	}
	for name, p := range map[string]struct {
		painter hintPainter
		pos     int
	}{
		"cursor not at the end": {wide, 2},
		"hint would wrap":       {hintPainter{prompt: s.Prompt, width: func() int { return 30 }}, len(line)},
		"width unknown":         {hintPainter{prompt: s.Prompt, width: func() int { return -1 }}, len(line)},
	} {
		if got := string(p.painter.Paint(line, p.pos)); got != string(line) {
			t.Errorf("%s: Paint = %q, want the line untouched", name, got)
		}
	}
}

func TestKeepInHistory(t *testing.T) {
	secret := &Command{Name: "!testsecret", Aliases: []string{"!ts"}, Group: "control", Max: -1, NoHistory: true,
		Run: func(context.Context, *Shell, *Args) error { return nil }}
	commands = append(commands, secret)
	t.Cleanup(func() { commands = slices.DeleteFunc(commands, func(c *Command) bool { return c == secret }) })
	for line, want := range map[string]bool{
		"!cluster_members":            true,
		"!testsecret --all":           false,
		"  !ts node2":                 false,
		"testsecret":                  false, // lookup takes names without "!"
		"!nope":                       true,
		`!echo "unterminated`:         true,
		"":                            false,
		`"!testsecret" x`:             false,
		"!echo !testsecret":           true,
		"!watch !cluster_members 1s":  true,
		"!testsecretive --all":        true,
		"!testsecret\t--all":          false,
		"#!testsecret":                true,
		"!help testsecret":            true,
		"!cluster_members --json x y": true,
		`!testsecret "unterminated`:   false, // broken, but of a command kept out
		"!keys install c2VjcmV0":      false, // key bytes
		`!keys install 'c2VjcmV0`:     false,
		"!keys list":                  false,
	} {
		if got := keepInHistory(line); got != want {
			t.Errorf("keepInHistory(%q) = %v, want %v", line, got, want)
		}
	}
}

// !help shutdown says that it drains: running !run commands finish first.
func TestHelpShutdownSaysItDrains(t *testing.T) {
	var out bytes.Buffer
	if err := testShell(t, &out).Exec(context.Background(), "!help shutdown"); err != nil {
		t.Fatal(err)
	}
	help := strings.Join(strings.Fields(out.String()), " ") // as one line, however it wraps
	for _, want := range []string{"Without --now each node drains first", "!run commands included", "get up to 30s to finish",
		"--now skips the drain and stops running commands at once"} {
		if !strings.Contains(help, want) {
			t.Errorf("!help shutdown lacks %q:\n%s", want, out.String())
		}
	}
}

func TestHelpComesFromTheTable(t *testing.T) {
	var out bytes.Buffer
	s := testShell(t, &out)
	if err := s.Exec(context.Background(), "!help"); err != nil {
		t.Fatal(err)
	}
	idx := out.String()
	last := -1
	for _, g := range []string{"cluster:", "shell:"} {
		i := strings.Index(idx, "\n"+g)
		if g == "cluster:" {
			i = strings.Index(idx, g)
		}
		if i < 0 || i < last {
			t.Fatalf("group %q missing or out of order:\n%s", g, idx)
		}
		last = i
	}
	for _, c := range commands {
		if !strings.Contains(idx, c.Name) || !strings.Contains(idx, c.Summary) {
			t.Errorf("!help lacks %s or its summary", c.Name)
		}
	}
	out.Reset()
	if err := s.Exec(context.Background(), "!help cluster_members"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"usage: !cluster_members [--state STATE] [--tag K=V]… [--detailed] [--json]", "also: !members", "flags:", "--json", "example:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("!help cluster_members lacks %q:\n%s", want, out.String())
		}
	}
	for _, c := range commands {
		if c.Summary == "" || c.Group == "" || !slices.Contains(groups, c.Group) {
			t.Errorf("%s has no summary or an unknown group %q", c.Name, c.Group)
		}
		if (c.Group == "cluster" || c.Group == "shell") && !strings.Contains(helpFor(c, palette{}), "example:") {
			t.Errorf("!help %s has no example", c.Name)
		}
	}
	if err := s.Exec(context.Background(), "!help nope"); err == nil {
		t.Error("!help of an unknown command succeeded")
	}
}

func TestWatch(t *testing.T) {
	var out bytes.Buffer
	s := clusterShell(t)
	s.setWriters(&out, &out)
	start := time.Now()
	if err := s.Exec(context.Background(), "!watch --count 3 !cluster_members --json 100ms"); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < 200*time.Millisecond {
		t.Errorf("3 runs 100ms apart took %v", time.Since(start))
	}
	frames := strings.Count(out.String(), "every 100ms: !cluster_members --json")
	docs := strings.Count(out.String(), `[{"alias":"a"`)
	if frames != 3 || docs != 3 {
		t.Fatalf("%d frames, %d documents, want 3 each:\n%s", frames, docs, out.String())
	}
	if strings.Contains(out.String(), "\x1b[2J") {
		t.Error("script mode cleared the screen")
	}

	// At a terminal Ctrl-C (a cancelled context) ends it without an error.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(150*time.Millisecond, cancel)
	s.interactive = true
	if err := s.Exec(ctx, "!watch members 100ms"); err != nil {
		t.Fatalf("cancelled !watch: %v", err)
	}
	s.interactive = false
	// Output goes back to the shell's writer afterwards.
	out.Reset()
	s.Exec(context.Background(), "!echo after")
	if out.String() != "after\n" {
		t.Fatalf("after !watch, !echo printed %q", out.String())
	}

	for line, want := range map[string]string{
		"!watch !wait members 1":       "listing commands only (!cluster_members",
		"!watch !nope":                 "unknown command !nope",
		"!watch !cluster_members 10ms": "too short",
		"!watch !cluster_members --x":  "has no flag --x",
		// A command that is no listing is refused as such, whatever its
		// arguments, and the error does not name !watch twice in a script.
		"!watch !sleep 1s":       "!watch re-runs listing commands only (!cluster_members",
		"!watch !ping --all":     "listing commands only",
		"!watch !config --json":  "listing commands only",
		"!watch !status --bad a": "!status has no flag --bad",
	} {
		err := s.Exec(context.Background(), line)
		if err == nil || !strings.Contains(err.Error(), want) || strings.HasPrefix(err.Error(), "!watch: ") {
			t.Errorf("%s: %v, want an error containing %q", line, err, want)
		}
	}
	// !help watch names the listing commands, and only those.
	help := helpFor(lookup("!watch"), palette{})
	if !strings.Contains(help, "("+strings.Join(listingNames(), ", ")+")") {
		t.Errorf("!help watch does not name the listing commands %v:\n%s", listingNames(), help)
	}
	if strings.Contains(help, "those with --json") {
		t.Errorf("!help watch still says any command with --json can be watched:\n%s", help)
	}
	// A quoted command works too.
	out.Reset()
	if err := s.Exec(context.Background(), `!watch --count 1 "!cluster_members --json"`); err != nil || !strings.Contains(out.String(), `"alias":"b"`) {
		t.Fatalf("quoted: %v %q", err, out.String())
	}
}

// TestWatchAndTopInAScriptEnd: a script has no Ctrl-C, so !watch and !top
// without --count, or with --count 0, print one frame there and the script
// goes on (the deadline only stops a !watch that would not end).
func TestWatchAndTopInAScriptEnd(t *testing.T) {
	s := clusterShell(t)
	for _, line := range []string{"!watch !cluster_members 100ms", "!watch --count 0 !cluster_members 100ms",
		"!top --interval 500ms", "!top --count 0 --interval 500ms"} {
		var out bytes.Buffer
		s.setWriters(&out, &out)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err := s.Exec(ctx, line)
		expired := ctx.Err()
		cancel()
		if frames := strings.Count(out.String(), "every "); err != nil || frames != 1 || expired != nil {
			t.Errorf("%s in a script: %v, %d frames, deadline %v; want 1 frame and an end:\n%s", line, err, frames, expired, out.String())
		}
	}
}

func TestPromptShowsClusterState(t *testing.T) {
	s := testShell(t, io.Discard)
	if got := s.Prompt(); got != "solo [not in a cluster]> " {
		t.Errorf("Prompt = %q", got)
	}
	c := clusterShell(t)
	if got := c.Prompt(); got != "a [2 alive]> " {
		t.Errorf("Prompt = %q", got)
	}
	c.pal = palette{on: true}
	if got := stripANSI(c.Prompt()); got != "a [2 alive]> " {
		t.Errorf("coloured Prompt = %q", got)
	}
}

func TestFilterInputDefusesCtrlZ(t *testing.T) {
	if r, ok := filterInput(nil, 0x1a); !ok || r == 0x1a {
		t.Fatalf("Ctrl-Z passes as %q %v", r, ok)
	}
	if r, ok := filterInput(nil, 'x'); !ok || r != 'x' {
		t.Fatal("x is changed")
	}
}

func TestInterruptCancelsTheRunningCommand(t *testing.T) {
	in := &Interactive{}
	in.cmd.rawMode(true)
	sigs := make(chan os.Signal, 1)
	go in.signals(sigs)
	defer close(sigs)
	sigs <- os.Interrupt // at the prompt: ignored
	ctx, cancel := context.WithCancel(context.Background())
	in.cmd.start(cancel)
	sigs <- os.Interrupt
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("SIGINT did not cancel the running command")
	}
}

// A SIGINT out of raw mode before the command registered its cancel (Ctrl-C
// right after Enter) cancels that command; one at the prompt (raw mode) is
// dropped when readline enters raw mode again.
func TestInterruptRightAfterEnterCancelsTheCommand(t *testing.T) {
	in := &Interactive{s: New(startNode(t, "i1", nil, ""), Options{Out: io.Discard, Err: io.Discard})}
	// exec runs line and says whether it ended cancelled within 10 s; if
	// not, it is interrupted so that it stops.
	exec := func(line string) (cancelled bool) {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- in.exec(context.Background(), line) }()
		select {
		case err := <-done:
			return err != nil && strings.Contains(err.Error(), "cancelled")
		case <-time.After(10 * time.Second):
			in.cmd.interrupt()
			<-done
			return false
		}
	}
	in.cmd.rawMode(true)
	in.cmd.rawMode(false) // Enter: Readline returned
	in.cmd.interrupt()
	if !exec("!sleep 1m") {
		t.Error("a SIGINT after Enter did not cancel the command")
	}
	in.cmd.interrupt() // out of raw mode between commands: nobody takes it
	in.cmd.rawMode(true)
	in.cmd.rawMode(false)
	if exec("!sleep 1ms") {
		t.Error("a SIGINT before the prompt cancelled the next command")
	}
	in.mu.Lock()
	in.stopSig = syscall.SIGTERM // as stop sets it, just before a command starts
	in.mu.Unlock()
	if !exec("!sleep 1m") {
		t.Error("a SIGTERM right before the command did not cancel it")
	}
}

// A TARGET completes to the live members only (alive or suspect, this node
// included): one that failed or left is not offered, except where the
// command is about failed members (!force-leave).
func TestTargetCompletionOffersLiveMembersOnly(t *testing.T) {
	s, b := clusterShellAndB(t)
	crashed(t, "c", s.Node, b)
	d := startNode(t, "d", nil, s.Node.Addr())
	waitAlive(t, s.Node, "d")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d.Leave(ctx)
	if err := s.Node.WaitFor(ctx, func(sn *node.Snapshot) bool {
		e, ok := sn.Get("d")
		return ok && e.State == node.StateLeft
	}); err != nil {
		t.Fatalf("a never saw d leave: %s", memberStates(s.Node.Members()))
	}
	for head, want := range map[string][]string{
		"!scale ":       {"a", "b"},
		"!ping a ":      {"b"},
		"!status ":      {"a", "b"},
		"!run ":         {"a", "b"},
		"!config show ": {"a", "b"},
		"!force-leave ": {"c"},
		"!shutdown b ":  {"a"},
		"!wait ":        {"a", "b", "c", "d", "members"}, // states of any member
	} {
		if _, got := s.completions(head); !slices.Equal(got, want) {
			t.Errorf("completions(%q) = %q, want %q", head, got, want)
		}
	}
}
