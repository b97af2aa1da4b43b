package repl

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"meshell/node"
)

// Command is one entry of the command table: everything the shell knows
// about a command lives here.
type Command struct {
	Name    string   // with the leading "!"
	Aliases []string // other names, with "!"
	Group   string   // cluster, jobs, control, shell
	Args    string   // positional arguments, for usage
	Summary string   // one line
	Help    string   // more, for !help CMD
	Example string
	Flags   []Flag
	Rest    bool // takes a free-form tail: flags end at the first word
	// Dashed marks a command whose free-form tail follows "--" (!run's
	// CMD): flags may come anywhere before it, as for any command, and a
	// word that is no flag of the command, with no "--" after it, starts
	// the tail, so that the command can say where "--" goes.
	Dashed bool
	Min    int // positional arguments, at least
	Max    int // ... and at most; -1 = any
	// Complete returns candidates for the next positional argument; prev
	// are the positional words before it (so len(prev) is its index).
	Complete func(s *Shell, prev []string) []string
	Run      func(ctx context.Context, s *Shell, a *Args) error
	// NoHistory keeps the command out of the history file.
	NoHistory bool
	// Listing marks a command that prints a table (and takes --json, see
	// flagJSON): !watch re-runs only these.
	Listing bool
	// Target marks a command that addresses nodes by a TARGET (target.go):
	// its --all and --tag are part of TARGET in Args.
	Target bool
}

// flagJSON is the --json flag of listing commands: one JSON document per
// line, the same fields as the table's columns.
var flagJSON = Flag{Name: "json", Kind: FlagBool, Usage: "one JSON document per line"}

func (c *Command) flag(name string) *Flag {
	for i := range c.Flags {
		if f := c.Flags[i]; f.Name == name || f.Short != "" && f.Short == name {
			return &c.Flags[i]
		}
	}
	return nil
}

// Usage is the command's one-line synopsis.
func (c *Command) Usage() string {
	var b strings.Builder
	b.WriteString(c.Name)
	for i, f := range c.Flags {
		if c.Target && (f.Name == flagAll.Name || f.Name == flagTagTarget.Name) {
			continue // in TARGET
		}
		// Flags of one OneOf group, side by side, share a bracket: [--a | --b].
		joined := i > 0 && f.OneOf != "" && c.Flags[i-1].OneOf == f.OneOf
		if joined {
			b.WriteString(" | --" + f.Name)
		} else {
			b.WriteString(" [--" + f.Name)
		}
		if f.Short != "" {
			b.WriteString("|-" + f.Short)
		}
		if f.Kind != FlagBool {
			b.WriteString(" " + strings.ToUpper(flagValueName(f)))
		}
		if f.OneOf == "" || i+1 == len(c.Flags) || c.Flags[i+1].OneOf != f.OneOf {
			b.WriteString("]")
		}
		if f.Kind == FlagKV {
			b.WriteString("…")
		}
	}
	if c.Args != "" {
		b.WriteString(" " + c.Args)
	}
	return b.String()
}

func flagValueName(f Flag) string {
	switch f.Kind {
	case FlagKV:
		return "k=v"
	case FlagInt:
		return "n"
	case FlagDuration:
		return "d"
	}
	return f.Name
}

// errQuit ends the shell after a command.
var errQuit = errors.New("quit")

// Groups in the order !help lists them.
var groups = []string{"cluster", "jobs", "control", "shell"}

// commands is the table. Files that add a family of commands append to it
// from their own init.
var commands []*Command

// lookup finds a command by name or alias; the leading "!" is optional.
func lookup(name string) *Command {
	if !strings.HasPrefix(name, "!") {
		name = "!" + name
	}
	for _, c := range commands {
		if c.Name == name {
			return c
		}
		for _, a := range c.Aliases {
			if a == name {
				return c
			}
		}
	}
	return nil
}

