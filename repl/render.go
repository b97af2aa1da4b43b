package repl

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/chzyer/readline"
	"github.com/fatih/color"

	"meshell/node"
)

type nodeSnapshot = node.Snapshot

// palette colours text when enabled. Cells are padded before they are
// coloured, so escape codes never disturb alignment.
type palette struct{ on bool }

func (p palette) paint(attr color.Attribute, s string) string {
	if !p.on {
		return s
	}
	c := color.New(attr)
	c.EnableColor()
	return c.Sprint(s)
}

func (p palette) state(st node.State, s string) string {
	switch st {
	case node.StateAlive:
		return p.paint(color.FgGreen, s)
	case node.StateSuspect:
		return p.paint(color.FgYellow, s)
	case node.StateFailed:
		return p.paint(color.FgRed, s)
	case node.StateLeft:
		return p.paint(color.FgHiBlack, s)
	}
	return s
}

func (p palette) errText(s string) string  { return p.paint(color.FgRed, s) }
func (p palette) warnText(s string) string { return p.paint(color.FgYellow, s) }
func (p palette) dim(s string) string      { return p.paint(color.FgHiBlack, s) }
func (p palette) bold(s string) string     { return p.paint(color.Bold, s) }

// table renders rows as aligned columns; colour(i, j, padded) may colour a
// cell after it is padded. Cells must be cleaned already (see clean): the
// columns are as wide as the cleaned text.
func table(header []string, rows [][]string, colour func(row, col int, cell string) string) string {
	widths := make([]int, len(header))
	for j, h := range header {
		widths[j] = visibleWidth(h)
	}
	for _, r := range rows {
		for j, c := range r {
			widths[j] = max(widths[j], visibleWidth(c))
		}
	}
	var b strings.Builder
	line := func(i int, cells []string) {
		for j, c := range cells {
			pad := c
			if j < len(cells)-1 {
				pad = c + strings.Repeat(" ", widths[j]-visibleWidth(c)+2)
			}
			if colour != nil {
				pad = colour(i, j, pad)
			}
			b.WriteString(pad)
		}
		b.WriteString("\n")
	}
	line(-1, header)
	for i, r := range rows {
		line(i, r)
	}
	return b.String()
}

// membersTable is the members table; with proto (--detailed) a PROTOCOL
// column before TAGS holds proto(e).
func membersTable(entries []node.Member, p palette, proto func(e node.Member) string) string {
	header := []string{"ALIAS", "ADDRESS", "STATE", "INC", "RTT", "TAGS"}
	if proto != nil {
		header = slices.Insert(header, 5, "PROTOCOL")
	}
	rows := make([][]string, len(entries))
	for i, e := range entries {
		alias := clean(e.Alias)
		if e.Self {
			alias += " *"
		}
		rows[i] = []string{alias, clean(e.Addr), e.State.String(), fmt.Sprint(e.Incarnation), formatRTT(e.RTT, e.Self), formatTags(e.Tags)}
		if proto != nil {
			rows[i] = slices.Insert(rows[i], 5, proto(e))
		}
	}
	return table(header, rows, func(i, j int, cell string) string {
		switch {
		case i < 0:
			return p.bold(cell)
		case j == 2:
			return p.state(entries[i].State, cell)
		}
		return cell
	})
}

// formatLatency is the shell's one way of showing a duration measured on
// the network: µs below a millisecond, ms with two decimals below a second.
func formatLatency(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1e3)
	}
	return d.Round(time.Millisecond).String()
}

func formatRTT(d time.Duration, self bool) string {
	if self || d <= 0 {
		return "-"
	}
	return formatLatency(d)
}

// formatTags shows tags as k=v,k=v sorted by key, or "-" when there are
// none. Keys and values are cleaned; once the text reaches fieldCap runes
// the other tags are counted, not shown: …(+N tags).
func formatTags(tags map[string]string) string {
	if len(tags) == 0 {
		return "-"
	}
	keys := slices.Sorted(maps.Keys(tags))
	var b strings.Builder
	runes := 0
	for i, k := range keys {
		if runes >= fieldCap {
			fmt.Fprintf(&b, ",…(+%d tags)", len(keys)-i)
			break
		}
		if i > 0 {
			b.WriteByte(',')
		}
		kv := clean(k) + "=" + clean(tags[k])
		b.WriteString(kv)
		runes += utf8.RuneCountInString(kv) + 1
	}
	return b.String()
}

// memberJSON is the documented JSON shape of a member (DESIGN.md §3).
type memberJSON struct {
	Alias       string            `json:"alias"`
	Addr        string            `json:"addr"`
	State       string            `json:"state"`
	Incarnation uint64            `json:"incarnation"`
	Tags        map[string]string `json:"tags"`
	Self        bool              `json:"self"`
	RTTMs       *float64          `json:"rtt_ms"`             // null: not measured (this node, or no ack yet)
	Protocol    *protocolJSON     `json:"protocol,omitempty"` // absent: not connected
}

// protocolJSON is a node's protocol versions: the range it speaks and the
// version it speaks with this node.
type protocolJSON struct {
	Min     uint16 `json:"min"`
	Max     uint16 `json:"max"`
	Current uint16 `json:"current"`
}

// formatProtocol is "2 (1-2)": the version spoken with this node, then
// the range the node speaks.
func formatProtocol(v node.Versions) string { return fmt.Sprintf("%d (%s)", v.Cur, v) }

// jsonTime is the one time format of the JSON output: RFC 3339 in UTC
// with microseconds, "2025-06-01T12:00:00.123456Z".
func jsonTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z07:00") }

