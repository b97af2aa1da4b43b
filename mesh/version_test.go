package mesh

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"meshell/protocol"
)

// Two nodes speak the highest version both have; PeerVersions reports the
// peer's range and that version on both sides, whichever side dialled.
func TestHandshakeNegotiatesTheHighestCommonVersion(t *testing.T) {
	cases := []struct {
		name      string
		dial, acc protocol.Versions
		want      uint16
	}{
		{"same range", protocol.Versions{Min: 1, Max: 2}, protocol.Versions{Min: 1, Max: 2}, 2},
		{"older acceptor", protocol.Versions{Min: 1, Max: 3}, protocol.Versions{Min: 1, Max: 1}, 1},
		{"older dialler", protocol.Versions{Min: 2, Max: 2}, protocol.Versions{Min: 1, Max: 4}, 2},
		{"touching at one version", protocol.Versions{Min: 3, Max: 5}, protocol.Versions{Min: 1, Max: 3}, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			accR := newRecorder()
			acc, accAddr := newMesh(t, "a", accR, func(c *Config) { c.Versions = tc.acc })
			dial, _ := newMesh(t, "d", newRecorder(), func(c *Config) { c.Versions = tc.dial })
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := dial.Hello(ctx, accAddr); err != nil {
				t.Fatalf("hello: %v", err)
			}
			v, ok := dial.PeerVersions("a")
			if !ok || v.Cur != tc.want || v.Min != tc.acc.Min || v.Max != tc.acc.Max {
				t.Errorf("dialler sees %+v (connected %v), want %s at %d", v, ok, tc.acc, tc.want)
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				v, ok = acc.PeerVersions("d")
				if ok || time.Now().After(deadline) {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			if !ok || v.Cur != tc.want || v.Min != tc.dial.Min || v.Max != tc.dial.Max {
				t.Errorf("acceptor sees %+v (connected %v), want %s at %d", v, ok, tc.dial, tc.want)
			}
		})
	}
}

// Ranges that do not overlap are refused, with both ranges named, whether
// the newer node dials or is dialled.
func TestHandshakeRefusesRangesThatDoNotOverlap(t *testing.T) {
	old, newer := protocol.Versions{Min: 1, Max: 1}, protocol.Versions{Min: 2, Max: 3}
	for _, tc := range []struct {
		name      string
		dial, acc protocol.Versions
		hello     bool
	}{{"newer dials with hello", newer, old, true}, {"older dials with join", old, newer, false}} {
		t.Run(tc.name, func(t *testing.T) {
			_, accAddr := newMesh(t, "a", newRecorder(), func(c *Config) { c.Versions = tc.acc })
			dial, _ := newMesh(t, "d", newRecorder(), func(c *Config) { c.Versions = tc.dial })
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var err error
			if tc.hello {
				_, err = dial.Hello(ctx, accAddr)
			} else {
				_, err = dial.Join(ctx, accAddr)
			}
			var ref *RefusedError
			if !errors.As(err, &ref) {
				t.Fatalf("want a refusal, got %v", err)
			}
			for _, want := range []string{"d speaks " + tc.dial.String(), "a speaks " + tc.acc.String(), "do not overlap"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("refusal %q does not say %q", err, want)
				}
			}
			if dial.Connected("a") {
				t.Error("a refused peer is connected")
			}
		})
	}
}
