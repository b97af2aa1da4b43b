package repl

import (
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"meshell/node"
)

// Completion and inline hints. Both come from the command table: names and
// aliases, each command's flags, the values of a flag (Flag.Value, or the
// cluster's known tags for a K=V flag) and each command's own positional
// candidates (Command.Complete: live member aliases, states, job kinds…).

// completer is readline's AutoCompleter.
type completer struct{ s *Shell }

func (c completer) Do(line []rune, pos int) ([][]rune, int) {
	return completionSuffixes(c.s.completions(string(line[:pos])))
}

// completionSuffixes turns candidates for the word being typed into what
// readline wants: the rest of each, and the length of what is typed.
func completionSuffixes(typing string, cands []string) ([][]rune, int) {
	var out [][]rune
	for _, cand := range cands {
		if strings.HasSuffix(cand, "=") { // a tag key: its value comes next
			out = append(out, []rune(cand[len(typing):]))
			continue
		}
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
		if f := valueFlag(cmd, done[len(done)-1]); f != nil {
			return s.flagValues(f, typing)
		}
	}
	if name, val, ok := strings.Cut(typing, "="); ok && strings.HasPrefix(name, "-") {
		if f := cmd.flag(strings.TrimLeft(name, "-")); f != nil {
			var out []string
			for _, v := range s.flagValues(f, val) {
				out = append(out, name+"="+v)
			}
			return out
		}
		return nil
	}
	pos, used := positionals(cmd, done)
	// Flags while one is typed, not after a "--" nor as one: "--" is the end
	// of the flags (parseArgs), not the start of a long one.
	if strings.HasPrefix(typing, "-") && typing != "--" && !(cmd.Rest && len(pos) > 0) && !slices.Contains(pos, "--") {
		var out []string
		for _, f := range cmd.Flags {
			if !used[f.Name] || f.Kind == FlagKV {
				out = append(out, "--"+f.Name)
			}
		}
		return out
	}
	if cmd.Complete != nil && (cmd.Max < 0 || len(pos) < cmd.Max) {
		if cmd.Target && strings.Contains(typing, ",") {
			return s.targetListCandidates(cmd.Complete(s, pos), typing)
		}
		return cmd.Complete(s, pos)
	}
	return nil
}

// splitList splits a comma-separated list being typed into what comes
// before its last element (through the comma) and that element. ok is
// false when typing holds no comma outside a range's brackets, or ends
// inside brackets (n[1,2: a range's numbers, not an element).
func splitList(typing string) (before, last string, ok bool) {
	commas, depth := listCommas(typing)
	if len(commas) == 0 || depth != 0 {
		return "", "", false
	}
	cut := commas[len(commas)-1]
	return typing[:cut+1], typing[cut+1:], true
}

// targetListCandidates completes the next alias of a TARGET list typed as
// one word (n1,n2,…): cands are what the command offers for the word, of
// which the members' aliases not in the list yet are offered after what
// is typed before the last comma (readline replaces the whole word). A
// word that is not a TARGET (!config set KEY) offers no alias, so nothing.
func (s *Shell) targetListCandidates(cands []string, typing string) []string {
	before, _, ok := splitList(typing)
	if !ok {
		return nil
	}
	named, err := expandNodes(strings.TrimSuffix(before, ","))
	if err != nil {
		return nil // an empty alias, a bad range: no list to go on with
	}
	members := s.aliases()
	var out []string
	for _, c := range cands {
		if slices.Contains(members, c) && !slices.Contains(named, c) {
			out = append(out, before+c)
		}
	}
	return out
}

// valueFlag is the flag of cmd that word names when it still waits for its
// value ("--tag", not "--tag=x" nor a boolean flag), or nil.
func valueFlag(cmd *Command, word string) *Flag {
	if !strings.HasPrefix(word, "-") || isValue(word) || strings.Contains(word, "=") {
		return nil
	}
	if f := cmd.flag(strings.TrimLeft(word, "-")); f != nil && f.Kind != FlagBool {
		return f
	}
	return nil
}

