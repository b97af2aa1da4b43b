package repl

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"meshell/node"
)

// tokenize splits a command line into words, by the one quoting rule of
// the project (node.SplitWords): quotes group, a backslash escapes.
func tokenize(line string) ([]string, error) { return node.SplitWords(line) }

// FlagKind is the type of a command flag's value.
type FlagKind uint8

const (
	FlagBool     FlagKind = iota // --json
	FlagString                   // --strategy random
	FlagInt                      // --n 1000
	FlagDuration                 // --timeout 2s
	FlagKV                       // --tag k=v, repeatable
)

// Flag describes one flag of a command.
type Flag struct {
	Name  string
	Short string // a one-letter alias, given with one dash (clush's -b)
	Kind  FlagKind
	Usage string
	Value func() []string // completion candidates for the value
	Glob  bool            // FlagKV: a value may hold the wildcards * and ? (target.go)
	Min   int             // FlagInt: the smallest value taken (0 unless set)
	OneOf string          // flags of one group exclude each other: the usage says [--a | --b]
}

// Args is a parsed command line.
type Args struct {
	Pos    []string
	flags  map[string][]string
	dashed int // index in Pos of the words after a "--" that parseArgs took; -1 = none
}

// Bool reports whether a boolean flag was given.
func (a *Args) Bool(name string) bool { return len(a.flags[name]) > 0 }

// String returns the last value of a flag, or def.
func (a *Args) String(name, def string) string {
	if v := a.flags[name]; len(v) > 0 {
		return v[len(v)-1]
	}
	return def
}

// Int returns a flag's value as an int (already validated), or def.
func (a *Args) Int(name string, def int) int {
	if v := a.flags[name]; len(v) > 0 {
		n, _ := strconv.Atoi(v[len(v)-1])
		return n
	}
	return def
}

// Duration returns a flag's value (already validated), or def.
func (a *Args) Duration(name string, def time.Duration) time.Duration {
	if v := a.flags[name]; len(v) > 0 {
		d, _ := time.ParseDuration(v[len(v)-1])
		return d
	}
	return def
}

// KV returns every k=v value of a repeatable flag; one value may hold
// several, comma-separated, as --tags does at start-up.
func (a *Args) KV(name string) map[string]string {
	out := map[string]string{}
	for _, v := range a.flags[name] {
		for _, kv := range strings.Split(v, ",") {
			k, val, _ := strings.Cut(kv, "=")
			out[k] = val
		}
	}
	return out
}

// parseArgs separates flags from positional words. Flags may come anywhere
// before a "--", which ends them: every word after it is positional (Args
// records where they start). A command that takes a free-form tail (Rest)
// ends flags at its first positional word instead: `!dispatch --json echo
// --json` echoes "--json".
func parseArgs(cmd *Command, words []string) (*Args, error) {
	a := &Args{flags: map[string][]string{}, dashed: -1}
	for i := 0; i < len(words); i++ {
		w := words[i]
		if isValue(w) || (cmd.Rest && len(a.Pos) > 0) {
			a.Pos = append(a.Pos, w)
			continue
		}
		if w == "--" {
			a.dashed = len(a.Pos)
			a.Pos = append(a.Pos, words[i+1:]...)
			break
		}
		given, val, hasVal := strings.Cut(w, "=")
		f := cmd.flag(strings.TrimLeft(given, "-"))
		if f == nil {
			if given == "--help" || given == "-h" {
				return nil, errHelp
			}
			if cmd.Dashed && !slices.Contains(words[i:], "--") {
				a.Pos = append(a.Pos, words[i:]...) // a tail typed without its "--"
				break
			}
			return nil, fmt.Errorf("%s has no flag %s; see !help %s", cmd.Name, given, strings.TrimPrefix(cmd.Name, "!"))
		}
		name := f.Name
		if f.Kind == FlagBool {
			if hasVal {
				return nil, fmt.Errorf("--%s takes no value", name)
			}
			a.flags[name] = append(a.flags[name], "true")
			continue
		}
		if !hasVal {
			if i+1 >= len(words) {
				return nil, fmt.Errorf("--%s needs a value: %s", name, f.Usage)
			}
			i++
			val = words[i]
		}
		if err := checkFlagValue(f, val); err != nil {
			return nil, err
		}
		a.flags[name] = append(a.flags[name], val)
	}
	return a, nil
}

