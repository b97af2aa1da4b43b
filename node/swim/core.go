package swim

import (
	"fmt"
	"maps"
	"math"
	"math/rand"
	"slices"
	"time"

	"meshell/manager"
	"meshell/node/metrics"
	"meshell/protocol"
)

// Core is one node's SWIM state machine. It is not safe for concurrent use:
// one goroutine (the node's run loop, or a simulation) owns it.
//
// Time enters only through the now arguments; randomness only through the
// seeded generator given to New. Fed the same calls, two Cores produce the
// same messages and events.
type Core struct {
	cfg   Config
	table *manager.Table
	rng   *rand.Rand
	ready Ready
	left  bool // this node left gracefully: no probing, no refuting

	aware awareness
	queue queue
	seq   uint32

	// Probing (probe.go).
	order     []string        // this pass of the randomised round-robin
	orderIdx  int             // next position in order
	unprobed  map[string]bool // the members in order[orderIdx:]
	nextProbe time.Time       // when the next turn-based probe starts
	probes    []*probe        // in flight: at most one turn-based, plus out-of-turn ones
	relays    []*relay        // indirect probes run for others

	suspicions map[string]*suspicion
	redials    map[string]*redial   // failed members being re-contacted
	reapAt     map[string]time.Time // failed and left members to remove
	revived    map[string]time.Time // members back from failed, and when
	refuted    map[string]time.Time // members that refuted a suspicion here, and when (probeFailed)
	lost       map[string]bool      // members whose connection to us closed, until it is back (ConnLost)
	unverified map[string]time.Time // members never in direct contact, and when learned (limit.go)
	joined     map[string]time.Time // members new to the table less than suspicionMax ago, and when (probeFailed)
	heardAt    map[string]time.Time // when each member last sent this node a message (merge)
	askedAt    map[string]time.Time // when each member was last asked for its record (ask)
	answeredPP map[string]time.Time // when each member's PushPull was last answered (pushPullDue)
	buckets    map[string]*bucket   // new-member rate limit per sender (limit.go)
	redialPace bucket               // re-dials across all failed members (RedialRate)
	redialWait []waitingRedial      // re-dials due while redialPace was empty, oldest first

	nextPushPull time.Time // periodic full-state exchange
	lastRepair   time.Time // last digest-triggered exchange
	differSince  time.Time // first differing digest since lastRepair; zero when none
	lastChange   time.Time // last change of a member's state, incarnation, address or tags

	// The current run of new members, each added within suspicionMax of the
	// one before: a join storm (newcomer).
	growthStart, growthLast time.Time

	// Pushes of changes (spread): at most one per GossipInterval; changes
	// made meanwhile wait in pending and go out together.
	lastPush    time.Time
	pending     []protocol.Member
	pendingAt   map[string]int    // alias → index in pending
	pendingFrom []string          // senders of the pending changes: they need no copy
	merged      []protocol.Member // merge's result, reused by the next merge
	announce    bool              // pending holds a member that joined through us: push to all
	refutedAll  time.Time         // when a refutation last went to every live member (aboutSelf)

	live []string // other alive and suspect members, sorted; see setLive

	asked      time.Time // the deadline last handed to the driver, to measure late ticks
	deadline   time.Time // cached NextDeadline
	deadlineOK bool
	timers     timerHeap // suspicion, re-contact and reap deadlines (timers.go)

	stats Stats
	rtt   *metrics.Histogram // direct probe round trips (shared with scrapes: atomic)
}

// Stats counts what a Core did since it was created.
type Stats struct {
	Pings, Acks, PingReqs, Nacks uint64 // messages sent, by type
	Gossips, PushPulls, Leaves   uint64
	ProbesStarted                uint64 // turn-based and out-of-turn
	OutOfTurnProbes              uint64 // after a lost connection, a refused dial or news of a suspicion
	ProbesFailed                 uint64 // no ack, direct or indirect, by the end of the probe
	Suspected                    uint64 // members this node suspected from its own probe
	FailedFast                   uint64 // members declared failed by refused dials, without suspicion
	Refutations                  uint64 // times this node raised its incarnation to deny news
	Redials                      uint64 // pings sent to failed members
	RedialsPaced                 uint64 // re-dials that waited for RedialRate
	LateTicks                    uint64 // ticks that came more than ProbeTimeout after their deadline
	QueueDropped                 uint64 // piggyback updates dropped by the queue bound
	Implausible                  uint64 // news refused: it raised an incarnation beyond manager.MaxIncarnationJump
	Hearsay                      uint64 // third-party news that a member in touch with us left, or giving it a later incarnation or other tags, not believed (doubt)
	ForeignLeaves                uint64 // Leave messages about another member than their sender, ignored
	PingReqsRefused              uint64 // PingReqs for a target not known or left, nacked at once
	PingReqsOverCap              uint64 // PingReqs past the bounds of relays in flight (maxRelaysPerOrigin, maxRelays), nacked at once
	PushPullsUnanswered          uint64 // PushPulls merged but not answered: their sender asked again within half PushPullMinGap (pushPullDue)
	RateLimited                  uint64 // new members refused by their sender's rate limit
	OverCap                      uint64 // new members refused by MaxMembers
	MadeRoom                     uint64 // failed or left members reaped early to make room for a new one
	UnverifiedReaped             uint64 // failed or left members reaped early: never in contact
	NewcomerGrace                uint64 // failed probes of members new to the table, too recently to suspect
	SecondChances                uint64 // failed probes of members that refuted lately, probed again before a suspicion
	QueueLen                     int    // piggyback updates waiting now
	Awareness                    int    // Lifeguard local health now: 0 is healthy
}

