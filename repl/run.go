package repl

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fatih/color"

	"meshell/node"
)

// !run: one command on many nodes, answers streamed, gathered or diffed,
// as clush does. The nodes run it as a job of the run kind (node/run.go).
func init() {
	commands = append(commands, targeted(&Command{
		Name: "!run", Group: "jobs", Args: "TARGET -- CMD [ARGS…]", Min: 1, Max: -1, Dashed: true,
		Summary: "run a command on many nodes at once and gather the answers",
		Help: "CMD runs on every target node at once, without a shell (write sh -c '…' for one), with no stdin, " +
			"MESHELL_ALIAS and MESHELL_CLUSTER in its environment, in the node's working directory; nodes need --allow-run. " +
			"-- always ends the TARGET and the flags, which may come anywhere before it: CMD is every word after it. " +
			"Lines print as they come, prefixed by their node; --gather (-b) prints each distinct answer once under its nodes, " +
			"--diff the most common answer and a diff per other one, --json one line per node. " +
			"Fails when a node exits non-zero, refuses or does not answer within --timeout; Ctrl-C stops the command everywhere and prints what came back: " +
			"a node stopped before its end (Ctrl-C, --timeout) shows what it printed until then, marked cancelled or timed out, in every mode.",
		Flags: []Flag{
			{Name: "timeout", Kind: FlagDuration, Usage: "stop waiting, and kill the command, after this long (default 60s)"},
			{Name: "gather", Short: "b", Kind: FlagBool, Usage: "wait, then print each distinct answer once under its nodes (clush -b)", OneOf: "mode"},
			{Name: "diff", Kind: FlagBool, Usage: "print the most common answer, then a unified diff for each other one", OneOf: "mode"},
			oneOf(flagJSON, "mode"),
		},
		Example:  "!run --all -- uname -r\n!run --all --gather -- sh -c 'echo $MESHELL_CLUSTER'\n!run --tag role=worker --diff -- ls /\n!run worker1,worker2 --timeout 5s -- uptime",
		Complete: completeRun,
		Run:      runRun,
	}))
}

func oneOf(f Flag, group string) Flag {
	f.OneOf = group
	return f
}

// defaultRunTimeout is !run's --timeout when none is given.
const defaultRunTimeout = 60 * time.Second

// completeRun offers the TARGET's aliases until "--", then nothing: CMD
// is the user's.
func completeRun(s *Shell, prev []string) []string {
	if slices.Contains(prev, "--") {
		return nil
	}
	return completeTarget(s, prev)
}

// runMode is how !run shows its answers.
type runMode uint8

const (
	runStream runMode = iota
	runGather
	runDiff
	runJSON
)

// parseRun splits !run's words into the TARGET and the command, which
// "--" always separates: a TARGET of aliases may be several words, so only
// "--" says where the command starts, and --all and --tag keep the same
// rule. Flags may come anywhere before "--", as for every command with a
// TARGET (parseArgs).
func (s *Shell) parseRun(a *Args) (targets, argv []string, err error) {
	usage := "usage: " + cmdUsage("!run")
	if a.dashed < 0 {
		return nil, nil, fmt.Errorf("put -- before the command: %s", withDashes(a))
	}
	words, argv := a.Pos[:a.dashed], a.Pos[a.dashed:]
	if len(argv) == 0 {
		return nil, nil, fmt.Errorf("no command to run; %s", usage)
	}
	if targets, err = s.selectTargets(a, words); errors.Is(err, node.ErrNotRunning) {
		return nil, nil, err // no usage would help
	} else if err != nil {
		return nil, nil, fmt.Errorf("%w; %s", err, usage)
	}
	slices.SortFunc(targets, compareNodes)
	return targets, argv, nil
}

// withDashes is a !run typed without "--", written with it: the TARGET
// (--all, --tag, or else the first word), "--", then the rest.
func withDashes(a *Args) string {
	target, cmd := "", a.Pos
	switch tags := a.KV("tag"); {
	case a.Bool("all"):
		target = "--all"
	case len(tags) > 0:
		target = filterText(tags)
	default:
		target, cmd = a.Pos[0], a.Pos[1:]
	}
	rest := "CMD [ARGS…]"
	if len(cmd) > 0 {
		rest = strings.Join(cmd, " ")
	}
	return cleanN("!run "+target+" -- "+rest, lineCap)
}

