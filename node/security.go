package node

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"meshell/mesh/keyring"
	"meshell/node/operator"
	"meshell/protocol"
)

// mutating reports whether a control request changes the node: those are
// refused by --accept-control=false and need an operator's signature when
// the node has --operators. Ping, status and listing keys do not.
func mutating(m *protocol.Control) bool {
	switch m.Op {
	case OpScale, OpShutdown, OpRestart, OpForceLeave:
		return true
	case OpConfig:
		return m.Key != ""
	case OpKeys:
		return m.Key != "list"
	}
	return false
}

// controlArgs are the arguments an operator's signature covers, built the
// same way on both ends from every field that changes what the request does.
func controlArgs(m *protocol.Control) []string {
	return []string{"n=" + strconv.FormatInt(m.N, 10), "key=" + m.Key, "value=" + m.Value, "now=" + strconv.FormatBool(m.Now)}
}

// sign signs m for target with this node's operator key, if it has one.
func (n *Node) sign(m *protocol.Control, target string) error {
	if !mutating(m) {
		return nil
	}
	s, ok, err := n.signFor(m.Op, controlArgs(m), target)
	if ok {
		m.Auth = signatureOf(s)
	}
	return err
}

// verify checks m's operator signature when this node requires one.
func (n *Node) verify(m *protocol.Control) error {
	s := signedOf(m.Op, controlArgs(m), m.Auth)
	err := n.verifySigned(s)
	if errors.Is(err, operator.ErrNotSigned) {
		return errors.New("this node takes changes only from its operators: sign the request with --operator-key")
	}
	return err
}

// BootTag is the tag a node with --operators gossips its boot id in
// (operator.Verifier.Boot): random per process, so that a request signed for
// one run of the node is refused by the next, whose replay cache is empty.
// The node keeps it itself, as it keeps the slots tag; without --operators
// it carries none.
const BootTag = "boot"

// ownTags returns tags with the tags the node keeps itself: the job
// plane's (slots, kinds) and the boot id.
func (n *Node) ownTags(tags map[string]string) map[string]string {
	out := n.jobs.OwnTags(tags) // a copy
	if v := n.cfg.Operators; v != nil {
		out[BootTag] = v.Boot()
	} else {
		delete(out, BootTag)
	}
	return out
}

// OwnedTag is nil for a tag a user may set, and for a tag the node keeps
// itself (ownTags) an error naming what sets it. --tags, !tag and !untag
// refuse those.
func OwnedTag(key string) error {
	switch key {
	case SlotsTag:
		return fmt.Errorf("tag %s is kept by the node: set it with --slots N at start-up or !scale ALIAS N later", SlotsTag)
	case KindsTag:
		return fmt.Errorf("tag %s is kept by the node: it names the kinds declared with --kind", KindsTag)
	case BootTag:
		return fmt.Errorf("tag %s is kept by the node: it is the boot id it gossips for signed control (--operators)", BootTag)
	}
	return nil
}

// signFor is the one signing helper of control and run requests: it signs
// op and args for target, in the run its table knows of (its boot tag),
// with this node's operator key. ok is false (and nothing is signed) when
// this node has no key. A target that gossips no boot id (an older node, or
// one without --operators) gets a request without one, which such a node
// verifies, if at all, as before.
func (n *Node) signFor(op string, args []string, target string) (s operator.Signed, ok bool, err error) {
	k := n.cfg.OperatorKey
	if k == nil {
		return s, false, nil
	}
	var boot string
	if e, known := n.snap.Load().Get(target); known {
		boot = e.Tags[BootTag]
	}
	s, err = operator.Sign(k, op, args, target, boot, operator.DefaultTTL, time.Now())
	return s, err == nil, err
}

// verifySigned checks s when this node requires operator signatures (nil
// otherwise); an unsigned request fails with operator.ErrNotSigned.
func (n *Node) verifySigned(s operator.Signed) error {
	v := n.cfg.Operators
	if v == nil {
		return nil
	}
	issuer, err := v.Verify(s, n.Alias(), time.Now())
	if err != nil {
		return err
	}
	n.log.WithField("operator", issuer).WithField("op", s.Op).Info("signed request")
	return nil
}

// Operator is the name of the operator this node signs control requests
// as, or "" when it has no operator key.
func (n *Node) Operator() string {
	if k := n.cfg.OperatorKey; k != nil {
		return k.Name()
	}
	return ""
}

// keys runs one step of a key rotation on this node: list, install KEY, use
// ID or remove ID. The key file, if any, is rewritten atomically after a
// change. After a removal, what it returns closes the connections the
// removed key authenticated; it runs once the acknowledgement is sent.
func (n *Node) keys(op, value string) (func(), error) {
	var after func()
	err := n.rotate(op, value, &after)
	return after, err
}

func (n *Node) rotate(op, value string, after *func()) error {
	ring := n.cfg.Keyring.keys()
	if ring == nil && op == "list" {
		return nil // its status says it holds no key
	}
	if ring == nil {
		return errors.New("this node holds no cluster key: the cluster is not encrypted (start every node with --key-file to use keys)")
	}
	lookup := func() (keyring.Key, error) {
		k, ok := ring.Lookup(value)
		if !ok {
			return k, fmt.Errorf("key %s is not installed here (installed: %v)", value, ring.IDs())
		}
		return k, nil
	}
	var err error
	switch op {
	case "list":
		return nil
	case "install":
		var k keyring.Key
		if k, err = keyring.ParseKey(value); err == nil {
			err = ring.Install(k)
		}
	case "use":
		var k keyring.Key
		if k, err = lookup(); err == nil {
			err = ring.Use(k)
		}
	case "remove":
		var k keyring.Key
		if k, err = lookup(); err == nil {
			if err = ring.Remove(k); err == nil {
				*after = func() { n.mesh.CloseKeyed(k.ID()) }
			}
		}
	default:
		return fmt.Errorf("unknown keys operation %q: use list, install, use or remove", op)
	}
	if err != nil {
		return err
	}
	if n.cfg.KeyFile != "" {
		if err := ring.Save(n.cfg.KeyFile); err != nil {
			return fmt.Errorf("keyring changed, but %s was not rewritten: %w", n.cfg.KeyFile, err)
		}
	}
	n.log.WithField("keys", ring.IDs()).Info("keys: " + op)
	return nil
}

// signatureOf is s as it travels; signedOf puts a request's operation and
// arguments back beside the signature that came with it (nil: unsigned).
func signatureOf(s operator.Signed) *protocol.Signature {
	return &protocol.Signature{Target: s.Target, Boot: s.Boot, Issuer: s.Issuer, Nonce: s.Nonce, Expiry: s.Expiry, Sig: s.Sig}
}

func signedOf(op string, args []string, a *protocol.Signature) operator.Signed {
	s := operator.Signed{Op: op, Args: args}
	if a != nil {
		s.Target, s.Boot, s.Issuer, s.Nonce, s.Expiry, s.Sig = a.Target, a.Boot, a.Issuer, a.Nonce, a.Expiry, a.Sig
	}
	return s
}
