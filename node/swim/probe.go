package swim

import (
	"math"
	"slices"
	"sort"
	"time"

	"meshell/protocol"
)

// probe is one probe of a member in flight: a direct Ping, then PingReqs to
// relays when the direct ack is late (or the dial failed), and a verdict at
// end if nothing acked.
type probe struct {
	seq     uint32
	target  string
	outTurn bool // out of turn: not the round-robin's probe
	again   bool // the second probe of a member that refuted lately (probeFailed)
	onNews  bool // out of turn because another member suspects the target
	start   time.Time
	ackAt   time.Time         // no direct ack by then: the indirect round
	endAt   time.Time         // no ack at all by then: the target is suspect
	sendAt  time.Time         // the direct Ping is sent again then, unacked (see resendEvery)
	resent  bool              // it was: an ack no longer measures the RTT (Karn)
	updates []protocol.Member // what the Ping carries, every copy of it

	indirect    bool    // PingReqs sent
	relays      []asked // relays asked, less those that could not be reached
	nacks       int     // relays that answered Nack
	refused     int     // ... with Refused set
	dialFailed  bool    // the direct Ping's dial failed
	dialRefused bool    // ... and was refused: nothing listens there
}

// asked is a relay asked to probe for us.
type asked struct {
	alias    string
	answered bool // it sent a Nack
}

// relayIndex returns the position of the relay alias in p.relays, or -1.
func (p *probe) relayIndex(alias string) int {
	return slices.IndexFunc(p.relays, func(a asked) bool { return a.alias == alias })
}

// relay is an indirect probe run for another member: our own Ping to the
// target, answered back to origin as an Ack or a Nack.
type relay struct {
	seq      uint32 // our Ping's sequence number
	origin   string
	origSeq  uint32
	target   string
	addr     string            // target's address in this node's table when asked
	updates  []protocol.Member // what the Ping carries, every copy of it
	sendAt   time.Time         // the Ping is sent again then, unacked
	deadline time.Time
}

// secondProbeIntervals is how long, in probe intervals, the second probe of
// a member that refuted lately waits: long enough for TCP to resend a lost
// segment twice (200 ms, then 400 ms, on Linux) at the lan profile's pace.
const secondProbeIntervals = 4

// refuteMemory is how long a member's refutation gives it a second probe
// before the next suspicion (probeFailed).
func (c *Core) refuteMemory() time.Duration { return 240 * c.cfg.ProbeInterval }

// relayTimeout is how long a relay waits for the target before it nacks.
// It is shorter than the originator's wait (ProbeInterval−ProbeTimeout at
// least) so that the nack arrives while the originator still counts.
func (c *Core) relayTimeout() time.Duration { return c.cfg.ProbeTimeout * 4 / 5 }

// resendEvery is how long an unanswered Ping waits before it is sent again,
// by a prober until its probe ends and by a relay until it nacks. A round
// trip takes far less on any link a profile is meant for, so a Ping
// unanswered by then was most likely lost: dropped by a full send queue, or
// by the network when a connection is re-dialled. A few cheap resends make
// a lost message cost nothing, where otherwise one lost ping and a few lost
// relay messages together make a healthy member suspect.
func (c *Core) resendEvery() time.Duration { return c.aware.scale(c.cfg.ProbeTimeout) / 2 }