// errHelp is parseArgs' answer to --help or -h: the command's help instead.
var errHelp = errors.New("help")

// isValue reports whether w is a positional word rather than a flag: it
// does not start with '-', or it is "-", or a '-' followed by a digit or
// '.' (a negative number or duration such as -5s: no flag starts so).
func isValue(w string) bool {
	if !strings.HasPrefix(w, "-") || w == "-" {
		return true
	}
	c := w[1]
	return c >= '0' && c <= '9' || c == '.'
}

func checkFlagValue(f *Flag, v string) error {
	switch f.Kind {
	case FlagInt:
		if err := tooLarge("--"+f.Name, v); err != nil {
			return err
		}
		if n, err := strconv.Atoi(v); err != nil || n < f.Min {
			return fmt.Errorf("--%s wants a whole number ≥ %d, not %q", f.Name, f.Min, v)
		}
	case FlagDuration:
		if d, err := time.ParseDuration(v); err != nil || d <= 0 {
			return fmt.Errorf("--%s wants a positive duration such as 500ms or 2s, not %q", f.Name, v)
		}
	case FlagKV:
		parse := ParseTags
		if f.Glob {
			parse = parseTagPatterns
		}
		if _, err := parse(v); err != nil {
			return fmt.Errorf("--%s: %w", f.Name, err)
		}
	}
	return nil
}

// tooLarge is the error for a whole number too large to take, naming the
// largest; nil when v is not one (a negative or other word included).
func tooLarge(what, v string) error {
	if _, err := strconv.Atoi(v); errors.Is(err, strconv.ErrRange) && !strings.HasPrefix(v, "-") {
		return fmt.Errorf("%s %s is too large: the most is %d", what, v, math.MaxInt)
	}
	return nil
}

// ParseTags reads "k=v" or "k=v,k2=v2" into tags, each checked with the
// rules every node applies (node.ValidTag), each key once: !tag's and
// --tags' one reading.
func ParseTags(word string) (map[string]string, error) { return readTags(word, false) }

// parseTagPatterns is ParseTags where each value may also hold the
// wildcards * and ? (globMatch).
func parseTagPatterns(word string) (map[string]string, error) { return readTags(word, true) }

// onceEach refuses k=v when tags, the tags of the same command, has k
// already: one of the two values would be dropped silently.
func onceEach(tags map[string]string, k, v string) error {
	if old, ok := tags[k]; ok {
		return fmt.Errorf("tag %s given twice (%s=%s and %s=%s): give each key once", k, k, old, k, v)
	}
	return nil
}

func readTags(word string, glob bool) (map[string]string, error) {
	tags := map[string]string{}
	for _, kv := range strings.Split(word, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not KEY=VALUE, e.g. role=worker", kv)
		}
		checked := v
		if glob {
			checked = strings.NewReplacer("*", "", "?", "").Replace(v)
		}
		if err := node.ValidTag(k, checked); err != nil {
			return nil, err
		}
		if err := onceEach(tags, k, v); err != nil {
			return nil, err
		}
		tags[k] = v
	}
	return tags, nil
}

// parseDuration reads a positional duration with a helpful error.
func parseDuration(what, v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	switch {
	case err != nil:
		return 0, fmt.Errorf("%s %q is not a duration: use Go syntax such as 500ms, 2s or 1m", what, v)
	case d < 0:
		return 0, fmt.Errorf("%s %q is negative: give 0 or more, such as 500ms", what, v)
	}
	return d, nil
}

// parseTimeout reads a positional timeout: a duration above 0.
func parseTimeout(v string) (time.Duration, error) {
	if d, err := time.ParseDuration(v); err == nil && d <= 0 {
		return 0, fmt.Errorf("timeout %q: a timeout must be positive, such as 5s", v)
	}
	return parseDuration("timeout", v)
}
