package swim

import (
	"time"

	"meshell/protocol"
)

// Outbound is a message the Core wants sent. Addr is the member's advertised
// address, for the driver to dial when it has no connection to To. One Msg
// sent to several members appears in consecutive Outbounds as the same
// pointer, and is read-only.
type Outbound struct {
	To   string
	Addr string
	Msg  protocol.Message
}

// EventKind names a membership change.
type EventKind uint8

const (
	MemberJoin    EventKind = iota + 1 // a new member, or one that left and came back
	MemberSuspect                      // alive → suspect
	MemberFailed                       // → failed (detected)
	MemberAlive                        // suspect or failed → alive (recovered)
	MemberLeave                        // → left (graceful)
	MemberUpdate                       // alive and alive again with other tags or address
	MemberReap                         // removed from the table
)

func (k EventKind) String() string {
	switch k {
	case MemberJoin:
		return "member-join"
	case MemberSuspect:
		return "member-suspect"
	case MemberFailed:
		return "member-failed"
	case MemberAlive:
		return "member-alive"
	case MemberLeave:
		return "member-leave"
	case MemberUpdate:
		return "member-update"
	case MemberReap:
		return "member-reap"
	}
	return "member-event"
}

// Event is one membership change as this node saw it.
type Event struct {
	Kind    EventKind
	Member  protocol.Member
	At      time.Time
	Accuser string // MemberSuspect: the member whose probe failed, "" when not named
}

// Ready is what a Core produced since the last call to Ready.
type Ready struct {
	Msgs   []Outbound
	Events []Event
}