// Tick advances time: probes start, timeouts fire, suspicions expire,
// failed members are re-contacted and dead entries reaped.
//
// A Tick (or any other call) that comes more than ProbeTimeout after the
// deadline NextDeadline asked for is itself a Lifeguard signal; see enter.
func (c *Core) Tick(now time.Time) {
	c.enter(now)
	c.drainRedials(now)
	c.fireTimers(now)
	if c.left {
		return
	}

	for _, p := range slices.Clone(c.probes) {
		if !c.inFlight(p) {
			continue
		}
		if !p.indirect && !now.Before(p.ackAt) {
			c.indirectRound(now, p)
		}
		if c.inFlight(p) && !now.Before(p.endAt) {
			c.probeFailed(now, p)
		}
		if t := p.resendAt(); c.inFlight(p) && !t.IsZero() && !now.Before(t) {
			// The same updates again, as the table holds them now: taking
			// fresh ones would spend their retransmit budget on a copy that
			// most likely duplicates.
			p.resent = true
			p.sendAt = now.Add(c.resendEvery())
			c.sendTo(p.target, &protocol.Ping{Seq: p.seq, Updates: c.asHeld(p.updates)})
		}
	}

	kept := c.relays[:0]
	for _, r := range c.relays {
		if now.Before(r.deadline) {
			if t := r.resendAt(); !t.IsZero() && !now.Before(t) {
				c.relayPing(now, r)
			}
			kept = append(kept, r)
			continue
		}
		c.sendTo(r.origin, &protocol.Nack{Seq: r.origSeq})
	}
	clear(c.relays[len(kept):])
	c.relays = kept

	if !now.Before(c.nextPushPull) {
		c.nextPushPull = now.Add(c.cfg.PushPullInterval)
		if t := c.pick(1); len(t) == 1 {
			c.sendTo(t[0], &protocol.PushPull{Members: c.table.Members()})
		}
	}

	c.pushGossip(now)
	c.probeTurn(now, now)
}

// probeTurn starts the round-robin's next probe if it is due by at. Tick
// passes now. Step passes a little later (probeSlack), so that a probe due
// soon goes out while the node is awake for a message anyway: an idle node
// wakes for its timer less often. The pace stays the same: the turn after
// is due one interval after this one was.
func (c *Core) probeTurn(now, at time.Time) {
	if c.left || at.Before(c.nextProbe) || c.turnProbe() != nil {
		return
	}
	next := c.nextProbe.Add(c.cfg.ProbeInterval)
	if next.Before(now) {
		next = now.Add(c.cfg.ProbeInterval)
	}
	c.nextProbe = next
	if target, ok := c.nextTarget(); ok {
		c.startProbe(now, target, false)
	}
}

// probeSlack is how early a turn's probe may go out with other traffic.
// Half an interval makes an idle node's timer wakeups rare (measured in
// BENCHMARKS.md); a quarter spared half as many.
func (c *Core) probeSlack() time.Duration { return c.cfg.ProbeInterval / 2 }

// enter starts every call that feeds the Core. It measures how late the
// driver is: the first call after the deadline last handed out, more than
// ProbeTimeout after it, means this node was starved of CPU (or stopped). Its
// local health score rises, and the timers that expired meanwhile get a short
// grace, so that answers already waiting in the driver's inbox are read
// before anyone is accused. Any call counts, not only Tick: a driver may read
// its inbox before it notices its timer.
func (c *Core) enter(now time.Time) {
	c.deadlineOK = false
	asked := c.asked
	c.asked = time.Time{}
	if !asked.IsZero() && now.Sub(asked) > c.cfg.ProbeTimeout {
		c.stats.LateTicks++
		c.health(1)
		c.grace(now.Add(c.aware.scale(c.cfg.ProbeTimeout)))
	}
}

// grace pushes timers that already expired to until.
func (c *Core) grace(until time.Time) {
	for _, p := range c.probes {
		if p.ackAt.Before(until) && !p.indirect {
			p.ackAt = until
		}
		if p.endAt.Before(until) {
			p.endAt = until
		}
	}
	for _, a := range sortedKeys(c.suspicions) {
		if s := c.suspicions[a]; s.deadline.Before(until) {
			s.floor = until
			s.deadline = until
			c.arm(timerSuspicion, a, until)
		}
	}
}

// NextDeadline is when the driver must call Tick next at the latest: the
// earliest pending timer. It costs one pass over the pending timers, and
// nothing when nothing changed since the last call.
func (c *Core) NextDeadline(now time.Time) time.Time {
	if !c.deadlineOK {
		c.deadline = c.computeDeadline(now)
		c.deadlineOK = true
	}
	c.asked = c.deadline
	if c.asked.Before(now) {
		c.asked = now
	}
	return c.deadline
}

