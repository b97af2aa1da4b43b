package attach

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Ext ends every socket's name: ALIAS.sock.
const Ext = ".sock"

// Dir is where sockets live by default, found by the same rule by a node
// and by meshell attach: $XDG_RUNTIME_DIR/meshell; else meshell-UID in the
// temporary directory, created (mode 0700) if it is not there; but if that
// name is taken by a directory this user may not trust (another user's,
// one open to others, a symbolic link: anyone may create it first in a
// shared /tmp), the directory meshell in this user's cache directory
// (~/.cache/meshell), which no other user can have made. Like tmux, a
// taken directory is never used; unlike tmux, a node then still gets a
// socket, and meshell attach looks for it in the same place.
func Dir() string {
	d, _ := defaultDir()
	return d
}

// defaultDir is Dir, and why the directory in the temporary directory was
// passed over, if it was ("" if not).
func defaultDir() (dir, refused string) {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "meshell"), ""
	}
	tmp := filepath.Join(os.TempDir(), "meshell-"+strconv.Itoa(os.Getuid()))
	// Made here, not at Listen: once this user's it stays so (/tmp is
	// sticky), and a node and a client cannot be told apart by a
	// directory made by someone else between their looks.
	err := os.MkdirAll(tmp, 0o700)
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = fmt.Errorf("%q cannot be made a directory: %w", tmp, pe.Err)
	} else if err == nil {
		var fi os.FileInfo
		if fi, err = os.Lstat(tmp); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			err = fmt.Errorf("%q is a symbolic link, not a directory", tmp)
		} else if err == nil {
			err = private(tmp, fi)
		}
	}
	if err == nil {
		return tmp, ""
	}
	cache, cerr := os.UserCacheDir()
	if cerr != nil || !filepath.IsAbs(cache) {
		return tmp, "" // nowhere else: Listen says what is wrong with it
	}
	return filepath.Join(cache, "meshell"), err.Error()
}

// Why a socket's directory is refused.
var (
	errOpenDir    = errors.New("open to other users")
	errForeignDir = errors.New("not to this user")
)

// private refuses a directory (fi, at dir) that is not this user's own and
// closed to others: the one rule for a socket's directory, the default one
// or a --socket's.
func private(dir string, fi os.FileInfo) error {
	if !fi.IsDir() {
		return fmt.Errorf("%q is not a directory", dir)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("directory %q has mode %04o, %w", dir, perm, errOpenDir)
	}
	if uid, ok := owner(fi); ok && uid != os.Getuid() {
		return fmt.Errorf("directory %q belongs to uid %d, %w (uid %d)", dir, uid, errForeignDir, os.Getuid())
	}
	return nil
}

// DirWarning says why Dir is not the usual directory in the temporary
// directory, when it is not and path is in Dir: a node logs it, so that
// whoever made that directory can be looked for. "" when there is nothing
// to say.
func DirWarning(path string) string {
	d, refused := defaultDir()
	if refused == "" || filepath.Dir(path) != d {
		return ""
	}
	return fmt.Sprintf("control socket: %s, so it is not used: the socket is in %q instead", refused, d)
}

// Path is the default socket of alias.
func Path(alias string) string { return filepath.Join(Dir(), alias+Ext) }

// ErrInUse is wrapped by Listen's error when a live node holds the socket.
var ErrInUse = errors.New("in use by a running node")

// Listen listens on the socket at path, mode 0600 in a directory of mode
// 0700 that it creates if needed and that must belong to this user and be
// closed to others. A socket left by a node that was killed is replaced;
// one that a live node answers on is not (ErrInUse). Closing the listener
// removes the socket.
func Listen(path string) (*net.UnixListener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := privateDir(dir); err != nil {
		return nil, err
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return ln, nil
}

// privateDir refuses a directory that another user owns or may enter.
func privateDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if err := private(dir, fi); err != nil {
		fix := "pick another --socket"
		if errors.Is(err, errOpenDir) {
			fix = "chmod 700 it, or " + fix
		}
		return fmt.Errorf("control socket: %w: %s", err, fix)
	}
	return nil
}

// removeStale removes a socket at path that nothing answers on.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("control socket: %s exists and is not a socket: remove it, or pick another --socket", path)
	}
	if Live(path) {
		return fmt.Errorf("control socket %s: %w (attach to it with meshell attach %s, or pick another --socket)", path, ErrInUse, path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("control socket: stale %s: %w", path, err)
	}
	return nil
}

// Live reports whether a node answers on the socket at path.
func Live(path string) bool {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// Found is a socket in Dir.
type Found struct {
	Name, Path string
	Live       bool
}

// List returns the sockets in dir, sorted by name.
func List(dir string) ([]Found, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Found
	for _, e := range entries {
		if e.Type()&os.ModeSocket == 0 || !strings.HasSuffix(e.Name(), Ext) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		out = append(out, Found{Name: strings.TrimSuffix(e.Name(), Ext), Path: p, Live: Live(p)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
