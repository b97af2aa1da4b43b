package jobs

import (
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"meshell/manager"
	"meshell/protocol"
)

// cluster is an in-memory network of job planes: a message sent to a peer
// is handed to its Receive on the sender's goroutine, in order, with no
// socket, as the mesh hands it to a reader. cut makes a peer unreachable.
type cluster struct {
	mu     sync.Mutex
	nodes  map[string]*fakeHost
	cut    map[string]bool
	mute   map[string]bool           // peers whose messages are lost, their connections up
	states map[string]protocol.State // members not alive
}

// fakeHost is one node of a cluster (or, with send set, a node alone whose
// messages go to send).
type fakeHost struct {
	alias   string
	c       *cluster
	tags    map[string]string
	j       *Jobs
	send    func(alias string, m protocol.Message) error
	snap    atomic.Pointer[manager.Snapshot]
	running atomic.Bool
	sign    func(op string, args []string, target string) (*protocol.Signature, error)
	verify  func(op string, args []string, sig *protocol.Signature) error
}

var _ Host = (*fakeHost)(nil)

func (h *fakeHost) Alias() string                                 { return h.alias }
func (h *fakeHost) Cluster() string                               { return "test" }
func (h *fakeHost) Running() bool                                 { return h.running.Load() }
func (h *fakeHost) Members() *manager.Snapshot                    { return h.snap.Load() }
func (h *fakeHost) Connected(alias string) bool                   { return h.c != nil && h.c.reachable(alias) }
func (h *fakeHost) Warn(kind string, f logrus.Fields, msg string) {}

func (h *fakeHost) Send(alias string, m protocol.Message) error {
	if h.send != nil {
		return h.send(alias, m)
	}
	if !h.c.reachable(alias) || !h.c.reachable(h.alias) {
		return ErrNotConnected
	}
	h.c.mu.Lock()
	to, mute := h.c.nodes[alias], h.c.mute[h.alias]
	h.c.mu.Unlock()
	if mute {
		return nil
	}
	to.j.Receive(h.alias, m)
	return nil
}

func (h *fakeHost) Sign(op string, args []string, target string) (*protocol.Signature, error) {
	if h.sign == nil {
		return nil, nil
	}
	return h.sign(op, args, target)
}

func (h *fakeHost) Verify(op string, args []string, sig *protocol.Signature) error {
	if h.verify == nil {
		return nil
	}
	return h.verify(op, args, sig)
}

func newCluster() *cluster {
	return &cluster{nodes: map[string]*fakeHost{}, cut: map[string]bool{}, mute: map[string]bool{}, states: map[string]protocol.State{}}
}

func (c *cluster) reachable(alias string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.nodes[alias]
	return ok && !c.cut[alias]
}

// add starts a node with tags (role=worker for a worker) and returns its
// job plane; every node's membership snapshot is published again.
func (c *cluster) add(t testing.TB, alias string, tags map[string]string, lim Limits, run RunConfig) *Jobs {
	t.Helper()
	h := &fakeHost{alias: alias, c: c, tags: tags}
	h.running.Store(true)
	h.snap.Store(&manager.Snapshot{})
	h.j = New(h, lim, run)
	t.Cleanup(h.j.Close)
	c.mu.Lock()
	c.nodes[alias] = h
	c.mu.Unlock()
	c.publish()
	return h.j
}

// host returns alias's host, for its hooks.
func (c *cluster) host(alias string) *fakeHost {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[alias]
}

// setState makes alias st in every node's table, as gossip would.
func (c *cluster) setState(alias string, st protocol.State) {
	c.mu.Lock()
	c.states[alias] = st
	c.mu.Unlock()
	c.publish()
}

// setCut makes alias unreachable (or reachable again): sends to it and
// from it fail with ErrNotConnected.
func (c *cluster) setCut(alias string, cut bool) {
	c.mu.Lock()
	c.cut[alias] = cut
	c.mu.Unlock()
}

// setMute makes what alias sends lost, its connections still up: a hung
// or hostile worker that never answers.
func (c *cluster) setMute(alias string) {
	c.mu.Lock()
	c.mute[alias] = true
	c.mu.Unlock()
}

// publish gives every node a new snapshot of the members, each with the
// tags its job plane keeps (slots, kinds), alive unless setState said
// otherwise.
func (c *cluster) publish() {
	c.mu.Lock()
	defer c.mu.Unlock()
	var aliases []string
	for a := range c.nodes {
		aliases = append(aliases, a)
	}
	sort.Strings(aliases)
	for _, self := range aliases {
		var es []manager.Entry
		for _, a := range aliases {
			h := c.nodes[a]
			s := protocol.StateAlive
			if v, ok := c.states[a]; ok {
				s = v
			}
			es = append(es, manager.Entry{Member: protocol.Member{Alias: a, Addr: a + ":1", State: s, Tags: h.j.OwnTags(h.tags)}, Self: a == self})
		}
		c.nodes[self].snap.Store(&manager.Snapshot{Entries: es, At: time.Now()})
	}
}

// fakeWorker is a job plane alone, with slots slots, whose answers go to a
// fakePeer that reads.
func fakeWorker(t *testing.T, slots int) (*Jobs, *fakePeer) {
	return fakeWorkerLimits(t, slots, Limits{})
}

func fakeWorkerLimits(t *testing.T, slots int, lim Limits) (*Jobs, *fakePeer) {
	t.Helper()
	p := &fakePeer{reading: true, notify: make(chan struct{}, 1)}
	h := &fakeHost{alias: "w", send: p.send}
	h.snap.Store(&manager.Snapshot{})
	j := New(h, lim, RunConfig{})
	t.Cleanup(j.Close)
	if err := j.SetSlots(slots); err != nil {
		t.Fatal(err)
	}
	return j, p
}
