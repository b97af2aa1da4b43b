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

// Dir is where sockets live by default: $XDG_RUNTIME_DIR/meshell, or
// meshell-UID in the temporary directory.
func Dir() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "meshell")
	}
	return filepath.Join(os.TempDir(), "meshell-"+strconv.Itoa(os.Getuid()))
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
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("control socket: directory %s has mode %04o, open to other users: chmod 700 it, or pick another --socket", dir, perm)
	}
	if uid, ok := owner(fi); ok && uid != os.Getuid() {
		return fmt.Errorf("control socket: directory %s belongs to uid %d, not to this user (uid %d): pick another --socket", dir, uid, os.Getuid())
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
