package jobs

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"meshell/manager"
	"meshell/protocol"
)

func TestParseKindSpec(t *testing.T) {
	cases := []struct {
		spec string
		want DeclaredKind
		err  string
	}{
		{"echo2=/bin/echo", DeclaredKind{Name: "echo2", Command: []string{"/bin/echo"}}, ""},
		{"disk=df -h /", DeclaredKind{Name: "disk", Command: []string{"df", "-h", "/"}}, ""},
		{"render!=blender -b", DeclaredKind{Name: "render", Command: []string{"blender", "-b"}, Idempotent: true}, ""},
		{`say=sh -c 'echo "$0 $*"' said`, DeclaredKind{Name: "say", Command: []string{"sh", "-c", `echo "$0 $*"`, "said"}}, ""},
		{`path=ls "a b" c\ d`, DeclaredKind{Name: "path", Command: []string{"ls", "a b", "c d"}}, ""},
		{"x=a=b", DeclaredKind{Name: "x", Command: []string{"a=b"}}, ""},
		{"noequals", DeclaredKind{}, "want NAME=COMMAND"},
		{"empty=", DeclaredKind{}, "no command"},
		{"empty=   ", DeclaredKind{}, "no command"},
		{"run=/bin/true", DeclaredKind{}, "reserved for !run"},
		{"echo=/bin/echo", DeclaredKind{}, "echo is a kind built into every node; pick another name, such as echo2"},
		{"sleep!=sleep", DeclaredKind{}, "built into every node"},
		{"two words=/bin/true", DeclaredKind{}, "is not valid"},
		{"q=sh -c 'unterminated", DeclaredKind{}, "unterminated ' quote"},
		{`b=echo \`, DeclaredKind{}, "ends with a backslash"},
	}
	for _, c := range cases {
		t.Run(c.spec, func(t *testing.T) {
			got, err := ParseKindSpec(c.spec)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("got %+v, %v; want an error with %q", got, err, c.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %+v, %v; want %+v", got, err, c.want)
			}
		})
	}
}

func TestRunConfigChecked(t *testing.T) {
	c, err := RunConfig{Kinds: []DeclaredKind{{Name: "b", Command: []string{"sh", "-c", "true"}, Idempotent: true}, {Name: "a", Command: []string{"true"}}}}.Checked()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(c.Kinds[0].Command[0], "/") || c.Kinds[0].Command[1] != "-c" {
		t.Errorf("the program is not resolved on PATH: %v", c.Kinds[0].Command)
	}
	if v := kindsTagValue(c.Kinds); v != "a+b:idem" {
		t.Errorf("kinds tag %q, want a+b:idem", v)
	}
	for _, bad := range []struct {
		cfg  RunConfig
		want string
	}{
		{RunConfig{Kinds: []DeclaredKind{{Name: "x", Command: []string{"no-such-program-here"}}}}, "--kind x: exec: \"no-such-program-here\": executable file not found"},
		{RunConfig{Kinds: []DeclaredKind{{Name: "x", Command: []string{"true"}}, {Name: "x", Command: []string{"true"}}}}, "declared twice"},
		{RunConfig{MaxOutput: DefaultMaxOutput + 1}, "out of range"},
		{RunConfig{Kinds: manyKinds(40)}, "kinds tag that gossips them is too long"},
	} {
		if _, err := bad.cfg.Checked(); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%+v: %v, want %q", bad.cfg, err, bad.want)
		}
	}
}

func manyKinds(n int) []DeclaredKind {
	var out []DeclaredKind
	for i := range n {
		out = append(out, DeclaredKind{Name: strings.Repeat("k", 8) + string(rune('a'+i%26)) + string(rune('a'+i/26)), Command: []string{"true"}})
	}
	return out
}

func TestOffers(t *testing.T) {
	tags := map[string]string{KindsTag: "build+render:idem+x"}
	for kind, want := range map[string][2]bool{
		"build": {true, false}, "render": {true, true}, "x": {true, false}, "rend": {false, false}, "echo": {false, false},
	} {
		if d, i := offers(tags, kind); d != want[0] || i != want[1] {
			t.Errorf("offers(%s) = %v, %v; want %v", kind, d, i, want)
		}
	}
	if d, _ := offers(nil, "build"); d {
		t.Error("a worker without the kinds tag offers build")
	}
}

// TestDeclaredKindRefusesOptionArguments: a job's arguments reach a declared
// kind's command as data. One that begins with '-' is refused before
// anything runs (find DIR -name X -exec … would make the kind a shell for
// every member); plain ones run.
func TestDeclaredKindRefusesOptionArguments(t *testing.T) {
	rc, err := RunConfig{Kinds: []DeclaredKind{{Name: "mark", Command: []string{"touch"}}}}.Checked()
	if err != nil {
		t.Fatal(err)
	}
	p := &fakePeer{reading: true, notify: make(chan struct{}, 1)}
	h := &fakeHost{alias: "w", send: p.send}
	h.snap.Store(&manager.Snapshot{})
	j := New(h, Limits{}, rc)
	t.Cleanup(j.Close)
	if err := j.SetSlots(1); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	refused, ran := filepath.Join(dir, "refused"), filepath.Join(dir, "ran")
	for i, args := range [][]string{{refused, "-r", "/etc/hostname"}, {"--", refused}, {"-", refused}} {
		j.w.submit("d", &protocol.JobRequest{ID: uint64(10 + i), Kind: "mark", Args: args})
	}
	j.w.submit("d", &protocol.JobRequest{ID: 2, Kind: "mark", Args: []string{ran}})
	ms := p.waitFor(t, "four answers", func(ms []protocol.Message) bool { return len(ms) >= 4 })
	for _, m := range ms {
		r := m.(*protocol.JobResult)
		switch {
		case r.ID >= 10 && (r.Status != protocol.JobError || !strings.Contains(r.Error, "begins with '-'")):
			t.Errorf("option argument: %+v, want refused", r)
		case r.ID == 2 && r.Status != protocol.JobOK:
			t.Errorf("plain argument: %+v, want ok", r)
		}
	}
	if _, err := os.Stat(refused); err == nil {
		t.Error("a refused job ran")
	}
	if _, err := os.Stat(ran); err != nil {
		t.Errorf("the plain job did not run: %v", err)
	}
}

// primes counts exactly, at the edges of its sieve's words and at its
// largest N.
func TestPrimesCounts(t *testing.T) {
	for n, want := range map[string]string{"0": "0", "1": "0", "2": "1", "3": "2", "10": "4", "127": "31", "128": "31",
		"129": "31", "131": "32", "1000": "168", "1000000": "78498", "50000000": "3001134"} {
		got, err := kindPrimes(context.Background(), []string{n}, nil)
		if err != nil || got != want {
			t.Errorf("primes %s = %q, %v; want %s", n, got, err, want)
		}
	}
	if _, err := kindPrimes(context.Background(), []string{"50000001"}, nil); err == nil {
		t.Error("primes past its bound was run")
	}
	// A member may ask any worker for its largest N: one bit a number.
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	kindPrimes(context.Background(), []string{"50000000"}, nil)
	runtime.ReadMemStats(&after)
	if d := after.TotalAlloc - before.TotalAlloc; d > 4<<20 {
		t.Errorf("primes 50000000 allocated %d bytes, want at most 4 MiB", d)
	}
}
