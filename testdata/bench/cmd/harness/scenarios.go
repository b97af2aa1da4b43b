package main

import (
	"fmt"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

const sigKILL = syscall.SIGKILL

// trialFunc runs one trial of a membership scenario and fills r.
type trialFunc func(h *Harness, c *Cluster, trial int, r *Result)

// latencySummary stores max/median over observers under prefix.
// Only complete measurements (every observer saw the event) are metrics.
func latencySummary(r *Result, prefix string, lat map[string]float64, complete bool) {
	if !complete {
		return
	}
	var v []float64
	for _, x := range lat {
		v = append(v, x)
	}
	if len(v) == 0 {
		return
	}
	r.Metrics[prefix+"_max_ms"] = maxOf(v)
	r.Metrics[prefix+"_median_ms"] = median(v)
}

func pickVictim(nodes []*Node, trial int) *Node {
	// Rotate over the non-seed nodes.
	return nodes[1+(trial-1)%(len(nodes)-1)]
}

// crash: kill -9 one non-seed node; time until every other node printed
// member-failed for it.
func scenarioCrash(h *Harness, c *Cluster, trial int, r *Result) {
	nodes, err := c.formCluster(h.cfg.clusterN, h.cfg.formTimeout)
	if err != nil {
		r.Error = err.Error()
		return
	}
	sleepCtx(h.ctx, h.cfg.settle)
	v := pickVictim(nodes, trial)
	others := without(nodes, v)
	t0 := time.Now().UnixNano()
	_ = v.Signal(syscall.SIGKILL)
	lat, ok := c.allSaw(others, v.Alias, t0, h.cfg.detectCap, "member-failed")
	if h.cfg.keepLogs {
		c.keepEvents(others, t0)
	}
	r.Extra["victim"] = v.Alias
	r.Extra["per_node_ms"] = lat
	latencySummary(r, "detect", lat, ok)
	if !ok {
		r.Error = fmt.Sprintf("not within cap %v: %d/%d nodes saw member-failed", h.cfg.detectCap, len(lat), len(others))
	}
}

// hang: SIGSTOP one node; time until all others printed member-failed (cap);
// then SIGCONT and time until all others printed member-alive/member-join.
func scenarioHang(h *Harness, c *Cluster, trial int, r *Result) {
	nodes, err := c.formCluster(h.cfg.clusterN, h.cfg.formTimeout)
	if err != nil {
		r.Error = err.Error()
		return
	}
	sleepCtx(h.ctx, h.cfg.settle)
	v := pickVictim(nodes, trial)
	others := without(nodes, v)
	r.Extra["victim"] = v.Alias
	t0 := time.Now().UnixNano()
	_ = v.Signal(syscall.SIGSTOP)
	lat, ok := c.allSaw(others, v.Alias, t0, h.cfg.hangCap, "member-failed")
	r.Extra["fail_per_node_ms"] = lat
	latencySummary(r, "fail", lat, ok)
	if !ok {
		r.Error = fmt.Sprintf("failure not within cap %v: %d/%d nodes saw member-failed", h.cfg.hangCap, len(lat), len(others))
		r.Extra["fail_within_cap"] = false
	}
	// Resume; recovery is measured on the nodes that had declared it failed.
	var saw []*Node
	for _, o := range others {
		if _, ok := lat[o.Alias]; ok {
			saw = append(saw, o)
		}
	}
	t1 := time.Now().UnixNano()
	_ = v.Signal(syscall.SIGCONT)
	if len(saw) == 0 {
		return
	}
	rl, ok := c.allSaw(saw, v.Alias, t1, h.cfg.recoverCap, "member-alive", "member-join")
	r.Extra["recover_per_node_ms"] = rl
	latencySummary(r, "recover", rl, ok)
	if !ok {
		msg := fmt.Sprintf("recovery not within cap %v: %d/%d nodes saw member-alive", h.cfg.recoverCap, len(rl), len(saw))
		if r.Error != "" {
			r.Error += "; " + msg
		} else {
			r.Error = msg
		}
	}
}

// leave: "!quit" to one node; time until all others printed member-leave.
func scenarioLeave(h *Harness, c *Cluster, trial int, r *Result) {
	nodes, err := c.formCluster(h.cfg.clusterN, h.cfg.formTimeout)
	if err != nil {
		r.Error = err.Error()
		return
	}
	sleepCtx(h.ctx, h.cfg.settle)
	v := pickVictim(nodes, trial)
	others := without(nodes, v)
	r.Extra["victim"] = v.Alias
	t0 := time.Now().UnixNano()
	if err := v.Send("!quit"); err != nil {
		r.Error = "send !quit: " + err.Error()
		return
	}
	lat, ok := c.allSaw(others, v.Alias, t0, h.cfg.leaveCap, "member-leave")
	r.Extra["per_node_ms"] = lat
	latencySummary(r, "leave", lat, ok)
	exited := v.WaitExit(10 * time.Second)
	r.Extra["victim_exited"] = exited
	if exited {
		r.Extra["victim_exit_ms"] = float64(time.Since(time.Unix(0, t0)).Milliseconds())
		if v.err != nil {
			r.Extra["victim_exit_error"] = v.err.Error()
		}
	}
	c.mu.Lock()
	failed := 0
	for _, o := range others {
		if _, ok := o.firstEvent(v.Alias, t0, "member-failed"); ok {
			failed++
		}
	}
	c.mu.Unlock()
	if failed > 0 {
		r.Extra["saw_failed_instead"] = failed
	}
	if !ok {
		r.Error = fmt.Sprintf("not within cap %v: %d/%d nodes saw member-leave (%d saw member-failed)", h.cfg.leaveCap, len(lat), len(others), failed)
	}
}

// restart: kill -9 one node, wait until all others saw it failed, start it
// again (same alias and port, joining the seed); time from the restart until
// all others printed member-alive/member-join for it.
func scenarioRestart(h *Harness, c *Cluster, trial int, r *Result) {
	nodes, err := c.formCluster(h.cfg.clusterN, h.cfg.formTimeout)
	if err != nil {
		r.Error = err.Error()
		return
	}
	sleepCtx(h.ctx, h.cfg.settle)
	v := pickVictim(nodes, trial)
	others := without(nodes, v)
	r.Extra["victim"] = v.Alias
	t0 := time.Now().UnixNano()
	_ = v.Signal(syscall.SIGKILL)
	lat, ok := c.allSaw(others, v.Alias, t0, h.cfg.detectCap, "member-failed")
	latencySummary(r, "detect", lat, ok)
	if !ok {
		r.Error = fmt.Sprintf("failure not detected within cap %v (%d/%d)", h.cfg.detectCap, len(lat), len(others))
		return
	}
	v.WaitExit(5 * time.Second)
	t1 := time.Now().UnixNano()
	nv, err := c.startNode(v.Alias, v.Port, nodes[0].Port)
	if err != nil {
		r.Error = "restart: " + err.Error()
		return
	}
	rl, ok := c.allSaw(others, v.Alias, t1, h.cfg.rejoinCap, "member-alive", "member-join")
	r.Extra["per_node_ms"] = rl
	latencySummary(r, "rejoin", rl, ok)
	if !ok {
		r.Error = fmt.Sprintf("rejoin not within cap %v: %d/%d nodes saw member-alive/join", h.cfg.rejoinCap, len(rl), len(others))
		return
	}
	// Also: when did the restarted node itself see everybody?
	all := append(without(others, nil), nv)
	if c.wait(h.cfg.rejoinCap, func() bool { return fullMesh(all) }) {
		c.mu.Lock()
		var last int64
		for _, o := range others {
			_, t := nv.lastUp(o.Alias)
			last = max(last, t)
		}
		c.mu.Unlock()
		r.Metrics["restarted_view_ms"] = float64(last-t1) / 1e6
	}
}

// converge: the seed starts and is ready; N-1 processes start and idle, then
// all are told to join the seed at the same moment (with --converge-spawn,
// each joins as it starts); time until every process printed member-join for
// all N-1 others; RSS of every process after convergence.
func scenarioConverge(h *Harness, c *Cluster, trial int, r *Result) {
	n := h.cfg.convergeN
	seedPort, err := h.freePort()
	if err != nil {
		r.Error = err.Error()
		return
	}
	ports := make([]int, n)
	ports[0] = seedPort
	for i := 1; i < n; i++ {
		if ports[i], err = h.freePort(); err != nil {
			r.Error = err.Error()
			return
		}
	}
	seed, err := c.startNode("node1", seedPort, 0)
	if err != nil {
		r.Error = err.Error()
		return
	}
	if err := seed.waitReady(15 * time.Second); err != nil {
		r.Error = "seed not ready: " + err.Error()
		return
	}
	nodes := []*Node{seed}
	var t0, startUser, startSys int64 // startUser/Sys: CPU spent before the join
	startCPU := make([]int64, n)      // each process's, in clock ticks
	if h.cfg.convergeSpawn {
		// Each process joins as it starts: the time includes starting them.
		t0 = time.Now().UnixNano()
		for i := 1; i < n; i++ {
			nd, err := c.startNode(fmt.Sprintf("node%d", i+1), ports[i], seedPort)
			if err != nil {
				r.Error = err.Error()
				return
			}
			nodes = append(nodes, nd)
		}
		r.Extra["spawn_ms"] = float64(time.Now().UnixNano()-t0) / 1e6
	} else {
		// Every process is started and idle first; then all join at once.
		ts := time.Now()
		for i := 1; i < n; i++ {
			nd, err := c.startIdle(fmt.Sprintf("node%d", i+1), ports[i])
			if err != nil {
				r.Error = err.Error()
				return
			}
			nodes = append(nodes, nd)
		}
		for _, nd := range nodes[1:] {
			if err := nd.waitIdle(60 * time.Second); err != nil {
				r.Error = err.Error()
				return
			}
		}
		r.Extra["spawn_ms"] = float64(time.Since(ts)) / 1e6
		for i, nd := range nodes {
			if u, s, err := procUserSys(nd.Pid); err == nil {
				startUser, startSys = startUser+u, startSys+s
				startCPU[i] = u + s
			}
		}
		t0 = time.Now().UnixNano()
		for _, nd := range nodes[1:] {
			if err := nd.join(seedPort); err != nil {
				r.Error = err.Error()
				return
			}
		}
		r.Extra["join_sent_ms"] = float64(time.Now().UnixNano()-t0) / 1e6
	}
	ok := c.wait(h.cfg.convergeCap, func() bool { return fullMesh(nodes) })
	tObs := time.Now().UnixNano()
	if h.cfg.keepLogs {
		c.keepEvents(nodes, t0)
	}
	if !ok {
		c.mu.Lock()
		k := meshCount(nodes)
		c.mu.Unlock()
		r.Error = fmt.Sprintf("not converged within cap %v: %d/%d views", h.cfg.convergeCap, k, n*(n-1))
		if h.cfg.keepLogs && c.sys.Kind == "meshell" {
			c.dumpLagging(nodes)
		}
		return
	}
	var per []float64
	c.mu.Lock()
	for _, a := range nodes {
		var last int64
		for _, b := range nodes {
			if a != b {
				_, t := a.lastUp(b.Alias)
				last = max(last, t)
			}
		}
		per = append(per, float64(last-t0)/1e6)
	}
	c.mu.Unlock()
	r.Metrics["converge_max_ms"] = maxOf(per)
	r.Metrics["converge_median_ms"] = median(per)
	if h.cfg.convergeSpawn {
		// From the last process started: what the protocol takes once every
		// process exists, apart from how long starting them took.
		r.Metrics["converge_after_spawn_ms"] = maxOf(per) - r.Extra["spawn_ms"].(float64)
	}
	r.Extra["observed_ms"] = float64(tObs-t0) / 1e6
	var rss, anon []float64
	var user, sys int64
	var joiners []float64
	for i, nd := range nodes {
		if b, err := procRSS(nd.Pid); err == nil {
			rss = append(rss, float64(b)/(1<<20))
		}
		if b, err := procRSSAnon(nd.Pid); err == nil {
			anon = append(anon, float64(b)/(1<<20))
		}
		if u, s, err := procUserSys(nd.Pid); err == nil {
			user, sys = user+u, sys+s
			cpu := float64(u+s-startCPU[i]) / userHZ
			if i == 0 {
				r.Extra["seed_cpu_s"] = cpu
			} else {
				joiners = append(joiners, cpu)
			}
		}
	}
	if len(joiners) > 0 {
		r.Extra["joiner_cpu_median_s"] = median(joiners)
		r.Extra["joiner_cpu_max_s"] = maxOf(joiners)
	}
	if len(rss) > 0 {
		r.Metrics["rss_max_mib"] = maxOf(rss)
		r.Metrics["rss_median_mib"] = median(rss)
	}
	if len(anon) > 0 {
		r.Metrics["rss_anon_median_mib"] = median(anon)
	}
	// CPU of all the processes from the join (with --converge-spawn, from
	// their start) until all converged.
	user, sys = user-startUser, sys-startSys
	r.Metrics["converge_cpu_s"] = float64(user+sys) / userHZ
	r.Extra["converge_user_s"] = float64(user) / userHZ
}

// idle: a converged cluster of idleN nodes; per-process CPU% (of one core)
// and bytes_sent/s over a window.
func scenarioIdle(h *Harness, c *Cluster, trial int, r *Result) {
	nodes, err := c.formCluster(h.cfg.idleN, h.cfg.formTimeout)
	if err != nil {
		r.Error = err.Error()
		return
	}
	if h.cfg.idleFailed && len(nodes) > 2 {
		v := nodes[len(nodes)-1]
		nodes = nodes[:len(nodes)-1]
		t0 := time.Now().UnixNano()
		_ = v.Signal(syscall.SIGKILL)
		if _, ok := c.allSaw(nodes, v.Alias, t0, h.cfg.detectCap, "member-failed"); !ok {
			r.Error = "the killed node was not failed everywhere"
			return
		}
	}
	sleepCtx(h.ctx, h.cfg.settle)
	type snap struct {
		ticks int64
		bytes float64
		at    time.Time
	}
	take := func() ([]snap, error) {
		out := make([]snap, len(nodes))
		for i, nd := range nodes {
			st, err := nd.Status(5 * time.Second)
			if err != nil {
				return nil, err
			}
			tk, err := procCPUTicks(nd.Pid)
			if err != nil {
				return nil, err
			}
			b, ok := numField(st, "bytes_sent")
			if !ok {
				return nil, fmt.Errorf("%s: status without numeric bytes_sent: %v", nd.Alias, st)
			}
			out[i] = snap{ticks: tk, bytes: b, at: time.Now()}
		}
		return out, nil
	}
	s0, err := take()
	if err != nil {
		r.Error = err.Error()
		return
	}
	sleepCtx(h.ctx, h.cfg.idleDur)
	s1, err := take()
	if err != nil {
		r.Error = err.Error()
		return
	}
	var cpu, bps, rss []float64
	for i := range nodes {
		secs := s1[i].at.Sub(s0[i].at).Seconds()
		cpu = append(cpu, float64(s1[i].ticks-s0[i].ticks)/userHZ/secs*100)
		bps = append(bps, (s1[i].bytes-s0[i].bytes)/secs)
		if b, err := procRSS(nodes[i].Pid); err == nil {
			rss = append(rss, float64(b)/(1<<20))
		}
	}
	r.Metrics["cpu_pct_median"] = median(cpu)
	r.Metrics["cpu_pct_max"] = maxOf(cpu)
	r.Metrics["bytes_per_s_median"] = median(bps)
	r.Metrics["bytes_per_s_max"] = maxOf(bps)
	if len(rss) > 0 {
		r.Metrics["rss_median_mib"] = median(rss)
		r.Metrics["rss_max_mib"] = maxOf(rss)
	}
	r.Extra["window_s"] = h.cfg.idleDur.Seconds()
	r.Extra["nodes"] = len(nodes)
}

// scenarioFalsePos: a 10-node cluster while other processes saturate every
// core; any suspect or failed event is a false positive (nobody crashed).
func scenarioFalsePos(h *Harness, c *Cluster, trial int, r *Result) {
	nodes, err := c.formCluster(h.cfg.idleN, h.cfg.formTimeout)
	if err != nil {
		r.Error = err.Error()
		return
	}
	sleepCtx(h.ctx, h.cfg.settle)
	c.mu.Lock()
	marks := make([]int, len(nodes))
	for i, nd := range nodes {
		marks[i] = len(nd.events)
	}
	c.mu.Unlock()
	var burners []*exec.Cmd
	for i := 0; i < runtime.NumCPU(); i++ {
		b := exec.CommandContext(h.ctx, "/bin/sh", "-c", "while :; do :; done")
		if err := b.Start(); err != nil {
			r.Error = err.Error()
			break
		}
		burners = append(burners, b)
	}
	defer func() {
		for _, b := range burners {
			b.Process.Kill()
			b.Wait()
		}
	}()
	sleepCtx(h.ctx, h.cfg.falsePosDur)
	suspect, failed := 0, 0
	c.mu.Lock()
	for i, nd := range nodes {
		for _, ev := range nd.events[marks[i]:] {
			switch ev.Event {
			case "member-suspect":
				suspect++
			case "member-failed":
				failed++
			}
		}
	}
	c.mu.Unlock()
	r.Metrics["suspect_events"] = float64(suspect)
	r.Metrics["failed_events"] = float64(failed)
	r.Extra["window_s"] = h.cfg.falsePosDur.Seconds()
	r.Extra["nodes"] = len(nodes)
	r.Extra["burners"] = len(burners)
}