func init() {
	jsonFlag := flagJSON
	commands = append(commands, []*Command{
		{
			Name: "!start_cluster", Group: "cluster", Args: "[HOST:PORT]", Max: 1,
			Summary: "listen for members (the first node of a cluster)",
			Help:    "Binds HOST:PORT (default: the --bind address) and prints the address other nodes join.",
			Example: "!start_cluster 127.0.0.1:7001",
			Run:     runStartCluster,
		},
		{
			Name: "!join_cluster", Group: "cluster", Args: "HOST PORT | HOST:PORT", Min: 1, Max: 2,
			Summary: "join a cluster through any of its members",
			Help: "HOST PORT or HOST:PORT is one address, its port from 1 to 65535. Listens first if needed, says Hello to the seed, then introduces itself to every member the seed names. " +
				"--retry keeps trying while nothing answers at the seed, for nodes started at the same time as it. " +
				"If the join fails, a node that was in no cluster is left in none, and a member stays in its cluster.",
			Flags:   []Flag{{Name: "retry", Kind: FlagDuration, Usage: "keep trying for up to this long while the seed cannot be reached"}},
			Example: "!join_cluster 127.0.0.1 7001\n!leave\n!join_cluster --retry 20s 127.0.0.1:7001",
			Run:     runJoinCluster,
		},
		{
			Name: "!cluster_members", Aliases: []string{"!members"}, Group: "cluster", Max: 0,
			Summary: "the membership table: alias, address, state, incarnation, RTT, tags",
			Help: "With --json: one line, a JSON array of {alias, addr, state, incarnation, tags, self, rtt_ms, protocol}. " +
				"--state and --tag keep the members that match (several --state: any of them; several --tag: all of them; " +
				"in a tag value * matches any text and ? one character); a filter that matches no member fails the command. " +
				"--detailed adds each member's protocol versions: the one spoken with this node and the range it speaks.",
			Flags: []Flag{
				{Name: "state", Kind: FlagString, Usage: "members in this state: alive, suspect, failed or left (repeatable, or comma-separated)",
					Value: func() []string { return []string{"alive", "suspect", "failed", "left"} }},
				{Name: "tag", Kind: FlagKV, Glob: true, Usage: "members carrying K=V (repeatable, all must match; * and ? in V are wildcards)"},
				{Name: "detailed", Kind: FlagBool, Usage: "add each member's protocol versions"},
				jsonFlag,
			},
			Listing: true,
			Example: "!cluster_members --json\n!cluster_members --state alive --tag role=work*\n!cluster_members --detailed",
			Run:     runMembers,
		},
		{
			Name: "!leave", Group: "cluster", Max: 0,
			Summary: "leave the cluster gracefully and keep the shell",
			Example: "!leave\n!join_cluster 127.0.0.1:7001",
			Run: func(ctx context.Context, s *Shell, a *Args) error {
				if err := s.Node.Leave(ctx); err != nil {
					return err
				}
				s.printf("left the cluster\n")
				return nil
			},
		},
		{
			Name: "!wait", Group: "cluster", Args: "members N [TIMEOUT] | ALIAS STATE [TIMEOUT]", Min: 2, Max: 3,
			Summary:  "block until N members are alive, or ALIAS is in STATE",
			Help:     "STATE is alive, suspect, failed (or dead) or left; only alive waits for a node that is not a member yet (to join). TIMEOUT defaults to 10s; Ctrl-C cancels.",
			Example:  "!wait members 3 5s\n!wait worker2 alive",
			Complete: completeWait,
			Run:      runWait,
		},
		{
			Name: "!events", Group: "cluster", Args: "[on|off]", Max: 1,
			Summary: "print membership events as they happen",
			Help: "Events appear above the prompt; what is typed stays intact. --json: one object per line, " +
				"with the keys time (RFC 3339 in UTC, to the microsecond), event, alias, addr, state, incarnation, tags and, for member-suspect, accuser.",
			Example:  "!events on\n!events off",
			Flags:    []Flag{jsonFlag},
			Complete: func(s *Shell, prev []string) []string { return []string{"on", "off"} },
			Run:      runEvents,
		},
		{
			Name: "!tag", Group: "cluster", Args: "K=V…", Min: 1, Max: -1,
			Summary: "set tags of this node (gossiped to all)",
			Help:    "K=V,K2=V2 sets several, as --tags does. The node keeps slots (!scale sets it), kinds (--kind) and boot itself.",
			Example: "!tag role=worker zone=a",
			Complete: func(s *Shell, prev []string) []string {
				return append([]string{"role=worker"}, s.tagCandidates()...)
			},
			Run: runTag,
		},
		{
			Name: "!untag", Group: "cluster", Args: "K…", Min: 1, Max: -1,
			Summary: "remove tags of this node",
			Example: "!tag zone=a\n!untag zone",
			Complete: func(s *Shell, prev []string) []string {
				keys := slices.Sorted(maps.Keys(s.Node.Self().Tags))
				return slices.DeleteFunc(keys, func(k string) bool { return node.OwnedTag(k) != nil })
			},
			Run: runUntag,
		},
		{
			Name: "!quit", Aliases: []string{"!exit"}, Group: "shell", Max: 0,
			Summary: "leave the cluster gracefully and exit",
			Help:    "Ctrl-D on an empty line does the same; Ctrl-C while leaving exits at once.",
			Example: "!quit",
			Run:     func(ctx context.Context, s *Shell, a *Args) error { return errQuit },
		},
		{
			Name: "!sleep", Group: "shell", Args: "DURATION", Min: 1, Max: 1,
			Summary: "pause (in scripts)",
			Example: "!sleep 500ms",
			Run: func(ctx context.Context, s *Shell, a *Args) error {
				d, err := parseDuration("sleep", a.Pos[0])
				if err != nil {
					return err
				}
				t := time.NewTimer(d)
				defer t.Stop()
				select {
				case <-t.C:
					return nil
				case <-ctx.Done():
					return fmt.Errorf("sleep cancelled")
				}
			},
		},
		{
			Name: "!echo", Group: "shell", Args: "TEXT", Max: -1, Rest: true,
			Summary: "print TEXT (markers in scripts)",
			Example: "!echo phase 1 done",
			Run: func(ctx context.Context, s *Shell, a *Args) error {
				// The operator's own text, printed as typed (not from the network).
				s.printf("%s\n", strings.Join(a.Pos, " "))
				return nil
			},
		},
		{
			Name: "!help", Group: "shell", Args: "[CMD]", Max: 1,
			Summary: "list commands, or show one command's usage",
			Example: "!help wait",
			Complete: func(s *Shell, prev []string) []string {
				names := commandNames()
				for _, n := range commandNames() {
					names = append(names, strings.TrimPrefix(n, "!"))
				}
				return names
			},
			Run: runHelp,
		},
	}...)
}

