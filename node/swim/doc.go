// Package swim is meshell's failure detector and membership protocol as a
// pure state machine: SWIM probing with indirect probes and suspicion,
// incarnations and refutation, piggybacked dissemination with a bounded
// retransmit queue, digest-triggered push/pull repair, Lifeguard local health
// and dogpile suspicion, and reconnection to failed members.
//
// A Core never reads the clock, opens a socket, sleeps or starts a goroutine.
// Its driver feeds it time (Tick), messages (Step) and connection evidence
// (Connected, ConnLost, DialFailed), and collects what it wants sent and what
// happened (Ready). The same Core runs in meshell's node over TCP and in the
// simulated network of this package's tests, where hundreds of nodes run
// deterministically against a fake clock.
//
// It imports protocol and manager only.
package swim
