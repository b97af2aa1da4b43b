package repl

import (
	"bytes"
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"meshell/node"
)

var ansi = regexp.MustCompile("\x1b\\[[0-9;]*[A-Za-z]")

func stripANSI(s string) string { return ansi.ReplaceAllString(s, "") }

func testEntries() []node.Member {
	return []node.Member{
		{Alias: "node1", Addr: "127.0.0.1:2254", State: node.StateAlive, Incarnation: 3, Tags: map[string]string{"role": "worker", "zone": "a"}, Self: true},
		{Alias: "n2", Addr: "127.0.0.1:22550", State: node.StateSuspect, Incarnation: 12, RTT: 250 * time.Microsecond},
		{Alias: "node-three", Addr: "10.0.0.3:1", State: node.StateFailed, RTT: 1500 * time.Microsecond},
		{Alias: "x", Addr: "10.0.0.4:2254", State: node.StateLeft},
	}
}

// columnStarts returns the column at which each of the header's words
// starts, once escape codes are removed.
func columnStarts(line string, words []string) []int {
	var out []int
	at := 0
	for _, w := range words {
		i := strings.Index(line[at:], w)
		if i < 0 {
			return nil
		}
		out = append(out, len([]rune(line[:at+i])))
		at += i + len(w)
	}
	return out
}

func TestMembersTableStaysAlignedWithColour(t *testing.T) {
	entries := testEntries()
	plain := membersTable(entries, palette{on: false}, nil)
	coloured := membersTable(entries, palette{on: true}, nil)
	if plain == coloured {
		t.Fatal("colour on printed no escape codes")
	}
	for _, want := range []string{"\x1b[32malive", "\x1b[33msuspect", "\x1b[31mfailed", "\x1b[90mleft"} {
		if !strings.Contains(coloured, want) {
			t.Errorf("coloured table lacks %q:\n%q", want, coloured)
		}
	}
	if stripANSI(coloured) != plain {
		t.Fatalf("colour changed the layout:\n%s\nvs\n%s", stripANSI(coloured), plain)
	}
	lines := strings.Split(strings.TrimSuffix(stripANSI(coloured), "\n"), "\n")
	if len(lines) != 1+len(entries) {
		t.Fatalf("%d lines, want %d", len(lines), 1+len(entries))
	}
	header := columnStarts(lines[0], []string{"ALIAS", "ADDRESS", "STATE", "INC", "RTT", "TAGS"})
	for i, e := range entries {
		row := lines[i+1]
		alias := e.Alias
		if e.Self {
			alias += " *"
		}
		got := columnStarts(row, []string{alias, e.Addr, e.State.String()})
		if !reflect.DeepEqual(got, header[:3]) {
			t.Errorf("row %d %q: columns start at %v, header at %v", i, row, got, header[:3])
		}
	}
}

func TestTableAlignsUnicodeAndColouredCells(t *testing.T) {
	p := palette{on: true}
	rows := [][]string{{"µs-node", "1"}, {"a", "22"}}
	out := table([]string{"NAME", "N"}, rows, func(i, j int, cell string) string { return p.errText(cell) })
	lines := strings.Split(strings.TrimSuffix(stripANSI(out), "\n"), "\n")
	want := []string{"NAME     N", "µs-node  1", "a        22"}
	if !reflect.DeepEqual(lines, want) {
		t.Fatalf("got %q, want %q", lines, want)
	}
}

func TestMembersJSONShape(t *testing.T) {
	b, err := json.Marshal(membersJSON(testEntries()))
	if err != nil {
		t.Fatal(err)
	}
	var docs []map[string]any
	if err := json.Unmarshal(b, &docs); err != nil {
		t.Fatal(err)
	}
	if len(docs) != 4 {
		t.Fatalf("%d members", len(docs))
	}
	for _, d := range docs {
		for _, k := range []string{"alias", "addr", "state", "incarnation", "tags", "self"} { // README, JSON output
			if _, ok := d[k]; !ok {
				t.Errorf("member %v lacks %q", d, k)
			}
		}
		if _, ok := d["tags"].(map[string]any); !ok {
			t.Errorf("tags of %v is %T, want an object even when empty", d["alias"], d["tags"])
		}
	}
	first := docs[0]
	if first["alias"] != "node1" || first["addr"] != "127.0.0.1:2254" || first["state"] != "alive" ||
		first["incarnation"] != float64(3) || first["self"] != true || first["tags"].(map[string]any)["role"] != "worker" {
		t.Errorf("first member = %v", first)
	}
	if first["rtt_ms"] != nil || docs[1]["rtt_ms"] != 0.25 || docs[3]["rtt_ms"] != nil {
		t.Errorf("rtt_ms: %v %v %v, want null for this node and an unmeasured one, else milliseconds", first["rtt_ms"], docs[1]["rtt_ms"], docs[3]["rtt_ms"])
	}
	if _, ok := first["rtt_ms"]; !ok {
		t.Error("rtt_ms is left out when unmeasured, want null")
	}
	if docs[1]["state"] != "suspect" || docs[2]["state"] != "failed" || docs[3]["state"] != "left" || docs[1]["self"] != false {
		t.Errorf("states = %v %v %v", docs[1]["state"], docs[2]["state"], docs[3]["state"])
	}
	if strings.Contains(string(b), "\n") {
		t.Error("the JSON document spans several lines")
	}
}

