package repl

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"meshell/node"
)

// TARGET: the nodes a control command or !run addresses, in one of three
// forms: aliases (comma-separated, in one word or several, n[1-3] ranges),
// --all, or --tag K=V (repeatable, all must match). A command of the table
// with Target set takes the two flags; selectTargets reads all three forms.

// targetForms is TARGET spelled out, for usage lines and errors.
const targetForms = "ALIAS[,ALIAS…]… | --all | --tag K=V…"

// targetHelp is the TARGET paragraph of !help for a command with a TARGET.
const targetHelp = "TARGET is " + targetForms + ": aliases (comma-separated or several words, n[1-3,5] ranges), " +
	"every live member with --all (this node included), or the live members carrying every --tag K=V given " +
	"(in V, * matches any text and ? one character)."

var (
	flagAll       = Flag{Name: "all", Kind: FlagBool, Usage: "every live member, this node included"}
	flagTagTarget = Flag{Name: "tag", Kind: FlagKV, Glob: true, Usage: "live members carrying K=V (repeatable, all must match; * and ? in V are wildcards)"}
)

// targeted marks c as taking a TARGET: it gets --all and --tag, help
// explains the forms and completion offers live aliases.
func targeted(c *Command) *Command {
	c.Target = true
	c.Flags = append([]Flag{flagAll, flagTagTarget}, c.Flags...)
	if c.Complete == nil {
		c.Complete = completeTarget
	}
	return c
}

// completeTarget offers the live members, this node included, not named
// yet in prev (a word of which may be a list, n1,n2 or n[1-3]).
func completeTarget(s *Shell, prev []string) []string {
	var named []string
	for _, w := range prev {
		if names, err := expandNodes(w); err == nil {
			named = append(named, names...)
		} else {
			named = append(named, w)
		}
	}
	var out []string
	for _, a := range s.aliasCandidates(true) {
		if !slices.Contains(named, a) {
			out = append(out, a)
		}
	}
	return out
}

// live reports whether a member in state st can answer.
func live(st node.State) bool { return st == node.StateAlive || st == node.StateSuspect }

// selectTargets resolves a TARGET: words are the positional words that
// name nodes (none with --all or --tag). Aliases must be members that have
// not left; --all and --tag pick live members. A TARGET that picks no node
// is an error that says what to do, and so is a node in no cluster.
// countTrue counts the options given, of several that exclude each other.
func countTrue(given ...bool) int {
	n := 0
	for _, g := range given {
		if g {
			n++
		}
	}
	return n
}

func (s *Shell) selectTargets(a *Args, words []string) ([]string, error) {
	all, tags := a.Bool("all"), a.KV("tag")
	forms := countTrue(all, len(tags) > 0, len(words) > 0)
	switch {
	case forms == 0:
		return nil, fmt.Errorf("name the nodes: %s", targetForms)
	case forms > 1:
		return nil, fmt.Errorf("give aliases, --all or --tag, not several (TARGET is %s)", targetForms)
	case !s.Node.Running():
		return nil, node.ErrNotRunning // no member to pick: say why
	}
	snap := s.Node.Members()
	var out []string
	if len(words) > 0 {
		for _, w := range words {
			names, err := expandNodes(w)
			if err != nil {
				return nil, err
			}
			for _, n := range names {
				e, ok := snap.Get(n)
				switch {
				case !ok:
					hint := ""
					if n == "all" {
						hint = "; --all addresses every live member"
					}
					return nil, fmt.Errorf("no member %q: members are %s%s", n, someOf(cleanAll(s.aliases()), 10), hint)
				case e.State == node.StateLeft:
					return nil, fmt.Errorf("%s left the cluster", clean(n))
				}
				if !slices.Contains(out, n) {
					out = append(out, n)
				}
			}
		}
		return out, nil
	}
	for _, e := range snap.Entries {
		if live(e.State) && matchTags(e.Tags, tags) {
			out = append(out, e.Alias)
		}
	}
	if len(out) == 0 {
		if all {
			return nil, fmt.Errorf("no live member: !cluster_members shows who is there")
		}
		return nil, fmt.Errorf("no live member carries %s; live members carry %s", filterText(tags), s.liveTagText())
	}
	return out, nil
}

// liveTagText lists the live members' tags as "role=worker, zone=a|b".
func (s *Shell) liveTagText() string {
	tags := s.liveTags()
	if len(tags) == 0 {
		return "no tags (set some with !tag K=V)"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		parts = append(parts, clean(k)+"="+strings.Join(cleanAll(tags[k]), "|"))
	}
	return strings.Join(parts, ", ")
}

// filterText is a tag filter as typed: "role=worker zone=a*".
func filterText(f map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(f)) {
		parts = append(parts, "--tag "+k+"="+f[k])
	}
	return strings.Join(parts, " ")
}

// matchTags reports whether tags carry every key of filter with a value
// that matches its pattern (globMatch). The slots tag is matched like any
// other.
func matchTags(tags, filter map[string]string) bool {
	for k, pat := range filter {
		v, ok := tags[k]
		if !ok || !globMatch(pat, v) {
			return false
		}
	}
	return true
}

// globMatch reports whether s matches pattern, where * matches any run of
// characters (/ included) and ? any one byte. Tag values cannot hold * or
// ?, so a pattern without them is an exact value.
func globMatch(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			mark++
			p, i = star+1, mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// filterMembers keeps the entries that match !cluster_members' --state (any
// of them) and --tag (all of them) filters.
func filterMembers(entries []node.Member, a *Args) ([]node.Member, error) {
	var states []node.State
	for _, v := range a.flags["state"] {
		for _, w := range strings.Split(v, ",") {
			st, err := node.ParseState(w)
			if err != nil {
				return nil, fmt.Errorf("--state: %w", err)
			}
			states = append(states, st)
		}
	}
	tags := a.KV("tag")
	if len(states) == 0 && len(tags) == 0 {
		return entries, nil
	}
	var out []node.Member
	for _, e := range entries {
		if (len(states) == 0 || slices.Contains(states, e.State)) && matchTags(e.Tags, tags) {
			out = append(out, e)
		}
	}
	return out, nil
}

// memberFilterText is !cluster_members' filter as typed: "--state alive --tag role=worker".
func memberFilterText(a *Args) string {
	var parts []string
	for _, v := range a.flags["state"] {
		parts = append(parts, "--state "+v)
	}
	if t := filterText(a.KV("tag")); t != "" {
		parts = append(parts, t)
	}
	return strings.Join(parts, " ")
}

// stateCounts is "4 members: 3 alive, 1 left".
func stateCounts(entries []node.Member) string {
	n := map[node.State]int{}
	for _, e := range entries {
		n[e.State]++
	}
	var parts []string
	for _, st := range []node.State{node.StateAlive, node.StateSuspect, node.StateFailed, node.StateLeft} {
		if n[st] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n[st], st))
		}
	}
	return plural(len(entries), "member") + ": " + strings.Join(parts, ", ")
}

// someOf joins the first max names, and says how many there are in all
// when there are more: an error line about 200 members stays one line.
func someOf(names []string, max int) string {
	if len(names) <= max {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s, … (%d in all)", strings.Join(names[:max], ", "), len(names))
}
