package node

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"meshell/manager"
	"meshell/mesh"
	"meshell/node/jobs"
	"meshell/node/metrics"
	"meshell/node/operator"
	"meshell/node/swim"
	"meshell/protocol"
)

// Config configures a node.
type Config struct {
	Alias     string            // unique in the cluster; "" = node-<port>
	Bind      string            // listen address, host:port (port 0 = any free port)
	Advertise string            // address others dial; "" = the bound address
	Cluster   string            // cluster name carried in Hello; "" = protocol.DefaultCluster
	Tags      map[string]string // gossiped with this node
	SWIM      Tunables          // failure-detection timings
	Seed      int64             // randomness of the SWIM core; 0 = from the clock
	Log       logrus.FieldLogger
	Version   string // release shown by the status command

	// RefuseControl refuses remote shutdown, restart, scale and config
	// changes (--accept-control=false); ping and status stay allowed.
	RefuseControl bool

	// Keyring holds the cluster keys: every connection is TLS 1.3 under them
	// (nil: plaintext, loopback peers only unless Insecure). KeyFile, when
	// set, is rewritten after every rotation.
	Keyring  *Keyring
	KeyFile  string
	Insecure bool

	// Operators, when set, must sign every control request that changes
	// this node; OperatorKey signs the requests this node sends.
	Operators   *operator.Verifier
	OperatorKey *operator.PrivateKey

	// Jobs are the owner's bounds on the job plane (--max-job-timeout,
	// --max-slots); zero fields take the defaults.
	Jobs jobs.Limits

	// Run allows the run kind and declares command kinds (--allow-run,
	// --kind); see node/jobs/run.go.
	Run jobs.RunConfig

	// Transport overrides; zero values take mesh.DefaultConfig's.
	HandshakeTimeout time.Duration
	DialTimeout      time.Duration
	Versions         Versions // protocol versions spoken; zero = SupportedVersions()
}

// DefaultConfig returns a node configuration with the LAN profile on
// 127.0.0.1:2254.
func DefaultConfig() Config {
	return Config{Bind: "127.0.0.1:2254", Cluster: protocol.DefaultCluster, SWIM: LANTunables()}
}

// Inbox bounds. Membership messages beyond inboxLen are dropped (SWIM
// tolerates loss, and the drop is counted); connection evidence is never
// dropped: its sender waits.
const (
	inboxLen    = 4096
	evidenceLen = 1024
	// inboxShare bounds one sender's messages waiting in the inbox: a peer
	// that floods fills its share, its excess is dropped (and counted), and
	// the others' messages still find room.
	inboxShare = inboxLen / 8
	// A message weighs one plus the members and tags it carries. One
	// sender's messages waiting weigh at most inboxWeightShare, past its
	// first (which may be a frame at the codec's limits); those heavier
	// than smallWeight wait only while all waiting weigh at most
	// inboxWeight. So frames of thousands of invented members cannot queue
	// gigabytes, and pings and acks, light, always find room.
	inboxWeightShare = 1 << 15
	inboxWeight      = 1 << 18
	smallWeight      = 64
)

// Node is one cluster member.
type Node struct {
	cfg  Config
	log  logrus.FieldLogger
	mesh *mesh.Mesh
	hub  hub

	inbox    chan inbound
	evidence chan inbound
	calls    chan func()
	stop     chan struct{}
	loopDone chan struct{}

	mu      sync.Mutex // guards the lifecycle fields below
	core    *swim.Core // owned by the run loop once it runs
	running bool
	left    bool
	closed  bool
	addr    string
	started time.Time

	self        atomic.Pointer[protocol.Member]
	snap        atomic.Pointer[manager.Snapshot]
	view        atomic.Pointer[view] // snap as Members last converted it
	snapVersion uint64               // the table version snap shows; run loop only
	snapRTTs    uint64               // the RTT version snap shows; run loop only
	joinDials   map[string]bool      // members Join dials itself; run loop only
	helloMu     sync.Mutex
	helloAt     map[string]uint64 // table version of each Hello answer not yet up; guarded by helloMu
	dropped     atomic.Uint64
	shares      inboxShares
	warn        *mesh.RateLog       // warnings a peer can trigger: one line per kind per period
	eventLines  lineBudget          // membership lines, which peers' news can cause; run loop only
	backedOff   []mesh.BackoffError // sends the mesh's dial backoff refused, for the next flush; run loop only

	// The job and control families have their own files and goroutines;
	// the run loop only tells them about membership.
	jobs    *jobs.Jobs
	control *control
	metrics *metrics.Server // --metrics; nil when off
}