func runRun(ctx context.Context, s *Shell, a *Args) error {
	targets, argv, err := s.parseRun(a)
	if err != nil {
		return err
	}
	if n := countTrue(a.Bool("json"), a.Bool("diff"), a.Bool("gather")); n > 1 {
		return errors.New("give one of --gather (-b), --diff and --json: each shows the answers its own way")
	}
	mode := runStream
	switch {
	case a.Bool("json"):
		mode = runJSON
	case a.Bool("diff"):
		mode = runDiff
	case a.Bool("gather"):
		mode = runGather
	}
	req := node.RunRequest{Targets: targets, Command: argv, Timeout: a.Duration("timeout", defaultRunTimeout)}
	var answered atomic.Int64
	width := 0
	colour := map[string]int{}
	for i, t := range slices.Sorted(slices.Values(targets)) {
		width = max(width, visibleWidth(clean(t)))
		colour[t] = i
	}
	prefix := func(alias string) string {
		n := clean(alias)
		return s.pal.node(colour[alias], n+":") + strings.Repeat(" ", width-visibleWidth(n)+1)
	}
	if mode == runStream {
		req.OnOutput = func(alias string, stderr bool, data string) {
			var b strings.Builder
			for _, l := range strings.Split(strings.TrimSuffix(data, "\n"), "\n") {
				b.WriteString(prefix(alias) + cleanText(l) + "\n")
			}
			if stderr {
				s.runStderr(b.String())
			} else {
				s.printf("%s", b.String())
			}
		}
		req.OnDone = func(r node.RunReply) {
			if !r.OK() {
				s.runStderr(prefix(r.Alias) + s.pal.errText(cleanN(runProblem(r), lineCap)) + "\n")
			}
		}
	} else if s.interactive {
		req.OnDone = func(node.RunReply) {
			s.setStatus(fmt.Sprintf("%d of %d nodes answered", answered.Add(1), len(targets)))
		}
	}
	start := time.Now()
	replies, err := s.Node.Run(ctx, req)
	if s.interactive && mode != runStream {
		s.setStatus("")
	}
	if err != nil {
		return err
	}
	slices.SortFunc(replies, func(x, y node.RunReply) int { return compareNodes(x.Alias, y.Alias) })
	switch mode {
	case runJSON:
		for _, r := range replies {
			if err := s.writeJSON(runDoc(r)); err != nil {
				return err
			}
		}
	case runGather:
		s.printf("%s", renderGathered(replies, s.pal))
	case runDiff:
		s.printf("%s", renderRunDiff(replies, s.pal))
	}
	sum := summarize(replies)
	if sum.failed > 0 {
		if ctx.Err() != nil {
			return fmt.Errorf("cancelled: %s", sum)
		}
		return errors.New(sum.String())
	}
	if s.interactive && mode != runJSON {
		s.printf("%s\n", s.pal.dim(fmt.Sprintf("%s ok in %s", plural(len(replies), "node"), formatLatency(time.Since(start)))))
	}
	return nil
}

// runStderr prints text (cleaned already) to the shell's stderr.
func (s *Shell) runStderr(text string) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.aboveStatus(s.errw, text)
}

// runProblem is why a node's answer is not a success, as !run shows it:
// "exit 3", "refused: …", "no answer within 60s", "cancelled before an
// answer", "error: …".
func runProblem(r node.RunReply) string {
	switch {
	case r.Exited && r.Error == "":
		return fmt.Sprintf("exit %d", r.Exit)
	case r.Exited:
		return fmt.Sprintf("exit %d: %s", r.Exit, r.Error)
	case r.Refused, r.NoAnswer && (strings.HasPrefix(r.Error, "no answer") || strings.HasPrefix(r.Error, "cancelled")):
		return r.Error
	case r.NoAnswer:
		return "no answer: " + r.Error
	}
	return "error: " + r.Error
}