// positionals returns the positional words among done, skipping flags and
// their values, and names the flags used. A "--" and every word after it
// are positional, "--" included: after it come no flags (parseArgs).
func positionals(cmd *Command, done []string) ([]string, map[string]bool) {
	used := map[string]bool{}
	var pos []string
	for i := 0; i < len(done); i++ {
		w := done[i]
		if w == "--" && !(cmd.Rest && len(pos) > 0) {
			pos = append(pos, done[i:]...)
			break
		}
		if isValue(w) || (cmd.Rest && len(pos) > 0) {
			pos = append(pos, w)
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

// flagValues are the completion candidates of a flag's value, typing the
// part of it typed so far. A K=V flag without its own list completes the
// live members' tags.
func (s *Shell) flagValues(f *Flag, typing string) []string {
	switch {
	case f.Value != nil:
		return f.Value()
	case f.Kind == FlagKV:
		return s.tagListCandidates(typing)
	case f.Kind == FlagDuration:
		return []string{"500ms", "1s", "2s", "5s", "10s"}
	}
	return nil
}

// liveTags maps every tag key the live (alive or suspect) members carry,
// this node included, to its values, sorted. The tags each node keeps
// itself (node.OwnedTag) are left out: a user sets none of them.
func (s *Shell) liveTags() map[string][]string {
	seen := map[string]map[string]bool{}
	add := func(tags map[string]string) {
		for k, v := range tags {
			if node.OwnedTag(k) != nil {
				continue
			}
			if seen[k] == nil {
				seen[k] = map[string]bool{}
			}
			seen[k][v] = true
		}
	}
	for _, e := range s.Node.Members().Entries {
		if e.State == node.StateAlive || e.State == node.StateSuspect {
			add(e.Tags)
		}
	}
	add(s.Node.Self().Tags)
	out := map[string][]string{}
	for k, vs := range seen {
		out[k] = slices.Sorted(maps.Keys(vs))
	}
	return out
}

// tagCandidates lists every tag of the live members as "key=value",
// sorted (see liveTags).
func (s *Shell) tagCandidates() []string {
	var out []string
	for k, vs := range s.liveTags() {
		for _, v := range vs {
			out = append(out, k+"="+v)
		}
	}
	sort.Strings(out)
	return out
}

// tagFilterCandidates completes a --tag K=V filter from the live members'
// tags in two steps: before the '=' a key (as "key=value" when it has one
// value, "key=" to go on with when it has several), after it that key's
// values.
func (s *Shell) tagFilterCandidates(typing string) []string {
	tags := s.liveTags()
	var out []string
	if k, _, ok := strings.Cut(typing, "="); ok {
		for _, v := range tags[k] {
			out = append(out, k+"="+v)
		}
		return out
	}
	for k, vs := range tags {
		if len(vs) == 1 {
			out = append(out, k+"="+vs[0])
		} else {
			out = append(out, k+"=")
		}
	}
	sort.Strings(out)
	return out
}

// tagListCandidates completes a K=V flag's value, which may hold several
// pairs, comma-separated (Args.KV): the last pair as tagFilterCandidates
// does, after the pairs before it, leaving out the keys they give already.
func (s *Shell) tagListCandidates(typing string) []string {
	if !strings.Contains(typing, ",") {
		return s.tagFilterCandidates(typing)
	}
	cut := strings.LastIndexByte(typing, ',')
	before, last := typing[:cut+1], typing[cut+1:]
	given := map[string]bool{}
	for _, kv := range strings.Split(before[:cut], ",") {
		k, _, _ := strings.Cut(kv, "=")
		given[k] = true
	}
	var out []string
	for _, c := range s.tagFilterCandidates(last) {
		if k, _, _ := strings.Cut(c, "="); !given[k] {
			out = append(out, before+c)
		}
	}
	return out
}

// aliasCandidates lists the aliases of the live (alive or suspect)
// members, this node among them when self: what a TARGET may name. See
// also aliases(), every member in any state.
func (s *Shell) aliasCandidates(self bool) []string {
	var out []string
	for _, e := range s.Node.Members().Entries {
		if live(e.State) && (self || !e.Self) {
			out = append(out, e.Alias)
		}
	}
	return out
}

// configValues are candidates for the value of a !config set KEY: this
// node's current value first, then the usual ones for the key.
func (s *Shell) configValues(key string) []string {
	var usual []string
	switch key {
	case "probe-interval", "probe-timeout":
		usual = []string{"50ms", "100ms", "250ms", "500ms", "1s"}
	case "suspicion-mult":
		usual = []string{"3", "4", "6"}
	case "indirect-checks":
		usual = []string{"1", "3", "5"}
	case "log-level":
		return []string{"debug", "info", "warn", "error"}
	case "strategy":
		return node.Strategies()
	default:
		return nil
	}
	if cur := s.Node.ConfigMap()[key]; cur != "" {
		usual = append(usual, cur)
	}
	return usual
}

// hintFor returns the greyed-out hint shown after what is typed: the
// arguments of the command still to type (like redis-cli). After the
// command name it is the whole usage; after some arguments, what remains
// of the alternatives of the synopsis that fit what is typed. It is empty
// when the line holds no known command.
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
		if syn == "" || trailing {
			return syn
		}
		return " " + syn
	}
	done, partial := words[1:], ""
	if !trailing {
		done, partial = words[1:len(words)-1], words[len(words)-1]
		if strings.HasPrefix(partial, "-") && !isValue(partial) {
			return "" // typing a flag
		}
	}
	if len(done) > 0 {
		if f := valueFlag(cmd, done[len(done)-1]); f != nil {
			if partial != "" {
				return ""
			}
			return strings.ToUpper(flagValueName(*f)) // the flag's value comes next
		}
	}
	if cmd.Args == "" {
		return ""
	}
	pos, used := positionals(cmd, done)
	if partial != "" {
		pos = append(pos, partial)
	}
	args := cmd.Args
	if cmd.Target && (used[flagAll.Name] || used[flagTagTarget.Name]) { // TARGET given by a flag
		args = strings.Join(strings.Fields(strings.NewReplacer("[TARGET]", "", "TARGET", "").Replace(args)), " ")
	}
	hint := remainingArgs(args, pos, used, partial != "")
	if hint != "" && !trailing {
		hint = " " + hint
	}
	return hint
}

// remainingArgs matches the positional words typed against each
// alternative of a synopsis ("members N [TIMEOUT] | ALIAS STATE [TIMEOUT]")
// and returns the words still to type of the alternatives that fit best,
// joined by " | ". A literal word (members, set) must be typed as it is
// (its start when partial); a flag word (--all) fits when that flag was
// used; a placeholder (ALIAS, [TIMEOUT]) fits any word, but HOST:PORT only
// a word with a colon; a word ending in … takes every word after it.
// Literals, flags and colons that fit make an alternative fit better.
func remainingArgs(args string, typed []string, used map[string]bool, partial bool) string {
	best, score := []string{}, -1
	for _, alt := range strings.Split(args, " | ") {
		syn := splitSynopsis(alt)
		i, sc, ok := 0, 0, true
		for j, w := range typed {
			for i < len(syn) && strings.HasPrefix(syn[i], "--") { // a flag word
				if !used[strings.TrimPrefix(syn[i], "--")] {
					ok = false
				}
				i, sc = i+1, sc+1
			}
			if !ok || i >= len(syn) {
				ok = false
				break
			}
			last := partial && j == len(typed)-1
			switch sw := syn[i]; {
			case isLiteral(sw):
				if w != sw && !(last && strings.HasPrefix(sw, w)) {
					ok = false
				}
				sc++
			case strings.Contains(sw, ":") && !strings.Contains(sw, "|"):
				if !strings.Contains(w, ":") && !last {
					ok = false
				} else if strings.Contains(w, ":") {
					sc++
				}
			}
			if strings.HasSuffix(strings.TrimSuffix(syn[i], "]"), "…") {
				i = len(syn) // it takes the rest
				continue
			}
			i++
		}
		for ok && i < len(syn) && strings.HasPrefix(syn[i], "--") && used[strings.TrimPrefix(syn[i], "--")] {
			i, sc = i+1, sc+1
		}
		if !ok {
			continue
		}
		rest := ""
		if i < len(syn) {
			rest = strings.Join(syn[i:], " ")
		}
		switch {
		case sc > score:
			best, score = []string{rest}, sc
		case sc == score:
			best = append(best, rest)
		}
	}
	best = slices.DeleteFunc(best, func(r string) bool { return r == "" })
	return strings.Join(best, " | ")
}

// isLiteral reports whether a synopsis word is typed as it is: lower case,
// not optional, not a flag.
func isLiteral(w string) bool {
	return w != "" && !strings.HasPrefix(w, "[") && !strings.HasPrefix(w, "-") && strings.ToLower(w) == w
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
	prompt func() string
	width  func() int // terminal columns
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
	used := visibleWidth(h.prompt()) + len(line)
	if cols <= 0 || used+len([]rune(hint))+2 > cols {
		return line
	}
	out := append([]rune(nil), line...)
	out = append(out, []rune("\x1b[90m"+hint+"\x1b[0m\x1b["+strconv.Itoa(len([]rune(hint)))+"D")...)
	return out
}