type inboundKind uint8

const (
	inMsg inboundKind = iota
	inUp
	inDown
	inDialFailed
)

// inbound is one slot of the inbox: small, since the inbox's slots are
// all allocated up front.
type inbound struct {
	kind       inboundKind
	refused    bool  // inDialFailed: the dial was refused
	introduced bool  // inUp: the peer joined through this node
	weight     int32 // inMsg: its weight in the sender's share (inboxShares)
	from       string
	msg        protocol.Message
	member     *protocol.Member // inUp only
}

// New returns a node that is not yet listening.
func New(cfg Config) (*Node, error) {
	if cfg.Cluster == "" {
		cfg.Cluster = protocol.DefaultCluster
	}
	if err := protocol.ValidCluster(cfg.Cluster); err != nil {
		return nil, err
	}
	if cfg.Alias != "" {
		if err := protocol.ValidAlias(cfg.Alias); err != nil {
			return nil, fmt.Errorf("%w; pick another --alias", err)
		}
	}
	if err := protocol.ValidTags(cfg.Tags); err != nil {
		return nil, err
	}
	var err error
	if cfg.Run, err = cfg.Run.Checked(); err != nil {
		return nil, err
	}
	if cfg.SWIM == (Tunables{}) {
		cfg.SWIM = LANTunables()
	}
	if err := swim.Config(cfg.SWIM).Validate(); err != nil {
		return nil, fmt.Errorf("failure detection: %w", err)
	}
	if cfg.Log == nil {
		cfg.Log = logrus.StandardLogger()
	}
	if cfg.Seed == 0 {
		cfg.Seed = time.Now().UnixNano()
	}
	n := &Node{
		cfg: cfg, log: cfg.Log,
		inbox: make(chan inbound, inboxLen), evidence: make(chan inbound, evidenceLen),
		calls: make(chan func()), stop: make(chan struct{}), loopDone: make(chan struct{}),
		warn: mesh.NewRateLog(cfg.Log, time.Now),
	}
	n.self.Store(&protocol.Member{Alias: cfg.Alias, State: protocol.StateAlive, Tags: maps.Clone(cfg.Tags)})
	n.snap.Store(&manager.Snapshot{})
	mc := mesh.DefaultConfig(cfg.Cluster, func() protocol.Member { return *n.self.Load() })
	mc.Log = cfg.Log
	mc.Keyring, mc.Insecure = cfg.Keyring.keys(), cfg.Insecure
	mc.Versions = protocol.Versions(cfg.Versions)
	if cfg.SWIM.MaxMembers > 0 {
		mc.MaxConns = cfg.SWIM.MaxMembers // a connection per member the table can hold
	}
	if cfg.HandshakeTimeout > 0 {
		mc.HandshakeTimeout = cfg.HandshakeTimeout
	}
	if cfg.DialTimeout > 0 {
		mc.DialTimeout = cfg.DialTimeout
	}
	n.mesh = mesh.New(mc, (*handler)(n))
	n.jobs = jobs.New((*host)(n), cfg.Jobs, cfg.Run)
	n.control = newControl(n)
	// The node is not running yet: its slots, declared kinds and boot id
	// go out with its first Hello.
	self := *n.self.Load()
	self.Tags = n.ownTags(self.Tags)
	n.self.Store(&self)
	return n, nil
}

// Alias is this node's alias ("" before the node listens when none was set).
func (n *Node) Alias() string { return n.self.Load().Alias }