// runSummary counts !run's answers by outcome.
type runSummary struct {
	total, failed                  int
	nonZero, refused, silent, errs []string
	cancelled                      []string // Ctrl-C came before their answer
	okNodes                        int
}

func summarize(replies []node.RunReply) runSummary {
	sum := runSummary{total: len(replies)}
	for _, r := range replies {
		switch {
		case r.OK():
			sum.okNodes++
			continue
		case r.Exited:
			sum.nonZero = append(sum.nonZero, r.Alias)
		case r.Refused:
			sum.refused = append(sum.refused, r.Alias)
		case r.NoAnswer && strings.HasPrefix(r.Error, "cancelled"):
			sum.cancelled = append(sum.cancelled, r.Alias)
		case r.NoAnswer:
			sum.silent = append(sum.silent, r.Alias)
		default:
			sum.errs = append(sum.errs, r.Alias)
		}
		sum.failed++
	}
	return sum
}

// String is the summary line: "2 of 4 nodes failed: 1 exited non-zero
// (n2), 1 refused (n4); 2 ok".
func (sum runSummary) String() string {
	var parts []string
	add := func(nodes []string, what string) {
		if len(nodes) > 0 {
			parts = append(parts, fmt.Sprintf("%d %s (%s)", len(nodes), what, clean(foldNodes(nodes))))
		}
	}
	add(sum.nonZero, "exited non-zero")
	add(sum.refused, "refused")
	add(sum.silent, "did not answer")
	add(sum.cancelled, "cancelled")
	add(sum.errs, "failed otherwise")
	return fmt.Sprintf("%d of %s failed: %s; %d ok", sum.failed, plural(sum.total, "node"), strings.Join(parts, ", "), sum.okNodes)
}

// runJSONDoc is one node's answer as !run --json prints it.
// A stream that is not valid UTF-8 goes as stdout_base64 or stderr_base64.
type runJSONDoc struct {
	Alias        string  `json:"alias"`
	Exit         *int    `json:"exit"` // null: the command did not run to an exit status
	Stdout       *string `json:"stdout,omitempty"`
	StdoutBase64 *string `json:"stdout_base64,omitempty"`
	Stderr       *string `json:"stderr,omitempty"`
	StderrBase64 *string `json:"stderr_base64,omitempty"`
	Ms           float64 `json:"ms"`
	Error        string  `json:"error"` // "" when it exited (any status) without another problem
}

func runDoc(r node.RunReply) runJSONDoc {
	d := runJSONDoc{Alias: r.Alias, Ms: ms(r.Latency), Error: r.Error}
	d.Stdout, d.StdoutBase64 = exactText(r.Stdout)
	d.Stderr, d.StderrBase64 = exactText(r.Stderr)
	if r.Exited {
		exit := r.Exit
		d.Exit = &exit
	}
	return d
}

// runGroup is the nodes that gave one answer.
type runGroup struct {
	nodes []string
	r     node.RunReply // the first node's reply: its output stands for all
}

// groupReplies gathers identical answers (output, exit status, problem),
// in the order of their first node.
func groupReplies(replies []node.RunReply) []*runGroup {
	var groups []*runGroup
	byKey := map[string]*runGroup{}
	for _, r := range replies {
		key := fmt.Sprintf("%t\x00%d\x00%t\x00%t\x00%s\x00%s\x00%s", r.Exited, r.Exit, r.Refused, r.NoAnswer, r.Error, r.Stdout, r.Stderr)
		g := byKey[key]
		if g == nil {
			g = &runGroup{r: r}
			byKey[key] = g
			groups = append(groups, g)
		}
		g.nodes = append(g.nodes, r.Alias)
	}
	return groups
}

// outputLines are a reply's lines: stdout, then stderr, cleaned.
func outputLines(r node.RunReply) []string {
	var out []string
	for _, text := range []string{r.Stdout, r.Stderr} {
		if text == "" {
			continue
		}
		for _, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
			out = append(out, cleanText(l))
		}
	}
	return out
}

