package repl

import (
	"context"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestTokenize(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
		err      string
	}{
		{"empty line", "", nil, ""},
		{"blanks only", "  \t ", nil, ""},
		{"words split on spaces and tabs", "!wait  members\t3", []string{"!wait", "members", "3"}, ""},
		{"double quotes group words", `!echo "hello world" x`, []string{"!echo", "hello world", "x"}, ""},
		{"single quotes keep backslashes", `!echo 'a\b c'`, []string{"!echo", `a\b c`}, ""},
		{"backslash escapes a space", `!echo a\ b`, []string{"!echo", "a b"}, ""},
		{"backslash escapes a quote in double quotes", `!echo "say \"hi\""`, []string{"!echo", `say "hi"`}, ""},
		{"in double quotes other backslashes stay, as in sh", `printf "a\tb\\ \$x\033"`, []string{"printf", `a\tb\ $x\033`}, ""},
		{"empty quotes are an empty word", `!echo ""`, []string{"!echo", ""}, ""},
		{"quotes join adjacent text", `a"b c"d`, []string{"ab cd"}, ""},
		{"unicode passes through", "!echo héllo ✓", []string{"!echo", "héllo", "✓"}, ""},
		{"unterminated double quote", `!echo "oops`, nil, "unterminated \" quote"},
		{"unterminated single quote", `!echo 'oops`, nil, "unterminated ' quote"},
		{"trailing backslash", `!echo oops\`, nil, "backslash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tokenize(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("tokenize(%q) error = %v, want one containing %q", tt.in, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("tokenize(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("tokenize(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// testCmd has one flag of every kind and a free-form tail.
var testCmd = &Command{
	Name: "!t", Max: -1, Rest: true,
	Flags: []Flag{
		{Name: "json", Kind: FlagBool},
		{Name: "strategy", Kind: FlagString},
		{Name: "n", Kind: FlagInt},
		{Name: "timeout", Kind: FlagDuration},
		{Name: "tag", Kind: FlagKV},
	},
}

func TestParseArgs(t *testing.T) {
	plain := &Command{Name: "!p", Max: -1, Flags: testCmd.Flags}
	dashed := &Command{Name: "!d", Max: -1, Dashed: true, Flags: testCmd.Flags}
	tests := []struct {
		name  string
		cmd   *Command
		words []string
		pos   []string
		check func(t *testing.T, a *Args)
		err   string
	}{
		{name: "no words", cmd: plain, words: nil, pos: nil},
		{name: "positionals only", cmd: plain, words: []string{"a", "b"}, pos: []string{"a", "b"}},
		{name: "bool flag", cmd: plain, words: []string{"--json", "x"}, pos: []string{"x"},
			check: func(t *testing.T, a *Args) {
				if !a.Bool("json") || a.Bool("nope") {
					t.Error("Bool")
				}
			}},
		{name: "single dash works too", cmd: plain, words: []string{"-json"},
			check: func(t *testing.T, a *Args) {
				if !a.Bool("json") {
					t.Error("-json not seen")
				}
			}},
		{name: "value as next word and after =", cmd: plain, words: []string{"--strategy", "random", "--n=5"},
			check: func(t *testing.T, a *Args) {
				if a.String("strategy", "") != "random" || a.Int("n", 0) != 5 {
					t.Errorf("strategy=%q n=%d", a.String("strategy", ""), a.Int("n", 0))
				}
			}},
		{name: "defaults when absent", cmd: plain, words: nil,
			check: func(t *testing.T, a *Args) {
				if a.String("strategy", "rr") != "rr" || a.Int("n", 7) != 7 || a.Duration("timeout", time.Second) != time.Second || len(a.KV("tag")) != 0 {
					t.Error("defaults")
				}
			}},
		{name: "repeatable k=v", cmd: plain, words: []string{"--tag", "role=worker", "--tag=zone=a"},
			check: func(t *testing.T, a *Args) {
				if kv := a.KV("tag"); kv["role"] != "worker" || kv["zone"] != "a" {
					t.Errorf("KV = %v", kv)
				}
			}},
		{name: "duration", cmd: plain, words: []string{"--timeout", "1500ms"},
			check: func(t *testing.T, a *Args) {
				if a.Duration("timeout", 0) != 1500*time.Millisecond {
					t.Error(a.Duration("timeout", 0))
				}
			}},
		{name: "negative numbers are positional", cmd: plain, words: []string{"-5", "-1.5"}, pos: []string{"-5", "-1.5"}},
		{name: "negative durations are positional", cmd: plain, words: []string{"probe-interval", "-5s", "-.5s"}, pos: []string{"probe-interval", "-5s", "-.5s"}},
		{name: "several k=v in one value", cmd: plain, words: []string{"--tag", "role=worker,zone=a"},
			check: func(t *testing.T, a *Args) {
				if kv := a.KV("tag"); len(kv) != 2 || kv["role"] != "worker" || kv["zone"] != "a" {
					t.Errorf("KV = %v", kv)
				}
			}},
		{name: "a tag value with a comma and no =", cmd: plain, words: []string{"--tag", "a=b,c"}, err: `"c" is not KEY=VALUE`},
		{name: "a tag value protocol.ValidTag refuses", cmd: plain, words: []string{"--tag", "a=b c"}, err: "is not valid"},
		{name: "lone dash is positional", cmd: plain, words: []string{"-"}, pos: []string{"-"}},
		{name: "double dash ends flags", cmd: plain, words: []string{"--", "--json"}, pos: []string{"--json"}},
		{name: "rest: flags end at the first word", cmd: testCmd, words: []string{"--json", "echo", "--json"}, pos: []string{"echo", "--json"}},
		{name: "dashed: flags anywhere before --, then the tail", cmd: dashed, words: []string{"a", "b", "--json", "--", "ls", "--json"}, pos: []string{"a", "b", "ls", "--json"},
			check: func(t *testing.T, a *Args) {
				if !a.Bool("json") || a.dashed != 2 {
					t.Errorf("json %v, tail at %d", a.Bool("json"), a.dashed)
				}
			}},
		{name: "dashed: an unknown flag with no -- after it starts the tail", cmd: dashed, words: []string{"a", "ls", "-la"}, pos: []string{"a", "ls", "-la"}},
		{name: "dashed: an unknown flag before -- is refused", cmd: dashed, words: []string{"a", "-x", "--", "ls"}, err: "has no flag -x"},
		{name: "unknown flag says where to look", cmd: plain, words: []string{"--nope"}, err: "see !help p"},
		{name: "missing value", cmd: plain, words: []string{"--n"}, err: "--n needs a value"},
		{name: "bool with value", cmd: plain, words: []string{"--json=yes"}, err: "takes no value"},
		{name: "bad int", cmd: plain, words: []string{"--n", "x"}, err: "whole number"},
		{name: "negative int", cmd: plain, words: []string{"--n=-1"}, err: "whole number"},
		{name: "bad duration", cmd: plain, words: []string{"--timeout", "5"}, err: "duration"},
		{name: "bad k=v", cmd: plain, words: []string{"--tag", "role"}, err: "KEY=VALUE"},
		{name: "empty key", cmd: plain, words: []string{"--tag", "=x"}, err: "KEY=VALUE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := parseArgs(tt.cmd, tt.words)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("parseArgs(%q) error = %v, want one containing %q", tt.words, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseArgs(%q): %v", tt.words, err)
			}
			if tt.pos != nil && !reflect.DeepEqual(a.Pos, tt.pos) {
				t.Fatalf("Pos = %q, want %q", a.Pos, tt.pos)
			}
			if tt.check != nil {
				tt.check(t, a)
			}
		})
	}
}

// TestCountFlagsSayTheirOwnMinimum: a count flag's smallest value is one
// rule, in the command table, and its error names that rule whatever the
// value given: --n 0 of !jobs is refused as --n -1 is.
func TestCountFlagsSayTheirOwnMinimum(t *testing.T) {
	for line, want := range map[string]string{
		"!jobs --n 0":                               `--n wants a whole number ≥ 1, not "0"`,
		"!jobs --n -1":                              `--n wants a whole number ≥ 1, not "-1"`,
		"!bench --n 0 echo x":                       `--n wants a whole number ≥ 1, not "0"`,
		"!bench --n -1 echo x":                      `--n wants a whole number ≥ 1, not "-1"`,
		"!bench --concurrency 0 echo x":             `--concurrency wants a whole number ≥ 1, not "0"`,
		"!watch --count -1 !jobs":                   `--count wants a whole number ≥ 0, not "-1"`,
		"!top --count x":                            `--count wants a whole number ≥ 0, not "x"`,
		"!watch --count 99999999999999999999 !jobs": "--count 99999999999999999999 is too large: the most is 9223372036854775807",
		"!jobs --n 99999999999999999999":            "--n 99999999999999999999 is too large: the most is 9223372036854775807",
		"!jobs --n -99999999999999999999":           `--n wants a whole number ≥ 1, not "-99999999999999999999"`,
		"!cluster_members --state=x --n 1":          "has no flag --n",
	} {
		words, err := tokenize(line)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := resolve(words); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", line, err, want)
		}
	}
	for _, line := range []string{"!jobs --n 1", "!bench --n 1 --concurrency 1 echo x", "!watch --count 0 !jobs", "!top --count 0"} {
		words, _ := tokenize(line)
		if _, _, err := resolve(words); err != nil {
			t.Errorf("%s: %v", line, err)
		}
	}
}

func TestResolveChecksArgumentCounts(t *testing.T) {
	for _, tt := range []struct{ line, err string }{
		{"!wait members", "usage: !wait"},
		{"!cluster_members extra", "usage: !cluster_members"},
		{"wait members 3", "not a command"},
		{"!clus", "did you mean !cluster_members"},
		{"!members --json", ""},
		{"!exit", ""},
		{"!run -t role=x -- ls", "!run has no flag -t;"}, // named as typed
		{"!run --all -b -- ls", ""},
	} {
		t.Run(tt.line, func(t *testing.T) {
			_, _, err := resolve(strings.Fields(tt.line))
			if (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("resolve(%q) = %v, want %q", tt.line, err, tt.err)
			}
		})
	}
}

// --help and -h, where a command has no such flag, show the command's help;
// after "--" or in a free-form tail they are the command's own words.
func TestHelpFlagShowsTheCommandsHelp(t *testing.T) {
	for line, help := range map[string]bool{
		"!run --help":                  true,
		"!wait -h":                     true,
		"!members --json --help":       true,
		"!run --all -- ls --help":      false,
		"!dispatch echo --help":        false,
		"!run --all --gather -- ls -h": false,
	} {
		cmd, a, err := resolve(strings.Fields(line))
		if err != nil {
			t.Fatalf("resolve(%q): %v", line, err)
		}
		if got := cmd.Name == "!help"; got != help {
			t.Errorf("%q resolved to %s %q, want help: %v", line, cmd.Name, a.Pos, help)
		}
	}
	var out strings.Builder
	s := testShell(t, &out)
	if err := s.Exec(context.Background(), "!run --help"); err != nil || !strings.Contains(out.String(), "usage: !run [--timeout D] [--gather|-b | --diff | --json] TARGET -- CMD") || !strings.Contains(out.String(), "--gather, -b") {
		t.Fatalf("!run --help: %v, printed %q", err, out.String())
	}
}

// FuzzParse: tokenizing and parsing any line against any command of the
// table (and the test command) never panics; nor do completion and hints,
// which see every half-typed line.
func FuzzParse(f *testing.F) {
	s := testShell(f, io.Discard)
	for _, s := range []string{
		"!wait members 3 5s", `!echo "a b" 'c'`, "!t --tag=a=b --n 3 --timeout 1s echo --json",
		`!x \`, `"`, "--", "-", "--=", "--tag=", "!watch --count 2 !cluster_members 1s", "\x00\xff", "!help wait", " ", "!wait  --", "!t --tag=",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		words, err := tokenize(line)
		if err != nil {
			return
		}
		cmds := append([]*Command{testCmd}, commands...)
		for _, c := range cmds {
			if a, err := parseArgs(c, words); err == nil {
				a.Int("n", 0)
				a.Duration("timeout", 0)
				a.KV("tag")
			}
		}
		if len(words) > 0 {
			resolve(words)
			watchTarget(words)
		}
		hintFor(line)
		s.completions(line)
		hintPainter{prompt: s.Prompt, width: func() int { return 80 }}.Paint([]rune(line), len([]rune(line)))
	})
}