// Self is this node as it introduces itself.
func (n *Node) Self() Member { return memberOf(*n.self.Load(), true) }

// Addr is the advertised address ("" before the node listens).
func (n *Node) Addr() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.addr
}

// Cluster is the cluster name.
func (n *Node) Cluster() string { return n.cfg.Cluster }

// Running reports whether the node listens and takes part in the cluster.
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.running
}

// Members returns the latest membership snapshot.
func (n *Node) Members() *Snapshot {
	src := n.snap.Load()
	if v := n.view.Load(); v != nil && v.src == src {
		return v.out
	}
	v := &view{src: src, out: snapshotOf(src)}
	n.view.Store(v)
	return v.out
}

// Subscribe returns a subscription to membership events with a buffer of buf.
func (n *Node) Subscribe(buf int) *Subscription { return n.hub.add(buf) }

// errShutDown refuses to start a node that was closed.
var errShutDown = errors.New("this node is shut down")

// JoinWait is how long a join gives each address: its Hello's answer may
// take that long on a loaded host (mesh.HelloWait).
const JoinWait = mesh.HelloWait

// ErrNotRunning is returned by operations that need a listening node.
var ErrNotRunning = jobs.ErrNotRunning

// Start binds addr (the configured Bind when empty), starts the run loop and
// returns the advertised address. A node that left starts again at a higher
// incarnation.
func (n *Node) Start(addr string) (string, error) {
	adv, _, err := n.start(addr)
	return adv, err
}

// start is Start; started is false when the node was running already.
func (n *Node) start(addr string) (adv string, started bool, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return "", false, errShutDown
	}
	if n.running {
		return n.addr, false, nil
	}
	adv, err = n.listenLocked(addr)
	return adv, err == nil, err
}

// CheckListen says why a node cannot listen on addr and advertise
// advertise ("": addr itself): addr is not HOST:PORT, or it names every
// interface, which no other node can dial, and no advertise says what to
// dial instead.
func CheckListen(addr, advertise string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen address %q is not HOST:PORT", addr)
	}
	if ip := net.ParseIP(host); advertise == "" && (host == "" || ip != nil && ip.IsUnspecified()) {
		return fmt.Errorf("%s listens on every interface, and other nodes cannot dial %q: say which address they dial with --advertise HOST:PORT", addr, host)
	}
	return nil
}

// listenLocked is start's work once the node is known to be stopped; n.mu
// is held.
func (n *Node) listenLocked(addr string) (string, error) {
	if addr == "" {
		addr = n.cfg.Bind
	}
	if err := CheckListen(addr, n.cfg.Advertise); err != nil {
		return "", err
	}
	host, _, _ := net.SplitHostPort(addr)
	bound, err := n.mesh.Listen(addr)
	if err != nil {
		return "", fmt.Errorf("%w; pick another address with !start_cluster HOST:PORT or the -P flag", err)
	}
	port := bound.(*net.TCPAddr).Port
	adv := n.cfg.Advertise
	if adv == "" {
		adv = net.JoinHostPort(host, strconv.Itoa(port))
	}
	n.addr = adv
	now := time.Now()
	if n.core == nil {
		self := *n.self.Load()
		if self.Alias == "" {
			self.Alias = "node-" + strconv.Itoa(port)
		}
		self.Addr = adv
		n.self.Store(&self)
		n.core = swim.New(self, swim.Config(n.cfg.SWIM), n.cfg.Seed, now)
		n.started = now
		n.running = true
		n.flush(now)
		go n.run()
		return adv, nil
	}
	// A node that left comes back: new address, higher incarnation.
	n.running = true
	n.left = false
	n.callLocked(func() {
		now := time.Now()
		n.core.Rejoin(now, adv)
		n.flush(now) // published before Start returns
	})
	return adv, nil
}

// callLocked runs f on the run loop; n.mu is held by the caller, which the
// loop never takes.
func (n *Node) callLocked(f func()) {
	done := make(chan struct{})
	n.calls <- func() { f(); close(done) }
	<-done
}

