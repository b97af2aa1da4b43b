package swim

import (
	"fmt"
	"math/rand"
	"slices"
	"testing"
	"time"

	"meshell/protocol"
)

// This file is a deterministic simulated network for Cores: a fake clock,
// an event queue ordered by time (ties by insertion), and a transport model
// that follows the driver's contract. Each pair of nodes shares one
// reliable, ordered connection (a message is delivered after the link's
// latency plus jitter, never before an earlier one on the same link). A
// send without a connection dials: the handshake calls Connected on both
// sides; a dial to a crashed node is refused after a round trip, one across
// a partition times out. Crashing a node closes its connections (ConnLost
// at the peers, after the link latency). A paused node gets no ticks and
// no deliveries: they are held and handed over, in order, on resume.
// Partitioned links black-hole traffic on open connections. Loss drops a
// message with the given probability (the message, not the connection).
//
// Every random choice comes from the simulation's seed and each Core's
// seed, so a seed gives the same run every time.

var simEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

type simKind uint8

const (
	evTick simKind = iota + 1
	evDeliver
	evConnLost
	evDialFailed
	evConnected
)

type simEvent struct {
	at      time.Time
	seq     uint64
	kind    simKind
	node    int // the node acted upon
	peer    int // the sender, or the member the evidence is about
	msg     protocol.Message
	refused bool
	gen     uint64
	member  protocol.Member   // evConnected: the peer's self-description
	seen    []protocol.Member // evConnected: the peer's view of this node (JoinAck.Seen)
	answer  bool              // evConnected: answer with our own handshake
}

// simQueue is a heap of events by time, then insertion. Each slot holds
// its event's sort key, so that comparisons do not load the event.
type simQueue []simSlot

type simSlot struct {
	at  time.Time
	seq uint64
	e   *simEvent
}

// before orders a against b: by time, then insertion.
func (a simSlot) before(b *simSlot) bool {
	if c := a.at.Compare(b.at); c != 0 {
		return c < 0
	}
	return a.seq < b.seq
}

func (q simQueue) peek() *simEvent { return q[0].e }

type simNode struct {
	core    *Core
	alias   string
	crashed bool
	paused  bool
	group   int
	held    []*simEvent
	tickGen uint64
	tickAt  time.Time
	sent    map[protocol.MsgType]uint64
}

// simRecord is one membership event seen by one node.
type simRecord struct {
	at       time.Time
	observer int
	kind     EventKind
	member   string
	state    protocol.State
	inc      uint64
}

type sim struct {
	tb    testing.TB
	now   time.Time
	rng   *rand.Rand
	cfg   Config
	nodes []*simNode
	index map[string]int
	conns map[link]bool
	last  []time.Time // per directed link: the last delivery time (FIFO)
	q     simQueue
	seq   uint64
	free  []*simEvent // processed events, for push to reuse

	latency     time.Duration                               // base one-way latency; each link adds up to as much again
	jitter      time.Duration                               // random extra per message
	loss        float64                                     // probability that a message is lost
	drop        func(from, to int, m protocol.Message) bool // drops chosen messages (nil: none)
	retransmit  func(from, to int) time.Duration            // extra delay of one message, as TCP's resend of a lost segment; later ones queue behind it
	dialTimeout time.Duration                               // a dial across a partition fails after this
	tcpCut      time.Duration                               // >0: a cut holds messages on open connections, delivered up to this long after the heal (TCP retransmission)
	cutHeld     []heldMsg                                   // messages held by a cut, in send order
	verify      bool                                        // check every cached NextDeadline against a fresh one

	log       []simRecord
	strays    map[string]time.Time // aliases no node has: when a message was last addressed to one
	delivered uint64
	dropped   uint64
	processed uint64
}

// heldMsg is a message sent across a cut on an open connection, waiting for
// TCP's retransmission once the cut heals.
type heldMsg struct {
	from, to int
	msg      protocol.Message
}