// header is a block's title: the folded node set and its count, between rules.
func header(nodes []string, p palette) string {
	head := clean(foldNodes(nodes)) + fmt.Sprintf(" (%d)", len(nodes))
	rule := p.dim(strings.Repeat("-", min(visibleWidth(head), 60)))
	return rule + "\n" + p.bold(head) + "\n" + rule + "\n"
}

// renderGathered is !run --gather: one block per distinct answer under the
// nodes that gave it, like clush -b. Nodes that printed nothing and exited
// 0 get no block.
func renderGathered(replies []node.RunReply, p palette) string {
	var b strings.Builder
	for _, g := range groupReplies(replies) {
		lines := outputLines(g.r)
		if g.r.OK() && len(lines) == 0 {
			continue
		}
		b.WriteString(header(g.nodes, p))
		for _, l := range lines {
			b.WriteString(l + "\n")
		}
		if !g.r.OK() {
			b.WriteString(p.errText(cleanN(runProblem(g.r), lineCap)) + "\n")
		}
	}
	return b.String()
}

// renderRunDiff is !run --diff: the answer most nodes gave, then for each
// other answer a unified diff against it. An exit status other than 0 is a
// last line "[exit N]" of the text compared; nodes that did not run the
// command to its end are listed after the diffs, with what they printed
// before they were stopped.
func renderRunDiff(replies []node.RunReply, p palette) string {
	var ran, other []node.RunReply
	for _, r := range replies {
		if r.Exited {
			ran = append(ran, r)
		} else {
			other = append(other, r)
		}
	}
	var b strings.Builder
	groups := groupReplies(ran)
	if len(groups) > 0 {
		major := groups[0]
		for _, g := range groups[1:] {
			if len(g.nodes) > len(major.nodes) {
				major = g
			}
		}
		base := diffText(major.r)
		b.WriteString(header(major.nodes, p))
		for _, l := range base {
			b.WriteString(l + "\n")
		}
		for _, g := range groups {
			if g == major {
				continue
			}
			b.WriteString(p.bold("--- "+clean(foldNodes(major.nodes))+fmt.Sprintf(" (%d)", len(major.nodes))) + "\n")
			b.WriteString(p.bold("+++ "+clean(foldNodes(g.nodes))+fmt.Sprintf(" (%d)", len(g.nodes))) + "\n")
			for _, l := range unifiedDiff(base, diffText(g.r), 3) {
				switch l[0] {
				case '@':
					l = p.paint(color.FgCyan, l)
				case '-':
					l = p.errText(l)
				case '+':
					l = p.paint(color.FgGreen, l)
				}
				b.WriteString(l + "\n")
			}
		}
	}
	for _, g := range groupReplies(other) {
		b.WriteString(header(g.nodes, p))
		for _, l := range outputLines(g.r) { // what came before it was stopped
			b.WriteString(l + "\n")
		}
		b.WriteString(p.errText(cleanN(runProblem(g.r), lineCap)) + "\n")
	}
	return b.String()
}

func diffText(r node.RunReply) []string {
	lines := outputLines(r)
	if r.Exit != 0 {
		lines = append(lines, fmt.Sprintf("[exit %d]", r.Exit))
	}
	return lines
}

// maxDiffCells bounds the LCS table of one diff (lines of a × lines of b,
// once common ends are cut): beyond it the middle is shown as replaced.
const maxDiffCells = 1 << 20

// diffOp is one line of a line diff: ' ' in both, '-' only in a, '+' only in b.
type diffOp struct {
	op   byte
	line string
}