func (c *Core) computeDeadline(now time.Time) time.Time {
	var d time.Time
	at := func(t time.Time) {
		if !t.IsZero() && (d.IsZero() || t.Before(d)) {
			d = t
		}
	}
	if t, ok := c.nextTimer(); ok {
		at(t.at)
	}
	at(c.redialReady())
	if c.left {
		if d.IsZero() {
			return now.Add(c.cfg.LeftReap)
		}
		return d
	}
	at(c.nextPushPull)
	at(c.nextPush())
	if c.turnProbe() == nil {
		at(c.nextProbe)
	}
	for _, p := range c.probes {
		if !p.indirect {
			at(p.ackAt)
		}
		at(p.resendAt())
		at(p.endAt)
	}
	for _, r := range c.relays {
		at(r.resendAt())
		at(r.deadline)
	}
	return d
}

// resendAt is when p's Ping goes again: zero once its dial failed (that is
// evidence, not loss) or when no answer could arrive before the probe ends.
func (p *probe) resendAt() time.Time {
	if p.dialFailed || !p.sendAt.Before(p.endAt) {
		return time.Time{}
	}
	return p.sendAt
}

// resendAt is when r's Ping goes again: zero when no answer could arrive
// before r nacks.
func (r *relay) resendAt() time.Time {
	if !r.sendAt.Before(r.deadline) {
		return time.Time{}
	}
	return r.sendAt
}

// ConnLost is evidence: the connection to alias closed or reset. A live
// member is probed at once, out of turn, and a Ping already sent to it,
// ours or a relay's, is sent again.
func (c *Core) ConnLost(now time.Time, alias string) {
	c.enter(now)
	if c.left {
		return
	}
	// A relay's Ping to it may have gone down with the connection: sent
	// again, the relay nacks with the dial's outcome, not after its timeout.
	for _, r := range c.relays {
		if r.target == alias {
			c.relayPing(now, r)
		}
	}
	e, ok := c.table.Get(alias)
	if !ok {
		return
	}
	c.lost[alias] = true
	if s := c.suspicions[alias]; s != nil && s.hearsay {
		c.declareFailed(now, alias) // others said it failed, and now its connection is gone
		return
	}
	if !e.Self && (e.State == protocol.StateAlive || e.State == protocol.StateSuspect) {
		if p := c.probeOf(alias); p != nil && !p.dialFailed {
			// Its Ping may have gone down with the connection: sent again,
			// it dials, and a refused dial is the fast path's evidence.
			p.resent = true
			p.sendAt = now.Add(c.resendEvery())
			c.sendTo(alias, &protocol.Ping{Seq: p.seq, Updates: c.asHeld(p.updates)})
		}
		c.startProbe(now, alias, true)
	}
}

// DialFailed is evidence: a dial to alias failed; refused is set when the
// address actively refused the connection (nothing listens there).
//
// A probe of alias moves to its indirect round at once; a relay running
// for another member answers Nack at once; a relay that could not be
// reached is no longer waited for. A failed dial to a live or suspect
// member that is not being probed starts an out-of-turn probe: a member
// heard of at an address that never answers is suspected in seconds, not
// after a whole round of probes. For a failed member it only means the
// re-contact backs off.
func (c *Core) DialFailed(now time.Time, alias string, refused bool) {
	c.enter(now)
	if c.left {
		return
	}
	probing := false
	for _, p := range slices.Clone(c.probes) {
		if !c.inFlight(p) {
			continue
		}
		if p.target == alias {
			probing = true
			if !p.dialFailed {
				p.dialFailed, p.dialRefused = true, refused
				if !p.indirect {
					c.indirectRound(now, p)
				}
				c.checkFastPath(now, p)
			}
			continue
		}
		if i := p.relayIndex(alias); i >= 0 && !p.relays[i].answered {
			p.relays = slices.Delete(p.relays, i, i+1)
			c.checkFastPath(now, p)
		}
	}
	kept := c.relays[:0]
	for _, r := range c.relays {
		if r.target == alias {
			c.sendTo(r.origin, &protocol.Nack{Seq: r.origSeq, Refused: refused})
			continue
		}
		kept = append(kept, r)
	}
	clear(c.relays[len(kept):])
	c.relays = kept
	if !probing { // refused or silent, it is ours to check now, not in its turn
		if e, ok := c.table.Get(alias); ok && (e.State == protocol.StateAlive || e.State == protocol.StateSuspect) {
			c.startProbe(now, alias, true)
		}
	}
}

