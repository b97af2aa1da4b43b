package manager

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand"
	"slices"
	"testing"
	"time"

	"meshell/protocol"
)

// TestDigestCoversLiveEntriesOnly: a failed or left entry, which a later
// joiner cannot learn, does not change the digest; a live one does.
func TestDigestCoversLiveEntriesOnly(t *testing.T) {
	now := time.Unix(0, 0)
	mk := func() *Table {
		t := NewTable(protocol.Member{Alias: "a", State: protocol.StateAlive}, now)
		t.Set(now, protocol.Member{Alias: "b", State: protocol.StateAlive, Incarnation: 2})
		return t
	}
	joiner, old := mk(), mk()
	old.Set(now, protocol.Member{Alias: "c", State: protocol.StateFailed, Incarnation: 1})
	old.Set(now, protocol.Member{Alias: "d", State: protocol.StateLeft})
	if joiner.Digest() != old.Digest() {
		t.Fatal("failed and left entries changed the digest")
	}
	old.Set(now, protocol.Member{Alias: "c", State: protocol.StateSuspect, Incarnation: 2})
	if joiner.Digest() == old.Digest() {
		t.Fatal("a suspect entry did not change the digest")
	}
	joiner.Set(now, protocol.Member{Alias: "c", State: protocol.StateSuspect, Incarnation: 2})
	if joiner.Digest() != old.Digest() {
		t.Fatal("same live view, different digests")
	}
	joiner.Set(now, protocol.Member{Alias: "c", State: protocol.StateSuspect, Incarnation: 3})
	if joiner.Digest() == old.Digest() {
		t.Fatal("the incarnation is not in the digest")
	}
}

// TestTableMergeRefusesImplausibleJumps: Merge applies the precedence rule,
// jump bound included, counted from what the member vouched for.
func TestTableMergeRefusesImplausibleJumps(t *testing.T) {
	now := time.Unix(0, 0)
	tb := NewTable(protocol.Member{Alias: "a", State: protocol.StateAlive}, now)
	tb.Set(now, protocol.Member{Alias: "b", State: protocol.StateAlive, Incarnation: 4})
	// Never vouched for: bounded as if unknown.
	if _, _, ok := tb.Merge(now, protocol.Member{Alias: "b", State: protocol.StateFailed, Incarnation: 4 + MaxIncarnationJump}); ok {
		t.Fatal("failed at +jump merged for a member that never vouched for 4")
	}
	tb.Vouch("b", 4)
	if _, _, ok := tb.Merge(now, protocol.Member{Alias: "b", State: protocol.StateLeft, Incarnation: math.MaxUint64}); ok {
		t.Fatal("left@MaxUint64 merged")
	}
	if _, _, ok := tb.Merge(now, protocol.Member{Alias: "z", State: protocol.StateAlive, Incarnation: MaxIncarnationJump + 1}); ok {
		t.Fatal("an unknown member beyond the jump merged")
	}
	if _, _, v := tb.Judge(protocol.Member{Alias: "b", State: protocol.StateAlive, Incarnation: math.MaxUint64}, true); v != Apply {
		t.Fatalf("own alive word judged %d", v)
	}
	if _, _, ok := tb.Merge(now, protocol.Member{Alias: "b", State: protocol.StateAlive, Incarnation: 4 + MaxIncarnationJump}); !ok {
		t.Fatal("alive at +jump not merged")
	}
	// Ratcheting on: b still vouched for 4 only.
	if _, _, ok := tb.Merge(now, protocol.Member{Alias: "b", State: protocol.StateLeft, Incarnation: 5 + MaxIncarnationJump}); ok {
		t.Fatal("left beyond what b vouched for plus the jump merged")
	}
	if _, _, ok := tb.Merge(now, protocol.Member{Alias: "b", State: protocol.StateLeft, Incarnation: 4 + MaxIncarnationJump}); !ok {
		t.Fatal("left at +jump not merged")
	}
	tb.Remove("b")
	tb.Set(now, protocol.Member{Alias: "b", State: protocol.StateAlive})
	if _, _, ok := tb.Merge(now, protocol.Member{Alias: "b", State: protocol.StateLeft, Incarnation: 4 + MaxIncarnationJump}); ok {
		t.Fatal("a reaped member's vouch outlived it")
	}
	if _, _, v := tb.Judge(protocol.Member{Alias: "a", State: protocol.StateFailed}, false); v != Ignore {
		t.Fatal("news about the table's own node judged")
	}
}

