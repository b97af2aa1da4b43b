//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// soakSlot is one of the soak's 12 nodes: its namespace, address and every
// process that ran there (a restart adds one).
type soakSlot struct {
	alias, addr string
	procs       []*evNode
}

func (s *soakSlot) cur() *evNode { return s.procs[len(s.procs)-1] }

// firstAbout returns when o first printed one of kinds about member at or
// after from, or false.
func firstAbout(o *evNode, member string, kinds []string, from time.Time) (time.Duration, bool) {
	for _, e := range o.events() {
		at, err := time.Parse(time.RFC3339Nano, e.Time)
		if err != nil || at.Before(from) || e.Member != member {
			continue
		}
		for _, k := range kinds {
			if e.Event == k {
				return at.Sub(from), true
			}
		}
	}
	return 0, false
}

// soakSample is one node's memory and goroutines at one moment.
type soakSample struct{ rss, anon, file, gor float64 }

// soakStatus asks node p for its own !status (rss_bytes and goroutines),
// and reads its private (RssAnon) and file-backed (RssFile) resident
// memory from /proc: the binary's pages, shared by every node on the host,
// are part of rss_bytes and grow as code runs for the first time.
func soakStatus(t *testing.T, p *evNode) (soakSample, bool) {
	rss, gor, ok := soakSelfStatus(t, p)
	if !ok {
		return soakSample{}, false
	}
	s := soakSample{rss: rss, gor: gor}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid)); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseFloat(f[1], 64)
				switch f[0] {
				case "RssAnon:":
					s.anon = kb * 1024
				case "RssFile:":
					s.file = kb * 1024
				}
			}
		}
	}
	return s, true
}