// startProbe sends a direct Ping to target, unless a probe of it is
// already in flight.
func (c *Core) startProbe(now time.Time, target string, outOfTurn bool) {
	if c.left || c.probeOf(target) != nil {
		return
	}
	c.seq++
	p := &probe{
		seq:     c.seq,
		target:  target,
		outTurn: outOfTurn,
		start:   now,
		ackAt:   now.Add(c.aware.scale(c.cfg.ProbeTimeout)),
		endAt:   now.Add(c.aware.scale(c.cfg.ProbeInterval)),
		sendAt:  now.Add(c.resendEvery()),
		updates: c.piggyback(target, false),
	}
	c.probes = append(c.probes, p)
	c.stats.ProbesStarted++
	if outOfTurn {
		c.stats.OutOfTurnProbes++
	}
	c.sendTo(target, &protocol.Ping{Seq: p.seq, Updates: p.updates})
}

// indirectRound asks IndirectChecks random live members to probe p's
// target for us.
func (c *Core) indirectRound(now time.Time, p *probe) {
	p.indirect = true
	e, _ := c.table.Get(p.target)
	for _, a := range c.pickAlive(c.cfg.IndirectChecks, p.target) {
		p.relays = append(p.relays, asked{alias: a})
		c.sendTo(a, &protocol.PingReq{Seq: p.seq, Target: p.target, Addr: e.Addr})
	}
	c.checkFastPath(now, p)
}

// checkFastPath declares p's target failed at once on hard evidence: the
// direct dial was refused and every relay that could be asked answered
// that its dial was refused too (or no relay could be asked at all).
func (c *Core) checkFastPath(now time.Time, p *probe) {
	if !c.inFlight(p) || !p.indirect || !p.dialRefused {
		return
	}
	if len(p.relays) == 0 && p.nacks == 0 || p.nacks == len(p.relays) && p.refused == p.nacks {
		c.endProbe(p)
		c.stats.FailedFast++
		c.declareFailed(now, p.target)
	}
}

// probeFailed is the verdict on a probe that nobody acked by its end.
func (c *Core) probeFailed(now time.Time, p *probe) {
	c.endProbe(p)
	c.stats.ProbesFailed++
	if p.dialRefused && p.nacks > 0 && p.refused == p.nacks {
		c.stats.FailedFast++
		c.declareFailed(now, p.target)
		return
	}
	e, ok := c.table.Get(p.target)
	if !ok {
		return
	}
	if at, ok := c.joined[p.target]; ok {
		if e.State == protocol.StateAlive && c.newcomer(now, at) {
			// A member new to the table: in a join storm it, its relays
			// and this node are all still opening their connections, with
			// every core busy. Accusing it would start a cascade of
			// suspicions and refutations that keeps the storm going. A
			// crash is still seen at once (the refused dial above); a hang
			// waits out the longest suspicion, once. Nor does the probe
			// count against this node's health: across a partition that
			// just formed, it would stretch the timeouts that follow.
			c.stats.NewcomerGrace++
			return
		}
		delete(c.joined, p.target)
	}
	if p.nacks < len(p.relays) && !p.outTurn {
		// A relay that did not answer even a nack: we may be the one who
		// cannot talk (a lossy link of our own). One point per probe, not
		// one per missing nack as in memberlist: across a partition, relays
		// on the far side miss theirs, and a score at its maximum would
		// stretch every timeout ninefold. Only turn-based probes move the
		// score: they come at a steady rate, while out-of-turn probes come
		// in bursts after one event (a partition, a mass crash) and would
		// count it many times over.
		c.health(1)
	}
	self := c.table.SelfAlias()
	if at, ok := c.refuted[p.target]; ok && e.State == protocol.StateAlive && !p.again {
		if now.Sub(at) < c.refuteMemory() {
			// It refuted a suspicion lately: a lossy link, not a dead
			// member, most likely. One failed probe is then common (a TCP
			// resend, 200 ms at least, takes longer than the probe); one
			// that waits out resends is not, and a hung member fails it:
			// it is probed again at once for longer, and suspected only if
			// that fails too.
			c.stats.SecondChances++
			c.startProbe(now, p.target, true)
			if q := c.probeOf(p.target); q != nil {
				q.again = true
				q.endAt = now.Add(c.aware.scale(secondProbeIntervals * c.cfg.ProbeInterval))
			}
			return
		}
		delete(c.refuted, p.target)
	}
	switch e.State {
	case protocol.StateAlive:
		c.stats.Suspected++
		upd := e.Member
		upd.State = protocol.StateSuspect
		prev := e
		c.table.Set(now, upd)
		c.changed(now, prev, true, upd, self)
		upd.Accuser = self
		c.spread(now, "", []protocol.Member{upd})
		// Tell the member itself: if it is alive after all, it refutes now.
		c.sendTo(p.target, &protocol.Gossip{Updates: []protocol.Member{upd}})
	case protocol.StateSuspect:
		if s := c.suspicions[p.target]; s != nil && s.inc == e.Incarnation && c.confirm(p.target, s, self) {
			upd := e.Member
			upd.Accuser = self
			c.spread(now, "", []protocol.Member{upd})
		}
	}
}

