package repl

import (
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"meshell/protocol"
)

// Completion and inline hints. Both come from the command table: names and
// aliases, each command's flags, the values of a flag (Flag.Value, or the
// cluster's known tags for a K=V flag) and each command's own positional
// candidates (Command.Complete: live member aliases, states, job kinds…).

// completer is readline's AutoCompleter.
type completer struct{ s *Shell }

func (c completer) Do(line []rune, pos int) ([][]rune, int) {
	typing, cands := c.s.completions(string(line[:pos]))
	var out [][]rune
	for _, cand := range cands {
		out = append(out, []rune(cand[len(typing):]+" "))
	}
	return out, len([]rune(typing))
}

// completions returns the word being typed at the end of head and the
// candidates that start with it, sorted and without duplicates. Candidates
// come from members' aliases and tags: one that is not plain text or longer
// than fieldCap is left out, as readline would print it raw (and its cleaned
// form would not name the member).
func (s *Shell) completions(head string) (typing string, cands []string) {
	words := strings.Fields(head)
	if len(words) > 0 && !strings.HasSuffix(head, " ") && !strings.HasSuffix(head, "\t") {
		typing = words[len(words)-1]
		words = words[:len(words)-1]
	}
	var all []string
	switch {
	case len(words) == 0:
		all = commandNames()
	default:
		cmd := lookup(words[0])
		if cmd == nil {
			return typing, nil
		}
		all = s.argCandidates(cmd, words[1:], typing)
	}
	seen := map[string]bool{}
	for _, cand := range all {
		if strings.HasPrefix(cand, typing) && !seen[cand] && completable(cand) {
			seen[cand] = true
			cands = append(cands, cand)
		}
	}
	sort.Strings(cands)
	return typing, cands
}

// completable reports whether cand may be offered: safe to print as is.
func completable(cand string) bool {
	return utf8.RuneCountInString(cand) <= fieldCap && plain(cand)
}

// argCandidates completes an argument of cmd after the complete words
// done; typing is the partial word.
func (s *Shell) argCandidates(cmd *Command, done []string, typing string) []string {
	// A flag's value: "--tag " or "--tag=".
	if len(done) > 0 {
		if f := cmd.flag(strings.TrimLeft(done[len(done)-1], "-")); f != nil && strings.HasPrefix(done[len(done)-1], "-") &&
			!strings.Contains(done[len(done)-1], "=") && f.Kind != FlagBool {
			return s.flagValues(f)
		}
	}
	if name, _, ok := strings.Cut(typing, "="); ok && strings.HasPrefix(name, "-") {
		if f := cmd.flag(strings.TrimLeft(name, "-")); f != nil {
			var out []string
			for _, v := range s.flagValues(f) {
				out = append(out, name+"="+v)
			}
			return out
		}
		return nil
	}
	pos, used := positionals(cmd, done)
	if strings.HasPrefix(typing, "-") && !(cmd.Rest && pos > 0) {
		var out []string
		for _, f := range cmd.Flags {
			if !used[f.Name] || f.Kind == FlagKV {
				out = append(out, "--"+f.Name)
			}
		}
		return out
	}
	if cmd.Complete != nil && (cmd.Max < 0 || pos < cmd.Max) {
		return cmd.Complete(s, pos)
	}
	return nil
}

// positionals counts the positional words among done, skipping flags and
// their values, and names the flags used.
func positionals(cmd *Command, done []string) (int, map[string]bool) {
	used := map[string]bool{}
	pos := 0
	for i := 0; i < len(done); i++ {
		w := done[i]
		if !strings.HasPrefix(w, "-") || w == "-" || isNumber(w) || (cmd.Rest && pos > 0) {
			pos++
			continue
		}
		name, _, hasVal := strings.Cut(strings.TrimLeft(w, "-"), "=")
		used[name] = true
		if f := cmd.flag(name); f != nil && f.Kind != FlagBool && !hasVal {
			i++ // its value
		}
	}
	return pos, used
}

// flagValues are the completion candidates of a flag's value. A K=V flag
// without its own list completes the cluster's known tags.
func (s *Shell) flagValues(f *Flag) []string {
	switch {
	case f.Value != nil:
		return f.Value()
	case f.Kind == FlagKV:
		return s.tagCandidates()
	case f.Kind == FlagDuration:
		return []string{"500ms", "1s", "2s", "5s", "10s"}
	}
	return nil
}