type simOptions struct {
	n         int
	seed      int64
	cfg       Config
	connected bool // every pair already connected (a joined full mesh)
	outsiders int  // the last outsiders nodes know nobody and nobody knows them
	verify    bool // check every cached NextDeadline against a fresh one
}

// newSim returns a cluster of n nodes that all know each other alive at
// incarnation 0, as after a completed join, with nothing left to gossip.
func newSim(tb testing.TB, o simOptions) *sim {
	if o.cfg == (Config{}) {
		o.cfg = LANConfig()
	}
	s := &sim{
		tb:          tb,
		now:         simEpoch,
		rng:         rand.New(rand.NewSource(o.seed)),
		cfg:         o.cfg,
		index:       map[string]int{},
		conns:       map[link]bool{},
		last:        make([]time.Time, o.n*o.n),
		latency:     time.Millisecond,
		jitter:      200 * time.Microsecond,
		dialTimeout: time.Second,
		verify:      o.verify,
	}
	members := make([]protocol.Member, o.n)
	for i := range members {
		members[i] = protocol.Member{Alias: fmt.Sprintf("n%03d", i), Addr: fmt.Sprintf("10.0.%d.%d:2254", i/250, i%250), State: protocol.StateAlive}
	}
	for i, m := range members {
		c := New(m, o.cfg, o.seed*1000+int64(i), s.now)
		if i < o.n-o.outsiders {
			c.bootstrap(s.now, members[:o.n-o.outsiders])
		}
		s.nodes = append(s.nodes, &simNode{core: c, alias: m.Alias, sent: map[protocol.MsgType]uint64{}})
		s.index[m.Alias] = i
	}
	if o.connected {
		for i := 0; i < o.n-o.outsiders; i++ {
			for j := i + 1; j < o.n-o.outsiders; j++ {
				s.conns[pair(i, j)] = true
			}
		}
	}
	for i := range s.nodes {
		s.flush(i)
	}
	return s
}

// bootstrap fills a new Core's table with members, alive, without any
// dissemination: the state of a cluster whose join is complete.
func (c *Core) bootstrap(now time.Time, members []protocol.Member) {
	for _, m := range members {
		if m.Alias == c.table.SelfAlias() {
			continue
		}
		c.table.Set(now, m)
		c.table.Vouch(m.Alias, m.Incarnation) // as by the handshake
		c.setLive(m.Alias, true)
		c.insertProbeTarget(m.Alias)
	}
	c.deadlineOK = false
}

// reuse hands the buffers of r, routed and logged, back to c for what it
// produces next, so that each flush does not grow them from nothing.
func (c *Core) reuse(r Ready) {
	if len(c.ready.Msgs) == 0 && len(c.ready.Events) == 0 {
		clear(r.Msgs)
		clear(r.Events)
		c.ready = Ready{Msgs: r.Msgs[:0], Events: r.Events[:0]}
	}
}

// pair is the key of the connection between nodes i and j, either way.
func pair(i, j int) link {
	if i > j {
		i, j = j, i
	}
	return link(i)<<32 | link(j)
}

// link is a pair of nodes packed in one word: a small, quickly hashed key.
type link uint64

// lat is the one-way latency of the link i→j: fixed per link, in
// [latency, 2·latency).
func (s *sim) lat(i, j int) time.Duration {
	k := (i*7919 + j*104729) % 1000
	if i > j {
		k = (j*7919 + i*104729) % 1000
	}
	return s.latency + s.latency*time.Duration(k)/1000
}

// push schedules a copy of ev, in a processed event's memory when there is
// one.
func (s *sim) push(ev simEvent) {
	var e *simEvent
	if n := len(s.free); n > 0 {
		e, s.free = s.free[n-1], s.free[:n-1]
	} else {
		e = new(simEvent)
	}
	*e = ev
	s.seq++
	e.seq = s.seq
	if e.at.Before(s.now) {
		e.at = s.now
	}
	heapPush(&s.q, simSlot{e.at, e.seq, e})
}

