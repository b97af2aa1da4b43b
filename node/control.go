package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"meshell/node/jobs"
	"meshell/node/swim"
	"meshell/protocol"
)

// Control operations (ControlRequest.Op).
const (
	OpPing       = "ping"
	OpStatus     = "status"
	OpScale      = "scale"
	OpShutdown   = "shutdown"
	OpRestart    = "restart"
	OpConfig     = "config"
	OpKeys       = "keys"        // Key: list, install, use or remove; Value: the key (install) or its id
	OpForceLeave = "force-leave" // Key: the failed member to mark left
)

// maxControlHandlers bounds control requests handled at once; beyond it a
// request is answered "busy" at once (reject-newest).
const maxControlHandlers = 64

// control answers and sends control-plane commands. Requests and acks travel
// in the control family and never pass through the run loop's inbox.
type control struct {
	n      *Node
	nextID atomic.Uint64
	sem    chan struct{}

	mu      sync.Mutex
	pending map[uint64]*pendingControl

	counts       controlCounts // requests handled, by op and result (metrics.go)
	strategy     atomic.Value  // default dispatch strategy (string)
	shutdownOnce sync.Once
	shutdownC    chan struct{}
	wg           sync.WaitGroup
}

type ackFrom struct {
	from string
	ack  *protocol.ControlAck
}

// pendingControl is one request waiting for its acknowledgements: ch holds
// one slot per target, and each target fills at most one, so that acks
// from others, or repeated ones, cannot crowd out a real answer.
type pendingControl struct {
	ch      chan ackFrom
	waiting map[string]bool // targets that have not answered; guarded by control.mu
}

func newControl(n *Node) *control {
	return &control{n: n, sem: make(chan struct{}, maxControlHandlers), pending: map[uint64]*pendingControl{}, shutdownC: make(chan struct{})}
}

// expect registers request id, sent to targets, and returns where their
// acknowledgements arrive; forget ends it.
func (c *control) expect(id uint64, targets []string) <-chan ackFrom {
	p := &pendingControl{ch: make(chan ackFrom, len(targets)), waiting: make(map[string]bool, len(targets))}
	for _, t := range targets {
		p.waiting[t] = true
	}
	c.mu.Lock()
	c.pending[id] = p
	c.mu.Unlock()
	return p.ch
}