func commandNames() []string {
	var out []string
	for _, c := range commands {
		out = append(out, c.Name)
		out = append(out, c.Aliases...)
	}
	return out
}

func runStartCluster(ctx context.Context, s *Shell, a *Args) error {
	addr := ""
	if len(a.Pos) == 1 {
		addr = a.Pos[0]
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("%q is not HOST:PORT, e.g. 127.0.0.1:2254", addr)
		}
	}
	if s.Node.Running() {
		return fmt.Errorf("already in a cluster, listening on %s; !leave first to start another", s.Node.Addr())
	}
	adv, err := s.Node.Start(addr)
	if err != nil {
		return err
	}
	s.neverIn.Store(false)
	s.printf("listening on %s as %s (cluster %s)\n", clean(adv), clean(s.Node.Alias()), clean(s.Node.Cluster()))
	return nil
}

func runJoinCluster(ctx context.Context, s *Shell, a *Args) error {
	addr, err := joinAddr(a.Pos)
	if err != nil {
		return err
	}
	fresh := !s.Node.Running() && (len(s.Node.Members().Entries) == 0 || s.neverIn.Load())
	res, err := s.join(ctx, addr, a.Duration("retry", 0))
	if err != nil {
		s.neverIn.Store(fresh && !s.Node.Running())
		return s.joinFailed(ctx, err, a.Duration("retry", 0) > 0)
	}
	s.neverIn.Store(false)
	s.printf("joined cluster %s through %s (%s) as %s: %d live members\n", clean(s.Node.Cluster()), clean(res.Seed.Alias), clean(addr),
		clean(s.Node.Alias()), res.Members)
	if len(res.Failed) > 0 {
		s.warnf("not reached yet: %s (failure detection decides)", strings.Join(res.Failed, ", "))
	}
	return nil
}

