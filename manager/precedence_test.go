package manager

import (
	"fmt"
	"testing"

	"meshell/protocol"
)

func TestSupersedesTable(t *testing.T) {
	const (
		A = protocol.StateAlive
		S = protocol.StateSuspect
		F = protocol.StateFailed
		L = protocol.StateLeft
		U = protocol.StateUnknown
	)
	m := func(s protocol.State, inc uint64) protocol.Member {
		return protocol.Member{Alias: "x", State: s, Incarnation: inc}
	}
	type tc struct {
		cur   protocol.Member
		known bool
		upd   protocol.Member
		want  bool
	}
	cases := []tc{
		// Unknown member: learned from alive or suspect only.
		{protocol.Member{}, false, m(A, 0), true},
		{protocol.Member{}, false, m(S, 3), true},
		{protocol.Member{}, false, m(F, 3), false},
		{protocol.Member{}, false, m(L, 3), false},
		{protocol.Member{}, false, m(U, 3), false},
		// An update with an unknown state never applies.
		{m(A, 1), true, m(U, 9), false},
	}
	// Every pair of known states at lower, equal and higher incarnation.
	states := []protocol.State{A, S, F, L}
	for i, cs := range states {
		for j, us := range states {
			cases = append(cases,
				tc{m(cs, 5), true, m(us, 6), true},  // higher incarnation always wins
				tc{m(cs, 5), true, m(us, 4), false}, // lower never does
				tc{m(cs, 5), true, m(us, 5), j > i}, // equal: alive < suspect < failed < left
			)
		}
	}
	for _, c := range cases {
		name := fmt.Sprintf("known=%v/%s@%d<-%s@%d", c.known, c.cur.State, c.cur.Incarnation, c.upd.State, c.upd.Incarnation)
		t.Run(name, func(t *testing.T) {
			if got := Supersedes(c.cur, c.known, c.upd); got != c.want {
				t.Fatalf("Supersedes = %v, want %v", got, c.want)
			}
		})
	}
}
