package manager

import (
	"maps"
	"slices"
	"strings"
	"time"

	"meshell/protocol"
)

// Entry is one row of the membership table: the gossiped member plus what
// only this node measured.
type Entry struct {
	protocol.Member
	Self  bool
	RTT   time.Duration // last direct probe round trip; 0 = not measured
	Since time.Time     // when this node last saw the state change
}

// Table is the membership table. It is owned by one goroutine.
type Table struct {
	self    string
	entries map[string]*row
	sorted  []*row            // the same rows, by alias: no sort per copy or digest
	members []protocol.Member // Members' answer until the next change; nil when stale
	stale   int               // rows from sorted[stale] on have a stale sum (Digest)
	version uint64            // counts changes to members (added, changed, removed)
	rtts    uint64            // counts changes to measured round trips
}

// row is one member's entry with what the table keeps beside it: one
// lookup finds both.
type row struct {
	Entry
	vouched uint64 // incarnation the member last gave in its own word (Vouch)
	pos     int    // index in sorted
	sum     uint32 // the digest over sorted up to this row (Digest)
}

// NewTable returns a table that holds self.
func NewTable(self protocol.Member, now time.Time) *Table {
	t := &Table{self: self.Alias, entries: map[string]*row{}}
	e := &row{Entry: Entry{Member: cloneMember(self), Self: true, Since: now}}
	t.entries[self.Alias] = e
	t.sorted = []*row{e}
	return t
}

// SelfAlias is the alias of the node that owns the table.
func (t *Table) SelfAlias() string { return t.self }

// Get returns the entry for alias.
func (t *Table) Get(alias string) (Entry, bool) {
	e, ok := t.entries[alias]
	if !ok {
		return Entry{}, false
	}
	return e.Entry, true
}

// Has reports whether alias is in the table, without copying its entry.
func (t *Table) Has(alias string) bool {
	_, ok := t.entries[alias]
	return ok
}

// Len is the number of entries, self included, in any state.
func (t *Table) Len() int { return len(t.entries) }

// Merge applies third-party news upd if Judge says it should and returns
// the previous entry, whether there was one, and whether the table changed.
// News about the table's own node is never merged: the caller refutes it
// instead.
func (t *Table) Merge(now time.Time, upd protocol.Member) (prev Entry, known, applied bool) {
	prev, known, v := t.Judge(upd, false)
	if v != Apply {
		return prev, known, false
	}
	t.Set(now, upd)
	return prev, known, true
}

// Judge returns the entry upd is about, whether there is one, and what the
// precedence rule (the function Judge, with what the member vouched for)
// decides about upd, without applying it, so that a caller can weigh a new
// member before it stores it with Set. own is set when upd is the member's
// own word. News about the table's own node is always ignored.
func (t *Table) Judge(upd protocol.Member, own bool) (prev Entry, known bool, v Verdict) {
	if upd.Alias == t.self || upd.Alias == "" {
		return Entry{}, false, Ignore
	}
	e, known := t.entries[upd.Alias]
	var vouched uint64
	if known {
		prev, vouched = e.Entry, e.vouched
	}
	return prev, known, Judge(prev.Member, known, vouched, upd, own)
}

// Vouch records that member alias gave incarnation inc in its own word: its
// handshake, or its own entry on its own connection. Judge counts the jump
// of later third-party news from it. Members not in the table are ignored.
func (t *Table) Vouch(alias string, inc uint64) {
	if e, ok := t.entries[alias]; ok && alias != t.self {
		e.vouched = inc
	}
}

// Set stores m unconditionally (the node's own entry, or an update Judge
// let through). Since moves only when the state changes.
func (t *Table) Set(now time.Time, m protocol.Member) {
	e, ok := t.entries[m.Alias]
	if !ok {
		e = &row{Entry: Entry{Self: m.Alias == t.self, Since: now}}
		t.entries[m.Alias] = e
		i, _ := t.find(m.Alias)
		t.sorted = slices.Insert(t.sorted, i, e)
		t.renumber(i)
	} else if e.State != m.State {
		e.Since = now
	}
	if m.Tags == nil && ok && e.Incarnation == m.Incarnation {
		m.Tags = e.Tags // a state-only update keeps the tags known at this incarnation
	}
	e.Member = cloneMember(m)
	t.changed(e.pos)
}