func (c *control) forget(id uint64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

func (c *control) receive(from string, m protocol.Message) {
	switch m := m.(type) {
	case *protocol.Control:
		select {
		case c.sem <- struct{}{}:
		default:
			c.counts.add(m.Op, resultBusy)
			c.reply(from, &protocol.ControlAck{ID: m.ID, Error: "busy: too many control requests at once; retry"})
			return
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			defer func() { <-c.sem }()
			ack, after := c.n.handleControl(m, from)
			c.reply(from, ack)
			if after != nil {
				c.n.mesh.Flush(time.Second)
				after()
			}
		}()
	case *protocol.ControlAck:
		c.mu.Lock()
		defer c.mu.Unlock()
		if p := c.pending[m.ID]; p != nil && p.waiting[from] {
			delete(p.waiting, from)
			p.ch <- ackFrom{from: from, ack: m} // its own slot: never blocks
		}
	}
}

func (c *control) reply(to string, ack *protocol.ControlAck) {
	if err := c.n.mesh.SendConnected(to, ack); err != nil {
		c.n.warn.Warn("control-ack", logrus.Fields{"alias": to, "error": err.Error()}, "control: acknowledgement not sent")
	}
}

// close waits for the control requests being handled.
func (c *control) close() { c.wg.Wait() }

// ControlRequest is one control command: Op and the fields it reads.
type ControlRequest struct {
	Op    string // one of the Op constants
	N     int64  // scale: the slot count
	Now   bool   // shutdown: without draining jobs
	Key   string // config: the key (none: list); keys: list, install, use or remove; force-leave: the member
	Value string // config: the value; keys: the key or its id
}

// ControlReply is one node's answer to a control command.
type ControlReply struct {
	Alias    string
	OK       bool
	Error    string // the node's reason when !OK, or why there was no answer
	NoAnswer bool   // nothing came back within the timeout
	RTT      time.Duration
	Path     string // "local", "direct" or "unreachable"
	Status   *Status
}

// ErrControlRefused is the reason a node gives when it was started with
// --accept-control=false.
var ErrControlRefused = errors.New("refused: this node was started with --accept-control=false")

// Control sends req to each target alias (this node's own alias is handled
// in-process) and waits up to timeout for every acknowledgement. The replies
// come back in the order of targets. A shutdown of this node itself runs
// after every other target answered.
func (n *Node) Control(ctx context.Context, targets []string, cr ControlRequest, timeout time.Duration) ([]ControlReply, error) {
	req := protocol.Control{Op: cr.Op, N: cr.N, Now: cr.Now, Key: cr.Key, Value: cr.Value}
	if !n.Running() {
		return nil, ErrNotRunning
	}
	c := n.control
	self := n.Alias()
	replies := make([]ControlReply, len(targets))
	index := map[string]int{}
	for i, t := range targets {
		replies[i] = ControlReply{Alias: t}
		index[t] = i
	}
	req.ID = c.nextID.Add(1)
	ch := c.expect(req.ID, targets)
	defer c.forget(req.ID)
	sent := map[string]time.Time{}
	local := -1
	snap := n.Members()
	for i, t := range targets {
		if t == self {
			local = i
			continue
		}
		e, ok := snap.Get(t)
		switch {
		case !ok:
			replies[i].Error, replies[i].NoAnswer, replies[i].Path = "not a member", true, "unreachable"
			continue
		case e.State == StateFailed:
			// Answered from the table, as a member that left is: waiting
			// out the timeout would tell nothing more.
			replies[i].Error = fmt.Sprintf("failed here %v ago: not sent (it comes back alive if it answers again; !force-leave %s once it is gone for good)",
				time.Since(e.Since).Round(time.Second), t)
			replies[i].NoAnswer, replies[i].Path = true, "unreachable"
			continue
		}
		msg := req
		if err := n.sign(&msg, t); err != nil {
			replies[i].Error, replies[i].NoAnswer, replies[i].Path = err.Error(), true, "unreachable"
			continue
		}
		sent[t] = time.Now()
		if err := n.mesh.Send(t, e.Addr, &msg); err != nil {
			replies[i].Error, replies[i].NoAnswer, replies[i].Path = err.Error(), true, "unreachable"
			delete(sent, t)
		}
	}
	var after func()
	runLocal := func() {
		start := time.Now()
		ack, a := n.handleControl(&req, self)
		after = a
		r := &replies[local]
		r.RTT, r.Path = time.Since(start), "local"
		r.fill(req.Op, ack)
	}
	// The local node goes last when its own step would cut the others off:
	// a shutdown, or a key removal that closes their connections.
	localLast := req.Op == OpShutdown || req.Op == OpKeys && req.Key == "remove"
	if local >= 0 && !localLast {
		runLocal()
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
wait:
	for len(sent) > 0 {
		select {
		case a := <-ch:
			t0, ok := sent[a.from]
			if !ok {
				continue
			}
			delete(sent, a.from)
			r := &replies[index[a.from]]
			r.RTT, r.Path = time.Since(t0), "direct"
			r.fill(req.Op, a.ack)
		case <-timer.C:
			break wait
		case <-ctx.Done():
			break wait
		}
	}
	for t := range sent {
		r := &replies[index[t]]
		r.NoAnswer, r.Path = true, "unreachable"
		r.Error = fmt.Sprintf("no answer within %v", timeout)
		if ctx.Err() != nil {
			r.Error = "cancelled before an answer"
		}
	}
	if local >= 0 && localLast {
		runLocal()
	}
	if after != nil {
		after() // this node's own shutdown or restart: done when the command returns
	}
	return replies, nil
}

// fill sets r from a node's acknowledgement of op. A status request
// acknowledged without a status is an error, not a confirmation: no node
// of this release answers so, and the shell would show the node in no row
// of the table and the command as done.
func (r *ControlReply) fill(op string, ack *protocol.ControlAck) {
	r.OK, r.Error, r.Status = ack.Error == "", ack.Error, statusOf(ack.Status)
	if r.OK && r.Status == nil && op == OpStatus {
		r.OK, r.Error = false, "answered without its status"
	}
}

// ShutdownRequested is closed when a shutdown command was accepted; the
// process that owns the node should exit 0 once Leave returned.
func (n *Node) ShutdownRequested() <-chan struct{} { return n.control.shutdownC }

// handleControl runs one control request addressed to this node, and
// counts it by op and result. It returns the acknowledgement and, for
// shutdown and restart, what to do once the acknowledgement is on its way.
func (n *Node) handleControl(m *protocol.Control, from string) (*protocol.ControlAck, func()) {
	ack, after := n.runControl(m, from)
	n.control.counts.add(m.Op, controlResult(ack))
	return ack, after
}

func (n *Node) runControl(m *protocol.Control, from string) (*protocol.ControlAck, func()) {
	ack := &protocol.ControlAck{ID: m.ID}
	log := n.log.WithFields(logrus.Fields{"op": m.Op, "from": from})
	local := from == n.Alias()
	notice := log.Warn // another node stops or restarts this one: worth a warning
	if local {
		notice = log.Info // typed here, and answered here: a warning would only repeat it
	}
	// changed logs a change made at info; another node's requests go
	// through the rate limit, since a peer may send thousands a second.
	changed := func(kind string, f logrus.Fields, msg string) {
		if local {
			log.WithFields(f).Info(msg)
			return
		}
		f["op"], f["from"] = m.Op, from
		n.warn.Info(kind, f, msg)
	}
	if mutating(m) && !local {
		if n.cfg.RefuseControl {
			n.warn.Warn("control-refused", logrus.Fields{"op": m.Op, "from": from}, "control: refused (--accept-control=false)")
			ack.Error = ErrControlRefused.Error()
			return ack, nil
		}
		if err := n.verify(m); err != nil {
			n.warn.Warn("control-unsigned", logrus.Fields{"op": m.Op, "from": from, "error": err.Error()}, "control: refused an unsigned or badly signed request")
			ack.Error = "refused: " + err.Error()
			return ack, nil
		}
	}
	switch m.Op {
	case OpPing:
	case OpStatus:
		st := n.status()
		if v, ok := n.PeerVersions(from); ok {
			st.ProtoCur = v.Cur
		}
		ack.Status = &st
	case OpScale:
		if err := n.SetSlots(int(m.N)); err != nil {
			ack.Error = err.Error()
			break
		}
		st := n.status()
		ack.Status = &st
		changed("control-scaled", logrus.Fields{"slots": m.N}, "control: scaled")
	case OpConfig:
		if m.Key != "" {
			if err := n.SetConfig(m.Key, m.Value); err != nil {
				ack.Error = err.Error()
				break
			}
			changed("control-config", logrus.Fields{m.Key: m.Value}, "control: config set")
		}
		st := n.status()
		ack.Status = &st
	case OpKeys:
		after, err := n.keys(m.Key, m.Value)
		if err != nil {
			ack.Error = err.Error()
			break
		}
		st := n.status()
		ack.Status = &st
		return ack, after
	case OpForceLeave:
		if err := n.forceLeave(m.Key); err != nil {
			ack.Error = err.Error()
			break
		}
		changed("control-forced-out", logrus.Fields{"member": m.Key}, "control: forced out")
	case OpShutdown:
		notice("control: shutting down")
		now := m.Now
		return ack, func() { n.shutdown(now) }
	case OpRestart:
		notice("control: restarting")
		return ack, func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := n.restart(ctx); err != nil {
				n.log.WithError(err).Error("control: restart failed")
			}
		}
	default:
		ack.Error = fmt.Sprintf("unknown control operation %q", m.Op)
	}
	return ack, nil
}

// ShutdownDrain is how long a shutdown without Now waits for running jobs
// (!run commands included) before it stops them.
const ShutdownDrain = 30 * time.Second

// shutdown drains jobs (unless now), leaves the cluster and signals the
// owner of the node to exit.
func (n *Node) shutdown(now bool) {
	if !now {
		ctx, cancel := context.WithTimeout(context.Background(), ShutdownDrain)
		n.drainJobs(ctx)
		cancel()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n.Leave(ctx)
	n.control.shutdownOnce.Do(func() { close(n.control.shutdownC) })
}

// restart leaves the cluster, closes every connection, listens again on the
// same address and rejoins through the members it knew. The node comes back
// alive at a higher incarnation.
func (n *Node) restart(ctx context.Context) error {
	var seeds []string
	self := n.Alias()
	for _, e := range n.Members().Entries {
		if e.Alias != self && (e.State == StateAlive || e.State == StateSuspect) {
			seeds = append(seeds, e.Addr)
		}
	}
	addr := n.Addr()
	if err := n.Leave(ctx); err != nil {
		return err
	}
	bind := n.cfg.Bind
	if _, port, err := net.SplitHostPort(addr); err == nil {
		if host, _, err := net.SplitHostPort(bind); err == nil {
			bind = net.JoinHostPort(host, port)
		}
	}
	if _, err := n.Start(bind); err != nil {
		return err
	}
	if len(seeds) == 0 {
		return nil
	}
	return n.JoinAny(ctx, seeds, 5*time.Second)
}

// PeerVersions returns the protocol versions alias speaks and, as Cur, the
// version of this node's connection to it (this node: its own range, at its
// newest version); false when alias is not connected.
func (n *Node) PeerVersions(alias string) (Versions, bool) {
	if alias == n.Alias() {
		return Versions(n.mesh.Versions()), true
	}
	v, ok := n.mesh.PeerVersions(alias)
	return Versions(v), ok
}

// Status describes this node for the status command.
func (n *Node) Status() Status { return Status(n.status()) }

// status is Status as the wire carries it.
func (n *Node) status() protocol.NodeStatus {
	snap := n.Members()
	st := protocol.NodeStatus{
		Alias:         n.Alias(),
		Version:       n.cfg.Version,
		MembersAlive:  snap.Count(StateAlive),
		MembersSusp:   snap.Count(StateSuspect),
		MembersFailed: snap.Count(StateFailed),
		Goroutines:    runtime.NumGoroutine(),
		RSSBytes:      rss(),
		Tags:          n.Self().Tags,
		Config:        n.ConfigMap(),
		BytesSent:     n.mesh.Stats().BytesSent,
		Operators:     n.cfg.Operators != nil,
		CPUMs:         cpuMs(),
	}
	v := n.mesh.Versions()
	st.ProtoMin, st.ProtoMax, st.ProtoCur = v.Min, v.Max, v.Max
	if ring := n.cfg.Keyring.keys(); ring != nil {
		st.KeyIDs = ring.IDs()
	}
	js := n.jobStats()
	st.Slots, st.InFlight, st.JobsDone = js.Slots, js.Running, js.Done
	n.mu.Lock()
	if !n.started.IsZero() {
		st.UptimeMs = time.Since(n.started).Milliseconds()
	}
	n.mu.Unlock()
	return st
}

// rss is this process's resident set size: from /proc where there is one,
// else the memory the Go runtime holds from the system less what it gave
// back (runtime/metrics), which is what a Go process's RSS mostly is.
func rss() uint64 {
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 2 {
			pages, _ := strconv.ParseUint(f[1], 10, 64)
			return pages * uint64(os.Getpagesize())
		}
	}
	return goRSS()
}

// goRSS is the memory the Go runtime holds from the system, less what it
// returned: rss where there is no /proc (macOS, Windows).
func goRSS() uint64 {
	sample := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(sample)
	total, released := sample[0].Value.Uint64(), sample[1].Value.Uint64()
	if released > total {
		return 0
	}
	return total - released
}

// Config keys settable at run time with !config set.
var configKeys = []string{"probe-interval", "probe-timeout", "suspicion-mult", "indirect-checks", "log-level", "strategy"}

// ConfigKeys lists the runtime tunables.
func ConfigKeys() []string { return append([]string(nil), configKeys...) }

// ConfigMap returns the runtime tunables and their current values.
func (n *Node) ConfigMap() map[string]string {
	sc := n.tunables()
	lvl := ""
	if l, ok := n.log.(interface{ GetLevel() logrus.Level }); ok {
		lvl = levelName(l.GetLevel())
	} else if e, ok := n.log.(*logrus.Entry); ok {
		lvl = levelName(e.Logger.GetLevel())
	}
	return map[string]string{
		"probe-interval":  sc.ProbeInterval.String(),
		"probe-timeout":   sc.ProbeTimeout.String(),
		"suspicion-mult":  strconv.Itoa(sc.SuspicionMult),
		"indirect-checks": strconv.Itoa(sc.IndirectChecks),
		"log-level":       lvl,
		"strategy":        n.DefaultStrategy(),
	}
}

// levelName is a log level as --log-level and !config set take it: "warn"
// where logrus says "warning".
func levelName(l logrus.Level) string {
	if l == logrus.WarnLevel {
		return "warn"
	}
	return l.String()
}

// tunables returns the failure-detection timings in force.
func (n *Node) tunables() Tunables {
	var sc Tunables
	if err := n.call(context.Background(), func(c *swim.Core) { sc = Tunables(c.Config()) }); err != nil {
		return n.cfg.SWIM
	}
	return sc
}

// SetConfig changes one runtime tunable on this node.
func (n *Node) SetConfig(key, value string) error {
	switch key {
	case "probe-interval", "probe-timeout", "suspicion-mult", "indirect-checks":
		sc := n.tunables()
		if err := SetTunables(&sc, [][2]string{{key, value}}); err != nil {
			return err
		}
		var serr error
		if err := n.call(context.Background(), func(c *swim.Core) { serr = c.SetConfig(swim.Config(sc)) }); err != nil {
			n.cfg.SWIM = sc // not running yet: applies at start
			return nil
		}
		return serr
	case "log-level":
		lvl, err := logrus.ParseLevel(value)
		if err != nil {
			return fmt.Errorf("log-level %q: use debug, info, warn or error", value)
		}
		switch l := n.log.(type) {
		case *logrus.Logger:
			l.SetLevel(lvl)
		case *logrus.Entry:
			l.Logger.SetLevel(lvl)
		default:
			return errors.New("log-level: this node's logger cannot change level")
		}
		return nil
	case "strategy":
		return n.setDefaultStrategy(value)
	}
	return fmt.Errorf("unknown config key %q: use one of %s", key, strings.Join(configKeys, ", "))
}

// DefaultStrategy is the dispatch strategy used when a command names none.
func (n *Node) DefaultStrategy() string {
	if s, ok := n.control.strategy.Load().(string); ok {
		return s
	}
	return "least-connections"
}

// setDefaultStrategy changes the default dispatch strategy. It keeps the
// strategy's name, not the abbreviation it was given ("rr"), so that
// !config show finds nodes that run the same strategy alike.
func (n *Node) setDefaultStrategy(s string) error {
	st, err := jobs.ParseStrategy(s)
	if err != nil {
		return err
	}
	n.control.strategy.Store(st.String())
	return nil
}
