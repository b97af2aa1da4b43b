package node

import (
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"meshell/protocol"
)

// cluster3 starts a, b and c, joined and fully alive.
func cluster3(t *testing.T, opts ...testOpt) (a, b, c *Node) {
	t.Helper()
	a = startNode(t, "a")
	b = startNode(t, "b", opts...)
	c = startNode(t, "c")
	for _, n := range []*Node{b, c} {
		if _, err := n.Join(ctxFor(t, 5*time.Second), a.Addr()); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []*Node{a, b, c} {
		waitAlive(t, n, 3)
	}
	return a, b, c
}

func TestControlPingEveryNode(t *testing.T) {
	a, _, _ := cluster3(t)
	replies, err := a.Control(ctxFor(t, 10*time.Second), []string{"a", "b", "c"}, ControlRequest{Op: OpPing}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	wantPath := map[string]string{"a": "local", "b": "direct", "c": "direct"}
	for _, r := range replies {
		if !r.OK || r.NoAnswer || r.Path != wantPath[r.Alias] {
			t.Errorf("%s: %+v, want ok over %s", r.Alias, r, wantPath[r.Alias])
		}
	}
}

func TestControlStatusDescribesTheNode(t *testing.T) {
	a, _, _ := cluster3(t)
	replies, err := a.Control(ctxFor(t, 10*time.Second), []string{"b"}, ControlRequest{Op: OpStatus}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	st := replies[0].Status
	if !replies[0].OK || st == nil {
		t.Fatalf("no status: %+v", replies[0])
	}
	if st.Alias != "b" || st.MembersAlive != 3 || st.Goroutines == 0 || st.RSSBytes == 0 || st.UptimeMs < 0 {
		t.Fatalf("status of b is wrong: %+v", st)
	}
}

func TestControlRefusedWithoutAcceptControl(t *testing.T) {
	a, _, _ := cluster3(t, func(c *Config) { c.RefuseControl = true })
	for _, op := range []ControlRequest{{Op: OpShutdown}, {Op: OpRestart}, {Op: OpScale, N: 2}, {Op: OpConfig, Key: "log-level", Value: "debug"}} {
		replies, err := a.Control(ctxFor(t, 10*time.Second), []string{"b"}, op, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		r := replies[0]
		if r.OK || r.NoAnswer || !strings.Contains(r.Error, "accept-control=false") {
			t.Errorf("%s on a node that refuses control: %+v, want an explicit refusal", op.Op, r)
		}
	}
	for _, op := range []string{OpPing, OpStatus} {
		replies, _ := a.Control(ctxFor(t, 10*time.Second), []string{"b"}, ControlRequest{Op: op}, 5*time.Second)
		if !replies[0].OK {
			t.Errorf("%s refused: %+v", op, replies[0])
		}
	}
}

func TestControlNoAnswerFromADeadNode(t *testing.T) {
	a, b, _ := cluster3(t)
	b.Close() // gone without a goodbye; a still lists it until detection
	start := time.Now()
	replies, err := a.Control(ctxFor(t, 10*time.Second), []string{"b", "c"}, ControlRequest{Op: OpPing}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if replies[0].OK || !replies[0].NoAnswer {
		t.Errorf("dead node b answered: %+v", replies[0])
	}
	if !replies[1].OK {
		t.Errorf("live node c did not answer: %+v", replies[1])
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("waited %v for a 1s timeout", time.Since(start))
	}
}

// TestControlToAFailedMemberIsAnsweredAtOnce: a target held failed is not
// waited for; it is named with why.
func TestControlToAFailedMemberIsAnsweredAtOnce(t *testing.T) {
	a, b, _ := cluster3(t)
	b.Close()
	waitState(t, a, "b", StateFailed)
	start := time.Now()
	replies, err := a.Control(ctxFor(t, 10*time.Second), []string{"b", "c"}, ControlRequest{Op: OpPing}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r := replies[0]; r.OK || !r.NoAnswer || !strings.HasPrefix(r.Error, "failed here ") {
		t.Errorf("failed b: %+v, want answered from the table", r)
	}
	if !replies[1].OK {
		t.Errorf("live c: %+v", replies[1])
	}
	if d := time.Since(start); d >= 5*time.Second {
		t.Errorf("took %v: the failed member was waited for", d)
	}
}

// TestControlAckOnlyFromATarget: a request's acknowledgement counts only
// from a node it was sent to, once: acks from others or repeated ones
// cannot take a target's slot.
func TestControlAckOnlyFromATarget(t *testing.T) {
	c := newControl(nil)
	ch := c.expect(7, []string{"b", "c"})
	for range 10 {
		c.receive("evil", &protocol.ControlAck{ID: 7, Error: "forged"})
		c.receive("b", &protocol.ControlAck{ID: 7})
	}
	c.receive("c", &protocol.ControlAck{ID: 7})
	got := map[string]int{}
	for range 2 {
		got[(<-ch).from]++
	}
	if len(ch) != 0 || got["b"] != 1 || got["c"] != 1 {
		t.Fatalf("acks from %v (%d more waiting), want one from b and one from c", got, len(ch))
	}
	c.forget(7)
	c.receive("b", &protocol.ControlAck{ID: 7}) // after the request: dropped
}

func TestControlConfigSetEverywhere(t *testing.T) {
	a, b, c := cluster3(t)
	replies, err := a.Control(ctxFor(t, 10*time.Second), []string{"a", "b", "c"}, ControlRequest{Op: OpConfig, Key: "probe-interval", Value: "1500ms"}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range replies {
		if !r.OK {
			t.Fatalf("%s: %+v", r.Alias, r)
		}
	}
	for _, n := range []*Node{a, b, c} {
		if got := n.ConfigMap()["probe-interval"]; got != "1.5s" {
			t.Errorf("%s: probe-interval %s, want 1.5s", n.Alias(), got)
		}
	}
	replies, _ = a.Control(ctxFor(t, 10*time.Second), []string{"b"}, ControlRequest{Op: OpConfig, Key: "probe-interval", Value: "soon"}, 5*time.Second)
	if replies[0].OK || !strings.Contains(replies[0].Error, "duration") {
		t.Errorf("a bad value was accepted: %+v", replies[0])
	}
}

// The log level is shown as it is set: "warn", not logrus's "warning".
func TestConfigShowsLogLevelAsSet(t *testing.T) {
	n := startNode(t, "a")
	for _, lvl := range []string{"debug", "info", "warn", "error"} {
		if err := n.SetConfig("log-level", lvl); err != nil {
			t.Fatal(err)
		}
		if got := n.ConfigMap()["log-level"]; got != lvl {
			t.Errorf("set log-level %s, shown %s", lvl, got)
		}
	}
}

func TestControlRestartComesBackAtHigherIncarnation(t *testing.T) {
	a, b, _ := cluster3(t)
	before, _ := a.Members().Get("b")
	replies, err := a.Control(ctxFor(t, 10*time.Second), []string{"b"}, ControlRequest{Op: OpRestart}, 5*time.Second)
	if err != nil || !replies[0].OK {
		t.Fatalf("restart not acknowledged: %+v %v", replies, err)
	}
	err = a.WaitFor(ctxFor(t, 20*time.Second), func(s *Snapshot) bool {
		e, ok := s.Get("b")
		return ok && e.State == StateAlive && e.Incarnation > before.Incarnation
	})
	if err != nil {
		t.Fatalf("b not alive at a higher incarnation: %+v", a.Members().Entries)
	}
	if !b.Running() {
		t.Fatal("b is not running after its restart")
	}
}

func TestControlShutdownLeavesAndSignals(t *testing.T) {
	a, b, _ := cluster3(t)
	replies, err := a.Control(ctxFor(t, 10*time.Second), []string{"b"}, ControlRequest{Op: OpShutdown}, 5*time.Second)
	if err != nil || !replies[0].OK {
		t.Fatalf("shutdown not acknowledged: %+v %v", replies, err)
	}
	select {
	case <-b.ShutdownRequested():
	case <-time.After(20 * time.Second):
		t.Fatal("b never signalled its owner to exit")
	}
	err = a.WaitFor(ctxFor(t, 20*time.Second), func(s *Snapshot) bool {
		e, ok := s.Get("b")
		return ok && e.State == StateLeft
	})
	if err != nil {
		t.Fatalf("b is not left at a: %+v", a.Members().Entries)
	}
}

// Where there is no /proc, the RSS that !status shows comes from the Go
// runtime: it must not be 0, and it is of the order of the real one.
func TestRSSWithoutProc(t *testing.T) {
	got, real := goRSS(), rss()
	if got == 0 || got > 4*real+64<<20 {
		t.Fatalf("runtime-derived RSS %d bytes, /proc says %d", got, real)
	}
}

// TestControlOfItselfIsNoWarning: a restart or shutdown typed at this node
// for itself is logged at info (its answer is on the screen already); the
// same from another node is a warning.
func TestControlOfItselfIsNoWarning(t *testing.T) {
	logs, hook := logtest.NewNullLogger()
	n := startNode(t, "a", func(c *Config) { c.Log = logs })
	for _, tc := range []struct {
		from string
		want logrus.Level
	}{{"a", logrus.InfoLevel}, {"b", logrus.WarnLevel}} {
		for _, op := range []string{OpRestart, OpShutdown} {
			hook.Reset()
			n.handleControl(&protocol.Control{Op: op}, tc.from) // what it would do after is not run
			e := hook.LastEntry()
			if e == nil || e.Level != tc.want {
				t.Fatalf("%s from %s logged %+v, want one line at %s", op, tc.from, e, tc.want)
			}
		}
	}
}

// A strategy set by its abbreviation is shown by its name, so that nodes
// set with "rr" and "round-robin" are not marked as differing.
func TestConfigShowsAStrategyByItsName(t *testing.T) {
	n := startNode(t, "a")
	for set, want := range map[string]string{"rr": "round-robin", "round-robin": "round-robin", "lc": "least-connections", "rand": "random"} {
		if err := n.SetConfig("strategy", set); err != nil {
			t.Fatal(err)
		}
		if got := n.ConfigMap()["strategy"]; got != want {
			t.Errorf("set strategy %s, shown %s, want %s", set, got, want)
		}
	}
}

// A node that acknowledges a status request without its status has not
// confirmed it: it is named with why, not counted as done with no row.
func TestControlStatusWithoutAStatusIsAnError(t *testing.T) {
	var r ControlReply
	r.fill(OpStatus, &protocol.ControlAck{ID: 1})
	if r.OK || r.Error != "answered without its status" {
		t.Errorf("status acknowledged without one: %+v", r)
	}
	r = ControlReply{}
	r.fill(OpPing, &protocol.ControlAck{ID: 1})
	if !r.OK || r.Error != "" {
		t.Errorf("ping acknowledged: %+v", r)
	}
	r = ControlReply{}
	r.fill(OpStatus, &protocol.ControlAck{ID: 1, Status: &protocol.NodeStatus{Alias: "b"}})
	if !r.OK || r.Status == nil || r.Status.Alias != "b" {
		t.Errorf("status acknowledged with one: %+v", r)
	}
}

// A peer's accepted changes are logged through the rate limit: a peer that
// sends thousands of requests a second must not write as many lines.
func TestRemoteChangesAreLoggedAtARate(t *testing.T) {
	logger, hook := logtest.NewNullLogger()
	logger.SetLevel(logrus.InfoLevel)
	a, b, _ := cluster3(t, func(c *Config) { c.Log = logger })
	const requests = 50
	for i := range requests {
		v := []string{"random", "round-robin"}[i%2]
		replies, err := a.Control(ctxFor(t, 10*time.Second), []string{"b"}, ControlRequest{Op: OpConfig, Key: "strategy", Value: v}, 5*time.Second)
		if err != nil || !replies[0].OK {
			t.Fatalf("request %d: %v %+v", i, err, replies)
		}
	}
	if got := b.ConfigMap()["strategy"]; got != "round-robin" {
		t.Fatalf("strategy %s after the last request", got)
	}
	lines := 0
	for _, e := range hook.AllEntries() {
		if e.Message == "control: config set" {
			lines++
		}
	}
	// One line a period (10 s) at most; this loop takes far less unless the
	// machine stalls for minutes.
	if lines == 0 || lines > 5 {
		t.Errorf("%d requests wrote %d \"config set\" lines, want 1 (a few on a stalled machine)", requests, lines)
	}
}