// call runs f on the run loop and waits for it; what f changed is published
// (snapshot, own entry, messages handed to the mesh) before call returns. It
// fails when the node is not running or the loop does not take the call
// before ctx ends.
func (n *Node) call(ctx context.Context, f func(c *swim.Core)) error {
	n.mu.Lock()
	core, closed := n.core, n.closed
	n.mu.Unlock()
	if core == nil || closed {
		return ErrNotRunning
	}
	done := make(chan struct{})
	select {
	case n.calls <- func() { f(core); n.flush(time.Now()); close(done) }:
	case <-n.loopDone:
		return ErrNotRunning
	case <-ctx.Done():
		return ctx.Err()
	}
	<-done
	return nil
}

func (n *Node) run() {
	defer close(n.loopDone)
	n.joinDials = nil // a Join cut short by a leave left its entries
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-n.stop:
			return
		case in := <-n.evidence:
			n.handle(in)
			n.burst()
		case in := <-n.inbox:
			n.evidenceFirst()
			n.handle(in)
			n.burst()
		case f := <-n.calls:
			f()
		case <-timer.C:
			n.core.Tick(time.Now())
		}
		now := time.Now()
		n.flush(now)
		d := n.core.NextDeadline(now).Sub(now)
		if d < 0 || len(n.backedOff) > 0 {
			d = 0
		}
		timer.Reset(d)
	}
}

// evidenceFirst handles the connection events already waiting. A peer's
// PeerUp is queued before its first message, but select takes either
// channel at random: a message handled first would come from a member not
// yet known, and its Leave, say, would be lost (and the member listed
// alive once its PeerUp came).
func (n *Node) evidenceFirst() {
	for range evidenceLen {
		select {
		case in := <-n.evidence:
			n.handle(in)
		default:
			return
		}
	}
}

// burst handles what else waits, evidence first, up to a bound, before the
// loop flushes once: a loaded node that gets the CPU rarely then spends it
// on the work, not on a flush per item.
func (n *Node) burst() {
	for range 64 {
		select {
		case in := <-n.evidence:
			n.handle(in)
			continue
		default:
		}
		select {
		case in := <-n.inbox:
			n.handle(in)
			continue
		default:
		}
		return
	}
}

func (n *Node) handle(in inbound) {
	now := time.Now()
	switch in.kind {
	case inMsg:
		n.shares.give(in.from, int(in.weight))
		n.core.Step(now, in.from, in.msg)
	case inUp:
		if in.introduced {
			n.helloMu.Lock()
			v, ok := n.helloAt[in.from]
			delete(n.helloAt, in.from)
			n.helloMu.Unlock()
			n.core.Introduced(now, *in.member, !ok || v != n.core.Version())
		} else {
			n.core.Connected(now, *in.member)
		}
	case inDown:
		n.core.ConnLost(now, in.from)
	case inDialFailed:
		n.core.DialFailed(now, in.from, in.refused)
	}
}

