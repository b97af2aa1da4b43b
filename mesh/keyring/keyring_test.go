package keyring

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
)

func newRing(t testing.TB, keys ...Key) *Keyring {
	t.Helper()
	r, err := New(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func ids(keys ...Key) []string {
	var s []string
	for _, k := range keys {
		s = append(s, k.ID())
	}
	return s
}

func TestKeyringChanges(t *testing.T) {
	k1, k2, k3 := newKey(t), newKey(t), newKey(t)
	r := newRing(t, k1, k1) // a duplicate is dropped
	if got := r.Keys(); !slices.Equal(got, []Key{k1}) {
		t.Fatalf("Keys = %v", got)
	}
	if err := r.Install(k2); err != nil {
		t.Fatal(err)
	}
	if err := r.Install(k2); err != nil { // again: nothing changes
		t.Fatal(err)
	}
	if r.Primary() != k1 || !slices.Equal(r.IDs(), ids(k1, k2)) {
		t.Fatalf("after Install: primary %v, ids %v", r.Primary(), r.IDs())
	}
	if err := r.Use(k3); !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("Use of a key not installed: %v", err)
	}
	if err := r.Install(k3); err != nil {
		t.Fatal(err)
	}
	if err := r.Use(k2); err != nil {
		t.Fatal(err)
	}
	if got := r.Keys(); !slices.Equal(got, []Key{k2, k1, k3}) {
		t.Fatalf("after Use(k2): %v", got)
	}
	if err := r.Remove(k2); !errors.Is(err, ErrPrimaryKey) || !strings.Contains(err.Error(), k2.ID()) {
		t.Fatalf("Remove(primary): %v", err)
	}
	if err := r.Remove(k1); err != nil {
		t.Fatal(err)
	}
	if err := r.Remove(k1); !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("Remove twice: %v", err)
	}
	if err := r.Remove(k3); err != nil {
		t.Fatal(err)
	}
	if err := r.Remove(k2); !errors.Is(err, ErrLastKey) {
		t.Fatalf("Remove(last): %v", err)
	}
	if got := r.Keys(); !slices.Equal(got, []Key{k2}) {
		t.Fatalf("at the end: %v", got)
	}
	if k, ok := r.Lookup(k2.ID()); !ok || k != k2 {
		t.Fatal("Lookup of the primary failed")
	}
	if _, ok := r.Lookup(k1.ID()); ok {
		t.Fatal("Lookup found a removed key")
	}
	// Keys returns a copy.
	r.Keys()[0] = k3
	if r.Primary() != k2 {
		t.Fatal("Keys shares the keyring's slice")
	}
	assertNoKeyBytes(t, "String", r.String(), k1, k2, k3)
	if _, err := New(); !errors.Is(err, ErrNoKeys) {
		t.Fatalf("New(): %v", err)
	}
	if _, err := New(Key{}); err == nil {
		t.Fatal("New accepted the zero key")
	}
}

func writeFile(t *testing.T, name, text string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	return p
}

func TestLoad(t *testing.T) {
	k1, k2 := newKey(t), newKey(t)
	p := writeFile(t, "keys", "# cluster keys\n\n  "+k1.Encode()+"  # primary\n\t"+k2.Encode()+"\n\n", 0o600)
	r, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Keys(); !slices.Equal(got, []Key{k1, k2}) {
		t.Fatalf("Load: %v", got)
	}
}

func TestLoadRefusesOpenModes(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no mode bits")
	}
	k := newKey(t)
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		p := writeFile(t, "keys", k.Encode()+"\n", mode)
		_, err := Load(p)
		if err == nil || !strings.Contains(err.Error(), "chmod 600 "+p) {
			t.Fatalf("mode %04o: %v, want an error saying chmod 600 %s", mode, err, p)
		}
		assertNoKeyBytes(t, "Load error", err.Error(), k)
	}
}

func TestLoadRefusesBadFiles(t *testing.T) {
	k := newKey(t)
	tests := []struct{ name, text, want string }{
		{"empty", "", "holds no key"},
		{"only comments", "# nothing\n\n   # here\n", "holds no key"},
		{"bad line", k.Encode() + "\n\n" + k.Encode()[:21] + "\n", "line 3: key is not standard base64"},
		{"short line", k.Encode()[:20] + "\n", "line 1: key is 15 bytes, want 32"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(writeFile(t, "keys", tc.text, 0o600))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load: %v, want %q", err, tc.want)
			}
			assertNoKeyBytes(t, "Load error", err.Error(), k)
		})
	}
	if _, err := Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("Load(directory): %v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load(missing): %v", err)
	}
}

