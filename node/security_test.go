package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"meshell/mesh/keyring"
	"meshell/node/operator"
	"meshell/protocol"
)

func genKey(t *testing.T) keyring.Key {
	t.Helper()
	k, err := keyring.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// keyFile writes keys to a new key file and returns its path.
func keyFile(t *testing.T, keys ...keyring.Key) string {
	t.Helper()
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k.Encode() + "\n")
	}
	p := filepath.Join(t.TempDir(), "cluster.key")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// withKeyFile gives a node the keyring in path, rewritten on rotation.
func withKeyFile(t *testing.T, path string) testOpt {
	ring, err := keyring.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return func(c *Config) { c.Keyring, c.KeyFile = &Keyring{ring}, path }
}

func keysOp(t *testing.T, from *Node, targets []string, op, value string) []ControlReply {
	t.Helper()
	replies, err := from.Control(ctxFor(t, 10*time.Second), targets, ControlRequest{Op: OpKeys, Key: op, Value: value}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return replies
}

func TestKeyedClusterRefusesOutsiders(t *testing.T) {
	k := genKey(t)
	a := startNode(t, "a", withKeyFile(t, keyFile(t, k)))
	b := startNode(t, "b", withKeyFile(t, keyFile(t, k)))
	if _, err := b.Join(ctxFor(t, 5*time.Second), a.Addr()); err != nil {
		t.Fatalf("join with the cluster key: %v", err)
	}
	cases := map[string]testOpt{
		"no key":    func(c *Config) {},
		"wrong key": withKeyFile(t, keyFile(t, genKey(t))),
	}
	for name, opt := range cases {
		t.Run(name, func(t *testing.T) {
			x := startNode(t, "x-"+strings.ReplaceAll(name, " ", "-"), opt)
			_, err := x.Join(ctxFor(t, 5*time.Second), a.Addr())
			if err == nil || !strings.Contains(err.Error(), k.ID()) {
				t.Fatalf("an outsider with %s: join error %v, want a refusal naming the cluster's key id %s", name, err, k.ID())
			}
			if _, ok := a.Members().Get(x.Alias()); ok {
				t.Fatalf("the outsider is in a's table")
			}
		})
	}
}

func TestRotationWithANodeDown(t *testing.T) {
	k1, k2 := genKey(t), genKey(t)
	files := map[string]string{}
	var nodes []*Node
	for _, alias := range []string{"a", "b", "c"} {
		files[alias] = keyFile(t, k1)
		nodes = append(nodes, startNode(t, alias, withKeyFile(t, files[alias])))
	}
	for _, n := range nodes[1:] {
		if _, err := n.Join(ctxFor(t, 5*time.Second), nodes[0].Addr()); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range nodes {
		waitAlive(t, n, 3)
	}
	// c is down during the rotation.
	nodes[2].Close()
	all := []string{"a", "b"}
	for _, step := range [][2]string{{"install", k2.Encode()}, {"use", k2.ID()}, {"remove", k1.ID()}} {
		for _, r := range keysOp(t, nodes[0], all, step[0], step[1]) {
			if !r.OK {
				t.Fatalf("keys %s on %s: %s", step[0], r.Alias, r.Error)
			}
		}
	}
	for _, alias := range all {
		ring, err := keyring.Load(files[alias])
		if err != nil {
			t.Fatal(err)
		}
		if ids := ring.IDs(); len(ids) != 1 || ids[0] != k2.ID() {
			t.Fatalf("%s's key file after the rotation holds %v, want only %s", alias, ids, k2.ID())
		}
	}
	// A fourth node with the new key only joins; c, back with the old key, is
	// refused with a reason naming the key ids.
	d := startNode(t, "d", withKeyFile(t, keyFile(t, k2)))
	if _, err := d.Join(ctxFor(t, 5*time.Second), nodes[0].Addr()); err != nil {
		t.Fatalf("a node with the new key: %v", err)
	}
	c2 := startNode(t, "c", withKeyFile(t, files["c"]))
	_, err := c2.Join(ctxFor(t, 5*time.Second), nodes[0].Addr())
	if err == nil || !strings.Contains(err.Error(), k2.ID()) {
		t.Fatalf("a node with the rotated-out key: join error %v, want a refusal naming %s", err, k2.ID())
	}
}

func TestRotationRefusesRemovingThePrimary(t *testing.T) {
	k1, k2 := genKey(t), genKey(t)
	a := startNode(t, "a", withKeyFile(t, keyFile(t, k1, k2)))
	r := keysOp(t, a, []string{"a"}, "remove", k1.ID())[0]
	if r.OK || !strings.Contains(r.Error, "primary") {
		t.Fatalf("removing the primary key: %+v, want a refusal", r)
	}
}

// operatorPair makes an operator key and a verifier that lists it.
func operatorPair(t *testing.T, name string) (*operator.PrivateKey, *operator.Verifier) {
	t.Helper()
	k, err := operator.Generate(name)
	if err != nil {
		t.Fatal(err)
	}
	ops, err := operator.ParseOperators(strings.NewReader(k.PublicLine()+"\n"), "operators")
	if err != nil {
		t.Fatal(err)
	}
	v, err := operator.NewVerifier(ops, operator.VerifierConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return k, v
}

func TestSignedControl(t *testing.T) {
	key, verifier := operatorPair(t, "alice")
	a, b, _ := cluster3(t, func(c *Config) { c.Operators = verifier })
	scale := ControlRequest{Op: OpScale, N: 2}
	wire := protocol.Control{Op: OpScale, N: 2} // scale as it travels

	replies, err := a.Control(ctxFor(t, 10*time.Second), []string{"b"}, scale, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r := replies[0]; r.OK || !strings.Contains(r.Error, "operators") {
		t.Fatalf("unsigned scale: %+v, want a refusal", r)
	}
	if replies, _ := a.Control(ctxFor(t, 10*time.Second), []string{"b"}, ControlRequest{Op: OpStatus}, 5*time.Second); !replies[0].OK {
		t.Fatalf("status needs no signature: %+v", replies[0])
	}

	a.cfg.OperatorKey = key
	replies, _ = a.Control(ctxFor(t, 10*time.Second), []string{"b"}, scale, 5*time.Second)
	if r := replies[0]; !r.OK {
		t.Fatalf("signed scale refused: %+v", r)
	}

	// The same signed request again, or aimed at another node, is refused.
	signed := wire
	if err := a.sign(&signed, "b"); err != nil {
		t.Fatal(err)
	}
	if ack, _ := b.handleControl(&signed, "a"); ack.Error != "" {
		t.Fatalf("first use of a signed request: %s", ack.Error)
	}
	if ack, _ := b.handleControl(&signed, "a"); !strings.Contains(ack.Error, "replayed") {
		t.Fatalf("replayed signed request: %q, want a refusal", ack.Error)
	}
	reaimed := wire
	a.sign(&reaimed, "c")
	if ack, _ := b.handleControl(&reaimed, "a"); !strings.Contains(ack.Error, "aimed at c") {
		t.Fatalf("request signed for c run by b: %q, want a refusal", ack.Error)
	}
	tampered := wire
	a.sign(&tampered, "b")
	tampered.N = 64
	if ack, _ := b.handleControl(&tampered, "a"); !strings.Contains(ack.Error, "signature") {
		t.Fatalf("tampered signed request: %q, want a refusal", ack.Error)
	}
}

// bootSeen waits until from's table shows alias alive in the run whose
// boot id is boot.
func bootSeen(t *testing.T, from *Node, alias, boot string) {
	t.Helper()
	err := from.WaitFor(ctxFor(t, 20*time.Second), func(s *Snapshot) bool {
		m, ok := s.Get(alias)
		return ok && m.State == StateAlive && m.Tags[BootTag] == boot
	})
	if err != nil {
		m, _ := from.Members().Get(alias)
		t.Fatalf("%s never saw %s alive with boot id %s: %v (it sees %+v)", from.Alias(), alias, boot, err, m)
	}
}

// TestSignedControlAfterRestart: a signed request that one run of b took is
// refused by the next run of b (same alias, an empty replay cache), within
// the request's life; a request signed once the signer heard of the new run
// is taken.
func TestSignedControlAfterRestart(t *testing.T) {
	key, first := operatorPair(t, "alice")
	a, b, _ := cluster3(t, func(c *Config) { c.Operators = first })
	a.cfg.OperatorKey = key
	bootSeen(t, a, "b", first.Boot())

	captured := protocol.Control{Op: OpShutdown}
	if err := a.sign(&captured, "b"); err != nil {
		t.Fatal(err)
	}
	if captured.Auth.Boot != first.Boot() {
		t.Fatalf("signed for boot id %q, want b's %s", captured.Auth.Boot, first.Boot())
	}
	if ack, _ := b.handleControl(&captured, "a"); ack.Error != "" {
		t.Fatalf("first run of b: %s", ack.Error)
	}
	b.Close() // the process dies; its replay cache with it

	restarted, err := operator.NewVerifier(first.Operators(), operator.VerifierConfig{})
	if err != nil {
		t.Fatal(err)
	}
	b2 := startNode(t, "b", func(c *Config) { c.Operators = restarted })
	if got := b2.Self().Tags[BootTag]; got != restarted.Boot() {
		t.Fatalf("the new run gossips boot id %q, want %s", got, restarted.Boot())
	}
	ack, after := b2.handleControl(&captured, "a")
	if after != nil || ack.Error != "refused: signed for an earlier run of this node; resend" {
		t.Fatalf("captured shutdown replayed to the restarted b: %q, want refused as of an earlier run", ack.Error)
	}

	if _, err := b2.Join(ctxFor(t, 5*time.Second), a.Addr()); err != nil {
		t.Fatal(err)
	}
	bootSeen(t, a, "b", restarted.Boot())
	replies, err := a.Control(ctxFor(t, 10*time.Second), []string{"b"}, ControlRequest{Op: OpScale, N: 3}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r := replies[0]; !r.OK {
		t.Fatalf("a request signed for the new run of b: %+v", r)
	}
}

func TestBootTagBelongsToTheNode(t *testing.T) {
	_, v := operatorPair(t, "alice")
	signed := startNode(t, "s", func(c *Config) { c.Operators = v; c.Tags = map[string]string{BootTag: "mine"} })
	plain := startNode(t, "p", func(c *Config) { c.Tags = map[string]string{BootTag: "mine"} })
	if got := signed.Self().Tags[BootTag]; got != v.Boot() {
		t.Fatalf("a node with operators gossips boot id %q, want its verifier's %s", got, v.Boot())
	}
	if got, ok := plain.Self().Tags[BootTag]; ok {
		t.Fatalf("a node without operators gossips boot id %q, want none", got)
	}
	for _, n := range []*Node{signed, plain} {
		if err := n.SetTags(ctxFor(t, 5*time.Second), map[string]string{"role": "x", BootTag: "other"}); err != nil {
			t.Fatal(err)
		}
	}
	if got := signed.Self().Tags[BootTag]; got != v.Boot() {
		t.Fatalf("after SetTags: boot id %q, want %s", got, v.Boot())
	}
	if got, ok := plain.Self().Tags[BootTag]; ok {
		t.Fatalf("after SetTags, a node without operators gossips boot id %q", got)
	}
}