// redial is the re-contact schedule of one failed member.
type redial struct {
	next    time.Time // zero while it waits in redialWait
	backoff time.Duration
	done    bool // no longer in redials: the member was revived, reaped or failed anew
}

// waitingRedial is a re-dial that was due when RedialRate allowed none; it
// is stale once r is done.
type waitingRedial struct {
	alias string
	r     *redial
}

// New returns a Core for self (alias, advertised address, tags; state and
// incarnation are taken from self as given). seed drives every random choice.
func New(self protocol.Member, cfg Config, seed int64, now time.Time) *Core {
	self.State = protocol.StateAlive
	self.Accuser = ""
	c := &Core{
		cfg:        cfg,
		table:      manager.NewTable(self, now),
		rng:        rand.New(rand.NewSource(seed)),
		aware:      awareness{max: cfg.AwarenessMax},
		queue:      newQueue(cfg.QueueLimit),
		suspicions: map[string]*suspicion{},
		redials:    map[string]*redial{},
		reapAt:     map[string]time.Time{},
		revived:    map[string]time.Time{},
		refuted:    map[string]time.Time{},
		lost:       map[string]bool{},
		unverified: map[string]time.Time{},
		joined:     map[string]time.Time{},
		heardAt:    map[string]time.Time{},
		askedAt:    map[string]time.Time{},
		answeredPP: map[string]time.Time{},
		buckets:    map[string]*bucket{},
		redialPace: bucket{tokens: float64(cfg.RedialRate), at: now},
		pendingAt:  map[string]int{},
		unprobed:   map[string]bool{},
		rtt:        metrics.NewHistogram(metrics.RTTBuckets()...),
	}
	c.seq = c.rng.Uint32()
	c.nextProbe = now.Add(c.jitter(cfg.ProbeInterval))
	// Stagger the periodic exchange so a cluster started at once does not
	// exchange all at once.
	c.nextPushPull = now.Add(cfg.PushPullInterval/2 + c.jitter(cfg.PushPullInterval))
	return c
}

// Self returns this node's own entry as it gossips it.
func (c *Core) Self() protocol.Member {
	e, _ := c.table.Get(c.table.SelfAlias())
	return e.Member
}

// Get returns this node's entry for alias.
func (c *Core) Get(alias string) (manager.Entry, bool) { return c.table.Get(alias) }

// Entries returns a copy of the membership table sorted by alias.
func (c *Core) Entries() []manager.Entry { return c.table.Entries() }

// Version changes whenever a member in the table does (not its RTT).
func (c *Core) Version() uint64 { return c.table.Version() }

// RTTVersion changes whenever a measured round trip does.
func (c *Core) RTTVersion() uint64 { return c.table.RTTVersion() }

// Config returns the timings in force.
func (c *Core) Config() Config { return c.cfg }

// SetConfig replaces the timings; they apply from the next probe on.
func (c *Core) SetConfig(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	c.cfg = cfg
	c.aware.max = cfg.AwarenessMax
	c.health(0)
	c.queue.limit = cfg.QueueLimit
	c.deadlineOK = false
	return nil
}

// Stats returns the counters.
func (c *Core) Stats() Stats {
	s := c.stats
	s.QueueDropped = c.queue.dropped
	s.QueueLen = c.queue.len()
	s.Awareness = c.aware.score
	return s
}

// RTTs is the histogram of the round trips this node's direct probes
// measured. It is safe to read from any goroutine.
func (c *Core) RTTs() *metrics.Histogram { return c.rtt }

// Awareness is Lifeguard's local health score: 0 is healthy; probe
// timeouts are multiplied by Awareness()+1.
func (c *Core) Awareness() int { return c.aware.score }

// Step feeds one membership message received from the member alias.
// Hello, HelloAck, Join and JoinAck are handled by the driver, not here.
//
// A node that left answers a Ping with an Ack telling that it left, and
// ignores every other message: it neither probes for others nor refutes.
func (c *Core) Step(now time.Time, from string, m protocol.Message) {
	c.enter(now)
	c.contact(from)
	if c.table.Has(from) {
		c.heardAt[from] = now // reaped with the member
	}
	if s := c.suspicions[from]; s != nil {
		s.heard = true
	}
	if c.left {
		if p, ok := m.(*protocol.Ping); ok {
			c.sendTo(from, &protocol.Ack{Seq: p.Seq, Digest: c.table.Digest(), Updates: []protocol.Member{c.Self()}})
		}
		return
	}
	switch m := m.(type) {
	case *protocol.Ping:
		changed, correct := c.merge(now, from, m.Updates)
		c.spread(now, from, changed)
		c.sendTo(from, &protocol.Ack{Seq: m.Seq, Digest: c.table.Digest(), Updates: c.piggyback(from, correct)})
	case *protocol.Ack:
		changed, correct := c.merge(now, from, m.Updates)
		c.spread(now, from, changed)
		c.correct(from, correct)
		c.handleAck(now, from, m)
	case *protocol.PingReq:
		c.handlePingReq(now, from, m)
	case *protocol.Nack:
		c.handleNack(now, from, m)
	case *protocol.Gossip:
		changed, correct := c.merge(now, from, m.Updates)
		if m.Direct {
			// Every live member got it from the sender: piggybacked only.
			for _, u := range changed {
				c.queue.push(u)
			}
		} else {
			c.spread(now, from, changed)
		}
		c.correct(from, correct)
	case *protocol.PushPull:
		changed, correct := c.merge(now, from, m.Members)
		c.spread(now, from, changed)
		if !m.Reply {
			if c.pushPullDue(now, from) {
				c.sendTo(from, &protocol.PushPull{Reply: true, Members: c.table.Members()})
			}
		} else {
			c.correct(from, correct)
		}
	case *protocol.Leave:
		if m.Alias != from {
			// Only a member announces its own departure: anyone else's
			// word for it would evict a live member.
			c.stats.ForeignLeaves++
			break
		}
		if e, ok := c.table.Get(m.Alias); ok {
			upd := e.Member
			upd.State, upd.Incarnation, upd.Accuser = protocol.StateLeft, m.Incarnation, ""
			changed, _ := c.merge(now, from, []protocol.Member{upd})
			c.spread(now, from, changed)
		}
	}
	// Anything heard from a member being probed shows that it runs: the
	// probe succeeds (without an RTT, which only a direct ack measures).
	// Under load this spares a slow member that is busy talking to us.
	if p := c.probeOf(from); p != nil {
		c.endProbe(p)
		if !p.outTurn {
			c.health(-1)
		}
	}
	c.probeTurn(now, now.Add(c.probeSlack()))
}