// step processes the next event. It reports false when there is none.
func (s *sim) step() bool {
	if len(s.q) == 0 {
		return false
	}
	e := heapPop(&s.q).e
	s.now = e.at
	s.process(e)
	if n := s.nodes[e.node]; !n.paused || e.kind == evTick {
		*e = simEvent{} // not held for a paused node: free for reuse
		s.free = append(s.free, e)
	}
	return true
}

// run processes every event up to d from now and leaves the clock there.
func (s *sim) run(d time.Duration) {
	s.runUntil(s.now.Add(d))
}

func (s *sim) runUntil(t time.Time) {
	for len(s.q) > 0 && !s.q.peek().at.After(t) {
		s.step()
	}
	if s.now.Before(t) {
		s.now = t
	}
}

// waitFor runs until cond holds, checking it every tick of simulated time,
// for at most max. It returns how long it took.
func (s *sim) waitFor(max, tick time.Duration, cond func() bool) (time.Duration, bool) {
	start := s.now
	for s.now.Sub(start) <= max {
		if cond() {
			return s.now.Sub(start), true
		}
		s.run(tick)
	}
	return s.now.Sub(start), cond()
}

func (s *sim) process(e *simEvent) {
	s.processed++
	if s.processed > 50_000_000 {
		s.tb.Fatalf("simulation runaway at %v", s.now.Sub(simEpoch))
	}
	n := s.nodes[e.node]
	if n.crashed {
		return
	}
	if n.paused {
		if e.kind != evTick {
			n.held = append(n.held, e)
		}
		return
	}
	switch e.kind {
	case evTick:
		if e.gen != n.tickGen {
			return
		}
		n.tickAt = time.Time{}
		n.core.Tick(s.now)
	case evDeliver:
		s.delivered++
		n.core.Step(s.now, s.nodes[e.peer].alias, e.msg)
	case evConnLost:
		n.core.ConnLost(s.now, s.nodes[e.peer].alias)
	case evDialFailed:
		n.core.DialFailed(s.now, s.nodes[e.peer].alias, e.refused)
	case evConnected:
		n.core.Connected(s.now, e.member)
		if e.seen != nil {
			n.core.Merge(s.now, e.seen)
		}
		if e.answer {
			var seen []protocol.Member
			if me, ok := n.core.Get(e.member.Alias); ok {
				seen = []protocol.Member{me.Member}
			}
			s.push(simEvent{at: s.now.Add(s.lat(e.node, e.peer)), kind: evConnected, node: e.peer, peer: e.node, member: n.core.Self(), seen: seen})
		}
	}
	s.flush(e.node)
}

// flush routes what node i's Core produced and schedules its next tick.
func (s *sim) flush(i int) {
	n := s.nodes[i]
	r := n.core.Ready()
	if len(s.log)+len(r.Events) > cap(s.log) {
		// Doubled: append grows a long log by a quarter, copying it each time.
		s.log = slices.Grow(s.log, max(len(s.log), len(r.Events)))
	}
	for _, ev := range r.Events {
		s.log = append(s.log, simRecord{at: s.now, observer: i, kind: ev.Kind, member: ev.Member.Alias, state: ev.Member.State, inc: ev.Member.Incarnation})
	}
	for _, o := range r.Msgs {
		s.route(i, o)
	}
	n.core.reuse(r)
	d := n.core.NextDeadline(s.now)
	if s.verify {
		if fresh := n.core.slowDeadline(s.now); !fresh.Equal(d) {
			s.tb.Fatalf("%s: cached deadline %v, fresh %v", n.alias, d.Sub(simEpoch), fresh.Sub(simEpoch))
		}
	}
	if !d.Equal(n.tickAt) {
		n.tickGen++
		n.tickAt = d
		s.push(simEvent{at: d, kind: evTick, node: i, gen: n.tickGen})
	}
}

