package node

import "testing"

// A probe interval at or below the profile's gossip interval is accepted:
// the pushes' batching window shrinks with it instead of refusing the value.
func TestSetTunablesShortProbeInterval(t *testing.T) {
	sc := LANTunables()
	if err := SetTunables(&sc, [][2]string{{"probe-interval", "100ms"}, {"probe-timeout", "40ms"}}); err != nil {
		t.Fatalf("probe-interval 100ms on the lan profile: %v", err)
	}
	if sc.GossipInterval >= sc.ProbeInterval {
		t.Fatalf("gossip interval %v not below probe interval %v", sc.GossipInterval, sc.ProbeInterval)
	}
	if err := SetTunables(&sc, [][2]string{{"probe-interval", "soon"}}); err == nil {
		t.Fatal("a bad duration was accepted")
	}
}