// Connected tells the Core that peer completed a handshake and described
// itself: it is alive at peer.Incarnation unless this node knows better, in
// which case the peer is sent what this node knows and refutes it.
func (c *Core) Connected(now time.Time, peer protocol.Member) {
	c.connected(now, peer)
}

// Introduced is Connected for a peer that joined through this node (its
// Hello): if it is news, the push that carries it goes to every live member
// rather than GossipFanout of them. Members that join at once through one
// seed never see each other in the seed's answer; this way they learn of
// each other within one GossipInterval, not after an epidemic's rounds,
// for one message per member, in a mesh where each joiner opens a
// connection to every member anyway.
//
// stale says that the table changed since this node answered the peer's
// Hello: the newcomer is then sent the table as it is now, since members
// introduced meanwhile are in neither that answer nor a push that went out
// before the newcomer was live here.
func (c *Core) Introduced(now time.Time, peer protocol.Member, stale bool) {
	was := c.announce
	c.announce = true // before the merge, whose push may go out at once
	if !c.connected(now, peer) {
		c.announce = was
		return
	}
	if stale {
		c.sendTo(peer.Alias, &protocol.PushPull{Reply: true, Members: c.table.Members()})
	}
}

// connected reports whether the peer's entry changed the table.
func (c *Core) connected(now time.Time, peer protocol.Member) bool {
	c.enter(now)
	if c.left || peer.Alias == c.table.SelfAlias() || peer.Alias == "" {
		return false
	}
	c.contact(peer.Alias)
	delete(c.lost, peer.Alias)
	peer.State, peer.Accuser = protocol.StateAlive, ""
	e, known, v := c.table.Judge(peer, true)
	if known && v != manager.Apply {
		c.table.Vouch(peer.Alias, peer.Incarnation)
		if e.State != protocol.StateAlive || e.Incarnation > peer.Incarnation ||
			e.Incarnation == peer.Incarnation && !sameRecord(e.Member, peer) {
			// We hold news the peer must answer: a suspicion or failure at
			// its incarnation, a later incarnation of its alias (it
			// restarted), or its alias at its incarnation as an earlier run
			// described it. It refutes with a higher incarnation.
			c.sendTo(peer.Alias, &protocol.Gossip{Updates: []protocol.Member{e.Member}})
		}
		return false
	}
	changed, _ := c.merge(now, peer.Alias, []protocol.Member{peer})
	c.spread(now, peer.Alias, changed)
	return len(changed) > 0
}

// vouch records a member's own word about its incarnation (see
// manager.Judge): its alive entry, or its left one when it leaves.
func (c *Core) vouch(own bool, u protocol.Member) {
	if own && (u.State == protocol.StateAlive || u.State == protocol.StateLeft) {
		c.table.Vouch(u.Alias, u.Incarnation)
	}
}

// Merge folds members learned from a handshake answer into the table. News
// about this node itself is refuted when it is wrong.
func (c *Core) Merge(now time.Time, members []protocol.Member) {
	c.enter(now)
	if c.left {
		return
	}
	changed, _ := c.merge(now, "", members)
	c.spread(now, "", changed)
}

// Leave marks this node left and tells every other live member directly,
// so that the news does not wait for gossip.
func (c *Core) Leave(now time.Time) {
	c.enter(now)
	if c.left {
		return
	}
	self := c.Self()
	self.State = protocol.StateLeft
	c.table.Set(now, self)
	c.left = true
	c.probes, c.relays = nil, nil
	c.stats.Leaves += uint64(len(c.liveMembers()))
	c.sendToLive(&protocol.Leave{Alias: self.Alias, Incarnation: self.Incarnation})
	c.forgetOthers(now)
}

// forgetOthers reaps every member but this node: one that left belongs to no
// cluster, and starts again alone.
func (c *Core) forgetOthers(now time.Time) {
	self := c.table.SelfAlias()
	for _, m := range slices.Clone(c.table.Members()) {
		if m.Alias != self {
			c.forget(now, m)
		}
	}
}

// ForceLeave marks the failed member alias left at its incarnation (left
// beats failed), on an operator's word: it is no longer re-dialled, and it
// is reaped as a member that left. It refuses a member that is not failed:
// one alive or suspect may still answer, and this node itself leaves with
// Leave. A member already left, or unknown, needs nothing.
//
// The change is not gossiped: the operator's request reaches every member
// itself, and a member that missed it learns it from a push/pull, since
// left wins over failed at one incarnation.
func (c *Core) ForceLeave(now time.Time, alias string) error {
	c.enter(now)
	if alias == c.table.SelfAlias() {
		return fmt.Errorf("%s is this node: use !leave", alias)
	}
	e, ok := c.table.Get(alias)
	switch {
	case !ok || e.State == protocol.StateLeft:
		return nil
	case e.State != protocol.StateFailed:
		return fmt.Errorf("%s is %s here: only a failed member can be forced out (stop it, or let it leave with !leave)", alias, e.State)
	}
	upd := e.Member
	upd.State, upd.Accuser = protocol.StateLeft, ""
	c.table.Set(now, upd)
	cur, _ := c.table.Get(alias)
	c.changed(now, e, true, cur.Member, "")
	return nil
}