// route sends one Outbound of node i over the simulated transport.
func (s *sim) route(i int, o Outbound) {
	j, ok := s.index[o.To]
	if !ok {
		// An address nobody answers at: the message is lost, and so is
		// the dial, which never reports.
		if s.strays == nil {
			s.strays = map[string]time.Time{}
		}
		s.strays[o.To] = s.now
		return
	}
	if j == i {
		return
	}
	s.nodes[i].sent[o.Msg.Type()]++
	if s.loss > 0 && s.rng.Float64() < s.loss || s.drop != nil && s.drop(i, j, o.Msg) {
		s.dropped++
		return
	}
	from, to := s.nodes[i], s.nodes[j]
	if s.conns[pair(i, j)] {
		if from.group != to.group {
			if s.tcpCut > 0 {
				s.cutHeld = append(s.cutHeld, heldMsg{i, j, o.Msg})
				return
			}
			s.dropped++ // black hole: the connection stays open
			return
		}
		s.deliver(i, j, o.Msg, s.now.Add(s.lat(i, j)))
		return
	}
	switch {
	case to.crashed:
		s.push(simEvent{at: s.now.Add(2 * s.lat(i, j)), kind: evDialFailed, node: i, peer: j, refused: true})
	case from.group != to.group:
		s.push(simEvent{at: s.now.Add(s.dialTimeout), kind: evDialFailed, node: i, peer: j})
	default:
		s.conns[pair(i, j)] = true
		at := s.now.Add(s.lat(i, j))
		s.push(simEvent{at: at, kind: evConnected, node: j, peer: i, member: from.core.Self(), answer: true})
		s.deliver(i, j, o.Msg, at)
	}
}

func (s *sim) deliver(i, j int, m protocol.Message, at time.Time) {
	if s.jitter > 0 {
		at = at.Add(time.Duration(s.rng.Int63n(int64(s.jitter))))
	}
	if s.retransmit != nil {
		at = at.Add(s.retransmit(i, j))
	}
	k := i*len(s.nodes) + j
	if at.Before(s.last[k]) {
		at = s.last[k]
	}
	s.last[k] = at
	s.push(simEvent{at: at, kind: evDeliver, node: j, peer: i, msg: m})
}

// crash stops node i for good: its connections close, so every peer with
// one gets ConnLost, and dials to it are refused.
func (s *sim) crash(i int) {
	s.nodes[i].crashed = true
	for j := range s.nodes {
		if j != i && s.conns[pair(i, j)] {
			delete(s.conns, pair(i, j))
			// The close comes after the data already on its way, as TCP's
			// FIN or RST would.
			at := s.now.Add(s.lat(i, j))
			if last := s.last[i*len(s.nodes)+j]; at.Before(last) {
				at = last
			}
			s.push(simEvent{at: at, kind: evConnLost, node: j, peer: i})
		}
	}
}

func (s *sim) pause(i int) { s.nodes[i].paused = true }

// resume hands a paused node everything held for it, in order, then lets it
// tick again.
func (s *sim) resume(i int) {
	n := s.nodes[i]
	n.paused = false
	held := n.held
	n.held = nil
	for _, e := range held {
		s.process(e)
	}
	n.tickAt = time.Time{}
	s.flush(i)
}

// partition puts each listed group of nodes on its own side; nodes not
// listed stay in group 0.
func (s *sim) partition(groups ...[]int) {
	for g, ns := range groups {
		for _, i := range ns {
			s.nodes[i].group = g + 1
		}
	}
}

// heal ends a partition. With tcpCut the messages held on open
// connections are delivered now, each link's after its own retransmission
// delay in [0, tcpCut) (RTO backoff), in order and ahead of later ones.
func (s *sim) heal() {
	for _, n := range s.nodes {
		n.group = 0
	}
	delay := map[[2]int]time.Duration{}
	for _, h := range s.cutHeld {
		k := [2]int{h.from, h.to}
		if _, ok := delay[k]; !ok {
			delay[k] = time.Duration(s.rng.Int63n(int64(s.tcpCut)))
		}
		if s.conns[pair(h.from, h.to)] && !s.nodes[h.from].crashed {
			s.deliver(h.from, h.to, h.msg, s.now.Add(s.lat(h.from, h.to)+delay[k]))
		}
	}
	s.cutHeld = nil
}