func TestRenderPerNode(t *testing.T) {
	tests := []struct {
		name    string
		in      []NodeAnswer
		want    string
		colours []string // must appear with colour on
	}{
		{
			name: "identical answers gather into one block",
			in:   []NodeAnswer{{"n3", true, "pong"}, {"n1", true, "pong"}, {"n2", true, "pong\n"}},
			want: "------------\nn1,n2,n3 (3)\n------------\npong\n",
		},
		{
			name:    "some identical: one block per answer",
			in:      []NodeAnswer{{"n1", true, "ok"}, {"n2", false, "refused: --accept-control=false"}, {"n3", true, "ok"}},
			want:    "---------\nn1,n3 (2)\n---------\nok\n------\nn2 (1)\n------\nerror: refused: --accept-control=false\n",
			colours: []string{"\x1b[31merror: refused"},
		},
		{
			name:    "all different: prefixed lines, aligned",
			in:      []NodeAnswer{{"node10", true, "load 1\nslots 4"}, {"n2", true, "load 0"}},
			want:    "n2:     load 0\nnode10: load 1\nnode10: slots 4\n",
			colours: []string{"n2:\x1b[0m", "node10:\x1b[0m"},
		},
		{
			name: "a single answer is prefixed",
			in:   []NodeAnswer{{"n1", false, "timed out"}},
			want: "n1: error: timed out\n",
		},
		{name: "nothing", in: nil, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := renderPerNode(tt.in, palette{}); got != tt.want {
				t.Fatalf("got\n%s\nwant\n%s", got, tt.want)
			}
			col := renderPerNode(tt.in, palette{on: true})
			if stripANSI(col) != tt.want {
				t.Fatalf("colour changed the text:\n%q", col)
			}
			for _, c := range tt.colours {
				if !strings.Contains(col, c) {
					t.Errorf("coloured output lacks %q:\n%q", c, col)
				}
			}
		})
	}
}

// Up to six nodes of an answer all have colours of their own, none a
// state's colour.
func TestNodeColoursDifferAndAreNotStates(t *testing.T) {
	p := palette{on: true}
	seen := map[string]bool{}
	for i := range 6 {
		c := strings.TrimSuffix(p.node(i, "x"), "x\x1b[0m")
		for _, state := range []string{"\x1b[31m", "\x1b[32m", "\x1b[33m"} {
			if c == state {
				t.Errorf("node %d is coloured like a state: %q", i, c)
			}
		}
		if seen[c] {
			t.Errorf("node %d has the colour of an earlier one: %q", i, c)
		}
		seen[c] = true
	}
	out := renderPerNode([]NodeAnswer{{Node: "n3", OK: true, Text: "c"}, {Node: "n1", OK: true, Text: "a"}, {Node: "n2", OK: true, Text: "b"}}, p)
	var prefixes []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		prefixes = append(prefixes, l[:strings.Index(l, "n")])
	}
	if len(prefixes) != 3 || prefixes[0] == prefixes[1] || prefixes[1] == prefixes[2] || prefixes[0] == prefixes[2] {
		t.Errorf("three nodes' answers share colours: %q", out)
	}
	if (palette{}).node(0, "x") != "x" {
		t.Error("colour off still colours")
	}
}

func TestVisibleWidth(t *testing.T) {
	p := palette{on: true}
	for _, tt := range []struct {
		s    string
		want int
	}{
		{"", 0}, {"abc", 3}, {p.bold("node1") + " [" + p.state(node.StateAlive, "3 alive") + "]> ", 17}, {"µs", 2},
	} {
		if got := visibleWidth(tt.s); got != tt.want {
			t.Errorf("visibleWidth(%q) = %d, want %d", tt.s, got, tt.want)
		}
	}
}

// !help events names the keys of !events --json as it prints them.
func TestHelpEventsNamesTheJSONKeys(t *testing.T) {
	var out bytes.Buffer
	s := New(nil, Options{Out: &out, Err: &out})
	at := time.Date(2025, 6, 1, 12, 0, 0, 123456000, time.UTC)
	s.printEvent(node.Event{Kind: node.MemberSuspect, Member: node.Member{Alias: "n2", Addr: "127.0.0.1:7002", State: node.StateSuspect}, At: at, Accuser: "n3"}, true)
	var doc map[string]any
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatalf("%q: %v", out.String(), err)
	}
	help := helpFor(lookup("!events"), palette{})
	for k := range doc {
		if !strings.Contains(help, " "+k) {
			t.Errorf("!help events does not name the key %q:\n%s", k, help)
		}
	}
	if doc["time"] != "2025-06-01T12:00:00.123456Z" || !strings.Contains(help, "RFC 3339") || strings.Contains(help, "nanoseconds") {
		t.Errorf("time %v; !help events: %s", doc["time"], help)
	}
}

// A prompt too wide for its terminal is cut to the alias, then the alias
// cut, always leaving room to type.
func TestFitPrompt(t *testing.T) {
	p := palette{on: true}
	full := p.bold("averylongalias") + " [" + p.state(node.StateAlive, "3 alive") + ", " + p.state(node.StateSuspect, "1 suspect") + "]> "
	for _, tt := range []struct {
		width int
		want  string
	}{
		{0, full}, {80, full}, {30, "averylongalias> "}, {20, "avery…> "}, {5, "a…> "},
	} {
		got := fitPrompt(full, tt.width)
		if got != tt.want {
			t.Errorf("width %d: %q, want %q", tt.width, got, tt.want)
		}
		if tt.width > minTyping+4 && visibleWidth(got)+minTyping > tt.width {
			t.Errorf("width %d: %q leaves no room to type", tt.width, got)
		}
	}
}