// Rejoin makes a node that left alive again at a higher incarnation, at
// addr (the address it listens on now), in a cluster of its own (it forgot
// the others when it left); it joins one with a Join, as any new node does.
func (c *Core) Rejoin(now time.Time, addr string) {
	c.enter(now)
	if !c.left {
		return
	}
	c.forgetOthers(now) // what it heard while it was out
	self := c.Self()
	self.State = protocol.StateAlive
	self.Addr = addr
	self.Incarnation = manager.NextIncarnation(self.Incarnation)
	c.table.Set(now, self)
	c.left = false
	c.queue.push(self)
	c.nextProbe = now
}

// SetTags changes this node's tags and gossips them at a new incarnation,
// to every live member at once: members in touch with this node take its
// tags from its own word only (doubt).
func (c *Core) SetTags(now time.Time, tags map[string]string) {
	c.enter(now)
	self := c.Self()
	self.Tags = maps.Clone(tags)
	self.Incarnation = manager.NextIncarnation(self.Incarnation)
	c.table.Set(now, self)
	if !c.left {
		c.announce = true
		c.spread(now, "", []protocol.Member{self})
	}
}

// Ready returns and clears what the Core produced.
func (c *Core) Ready() Ready {
	r := c.ready
	c.ready = Ready{}
	return r
}

// merge applies updates received from the member from ("" for a
// handshake) and returns the updates that changed the table, to be passed
// on; the slice is reused by the next merge. correct is set when the sender
// holds stale news about this node and should be sent its entry.
func (c *Core) merge(now time.Time, from string, updates []protocol.Member) (changed []protocol.Member, correct bool) {
	changed = c.merged[:0]
	self := c.table.SelfAlias()
	cutOff := c.cutOff(now, from)
	for _, u := range updates {
		if u.Alias == self {
			if c.aboutSelf(now, u, from == "") {
				correct = true
			}
			continue
		}
		if cutOff && u.Alias != from && (u.State == protocol.StateSuspect || u.State == protocol.StateFailed) {
			continue
		}
		own := from != "" && u.Alias == from // the member's own word
		accuser := u.Accuser
		u.Accuser = ""
		stepped := false
		// One lookup serves the checks below and the verdict; news stepped
		// down from failed to suspect is judged again.
		prev, known, v := c.table.Judge(u, own)
		if !own && known && v != manager.Implausible && u.Incarnation >= prev.Incarnation && (prev.State == protocol.StateAlive || prev.State == protocol.StateSuspect) {
			var skip bool
			if u, skip, stepped = c.doubt(now, from, u, prev); skip {
				continue
			}
			_, _, v = c.table.Judge(u, own)
		}
		if u.State == protocol.StateSuspect {
			// A suspicion we already hold at this incarnation may come from
			// a new accuser: Lifeguard's confirmation. Only an explicit
			// accuser confirms: a copy that names none (a push/pull, an
			// echo) is the same accusation again, not its sender's.
			if s := c.suspicions[u.Alias]; s != nil && s.inc == u.Incarnation {
				if accuser != "" && c.confirm(u.Alias, s, accuser) {
					// Passed on by piggybacking only: the confirmer pushed
					// it itself, and every member probes the suspect on
					// its own, so an epidemic push per confirmation would
					// only multiply traffic.
					m := prev.Member
					m.Accuser = accuser
					c.queue.push(m)
				}
				continue
			}
		}
		switch {
		case v == manager.Implausible:
			c.stats.Implausible++
			continue
		case v != manager.Apply:
			c.vouch(own, u)
			continue
		case !known && !c.admit(now, from):
			continue
		}
		if !known && !own {
			c.unverified[u.Alias] = now
		}
		if !known {
			c.joined[u.Alias] = now
			if c.growthLast.IsZero() || now.Sub(c.growthLast) >= c.suspicionMax() {
				c.growthStart = now
			}
			c.growthLast = now
		}
		c.table.Set(now, u)
		c.vouch(own, u)
		cur, _ := c.table.Get(u.Alias)
		c.changed(now, prev, known, cur.Member, accuser)
		m := cur.Member
		if m.State == protocol.StateSuspect {
			m.Accuser = accuser
		}
		if stepped {
			if s := c.suspicions[m.Alias]; s != nil {
				s.hearsay = true
			}
			// Not passed on: if the failure is real its own news spreads,
			// and if stale, passing it on would make it everyone's.
			c.sendTo(m.Alias, &protocol.Gossip{Updates: []protocol.Member{m}})
			continue
		}
		changed = append(changed, m)
		switch {
		case !own && (m.State == protocol.StateFailed || m.State == protocol.StateLeft):
			// Failed or left on someone else's word (gossip, a push/pull,
			// perhaps a forged frame): the member is told at once, so
			// that if it runs it refutes now rather than never.
			c.sendTo(m.Alias, &protocol.Gossip{Updates: []protocol.Member{m}})
		case !own && m.State == protocol.StateSuspect && now.Sub(c.heardAt[m.Alias]) < c.heardLately():
			// Suspected on someone else's word, and it spoke to us just
			// now: our link to it works where the accuser's may not (after
			// a cut heals, the accuser's news to it waits in TCP's
			// retransmission), so it is told from here and refutes in time.
			c.sendTo(m.Alias, &protocol.Gossip{Updates: []protocol.Member{m}})
		}
	}
	c.merged = changed
	return changed, correct
}