// state is what observer believes of member (StateUnknown if not listed).
func (s *sim) state(observer, member int) protocol.State {
	e, ok := s.nodes[observer].core.Get(s.nodes[member].alias)
	if !ok {
		return protocol.StateUnknown
	}
	return e.State
}

// running lists the nodes neither crashed nor paused.
func (s *sim) running() []int {
	var out []int
	for i, n := range s.nodes {
		if !n.crashed && !n.paused {
			out = append(out, i)
		}
	}
	return out
}

// allSee reports whether every running node other than member sees member
// in state st.
func (s *sim) allSee(member int, st protocol.State, observers []int) bool {
	for _, o := range observers {
		if o != member && s.state(o, member) != st {
			return false
		}
	}
	return true
}

// count returns how many records of kind concern member (any member if "").
func (s *sim) count(kind EventKind, member func(string) bool) int {
	n := 0
	for _, r := range s.log {
		if r.kind == kind && (member == nil || member(r.member)) {
			n++
		}
	}
	return n
}

// sentTotal sums the messages of the given types sent by the nodes (every
// type if none given).
func (s *sim) sentTotal(types ...protocol.MsgType) uint64 {
	var total uint64
	for _, n := range s.nodes {
		if len(types) == 0 {
			for _, v := range n.sent {
				total += v
			}
			continue
		}
		for _, t := range types {
			total += n.sent[t]
		}
	}
	return total
}

// fingerprint summarises a run: every event and every table, for
// determinism checks.
func (s *sim) fingerprint() string {
	h := uint64(14695981039346656037)
	mix := func(str string) {
		for i := 0; i < len(str); i++ {
			h ^= uint64(str[i])
			h *= 1099511628211
		}
	}
	for _, r := range s.log {
		mix(fmt.Sprintf("%d|%d|%s|%s|%d|%d;", r.at.UnixNano(), r.observer, r.kind, r.member, r.state, r.inc))
	}
	for _, n := range s.nodes {
		for _, e := range n.core.Entries() {
			mix(fmt.Sprintf("%s:%s@%d;", e.Alias, e.State, e.Incarnation))
		}
	}
	return fmt.Sprintf("%016x/%d events/%d delivered", h, len(s.log), s.delivered)
}

func (s *sim) alias(i int) string { return s.nodes[i].alias }

// isAlias returns a predicate matching the aliases of the given nodes.
func (s *sim) isAlias(nodes ...int) func(string) bool {
	set := map[string]bool{}
	for _, i := range nodes {
		set[s.nodes[i].alias] = true
	}
	return func(a string) bool { return set[a] }
}

func (s *sim) notAlias(nodes ...int) func(string) bool {
	in := s.isAlias(nodes...)
	return func(a string) bool { return !in(a) }
}

// slowDeadline recomputes NextDeadline from every map, without the timer
// heap, to check the heap.
func (c *Core) slowDeadline(now time.Time) time.Time {
	d := c.computeDeadline(now)
	var m time.Time
	at := func(t time.Time) {
		if m.IsZero() || t.Before(m) {
			m = t
		}
	}
	for _, t := range c.reapAt {
		at(t)
	}
	for _, s := range c.suspicions {
		at(s.deadline)
	}
	for _, r := range c.redials {
		if !r.next.IsZero() { // zero: waiting for the redial pace
			at(r.next)
		}
	}
	if t, ok := c.nextTimer(); ok != !m.IsZero() || ok && !t.at.Equal(m) {
		return m // the heap disagrees with the maps
	}
	return d
}
