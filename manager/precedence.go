package manager

import "meshell/protocol"

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

// Supersedes reports whether update upd about a member should replace what is
// known, cur (known is false when the member is not in the table). It is the
// one place where SWIM's precedence rules live:
//
//   - an unknown member is learned from alive or suspect news; news of its
//     failure or departure is ignored (there is nothing to mark);
//   - a higher incarnation wins, whatever the states;
//   - at equal incarnation, alive < suspect < failed < left;
//   - an update that changes nothing does not supersede.
//
// Refutation — raising one's own incarnation when suspected — is not decided
// here: only the node itself does that, and it never merges news about itself
// through this function.
func Supersedes(cur protocol.Member, known bool, upd protocol.Member) bool {
	if rank(upd.State) == 0 {
		return false
	}
	if !known {
		return upd.State == protocol.StateAlive || upd.State == protocol.StateSuspect
	}
	if upd.Incarnation != cur.Incarnation {
		return upd.Incarnation > cur.Incarnation
	}
	return rank(upd.State) > rank(cur.State)
}