// doubt applies the rules for hearsay — news from a third party, or a
// handshake's (from "") — about a member held alive or suspect, at its
// incarnation or above, before the precedence rule judges it. It returns
// the update to judge instead, skip to drop it, and stepped when news of a
// departure became a suspicion.
//
// Hearsay of a failure that the member had no time to refute here — we
// never suspected it, or only just heard of the suspicion — or that it
// belied by speaking to us since the suspicion began, makes it suspect,
// not failed, and leaves that suspicion to its timer; the member is told
// so that it refutes if it runs. Such news is most likely stale, from
// across a healed cut and held back by TCP retransmission together with
// the suspicion before it (sim_heal_test.go). A real failure is confirmed
// by the timer, and a crash is seen sooner by our own connection's loss:
// news of a failure about a member whose connection to us closed is a
// verdict.
//
// A member in touch with us (inTouch) says for itself that it leaves, what
// its tags are and when its incarnation rises: hearsay that it left, or
// that it is alive at a later incarnation or with other tags, is not
// believed — the member is asked for its record instead (a leaver's own
// Leave comes on its connection, before the connection closes); hearsay
// that it was suspect or failed at a later incarnation is a suspicion at
// the incarnation held. So a peer that forges news at ever higher
// incarnations can make a member suspect for as long as it takes to
// refute, one above the incarnation held, but never failed, left or
// retagged, and cannot make its incarnation jump; and a member that leaves
// is never suspected for the news of it outrunning its own Leave.
func (c *Core) doubt(now time.Time, from string, u protocol.Member, prev manager.Entry) (_ protocol.Member, skip, stepped bool) {
	touch := from != "" && c.inTouch(u.Alias)
	raises := u.Incarnation > prev.Incarnation
	departs := (u.State == protocol.StateSuspect || u.State == protocol.StateFailed) && raises
	leaves := u.State == protocol.StateLeft
	fails := u.State == protocol.StateFailed && u.Incarnation == prev.Incarnation && !c.lost[u.Alias]
	s := c.suspicions[u.Alias]
	switch {
	case prev.State == protocol.StateSuspect && s != nil && fails && s.inc == u.Incarnation &&
		(s.hearsay || s.heard || now.Sub(s.start) < c.aware.scale(c.cfg.ProbeTimeout)),
		prev.State == protocol.StateSuspect && s != nil && touch && departs:
		s.hearsay = true
		return u, true, false
	case prev.State == protocol.StateAlive && from != "" && (fails || touch && departs):
		m := prev.Member
		m.State, m.Accuser = protocol.StateSuspect, ""
		return m, false, true
	case touch && (leaves || u.State == protocol.StateAlive && (raises || u.Tags != nil && !maps.Equal(u.Tags, prev.Tags))):
		c.stats.Hearsay++
		if raises || leaves {
			c.ask(now, prev.Member)
		}
		return u, true, false
	case touch && u.Tags != nil && !maps.Equal(u.Tags, prev.Tags):
		c.stats.Hearsay++
		u.Tags = nil // the news without the tags: Table.Set keeps those held
	}
	return u, false, false
}

// inTouch reports whether member alias's connection to us is up: it
// reached us itself and has not gone since.
func (c *Core) inTouch(alias string) bool {
	_, unverified := c.unverified[alias]
	return !unverified && !c.lost[alias]
}

// ask sends member m its record as held here, at most once a probe
// interval: if the member's is newer it answers with it, in its own word
// (aboutSelf, correct).
func (c *Core) ask(now time.Time, m protocol.Member) {
	if at, ok := c.askedAt[m.Alias]; ok && now.Sub(at) < c.cfg.ProbeInterval {
		return
	}
	c.askedAt[m.Alias] = now
	c.sendTo(m.Alias, &protocol.Gossip{Updates: []protocol.Member{m}})
}

// heardLately is how recent a member's last message must be for this node
// to tell it of a suspicion heard from others: four probe intervals, 1 s
// with the lan profile.
func (c *Core) heardLately() time.Duration { return 4 * c.cfg.ProbeInterval }

// cutOff reports whether the sender from is, or was until less than a
// longest suspicion ago, failed in this node's view. Such a sender was cut
// off from us — typically the other half of a partition that is healing —
// and its accusations (suspect or failed) about third members describe its
// side of the cut, not ours: merging them would mark our own live
// neighbours failed for the moment it takes them to refute, which they do
// within that time because the sender tells them too. merge drops those
// accusations, deciding once per message (the message may revive the
// sender on its way); we detect our neighbours' failures ourselves, and the
// sender's news about itself and good news still apply.
func (c *Core) cutOff(now time.Time, from string) bool {
	if from == "" {
		return false
	}
	if e, ok := c.table.Get(from); ok && e.State == protocol.StateFailed {
		return true
	}
	at, ok := c.revived[from]
	if !ok {
		return false
	}
	if now.Sub(at) < c.suspicionMax() {
		return true
	}
	delete(c.revived, from)
	return false
}

// suspicionMax is the longest a suspicion can last at the current size
// and local health.
func (c *Core) suspicionMax() time.Duration {
	return time.Duration(c.cfg.SuspicionMaxMult) * c.suspicionMin()
}

// suspicionMin is the shortest a suspicion can last at the current size
// and local health.
func (c *Core) suspicionMin() time.Duration { return c.aware.scale(c.suspicionBase()) }

// suspicionBase is the shortest a suspicion can last at the current size
// and full health.
func (c *Core) suspicionBase() time.Duration {
	return time.Duration(float64(c.cfg.SuspicionMult) * math.Max(1, math.Log10(float64(c.clusterSize()))) * float64(c.cfg.ProbeInterval))
}

