package repl

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/fatih/color"

	"meshell/manager"
	"meshell/node"
	"meshell/protocol"
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

func (p palette) state(st protocol.State, s string) string {
	switch st {
	case protocol.StateAlive:
		return p.paint(color.FgGreen, s)
	case protocol.StateSuspect:
		return p.paint(color.FgYellow, s)
	case protocol.StateFailed:
		return p.paint(color.FgRed, s)
	case protocol.StateLeft:
		return p.paint(color.FgHiBlack, s)
	}
	return s
}

func (p palette) errText(s string) string  { return p.paint(color.FgRed, s) }
func (p palette) warnText(s string) string { return p.paint(color.FgYellow, s) }
func (p palette) dim(s string) string      { return p.paint(color.FgHiBlack, s) }
func (p palette) bold(s string) string     { return p.paint(color.Bold, s) }

// table renders rows as aligned columns; colour(i, j, padded) may colour a
// cell after it is padded.
func table(header []string, rows [][]string, colour func(row, col int, cell string) string) string {
	widths := make([]int, len(header))
	for j, h := range header {
		widths[j] = len(h)
	}
	for _, r := range rows {
		for j, c := range r {
			if n := len([]rune(c)); n > widths[j] {
				widths[j] = n
			}
		}
	}
	var b strings.Builder
	line := func(i int, cells []string) {
		for j, c := range cells {
			pad := c
			if j < len(cells)-1 {
				pad = c + strings.Repeat(" ", widths[j]-len([]rune(c))+2)
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

func renderMembers(entries []manager.Entry, p palette) string {
	header := []string{"ALIAS", "ADDRESS", "STATE", "INC", "RTT", "TAGS"}
	rows := make([][]string, len(entries))
	for i, e := range entries {
		alias := e.Alias
		if e.Self {
			alias += " *"
		}
		rows[i] = []string{alias, e.Addr, e.State.String(), fmt.Sprint(e.Incarnation), formatRTT(e.RTT, e.Self), formatTags(e.Tags)}
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

func formatRTT(d time.Duration, self bool) string {
	if self || d <= 0 {
		return "-"
	}
	if d < time.Millisecond {
		return fmt.Sprintf("%dµs", d.Microseconds())
	}
	return d.Round(10 * time.Microsecond).String()
}

func formatTags(tags map[string]string) string {
	if len(tags) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + tags[k]
	}
	return strings.Join(parts, ",")
}

// memberJSON is the documented JSON shape of a member (DESIGN.md §3).
type memberJSON struct {
	Alias       string            `json:"alias"`
	Addr        string            `json:"addr"`
	State       string            `json:"state"`
	Incarnation uint64            `json:"incarnation"`
	Tags        map[string]string `json:"tags"`
	Self        bool              `json:"self"`
	RTTMs       float64           `json:"rtt_ms"`
}

func membersJSON(entries []manager.Entry) []memberJSON {
	out := make([]memberJSON, len(entries))
	for i, e := range entries {
		tags := e.Tags
		if tags == nil {
			tags = map[string]string{}
		}
		out[i] = memberJSON{Alias: e.Alias, Addr: e.Addr, State: e.State.String(), Incarnation: e.Incarnation,
			Tags: tags, Self: e.Self, RTTMs: float64(e.RTT.Microseconds()) / 1000}
	}
	return out
}