// soakSelfStatus asks node p for its own !status and returns rss_bytes and goroutines.
func soakSelfStatus(t *testing.T, p *evNode) (rss, gor float64, ok bool) {
	before := strings.Count(p.stdout.String(), `"goroutines"`)
	p.feed(t, "!status "+p.alias+" --json\n")
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		out := p.stdout.String()
		if strings.Count(out, `"goroutines"`) > before {
			lines := strings.Split(out, "\n")
			for i := len(lines) - 1; i >= 0; i-- {
				if strings.Contains(lines[i], `"goroutines"`) {
					var st struct {
						RSS        float64 `json:"rss_bytes"`
						Goroutines float64 `json:"goroutines"`
					}
					if json.Unmarshal([]byte(lines[i]), &st) == nil {
						return st.RSS, st.Goroutines, true
					}
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return 0, 0, false
}

// history lists an observer's events about member in the 10 s up to at:
// what led to a false mark (who accused it, at which incarnation).
func history(events []eventLine, member string, at time.Time) string {
	var b strings.Builder
	for _, e := range events {
		t, err := time.Parse(time.RFC3339Nano, e.Time)
		if err != nil || e.Member != member || t.Before(at.Add(-10*time.Second)) || t.After(at) {
			continue
		}
		fmt.Fprintf(&b, "\n  %s %s inc=%d", t.Format("15:04:05.000"), e.Event, e.Incarnation)
		if e.Accuser != "" {
			fmt.Fprintf(&b, " by=%s", e.Accuser)
		}
	}
	return b.String()
}

type durs []time.Duration

func (d durs) median() time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append(durs{}, d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func (d durs) max() time.Duration {
	var m time.Duration
	for _, x := range d {
		m = max(m, x)
	}
	return m
}

// TestChurnSoak: 12 processes in namespaces for 10 minutes (MESHELL_SOAK_CHURN),
// one event every 5 s (MESHELL_SOAK_EVERY): kill -9 and restart, SIGSTOP and
// SIGCONT, !leave and !join_cluster, a partition of 2 nodes from the rest.
// Checked throughout: a crash is failed everywhere within 1 s, a restart
// alive everywhere within 1 s, no running unpaused member reachable from
// its observer is ever marked failed, and every table agrees (all alive)
// within 2 s of the end of each event. Nodes 1–6 are never killed, so their
// RSS and goroutines can be compared from minute 2 to the end (within 10%).
func TestChurnSoak(t *testing.T) {
	needSoak(t)
	const n, longLived = 12, 6
	total := soakDuration(t, "MESHELL_SOAK_CHURN", 10*time.Minute)
	every := soakDuration(t, "MESHELL_SOAK_EVERY", 5*time.Second)
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	t.Logf("seed %d", seed)
	lab := newNetLab(t, n)
	slots := make([]*soakSlot, n)
	startAt := func(i int, join string) *evNode {
		p := startEvNode(t, slots[i].alias, slots[i].addr, join, "ip", "netns", "exec", lab.hosts[i])
		slots[i].procs = append(slots[i].procs, p)
		return p
	}
	for i := range slots {
		slots[i] = &soakSlot{alias: fmt.Sprintf("s%02d", i+1), addr: fmt.Sprintf("%s:7946", lab.ips[i])}
		join := slots[0].addr
		if i == 0 {
			join = ""
		}
		p := startAt(i, join)
		if i == 0 {
			p.waitOutput(t, "listening on", 20*time.Second)
		}
	}
	var cur []*evNode
	for _, s := range slots {
		cur = append(cur, s.cur())
	}
	fullMesh(t, cur, 60*time.Second)

	var spans []downSpan
	type act struct {
		at   time.Time
		what string
	}
	var acts []act
	before := func(at time.Time) string { // the events just before at, for a violation's context
		var out []string
		for _, a := range acts {
			if a.at.Before(at) && a.at.After(at.Add(-10*time.Second)) {
				out = append(out, a.at.Format("15:04:05.000")+" "+a.what)
			}
		}
		return strings.Join(out, ", ")
	}
	var (
		failLat, aliveLat, agreeLat, pauseBack, leaveBack, healBack durs
		violations                                                  []string
		counts                                                      = map[string]int{}
	)
	violate := func(format string, args ...any) {
		v := fmt.Sprintf("%s: ", time.Now().Format("15:04:05.000")) + fmt.Sprintf(format, args...)
		violations = append(violations, v)
		t.Log("violation: " + v)
	}
	observers := func(skip ...int) []*evNode {
		var out []*evNode
	next:
		for i, s := range slots {
			for _, k := range skip {
				if i == k {
					continue next
				}
			}
			out = append(out, s.cur())
		}
		return out
	}
	// everyone waits until every observer's first event of kinds about
	// slot v after from, within limit; it returns the slowest time, and
	// who took it, and who had no such event.
	everyone := func(obs []*evNode, v int, kinds []string, from time.Time, limit time.Duration) (time.Duration, string, []string) {
		deadline := from.Add(limit + 2*time.Second) // events are stamped when they happen; give printing a moment
		for {
			var worst time.Duration
			var slowest string
			var missing []string
			for _, o := range obs {
				d, ok := firstAbout(o, slots[v].alias, kinds, from)
				if !ok {
					missing = append(missing, o.alias)
				}
				if d > worst {
					worst, slowest = d, o.alias
				}
			}
			if len(missing) == 0 || time.Now().After(deadline) {
				return worst, slowest, missing
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// agree waits until every node sees every other alive; how long it took.
	agree := func(from time.Time, limit time.Duration) (time.Duration, bool) {
		deadline := from.Add(limit)
		for {
			good := true
			for _, o := range observers() {
				st := lastStates(o)
				for _, s := range slots {
					if s.alias != o.alias && st[s.alias] != "alive" {
						good = false
					}
				}
			}
			if good {
				return time.Since(from), true
			}
			if time.Now().After(deadline) {
				return time.Since(from), false
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	samples := map[int][]soakSample{} // per long-lived slot, at each whole minute
	began := time.Now()
	nextSample := time.Duration(0)
	last := -1
	for time.Since(began) < total {
		if el := time.Since(began); el >= nextSample {
			for i := 0; i < longLived; i++ {
				if s, ok := soakStatus(t, slots[i].cur()); ok {
					samples[i] = append(samples[i], s)
				}
			}
			nextSample += time.Minute
		}
		t0 := time.Now()
		kind := []string{"crash", "pause", "leave", "partition"}[rng.Intn(4)]
		v := rng.Intn(n)
		for v == last || kind == "crash" && v < longLived {
			v = rng.Intn(n)
		}
		last = v
		counts[kind]++
		acts = append(acts, act{t0, kind + " " + slots[v].alias})
		obs := observers(v)
		var end time.Time
		switch kind {
		case "crash":
			old := slots[v].cur()
			old.cmd.Process.Kill()
			<-old.done
			worst, slowest, missing := everyone(obs, v, []string{"member-failed"}, t0, time.Second)
			spans = append(spans, downSpan{slots: []int{v}, from: t0})
			if len(missing) > 0 || worst > time.Second {
				violate("kill -9 of %s: failed after %v (slowest %s), not at all by %v; before it: %s", slots[v].alias, worst, slowest, missing, before(t0))
			}
			failLat = append(failLat, worst)
			time.Sleep(time.Until(t0.Add(2 * time.Second)))
			j := (v + 1 + rng.Intn(n-1)) % n
			end = time.Now()
			spans[len(spans)-1].till = end
			startAt(v, "--retry 5s "+slots[j].addr)
			worst, slowest, missing = everyone(obs, v, []string{"member-alive", "member-join"}, end, time.Second)
			if len(missing) > 0 || worst > time.Second {
				violate("restart of %s: alive after %v (slowest %s), not at all by %v; before it: %s", slots[v].alias, worst, slowest, missing, before(end))
			}
			aliveLat = append(aliveLat, worst)
		case "pause":
			p := slots[v].cur()
			p.cmd.Process.Signal(syscall.SIGSTOP)
			time.Sleep(3 * time.Second)
			end = time.Now()
			p.cmd.Process.Signal(syscall.SIGCONT)
			spans = append(spans, downSpan{slots: []int{v}, from: t0, till: end})
			worst, _, _ := everyone(obs, v, []string{"member-alive"}, end, 5*time.Second)
			pauseBack = append(pauseBack, worst)
		case "leave":
			p := slots[v].cur()
			p.feed(t, "!leave\n")
			everyone(obs, v, []string{"member-leave"}, t0, 2*time.Second)
			time.Sleep(time.Until(t0.Add(2 * time.Second)))
			j := (v + 1 + rng.Intn(n-1)) % n
			end = time.Now()
			p.feed(t, "!join_cluster --retry 5s "+slots[j].addr+"\n")
			spans = append(spans, downSpan{slots: []int{v}, from: t0, till: end})
			worst, _, _ := everyone(obs, v, []string{"member-alive", "member-join"}, end, 5*time.Second)
			leaveBack = append(leaveBack, worst)
		case "partition":
			w := (v + 1 + rng.Intn(n-1)) % n
			acts[len(acts)-1].what += " and " + slots[w].alias
			lab.attach(v, 1)
			lab.attach(w, 1)
			time.Sleep(4 * time.Second)
			end = time.Now()
			lab.attach(v, 0)
			lab.attach(w, 0)
			spans = append(spans, downSpan{slots: []int{v, w}, from: t0, till: end, partition: true})
			d, _ := agree(end, 10*time.Second)
			healBack = append(healBack, d)
		}
		d, ok := agree(end, 2*time.Second)
		if !ok {
			d, _ = agree(end, 20*time.Second)
			violate("after %s of %s: tables agree only %v after the end of the event", kind, slots[v].alias, d.Round(time.Millisecond))
		}
		agreeLat = append(agreeLat, d)
		time.Sleep(time.Until(t0.Add(every)))
	}
	for i := 0; i < longLived; i++ {
		if s, ok := soakStatus(t, slots[i].cur()); ok {
			samples[i] = append(samples[i], s)
		}
	}

	// No false failure: a failed event about a member that was up (not
	// crashed, paused, leaving, or on the other side of a partition) for
	// the whole second before it.
	falseFailed := 0
	index := map[string]int{}
	for i, s := range slots {
		index[s.alias] = i
	}
	for oi, s := range slots {
		for _, o := range s.procs {
			for _, e := range o.events() {
				if e.Event != "member-failed" {
					continue
				}
				at, err := time.Parse(time.RFC3339Nano, e.Time)
				if err != nil {
					continue
				}
				excused := false
				for _, sp := range spans {
					excused = excused || sp.excuses(oi, index[e.Member], at)
				}
				if !excused {
					falseFailed++
					violate("%s marked %s failed at %s while it was up (after: %s); its events about %s in the 10 s before:%s",
						s.alias, e.Member, at.Format("15:04:05.000"), before(at), e.Member, history(o.events(), e.Member, at))
				}
			}
		}
	}

	for _, sl := range slots {
		for i, p := range sl.procs {
			select {
			case <-p.done:
				if i == len(sl.procs)-1 || !strings.Contains(fmt.Sprint(p.err), "killed") {
					violate("%s (process %d) exited by itself: %v; stderr: %s", sl.alias, i+1, p.err, p.stderr.String())
				}
			default:
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "churn soak, %d processes, %v, one event every %v (seed %d): %d crash+restart, %d pause, %d leave+rejoin, %d partition\n",
		n, total, every, seed, counts["crash"], counts["pause"], counts["leave"], counts["partition"])
	row := func(what string, d durs, limit string) {
		fmt.Fprintf(&b, "| %s | %d | %v | %v | %s |\n", what, len(d), d.median().Round(time.Millisecond), d.max().Round(time.Millisecond), limit)
	}
	b.WriteString("| measure | events | median | max | limit |\n|---|---|---|---|---|\n")
	row("kill -9: failed everywhere", failLat, "1 s")
	row("restart: alive everywhere", aliveLat, "1 s")
	row("SIGCONT after 3 s: alive everywhere", pauseBack, "-")
	row("rejoin after !leave: alive everywhere", leaveBack, "-")
	row("partition healed: all alive everywhere", healBack, "-")
	row("end of event: all tables agree", agreeLat, "2 s")
	fmt.Fprintf(&b, "false failed events: %d; violations: %d\n", falseFailed, len(violations))
	b.WriteString("| node | RSS at 2 min | RSS at end | private (RssAnon) at 2 min | at end | file-backed at 2 min | at end | goroutines at 2 min | at end |\n|---|---|---|---|---|---|---|---|---|\n")
	for i := 0; i < longLived; i++ {
		sm := samples[i]
		if len(sm) < 3 {
			continue
		}
		a, z := sm[2], sm[len(sm)-1]
		fmt.Fprintf(&b, "| %s | %.1f MiB | %.1f MiB | %.1f MiB | %.1f MiB | %.1f MiB | %.1f MiB | %.0f | %.0f |\n", slots[i].alias,
			a.rss/(1<<20), z.rss/(1<<20), a.anon/(1<<20), z.anon/(1<<20), a.file/(1<<20), z.file/(1<<20), a.gor, z.gor)
		if total >= 5*time.Minute {
			if z.rss > a.rss*1.1 || z.gor > a.gor*1.1 {
				violate("%s grew from minute 2 to the end: RSS %.1f → %.1f MiB, goroutines %.0f → %.0f", slots[i].alias, a.rss/(1<<20), z.rss/(1<<20), a.gor, z.gor)
			}
		}
	}
	b.WriteString("private memory (RssAnon, MiB) minute by minute:\n")
	for i := 0; i < longLived; i++ {
		fmt.Fprintf(&b, "%s:", slots[i].alias)
		for _, s := range samples[i] {
			fmt.Fprintf(&b, " %.1f", s.anon/(1<<20))
		}
		b.WriteString("\n")
	}
	t.Log("\n" + b.String())
	if len(violations) > 0 {
		t.Errorf("%d violations:\n%s", len(violations), strings.Join(violations, "\n"))
	}
}

// downSpan is a time slot was not reachable: crashed, paused, leaving
// (slots has one), or cut off in a partition (slots has both cut-off nodes,
// and only the other side may mark them failed).
type downSpan struct {
	slots      []int
	from, till time.Time
	partition  bool
}

// excuses reports whether sp explains observer o marking member m failed at at.
func (sp downSpan) excuses(o, m int, at time.Time) bool {
	slack := time.Second
	if sp.partition {
		slack = 3 * time.Second // suspicions begun before the heal may still end
	}
	if at.Before(sp.from) || !at.Before(sp.till.Add(slack)) {
		return false
	}
	in := func(i int) bool {
		for _, s := range sp.slots {
			if s == i {
				return true
			}
		}
		return false
	}
	if sp.partition {
		return in(o) != in(m)
	}
	return in(m)
}