// aboutSelf answers news about this node. Only the node itself refutes:
// news that it is suspect, failed or left at its incarnation or above, of
// any later incarnation, or alive at its incarnation with another address
// or tags (forged, or an earlier run's: see sameRecord), makes it alive at a
// higher incarnation than the news. It reports whether the sender should be
// sent this node's entry (the news was wrong, stale or implausible).
// handshake news (the table of the member this node joins through) is
// believed up to manager.MaxBelievedIncarnation: a node that restarted
// after refuting far-fetched news must come back above what the cluster
// holds of it.
func (c *Core) aboutSelf(now time.Time, u protocol.Member, handshake bool) bool {
	self := c.Self()
	switch {
	case c.left:
		return false
	case !handshake && !manager.Plausible(self.Incarnation, u.Incarnation),
		handshake && u.Incarnation > manager.MaxBelievedIncarnation:
		// Forged or corrupt: refuting it would take this node there, on
		// the way to an incarnation it can no longer raise.
		c.stats.Implausible++
		return true
	case u.Incarnation > self.Incarnation,
		u.Incarnation == self.Incarnation && (u.State != protocol.StateAlive || !sameRecord(u, self)):
		old := self.Incarnation
		self.Incarnation = manager.NextIncarnation(u.Incarnation)
		self.State = protocol.StateAlive
		c.table.Set(now, self)
		c.stats.Refutations++
		if u.State == protocol.StateSuspect || u.State == protocol.StateFailed {
			// Lifeguard: being accused hints that this node is the slow one.
			c.health(1)
		}
		// To every live member, once a probe interval: those in touch with
		// this node take a raised incarnation from its own word only
		// (doubt), and news above anything it said may be refused from
		// anyone else (manager.Judge). More often, one forged frame would
		// cost N−1 messages; later refutations spread by gossip, and a
		// member that refuses them asks this node (ask).
		toAll := now.Sub(c.refutedAll) >= c.cfg.ProbeInterval
		if toAll {
			c.refutedAll = now
		}
		if u.Incarnation <= old || !toAll {
			c.announce = c.announce || toAll
			c.spread(now, "", []protocol.Member{self})
			return true
		}
		c.deadlineOK = false
		c.queue.push(self)
		c.sendToLive(&protocol.Gossip{Updates: []protocol.Member{self}})
		return true
	case u.Incarnation < self.Incarnation:
		return true // the sender holds an old incarnation of us
	}
	return false
}

// sameRecord reports whether news u of a member gives its address and tags
// as the member itself, self, has them (news without tags says nothing of
// them, manager.Table.Set). At one incarnation alive news changes nothing,
// so a record that differs would stay in the tables: a forged one, or an
// earlier run's of an alias restarted before the cluster saw it go (both
// runs start at one incarnation; the earlier one's boot id, which
// operators sign for, would stay). A node's record changes only with its
// incarnation, so within one run it never differs.
func sameRecord(u, self protocol.Member) bool {
	return u.Addr == self.Addr && (u.Tags == nil || maps.Equal(u.Tags, self.Tags))
}

// confirm records a Lifeguard confirmation of suspicion s and re-arms its
// timer when it moved.
func (c *Core) confirm(alias string, s *suspicion, accuser string) bool {
	if !s.confirm(accuser) {
		return false
	}
	c.arm(timerSuspicion, alias, s.deadline)
	return true
}

// changed keeps timers, the probe order and events in step with a table
// change from prev (known or not) to cur. accuser is the suspect news'
// accuser.
func (c *Core) changed(now time.Time, prev manager.Entry, known bool, cur protocol.Member, accuser string) {
	c.lastChange = now
	if k := transition(prev, known, cur); k != 0 {
		ev := Event{Kind: k, Member: cur, At: now}
		if k == MemberSuspect {
			ev.Accuser = accuser
		}
		c.ready.Events = append(c.ready.Events, ev)
	}
	live := cur.State == protocol.StateAlive || cur.State == protocol.StateSuspect
	wasLive := known && (prev.State == protocol.StateAlive || prev.State == protocol.StateSuspect)
	if live && !wasLive {
		c.setLive(cur.Alias, true)
		c.insertProbeTarget(cur.Alias)
	}
	if !live && wasLive {
		c.setLive(cur.Alias, false)
	}
	if !live {
		c.dropProbes(cur.Alias)
	}

	if known && prev.State == protocol.StateFailed && cur.State == protocol.StateAlive {
		c.revived[cur.Alias] = now
	}
	if known && prev.State == protocol.StateSuspect && cur.State == protocol.StateAlive {
		c.refuted[cur.Alias] = now
	}
	delete(c.suspicions, cur.Alias)
	if cur.State == protocol.StateSuspect {
		c.startSuspicion(now, cur, accuser)
	}
	if cur.State == protocol.StateFailed {
		if _, ok := c.redials[cur.Alias]; !ok || !known || prev.State != protocol.StateFailed {
			// Only a member once in contact is re-dialled: one known by
			// hearsay alone is not dialled again on hearsay.
			if _, hearsay := c.unverified[cur.Alias]; !hearsay {
				r := &redial{next: now.Add(c.jitter(c.cfg.ReconnectBase)), backoff: c.cfg.ReconnectBase}
				c.dropRedial(cur.Alias)
				c.redials[cur.Alias] = r
				c.armRedial(cur.Alias, r)
			}
			c.reapAt[cur.Alias] = c.reapTime(now, cur.Alias, cur.State)
			c.arm(timerReap, cur.Alias, c.reapAt[cur.Alias])
		}
	} else {
		c.dropRedial(cur.Alias)
	}
	switch cur.State {
	case protocol.StateLeft:
		if !known || prev.State != protocol.StateLeft {
			c.reapAt[cur.Alias] = c.reapTime(now, cur.Alias, cur.State)
			c.arm(timerReap, cur.Alias, c.reapAt[cur.Alias])
		}
	case protocol.StateFailed:
	default:
		delete(c.reapAt, cur.Alias)
	}
}