// declareFailed marks a live member failed at its incarnation.
func (c *Core) declareFailed(now time.Time, alias string) {
	e, ok := c.table.Get(alias)
	if !ok || (e.State != protocol.StateAlive && e.State != protocol.StateSuspect) {
		return
	}
	upd := e.Member
	upd.State, upd.Accuser = protocol.StateFailed, ""
	c.table.Set(now, upd)
	c.changed(now, e, true, upd, "")
	c.spread(now, "", []protocol.Member{upd})
}

// suspicionExpired fails a suspect member whose timer ran out unrefuted.
func (c *Core) suspicionExpired(now time.Time, alias string, s *suspicion) {
	delete(c.suspicions, alias)
	if c.left {
		return
	}
	e, ok := c.table.Get(alias)
	if !ok || e.State != protocol.StateSuspect || e.Incarnation != s.inc {
		return
	}
	if s.heard && !s.extended {
		// It spoke to us since the suspicion began, so it runs, and has
		// not yet heard of the suspicion: after a cut heals, our news of
		// it waits in TCP's retransmission while its own messages get
		// through. It is told again and given one more timeout to refute;
		// one that talks and never refutes is failed then.
		s.extended, s.heard = true, false
		s.start = now
		s.deadline = s.due()
		c.suspicions[alias] = s
		c.arm(timerSuspicion, alias, s.deadline)
		c.sendTo(alias, &protocol.Gossip{Updates: []protocol.Member{e.Member}})
		return
	}
	c.declareFailed(now, alias)
}

// newcomer reports whether a member added to the table at joined is still
// in its grace: one longest suspicion after it was added or, when it came
// in a run of new members (a join storm), after the run's last one: a
// storm's handshakes can outlast a grace counted from each arrival, and
// suspicions begun while every core is busy keep the cores busy.
func (c *Core) newcomer(now, joined time.Time) bool {
	grace := c.suspicionMax()
	return now.Sub(joined) < grace || !joined.Before(c.growthStart) && now.Sub(c.growthLast) < grace
}

// redialPaced re-dials alias now if RedialRate allows, or queues the
// re-dial behind those already waiting (none is dropped): a node cut off
// from half of a large cluster would otherwise dial hundreds of addresses
// a second, each a socket and a timeout, for as long as the cut lasts.
func (c *Core) redialPaced(now time.Time, alias string, r *redial) {
	if len(c.redialWait) == 0 && c.redialToken(now) {
		c.redial(now, alias, r)
		return
	}
	c.stats.RedialsPaced++
	r.next = time.Time{}
	if len(c.redialWait) >= 2*len(c.redials)+16 { // drop the stale entries
		c.redialWait = slices.DeleteFunc(c.redialWait, func(w waitingRedial) bool { return w.r.done })
	}
	c.redialWait = append(c.redialWait, waitingRedial{alias, r})
}

