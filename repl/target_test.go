package repl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"meshell/node"
	"meshell/protocol"
)

func TestGlobMatch(t *testing.T) {
	cases := []struct {
		pattern, s string
		want       bool
	}{
		{"worker", "worker", true},
		{"worker", "workers", false},
		{"work*", "worker", true},
		{"work*", "work", true},
		{"*er", "worker", true},
		{"w*k*r", "worker", true},
		{"w*k*r", "workers", false},
		{"?", "a", true},
		{"?", "", false},
		{"eu-?", "eu-1", true},
		{"eu-?", "eu-12", false},
		{"*", "", true},
		{"*/*", "rack/3", true},
		{"a*b*c", "abxbxc", true},
		{"a*b*c", "abxbx", false},
		{"v1.2", "v1x2", false}, // '.' is a plain character
	}
	for _, c := range cases {
		if got := globMatch(c.pattern, c.s); got != c.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", c.pattern, c.s, got, c.want)
		}
	}
}

// Every form of TARGET picks the members a user expects, the same way for
// every command that takes one; a TARGET that picks nothing says what to do.
func TestSelectTargets(t *testing.T) {
	s := clusterShell(t) // a (zone=1) and b (role=worker)
	cases := []struct {
		line    string // arguments of !ping
		want    []string
		wantErr string
	}{
		{"a b", []string{"a", "b"}, ""},
		{"a,b", []string{"a", "b"}, ""},
		{"b a,b", []string{"b", "a"}, ""},
		{"--all", []string{"a", "b"}, ""},
		{"--tag role=worker", []string{"b"}, ""},
		{"--tag role=work*", []string{"b"}, ""},
		{"--tag zone=?", []string{"a"}, ""},
		{"--tag role=worker,zone=1", nil, "no live member carries --tag role=worker --tag zone=1; live members carry role=worker, zone=1"},
		{"--tag role=worker --tag zone=1", nil, "no live member carries --tag role=worker --tag zone=1"},
		{"--tag role=gpu", nil, "no live member carries --tag role=gpu"},
		{"", nil, "name the nodes: ALIAS[,ALIAS…]… | --all | --tag K=V…"},
		{"a --all", nil, "give aliases, --all or --tag, not several"},
		{"--all --tag role=worker", nil, "not several"},
		{"ghost", nil, `no member "ghost": members are a, b`},
		{"all", nil, `no member "all": members are a, b; --all addresses every live member`},
		{"a,,b", nil, "empty alias"},
	}
	for _, c := range cases {
		t.Run(c.line, func(t *testing.T) {
			words, err := tokenize(c.line)
			if err != nil {
				t.Fatal(err)
			}
			a, err := parseArgs(lookup("!ping"), words)
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.selectTargets(a, a.Pos)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("got %v, %v; want an error with %q", got, err, c.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, c.want) {
				t.Fatalf("got %v, %v; want %v", got, err, c.want)
			}
		})
	}
}

// One parser for every control command and !run: each takes TARGET, its
// usage and help say so, and it refuses a TARGET that picks nothing.
func TestEveryTargetCommandTakesTheSameForms(t *testing.T) {
	s := clusterShell(t)
	for _, name := range []string{"!ping", "!status", "!scale", "!shutdown", "!restart", "!config", "!run"} {
		c := lookup(name)
		if !c.Target || c.flag("all") == nil || c.flag("tag") == nil || !c.flag("tag").Glob {
			t.Errorf("%s does not take TARGET from the table", name)
		}
		if !strings.Contains(c.Usage(), "TARGET") || strings.Contains(c.Usage(), "--all") {
			t.Errorf("%s usage %q: want TARGET and no separate --all", name, c.Usage())
		}
		if !strings.Contains(helpFor(c, palette{}), targetHelp) {
			t.Errorf("!help %s does not explain TARGET", name)
		}
	}
	for _, line := range []string{
		"!ping --tag role=gpu", "!status --tag role=gpu", "!scale --tag role=gpu 2", "!shutdown --tag role=gpu",
		"!restart --tag role=gpu", "!config show --tag role=gpu", "!config set strategy random --tag role=gpu", "!run --tag role=gpu -- true",
	} {
		if err := s.Exec(context.Background(), line); err == nil || !strings.Contains(err.Error(), "no live member carries --tag role=gpu") {
			t.Errorf("%s: %v", line, err)
		}
	}
	_, cands := s.completions("!ping a ")
	if !slices.Equal(cands, []string{"b"}) {
		t.Errorf("!ping a <Tab> offers %q, want the other member", cands)
	}
}

