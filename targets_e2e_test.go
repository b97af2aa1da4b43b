package main

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A cluster of two protocol versions built from the same code: a seed that
// speaks only protocol 1 (-tags meshell_proto1, as the release before
// version ranges), a worker and a shell that speak 1-2. Every node joins;
// the new pair talks at 2, each of them at 1 with the old seed, and the
// shell's --detailed, --json and !status say so. The same run checks
// targets (several aliases, --tag with a wildcard, !run) and a filter that
// matches nothing failing the script.
func TestTwoProtocolVersionsTargetsAndFilters(t *testing.T) {
	old := filepath.Join(t.TempDir(), "meshell-proto1")
	if out, err := exec.Command("go", "build", "-tags", "meshell_proto1", "-o", old, ".").CombinedOutput(); err != nil {
		t.Fatalf("building the protocol 1 binary: %v\n%s", err, out)
	}
	if out, err := exec.Command(old, "--version").Output(); err != nil || !strings.Contains(string(out), "speaks 1)") {
		t.Fatalf("protocol 1 build --version: %q %v", out, err)
	}
	seedPort := freePort(t)
	seed := fmt.Sprintf("127.0.0.1:%d", seedPort)
	startBinary(t, old, "", "--serve", "--alias", "v1", "-P", fmt.Sprint(seedPort), "--tags", "role=worker,gen=old", "--allow-run")
	waitListening(t, seedPort)
	start(t, "", "--serve", "--alias", "v2", "-P", "0", "--join", seed, "--tags", "role=worker,gen=new", "--allow-run")
	sh := start(t, "", "--alias", "sh", "-P", "0", "--join", seed)
	sh.feed(t, "!wait members 3 30s\n!wait v2 alive 30s\n")
	// A member is listed alive (gossip) a moment before this node's own
	// connection to it is up, and the protocol of a link exists only then.
	for i := 0; ; i++ {
		marker := fmt.Sprintf("@@probe-%d-", i)
		sh.feed(t, "!cluster_members --json --detailed\n!echo "+marker+"\n")
		sh.waitOutput(t, marker, 30*time.Second)
		before, _, _ := strings.Cut(sh.stdout.String(), marker)
		if i > 0 {
			_, before, _ = strings.Cut(before, fmt.Sprintf("@@probe-%d-", i-1))
		}
		if strings.Count(before, `"protocol"`) == 3 {
			break
		}
		if i == 300 {
			t.Fatalf("the shell never had a connection to every member:\n%s", before)
		}
		time.Sleep(100 * time.Millisecond)
	}
	sh.feed(t, strings.Join([]string{
		"!echo @@members",
		"!cluster_members --json --detailed",
		"!echo @@detailed",
		"!cluster_members --detailed",
		"!echo @@status",
		"!status --all --json",
		"!echo @@ping",
		"!ping v1 v2 --json",
		"!echo @@run",
		"!run --tag gen=* --gather -- echo hi",
		"!echo @@filtered",
		"!cluster_members --state alive --tag role=work* --json",
		"!echo @@none",
		"!cluster_members --tag gen=older",
		"!echo not reached",
	}, "\n")+"\n")
	sh.stdin.Close()
	code := sh.wait(t, 90*time.Second)
	stdout, stderr := sh.stdout.String(), sh.stderr.String()
	if code != 1 || strings.Contains(stdout, "not reached") {
		t.Fatalf("exit status %d, want 1 at the filter that matches nothing\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "!cluster_members: no member matches --tag gen=older (3 members: 3 alive)") {
		t.Errorf("stderr lacks the empty filter's error:\n%s", stderr)
	}
	section := func(name string) string {
		_, after, _ := strings.Cut(stdout, "@@"+name+"\n")
		before, _, _ := strings.Cut(after, "@@")
		return before
	}

	type proto struct{ Min, Max, Current int }
	var ms []struct {
		Alias    string `json:"alias"`
		Protocol *proto `json:"protocol"`
	}
	if err := json.Unmarshal([]byte(section("members")), &ms); err != nil {
		t.Fatalf("--json: %v\n%s", err, section("members"))
	}
	want := map[string]proto{"v1": {1, 1, 1}, "v2": {1, 2, 2}, "sh": {1, 2, 2}}
	for _, m := range ms {
		if m.Protocol == nil || *m.Protocol != want[m.Alias] {
			t.Errorf("%s: protocol %+v, want %+v", m.Alias, m.Protocol, want[m.Alias])
		}
	}
	if len(ms) != 3 {
		t.Errorf("members: %+v", ms)
	}
	for _, row := range []string{"v1", "v2"} {
		w := want[row]
		cell := fmt.Sprintf("%d (%d-%d)", w.Current, w.Min, w.Max)
		if w.Min == w.Max {
			cell = fmt.Sprintf("%d (%d)", w.Current, w.Min)
		}
		if !strings.Contains(lineOf(section("detailed"), row+" "), cell) {
			t.Errorf("--detailed row of %s lacks %q:\n%s", row, cell, section("detailed"))
		}
	}
	statuses := map[string]proto{}
	for _, l := range strings.Split(strings.TrimSpace(section("status")), "\n") {
		var st struct {
			Alias    string `json:"alias"`
			Protocol proto  `json:"protocol"`
		}
		if err := json.Unmarshal([]byte(l), &st); err != nil {
			t.Fatalf("!status --json line %q: %v", l, err)
		}
		statuses[st.Alias] = st.Protocol
	}
	for alias, w := range want {
		if statuses[alias] != w {
			t.Errorf("!status of %s: protocol %+v, want %+v", alias, statuses[alias], w)
		}
	}
	if n := strings.Count(section("ping"), `"ok":true`); n != 2 {
		t.Errorf("!ping v1 v2 answered %d ok:\n%s", n, section("ping"))
	}
	if got := section("run"); !strings.Contains(got, "v[1-2] (2)") || !strings.Contains(got, "hi") {
		t.Errorf("!run --tag gen=* --gather:\n%s", got)
	}
	if got := section("filtered"); !strings.Contains(got, `"alias":"v1"`) || !strings.Contains(got, `"alias":"v2"`) || strings.Contains(got, `"alias":"sh"`) {
		t.Errorf("--state alive --tag role=work*:\n%s", got)
	}
}

// lineOf is the first line of text that starts with prefix.
func lineOf(text, prefix string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}