// dropRedial forgets the re-contact schedule of alias, which marks it done
// for the re-dials waiting on it.
func (c *Core) dropRedial(alias string) {
	if r := c.redials[alias]; r != nil {
		r.done = true
		delete(c.redials, alias)
	}
}

// redialToken takes one re-dial from the pace; false when it is empty.
func (c *Core) redialToken(now time.Time) bool {
	c.redialPace.refill(now, c.cfg.RedialRate, c.cfg.RedialRate)
	if c.redialPace.tokens < 1 {
		return false
	}
	c.redialPace.tokens--
	return true
}

// drainRedials runs the waiting re-dials that the pace allows, oldest first.
func (c *Core) drainRedials(now time.Time) {
	k := 0
	for ; k < len(c.redialWait); k++ {
		w := c.redialWait[k]
		if w.r.done {
			continue // revived, reaped or failed anew since
		}
		if !c.redialToken(now) {
			break
		}
		c.redial(now, w.alias, w.r)
	}
	clear(c.redialWait[:k])
	c.redialWait = c.redialWait[k:] // append reallocates once the front is used up
}

// redialReady is when the next waiting re-dial may go; zero when none waits.
func (c *Core) redialReady() time.Time {
	if len(c.redialWait) == 0 {
		return time.Time{}
	}
	need := 1 - c.redialPace.tokens
	if need <= 0 {
		return c.redialPace.at
	}
	// Rounded up: a deadline that truncates to now would earn no token.
	return c.redialPace.at.Add(time.Duration(math.Ceil(need / float64(c.cfg.RedialRate) * float64(time.Second))))
}

// redial re-contacts a failed member with a Ping that carries its failed
// state, so that it refutes if it is alive, and backs off. The Ping carries
// nothing from the queue: it most likely goes nowhere, and each update rides
// on a bounded number of messages, which are for the live members (after a
// partition, re-dials outnumber every other message); a member that comes
// back gets the news by the digest's repair.
func (c *Core) redial(now time.Time, alias string, r *redial) {
	e, ok := c.table.Get(alias)
	if !ok || e.State != protocol.StateFailed {
		c.dropRedial(alias)
		return
	}
	if !c.left {
		c.stats.Redials++
		c.seq++
		c.sendTo(alias, &protocol.Ping{Seq: c.seq, Updates: []protocol.Member{e.Member}})
	}
	r.backoff *= 2
	if r.backoff > c.cfg.ReconnectMax {
		r.backoff = c.cfg.ReconnectMax
	}
	r.next = now.Add(r.backoff - r.backoff/10 + time.Duration(c.rng.Int63n(int64(r.backoff/5)+1)))
	c.armRedial(alias, r)
}

// reap removes a failed or left member whose time is up.
func (c *Core) reap(now time.Time, alias string) {
	delete(c.reapAt, alias)
	e, ok := c.table.Get(alias)
	if !ok || (e.State != protocol.StateFailed && e.State != protocol.StateLeft) {
		return
	}
	if _, ok := c.unverified[alias]; ok {
		c.stats.UnverifiedReaped++
	}
	c.forget(now, e.Member)
}

// forget removes member m and everything this node holds about it, with a
// reap event.
func (c *Core) forget(now time.Time, m protocol.Member) {
	alias := m.Alias
	delete(c.reapAt, alias)
	c.table.Remove(alias)
	delete(c.unverified, alias)
	c.dropRedial(alias)
	delete(c.suspicions, alias)
	delete(c.revived, alias)
	delete(c.refuted, alias)
	delete(c.lost, alias)
	delete(c.joined, alias)
	delete(c.heardAt, alias)
	delete(c.askedAt, alias)
	delete(c.answeredPP, alias)
	c.queue.remove(alias)
	c.setLive(alias, false)
	c.ready.Events = append(c.ready.Events, Event{Kind: MemberReap, Member: m, At: now})
}

