//go:build linux

package main

// Faults with real processes in network namespaces, opt-in (MESHELL_SOAK=1,
// minutes each): random packet loss from iptables beside memberlist in the
// same namespaces (TestPacketLoss), and a churn soak (TestChurnSoak in
// soak_e2e_test.go). testdata/bench/soak.sh runs both.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// needSoak skips unless the long fault runs were asked for and iptables is
// there (namespaces are checked by newNetLab).
func needSoak(t *testing.T) {
	t.Helper()
	if os.Getenv("MESHELL_SOAK") != "1" {
		t.Skip("opt-in, minutes long: set MESHELL_SOAK=1 (or run testdata/bench/soak.sh)")
	}
	if os.Geteuid() != 0 {
		t.Skip("network namespaces and iptables need root: skipping")
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("iptables is not installed (apt-get install -y iptables): skipping")
	}
}

// soakDuration reads a duration from env, for shorter trial runs.
func soakDuration(t *testing.T, env string, def time.Duration) time.Duration {
	if v := os.Getenv(env); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("%s=%q: %v", env, v, err)
		}
		return d
	}
	return def
}

// drop adds (or with del, removes) a rule in namespace ns dropping packets
// of chain (INPUT or OUTPUT) at random with probability p.
func (l *netLab) drop(i int, chain string, p float64, del bool) {
	op := "-A"
	if del {
		op = "-D"
	}
	if err := sh("ip", "netns", "exec", l.hosts[i], "iptables", op, chain, "-m", "statistic", "--mode", "random",
		"--probability", fmt.Sprint(p), "-j", "DROP"); err != nil {
		l.t.Fatal(err)
	}
}

// buildMLNode builds the memberlist anchor (testdata/bench/cmd/mlnode).
func buildMLNode(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "mlnode")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/mlnode")
	cmd.Dir = "testdata/bench"
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("cannot build the memberlist anchor (%v): %s", err, b)
	}
	return out
}

// startML starts an mlnode (memberlist, meshell's lan timings) in namespace
// ns; its event lines have meshell's shape, so evNode reads them.
func startML(t *testing.T, bin, ns, alias, ip string, port int, join string) *evNode {
	t.Helper()
	args := []string{"netns", "exec", ns, bin, "--alias", alias, "--ip", ip, "--port", fmt.Sprint(port), "--config", "fast", "--quiet"}
	if join != "" {
		args = append(args, "--join", join)
	}
	p := startBinary(t, "ip", "", args...)
	return &evNode{proc: p, alias: alias, addr: fmt.Sprintf("%s:%d", ip, port)}
}

// eventsBetween counts the events of the given kinds that observers printed
// about any member in [from, to), per member.
func eventsBetween(observers []*evNode, kinds []string, from, to time.Time) map[string]int {
	out := map[string]int{}
	for _, o := range observers {
		for _, e := range o.events() {
			at, err := time.Parse(time.RFC3339Nano, e.Time)
			if err != nil || at.Before(from) || !at.Before(to) {
				continue
			}
			for _, k := range kinds {
				if e.Event == k {
					out[e.Member]++
				}
			}
		}
	}
	return out
}