// startSuspicion starts the timer for a member now suspect. When the
// accusation is someone else's, this node may probe the member out of turn
// (newsProbe): its own failed probe is then a confirmation, and its ping
// carries the suspicion to the member, which refutes it if it is alive.
func (c *Core) startSuspicion(now time.Time, m protocol.Member, accuser string) {
	n := c.clusterSize()
	lo := c.suspicionBase()
	hi := time.Duration(c.cfg.SuspicionMaxMult) * lo
	k := min(c.cfg.IndirectChecks, max(0, n-2))
	if accuser == "" {
		accuser = "?"
	}
	s := newSuspicion(now, m.Incarnation, accuser, k, lo, hi, c.aware.factor())
	c.suspicions[m.Alias] = s
	c.arm(timerSuspicion, m.Alias, s.deadline)
	if accuser != c.table.SelfAlias() && c.newsProbe(m.Alias, accuser) {
		c.startProbe(now, m.Alias, true)
		if p := c.probeOf(m.Alias); p != nil {
			p.onNews = true
		}
	}
}

// newsProbe decides whether news that accuser suspects target makes this
// node probe target itself. Lifeguard needs IndirectChecks independent
// confirmations, so only that many members do: those whose hash with the
// target's alias is the lowest among the live members (all of them agree
// when their tables do). Every member probing made each suspicion cost N
// probes and, in a join storm, fed the load that starves probes into more
// suspicions. At most IndirectChecks+1 such probes run at once on a node,
// so that a mass event (a partition, many crashes) does not make it probe
// every suspect at once; probes after a lost connection or a refused dial
// are hard evidence and not bounded.
func (c *Core) newsProbe(target, accuser string) bool {
	k := c.cfg.IndirectChecks
	running := 0
	for _, p := range c.probes {
		if p.onNews {
			running++
		}
	}
	if running > k {
		return false
	}
	own := proberHash(target, c.table.SelfAlias())
	below := 0
	for _, a := range c.liveMembers() {
		if a != target && a != accuser && proberHash(target, a) < own {
			if below++; below >= k {
				return false
			}
		}
	}
	return true
}

// proberHash orders the members asked to check a suspicion of target:
// FNV-1a of target, a zero byte and member, without allocating.
func proberHash(target, member string) uint32 {
	const prime = 16777619
	h := uint32(2166136261)
	for i := 0; i < len(target); i++ {
		h = (h ^ uint32(target[i])) * prime
	}
	h *= prime // the zero byte: h ^ 0 == h
	for i := 0; i < len(member); i++ {
		h = (h ^ uint32(member[i])) * prime
	}
	return h
}

// spread disseminates changed updates: each is queued to ride on pings and
// acks, and all of them are pushed in one Gossip to GossipFanout random
// live members other than from — at once, unless a push went out less than
// GossipInterval ago; then they wait and go out with the changes that
// follow (pushGossip), so a storm of changes costs a bounded rate of pushes.
func (c *Core) spread(now time.Time, from string, changed []protocol.Member) {
	if len(changed) == 0 || c.left {
		return
	}
	c.deadlineOK = false
	for _, m := range changed {
		c.queue.push(m)
		if i, ok := c.pendingAt[m.Alias]; ok {
			c.pending[i] = m
		} else {
			c.pendingAt[m.Alias] = len(c.pending)
			c.pending = append(c.pending, m)
		}
	}
	if from != "" && !slices.Contains(c.pendingFrom, from) && len(c.pendingFrom) < maxPendingFrom {
		c.pendingFrom = append(c.pendingFrom, from)
	}
	c.pushGossip(now)
}

// maxPendingFrom bounds the senders a batched push avoids.
const maxPendingFrom = 8

// pushGossip sends the pending changes when a push is due.
func (c *Core) pushGossip(now time.Time) {
	if len(c.pending) == 0 || c.left || (!c.lastPush.IsZero() && now.Sub(c.lastPush) < c.cfg.GossipInterval) {
		return
	}
	c.lastPush = now
	c.deadlineOK = false
	batch := c.pending[:min(len(c.pending), protocol.MaxMembersPerFrame)]
	// Changes that waited here go out as the table holds them now; those
	// beyond one frame go with the next push.
	updates := c.asHeld(batch)
	n := copy(c.pending, c.pending[len(batch):])
	clear(c.pending[n:])
	c.pending = c.pending[:n]
	if len(updates) > 0 && c.announce {
		// To every live member, senders and newcomers included: those
		// that joined at once learn of each other here.
		c.sendToLive(&protocol.Gossip{Updates: updates, Direct: true})
	} else if len(updates) > 0 {
		g := &protocol.Gossip{Updates: updates}
		for _, a := range c.pick(c.cfg.GossipFanout, c.pendingFrom...) {
			c.sendTo(a, g)
		}
	}
	c.announce = c.announce && len(c.pending) > 0
	clear(c.pendingAt)
	for i, m := range c.pending {
		c.pendingAt[m.Alias] = i
	}
	c.pendingFrom = c.pendingFrom[:0]
}

// asHeld returns updates as the table holds each member now: a copy that
// waited (a batched push, a resent ping) never carries news the table has
// since replaced — a member's alive entry after it left, which a newcomer,
// knowing nothing of it, would take — and a reaped member is left out.
func (c *Core) asHeld(updates []protocol.Member) []protocol.Member {
	out := make([]protocol.Member, 0, len(updates))
	for _, m := range updates {
		e, ok := c.table.Get(m.Alias)
		switch {
		case !ok:
			continue
		case e.Incarnation != m.Incarnation || e.State != m.State:
			m = e.Member
		}
		out = append(out, m)
	}
	return out
}