// joinAddr reads !join_cluster's one address, HOST PORT or HOST:PORT,
// with a port from 1 to 65535.
func joinAddr(words []string) (string, error) {
	const forms = "!join_cluster takes one address: HOST PORT or HOST:PORT"
	addr, port := "", ""
	switch _, p, err := net.SplitHostPort(words[0]); {
	case len(words) == 2 && err == nil:
		return "", fmt.Errorf("%s, not %q and %q", forms, words[0], words[1])
	case len(words) == 2:
		addr, port = net.JoinHostPort(words[0], words[1]), words[1]
	case err != nil:
		return "", fmt.Errorf("%q is not HOST:PORT; %s", words[0], forms)
	default:
		addr, port = words[0], p
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return "", fmt.Errorf("port %q is not a number from 1 to 65535; %s", port, forms)
	}
	return addr, nil
}

// join joins through addr; with retry, while the seed cannot be reached
// (it may still be starting), it tries again with backoff for up to retry.
func (s *Shell) join(ctx context.Context, addr string, retry time.Duration) (node.JoinResult, error) {
	if retry <= 0 {
		jctx, cancel := context.WithTimeout(ctx, node.JoinWait)
		defer cancel()
		return s.Node.Join(jctx, addr)
	}
	return s.Node.JoinRetry(ctx, []string{addr}, node.JoinWait, node.Retry{For: retry, First: 200 * time.Millisecond, Cap: time.Second})
}

// joinFailed adds to a join's error where the node stands and, when trying
// again may work, what to check. A join the user cancelled (Ctrl-C) is
// said to be cancelled, with no advice.
func (s *Shell) joinFailed(ctx context.Context, err error, retried bool) error {
	switch {
	case errors.Is(ctx.Err(), context.Canceled) && s.Node.Running():
		return errors.New("join cancelled; this node stays in its cluster")
	case errors.Is(ctx.Err(), context.Canceled):
		return errors.New("join cancelled; this node is in no cluster")
	case s.Node.Running():
		return fmt.Errorf("%w; this node stays in its cluster", err)
	case node.Final(err):
		return fmt.Errorf("%w; this node is in no cluster (!start_cluster starts one here)", err)
	}
	retry := "--retry D"
	if retried {
		retry = "a longer --retry"
	}
	return fmt.Errorf("%w; this node is in no cluster: check HOST PORT, give a seed that is starting time with %s, or !start_cluster to start one here", err, retry)
}

// inCluster is the error of a command that shows the cluster, when this
// node is in none: before it started or joined one, or after it left.
func (s *Shell) inCluster() error {
	switch {
	case s.Node.Running():
		return nil
	case len(s.Node.Members().Entries) == 0 || s.neverIn.Load():
		return errors.New("this node is not in a cluster: run !start_cluster or !join_cluster first")
	}
	return errors.New("this node left the cluster: run !start_cluster or !join_cluster to take part again")
}

func runMembers(ctx context.Context, s *Shell, a *Args) error {
	if err := s.inCluster(); err != nil {
		return err
	}
	all := s.Node.Members().Entries
	entries, err := filterMembers(all, a)
	if err != nil {
		return err
	}
	// The protocol spoken with a live member; a departed one's connection
	// may linger a moment, but nothing is spoken with it any more.
	versions := func(e node.Member) (node.Versions, bool) {
		if !live(e.State) {
			return node.Versions{}, false
		}
		return s.Node.PeerVersions(e.Alias)
	}
	if a.Bool("json") {
		out := membersJSON(entries)
		for i := range out {
			if v, ok := versions(entries[i]); ok {
				out[i].Protocol = &protocolJSON{Min: v.Min, Max: v.Max, Current: v.Cur}
			}
		}
		s.writeJSON(out)
	} else if len(entries) > 0 {
		var proto func(e node.Member) string
		if a.Bool("detailed") {
			proto = func(e node.Member) string {
				if v, ok := versions(e); ok {
					return formatProtocol(v)
				}
				return "-"
			}
		}
		s.printf("%s", membersTable(entries, s.pal, proto))
	}
	if len(entries) == 0 && len(all) > 0 {
		return fmt.Errorf("no member matches %s (%s); !cluster_members lists every member", memberFilterText(a), stateCounts(all))
	}
	return nil
}

func completeWait(s *Shell, prev []string) []string {
	switch len(prev) {
	case 0:
		return append([]string{"members"}, s.aliases()...)
	case 1:
		return []string{"alive", "suspect", "failed", "left"}
	}
	return []string{"5s", "10s", "30s"}
}

