package manager

import (
	"math"

	"meshell/protocol"
)

// MaxIncarnationJump is how far news may raise a member's incarnation above
// what is known of it (above 0 for a member not known). A member raises its
// own incarnation by one per refutation, so honest news never comes near
// it. News beyond it is forged or corrupt: believed, it could push a member
// to an incarnation it cannot refute, since incarnations saturate at
// MaxUint64.
const MaxIncarnationJump = 1 << 20

// MaxBelievedIncarnation bounds what a handshake answer may say of the
// node itself, which is believed beyond MaxIncarnationJump (a restart must
// come back above what the cluster holds): no run refutes 2^63 times, so
// news above it is forged, and would leave the node no room to refute.
const MaxBelievedIncarnation = math.MaxUint64 >> 1

// NextIncarnation is the incarnation after inc, for every refutation, tag
// change and rejoin. It saturates at MaxUint64 rather than wrap to 0, which
// would lose to every piece of news about the member.
func NextIncarnation(inc uint64) uint64 {
	if inc == math.MaxUint64 {
		return inc
	}
	return inc + 1
}

// Plausible reports whether news may move a member known at incarnation
// known (0 when not known) to incarnation news: a move down, or up by at
// most MaxIncarnationJump.
func Plausible(known, news uint64) bool {
	return news <= known || news-known <= MaxIncarnationJump
}

// Verdict is the precedence rule's decision on one update.
type Verdict uint8

const (
	Ignore      Verdict = iota // stale, no change, or nothing to mark
	Apply                      // the update replaces what is known
	Implausible                // its incarnation jumps too far: refused
)

// rank orders states at one incarnation: a later state in this list
// overrides an earlier one. Left outranks failed so that a graceful leave
// seen alongside a detected disconnect shows as left.
func rank(s protocol.State) int {
	switch s {
	case protocol.StateAlive:
		return 1
	case protocol.StateSuspect:
		return 2
	case protocol.StateFailed:
		return 3
	case protocol.StateLeft:
		return 4
	}
	return 0
}

// Judge decides what update upd about a member does to what is known, cur
// (known is false when the member is not in the table). It is the one place
// where SWIM's precedence rules live:
//
//   - an unknown member is learned from alive or suspect news; news of its
//     failure or departure is ignored (there is nothing to mark);
//   - a higher incarnation wins, whatever the states, unless it lies more
//     than MaxIncarnationJump above the known incarnation, or above vouched
//     when that is lower (Implausible);
//   - at equal incarnation, alive < suspect < failed < left;
//   - while a member is alive or suspect, only its own word moves its
//     address: third-party news giving another address is ignored, so a
//     forged record cannot send the cluster's dials elsewhere (a member
//     that restarts elsewhere says so on its own connections);
//   - an update that changes nothing does not apply.
//
// vouched is the incarnation the member last gave in its own word (0 if
// never). Counting the jump from it, not only from cur, keeps third parties
// from ratcheting a member upwards one bounded step per update — alive at
// +jump, then left at +2·jump — to news that the member itself must refuse
// as implausible.
//
// own is set when upd is the member's own word about itself, received on its
// own connection. An alive update in its own word is believed at any higher
// incarnation: a member can only harm itself that way, and it is how a
// member that had to refute far-fetched news reaches members that never
// heard that news.
//
// Refutation — raising one's own incarnation when suspected — is not decided
// here: only the node itself does that, and it never judges news about
// itself through this function.
func Judge(cur protocol.Member, known bool, vouched uint64, upd protocol.Member, own bool) Verdict {
	if rank(upd.State) == 0 {
		return Ignore
	}
	believed := own && upd.State == protocol.StateAlive
	if !known {
		switch {
		case upd.State != protocol.StateAlive && upd.State != protocol.StateSuspect:
			return Ignore
		case !believed && !Plausible(0, upd.Incarnation):
			return Implausible
		}
		return Apply
	}
	switch {
	case upd.Incarnation < cur.Incarnation:
		return Ignore
	case !own && upd.Addr != cur.Addr && (cur.State == protocol.StateAlive || cur.State == protocol.StateSuspect):
		return Ignore
	case upd.Incarnation == cur.Incarnation:
		if rank(upd.State) > rank(cur.State) {
			return Apply
		}
		return Ignore
	case !believed && !Plausible(min(cur.Incarnation, vouched), upd.Incarnation):
		return Implausible
	}
	return Apply
}

// Supersedes reports whether third-party news upd should replace what is
// known, cur, taken as vouched for: Judge's verdict is Apply.
func Supersedes(cur protocol.Member, known bool, upd protocol.Member) bool {
	return Judge(cur, known, cur.Incarnation, upd, false) == Apply
}