// SetRTT records the last measured round trip to alias.
func (t *Table) SetRTT(alias string, d time.Duration) {
	if e, ok := t.entries[alias]; ok && e.RTT != d {
		e.RTT = d
		t.rtts++
	}
}

// Remove drops alias from the table (reaping). The own entry stays.
func (t *Table) Remove(alias string) {
	if alias == t.self {
		return
	}
	if _, ok := t.entries[alias]; ok {
		i, _ := t.find(alias)
		t.sorted = slices.Delete(t.sorted, i, i+1)
		delete(t.entries, alias)
		t.renumber(i)
		t.changed(i)
	}
}

// changed marks what is derived from the members stale, the digest from
// position i of sorted on.
func (t *Table) changed(i int) {
	t.stale = min(t.stale, i)
	t.members = nil
	t.version++
}

// renumber sets pos of the rows from sorted[i] on, which moved.
func (t *Table) renumber(i int) {
	for ; i < len(t.sorted); i++ {
		t.sorted[i].pos = i
	}
}

// Version changes whenever a member is added, changed or removed, so that a
// reader can tell cheaply whether its copy is stale. Round trips do not
// count: they change with every probe.
func (t *Table) Version() uint64 { return t.version }

// RTTVersion changes whenever a measured round trip does.
func (t *Table) RTTVersion() uint64 { return t.rtts }

// Entries returns a copy of every entry sorted by alias, for other
// goroutines. The Tags maps are shared, not copied: the table never changes
// a stored map (Set stores a clone), and readers must not change them either.
func (t *Table) Entries() []Entry {
	out := make([]Entry, len(t.sorted))
	for i, e := range t.sorted {
		out[i] = e.Entry
	}
	return out
}

// Members returns every member as gossiped, sorted by alias. The slice is
// shared by every call until the table changes, and may be read on any
// goroutine: it is never written after it is returned, and neither may the
// caller write it (nor its Tags, as with Entries).
func (t *Table) Members() []protocol.Member {
	if t.members == nil {
		t.members = make([]protocol.Member, len(t.sorted))
		for i, e := range t.sorted {
			t.members[i] = e.Member
		}
	}
	return t.members
}

// find is the position of alias in sorted, or where it would go.
func (t *Table) find(alias string) (int, bool) {
	return slices.BinarySearchFunc(t.sorted, alias, func(e *row, a string) int { return strings.Compare(e.Alias, a) })
}

// Count returns how many entries are in state s.
func (t *Table) Count(s protocol.State) int {
	n := 0
	for _, e := range t.entries {
		if e.State == s {
			n++
		}
	}
	return n
}

// Digest is a hash of the alias, incarnation and state of every alive and
// suspect member. Two nodes with the same digest hold the same live view; a
// different digest on an ack is how a node learns it (or its peer) missed an
// update.
//
// Failed and left entries are left out: a later joiner cannot learn them
// (Judge ignores such news about unknown members), so a digest over them
// would differ forever after one crash and one join, and every ack would
// trigger a push/pull.
func (t *Table) Digest() uint32 {
	// FNV-1a, inline: the same sum as hash/fnv's over the same bytes,
	// without a copy of each alias. Each row keeps the sum up to itself,
	// so a change resumes the sum where it took place.
	const prime = 16777619
	h := uint32(2166136261)
	if t.stale > 0 {
		h = t.sorted[t.stale-1].sum
	}
	for _, e := range t.sorted[t.stale:] {
		if e.State == protocol.StateAlive || e.State == protocol.StateSuspect {
			for i := 0; i < len(e.Alias); i++ {
				h = (h ^ uint32(e.Alias[i])) * prime
			}
			for i := 0; i < 8; i++ {
				h = (h ^ uint32(byte(e.Incarnation>>(8*i)))) * prime
			}
			h = (h ^ uint32(byte(e.State))) * prime
		}
		e.sum = h
	}
	t.stale = len(t.sorted)
	return h
}

func cloneMember(m protocol.Member) protocol.Member {
	m.Tags = maps.Clone(m.Tags)
	return m
}