func runWait(ctx context.Context, s *Shell, a *Args) error {
	timeout := 10 * time.Second
	if len(a.Pos) == 3 {
		d, err := parseTimeout(a.Pos[2])
		if err != nil {
			return err
		}
		timeout = d
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if a.Pos[0] == "members" {
		if err := tooLarge("!wait members", a.Pos[1]); err != nil {
			return err
		}
		want, err := strconv.Atoi(a.Pos[1])
		if err != nil || want < 1 {
			return fmt.Errorf("!wait members wants a count ≥ 1, not %q", a.Pos[1])
		}
		err = s.Node.WaitFor(ctx, func(sn *nodeSnapshot) bool { return sn.Count(node.StateAlive) >= want })
		if err != nil {
			sn := s.Node.Members()
			return fmt.Errorf("%s waiting for %d alive members: %d alive (%s)", waitErr(err, timeout), want, sn.Count(node.StateAlive), memberStates(sn))
		}
		s.printf("%s alive\n", plural(s.Node.Members().Count(node.StateAlive), "member"))
		return nil
	}
	alias := a.Pos[0]
	if err := node.ValidAlias(alias); err != nil {
		return fmt.Errorf("%w; usage: %s", err, cmdUsage("!wait"))
	}
	st, err := node.ParseState(a.Pos[1])
	if err != nil {
		return err
	}
	if _, ok := s.Node.Members().Get(alias); !ok && st != node.StateAlive {
		// Only a member becomes suspect, failed or left: waiting would
		// last the whole timeout, for a typo as for a node long gone.
		if err := s.inCluster(); err != nil {
			return err
		}
		return fmt.Errorf("no member %q: members are %s; a node that is not one cannot become %s (!wait %s alive waits for it to join)",
			alias, someOf(cleanAll(s.aliases()), 10), st, alias)
	}
	err = s.Node.WaitFor(ctx, func(sn *nodeSnapshot) bool {
		e, ok := sn.Get(alias)
		return ok && e.State == st
	})
	if err != nil {
		now := "not a member"
		if e, ok := s.Node.Members().Get(alias); ok {
			now = e.State.String()
		}
		return fmt.Errorf("%s waiting for %s to be %s: it is %s", waitErr(err, timeout), alias, st, now)
	}
	s.printf("%s %s\n", clean(alias), isState(st))
	return nil
}

// isState is "is alive", "is suspect", "has failed" or "has left".
func isState(st node.State) string {
	if st == node.StateFailed || st == node.StateLeft {
		return "has " + st.String()
	}
	return "is " + st.String()
}

// plural is "1 member", "2 members".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// cmdUsage is the usage line of a command of the table.
func cmdUsage(name string) string { return lookup(name).Usage() }

func waitErr(err error, timeout time.Duration) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out after " + timeout.String()
	}
	return "cancelled"
}

// memberStates lists the members as "n1 alive, n2 suspect".
func memberStates(sn *nodeSnapshot) string {
	var out []string
	for _, e := range sn.Entries {
		out = append(out, e.Alias+" "+e.State.String())
	}
	return strings.Join(out, ", ")
}

func runTag(ctx context.Context, s *Shell, a *Args) error {
	tags := maps.Clone(s.Node.Self().Tags)
	if tags == nil {
		tags = map[string]string{}
	}
	given := map[string]string{} // by this command
	for _, word := range a.Pos {
		kvs, err := ParseTags(word)
		if err != nil {
			return err
		}
		for _, k := range slices.Sorted(maps.Keys(kvs)) {
			if err := node.OwnedTag(k); err != nil {
				return err
			}
			if err := onceEach(given, k, kvs[k]); err != nil {
				return err
			}
			given[k] = kvs[k]
			tags[k] = kvs[k]
		}
	}
	if err := node.ValidTags(tags); err != nil {
		return err
	}
	if err := s.Node.SetTags(ctx, tags); err != nil {
		return err
	}
	s.printf("tags: %s\n", formatTags(tags))
	return nil
}

