package node

import (
	"maps"
	"time"

	"meshell/manager"
	"meshell/node/swim"
	"meshell/protocol"
)

// The shell's types: node converts the wire's and the SWIM core's values
// to these at its edge, so that repl and main import node and nothing
// below it.

// State is a member's state: alive, suspect, failed or left. Its values
// are the wire's, so that the conversion is a cast; its words are the
// wire's too (protocol/messages.go).
type State uint8

// Member states.
const (
	StateAlive   = State(protocol.StateAlive)
	StateSuspect = State(protocol.StateSuspect)
	StateFailed  = State(protocol.StateFailed) // a detected crash or cut-off
	StateLeft    = State(protocol.StateLeft)   // a graceful departure
)

func (s State) String() string { return protocol.State(s).String() }

// ParseState reads a state word; "dead" is accepted for "failed".
func ParseState(s string) (State, error) {
	st, err := protocol.ParseState(s)
	return State(st), err
}

// Member is one row of the membership table as this node sees it.
type Member struct {
	Alias       string
	Addr        string // advertised host:port
	State       State
	Incarnation uint64
	Tags        map[string]string
	Self        bool          // this node
	RTT         time.Duration // last direct probe round trip; 0 = not measured
	Since       time.Time     // when this node last saw the state change
}

func memberOf(m protocol.Member, self bool) Member {
	return Member{Alias: m.Alias, Addr: m.Addr, State: State(m.State), Incarnation: m.Incarnation, Tags: maps.Clone(m.Tags), Self: self}
}

// Snapshot is an immutable view of the membership table, published by the
// run loop after every change.
type Snapshot struct {
	Entries []Member
	At      time.Time
}

// view pairs the run loop's snapshot with its conversion, made once.
type view struct {
	src *manager.Snapshot
	out *Snapshot
}

func snapshotOf(s *manager.Snapshot) *Snapshot {
	out := &Snapshot{Entries: make([]Member, len(s.Entries)), At: s.At}
	for i, e := range s.Entries {
		m := memberOf(e.Member, e.Self)
		m.RTT, m.Since = e.RTT, e.Since
		out.Entries[i] = m
	}
	return out
}

// Count returns how many entries are in state st.
func (s *Snapshot) Count(st State) int {
	n := 0
	for _, e := range s.Entries {
		if e.State == st {
			n++
		}
	}
	return n
}

// Get returns the entry for alias.
func (s *Snapshot) Get(alias string) (Member, bool) {
	for _, e := range s.Entries {
		if e.Alias == alias {
			return e, true
		}
	}
	return Member{}, false
}

// EventKind names a membership change.
type EventKind uint8

// Membership changes, as node/swim reports them.
const (
	MemberJoin    = EventKind(swim.MemberJoin)    // a new member, or one that left and came back
	MemberSuspect = EventKind(swim.MemberSuspect) // alive → suspect
	MemberFailed  = EventKind(swim.MemberFailed)  // → failed (detected)
	MemberAlive   = EventKind(swim.MemberAlive)   // suspect or failed → alive (recovered)
	MemberLeave   = EventKind(swim.MemberLeave)   // → left (graceful)
	MemberUpdate  = EventKind(swim.MemberUpdate)  // alive and alive again with other tags or address
	MemberReap    = EventKind(swim.MemberReap)    // removed from the table
)

func (k EventKind) String() string { return swim.EventKind(k).String() }

// Event is one membership change as this node saw it.
type Event struct {
	Kind    EventKind
	Member  Member
	At      time.Time
	Accuser string // member-suspect: whose probe failed, "" when not named
}

func eventOf(ev swim.Event, self string) Event {
	return Event{Kind: EventKind(ev.Kind), Member: memberOf(ev.Member, ev.Member.Alias == self), At: ev.At, Accuser: ev.Accuser}
}