// flush sends what the core produced, publishes the snapshot, then the
// events (so that a subscriber woken by an event sees it in the snapshot).
func (n *Node) flush(now time.Time) {
	// Messages the mesh did not send because their member's dials back off
	// are, to the failure detector, failed dials (as they were when every
	// message dialled): an invented member is failed and reaped as fast.
	for _, b := range n.backedOff {
		n.core.DialFailed(now, b.Alias, b.Refused)
	}
	clear(n.backedOff)
	n.backedOff = n.backedOff[:0]
	rd := n.core.Ready()
	var shared protocol.Message // the core's message to several members, encoded once
	var prep protocol.Message
	for i, o := range rd.Msgs {
		msg := o.Msg
		if msg == shared {
			msg = prep
		} else if i+1 < len(rd.Msgs) && rd.Msgs[i+1].Msg == msg {
			if p, err := protocol.Prepare(msg); err == nil {
				shared, prep, msg = o.Msg, p, p
			}
		}
		var bo *mesh.BackoffError
		if err := n.mesh.Send(o.To, o.Addr, msg); errors.As(err, &bo) {
			if len(n.backedOff) < maxBackedOff { // repeats are harmless: a probe counts its failed dial once
				n.backedOff = append(n.backedOff, *bo)
			}
		} else if err != nil && !errors.Is(err, mesh.ErrClosed) {
			n.log.WithField("alias", o.To).WithError(err).Debug("node: membership message not sent")
		}
	}
	v, r := n.core.Version(), n.core.RTTVersion()
	if outdated(n.snap.Load(), now, v != n.snapVersion, r != n.snapRTTs) {
		self := n.core.Self()
		n.self.Store(&self)
		n.snap.Store(&manager.Snapshot{Entries: n.core.Entries(), At: now, Version: v})
		n.snapVersion, n.snapRTTs = v, r
	}
	self := n.self.Load()
	for _, ev := range rd.Events {
		switch {
		case ev.Kind == swim.MemberLeave && n.mesh.Connected(ev.Member.Alias):
			// News of a leave over a working connection may be forged, and
			// a member that leaves drains, then closes: its jobs go when
			// the connection does (PeerDown).
		case ev.Kind == swim.MemberFailed, ev.Kind == swim.MemberLeave, ev.Kind == swim.MemberReap:
			n.jobs.MemberGone(ev.Member.Alias, ev.Kind == swim.MemberLeave)
		}
		if ev.Kind == swim.MemberReap && self.State == protocol.StateLeft {
			continue // this node left and forgot the others, which live on: no news of theirs
		}
		if (ev.Kind == swim.MemberJoin || ev.Kind == swim.MemberAlive) && self.Alias < ev.Member.Alias && self.State == protocol.StateAlive && !n.joinDials[ev.Member.Alias] {
			n.connectLater(ev.Member.Alias)
		}
		if held, ok := n.eventLines.take(ev.At); ok {
			e := n.log.WithFields(logrus.Fields{"event": ev.Kind.String(), "member": ev.Member.Alias, "incarnation": ev.Member.Incarnation})
			if held > 0 {
				e = e.WithField("suppressed", held)
			}
			e.Info("membership")
		}
		n.hub.publish(eventOf(ev, self.Alias))
	}
}

// lineBudget lets a burst of eventBurst log lines through (a mass join, a
// partition's failures), then eventRate a second: hostile news repeated
// as fast as a connection carries it costs a counter, not a line each.
type lineBudget struct {
	tokens float64
	last   time.Time
	held   int // lines not written since the last one that was
}

const (
	eventBurst = 512
	eventRate  = 20
)

// take reports whether a line may be written at now, and how many were
// held back before it.
func (b *lineBudget) take(now time.Time) (held int, ok bool) {
	if b.last.IsZero() {
		b.tokens = eventBurst
	} else if d := now.Sub(b.last); d > 0 {
		b.tokens = min(eventBurst, b.tokens+d.Seconds()*eventRate)
	}
	b.last = now
	if b.tokens < 1 {
		b.held++
		return 0, false
	}
	b.tokens--
	held, b.held = b.held, 0
	return held, true
}

// rttRefresh is how often at most a change of round trips alone publishes a
// new snapshot: every probe measures one, and a copy of a 100-member table per
// probe was most of an idle node's garbage.
const rttRefresh = time.Second

// outdated reports whether snap must be replaced: a member changed, or only
// round trips did and snap is rttRefresh old.
func outdated(snap *manager.Snapshot, now time.Time, members, rtts bool) bool {
	return members || snap.Entries == nil || rtts && now.Sub(snap.At) >= rttRefresh
}

// connectGrace is how long a member waits for a newcomer to dial it before
// it dials the newcomer itself.
const connectGrace = 500 * time.Millisecond