// lineDiff is a shortest edit between a and b from their longest common
// subsequence of lines (common prefix and suffix cut first).
func lineDiff(a, b []string) []diffOp {
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		suf++
	}
	var ops []diffOp
	for _, l := range a[:pre] {
		ops = append(ops, diffOp{' ', l})
	}
	am, bm := a[pre:len(a)-suf], b[pre:len(b)-suf]
	n, m := len(am), len(bm)
	if n*m > maxDiffCells {
		for _, l := range am {
			ops = append(ops, diffOp{'-', l})
		}
		for _, l := range bm {
			ops = append(ops, diffOp{'+', l})
		}
	} else {
		// lcs[i][j]: the LCS length of am[i:] and bm[j:].
		lcs := make([]int32, (n+1)*(m+1))
		at := func(i, j int) *int32 { return &lcs[i*(m+1)+j] }
		for i := n - 1; i >= 0; i-- {
			for j := m - 1; j >= 0; j-- {
				if am[i] == bm[j] {
					*at(i, j) = *at(i+1, j+1) + 1
				} else {
					*at(i, j) = max(*at(i+1, j), *at(i, j+1))
				}
			}
		}
		i, j := 0, 0
		for i < n && j < m {
			switch {
			case am[i] == bm[j]:
				ops = append(ops, diffOp{' ', am[i]})
				i++
				j++
			case *at(i+1, j) >= *at(i, j+1):
				ops = append(ops, diffOp{'-', am[i]})
				i++
			default:
				ops = append(ops, diffOp{'+', bm[j]})
				j++
			}
		}
		for ; i < n; i++ {
			ops = append(ops, diffOp{'-', am[i]})
		}
		for ; j < m; j++ {
			ops = append(ops, diffOp{'+', bm[j]})
		}
	}
	for _, l := range a[len(a)-suf:] {
		ops = append(ops, diffOp{' ', l})
	}
	return ops
}

// unifiedDiff renders the diff of a and b as unified hunks with ctx lines
// of context ("@@ -1,3 +1,4 @@" then " ", "-" and "+" lines); nothing when
// they are equal.
func unifiedDiff(a, b []string, ctx int) []string {
	ops := lineDiff(a, b)
	var out []string
	for start := 0; start < len(ops); {
		first := start
		for first < len(ops) && ops[first].op == ' ' {
			first++
		}
		if first == len(ops) {
			break
		}
		// The hunk runs to the last change followed by more than 2×ctx
		// unchanged lines (or the end).
		last := first
		for k := first; k < len(ops); k++ {
			if ops[k].op != ' ' {
				last = k
			} else if k-last > 2*ctx {
				break
			}
		}
		from, to := max(first-ctx, start), min(last+ctx+1, len(ops))
		// Line numbers of the hunk's first line in a and b.
		aLine, bLine := 1, 1
		for _, o := range ops[:from] {
			if o.op != '+' {
				aLine++
			}
			if o.op != '-' {
				bLine++
			}
		}
		aLen, bLen := 0, 0
		for _, o := range ops[from:to] {
			if o.op != '+' {
				aLen++
			}
			if o.op != '-' {
				bLen++
			}
		}
		if aLen == 0 {
			aLine--
		}
		if bLen == 0 {
			bLine--
		}
		out = append(out, fmt.Sprintf("@@ -%d,%d +%d,%d @@", aLine, aLen, bLine, bLen))
		for _, o := range ops[from:to] {
			out = append(out, string(o.op)+o.line)
		}
		start = to
	}
	return out
}

// splitAlias cuts an alias into its prefix and trailing digits ("" when it
// ends in none).
func splitAlias(a string) (prefix, digits string) {
	i := len(a)
	for i > 0 && a[i-1] >= '0' && a[i-1] <= '9' {
		i--
	}
	return a[:i], a[i:]
}