func runUntag(ctx context.Context, s *Shell, a *Args) error {
	tags := maps.Clone(s.Node.Self().Tags)
	for _, word := range a.Pos {
		for _, k := range strings.Split(word, ",") {
			if err := node.OwnedTag(k); err != nil {
				return err
			}
			if _, ok := tags[k]; !ok {
				return fmt.Errorf("this node has no tag %q (tags: %s)", k, formatTags(tags))
			}
			delete(tags, k)
		}
	}
	if err := s.Node.SetTags(ctx, tags); err != nil {
		return err
	}
	s.printf("tags: %s\n", formatTags(tags))
	return nil
}

func runEvents(ctx context.Context, s *Shell, a *Args) error {
	on := true
	if len(a.Pos) == 1 {
		switch a.Pos[0] {
		case "on":
		case "off":
			on = false
		default:
			return fmt.Errorf("!events takes on or off, not %q", a.Pos[0])
		}
	}
	s.setEvents(on, a.Bool("json"))
	if s.interactive {
		s.printf("events %s\n", map[bool]string{true: "on", false: "off"}[on])
	}
	return nil
}

func runHelp(ctx context.Context, s *Shell, a *Args) error {
	if len(a.Pos) == 1 {
		c := lookup(a.Pos[0])
		if c == nil {
			return fmt.Errorf("no command %q; !help lists them%s", a.Pos[0], suggest("!"+strings.TrimPrefix(a.Pos[0], "!")))
		}
		s.printf("%s", helpFor(c, s.pal))
		return nil
	}
	s.printf("%s", helpIndex(s.pal))
	return nil
}

// helpFor is !help CMD: usage, summary, details, aliases, flags, example.
func helpFor(c *Command, p palette) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s\n  %s\n", p.bold("usage:"), c.Usage(), c.Summary)
	if c.Help != "" {
		fmt.Fprintf(&b, "  %s\n", c.Help)
	}
	if c.Target {
		fmt.Fprintf(&b, "  %s\n", targetHelp)
	}
	if len(c.Aliases) > 0 {
		fmt.Fprintf(&b, "%s %s\n", p.bold("also:"), strings.Join(c.Aliases, ", "))
	}
	if len(c.Flags) > 0 {
		b.WriteString(p.bold("flags:") + "\n")
		for _, f := range c.Flags {
			name := "--" + f.Name
			if f.Short != "" {
				name += ", -" + f.Short
			}
			if f.Kind != FlagBool {
				name += " " + strings.ToUpper(flagValueName(f))
			}
			if f.Kind == FlagKV {
				name += "…"
			}
			fmt.Fprintf(&b, "  %-20s %s\n", name, f.Usage)
		}
	}
	if ex := examples(c); len(ex) > 0 {
		b.WriteString(p.bold("example:") + "\n")
		for _, l := range ex {
			fmt.Fprintf(&b, "  %s\n", l)
		}
	}
	return b.String()
}

// examples are the lines !help CMD shows under "example:", run in order
// (a test runs every one): the command's Example, or its bare name when it
// takes no argument.
func examples(c *Command) []string {
	switch {
	case c.Example != "":
		return strings.Split(c.Example, "\n")
	case c.Min == 0:
		return []string{c.Name}
	}
	return nil
}

// helpIndex is !help: every command by group, with its summary. Groups
// not in the list of known groups come last.
func helpIndex(p palette) string {
	order := append([]string(nil), groups...)
	for _, c := range commands {
		if !slices.Contains(order, c.Group) {
			order = append(order, c.Group)
		}
	}
	width := 0
	for _, c := range commands {
		width = max(width, len([]rune(c.Name)))
	}
	var b strings.Builder
	for _, g := range order {
		first := true
		for _, c := range commands {
			if c.Group != g {
				continue
			}
			if first {
				name := g
				if name == "" {
					name = "other"
				}
				b.WriteString(p.bold(name+":") + "\n")
				first = false
			}
			summary := c.Summary
			if len(c.Aliases) > 0 {
				summary += p.dim(" (also " + strings.Join(c.Aliases, ", ") + ")")
			}
			fmt.Fprintf(&b, "  %s  %s\n", c.Name+strings.Repeat(" ", width-len([]rune(c.Name))), summary)
		}
	}
	b.WriteString("!help CMD shows usage, flags and an example. Tab completes; Ctrl-R searches history.\n")
	return b.String()
}
