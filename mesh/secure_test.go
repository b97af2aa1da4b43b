package mesh

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"meshell/mesh/keyring"
	"meshell/protocol"
)

func ring(t *testing.T, keys ...keyring.Key) *keyring.Keyring {
	t.Helper()
	r, err := keyring.New(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func newKey(t *testing.T) keyring.Key {
	t.Helper()
	k, err := keyring.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func withRing(r *keyring.Keyring) func(*Config) { return func(c *Config) { c.Keyring = r } }

func hello(t *testing.T, from *Mesh, addr string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := from.Hello(ctx, addr)
	return err
}

func TestKeyedNodesTalkOverTLS(t *testing.T) {
	k := newKey(t)
	ra := newRecorder()
	_, addrA := newMesh(t, "a", ra, withRing(ring(t, k)))
	b, _ := newMesh(t, "b", newRecorder(), withRing(ring(t, k)))
	if err := hello(t, b, addrA); err != nil {
		t.Fatalf("join with the cluster key: %v", err)
	}
	if err := b.SendConnected("a", &protocol.Ping{Seq: 7}); err != nil {
		t.Fatal(err)
	}
	awaitPing(t, ra, 7)
}

func TestKeyRefusalsSayWhatDiffers(t *testing.T) {
	k1, k2 := newKey(t), newKey(t)
	cases := []struct {
		name       string
		seed, join *keyring.Keyring
		want       string
	}{
		{"wrong key", ring(t, k1), ring(t, k2), "holds no key of that cluster (its key ids: " + k1.ID()},
		{"no key against a keyed cluster", ring(t, k1), nil, "this cluster is encrypted (key ids " + k1.ID()},
		{"a key against a cluster without one", nil, ring(t, k1), "that node has no cluster key"},
		{"a primary the seed does not hold", ring(t, k1), ring(t, k2, k1), "does not hold this node's primary key " + k2.ID()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, addr := newMesh(t, "seed", newRecorder(), withRing(tc.seed))
			j, _ := newMesh(t, "joiner", newRecorder(), withRing(tc.join))
			err := hello(t, j, addr)
			var re *RefusedError
			if !errors.As(err, &re) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("join error %v, want a refusal saying %q", err, tc.want)
			}
			for _, k := range []keyring.Key{k1, k2} {
				if strings.Contains(err.Error(), k.Encode()) {
					t.Fatal("the error shows key bytes")
				}
			}
		})
	}
}

func TestRotatedKeyringAppliesToNewConnections(t *testing.T) {
	k1, k2 := newKey(t), newKey(t)
	ra := ring(t, k1)
	_, addrA := newMesh(t, "a", newRecorder(), withRing(ra))
	rb := ring(t, k1)
	b, _ := newMesh(t, "b", newRecorder(), withRing(rb))
	if err := rb.Install(k2); err != nil {
		t.Fatal(err)
	}
	if err := rb.Use(k2); err != nil {
		t.Fatal(err)
	}
	if err := hello(t, b, addrA); err == nil {
		t.Fatal("a node whose primary key the seed lacks joined")
	}
	if err := ra.Install(k2); err != nil {
		t.Fatal(err)
	}
	if err := hello(t, b, addrA); err != nil {
		t.Fatalf("after installing the new key the seed still refuses it: %v", err)
	}
}