// handleAck completes the probe or the relay that the Ack answers.
func (c *Core) handleAck(now time.Time, from string, m *protocol.Ack) {
	if p := c.probeBySeq(m.Seq); p != nil {
		if from == p.target && !p.resent {
			c.table.SetRTT(from, now.Sub(p.start))
			c.rtt.Observe(now.Sub(p.start))
		}
		c.endProbe(p)
		if !p.outTurn {
			c.health(-1)
		}
	} else if i := slices.IndexFunc(c.relays, func(r *relay) bool { return r.seq == m.Seq }); i >= 0 {
		r := c.relays[i]
		c.relays = slices.Delete(c.relays, i, i+1)
		c.sendTo(r.origin, &protocol.Ack{Seq: r.origSeq, Digest: c.table.Digest(), Updates: c.piggyback(r.origin, false)})
	}
	c.repair(now, from, m.Digest)
}

// repair exchanges full state with from when its digest differs. Only a
// quiet table is repaired at once: while changes arrive (a join storm)
// gossip is still delivering them, and a full exchange per ack would repeat
// it. But changes that never stop (suspicions flapping somewhere) delay it
// at most repairWait: a node that missed a member of a join storm learned
// of it only from the 60 s push/pull.
func (c *Core) repair(now time.Time, from string, digest uint32) {
	if digest == c.table.Digest() {
		return
	}
	if c.differSince.IsZero() {
		c.differSince = now
	}
	due := now.Sub(c.lastChange) >= c.cfg.PushPullMinGap || now.Sub(c.differSince) >= c.repairWait()
	if due && (c.lastRepair.IsZero() || now.Sub(c.lastRepair) >= c.cfg.PushPullMinGap) {
		c.lastRepair, c.differSince = now, time.Time{}
		c.sendTo(from, &protocol.PushPull{Members: c.table.Members()})
	}
}

// repairWait is the longest a differing digest waits for a quiet table.
// pushPullDue reports whether from's PushPull is answered with the whole
// table: at most once per half PushPullMinGap for a member in the table (an
// honest member asks at most once per PushPullMinGap, for a repair, and
// once per PushPullInterval), never for one that is not. Each answer costs
// this node the encoding of its whole table; a flood of requests would
// otherwise cost it that per request. Its news is merged all the same.
func (c *Core) pushPullDue(now time.Time, from string) bool {
	if !c.table.Has(from) {
		c.stats.PushPullsUnanswered++
		return false
	}
	if at, ok := c.answeredPP[from]; ok && now.Sub(at) < c.cfg.PushPullMinGap/2 {
		c.stats.PushPullsUnanswered++
		return false
	}
	c.answeredPP[from] = now
	return true
}

func (c *Core) repairWait() time.Duration { return 10 * c.cfg.PushPullMinGap }

// handleNack counts a relay's answer that it could not reach the target.
func (c *Core) handleNack(now time.Time, from string, m *protocol.Nack) {
	p := c.probeBySeq(m.Seq)
	if p == nil {
		return
	}
	i := p.relayIndex(from)
	if i < 0 || p.relays[i].answered {
		return
	}
	p.relays[i].answered = true
	p.nacks++
	if m.Refused {
		p.refused++
	}
	c.checkFastPath(now, p)
}

// handlePingReq probes m.Target on from's behalf. Only a member this
// node knows, and not as left, is probed, and only at the address this
// node holds for it: PingReq.Addr is hearsay, and dialling it would make
// this node a scanner for anyone who sends PingReqs. Any other target is
// nacked at once, with Refused unset, which tells nothing about it.
func (c *Core) handlePingReq(now time.Time, from string, m *protocol.PingReq) {
	if m.Target == c.table.SelfAlias() {
		c.sendTo(from, &protocol.Ack{Seq: m.Seq, Digest: c.table.Digest()})
		return
	}
	e, ok := c.table.Get(m.Target)
	if !ok || e.Addr == "" || (e.State != protocol.StateAlive && e.State != protocol.StateSuspect && e.State != protocol.StateFailed) {
		c.stats.PingReqsRefused++
		c.sendTo(from, &protocol.Nack{Seq: m.Seq})
		return
	}
	if !c.relayRoom(from) {
		// An honest prober has a few probes in flight at most, each asking
		// this node once: past the bounds the asker is flooding, and each
		// relay would ping the target (an honest member) for it.
		c.stats.PingReqsOverCap++
		c.sendTo(from, &protocol.Nack{Seq: m.Seq})
		return
	}
	c.seq++
	r := &relay{seq: c.seq, origin: from, origSeq: m.Seq, target: m.Target, addr: e.Addr, deadline: now.Add(c.relayTimeout())}
	r.updates = c.piggyback(r.target, false)
	c.relays = append(c.relays, r)
	c.relayPing(now, r)
}

