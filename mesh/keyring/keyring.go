package keyring

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// EnvVar is the environment variable FromEnv is meant for.
const EnvVar = "MESHELL_KEY"

// maxFileSize bounds what Load reads: a key file is a few lines.
const maxFileSize = 1 << 20

// Errors of keyring changes, wrapped with the key id concerned.
var (
	ErrNoKeys       = errors.New("no cluster key")
	ErrNotInstalled = errors.New("key not installed")
	ErrPrimaryKey   = errors.New("the primary key cannot be removed")
	ErrLastKey      = errors.New("the only key cannot be removed")
)

// Keyring is an ordered set of cluster keys; the first is the primary, which
// signs this node's certificate. Every key is accepted from peers.
//
// It is safe for concurrent use: changes build a new immutable state and
// publish it atomically, and each handshake reads the state once. Create one
// with New, Load or FromEnv; the zero Keyring is not usable.
type Keyring struct {
	mu    sync.Mutex // serialises changes
	state atomic.Pointer[state]
	cfgs  sync.Map // configKey → *tls.Config, for Server and Client
}

// state is one version of a keyring. Only leaves changes after publication.
type state struct {
	keys []Key
	cas  []*authority // cas[i] is keys[i]'s; cas[0] signs our certificates
	ids  []string
	pool *x509.CertPool

	mu      sync.Mutex
	leafKey ed25519.PrivateKey          // this state's node key, made on first use
	leaves  map[string]*tls.Certificate // by alias
}

// New returns a keyring of keys, the first primary. Duplicates are dropped.
func New(keys ...Key) (*Keyring, error) {
	r := &Keyring{}
	s, err := newState(keys, nil)
	if err != nil {
		return nil, err
	}
	r.state.Store(s)
	return r, nil
}

// newState derives the state for keys, reusing the authorities of prev.
func newState(keys []Key, prev *state) (*state, error) {
	known := map[Key]*authority{}
	if prev != nil {
		for _, a := range prev.cas {
			known[a.key] = a
		}
	}
	s := &state{pool: x509.NewCertPool(), leaves: map[string]*tls.Certificate{}}
	seen := map[Key]bool{}
	for _, k := range keys {
		if k.IsZero() {
			return nil, errors.New("keyring: the zero key is not a cluster key")
		}
		if seen[k] {
			continue
		}
		seen[k] = true
		a := known[k]
		if a == nil {
			var err error
			if a, err = deriveAuthority(k); err != nil {
				return nil, err
			}
		}
		s.keys = append(s.keys, k)
		s.cas = append(s.cas, a)
		s.ids = append(s.ids, a.id)
		s.pool.AddCert(a.cert)
	}
	if len(s.keys) == 0 {
		return nil, fmt.Errorf("keyring: %w", ErrNoKeys)
	}
	return s, nil
}

// leaf returns this node's certificate for alias, signed by the primary
// key's CA: issued on first use, with a key made once per state, so that a
// keyring change also changes the node key.
func (s *state) leaf(alias string) (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.leaves[alias]; c != nil {
		return c, nil
	}
	if s.leafKey == nil {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("keyring: node key: %w", err)
		}
		s.leafKey = priv
	}
	c, err := s.cas[0].issue(alias, s.leafKey, time.Now())
	if err != nil {
		return nil, err
	}
	s.leaves[alias] = c
	return c, nil
}

func (s *state) index(k Key) int {
	for i, x := range s.keys {
		if x == k {
			return i
		}
	}
	return -1
}

