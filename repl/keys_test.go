package repl

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"meshell/node"
)

// !keys list --json prints one array, whether the cluster has keys or not.
func TestKeysListJSONIsOneArray(t *testing.T) {
	list := func(t *testing.T, n *node.Node) []map[string]any {
		t.Helper()
		var out bytes.Buffer
		s := New(n, Options{Out: &out, Err: &out})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.Exec(ctx, "!keys list --json"); err != nil {
			t.Fatalf("!keys list --json: %v\n%s", err, out.String())
		}
		var docs []map[string]any
		if lines := bytes.Count(out.Bytes(), []byte("\n")); lines != 1 || json.Unmarshal(out.Bytes(), &docs) != nil || docs == nil {
			t.Fatalf("printed %q, want one line holding a JSON array", out.String())
		}
		return docs
	}
	t.Run("no key", func(t *testing.T) {
		if docs := list(t, runTestNode(t, "p1", nil, "")); len(docs) != 0 {
			t.Errorf("an unencrypted cluster listed %+v", docs)
		}
	})
	t.Run("keyed", func(t *testing.T) {
		key, err := node.NewClusterKey()
		if err != nil {
			t.Fatal(err)
		}
		ring, err := node.KeyringFromEnv(key)
		if err != nil {
			t.Fatal(err)
		}
		keyed := func(c *node.Config) { c.Keyring = ring }
		k1 := runTestNode(t, "k1", keyed, "")
		runTestNode(t, "k2", keyed, k1.Addr())
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := k1.WaitFor(ctx, func(s *node.Snapshot) bool { return s.Count(node.StateAlive) == 2 }); err != nil {
			t.Fatal(err)
		}
		docs := list(t, k1)
		if len(docs) != 1 || docs[0]["nodes"] != 2.0 || docs[0]["of"] != 2.0 || len(asSlice(docs[0]["primary"])) != 2 {
			t.Errorf("listed %+v, want one key held and primary on both nodes", docs)
		}

		// A key mistyped (one character more, or cut short) for !keys use
		// or remove is not a key id: its text, nearly the key, is not
		// printed. An id that no member holds is named.
		other, err := node.NewClusterKey()
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		s := New(k1, Options{Out: &out, Err: &out})
		for _, given := range []string{other + "x", other[:len(other)-2], key[:30]} {
			for _, op := range []string{"use", "remove"} {
				err := s.Exec(ctx, "!keys "+op+" "+given)
				if err == nil || strings.Contains(err.Error(), given[:16]) || strings.Contains(out.String(), given[:16]) || !strings.Contains(err.Error(), "no member holds that key") {
					t.Errorf("!keys %s with a mistyped key: %v (printed %q), want an error without it", op, err, out.String())
				}
			}
		}
		if err := s.Exec(ctx, "!keys use 0123456789ab"); err == nil || err.Error() != "no member holds key 0123456789ab: !keys list shows the installed ones" {
			t.Errorf("!keys use of an id no member holds: %v", err)
		}
	})
}

func asSlice(v any) []any { s, _ := v.([]any); return s }
