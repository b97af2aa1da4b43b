package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"meshell/node"
)

// A --join that gives up says what to check: the seed, its address and
// port, the cluster name, the key.
func TestJoinFailureSaysWhatToCheck(t *testing.T) {
	refused := errors.New("join 127.0.0.1:7001: dial tcp 127.0.0.1:7001: connect: connection refused")
	err := joinFailure(refused, false, 3, "127.0.0.1:7001", "blue", true)
	for _, want := range []string{"--join gave up after 3 rounds: join 127.0.0.1:7001: dial", "connection refused; check that a meshell node is running at 127.0.0.1:7001",
		"--bind or -P", "--cluster blue", "--key-file or MESHELL_KEY"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
	if err := joinFailure(refused, false, 1, "h:1", "c", false); !strings.HasPrefix(err.Error(), "--join gave up: join") || !strings.Contains(err.Error(), "no cluster key") {
		t.Errorf("one round, no key: %q", err)
	}
	if err := joinFailure(refused, true, 2, "h:1", "c", false); err.Error() != "--join cancelled before a seed at h:1 answered" {
		t.Errorf("cancelled: %q", err)
	}
	final := fmt.Errorf("join h:1: %w", node.ErrNotRunning)
	if err := joinFailure(final, false, 1, "h:1", "c", false); err != final {
		t.Errorf("a final error: %q, want it as it was", err)
	}
}

// Ctrl-C (SIGINT) during --join's rounds says the join was cancelled, not
// the last dial's error.
func TestCtrlCDuringJoinRoundsSaysCancelled(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGINT to send")
	}
	seed := fmt.Sprintf("127.0.0.1:%d", freePort(t)) // nothing listens there
	p := start(t, "", "-P", fmt.Sprint(freePort(t)), "--join", seed, "--retry-max", "0", "--socket", "none")
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(p.stderr.String(), "--join round 1 failed") {
		if time.Now().After(deadline) {
			t.Fatalf("no failed round in 20 s: %s", p.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	code := p.wait(t, 10*time.Second)
	errs := p.stderr.String()
	last := errs[strings.LastIndex(strings.TrimSuffix(errs, "\n"), "\n")+1:]
	if want := "error: --join cancelled before a seed at " + seed + " answered\n"; last != want || code != 1 {
		t.Errorf("exit %d, last line %q; want 1 and %q\nstderr:\n%s", code, last, want, errs)
	}
}