// compareNodes orders aliases naturally: n2 before n10.
func compareNodes(a, b string) int {
	pa, da := splitAlias(a)
	pb, db := splitAlias(b)
	if c := strings.Compare(pa, pb); c != 0 || da == "" || db == "" {
		if c == 0 {
			return strings.Compare(a, b)
		}
		return c
	}
	if c := len(strings.TrimLeft(da, "0")) - len(strings.TrimLeft(db, "0")); c != 0 {
		return c
	}
	if c := strings.Compare(strings.TrimLeft(da, "0"), strings.TrimLeft(db, "0")); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

// foldNodes writes a set of aliases as a clush node set: n1,n2,n3,n5,web
// becomes n[1-3,5],web. Numbers with leading zeros fold only with numbers
// of the same width (n01,n02 → n[01-02]).
func foldNodes(names []string) string {
	sorted := slices.Clone(names)
	slices.SortFunc(sorted, compareNodes)
	sorted = slices.Compact(sorted)
	var parts []string
	for i := 0; i < len(sorted); {
		prefix, digits := splitAlias(sorted[i])
		j := i + 1
		for j < len(sorted) {
			if p, d := splitAlias(sorted[j]); p != prefix || d == "" || digits == "" {
				break
			}
			j++
		}
		if digits == "" || j == i+1 {
			parts = append(parts, sorted[i])
			i = j
			continue
		}
		var ranges []string
		for k := i; k < j; {
			_, lo := splitAlias(sorted[k])
			hi := lo
			m := k + 1
			for m < j {
				_, d := splitAlias(sorted[m])
				if !consecutive(hi, d) {
					break
				}
				hi = d
				m++
			}
			if hi == lo {
				ranges = append(ranges, lo)
			} else {
				ranges = append(ranges, lo+"-"+hi)
			}
			k = m
		}
		parts = append(parts, prefix+"["+strings.Join(ranges, ",")+"]")
		i = j
	}
	return strings.Join(parts, ",")
}

// consecutive reports whether the number b follows a, and both are written
// alike (a padded number only folds with one of its width).
func consecutive(a, b string) bool {
	padded := func(s string) bool { return len(s) > 1 && s[0] == '0' }
	if (padded(a) || padded(b)) && len(a) != len(b) {
		return false
	}
	x, err1 := strconv.ParseUint(a, 10, 63)
	y, err2 := strconv.ParseUint(b, 10, 63)
	return err1 == nil && err2 == nil && y == x+1
}

// maxExpand bounds the aliases one node list expands to.
const maxExpand = 4096

// listCommas returns where the commas between a node list's elements are
// (not those inside a range's brackets), and how many brackets are left
// open at its end.
func listCommas(list string) (commas []int, depth int) {
	for i := 0; i < len(list); i++ {
		switch list[i] {
		case '[':
			depth++
		case ']':
			depth--
		case ',':
			if depth == 0 {
				commas = append(commas, i)
			}
		}
	}
	return commas, depth
}

// expandNodes reads a node list: comma-separated aliases, each possibly
// PREFIX[RANGES]SUFFIX with RANGES such as 1-3,5 or 01-10.
func expandNodes(list string) ([]string, error) {
	var out []string
	var items []string
	start := 0
	commas, _ := listCommas(list)
	for _, i := range commas {
		items = append(items, list[start:i])
		start = i + 1
	}
	items = append(items, list[start:])
	for _, it := range items {
		open := strings.IndexByte(it, '[')
		if open < 0 {
			if it == "" {
				return nil, fmt.Errorf("empty alias in node list %q", list)
			}
			out = append(out, it)
			continue
		}
		end := strings.IndexByte(it, ']')
		if end < open || strings.IndexByte(it[end+1:], '[') >= 0 {
			return nil, fmt.Errorf("%q: a node range is PREFIX[1-3,5]SUFFIX", it)
		}
		prefix, suffix := it[:open], it[end+1:]
		for _, r := range strings.Split(it[open+1:end], ",") {
			lo, hi, isRange := strings.Cut(r, "-")
			if !isRange {
				hi = lo
			}
			x, err1 := strconv.ParseUint(lo, 10, 31)
			y, err2 := strconv.ParseUint(hi, 10, 31)
			if err1 != nil || err2 != nil || y < x {
				return nil, fmt.Errorf("%q: %q is not a range such as 1-3", it, r)
			}
			if len(out)+int(y-x) >= maxExpand {
				return nil, fmt.Errorf("node list %q names more than %d nodes", list, maxExpand)
			}
			for v := x; v <= y; v++ {
				num := strconv.FormatUint(v, 10)
				if len(lo) > 1 && lo[0] == '0' && len(num) < len(lo) { // keep the padding
					num = strings.Repeat("0", len(lo)-len(num)) + num
				}
				out = append(out, prefix+num+suffix)
			}
		}
	}
	return out, nil
}