// --key-file given the key instead of its file's path: the error says so
// and does not print the key.
func TestLoadOfAKeyInsteadOfAPathDoesNotEchoIt(t *testing.T) {
	k := newKey(t)
	_, err := Load(k.Encode())
	if err == nil || !strings.Contains(err.Error(), "is a key, not a file") {
		t.Fatalf("Load(key text): %v", err)
	}
	assertNoKeyBytes(t, "Load error", err.Error(), k)
}

func TestFromEnv(t *testing.T) {
	k1, k2, k3 := newKey(t), newKey(t), newKey(t)
	r, err := FromEnv(" " + k1.Encode() + "," + k2.Encode() + " \n\t" + k3.Encode() + ",")
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Keys(); !slices.Equal(got, []Key{k1, k2, k3}) {
		t.Fatalf("FromEnv: %v", got)
	}
	for _, v := range []string{"", " , \n"} {
		if _, err := FromEnv(v); err == nil || !strings.Contains(err.Error(), "MESHELL_KEY holds no key") {
			t.Fatalf("FromEnv(%q): %v", v, err)
		}
	}
	bad := k1.Encode() + "," + k2.Encode()[:30]
	_, err = FromEnv(bad)
	if err == nil || !strings.Contains(err.Error(), "key 2") {
		t.Fatalf("FromEnv(bad second key): %v", err)
	}
	assertNoKeyBytes(t, "FromEnv error", err.Error(), k1, k2)
}

func TestSaveRoundTrip(t *testing.T) {
	k1, k2 := newKey(t), newKey(t)
	r := newRing(t, k2, k1)
	dir := t.TempDir()
	p := filepath.Join(dir, "cluster.key")
	// An existing file, too open, is replaced by a private one.
	if err := os.WriteFile(p, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.Save(p); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Fatalf("saved with mode %04o", fi.Mode().Perm())
	}
	back, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := back.Keys(); !slices.Equal(got, []Key{k2, k1}) {
		t.Fatalf("Load(Save) = %v", got)
	}
	data, _ := os.ReadFile(p)
	if !strings.Contains(string(data), k2.ID()+" primary") {
		t.Fatalf("saved file does not mark the primary:\n%s", data)
	}
	assertNoTemp(t, dir, "cluster.key")
}

func assertNoTemp(t *testing.T, dir string, want ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, want) {
		t.Fatalf("directory holds %v, want %v", names, want)
	}
}

func TestSaveFailureLeavesNothing(t *testing.T) {
	r := newRing(t, newKey(t))
	dir := t.TempDir()
	// The rename fails: the target is a non-empty directory.
	target := filepath.Join(dir, "keys")
	if err := os.MkdirAll(filepath.Join(target, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	err := r.Save(target)
	if err == nil {
		t.Fatal("Save over a directory succeeded")
	}
	assertNoKeyBytes(t, "Save error", err.Error(), r.Keys()...)
	assertNoTemp(t, dir, "keys")
	if _, err := os.Stat(filepath.Join(target, "x")); err != nil {
		t.Fatal("the target was touched:", err)
	}
	if err := r.Save(filepath.Join(dir, "missing", "keys")); err == nil {
		t.Fatal("Save into a missing directory succeeded")
	}
}

// TestSaveAtomic has readers load the file while it is rewritten with one of
// two keyrings: each read must see one of them whole.
func TestSaveAtomic(t *testing.T) {
	a := newRing(t, newKey(t), newKey(t))
	b := newRing(t, newKey(t))
	p := filepath.Join(t.TempDir(), "keys")
	if err := a.Save(p); err != nil {
		t.Fatal(err)
	}
	const rounds = 40
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	wg.Go(func() {
		for i := range rounds {
			r := a
			if i%2 == 0 {
				r = b
			}
			if err := r.Save(p); err != nil {
				errc <- err
				return
			}
		}
	})
	for range rounds {
		r, err := Load(p)
		if err != nil {
			t.Fatal("a reader saw a partial file:", err)
		}
		if got := fmt.Sprint(r.IDs()); got != fmt.Sprint(a.IDs()) && got != fmt.Sprint(b.IDs()) {
			t.Fatalf("a reader saw %v", got)
		}
	}
	wg.Wait()
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
}