// Bounds of the relays in flight (drop-newest: a PingReq past them is
// nacked at once). An honest member asks this node once per probe of its
// own, of which it runs a few at once (its turn and a bounded number out of
// turn), and a relay lasts less than a probe interval.
const (
	maxRelaysPerOrigin = 8
	maxRelays          = 512
)

// relayRoom reports whether origin may have one more relay run for it.
func (c *Core) relayRoom(origin string) bool {
	if len(c.relays) >= maxRelays {
		return false
	}
	n := 0
	for _, r := range c.relays {
		if r.origin == origin {
			if n++; n >= maxRelaysPerOrigin {
				return false
			}
		}
	}
	return true
}

// relayPing sends (or sends again) a relay's Ping to its target, at the
// address this node holds now; a target reaped meanwhile is not pinged.
func (c *Core) relayPing(now time.Time, r *relay) {
	r.sendAt = now.Add(c.resendEvery())
	e, ok := c.table.Get(r.target)
	if !ok {
		return
	}
	addr := r.addr
	if e.Addr != "" {
		addr = e.Addr
	}
	c.ready.Msgs = append(c.ready.Msgs, Outbound{To: r.target, Addr: addr, Msg: &protocol.Ping{Seq: r.seq, Updates: c.asHeld(r.updates)}})
	c.stats.Pings++
}

// turnProbe returns the round-robin probe in flight, if any.
func (c *Core) turnProbe() *probe {
	for _, p := range c.probes {
		if !p.outTurn {
			return p
		}
	}
	return nil
}

func (c *Core) probeOf(target string) *probe {
	for _, p := range c.probes {
		if p.target == target {
			return p
		}
	}
	return nil
}

func (c *Core) probeBySeq(seq uint32) *probe {
	for _, p := range c.probes {
		if p.seq == seq {
			return p
		}
	}
	return nil
}

func (c *Core) inFlight(p *probe) bool { return slices.Contains(c.probes, p) }

func (c *Core) endProbe(p *probe) {
	if i := slices.Index(c.probes, p); i >= 0 {
		c.probes = slices.Delete(c.probes, i, i+1)
	}
}

// dropProbes forgets probes of a member that is no longer live.
func (c *Core) dropProbes(alias string) {
	c.probes = slices.DeleteFunc(c.probes, func(p *probe) bool { return p.target == alias })
}

// nextTarget returns the next live member in the randomised round-robin.
// A full pass reshuffles the live members.
func (c *Core) nextTarget() (string, bool) {
	for tries := 0; tries < 2; {
		if c.orderIdx >= len(c.order) {
			tries++
			c.order = append(c.order[:0], c.liveMembers()...)
			c.rng.Shuffle(len(c.order), func(i, j int) { c.order[i], c.order[j] = c.order[j], c.order[i] })
			c.orderIdx = 0
			clear(c.unprobed)
			for _, a := range c.order {
				c.unprobed[a] = true
			}
			if len(c.order) == 0 {
				return "", false
			}
		}
		a := c.order[c.orderIdx]
		c.orderIdx++
		delete(c.unprobed, a)
		if e, ok := c.table.Get(a); ok && (e.State == protocol.StateAlive || e.State == protocol.StateSuspect) && c.probeOf(a) == nil {
			return a, true
		}
	}
	return "", false
}

// insertProbeTarget puts a member that became live at a random position
// of the rest of this pass, so it is probed within the pass.
func (c *Core) insertProbeTarget(alias string) {
	if c.unprobed[alias] {
		return
	}
	pos := c.orderIdx + c.rng.Intn(len(c.order)-c.orderIdx+1)
	c.order = slices.Insert(c.order, pos, alias)
	c.unprobed[alias] = true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