// connectLater completes the full mesh: a newcomer dials every member its
// seed named, so a member that learns of it connects only when the
// newcomer has not done so within connectGrace (they joined at the same
// moment and neither was named to the other). Of two members that learn of
// each other, the smaller alias dials; a member gone by then is not
// dialled. Dialling at once made most pairs of a join storm open two
// connections and retire one.
func (n *Node) connectLater(alias string) {
	time.AfterFunc(connectGrace, func() {
		if n.mesh.Connected(alias) {
			return
		}
		for _, e := range n.snap.Load().Entries {
			if e.Alias == alias && (e.State == protocol.StateAlive || e.State == protocol.StateSuspect) {
				n.mesh.Connect(alias, e.Addr)
				return
			}
		}
	})
}

// JoinResult describes a completed join.
type JoinResult struct {
	Seed    Member   // the member that answered Hello
	Members int      // live members (alive or suspect) after the join, self included
	Failed  []string // members named by the seed that could not be reached
}

// Join listens if the node does not yet, says Hello to the seed at addr,
// then introduces itself with Join to every live member the seed named. A
// failed join leaves a node it started in no cluster (see joinStarted).
func (n *Node) Join(ctx context.Context, addr string) (JoinResult, error) {
	return n.joinStarted(func() (JoinResult, error) { return n.join(ctx, addr) })
}

// joinStarted starts the node if it is not running, then runs join. When
// that fails and the node was in no cluster before, it leaves again: it is
// free to start or join next (at a higher incarnation), not a one-node
// cluster nobody asked for.
func (n *Node) joinStarted(join func() (JoinResult, error)) (JoinResult, error) {
	_, started, err := n.start("")
	if err != nil {
		return JoinResult{}, err
	}
	res, err := join()
	if err != nil && started {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if lerr := n.Leave(ctx); lerr != nil && !errors.Is(lerr, ErrNotRunning) {
			n.log.WithError(lerr).Warn("join: leaving after the failed join")
		}
	}
	return res, err
}

// join is one attempt of Join on a node that Join or JoinRetry started.
func (n *Node) join(ctx context.Context, addr string) (JoinResult, error) {
	if _, err := n.Start(""); err != nil { // a node left meanwhile listens again
		return JoinResult{}, err
	}
	ack, err := n.mesh.Hello(ctx, addr)
	if errors.Is(err, mesh.ErrSelf) {
		return JoinResult{}, fmt.Errorf("join %s: %w; give the address of another member", addr, err)
	}
	if err != nil {
		return JoinResult{}, fmt.Errorf("join %s: %w", addr, err)
	}
	res := JoinResult{Seed: memberOf(ack.From, false)}
	self := n.Alias()
	var dials []protocol.Member
	for _, m := range ack.Members {
		if m.Alias != self && m.Alias != ack.From.Alias && (m.State == protocol.StateAlive || m.State == protocol.StateSuspect) {
			dials = append(dials, m)
		}
	}
	err = n.call(ctx, func(c *swim.Core) {
		if n.joinDials == nil {
			n.joinDials = make(map[string]bool)
		}
		for _, m := range dials {
			n.joinDials[m.Alias] = true
		}
		c.Merge(time.Now(), ack.Members)
	})
	if err != nil {
		return res, err
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var refusal error
	// At most joinDialsAtOnce at once: a seed's list is the seed's word, and
	// may name thousands of members at one address.
	slots := make(chan struct{}, joinDialsAtOnce)
	for _, m := range dials {
		wg.Add(1)
		slots <- struct{}{}
		go func(m protocol.Member) {
			defer func() { <-slots; wg.Done() }()
			jack, err := n.mesh.Join(ctx, m.Addr)
			n.call(context.Background(), func(c *swim.Core) {
				delete(n.joinDials, m.Alias)
				if err == nil {
					c.Merge(time.Now(), jack.Seen)
				}
			})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				res.Failed = append(res.Failed, m.Alias)
				n.warn.Warn("join-unreached", logrus.Fields{"alias": m.Alias, "error": err.Error()}, "join: member not reached; failure detection will decide")
				var re *mesh.RefusedError
				if errors.As(err, &re) && refusal == nil {
					refusal = err
				}
			}
		}(m)
	}
	wg.Wait()
	for _, e := range n.snap.Load().Entries {
		if e.State == protocol.StateAlive || e.State == protocol.StateSuspect {
			res.Members++
		}
	}
	if refusal != nil {
		return res, fmt.Errorf("join %s: %w", addr, refusal)
	}
	return res, nil
}

