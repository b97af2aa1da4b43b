package node

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"meshell/mesh"
	"meshell/node/metrics"
	"meshell/node/swim"
	"meshell/protocol"
)

// ServeMetrics serves this node's metrics at http://addr/metrics in the
// Prometheus text format (--metrics), until the node closes. It returns the
// address it listens on.
func (n *Node) ServeMetrics(addr string) (string, error) {
	srv, err := metrics.Serve(addr, n.writeMetrics)
	if err != nil {
		return "", err
	}
	n.mu.Lock()
	if n.closed || n.metrics != nil {
		n.mu.Unlock()
		srv.Close()
		return "", errors.New("metrics: this node is closed or serves metrics already")
	}
	n.metrics = srv
	n.mu.Unlock()
	return srv.Addr(), nil
}

// Control results as counted; an op outside controlOps counts as "other",
// so a peer cannot grow the label set.
const (
	resultOK = iota
	resultError
	resultRefused
	resultBusy
	controlResults
)

var (
	controlOps         = [...]string{OpPing, OpStatus, OpScale, OpShutdown, OpRestart, OpConfig, OpKeys, OpForceLeave, "other"}
	controlResultNames = [controlResults]string{"ok", "error", "refused", "busy"}
)

type controlCounts struct {
	n [len(controlOps)][controlResults]atomic.Uint64 // by controlOps, then result
}

func (c *controlCounts) add(op string, result int) {
	i := len(controlOps) - 1
	for k, o := range controlOps[:i] {
		if o == op {
			i = k
			break
		}
	}
	c.n[i][result].Add(1)
}

func controlResult(ack *protocol.ControlAck) int {
	switch {
	case ack.Error == "":
		return resultOK
	case strings.HasPrefix(ack.Error, "refused"):
		return resultRefused
	}
	return resultError
}

var noRTTs = metrics.NewHistogram(metrics.RTTBuckets()...)

// writeMetrics renders every metric of this node; it runs on a scrape's
// goroutine and asks the run loop only for the SWIM counters.
func (n *Node) writeMetrics(w *metrics.Writer) {
	const c, g = metrics.Counter, metrics.Gauge
	L := metrics.L

	var states [StateLeft + 1]int
	for _, e := range n.Members().Entries {
		if e.State <= StateLeft {
			states[e.State]++
		}
	}
	w.Metric("meshell_members", g, "Members in this node's table by state, this node included.",
		L(float64(states[StateAlive]), "state", "alive"), L(float64(states[StateSuspect]), "state", "suspect"),
		L(float64(states[protocol.StateFailed]), "state", "failed"), L(float64(states[protocol.StateLeft]), "state", "left"))

	var st swim.Stats
	rtt := noRTTs // until the node runs
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	n.call(ctx, func(core *swim.Core) { st, rtt = core.Stats(), core.RTTs() })
	cancel()
	w.Metric("meshell_probes_total", c, "Probes this node started, in turn and out of turn.", L(float64(st.ProbesStarted)))
	w.Metric("meshell_probes_failed_total", c, "Probes that got no ack, direct or indirect.", L(float64(st.ProbesFailed)))
	w.Metric("meshell_suspicions_total", c, "Members this node suspected from its own probes.", L(float64(st.Suspected)))
	w.Metric("meshell_refutations_total", c, "Times this node raised its incarnation to deny news about itself.", L(float64(st.Refutations)))
	w.Histogram("meshell_probe_rtt_seconds", "Round trips of direct probes.", rtt.Snapshot())
	w.Metric("meshell_membership_inbox_dropped_total", c, "Membership messages dropped because the run loop's inbox, or their sender's share of it, was full.", L(float64(n.dropped.Load())))

	ms := n.mesh.Stats()
	fam := func(name, help string, v func(f mesh.FamilyStats) uint64) {
		var s [mesh.Families - 1]metrics.Sample
		for i := range s {
			f := protocol.Family(i + 1)
			s[i] = L(float64(v(ms.ByFamily[f])), "family", f.String())
		}
		w.Metric(name, c, help, s[:]...)
	}
	fam("meshell_frames_sent_total", "Frames written to peers, by message family.", func(f mesh.FamilyStats) uint64 { return f.FramesSent })
	fam("meshell_sent_bytes_total", "Bytes of frames written to peers, by message family.", func(f mesh.FamilyStats) uint64 { return f.BytesSent })
	fam("meshell_frames_received_total", "Frames read from peers, by message family.", func(f mesh.FamilyStats) uint64 { return f.FramesReceived })
	fam("meshell_received_bytes_total", "Bytes of frames read from peers, by message family.", func(f mesh.FamilyStats) uint64 { return f.BytesReceived })
	fam("meshell_frames_dropped_total", "Frames dropped before they were written (full queue, failed dial), by message family.", func(f mesh.FamilyStats) uint64 { return f.Dropped })
	w.Metric("meshell_connections", g, "Established peer connections.", L(float64(ms.Conns)))
	w.Metric("meshell_membership_frames_paced_total", c, "Membership frames a connection's reader held back: its peer sent faster than the membership rate.", L(float64(ms.Throttled)))
	w.Metric("meshell_tls_conns_refused_total", c, "Connections closed on accept: their address's TLS handshakes kept failing.", L(float64(ms.KeyThrottled)))

	jc := n.jobs.Counts()
	w.Metric("meshell_jobs_dispatched_total", c, "Jobs this node dispatched.", L(float64(jc.Dispatched)))
	w.Metric("meshell_jobs_total", c, "Jobs this node dispatched that finished, by result.",
		L(float64(jc.OK), "result", "ok"), L(float64(jc.Failed), "result", "error"), L(float64(jc.Cancelled), "result", "cancelled"))
	w.Histogram("meshell_job_latency_seconds", "Latency of the jobs this node dispatched, retries included.", jc.Latency)
	js := n.jobStats()
	w.Metric("meshell_jobs_in_flight", g, "Jobs this node dispatched that have not finished.", L(float64(js.InFlight)))
	w.Metric("meshell_worker_slots", g, "Jobs this node runs at once as a worker.", L(float64(js.Slots)))
	w.Metric("meshell_worker_jobs_running", g, "Jobs running on this node as a worker.", L(float64(js.Running)))
	w.Metric("meshell_worker_jobs_done_total", c, "Jobs finished on this node as a worker.", L(float64(js.Done)))

	cs := make([]metrics.Sample, 0, len(controlOps)*controlResults)
	for i, op := range controlOps {
		for r := range controlResults {
			cs = append(cs, L(float64(n.control.counts.n[i][r].Load()), "op", op, "result", controlResultNames[r]))
		}
	}
	w.Metric("meshell_control_requests_total", c, "Control requests this node handled, by operation and result.", cs...)

	n.mu.Lock()
	srv := n.metrics
	n.mu.Unlock()
	if srv != nil {
		w.Metric("meshell_metrics_conns_refused_total", c, "Connections to this endpoint closed at once: over the bound for one address.", L(float64(srv.RefusedConns())))
	}

	w.Metric("go_goroutines", g, "Goroutines of this process.", L(float64(runtime.NumGoroutine())))
	w.Metric("process_resident_memory_bytes", g, "Resident set size of this process.", L(float64(rss())))
}
