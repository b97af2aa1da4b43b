package repl

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"strings"
	"testing"

	"meshell/node"
)

// closedPort is a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

func TestAFailedJoinClusterLeavesTheNodeFree(t *testing.T) {
	n, err := node.New(testConfig(t, "j", nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	// Once started, it is in a cluster: the second failed join leaves it there.
	code, out, errs := script(t, n, "!join_cluster 127.0.0.1 "+closedPort(t)+"\n!start_cluster\n!cluster_members --json\n!join_cluster 127.0.0.1:"+closedPort(t)+"\n!cluster_members\n", true)
	lines := strings.Split(strings.TrimSpace(errs), "\n")
	if code != 1 || len(lines) != 2 || !strings.HasPrefix(lines[0], "error: line 1: !join_cluster: ") ||
		!strings.Contains(lines[0], "connection refused; this node is in no cluster: check HOST PORT") ||
		!strings.HasPrefix(lines[1], "error: line 4: !join_cluster: ") || !strings.HasSuffix(lines[1], "; this node stays in its cluster") {
		t.Fatalf("exit %d, stderr:\n%s\nwant two error lines saying where the node stands and what to do", code, errs)
	}
	before, after, _ := strings.Cut(out, "\n[")
	if !strings.Contains(before, "listening on ") || !strings.Contains(after, "j *") || !strings.Contains(after, "alive") {
		t.Fatalf("stdout:\n%s\nwant !start_cluster to listen and the last table to list j alive", out)
	}
	var ms []struct {
		Alias       string
		State       string
		Incarnation uint64
	}
	js, _, _ := strings.Cut(after, "\n")
	if err := json.Unmarshal([]byte("["+js), &ms); err != nil || len(ms) != 1 || ms[0].State != "alive" || ms[0].Incarnation != 1 {
		t.Fatalf("members after the start: %v %+v; want itself alive at incarnation 1", err, ms)
	}
}

func TestJoinClusterToItsOwnAddressSaysSo(t *testing.T) {
	port := closedPort(t)
	cfg := testConfig(t, "me", nil)
	cfg.Bind = "127.0.0.1:" + port
	n, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	code, _, errs := script(t, n, "!join_cluster 127.0.0.1 "+port+"\n!cluster_members\n", true)
	if code != 1 || !strings.Contains(errs, "127.0.0.1:"+port+" is this node's own address; give the address of another member; this node is in no cluster") ||
		strings.Contains(errs, "--alias") {
		t.Fatalf("exit %d, stderr: %s", code, errs)
	}
	if n.Running() {
		t.Fatal("the node runs after joining itself")
	}
}

// A join the user cancels (Ctrl-C), with --retry or not, says it was
// cancelled, and gives no advice about seeds or a longer --retry.
func TestCancelledJoinSaysCancelled(t *testing.T) {
	n, err := node.New(testConfig(t, "j", nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	s := New(n, Options{Out: io.Discard, Err: io.Discard})
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Ctrl-C, before the seed answered
	for _, line := range []string{"!join_cluster --retry 30s 127.0.0.1 " + closedPort(t), "!join_cluster 127.0.0.1:" + closedPort(t)} {
		err := s.Exec(ctx, line)
		if err == nil || err.Error() != "join cancelled; this node is in no cluster" {
			t.Errorf("%s, cancelled: %v", line, err)
		}
	}
	if n.Running() {
		t.Error("a cancelled join left the node in a cluster")
	}
}