// joinDialsAtOnce bounds a join's Join dials under way, as mesh.Config's
// MaxDials does those of news.
const joinDialsAtOnce = 256

// JoinAny joins through the first of addrs that accepts, giving each at
// most perAddr; it fails, naming every reason, when none does.
func (n *Node) JoinAny(ctx context.Context, addrs []string, perAddr time.Duration) error {
	_, err := n.joinStarted(func() (JoinResult, error) { return n.joinFirst(ctx, addrs, perAddr) })
	return err
}

// joinRetrying joins through addr, trying again twice, after 200 ms and
// 600 ms, when the attempt failed without an answer (a connection reset or
// closed under a flood of handshakes, say); a refusal is final.
func (n *Node) joinRetrying(ctx context.Context, addr string) (JoinResult, error) {
	wait := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		res, err := n.join(ctx, addr)
		if err == nil || attempt == 3 || Final(err) {
			return res, err
		}
		if !pause(ctx, wait) {
			return res, err
		}
		wait *= 3
	}
}

// Leave announces a graceful departure, waits briefly for it to be written
// and closes every connection. The node can Start or Join again later.
func (n *Node) Leave(ctx context.Context) error {
	n.mu.Lock()
	if !n.running {
		n.mu.Unlock()
		return ErrNotRunning
	}
	n.running = false
	n.left = true
	n.mu.Unlock()
	err := n.call(ctx, func(c *swim.Core) { c.Leave(time.Now()) })
	n.mesh.Flush(time.Second)
	n.mesh.CloseAll()
	return err
}

// Close stops the node without a goodbye (Leave first for a graceful exit).
func (n *Node) Close() {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	n.closed = true
	wasRunning := n.core != nil
	n.running = false
	msrv := n.metrics
	n.mu.Unlock()
	if msrv != nil {
		msrv.Close()
	}
	if wasRunning {
		close(n.stop)
		<-n.loopDone
	}
	n.mesh.Close()
	n.jobs.Close()
	n.control.close()
}

// SetTags replaces this node's tags and gossips them at a new incarnation.
// The slots and boot tags belong to the node: they always carry the current
// slot count and the boot id, whatever tags is.
func (n *Node) SetTags(ctx context.Context, tags map[string]string) error {
	tags = n.ownTags(tags)
	if err := protocol.ValidTags(tags); err != nil {
		return err
	}
	n.mu.Lock()
	if n.core == nil { // not started: the tags go out with the first Hello
		upd := *n.self.Load()
		upd.Tags = tags
		n.self.Store(&upd)
		n.mu.Unlock()
		return nil
	}
	n.mu.Unlock()
	return n.call(ctx, func(c *swim.Core) { c.SetTags(time.Now(), tags) })
}

