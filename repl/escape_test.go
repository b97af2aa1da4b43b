package repl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"meshell/node"
)

func TestClean(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"printable ASCII stays", "node1 10.0.0.1:2254", "node1 10.0.0.1:2254"},
		{"non-ASCII text stays", "µs-节点-é", "µs-节点-é"},
		{"ZWJ emoji stays", "👩\u200d💻", "👩\u200d💻"},
		{"OSC 0 window title", "\x1b]0;pwned\x07", `\x1b]0;pwned\x07`},
		{"OSC 52 clipboard", "\x1b]52;c;Y3VybA==\x07", `\x1b]52;c;Y3VybA==\x07`},
		{"CSI cursor up and erase line", "\x1b[1A\x1b[2K", `\x1b[1A\x1b[2K`},
		{"newline then a fake row", "n1\nn9  10.0.0.9:1  failed", `n1\nn9  10.0.0.9:1  failed`},
		{"carriage return and tab", "a\rb\tc", `a\rb\tc`},
		{"NUL and DEL", "a\x00b\x7f", `a\x00b\x7f`},
		{"C1 CSI as a rune", "\u009b2J", `\u009b2J`},
		{"lone byte 0x9b, an 8-bit CSI", "\x9b2J", `\x9b2J`},
		{"invalid UTF-8", "a\xff\xfeb\xc3", `a\xff\xfeb\xc3`},
		{"encoded surrogate is invalid UTF-8", "\xed\xa0\x80", `\xed\xa0\x80`},
		{"bidi override", "abc\u202egnp.exe", `abc\u202egnp.exe`},
		{"bidi isolates and marks", "\u2066a\u2069\u200e\u200f\u061c", `\u2066a\u2069\u200e\u200f\u061c`},
		{"line and paragraph separators", "a\u2028b\u2029", `a\u2028b\u2029`},
		{"format character above U+FFFF", "x\U000e0041", `x\U000e0041`},
		{"backslash before plain text stays", `C:\dir\file`, `C:\dir\file`},
		{"literal backslash-x is doubled", `\x1b`, `\\x1b`},
		{"literal backslash-n is doubled", `a\nb`, `a\\nb`},
		{"backslash before an escaped byte is doubled", "\\\x1b", `\\\x1b`},
		{"two backslashes", `a\\b`, `a\\\b`},
		{"trailing backslash stays", `a\`, `a\`},
		{"long field capped", strings.Repeat("A", 300), strings.Repeat("A", fieldCap) + "…(+44 bytes)"},
		{"cap does not split an escape", strings.Repeat("A", 254) + "\x1b" + strings.Repeat("Z", 50), strings.Repeat("A", 254) + "…(+51 bytes)"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := clean(tt.in); got != tt.want {
				t.Fatalf("clean(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestCleanText(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"newlines and tabs stay", "a\tb\nc\n", "a\tb\nc\n"},
		{"a forged row is escaped inside its line", "ok\r\x1b[2Kfailed\n", `ok\r\x1b[2Kfailed` + "\n"},
		{"OSC 52 in a result", "hi\x1b]52;c;Y3VybA==\x07", `hi\x1b]52;c;Y3VybA==\x07`},
		{"backslash before a newline stays single", "a\\\nb", "a\\\nb"},
		{"not capped", strings.Repeat("x", 5000), strings.Repeat("x", 5000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cleanText(tt.in); got != tt.want {
				t.Fatalf("cleanText(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestCleanCutNeverLengthens(t *testing.T) {
	A := func(n int) string { return strings.Repeat("A", n) }
	tests := []struct{ name, in, want string }{
		{"3 bytes over: whole, not 3 runes for a marker of 11", A(fieldCap + 3), A(fieldCap + 3)},
		{"12 over, the marker's 12 runes: whole", A(fieldCap + 12), A(fieldCap + 12)},
		{"13 over: cut", A(fieldCap + 13), A(fieldCap) + "…(+13 bytes)"},
		{"an escape that does not fit is shown, not cut", A(254) + "\x1bZ", A(254) + `\x1bZ`},
		{"two escapes over: whole", A(250) + "\x1b\x1b", A(250) + `\x1b\x1b`},
		{"12 four-byte runes over: whole", A(fieldCap) + strings.Repeat("😀", 12), A(fieldCap) + strings.Repeat("😀", 12)},
		{"13 four-byte runes over: cut", A(fieldCap) + strings.Repeat("😀", 13), A(fieldCap) + "…(+52 bytes)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := clean(tt.in); got != tt.want {
				t.Fatalf("clean(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
	// Every length around the cap: a cut is shorter than the whole, and a
	// value shown whole past the cap is past it by no more than a marker
	// (of at most 12 runes, "…(+48 bytes)").
	for _, unit := range []string{"A", "\x1b", "é", "😀", "\u202e", "\\x"} {
		for n := 0; n < 2*fieldCap; n++ {
			in := strings.Repeat(unit, n)
			whole := cleanN(in, 0)
			out := clean(in)
			got, all := utf8.RuneCountInString(out), utf8.RuneCountInString(whole)
			if out != whole && got >= all || out == whole && got > fieldCap+12 {
				t.Fatalf("clean of %d × %q: %d runes, %d whole: %q", n, unit, got, all, out)
			}
		}
	}
}

func TestCleanOfAHugeFieldIsSmallAndQuick(t *testing.T) {
	huge := strings.Repeat("\\", 1<<20) // worst case for the backslash look-ahead
	start := time.Now()
	out := clean(huge)
	if len(out) > 1<<10 || !strings.HasSuffix(out, fmt.Sprintf("(+%d bytes)", 1<<20-fieldCap/2)) {
		t.Fatalf("clean of 1 MiB of backslashes: %d bytes, ends %q", len(out), out[max(0, len(out)-20):])
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v", d)
	}
}

// unescape inverts escape (without a cap): it shows that the output is
// unambiguous.
func unescape(s string) (string, error) {
	var b strings.Builder
	hex := func(i, n int) (uint64, error) {
		if i+n > len(s) {
			return 0, fmt.Errorf("short escape at %d", i)
		}
		return strconv.ParseUint(s[i:i+n], 16, 32)
	}
	for i := 0; i < len(s); {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			i++
			continue
		}
		var err error
		var v uint64
		switch s[i+1] {
		case '\\':
			b.WriteByte('\\')
			i += 2
		case 'n', 'r', 't':
			b.WriteByte(map[byte]byte{'n': '\n', 'r': '\r', 't': '\t'}[s[i+1]])
			i += 2
		case 'x':
			v, err = hex(i+2, 2)
			b.WriteByte(byte(v))
			i += 4
		case 'u':
			v, err = hex(i+2, 4)
			b.WriteRune(rune(v))
			i += 6
		case 'U':
			v, err = hex(i+2, 8)
			b.WriteRune(rune(v))
			i += 10
		default:
			b.WriteByte('\\')
			i++
		}
		if err != nil {
			return "", err
		}
	}
	return b.String(), nil
}

// checkSafe fails when out holds anything a terminal could act on: ESC
// or another C0 byte but newlines (and tabs when tabs), DEL, a C1
// control, a bidi or format character, invalid UTF-8.
func checkSafe(t *testing.T, what, out string, tabs bool) {
	t.Helper()
	for i, r := range out {
		bad := r == utf8.RuneError || (mustEscape(r) && r != '\n' && !(tabs && r == '\t'))
		if bad {
			t.Fatalf("%s: unsafe %U at byte %d of %q", what, r, i, out[max(0, i-40):min(len(out), i+40)])
		}
	}
}

func FuzzClean(f *testing.F) {
	for _, s := range append(hostileStrings(), `\`, `\\`, `\x41`, "\\\n", "a\\\xff", "\\\u202e") {
		f.Add(s[:min(len(s), 256)])
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, text := range []bool{false, true} {
			out := escape(s, text, 0)
			checkSafe(t, "escape", out, text)
			if back, err := unescape(out); err != nil || back != s {
				t.Fatalf("escape(%q, %t) = %q, reads back as %q (%v)", s, text, out, back, err)
			}
		}
		if out := cleanN(s, 10); utf8.RuneCountInString(out) > 10+len("…(+0000 bytes)") ||
			utf8.RuneCountInString(out) > utf8.RuneCountInString(escape(s, false, 0)) {
			t.Fatalf("cleanN(%q, 10) = %q", s, out)
		}
	})
}

// hostileStrings are what a peer put in an alias, address, tag, status
// field, error or job result.
func hostileStrings() []string {
	return []string{
		"\x1b]0;pwned\x07",                              // OSC 0: renames the window or tmux pane
		"\x1b]52;c;Y3VybA==\x07",                        // OSC 52: sets the clipboard
		"n1\x1b[1A\x1b[2K\rn2  127.0.0.1:2  failed",     // cursor up, erase, a forged row
		"n1\nfake  10.6.6.6:1  alive  1  -  -",          // a newline and a fake row
		"abc\u202egnp.exe\u2066x\u2069",                 // bidi override and isolate
		"bad\xff\xfe\x9butf8",                           // invalid UTF-8, a lone 8-bit CSI
		"\u009b31m\u0085c1",                             // C1 controls as runes
		"\x1b]0;" + strings.Repeat("A", 1<<20) + "\x07", // 1 MiB
	}
}

// excerpt keeps failure messages short when the output is huge.
func excerpt(s string) string {
	if len(s) > 600 {
		return s[:300] + " … " + s[len(s)-300:]
	}
	return s
}

var sgr = regexp.MustCompile("\x1b\\[[0-9;]*m")

// checkRendered checks a rendering with colour off, and with colour on
// once our own colour codes are removed: safe, rows lines, each under 4 KiB.
func checkRendered(t *testing.T, what string, render func(p palette) string, rows int) {
	t.Helper()
	for _, p := range []palette{{on: false}, {on: true}} {
		out := render(p)
		checkLines(t, what, out, p.on, rows)
	}
}

// checkLines checks one output (coloured by us or not): safe, rows lines,
// each under 4 KiB.
func checkLines(t *testing.T, what, out string, coloured bool, rows int) {
	t.Helper()
	if coloured {
		out = sgr.ReplaceAllString(out, "")
	} else if strings.IndexByte(out, 0x1b) >= 0 {
		t.Fatalf("%s: ESC without colour: %q", what, excerpt(out))
	}
	checkSafe(t, what, out, false)
	if n := strings.Count(out, "\n"); n != rows {
		t.Fatalf("%s: %d lines, want %d:\n%s", what, n, rows, excerpt(out))
	}
	for _, l := range strings.Split(out, "\n") {
		if len(l) > 4<<10 {
			t.Fatalf("%s: a line of %d bytes", what, len(l))
		}
	}
}

func TestHostileTextIsRenderedSafely(t *testing.T) {
	for i, v := range hostileStrings() {
		name := []string{"OSC 0", "OSC 52", "CSI cursor up and erase", "newline and fake row", "bidi override",
			"invalid UTF-8", "C1 controls", "1 MiB field"}[i]
		t.Run(name, func(t *testing.T) {
			tags := map[string]string{v: v, "role": v}
			entries := []node.Member{
				{Alias: v, Addr: v, State: node.StateAlive, Incarnation: 2, Tags: tags, RTT: time.Millisecond},
				{Alias: "n2", Addr: "127.0.0.1:2", State: node.StateFailed, Self: true},
			}
			checkRendered(t, "members", func(p palette) string { return membersTable(entries, p, nil) }, 3)

			ev := node.Event{Kind: node.MemberJoin, Member: entries[0], At: time.Now()}
			checkRendered(t, "event", func(p palette) string { return renderEvent(ev, p) }, 1)

			ws := []node.WorkerInfo{{Alias: v, Addr: v, State: node.StateSuspect, Tags: tags, Slots: 4}}
			checkRendered(t, "workers", func(p palette) string { return renderWorkers(ws, p) }, 2)

			replies := []node.ControlReply{
				{Alias: v, OK: true, Path: "direct", Status: &node.Status{Version: v, Tags: tags, Config: tags}},
				{Alias: v + "2", OK: false, Error: "refused: " + v},
				{Alias: "n3", NoAnswer: true, Error: v},
			}
			checkRendered(t, "status", func(p palette) string { return renderStatus(replies, p) }, 2)
			checkRendered(t, "config of every node", func(p palette) string { return renderConfigAll(replies, p) }, 1+len(tags))
			answers := []NodeAnswer{{Node: v, OK: true, Text: "ok: direct"}, {Node: "n2", OK: true, Text: "ok"}, {Node: "n3", Text: v}}
			checkRendered(t, "per-node answers, all different", func(p palette) string { return renderPerNode(answers, p) }, 3)
			same := []NodeAnswer{{Node: v, Text: v}, {Node: "n2", Text: v}}
			checkRendered(t, "per-node answers, gathered", func(p palette) string { return renderPerNode(same, p) }, 4)

			recs := []node.JobRecord{{ID: 1, Kind: v, Worker: v, Attempts: 3, State: "error", Error: v}}
			checkRendered(t, "jobs", func(p palette) string { return renderJobs(recs, p) }, 2)
			checkRendered(t, "bench workers", func(p palette) string {
				return renderBenchWorkers([]benchWorker{{Alias: "n2", Jobs: 1}, {Alias: v, Jobs: 3}}, 4, p)
			}, 3)

			// A job result is free text: its own newlines stay, nothing else.
			res := node.DispatchResult{Job: 7, Worker: v, Attempts: 1, Result: v}
			for _, p := range []palette{{}, {on: true}} {
				out := sgr.ReplaceAllString(renderDispatch(res, p), "")
				checkSafe(t, "job result", out, true)
				if n := strings.Count(out, "\n"); n != 2+strings.Count(v, "\n") {
					t.Fatalf("job result: %d lines:\n%s", n, excerpt(out))
				}
			}

			// Error and warning lines: cleaned, then coloured by us.
			var buf bytes.Buffer
			s := testShell(t, &buf)
			for _, colour := range []bool{false, true} {
				s.pal = palette{on: colour}
				buf.Reset()
				s.errorLine(fmt.Errorf("dispatch: %w", errors.New("worker "+v+" refused: "+v)))
				s.warnf("not reached yet: %s", v)
				s.errorLine(controlFailure(replies)) // peers' reasons
				out := buf.String()
				if colour && !strings.HasPrefix(out, "\x1b[31merror: dispatch: worker ") {
					t.Fatalf("colour of the error line lost: %q", out[:min(len(out), 40)])
				}
				checkLines(t, "error and warning lines", out, colour, 3)
			}
		})
	}
}

func TestHostileTableStaysAligned(t *testing.T) {
	entries := []node.Member{
		{Alias: "\x1b]0;pwned\x07", Addr: "10.0.0.1:1\u202e", State: node.StateAlive},
		{Alias: "节点", Addr: "10.0.0.2:2", State: node.StateAlive},
	}
	lines := strings.Split(membersTable(entries, palette{}, nil), "\n")
	header := columnStarts(lines[0], []string{"ALIAS", "ADDRESS", "STATE"})
	for i, e := range entries {
		// The cleaned text occupies as many columns as runes, CJK two each.
		got := columnStarts(lines[i+1], []string{clean(e.Alias), clean(e.Addr), "alive"})
		width := func(k int) int { return visibleWidth(lines[i+1][:byteAt(lines[i+1], got[k])]) }
		if got == nil || width(1) != header[1] || width(2) != header[2] {
			t.Errorf("row %q: columns at %v, header at %v", lines[i+1], got, header)
		}
	}
}

// byteAt is the byte offset of the rune-th rune of s.
func byteAt(s string, rune int) int {
	for i := range s {
		if rune == 0 {
			return i
		}
		rune--
	}
	return len(s)
}

func TestCompletionLeavesOutUnsafeCandidates(t *testing.T) {
	s := testShell(t, nil)
	cmd := &Command{Name: "!testhostile", Max: 1, Complete: func(s *Shell, prev []string) []string {
		return append([]string{"node1", "role=worker", "节点"}, hostileStrings()...)
	}}
	commands = append(commands, cmd)
	t.Cleanup(func() { commands = slices.DeleteFunc(commands, func(c *Command) bool { return c == cmd }) })
	_, got := s.completions("!testhostile ")
	if want := []string{"node1", "role=worker", "节点"}; !slices.Equal(got, want) {
		t.Fatalf("completions = %q, want %q", got, want)
	}
}

// jsonLossy is what encoding/json gives back for s: each byte of invalid
// UTF-8 becomes U+FFFD (string → []rune does the same).
func jsonLossy(s string) string { return string([]rune(s)) }

func TestJSONGivesBackTheExactStrings(t *testing.T) {
	for i, v := range hostileStrings() {
		t.Run(fmt.Sprint("hostile string ", i), func(t *testing.T) {
			want := jsonLossy(v)
			tags := map[string]string{v: v}
			var buf bytes.Buffer
			s := testShell(t, &buf)
			decode := func(what string, into any) {
				t.Helper()
				out := buf.String()
				buf.Reset()
				checkSafe(t, what+" JSON", strings.TrimSuffix(out, "\n"), false)
				if strings.Count(out, "\n") != 1 {
					t.Fatalf("%s: not one line", what)
				}
				if err := json.Unmarshal([]byte(out), into); err != nil {
					t.Fatalf("%s: %v", what, err)
				}
			}

			s.writeJSON(membersJSON([]node.Member{{Alias: v, Addr: v, Tags: tags}}))
			var members []memberJSON
			decode("members", &members)
			if m := members[0]; m.Alias != want || m.Addr != want || m.Tags[want] != want {
				t.Errorf("members: got %q %q %q", m.Alias[:min(len(m.Alias), 40)], m.Addr[:min(len(m.Addr), 40)], m.Tags)
			}

			s.printEvent(node.Event{Kind: node.MemberUpdate, Member: node.Member{Alias: v, Addr: v, Tags: tags}}, true)
			var ev eventJSON
			decode("event", &ev)
			if ev.Alias != want || ev.Addr != want || ev.Tags[want] != want {
				t.Error("event: strings changed")
			}

			s.writeJSON(statusDoc(node.ControlReply{Alias: v, OK: true, Status: &node.Status{Version: v, Tags: tags, Config: tags}}))
			var st statusJSON
			decode("status", &st)
			if st.Alias != want || st.Version != want || st.Tags[want] != want || st.Config[want] != want {
				t.Error("status: strings changed")
			}
			s.writeJSON(statusDoc(node.ControlReply{Alias: v, Error: v}))
			var se nodeErrorJSON
			decode("status error", &se)
			if se.Alias != want || se.Error != want {
				t.Error("status error: strings changed")
			}

			s.writeJSON(dispatchJSON{Worker: v, Result: &v, Error: v, Chunks: []string{v, v}})
			var d dispatchJSON
			decode("dispatch", &d)
			if d.Worker != want || d.Result == nil || *d.Result != want || d.Error != want || !slices.Equal(d.Chunks, []string{want, want}) {
				t.Error("dispatch: strings changed")
			}
		})
	}
}

func TestJSONSafe(t *testing.T) {
	in := map[string]string{"a": "x\x7f\u0085\u202e\U000e0041\u200dy"}
	b, _ := json.Marshal(in)
	got := string(jsonSafe(b))
	if want := `{"a":"x\u007f\u0085\u202e\udb40\udc41` + "\u200d" + `y"}`; got != want {
		t.Fatalf("jsonSafe = %s, want %s", got, want)
	}
	var back map[string]string
	if err := json.Unmarshal([]byte(got), &back); err != nil || back["a"] != in["a"] {
		t.Fatalf("read back %q (%v)", back, err)
	}
}
