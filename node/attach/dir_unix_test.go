//go:build unix

package attach

import (
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	logtest "github.com/sirupsen/logrus/hooks/test"
)

// defaultPlaces points the default directory's rule at fresh directories:
// no $XDG_RUNTIME_DIR, $TMPDIR and $HOME of this test. It returns the
// directory of the temporary directory's rule, not made, and the one in
// the cache directory.
func defaultPlaces(t *testing.T) (tmpDir, cacheDir string) {
	t.Helper()
	root := t.TempDir()
	tmp, home := filepath.Join(root, "tmp"), filepath.Join(root, "home")
	for _, d := range []string{tmp, home} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("XDG_RUNTIME_DIR", "")
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("TMPDIR", tmp)
	t.Setenv("HOME", home)
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(tmp, "meshell-"+strconv.Itoa(os.Getuid())), filepath.Join(cache, "meshell")
}

// serveDefault serves node n1 on its default socket, as a node does, and
// returns what it logged.
func serveDefault(t *testing.T) (path string, log *logtest.Hook) {
	t.Helper()
	logger, hook := logtest.NewNullLogger()
	logger.SetOutput(io.Discard)
	path = Path("n1")
	srv, err := Serve(path, Config{Log: logger,
		NewShell: func(h Hello, stdout, stderr io.Writer) Shell {
			return &fakeShell{stdout: stdout, stderr: stderr, prompt: "n1> "}
		}},
		Host{Alias: func() string { return "n1" }, Shutdown: make(chan struct{}),
			Changes: func(stop <-chan struct{}) <-chan struct{} { return make(chan struct{}) }})
	if err != nil {
		t.Fatalf("a node on its default socket: %v", err)
	}
	t.Cleanup(srv.Close)
	return path, hook
}

// wantFound fails t unless a client, by the default directory, finds n1
// running at path and can attach to it by alias.
func wantFound(t *testing.T, path string) {
	t.Helper()
	found, err := List(Dir())
	if err != nil || len(found) != 1 || found[0].Name != "n1" || found[0].Path != path || !found[0].Live {
		t.Errorf("meshell attach lists %s: %+v, %v; want n1 running at %s", Dir(), found, err, path)
	}
	c, err := Dial(Path("n1"), Hello{}, &sink{})
	if err != nil {
		t.Fatalf("meshell attach n1: %v", err)
	}
	c.Close()
}

// A directory of the default name in a shared /tmp that this user cannot
// trust — another's, or open to others — is passed over, with a warning
// naming it, for ~/.cache/meshell: the node still gets its socket, and
// meshell attach finds it there (it was refused, and the node ran without
// one). An empty /tmp gets meshell-UID as before.
func TestTheDefaultDirectoryFallsBackWhenTaken(t *testing.T) {
	t.Run("free", func(t *testing.T) {
		tmpDir, _ := defaultPlaces(t)
		path, log := serveDefault(t)
		if filepath.Dir(path) != tmpDir {
			t.Errorf("socket at %s, want it in %s", path, tmpDir)
		}
		if fi, err := os.Stat(tmpDir); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v %v, want mode 0700", tmpDir, fi, err)
		}
		for _, e := range log.AllEntries() {
			t.Errorf("logged: %s", e.Message)
		}
		wantFound(t, path)
	})

	taken := map[string]func(t *testing.T, dir string){
		"open to others": func(t *testing.T, dir string) {
			if err := os.Mkdir(dir, 0o777); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, 0o777); err != nil { // whatever the umask
				t.Fatal(err)
			}
		},
		"another user's": func(t *testing.T, dir string) {
			if os.Getuid() != 0 {
				t.Skip("making a directory another user's needs root (chown to uid 65534); run the tests as root to cover it")
			}
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(dir, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		},
		"a symbolic link": func(t *testing.T, dir string) {
			other := filepath.Join(t.TempDir(), "elsewhere")
			if err := os.Mkdir(other, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(other, dir); err != nil {
				t.Fatal(err)
			}
		},
		"a file": func(t *testing.T, dir string) {
			if err := os.WriteFile(dir, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, take := range taken {
		t.Run(name, func(t *testing.T) {
			tmpDir, cacheDir := defaultPlaces(t)
			take(t, tmpDir)
			path, log := serveDefault(t)
			if filepath.Dir(path) != cacheDir {
				t.Errorf("socket at %s, want it in %s", path, cacheDir)
			}
			wantFound(t, path)
			entries := log.AllEntries()
			if len(entries) != 1 || !strings.Contains(entries[0].Message, strconv.Quote(tmpDir)) ||
				!strings.Contains(entries[0].Message, strconv.Quote(cacheDir)) {
				var got []string
				for _, e := range entries {
					got = append(got, e.Message)
				}
				t.Errorf("want one warning naming %q and %q, got %q", tmpDir, cacheDir, got)
			}
			if ents, err := os.ReadDir(tmpDir); err == nil && len(ents) != 0 {
				t.Errorf("something was put in the taken directory: %v", ents)
			}
		})
	}
}
