package operator

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestValidName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"alice", true},
		{"ops.team_2-b", true},
		{strings.Repeat("a", 64), true},
		{"", false},
		{strings.Repeat("a", 65), false},
		{"al ice", false},
		{"alice\n", false},
		{"a/b", false},
		{"é", false},
		{"a:b", false},
	} {
		t.Run(fmt.Sprintf("%q", tc.name), func(t *testing.T) {
			err := ValidName(tc.name)
			if (err == nil) != tc.ok {
				t.Fatalf("ValidName = %v, want ok=%v", err, tc.ok)
			}
			if _, gerr := Generate(tc.name); (gerr == nil) != tc.ok {
				t.Fatalf("Generate = %v, want ok=%v", gerr, tc.ok)
			}
		})
	}
}

func TestKeyFileRoundTrip(t *testing.T) {
	k, err := Generate("alice")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "alice.key")
	if err := k.WriteFile(path); err != nil {
		t.Fatal(err)
	}

	t.Run("written with mode 0600", func(t *testing.T) {
		if runtime.GOOS == "windows" {
			t.Skip("no unix modes")
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Fatalf("mode %04o, want 0600", perm)
		}
	})
	t.Run("starts with the header line", func(t *testing.T) {
		data, _ := os.ReadFile(path)
		if first, _, _ := strings.Cut(string(data), "\n"); first != "meshell-operator-key v1 alice" {
			t.Fatalf("first line %q", first)
		}
	})
	t.Run("loads back as the same key", func(t *testing.T) {
		got, err := LoadPrivateKey(path)
		if err != nil {
			t.Fatal(err)
		}
		if got.Name() != "alice" || got.PublicLine() != k.PublicLine() {
			t.Fatalf("loaded %s, want %s", got.PublicLine(), k.PublicLine())
		}
		v := testVerifier(t, testOperators(t, k), VerifierConfig{})
		if _, err := v.Verify(mustSign(t, got, "ping", nil, "n1", DefaultTTL, t0), "n1", t0); err != nil {
			t.Fatalf("loaded key's signature refused: %v", err)
		}
	})
	t.Run("public line is NAME ed25519:BASE64", func(t *testing.T) {
		name, key, _ := strings.Cut(k.PublicLine(), " ")
		pub, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(key, "ed25519:"))
		if name != "alice" || !strings.HasPrefix(key, "ed25519:") || err != nil || len(pub) != 32 {
			t.Fatalf("public line %q", k.PublicLine())
		}
	})
}

func TestWriteFileRefusesToOverwrite(t *testing.T) {
	for _, tc := range []struct {
		name     string
		existing string
	}{
		{"another key", "meshell-operator-key v1 bob\nAAAA\n"},
		{"an unrelated file", "precious\n"},
		{"an empty file", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "key")
			if err := os.WriteFile(path, []byte(tc.existing), 0o600); err != nil {
				t.Fatal(err)
			}
			err := testKey(t, "alice", 1).WriteFile(path)
			if err == nil || !strings.Contains(err.Error(), path+" already exists; refusing to overwrite") {
				t.Fatalf("WriteFile over an existing file: %v", err)
			}
			if data, _ := os.ReadFile(path); string(data) != tc.existing {
				t.Fatalf("existing file changed to %q", data)
			}
		})
	}
}

func TestLoadPrivateKeyRefusesLooseModes(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no unix modes")
	}
	for _, tc := range []struct {
		mode os.FileMode
		ok   bool
	}{
		{0o600, true},
		{0o400, true},
		{0o644, false},
		{0o640, false},
		{0o604, false},
		{0o620, false},
		{0o666, false},
	} {
		t.Run(fmt.Sprintf("%04o", tc.mode), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "key")
			if err := testKey(t, "alice", 1).WriteFile(path); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			_, err := LoadPrivateKey(path)
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			want := fmt.Sprintf("%s: mode %04o lets group or others at the operator key; run: chmod 600 %s", path, tc.mode, path)
			if err == nil || err.Error() != want {
				t.Fatalf("got %v\nwant %s", err, want)
			}
		})
	}
}

func TestLoadPrivateKeyBadFiles(t *testing.T) {
	seed := base64.StdEncoding.EncodeToString(make([]byte, 32))
	short := base64.StdEncoding.EncodeToString(make([]byte, 31))
	for _, tc := range []struct {
		name, content, want string
	}{
		{"empty file", "", "not a meshell operator key"},
		{"an ssh key", "-----BEGIN OPENSSH PRIVATE KEY-----\n" + seed + "\n", "not a meshell operator key"},
		{"a later version", "meshell-operator-key v2 alice\n" + seed + "\n", `unsupported operator key version "v2"`},
		{"no name", "meshell-operator-key v1\n" + seed + "\n", `:1: want "meshell-operator-key v1 NAME"`},
		{"bad name", "meshell-operator-key v1 al/ice\n" + seed + "\n", `:1: bad operator name "al/ice"`},
		{"no seed", "meshell-operator-key v1 alice\n", "want 2 lines (header and seed), got 1"},
		{"an extra line", "meshell-operator-key v1 alice\n" + seed + "\n" + seed + "\n", "want 2 lines (header and seed), got 3"},
		{"seed not base64", "meshell-operator-key v1 alice\n" + seed[:10] + "!!" + "\n", ":2: want a base64 ed25519 seed of 32 bytes"},
		{"seed too short", "meshell-operator-key v1 alice\n" + short + "\n", ":2: want a base64 ed25519 seed of 32 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "key")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadPrivateKey(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), seed[:8]) {
				t.Fatalf("error quotes the seed: %v", err)
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		if _, err := LoadPrivateKey(filepath.Join(t.TempDir(), "nope")); !os.IsNotExist(unwrapAll(err)) {
			t.Fatalf("got %v, want not-exist", err)
		}
	})
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func TestStringNeverPrintsTheKey(t *testing.T) {
	k := testKey(t, "alice", 7)
	seed, priv := k.key.Seed(), []byte(k.key.PrivateKey)
	secrets := []string{
		base64.StdEncoding.EncodeToString(seed),
		base64.StdEncoding.EncodeToString(priv),
		base64.RawStdEncoding.EncodeToString(seed),
		hex.EncodeToString(seed),
		strings.ToUpper(hex.EncodeToString(seed)),
		string(seed),
		fmt.Sprint(seed[:8])[1:12], // decimal bytes, as %d or %v of a []byte would show
	}
	outputs := map[string]string{"String": k.String()}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%o", "%T"} {
		outputs[verb+" of *PrivateKey"] = fmt.Sprintf(verb, k)
		outputs[verb+" of PrivateKey"] = fmt.Sprintf(verb, *k)
	}
	outputs["Sprintln"] = fmt.Sprintln(k, *k)
	outputs["in a struct"] = fmt.Sprintf("%+v %+v", struct{ K *PrivateKey }{k}, struct{ K PrivateKey }{*k})
	outputs["in an unexported field"] = fmt.Sprintf("%+v %#v", struct{ k PrivateKey }{*k}, struct{ k *PrivateKey }{k})
	j, _ := json.Marshal(k)
	outputs["json"] = string(j)
	for what, out := range outputs {
		t.Run(what, func(t *testing.T) {
			for _, s := range secrets {
				if strings.Contains(out, s) {
					t.Fatalf("%q shows key bytes %q", out, s)
				}
			}
		})
	}
	if !strings.Contains(k.String(), "alice") {
		t.Errorf("String %q does not name the operator", k.String())
	}
}