// TestRoundTripsDoNotMakeTheTableLookChanged: a measured round trip changes
// RTTVersion only, so a Hello answer taken before it is still current and a
// snapshot need not be copied for it; a member's change moves Version.
func TestRoundTripsDoNotMakeTheTableLookChanged(t *testing.T) {
	now := time.Unix(1000, 0)
	tb := NewTable(protocol.Member{Alias: "a", Addr: "127.0.0.1:1", State: protocol.StateAlive}, now)
	tb.Set(now, protocol.Member{Alias: "b", Addr: "127.0.0.1:2", State: protocol.StateAlive})
	v, r := tb.Version(), tb.RTTVersion()
	tb.SetRTT("b", time.Millisecond)
	if tb.Version() != v || tb.RTTVersion() == r {
		t.Fatalf("after an RTT: Version %d→%d, RTTVersion %d→%d; want Version kept, RTTVersion moved", v, tb.Version(), r, tb.RTTVersion())
	}
	tb.Set(now, protocol.Member{Alias: "b", Addr: "127.0.0.1:2", State: protocol.StateSuspect})
	if tb.Version() == v {
		t.Fatal("a member's change did not move Version")
	}
}

// TestDigestIsFNVOfSortedLiveEntries: the digest is FNV-1a over each live
// entry in alias order (alias, incarnation little-endian, state), as peers
// of any version compute it; Entries stays sorted as members come and go.
func TestDigestIsFNVOfSortedLiveEntries(t *testing.T) {
	now := time.Unix(0, 0)
	tb := NewTable(protocol.Member{Alias: "m", State: protocol.StateAlive}, now)
	for i, a := range []string{"q", "b", "z", "a", "k", "c"} {
		tb.Set(now, protocol.Member{Alias: a, State: protocol.StateAlive, Incarnation: uint64(i * 300)})
	}
	tb.Set(now, protocol.Member{Alias: "k", State: protocol.StateFailed, Incarnation: 1200})
	tb.Set(now, protocol.Member{Alias: "b", State: protocol.StateSuspect, Incarnation: 300})
	tb.Remove("z")
	h := fnv.New32a()
	var aliases []string
	for _, e := range tb.Entries() {
		aliases = append(aliases, e.Alias)
		if e.State != protocol.StateAlive && e.State != protocol.StateSuspect {
			continue
		}
		h.Write([]byte(e.Alias))
		var b [9]byte
		binary.LittleEndian.PutUint64(b[:], e.Incarnation)
		b[8] = byte(e.State)
		h.Write(b[:])
	}
	if want := []string{"a", "b", "c", "k", "m", "q"}; !slices.Equal(aliases, want) {
		t.Fatalf("entries %v, want %v", aliases, want)
	}
	if got, want := tb.Digest(), h.Sum32(); got != want {
		t.Fatalf("digest %08x, want %08x", got, want)
	}
}

// TestDigestFollowsChangesAnywhere: the digest kept across sets and removes
// anywhere in the table is the one a table built afresh computes.
func TestDigestFollowsChangesAnywhere(t *testing.T) {
	now := time.Unix(0, 0)
	rng := rand.New(rand.NewSource(1))
	self := protocol.Member{Alias: "m10", State: protocol.StateAlive}
	tb := NewTable(self, now)
	states := []protocol.State{protocol.StateAlive, protocol.StateSuspect, protocol.StateFailed, protocol.StateLeft}
	for i := 0; i < 2000; i++ {
		alias := fmt.Sprintf("m%02d", rng.Intn(30))
		if alias == self.Alias {
			continue
		}
		if rng.Intn(4) == 0 {
			tb.Remove(alias)
		} else {
			tb.Set(now, protocol.Member{Alias: alias, State: states[rng.Intn(len(states))], Incarnation: uint64(rng.Intn(3))})
		}
		if rng.Intn(3) > 0 {
			continue // let changes pile up between digests too
		}
		fresh := NewTable(self, now)
		for _, m := range tb.Members() {
			if m.Alias != self.Alias {
				fresh.Set(now, m)
			}
		}
		if got, want := tb.Digest(), fresh.Digest(); got != want {
			t.Fatalf("step %d: digest %08x, a fresh table's %08x", i, got, want)
		}
	}
}
