package node

import (
	"strings"
	"testing"
	"time"

	"meshell/protocol"
)

// waitState waits until n sees alias in state st.
func waitState(t *testing.T, n *Node, alias string, st State) {
	t.Helper()
	err := n.WaitFor(ctxFor(t, 20*time.Second), func(s *Snapshot) bool {
		e, ok := s.Get(alias)
		return ok && e.State == st
	})
	if err != nil {
		t.Fatalf("%s never saw %s %s: %+v", n.Alias(), alias, st, n.Members().Entries)
	}
}

func TestForceLeaveMarksAFailedMemberLeftEverywhere(t *testing.T) {
	key, verifier := operatorPair(t, "alice")
	a, b, c := cluster3(t, func(c *Config) { c.Operators = verifier }) // b takes signed changes only

	if _, err := a.ForceLeaveTargets("c"); err == nil || !strings.Contains(err.Error(), "c is alive") {
		t.Fatalf("force-leave of an alive member: %v, want a refusal", err)
	}
	if _, err := a.ForceLeaveTargets("a"); err == nil || !strings.Contains(err.Error(), "this node") {
		t.Fatalf("force-leave of this node: %v, want a refusal", err)
	}
	// A node that sees the member alive refuses the request too.
	if ack, _ := a.handleControl(&protocol.Control{Op: OpForceLeave, Key: "c"}, "a"); !strings.Contains(ack.Error, "c is alive here") {
		t.Fatalf("force-leave of c while a sees it alive: %q", ack.Error)
	}

	c.Close() // a crash: no goodbye
	waitState(t, a, "c", StateFailed)
	waitState(t, b, "c", StateFailed)
	targets, err := a.ForceLeaveTargets("c")
	if err != nil || strings.Join(targets, ",") != "a,b" {
		t.Fatalf("targets %v, %v; want a,b", targets, err)
	}
	req := ControlRequest{Op: OpForceLeave, Key: "c"}
	replies, err := a.Control(ctxFor(t, 10*time.Second), targets, req, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !replies[0].OK || replies[1].OK || !strings.Contains(replies[1].Error, "operators") {
		t.Fatalf("unsigned force-leave: %+v; want a ok and b refusing", replies)
	}
	a.cfg.OperatorKey = key
	replies, _ = a.Control(ctxFor(t, 10*time.Second), targets, req, 5*time.Second)
	for _, r := range replies {
		if !r.OK {
			t.Fatalf("signed force-leave: %+v", replies)
		}
	}
	for _, n := range []*Node{a, b} {
		if e, _ := n.Members().Get("c"); e.State != StateLeft {
			t.Fatalf("%s sees c %s after force-leave, want left", n.Alias(), e.State)
		}
	}
	if _, err := a.ForceLeaveTargets("c"); err == nil || !strings.Contains(err.Error(), "left already") {
		t.Fatalf("force-leave again: %v", err)
	}
}