// tagCandidates lists every tag the members of the cluster carry, as
// "key=value", sorted. Commands that filter by tag use it for completion:
//
//	Complete: func(s *Shell, i int) []string { return s.tagCandidates() }
func (s *Shell) tagCandidates() []string {
	seen := map[string]bool{}
	var out []string
	for _, e := range s.Node.Members().Entries {
		for k, v := range e.Tags {
			if kv := k + "=" + v; !seen[kv] {
				seen[kv] = true
				out = append(out, kv)
			}
		}
	}
	for k, v := range s.Node.Self().Tags {
		if kv := k + "=" + v; !seen[kv] {
			seen[kv] = true
			out = append(out, kv)
		}
	}
	sort.Strings(out)
	return out
}

// tagKeys lists the tag keys the members carry, sorted.
func (s *Shell) tagKeys() []string {
	seen := map[string]bool{}
	var out []string
	for _, kv := range s.tagCandidates() {
		k, _, _ := strings.Cut(kv, "=")
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

// aliasCandidates lists the aliases of the live (alive or suspect) members
// other than this node, for commands that address one node; with all it
// lists every member, this node included. See also aliases().
func (s *Shell) aliasCandidates(all bool) []string {
	var out []string
	for _, e := range s.Node.Members().Entries {
		if all || (!e.Self && (e.State == protocol.StateAlive || e.State == protocol.StateSuspect)) {
			out = append(out, e.Alias)
		}
	}
	return out
}

// completeJobKinds lists the built-in job kinds (DESIGN.md §6) for the
// KIND argument of the job commands.
func completeJobKinds() []string {
	return []string{"echo", "primes", "sha256", "sleep", "stream"}
}

// hintFor returns the greyed-out hint shown after what is typed: the
// arguments of the command still to type (like redis-cli). It is empty
// when the cursor is not at the end, or the line holds no known command.
func hintFor(line string) string {
	if line == "" || strings.ContainsAny(line, "\n\r") {
		return ""
	}
	words := strings.Fields(line)
	if len(words) == 0 {
		return ""
	}
	cmd := lookup(words[0])
	if cmd == nil || !strings.HasPrefix(words[0], "!") {
		return ""
	}
	trailing := strings.HasSuffix(line, " ")
	if len(words) == 1 {
		syn := strings.TrimSpace(strings.TrimPrefix(cmd.Usage(), cmd.Name))
		if syn == "" {
			return ""
		}
		if trailing {
			return syn
		}
		return " " + syn
	}
	if !trailing || cmd.Args == "" || strings.Contains(cmd.Args, "|") {
		return ""
	}
	pos, _ := positionals(cmd, words[1:])
	rest := splitSynopsis(cmd.Args)
	if pos >= len(rest) {
		return ""
	}
	return strings.Join(rest[pos:], " ")
}

// splitSynopsis splits "KIND [ARGS…] [TIMEOUT]" into its words, keeping
// bracketed groups whole.
func splitSynopsis(args string) []string {
	var out []string
	depth := 0
	start := 0
	for i, r := range args {
		switch r {
		case '[':
			depth++
		case ']':
			depth--
		case ' ':
			if depth == 0 {
				if i > start {
					out = append(out, args[start:i])
				}
				start = i + 1
			}
		}
	}
	if start < len(args) {
		out = append(out, args[start:])
	}
	return out
}

// hintPainter is readline's Painter: it draws the hint in grey after the
// line and moves the cursor back, so the buffer and readline's idea of the
// cursor are untouched. The hint is drawn only when it fits on the line
// (a wrapped hint would leave the cursor on the wrong row).
type hintPainter struct {
	s     *Shell
	width func() int // terminal columns
}

func (h hintPainter) Paint(line []rune, pos int) []rune {
	if pos != len(line) || len(line) == 0 {
		return line
	}
	hint := hintFor(string(line))
	if hint == "" {
		return line
	}
	cols := h.width()
	used := visibleWidth(h.s.Prompt()) + len(line)
	if cols <= 0 || used+len([]rune(hint))+2 > cols {
		return line
	}
	out := append([]rune(nil), line...)
	out = append(out, []rune("\x1b[90m"+hint+"\x1b[0m\x1b["+strconv.Itoa(len([]rune(hint)))+"D")...)
	return out
}
