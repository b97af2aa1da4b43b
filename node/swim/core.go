package swim

import (
	"maps"
	"math/rand"
	"time"

	"meshell/manager"
	"meshell/protocol"
)

// Core is one node's SWIM state machine. It is not safe for concurrent use:
// one goroutine (the node's run loop, or a simulation) owns it.
type Core struct {
	cfg   Config
	table *manager.Table
	rng   *rand.Rand
	ready Ready
	left  bool
}

// New returns a Core for self (alias, advertised address, tags; state and
// incarnation are taken from self as given). seed drives every random choice.
func New(self protocol.Member, cfg Config, seed int64, now time.Time) *Core {
	self.State = protocol.StateAlive
	return &Core{cfg: cfg, table: manager.NewTable(self, now), rng: rand.New(rand.NewSource(seed))}
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

// Config returns the timings in force.
func (c *Core) Config() Config { return c.cfg }

// SetConfig replaces the timings; they apply from the next probe on.
func (c *Core) SetConfig(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	c.cfg = cfg
	return nil
}

// Tick advances time: probes start, timeouts fire, suspicions expire.
func (c *Core) Tick(now time.Time) {}

// NextDeadline is when the driver must call Tick next at the latest.
func (c *Core) NextDeadline(now time.Time) time.Time { return now.Add(c.cfg.ProbeInterval) }

// Step feeds one membership message received from the member alias.
// Hello, HelloAck, Join and JoinAck are handled by the driver, not here.
func (c *Core) Step(now time.Time, from string, m protocol.Message) {
	switch m := m.(type) {
	case *protocol.Gossip:
		c.merge(now, m.Updates)
	case *protocol.PushPull:
		c.merge(now, m.Members)
		if !m.Reply {
			c.send(from, &protocol.PushPull{Reply: true, Members: c.table.Members()})
		}
	case *protocol.Leave:
		e, ok := c.table.Get(m.Alias)
		if ok && m.Alias != c.table.SelfAlias() {
			upd := e.Member
			upd.State, upd.Incarnation = protocol.StateLeft, m.Incarnation
			c.merge(now, []protocol.Member{upd})
		}
	}
}

// Connected tells the Core that peer completed a handshake and described
// itself: it is alive at peer.Incarnation unless this node knows better, in
// which case the peer refutes once it sees what this node knows.
func (c *Core) Connected(now time.Time, peer protocol.Member) {
	peer.State = protocol.StateAlive
	c.merge(now, []protocol.Member{peer})
}

// Merge folds members learned from a handshake answer into the table. News
// about this node itself is refuted when it is wrong.
func (c *Core) Merge(now time.Time, members []protocol.Member) { c.merge(now, members) }

// ConnLost is evidence: the connection to alias closed or reset.
func (c *Core) ConnLost(now time.Time, alias string) {}

// DialFailed is evidence: a dial to alias failed; refused is set when the
// address actively refused the connection (nothing listens there).
func (c *Core) DialFailed(now time.Time, alias string, refused bool) {}

// Leave marks this node left and tells every other live member.
func (c *Core) Leave(now time.Time) {
	self := c.Self()
	self.State = protocol.StateLeft
	c.table.Set(now, self)
	c.left = true
	for _, e := range c.table.Entries() {
		if !e.Self && (e.State == protocol.StateAlive || e.State == protocol.StateSuspect) {
			c.sendTo(e.Member, &protocol.Leave{Alias: self.Alias, Incarnation: self.Incarnation})
		}
	}
}

// Rejoin makes a node that left alive again at a higher incarnation.
func (c *Core) Rejoin(now time.Time) {
	self := c.Self()
	self.State = protocol.StateAlive
	self.Incarnation++
	c.table.Set(now, self)
	c.left = false
	c.broadcast(self)
}

// SetTags changes this node's tags and gossips them at a new incarnation.
func (c *Core) SetTags(now time.Time, tags map[string]string) {
	self := c.Self()
	self.Tags = maps.Clone(tags)
	self.Incarnation++
	c.table.Set(now, self)
	c.broadcast(self)
}

// Ready returns and clears what the Core produced.
func (c *Core) Ready() Ready {
	r := c.ready
	c.ready = Ready{}
	return r
}

func (c *Core) merge(now time.Time, updates []protocol.Member) {
	for _, u := range updates {
		if u.Alias == c.table.SelfAlias() {
			c.refute(now, u)
			continue
		}
		prev, known, applied := c.table.Merge(now, u)
		if !applied {
			continue
		}
		cur, _ := c.table.Get(u.Alias)
		if k := transition(prev, known, cur.Member); k != 0 {
			c.ready.Events = append(c.ready.Events, Event{Kind: k, Member: cur.Member, At: now})
		}
		c.broadcast(cur.Member)
	}
}

// refute answers news about this node: anything but alive at or above our
// incarnation is wrong while we are not leaving.
func (c *Core) refute(now time.Time, u protocol.Member) {
	self := c.Self()
	if c.left || u.Incarnation < self.Incarnation {
		return
	}
	if u.State == protocol.StateAlive && u.Incarnation == self.Incarnation {
		return
	}
	self.Incarnation = u.Incarnation + 1
	c.table.Set(now, self)
	c.broadcast(self)
}

func (c *Core) broadcast(m protocol.Member) {
	for _, e := range c.table.Entries() {
		if e.Self || e.Alias == m.Alias || (e.State != protocol.StateAlive && e.State != protocol.StateSuspect) {
			continue
		}
		c.sendTo(e.Member, &protocol.Gossip{Updates: []protocol.Member{m}})
	}
}

func (c *Core) send(alias string, m protocol.Message) {
	if e, ok := c.table.Get(alias); ok {
		c.sendTo(e.Member, m)
	}
}

func (c *Core) sendTo(to protocol.Member, m protocol.Message) {
	c.ready.Msgs = append(c.ready.Msgs, Outbound{To: to.Alias, Addr: to.Addr, Msg: m})
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