func membersJSON(entries []node.Member) []memberJSON {
	out := make([]memberJSON, len(entries))
	for i, e := range entries {
		tags := e.Tags
		if tags == nil {
			tags = map[string]string{}
		}
		out[i] = memberJSON{Alias: e.Alias, Addr: e.Addr, State: e.State.String(), Incarnation: e.Incarnation,
			Tags: tags, Self: e.Self}
		if !e.Self && e.RTT > 0 {
			rtt := ms(e.RTT)
			out[i].RTTMs = &rtt
		}
	}
	return out
}

// nodeColours colour the prefixes of answers from several nodes. Green,
// yellow and red are left out: they mean member states.
var nodeColours = []color.Attribute{color.FgCyan, color.FgMagenta, color.FgBlue, color.FgHiCyan, color.FgHiMagenta, color.FgHiBlue}

// node colours the name of the i-th node of an answer (in alias order):
// neighbours never share a colour, and up to six nodes all differ.
func (p palette) node(i int, s string) string {
	return p.paint(nodeColours[i%len(nodeColours)], s)
}

// NodeAnswer is one node's answer to a command sent to several nodes
// (the control plane's --all commands). Fields are raw: renderPerNode
// cleans them.
type NodeAnswer struct {
	Node string // alias
	OK   bool   // false: Text is the error, shown on one line
	Text string // may hold several lines when OK
}

// renderPerNode renders answers from several nodes. When some nodes gave
// the same answer, answers are gathered like `clush -b`: one block per
// distinct answer under the list of nodes that gave it. When every answer
// is different, each line is prefixed with its node's alias in a colour
// of its own. Errors are red. Nodes are listed in alias order. Aliases and
// each line of text are cleaned; an error's newlines are shown as \n so a
// peer cannot forge lines.
func renderPerNode(results []NodeAnswer, p palette) string {
	if len(results) == 0 {
		return ""
	}
	sorted := append([]NodeAnswer(nil), results...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Node < sorted[j].Node })
	colour := map[string]int{}
	for i, r := range sorted {
		colour[r.Node] = i
	}
	type group struct {
		ok    bool
		text  string
		nodes []string
	}
	var groups []*group
	byKey := map[string]*group{}
	for _, r := range sorted {
		text := strings.TrimRight(r.Text, "\n")
		key := fmt.Sprintf("%t\x00%s", r.OK, text)
		g := byKey[key]
		if g == nil {
			g = &group{ok: r.OK, text: text}
			byKey[key] = g
			groups = append(groups, g)
		}
		g.nodes = append(g.nodes, r.Node)
	}
	lines := func(g *group) []string {
		if !g.ok {
			return []string{cleanN(g.text, lineCap)}
		}
		ls := strings.Split(g.text, "\n")
		for i, l := range ls {
			ls[i] = cleanN(l, lineCap)
		}
		return ls
	}
	body := func(g *group, line string) string {
		if !g.ok {
			return p.errText("error: " + line)
		}
		return line
	}
	var b strings.Builder
	if len(groups) == len(sorted) && len(sorted) > 1 || len(sorted) == 1 {
		// All different: one prefixed line per line of answer.
		width := 0
		for _, r := range sorted {
			width = max(width, visibleWidth(clean(r.Node)))
		}
		for _, g := range groups {
			n := clean(g.nodes[0])
			prefix := p.node(colour[g.nodes[0]], n+":") + strings.Repeat(" ", width-visibleWidth(n)+1)
			for _, l := range lines(g) {
				b.WriteString(prefix + body(g, l) + "\n")
			}
		}
		return b.String()
	}
	for _, g := range groups {
		names := make([]string, len(g.nodes))
		plainNames := make([]string, len(g.nodes))
		for i, n := range g.nodes {
			plainNames[i] = clean(n)
			names[i] = p.node(colour[n], plainNames[i])
		}
		head := strings.Join(plainNames, ",") + fmt.Sprintf(" (%d)", len(g.nodes))
		rule := strings.Repeat("-", min(visibleWidth(head), 60))
		b.WriteString(p.dim(rule) + "\n")
		b.WriteString(strings.Join(names, ",") + p.dim(fmt.Sprintf(" (%d)", len(g.nodes))) + "\n")
		b.WriteString(p.dim(rule) + "\n")
		for _, l := range lines(g) {
			b.WriteString(body(g, l) + "\n")
		}
	}
	return b.String()
}

// printPerNode prints answers from several nodes to stdout (see
// renderPerNode). The control plane's --all commands call it.
func (s *Shell) printPerNode(results []NodeAnswer) {
	s.printf("%s", renderPerNode(results, s.pal))
}

// withoutColour is s without our colour codes (ANSI CSI sequences).
func withoutColour(s string) string {
	var b strings.Builder
	inEsc := false
	for _, r := range s {
		switch {
		case inEsc:
			inEsc = !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
		case r == 0x1b:
			inEsc = true
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// visibleWidth is the width of s on a terminal once ANSI escape sequences
// are removed: combining marks count 0 columns, CJK 2, other runes 1 (as
// readline counts them). s must be cleaned text plus our own colour codes.
func visibleWidth(s string) int {
	n := 0
	inEsc := false
	for _, r := range s {
		switch {
		case inEsc:
			if (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') {
				inEsc = false
			}
		case r == 0x1b:
			inEsc = true
		default:
			n += readline.Runes{}.Width(r)
		}
	}
	return n
}