// Tunables are the failure-detection settings (SWIM with Lifeguard); see
// node/swim/config.go for what each does and its defaults.
type Tunables struct {
	ProbeInterval    time.Duration // time between two probes by this node
	ProbeTimeout     time.Duration // wait for a direct ack before the indirect round
	IndirectChecks   int           // members asked to probe on our behalf (k)
	SuspicionMult    int           // suspicion timeout = mult × max(1, log10 N) × interval, at least
	SuspicionMaxMult int           // ... and at most SuspicionMaxMult × that, shrinking with confirmations
	RetransmitMult   int           // each update rides along ≈ mult × log10(N+1) messages (λ)
	GossipFanout     int           // members told of a change at once, besides piggybacking
	GossipInterval   time.Duration // least time between two such pushes; changes meanwhile go out together
	MaxPiggyback     int           // updates carried by one ping or ack
	QueueLimit       int           // bound of the retransmit queue; oldest updates are dropped first
	PushPullInterval time.Duration // periodic full-state exchange with one random member
	PushPullMinGap   time.Duration // least time between two digest-triggered exchanges
	AwarenessMax     int           // Lifeguard: timeouts stretch up to (AwarenessMax+1)×
	ReconnectBase    time.Duration // first re-dial of a failed member
	ReconnectMax     time.Duration // backoff ceiling for re-dials
	ReconnectTimeout time.Duration // failed members are re-dialled this long, then reaped
	RedialRate       int           // re-dials per second across all failed members (burst as many); more wait their turn
	LeftReap         time.Duration // left members are kept this long, then reaped
	UnverifiedReap   time.Duration // members never in contact: reaped this long after learned, once failed or left
	NewMemberBurst   int           // new members one sender may introduce at once ...
	NewMemberRate    int           // ... and per second after that (a token bucket per sender)
	MaxMembers       int           // table size cap, self and every state included; new members beyond it are refused
}

// LANTunables is the default profile: a LAN or one machine.
func LANTunables() Tunables { return Tunables(swim.LANConfig()) }

// Profile returns the tunables named lan, local or wan.
func Profile(name string) (Tunables, error) {
	c, err := swim.Profile(name)
	return Tunables(c), err
}

// Status describes a node, as the status command reports it.
type Status struct {
	Alias         string
	Version       string
	UptimeMs      int64
	MembersAlive  int
	MembersSusp   int
	MembersFailed int
	Slots         int
	InFlight      int
	JobsDone      uint64
	Goroutines    int
	RSSBytes      uint64
	Tags          map[string]string
	Config        map[string]string
	BytesSent     uint64   // application bytes written to the cluster port
	KeyIDs        []string // installed cluster key ids, primary first; none = not encrypted
	Operators     bool     // control that changes the node needs an operator's signature
	// Protocol 2: the versions the node speaks and, as ProtoCur, the one its
	// connection to the asker speaks; all 0 from a protocol 1 node.
	ProtoMin, ProtoMax, ProtoCur uint16
	CPUMs                        uint64 // CPU time the process used, user and system; 0 from an older node
}

// Versions is a range of protocol versions, [Min, Max], and, as Cur, the
// one a connection speaks.
type Versions struct {
	Min, Max, Cur uint16
}

// String is "1-2", or "1" for a range of one version.
func (v Versions) String() string { return protocol.Versions(v).String() }

// SupportedVersions is the range this build speaks.
func SupportedVersions() Versions { return Versions(protocol.Supported()) }

func statusOf(st *protocol.NodeStatus) *Status {
	if st == nil {
		return nil
	}
	s := Status(*st)
	return &s
}

// Names and their rules, as every node checks them (protocol/names.go).
const (
	DefaultCluster  = protocol.DefaultCluster // the cluster of a node that names none
	ProtocolVersion = protocol.Version        // the newest version this build speaks
)

// ValidAlias explains why s cannot be an alias (nil when it can).
func ValidAlias(s string) error { return protocol.ValidAlias(s) }

// ValidCluster explains why s cannot be a cluster name.
func ValidCluster(s string) error { return protocol.ValidCluster(s) }

// ValidTag explains why k=v cannot be a tag.
func ValidTag(k, v string) error { return protocol.ValidTag(k, v) }

// ValidTags explains why tags cannot be a member's tags.
func ValidTags(tags map[string]string) error { return protocol.ValidTags(tags) }
