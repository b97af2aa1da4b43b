package mesh

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"meshell/protocol"
)

// ups counts the peer-ups r recorded for alias.
func (r *recorder) ups(alias string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, a := range r.up {
		if a == alias {
			n++
		}
	}
	return n
}

// shakes is how many accepted connections are in their handshake.
func (m *Mesh) shakes() int {
	m.gate.mu.Lock()
	defer m.gate.mu.Unlock()
	return len(m.gate.shakes)
}

// Two processes (two meshes, two listen addresses) that claim one alias in
// the same instant: the seed admits exactly one and refuses the other with
// the alias's holder, and holds one connection under the alias. The seed
// decides on the first while the second's connection is already accepted,
// so the second arrives between the first's admission and its registration.
func TestSameAliasFromTwoAddressesAtOnceAdmitsOne(t *testing.T) {
	rs := newRecorder()
	seed, seedAddr := newMesh(t, "seed", rs, func(c *Config) { c.Takeover = 50 * time.Millisecond })
	var mu sync.Mutex
	first := map[string]bool{}
	rs.admit = func(p protocol.Member) { // the first claim of each alias waits for the second's connection
		mu.Lock()
		wait := !first[p.Alias]
		first[p.Alias] = true
		mu.Unlock()
		for deadline := time.Now().Add(5 * time.Second); wait && seed.shakes() < 2 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
	}
	for round := 0; round < 30; round++ {
		alias := fmt.Sprintf("x%02d", round)
		var procs [2]*Mesh
		var addrs [2]string
		for i := range procs {
			procs[i], addrs[i] = newMesh(t, alias, newRecorder())
		}
		var errs [2]error
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, p := range procs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				<-start
				_, errs[i] = p.Hello(ctx, seedAddr)
			}()
		}
		close(start)
		wg.Wait()
		if (errs[0] == nil) == (errs[1] == nil) {
			t.Fatalf("round %d: both claims of %q answered alike: %v, %v; want one admitted, one refused", round, alias, errs[0], errs[1])
		}
		won, lost := 0, 1
		if errs[0] != nil {
			won, lost = 1, 0
		}
		var re *RefusedError
		want := fmt.Sprintf("alias %q is already used by %s; pick another --alias", alias, addrs[won])
		if !errors.As(errs[lost], &re) || re.Reason != want {
			t.Fatalf("round %d: the second claim got %v, want the refusal %q", round, errs[lost], want)
		}
		if procs[lost].Connected("seed") || !procs[won].Connected("seed") {
			t.Fatalf("round %d: the refused process is connected to the seed, or the admitted one is not", round)
		}
		seed.mu.Lock()
		c := seed.live(alias)
		seed.mu.Unlock()
		if c == nil || c.peer.Addr != addrs[won] {
			t.Fatalf("round %d: the seed's connection under %q is %v, want the one from %s", round, alias, c, addrs[won])
		}
		if n := rs.ups(alias); n != 1 {
			t.Fatalf("round %d: the seed reported %d peers up under %q, want 1", round, n, alias)
		}
		for _, p := range procs {
			p.Close()
		}
	}
}

// A node restarted on another port takes its alias back as soon as its old
// connection is gone, even when the seed has not yet read that close.
func TestRestartOnAnotherPortTakesTheAliasOver(t *testing.T) {
	rs := newRecorder()
	seed, seedAddr := newMesh(t, "seed", rs)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	old, _ := newMesh(t, "b", newRecorder())
	if _, err := old.Hello(ctx, seedAddr); err != nil {
		t.Fatal(err)
	}
	old.Close()
	b, bAddr := newMesh(t, "b", newRecorder())
	if _, err := b.Hello(ctx, seedAddr); err != nil {
		t.Fatalf("the restarted node was refused its alias: %v", err)
	}
	seed.mu.Lock()
	c := seed.live("b")
	seed.mu.Unlock()
	if c == nil || c.peer.Addr != bAddr {
		t.Fatalf("the seed's connection under b is %v, want the one from %s", c, bAddr)
	}
}