// Flags may follow a TARGET of several words, for !run as for the control
// commands: one rule (parseArgs) splits target words from flags, and only
// "--" ends the flags.
func TestFlagsMayFollowATargetOfSeveralWords(t *testing.T) {
	s := clusterShell(t)
	cases := []struct {
		line  string
		flags []string // the flags the line sets
		argv  []string // !run's command
	}{
		{"!ping a b --json", []string{"json"}, nil},
		{"!status a b --json --timeout 2s", []string{"json", "timeout"}, nil},
		{"!shutdown a b --now", []string{"now"}, nil},
		{"!run a b --gather -- echo x", []string{"gather"}, []string{"echo", "x"}},
		{"!run a b -b -- echo x", []string{"gather"}, []string{"echo", "x"}},
		{"!run a --diff b -- echo x", []string{"diff"}, []string{"echo", "x"}},
		{"!run a b --timeout 5s --json -- echo --json -b", []string{"timeout", "json"}, []string{"echo", "--json", "-b"}},
		{"!run --json a b -- echo x", []string{"json"}, []string{"echo", "x"}},
	}
	for _, c := range cases {
		t.Run(c.line, func(t *testing.T) {
			words, err := tokenize(c.line)
			if err != nil {
				t.Fatal(err)
			}
			cmd, a, err := resolve(words)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range c.flags {
				if len(a.flags[f]) == 0 {
					t.Errorf("--%s not taken: %v", f, a.flags)
				}
			}
			var targets, argv []string
			if cmd.Name == "!run" {
				targets, argv, err = s.parseRun(a)
			} else {
				targets, err = s.selectTargets(a, a.Pos)
			}
			if err != nil || !slices.Equal(targets, []string{"a", "b"}) || !slices.Equal(argv, c.argv) {
				t.Errorf("targets %v, command %q, %v; want [a b], %q", targets, argv, err, c.argv)
			}
		})
	}
}

func TestPingSeveralAliasesAndByTag(t *testing.T) {
	s := clusterShell(t)
	var out bytes.Buffer
	s.setWriters(&out, &out)
	ctx := context.Background()
	if err := s.Exec(ctx, "!ping a b --json"); err != nil {
		t.Fatalf("!ping a b: %v\n%s", err, out.String())
	}
	if got := jsonAliases(t, out.String()); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("!ping a b answered for %v\n%s", got, out.String())
	}
	out.Reset()
	if err := s.Exec(ctx, "!status --tag role=worker --json"); err != nil {
		t.Fatalf("!status --tag: %v", err)
	}
	if got := jsonAliases(t, out.String()); !slices.Equal(got, []string{"b"}) {
		t.Errorf("!status --tag role=worker answered for %v", got)
	}
}

func jsonAliases(t *testing.T, out string) []string {
	t.Helper()
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var d struct {
			Alias string `json:"alias"`
			OK    bool   `json:"ok"`
		}
		if err := json.Unmarshal([]byte(l), &d); err != nil || !d.OK {
			t.Fatalf("line %q: %v", l, err)
		}
		got = append(got, d.Alias)
	}
	return got
}

func TestClusterMembersFilters(t *testing.T) {
	s := clusterShell(t)
	var out bytes.Buffer
	s.setWriters(&out, &out)
	members := func(args string) ([]memberJSON, error) {
		out.Reset()
		err := s.Exec(context.Background(), "!cluster_members --json "+args)
		var ms []memberJSON
		if jerr := json.Unmarshal(out.Bytes(), &ms); jerr != nil {
			t.Fatalf("%s: not JSON: %q", args, out.String())
		}
		return ms, err
	}
	aliases := func(ms []memberJSON) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.Alias)
		}
		return out
	}
	for args, want := range map[string][]string{
		"":                                 {"a", "b"},
		"--state alive":                    {"a", "b"},
		"--state alive,failed":             {"a", "b"},
		"--state failed --state alive":     {"a", "b"},
		"--tag role=worker":                {"b"},
		"--tag role=w*":                    {"b"},
		"--state alive --tag zone=1":       {"a"},
		"--tag role=* --tag zone=*":        nil,
		"--state suspect --tag role=work*": nil,
	} {
		ms, err := members(args)
		if !slices.Equal(aliases(ms), want) {
			t.Errorf("%q lists %v, want %v", args, aliases(ms), want)
		}
		if (err != nil) != (want == nil) {
			t.Errorf("%q: error %v; a filter fails exactly when it matches nothing", args, err)
		}
		if want == nil && (err == nil || !strings.Contains(err.Error(), "no member matches "+strings.TrimSpace(args)+" (2 members: 2 alive)")) {
			t.Errorf("%q: %v", args, err)
		}
	}
	if err := s.Exec(context.Background(), "!cluster_members --state gone"); err == nil || !strings.Contains(err.Error(), "use alive, suspect, failed or left") {
		t.Errorf("--state gone: %v", err)
	}
	if err := s.Exec(context.Background(), "!cluster_members --tag role=a\x1b"); err == nil {
		t.Error("a tag pattern with an escape was accepted")
	}

	// A script stops with exit status 1 on a filter that matches nothing.
	var errs bytes.Buffer
	s.setWriters(&out, &errs)
	if code := s.RunScript(context.Background(), strings.NewReader("!cluster_members --state failed\n!echo after\n"), false); code != 1 || strings.Contains(out.String(), "after") {
		t.Errorf("exit status %d, stdout %q; want 1 and the script stopped", code, out.String())
	}
	if !strings.Contains(errs.String(), "error: line 1: !cluster_members: no member matches --state failed") {
		t.Errorf("stderr %q", errs.String())
	}
}