// lastStates is each observer's view of each member from its events:
// alive after a join or alive event, else the event's state.
func lastStates(o *evNode) map[string]string {
	st := map[string]string{}
	for _, e := range o.events() {
		switch e.Event {
		case "member-join", "member-alive":
			st[e.Member] = "alive"
		case "member-suspect":
			st[e.Member] = "suspect"
		case "member-failed":
			st[e.Member] = "failed"
		case "member-leave":
			st[e.Member] = "left"
		case "member-reap":
			delete(st, e.Member)
		}
	}
	return st
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// fullMesh waits until every node's events say every other is alive (a
// member first heard of as suspect never gets a member-join).
func fullMesh(t *testing.T, nodes []*evNode, limit time.Duration) {
	t.Helper()
	for _, b := range nodes {
		waitAll(t, others(nodes, b), limit, b.alias+" alive", func(x *evNode) bool { return lastStates(x)[b.alias] == "alive" })
	}
}

// TestPacketLoss: 10 nodes in namespaces, 5% of packets dropped at random in
// every namespace: nobody is failed, and suspicions are counted beside
// memberlist's (same namespaces, same time, meshell's lan timings). Then 30%
// loss each way on one node's link: it may be suspected (and refute), it is
// never failed, and healthy nodes accuse nobody else; state changes per
// minute are logged. After the rules go, nobody is suspect within 5 s.
func TestPacketLoss(t *testing.T) {
	needSoak(t)
	const n = 10
	lossFor := soakDuration(t, "MESHELL_SOAK_LOSS", 2*time.Minute)
	heavyFor := soakDuration(t, "MESHELL_SOAK_HEAVY", time.Minute)
	ml := buildMLNode(t)
	lab := newNetLab(t, n)
	var ms, mls []*evNode
	for i := 0; i < n; i++ {
		join, mljoin := fmt.Sprintf("%s:%d", lab.ips[0], 7946), fmt.Sprintf("%s:%d", lab.ips[0], 7947)
		if i == 0 {
			join, mljoin = "", ""
		}
		ms = append(ms, startEvNode(t, fmt.Sprintf("n%d", i+1), fmt.Sprintf("%s:7946", lab.ips[i]), join, "ip", "netns", "exec", lab.hosts[i]))
		mls = append(mls, startML(t, ml, lab.hosts[i], fmt.Sprintf("m%d", i+1), lab.ips[i], 7947, mljoin))
		if i == 0 {
			ms[0].waitOutput(t, "listening on", 20*time.Second)
			time.Sleep(200 * time.Millisecond) // mlnode retries its join; give the seed a moment
		}
	}
	fullMesh(t, ms, 60*time.Second)
	fullMesh(t, mls, 60*time.Second)
	time.Sleep(2 * time.Second) // let the joins settle before counting

	kinds := []string{"member-suspect", "member-failed"}
	report := func(what string, from, to time.Time) (mSus, mFail, lSus, lFail map[string]int) {
		mSus = eventsBetween(ms, kinds[:1], from, to)
		mFail = eventsBetween(ms, kinds[1:], from, to)
		lSus = eventsBetween(mls, kinds[:1], from, to)
		lFail = eventsBetween(mls, kinds[1:], from, to)
		t.Logf("%s, %v: meshell %d suspect / %d failed events; memberlist-fast %d suspect / %d failed events",
			what, to.Sub(from).Round(time.Second), sum(mSus), sum(mFail), sum(lSus), sum(lFail))
		return
	}

	// 5% in every namespace, on the way in: each packet crosses one such rule.
	for i := 0; i < n; i++ {
		lab.drop(i, "INPUT", 0.05, false)
	}
	from := time.Now()
	time.Sleep(lossFor)
	to := time.Now()
	for i := 0; i < n; i++ {
		lab.drop(i, "INPUT", 0.05, true)
	}
	_, mFail, _, _ := report("5% loss in all 10 namespaces", from, to)
	if sum(mFail) != 0 {
		t.Errorf("meshell marked members failed under 5%% loss: %v", mFail)
	}
	time.Sleep(3 * time.Second)

	// 30% each way on the last node's link.
	v := n - 1
	lab.drop(v, "INPUT", 0.3, false)
	lab.drop(v, "OUTPUT", 0.3, false)
	from = time.Now()
	time.Sleep(heavyFor)
	to = time.Now()
	lab.drop(v, "INPUT", 0.3, true)
	lab.drop(v, "OUTPUT", 0.3, true)
	removed := time.Now()
	changes := []string{"member-suspect", "member-failed", "member-alive"}
	mins := to.Sub(from).Minutes()
	mCh := eventsBetween(others(ms, ms[v]), changes, from, to)
	lCh := eventsBetween(others(mls, mls[v]), changes, from, to)
	perObs := func(c map[string]int, alias string) float64 { return float64(c[alias]) / float64(n-1) / mins }
	mSus, mFail, lSus, lFail := report("30% loss each way on one node's link", from, to)
	t.Logf("30%% loss on %s: meshell %.1f state changes per observer per minute (suspect %d, failed %d); memberlist-fast %.1f (suspect %d, failed %d)",
		ms[v].alias, perObs(mCh, ms[v].alias), mSus[ms[v].alias], mFail[ms[v].alias], perObs(lCh, mls[v].alias), lSus[mls[v].alias], lFail[mls[v].alias])
	// The lossy node's own accusations of the others are expected (its
	// pings are the ones lost), and every node hears them; no one else may
	// accuse anyone but it, and no healthy node may be failed.
	var wrong []string
	heard := 0
	for _, o := range others(ms, ms[v]) {
		for _, e := range o.events() {
			at, err := time.Parse(time.RFC3339Nano, e.Time)
			if err != nil || at.Before(from) || !at.Before(to) || e.Member == ms[v].alias {
				continue
			}
			switch {
			case e.Event == "member-suspect" && e.Accuser == ms[v].alias:
				heard++
			case e.Event == "member-suspect" || e.Event == "member-failed":
				wrong = append(wrong, fmt.Sprintf("%s: %s %s by %q", o.alias, e.Event, e.Member, e.Accuser))
			}
		}
	}
	t.Logf("healthy nodes heard %s's suspicion of other healthy nodes %d times", ms[v].alias, heard)
	if len(wrong) > 0 {
		t.Errorf("with loss on %s's link only, healthy nodes were suspected or failed by healthy ones: %s", ms[v].alias, strings.Join(wrong, ", "))
	}
	own := eventsBetween(ms[v:], kinds, from, to)
	t.Logf("%s's own suspect/failed events about the others: %d", ms[v].alias, sum(own))
	// Suspected and refuted (alive again) is allowed; failed is a flap.
	if mFail[ms[v].alias] != 0 {
		t.Errorf("%s was marked failed %d times under 30%% loss: that is a flap", ms[v].alias, mFail[ms[v].alias])
	}

	// Rules removed: nobody suspect within 5 s.
	deadline := removed.Add(5 * time.Second)
	for {
		var bad []string
		for _, o := range ms {
			for m, st := range lastStates(o) {
				if st != "alive" {
					bad = append(bad, fmt.Sprintf("%s sees %s %s", o.alias, m, st))
				}
			}
		}
		if len(bad) == 0 {
			t.Logf("rules removed: every node sees every other alive after %v", time.Since(removed).Round(10*time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			sort.Strings(bad)
			t.Fatalf("5 s after the rules were removed: %s", strings.Join(bad, "; "))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