// WaitFor blocks until cond holds for the membership snapshot, or ctx ends.
func (n *Node) WaitFor(ctx context.Context, cond func(*Snapshot) bool) error {
	sub := n.Subscribe(64)
	defer sub.Close()
	tick := time.NewTicker(50 * time.Millisecond) // snapshots without events (RTT) and drops
	defer tick.Stop()
	for {
		if cond(n.Members()) {
			return nil
		}
		select {
		case <-sub.C:
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// handler adapts the node to mesh.Handler; its methods run on connection
// goroutines and only hand work to the run loop.
type handler Node

var _ mesh.Handler = (*handler)(nil)

// Admit answers from the published snapshot, not through the run loop: in
// a join storm every handshake would otherwise wait for a loaded loop's
// turn.
func (h *handler) Admit(hello bool, peer protocol.Member) ([]protocol.Member, error) {
	n := (*Node)(h)
	n.mu.Lock()
	running := n.core != nil && !n.closed
	n.mu.Unlock()
	if !running {
		return nil, mesh.ErrUnavailable
	}
	snap := n.snap.Load()
	if !hello {
		if e, known := snap.Get(peer.Alias); known {
			return []protocol.Member{e.Member}, nil
		}
		return nil, nil
	}
	members := make([]protocol.Member, len(snap.Entries))
	for i, e := range snap.Entries {
		members[i] = e.Member
	}
	n.helloMu.Lock()
	if n.helloAt == nil || len(n.helloAt) >= maxHelloAt {
		n.helloAt = make(map[string]uint64) // answers whose connection never came up
	}
	n.helloAt[peer.Alias] = snap.Version
	n.helloMu.Unlock()
	// An alias in use from another address was refused by the mesh
	// (mesh/claim.go) before this was called.
	return members, nil
}

// maxBackedOff bounds the refused sends one flush hands to the next (the
// rest are told at their next message).
const maxBackedOff = 1024

// maxHelloAt bounds helloAt: past it, the record starts afresh and the
// newcomers then in their handshake are sent the table once more.
const maxHelloAt = 1024

func (h *handler) PeerUp(peer protocol.Member, introduced bool) {
	(*Node)(h).deliverEvidence(inbound{kind: inUp, member: &peer, from: peer.Alias, introduced: introduced})
}

func (h *handler) PeerDown(alias string, reason error) {
	n := (*Node)(h)
	n.jobs.PeerDown(alias)
	n.deliverEvidence(inbound{kind: inDown, from: alias})
}

func (h *handler) DialFailed(alias string, refused bool, err error) {
	(*Node)(h).deliverEvidence(inbound{kind: inDialFailed, from: alias, refused: refused})
}

func (h *handler) Receive(from string, m protocol.Message) {
	n := (*Node)(h)
	switch m.Type().Family() {
	case protocol.FamilyMembership:
		w := 1 + protocol.Carried(m)
		if !n.shares.take(from, w) {
			n.dropped.Add(1)
			return
		}
		select {
		case n.inbox <- inbound{kind: inMsg, from: from, msg: m, weight: int32(w)}:
		default:
			n.shares.give(from, w)
			n.dropped.Add(1)
		}
	case protocol.FamilyJobs:
		n.jobs.Receive(from, m)
	case protocol.FamilyControl:
		n.control.receive(from, m)
	default:
		n.log.WithField("alias", from).Debugf("node: %s message ignored", m.Type())
	}
}

// inboxShares counts each sender's messages and their weight waiting in
// the inbox, and the weight of all. Senders at zero are deleted, so the map
// holds only those with messages queued.
type inboxShares struct {
	mu     sync.Mutex
	n      map[string]senderShare
	weight int
}

type senderShare struct{ msgs, weight int }

// take reserves a place for one more message of weight w from sender;
// false when the sender's share, or the inbox's weight, is full.
func (s *inboxShares) take(sender string, w int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	sh := s.n[sender]
	switch {
	case sh.msgs >= inboxShare,
		sh.msgs > 0 && sh.weight+w > inboxWeightShare,
		w > smallWeight && s.weight+w > inboxWeight:
		return false
	}
	if s.n == nil {
		s.n = make(map[string]senderShare)
	}
	s.n[sender] = senderShare{sh.msgs + 1, sh.weight + w}
	s.weight += w
	return true
}

// give returns the place of one message of weight w from sender, taken or
// not sent.
func (s *inboxShares) give(sender string, w int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sh, ok := s.n[sender]
	if !ok {
		return // not taken (a test's message put in the inbox directly)
	}
	s.weight -= w
	if sh.msgs <= 1 {
		delete(s.n, sender)
	} else {
		s.n[sender] = senderShare{sh.msgs - 1, sh.weight - w}
	}
}

func (n *Node) deliverEvidence(in inbound) {
	select {
	case n.evidence <- in:
	case <-n.loopDone:
	case <-n.stop:
	}
}
