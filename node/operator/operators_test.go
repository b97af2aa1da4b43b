package operator

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestParseOperators(t *testing.T) {
	alice, bob, carol := testKey(t, "alice", 1), testKey(t, "bob", 2), testKey(t, "carol", 3)
	text := "# who may operate n1\n" +
		"\n" +
		bob.PublicLine() + "\n" +
		"   " + alice.PublicLine() + "   # on call\r\n" +
		"\t\n" +
		"  # " + carol.PublicLine() + " (left the team)\n"
	ops, err := ParseOperators(strings.NewReader(text), "ops")
	if err != nil {
		t.Fatal(err)
	}
	if got := ops.Names(); !slices.Equal(got, []string{"alice", "bob"}) || ops.Len() != 2 {
		t.Fatalf("Names = %v, want [alice bob]", got)
	}
	if pub, ok := ops.lookup("alice"); !ok || !pub.Equal(alice.Public()) {
		t.Fatal("alice's key not loaded")
	}
}

func TestParseOperatorsErrors(t *testing.T) {
	alice, bob := testKey(t, "alice", 1), testKey(t, "bob", 2)
	aliceKey := strings.TrimPrefix(alice.PublicLine(), "alice ")
	b64 := strings.TrimPrefix(aliceKey, "ed25519:")
	short := base64.StdEncoding.EncodeToString(make([]byte, 31))
	for _, tc := range []struct {
		name, text, want string
	}{
		{"name without a key", "# ops\nalice\n", `ops:2: want "NAME ed25519:BASE64", got 1 fields`},
		{"three fields", "alice " + aliceKey + " extra\n", `ops:1: want "NAME ed25519:BASE64", got 3 fields`},
		{"bad name", "\n\nal/ice " + aliceKey + "\n", `ops:3: bad operator name "al/ice": want 1-64 of A-Z a-z 0-9 . _ -`},
		{"another key type", "alice ssh-ed25519:" + b64 + "\n", `ops:1: operator "alice": unsupported key type "ssh-ed25519" (want ed25519:BASE64)`},
		{"key without its type", "alice " + b64 + "\n", `ops:1: operator "alice": want the key as ed25519:BASE64`},
		{"key not base64", "alice ed25519:not*base64\n", `ops:1: operator "alice": key is not base64`},
		{"key of the wrong size", "alice ed25519:" + short + "\n", `ops:1: operator "alice": key is 31 bytes, want 32`},
		{"duplicate name", alice.PublicLine() + "\n# bob\n" + bob.PublicLine() + "\nalice " + strings.TrimPrefix(bob.PublicLine(), "bob ") + "\n", `ops:4: operator "alice" listed twice (first on line 1)`},
		{"one key under two names", alice.PublicLine() + "\nalice2 " + aliceKey + "\n", `ops:2: operator "alice2" has the same key as line 1`},
		{"only comments", "# nobody\n\n", `ops: no operators listed`},
		{"empty", "", `ops: no operators listed`},
		{"line too long", alice.PublicLine() + "\n# " + strings.Repeat("x", 70_000) + "\n", `ops:2: line too long`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseOperators(strings.NewReader(tc.text), "ops")
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got  %v\nwant %s", err, tc.want)
			}
		})
	}
}

func TestLoadOperators(t *testing.T) {
	alice := testKey(t, "alice", 1)
	write := func(t *testing.T, text string, mode os.FileMode) string {
		path := filepath.Join(t.TempDir(), "operators")
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		return path
	}
	t.Run("readable by all is fine", func(t *testing.T) {
		ops, err := LoadOperators(write(t, alice.PublicLine()+"\n", 0o644))
		if err != nil || !slices.Equal(ops.Names(), []string{"alice"}) {
			t.Fatalf("got %v, %v", ops, err)
		}
	})
	t.Run("errors name the file and line", func(t *testing.T) {
		path := write(t, alice.PublicLine()+"\nbob\n", 0o644)
		_, err := LoadOperators(path)
		if err == nil || !strings.HasPrefix(err.Error(), path+":2: ") {
			t.Fatalf("got %v, want an error starting %q", err, path+":2: ")
		}
	})
	t.Run("writable by others is refused", func(t *testing.T) {
		if runtime.GOOS == "windows" {
			t.Skip("no unix modes")
		}
		path := write(t, alice.PublicLine()+"\n", 0o666)
		_, err := LoadOperators(path)
		want := path + ": mode 0666 lets group or others change who may operate this node; run: chmod go-w " + path
		if err == nil || err.Error() != want {
			t.Fatalf("got  %v\nwant %s", err, want)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		if _, err := LoadOperators(filepath.Join(t.TempDir(), "nope")); !os.IsNotExist(unwrapAll(err)) {
			t.Fatalf("got %v, want not-exist", err)
		}
	})
}