func TestClusterMembersDetailedShowsProtocolVersions(t *testing.T) {
	s := clusterShell(t)
	var out bytes.Buffer
	s.setWriters(&out, &out)
	if err := s.Exec(context.Background(), "!cluster_members --detailed"); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := fmt.Sprintf("%d (1-%d)", protocolMax, protocolMax)
	if protocolMax == 1 {
		want = "1 (1)"
	}
	if len(lines) != 3 || !strings.Contains(lines[0], "PROTOCOL") || !strings.Contains(lines[1], want) || !strings.Contains(lines[2], want) {
		t.Errorf("--detailed:\n%s\nwant a PROTOCOL column with %q", out.String(), want)
	}
	out.Reset()
	s.Exec(context.Background(), "!cluster_members --json")
	var ms []memberJSON
	json.Unmarshal(out.Bytes(), &ms)
	for _, m := range ms {
		if m.Protocol == nil || m.Protocol.Min != 1 || m.Protocol.Max != protocolMax || m.Protocol.Current != protocolMax {
			t.Errorf("%s: protocol %+v", m.Alias, m.Protocol)
		}
	}
}

const protocolMax = protocol.MaxVersion

// Several nodes restart one after another, this node last, and each is
// alive again at a higher incarnation.
func TestRestartSeveralNodesOneAfterAnother(t *testing.T) {
	s := clusterShell(t)
	var out bytes.Buffer
	s.setWriters(&out, &out)
	before := map[string]uint64{}
	for _, e := range s.Node.Members().Entries {
		before[e.Alias] = e.Incarnation
	}
	if err := s.Exec(context.Background(), "!restart a b"); err != nil {
		t.Fatalf("!restart a b: %v\n%s", err, out.String())
	}
	text := out.String()
	i1, i2, i3 := strings.Index(text, "b: ok: restarting"), strings.Index(text, "b: alive again"), strings.Index(text, "a: ok: restarting")
	if i1 < 0 || i2 < i1 || i3 < i2 {
		t.Errorf("want b restarted and back before a restarts:\n%s", text)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := s.Node.WaitFor(ctx, func(sn *nodeSnapshot) bool {
		for alias, inc := range before {
			if e, ok := sn.Get(alias); !ok || e.State != node.StateAlive || e.Incarnation <= inc {
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Errorf("not both alive at a higher incarnation: %s (before: %v)", memberStates(s.Node.Members()), before)
	}
}

// One node, another or this one, is waited for as several are: alive
// again at a higher incarnation before !restart returns.
func TestRestartOneNodeWaitsUntilItIsBack(t *testing.T) {
	s := clusterShell(t)
	for _, alias := range []string{"b", "a"} { // a is this node
		var out bytes.Buffer
		s.setWriters(&out, &out)
		before, _ := s.Node.Members().Get(alias)
		if err := s.Exec(context.Background(), "!restart "+alias); err != nil {
			t.Fatalf("!restart %s: %v\n%s", alias, err, out.String())
		}
		if want := alias + ": ok: restarting\n" + alias + ": alive again\n"; out.String() != want {
			t.Errorf("!restart %s printed %q, want %q", alias, out.String(), want)
		}
		if e, ok := s.Node.Members().Get(alias); !ok || e.State != node.StateAlive || e.Incarnation <= before.Incarnation {
			t.Errorf("after !restart %s: %+v, incarnation before %d", alias, e, before.Incarnation)
		}
	}
}

func TestSomeOfNamesTheFirstAndCountsTheRest(t *testing.T) {
	if got := someOf([]string{"a", "b"}, 2); got != "a, b" {
		t.Errorf("someOf(a b, 2) = %q", got)
	}
	if got := someOf([]string{"a", "b", "c"}, 2); got != "a, b, … (3 in all)" {
		t.Errorf("someOf(a b c, 2) = %q", got)
	}
}

// Before any cluster a TARGET picks no one because there is no cluster,
// and every command with one says so, as !cluster_members does.
func TestTargetBeforeAnyClusterSaysNotInACluster(t *testing.T) {
	n, err := node.New(testConfig(t, "alone", nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	s := New(n, Options{Out: io.Discard, Err: io.Discard})
	for _, line := range []string{"!ping --all", "!ping alone", "!status --tag role=worker", "!run --all -- true", "!cluster_members"} {
		if err := s.Exec(context.Background(), line); err == nil || err.Error() != node.ErrNotRunning.Error() {
			t.Errorf("%s: %v, want %q", line, err, node.ErrNotRunning)
		}
	}
}

// After !leave, the commands that show the cluster say the node is in none,
// as before it started, rather than show a table it no longer keeps up.
func TestShowingTheClusterAfterLeave(t *testing.T) {
	s := clusterShell(t)
	var out, errs bytes.Buffer
	s.setWriters(&out, &errs)
	if err := s.Exec(context.Background(), "!leave"); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"!cluster_members", "!workers"} {
		err := s.Exec(context.Background(), cmd)
		if err == nil || !strings.Contains(err.Error(), "this node left the cluster: run !start_cluster or !join_cluster") {
			t.Errorf("%s after !leave: %v", cmd, err)
		}
	}
}
