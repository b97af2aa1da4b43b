package mesh

import "time"

// Dials to a member this node has never had a connection with back off
// after each failure: 100 ms, doubling to 30 s. Without it an invented
// member gossiped at someone else's address (any port of any host a key
// holder names, or of loopback) was dialled on every message sent to it,
// by every node, until it was reaped: thousands of connections from one
// frame. A member once connected is dialled again at once, as before: its
// re-dials after a partition or a restart are what heals the mesh.
const (
	dialWaitFirst = 100 * time.Millisecond
	dialWaitMax   = 30 * time.Second
	// Bounds of the two records below; past them the record starts afresh
	// (a member then forgotten as met backs off after its next failure).
	maxDialWaits = 4096
	maxMet       = 8192
)

type dialWait struct {
	fails   int
	until   time.Time
	refused bool // the last dial was refused
}

// BackoffError is Send's error for a message not sent because its member's
// dials back off: to a failure detector it is the last dial's failure again.
type BackoffError struct {
	Alias   string
	Refused bool // the last dial was refused
}

func (e *BackoffError) Error() string {
	return "not dialled: " + e.Alias + " is backing off after a failed dial"
}

// Unwrap makes a BackoffError an ErrNotConnected.
func (e *BackoffError) Unwrap() error { return ErrNotConnected }

// mayDialLocked reports whether alias may be dialled at now. Caller holds m.mu.
func (m *Mesh) mayDialLocked(alias string, now time.Time) bool {
	if _, ok := m.met[alias]; ok {
		return true
	}
	w, ok := m.dialWaits[alias]
	return !ok || !now.Before(w.until)
}

// dialFailedLocked records a failed dial of alias at now. Caller holds m.mu.
func (m *Mesh) dialFailedLocked(alias string, refused bool, now time.Time) {
	if _, ok := m.met[alias]; ok {
		return
	}
	if m.dialWaits == nil || len(m.dialWaits) >= maxDialWaits {
		for a, w := range m.dialWaits {
			if now.Sub(w.until) > dialWaitMax {
				delete(m.dialWaits, a)
			}
		}
		if m.dialWaits == nil || len(m.dialWaits) >= maxDialWaits {
			m.dialWaits = make(map[string]dialWait)
		}
	}
	w := m.dialWaits[alias]
	w.fails++
	w.refused = refused
	w.until = now.Add(min(dialWaitFirst<<min(w.fails-1, 20), dialWaitMax))
	m.dialWaits[alias] = w
}

// metLocked records that alias has had a connection with this node. Caller
// holds m.mu.
func (m *Mesh) metLocked(alias string) {
	delete(m.dialWaits, alias)
	if m.met == nil || len(m.met) >= maxMet {
		m.met = make(map[string]struct{})
	}
	m.met[alias] = struct{}{}
}