// nextPush is when pending changes go out; zero when none wait.
func (c *Core) nextPush() time.Time {
	if len(c.pending) == 0 || c.left {
		return time.Time{}
	}
	return c.lastPush.Add(c.cfg.GossipInterval)
}

// correct sends this node's own entry to from, which holds stale news
// about it.
func (c *Core) correct(from string, need bool) {
	if need && from != "" {
		c.sendTo(from, &protocol.Gossip{Updates: []protocol.Member{c.Self()}})
	}
}

// piggyback returns the updates to carry on a ping or ack to member to:
// this node's own entry when to holds stale news of it (correct), to's own
// entry when this node holds it suspect, failed or left (so that, talking
// to us, it refutes), then the least-sent, newest updates of the queue.
func (c *Core) piggyback(to string, correct bool) []protocol.Member {
	var out []protocol.Member
	var skip []string
	if correct {
		self := c.Self()
		out = append(out, self)
		skip = append(skip, self.Alias)
	}
	if e, ok := c.table.Get(to); ok && (e.State == protocol.StateSuspect || e.State == protocol.StateFailed || e.State == protocol.StateLeft) {
		out = append(out, e.Member)
		skip = append(skip, to)
	}
	room := c.cfg.MaxPiggyback - len(out)
	return c.queue.take(out, room, c.retransmitLimit(), skip...)
}

// retransmitLimit is how many messages carry one update: λ·⌈log10(N+1)⌉.
func (c *Core) retransmitLimit() int {
	return c.cfg.RetransmitMult * int(math.Ceil(math.Log10(float64(c.clusterSize()+1))))
}

// clusterSize counts the live members, this node included.
func (c *Core) clusterSize() int { return len(c.liveMembers()) + 1 }

// liveMembers returns the other members that are alive or suspect, sorted
// by alias. The slice is shared until the next table change: do not keep it.
func (c *Core) liveMembers() []string { return c.live }

// setLive keeps the sorted list of live members in step with a member's
// state, in O(N) without sorting or copying the table.
func (c *Core) setLive(alias string, live bool) {
	i, found := slices.BinarySearch(c.live, alias)
	switch {
	case live && !found:
		c.live = slices.Insert(c.live, i, alias)
	case !live && found:
		c.live = slices.Delete(c.live, i, i+1)
	}
}

// pick returns up to k distinct random live members, none of them in
// exclude.
func (c *Core) pick(k int, exclude ...string) []string {
	live := c.liveMembers()
	if k <= 0 || len(live) == 0 {
		return nil
	}
	if len(live) > 4*k+len(exclude) {
		// Large cluster: sample without copying the member list.
		out := make([]string, 0, k)
		for len(out) < k {
			a := live[c.rng.Intn(len(live))]
			if !slices.Contains(exclude, a) && !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
		return out
	}
	cand := make([]string, 0, len(live))
	for _, a := range live {
		if !slices.Contains(exclude, a) {
			cand = append(cand, a)
		}
	}
	for i := 0; i < k && i < len(cand); i++ {
		j := i + c.rng.Intn(len(cand)-i)
		cand[i], cand[j] = cand[j], cand[i]
	}
	if len(cand) > k {
		cand = cand[:k]
	}
	return cand
}

// pickAlive is pick restricted to members alive in the table: the relays
// of an indirect probe.
func (c *Core) pickAlive(k int, exclude ...string) []string {
	out := make([]string, 0, k)
	for _, a := range c.pick(k+2, exclude...) {
		if e, _ := c.table.Get(a); e.State == protocol.StateAlive && len(out) < k {
			out = append(out, a)
		}
	}
	return out
}

// sendTo queues m for the member alias, with its advertised address for the
// driver to dial.
func (c *Core) sendTo(alias string, m protocol.Message) {
	if alias == "" || alias == c.table.SelfAlias() {
		return
	}
	e, _ := c.table.Get(alias)
	c.ready.Msgs = append(c.ready.Msgs, Outbound{To: alias, Addr: e.Addr, Msg: m})
	switch m.(type) {
	case *protocol.Ping:
		c.stats.Pings++
	case *protocol.Ack:
		c.stats.Acks++
	case *protocol.PingReq:
		c.stats.PingReqs++
	case *protocol.Nack:
		c.stats.Nacks++
	case *protocol.Gossip:
		c.stats.Gossips++
	case *protocol.PushPull:
		c.stats.PushPulls++
	}
}

// sendToLive sends m to every live member. The driver sees one message for
// many recipients (the same pointer) and may encode it once.
func (c *Core) sendToLive(m protocol.Message) {
	for _, a := range c.liveMembers() {
		c.sendTo(a, m)
	}
}

// jitter returns a random duration in [d/2, 3d/2).
func (c *Core) jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d/2 + time.Duration(c.rng.Int63n(int64(d)))
}

// transition names the change from prev (known or not) to cur.
func transition(prev manager.Entry, known bool, cur protocol.Member) EventKind {
	switch {
	case cur.State == protocol.StateSuspect && (!known || prev.State != protocol.StateSuspect):
		return MemberSuspect
	case cur.State == protocol.StateFailed && prev.State != protocol.StateFailed:
		return MemberFailed
	case cur.State == protocol.StateLeft && prev.State != protocol.StateLeft:
		return MemberLeave
	case cur.State != protocol.StateAlive:
		return 0
	case !known || prev.State == protocol.StateLeft:
		return MemberJoin
	case prev.State == protocol.StateSuspect || prev.State == protocol.StateFailed:
		return MemberAlive
	case prev.Addr != cur.Addr || !maps.Equal(prev.Tags, cur.Tags):
		return MemberUpdate
	}
	return 0
}
