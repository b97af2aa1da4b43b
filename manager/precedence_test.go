package manager

import (
	"fmt"
	"math"
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

func TestNextIncarnationSaturates(t *testing.T) {
	for _, c := range []struct{ in, want uint64 }{{0, 1}, {41, 42}, {math.MaxUint64 - 1, math.MaxUint64}, {math.MaxUint64, math.MaxUint64}} {
		if got := NextIncarnation(c.in); got != c.want {
			t.Errorf("NextIncarnation(%d) = %d, want %d", c.in, got, c.want)
		}
	}
}

// TestJudgeIncarnationJump: news that raises an incarnation more than
// MaxIncarnationJump above the known one, or above the one the member last
// vouched for, is refused, whatever its state, unless it is an alive entry
// in the member's own word.
func TestJudgeIncarnationJump(t *testing.T) {
	const J = MaxIncarnationJump
	m := func(s protocol.State, inc uint64) protocol.Member {
		return protocol.Member{Alias: "x", State: s, Incarnation: inc}
	}
	cases := []struct {
		name    string
		cur     protocol.Member
		known   bool
		vouched uint64 // cur's incarnation when zero
		upd     protocol.Member
		own     bool
		want    Verdict
	}{
		{"left at +jump", m(protocol.StateAlive, 7), true, 0, m(protocol.StateLeft, 7+J), false, Apply},
		{"left beyond +jump", m(protocol.StateAlive, 7), true, 0, m(protocol.StateLeft, 8+J), false, Implausible},
		{"failed at MaxUint64", m(protocol.StateAlive, 7), true, 0, m(protocol.StateFailed, math.MaxUint64), false, Implausible},
		{"alive beyond +jump", m(protocol.StateAlive, 7), true, 0, m(protocol.StateAlive, 8+J), false, Implausible},
		{"own alive beyond +jump", m(protocol.StateAlive, 7), true, 0, m(protocol.StateAlive, 8+J), true, Apply},
		{"own left beyond +jump", m(protocol.StateAlive, 7), true, 0, m(protocol.StateLeft, math.MaxUint64), true, Implausible},
		{"near the top", m(protocol.StateAlive, math.MaxUint64-1), true, 0, m(protocol.StateSuspect, math.MaxUint64), false, Apply},
		{"stale far below", m(protocol.StateAlive, 3*J), true, 0, m(protocol.StateFailed, 1), false, Ignore},
		{"unknown at jump", protocol.Member{}, false, 0, m(protocol.StateAlive, J), false, Apply},
		{"unknown beyond jump", protocol.Member{}, false, 0, m(protocol.StateSuspect, J+1), false, Implausible},
		{"unknown own beyond jump", protocol.Member{}, false, 0, m(protocol.StateAlive, math.MaxUint64), true, Apply},
		{"unknown failed beyond jump", protocol.Member{}, false, 0, m(protocol.StateFailed, math.MaxUint64), false, Ignore},
		// Ratcheting: the member vouched for 7, third parties raised it to
		// 7+jump; left at 7+2·jump would be beyond what it may refute.
		{"ratchet", m(protocol.StateAlive, 7+J), true, 7, m(protocol.StateLeft, 7+2*J), false, Implausible},
		{"ratchet within the bound", m(protocol.StateAlive, 7+J), true, 7, m(protocol.StateLeft, 7+J), false, Apply},
		{"ratchet own word", m(protocol.StateAlive, 7+J), true, 7, m(protocol.StateAlive, 7+2*J), true, Apply},
		{"vouched above known", m(protocol.StateAlive, 7), true, 9, m(protocol.StateLeft, 8+J), false, Implausible},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			vouched := c.vouched
			if vouched == 0 {
				vouched = c.cur.Incarnation
			}
			if got := Judge(c.cur, c.known, vouched, c.upd, c.own); got != c.want {
				t.Fatalf("Judge = %d, want %d", got, c.want)
			}
			if got := Supersedes(c.cur, c.known, c.upd); !c.own && c.vouched == 0 && got != (c.want == Apply) {
				t.Fatalf("Supersedes = %v", got)
			}
		})
	}
}