// Load reads a key file: one base64 key per line, the first primary; blank
// lines and text after '#' are ignored. It refuses an empty file and one
// that group or others may access.
func Load(path string) (*Keyring, error) {
	f, err := os.Open(path)
	if err != nil {
		if _, kerr := parseKey(path); kerr == nil {
			// The key itself was given where its file's path belongs: an
			// error that named the path would print the key.
			return nil, errors.New("keyring: the path given is a key, not a file: write the key to a file (chmod 600) and pass its path")
		}
		return nil, fmt.Errorf("keyring: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat() // of the file opened, not of whatever path names now
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("keyring: %s is not a regular file", path)
	}
	// Windows has no such mode bits; its ACLs are the user's business.
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("keyring: %s is accessible by group or others (mode %04o); run chmod 600 %s", path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	defer clear(data)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("keyring: %s is larger than %d bytes: not a key file", path, maxFileSize)
	}
	var keys []Key
	for i, line := range strings.Split(string(data), "\n") {
		line, _, _ = strings.Cut(line, "#") // '#' is not in the base64 alphabet
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		k, err := parseKey(line)
		if err != nil {
			return nil, fmt.Errorf("keyring: %s line %d: %w", path, i+1, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("keyring: %s holds no key", path)
	}
	return New(keys...)
}

// FromEnv parses the value of MESHELL_KEY: one or more keys separated by
// commas or white space, the first primary.
func FromEnv(value string) (*Keyring, error) {
	fields := strings.FieldsFunc(value, func(c rune) bool {
		return c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r'
	})
	if len(fields) == 0 {
		return nil, fmt.Errorf("keyring: %s holds no key", EnvVar)
	}
	keys := make([]Key, 0, len(fields))
	for i, f := range fields {
		k, err := parseKey(f)
		if err != nil {
			return nil, fmt.Errorf("keyring: %s key %d: %w", EnvVar, i+1, err)
		}
		keys = append(keys, k)
	}
	return New(keys...)
}

// Save writes the keyring to path atomically: a temporary file in the same
// directory, mode 0600, synced, renamed over path, and the directory synced.
// A reader sees the old file or the new one, never a part.
func (r *Keyring) Save(path string) error {
	s := r.state.Load()
	var b bytes.Buffer
	b.WriteString("# meshell cluster keys, one per line; the first is the primary.\n")
	b.WriteString("# Anyone with this file is a cluster member: keep it mode 0600.\n")
	for i, k := range s.keys {
		note := ""
		if i == 0 {
			note = " primary"
		}
		fmt.Fprintf(&b, "%s # %s%s\n", k.Encode(), s.ids[i], note)
	}
	defer clear(b.Bytes())
	return writeFileAtomic(path, b.Bytes())
}

func writeFileAtomic(path string, data []byte) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*") // mode 0600
	if err != nil {
		return fmt.Errorf("keyring: save: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
			err = fmt.Errorf("keyring: save %s: %w", path, err)
		}
	}()
	if err = f.Chmod(0o600); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	// The rename is durable once the directory is.
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err = d.Sync(); err != nil && runtime.GOOS != "windows" {
		return err
	}
	return nil
}

// update applies fn to a copy of the keys and publishes the result.
func (r *Keyring) update(fn func(s *state) ([]Key, error)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.state.Load()
	keys, err := fn(s)
	if err != nil || keys == nil {
		return err
	}
	ns, err := newState(keys, s)
	if err != nil {
		return err
	}
	r.state.Store(ns)
	return nil
}

// Install adds k as a secondary key: peers whose certificates it signed are
// accepted from now on. Installing a key already there does nothing.
func (r *Keyring) Install(k Key) error {
	return r.update(func(s *state) ([]Key, error) {
		if s.index(k) >= 0 {
			return nil, nil
		}
		return append(append([]Key(nil), s.keys...), k), nil
	})
}

// Use makes the installed key k the primary: new handshakes present a
// certificate signed by it. Install k on every node before using it.
func (r *Keyring) Use(k Key) error {
	return r.update(func(s *state) ([]Key, error) {
		i := s.index(k)
		switch {
		case i < 0:
			return nil, fmt.Errorf("keyring: key %s: %w; install it first", k.ID(), ErrNotInstalled)
		case i == 0:
			return nil, nil
		}
		keys := append([]Key{k}, s.keys[:i]...)
		return append(keys, s.keys[i+1:]...), nil
	})
}

// Remove uninstalls k: peers signed by it are refused from now on. It refuses
// the primary key and the only key.
func (r *Keyring) Remove(k Key) error {
	return r.update(func(s *state) ([]Key, error) {
		i := s.index(k)
		switch {
		case i < 0:
			return nil, fmt.Errorf("keyring: key %s: %w", k.ID(), ErrNotInstalled)
		case len(s.keys) == 1:
			return nil, fmt.Errorf("keyring: key %s: %w", k.ID(), ErrLastKey)
		case i == 0:
			return nil, fmt.Errorf("keyring: key %s: %w; make another key primary first", k.ID(), ErrPrimaryKey)
		}
		return append(append([]Key(nil), s.keys[:i]...), s.keys[i+1:]...), nil
	})
}

// Keys returns the installed keys, primary first.
func (r *Keyring) Keys() []Key { return append([]Key(nil), r.state.Load().keys...) }

// Primary returns the key that signs this node's certificates.
func (r *Keyring) Primary() Key { return r.state.Load().keys[0] }

// IDs returns the ids of the installed keys, primary first.
func (r *Keyring) IDs() []string { return append([]string(nil), r.state.Load().ids...) }

// Lookup returns the installed key with id, for commands that name keys by
// their id.
func (r *Keyring) Lookup(id string) (Key, bool) {
	s := r.state.Load()
	for i, x := range s.ids {
		if x == id {
			return s.keys[i], true
		}
	}
	return Key{}, false
}

// String lists the key ids, primary first.
func (r *Keyring) String() string {
	return "keyring [" + strings.Join(r.state.Load().ids, " ") + "]"
}
