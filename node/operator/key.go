package operator

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"strings"
)

// Key file format, version 1:
//
//	meshell-operator-key v1 NAME
//	BASE64-ED25519-SEED
const (
	keyMagic   = "meshell-operator-key"
	keyVersion = "v1"

	// keyType prefixes a public key in an operators file.
	keyType = "ed25519:"

	// maxKeyFile bounds what LoadPrivateKey reads; a real key file is ~100 bytes.
	maxKeyFile = 4 << 10
)

// MaxNameLen is the longest operator name.
const MaxNameLen = 64

// ValidName reports whether name is a valid operator name:
// 1 to 64 of A-Z a-z 0-9 . _ -
func ValidName(name string) error {
	ok := len(name) >= 1 && len(name) <= MaxNameLen
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
	}
	if !ok {
		return fmt.Errorf("bad operator name %q: want 1-%d of A-Z a-z 0-9 . _ -", name, MaxNameLen)
	}
	return nil
}

// PrivateKey is an operator's name and ed25519 signing key. Printing it in
// any form shows the name only, never key bytes.
type PrivateKey struct {
	name string
	key  *secret
}

// secret holds the key bytes behind a pointer: fmt prints a nested pointer
// as an address, so even a PrivateKey in an unexported field of a printed
// struct (where its Format method cannot run) shows no key bytes.
type secret struct {
	ed25519.PrivateKey
}

// Generate makes a new key for the operator name.
func Generate(name string) (*PrivateKey, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate operator key: %w", err)
	}
	return &PrivateKey{name: name, key: &secret{priv}}, nil
}

// Name is the operator's name, the issuer of what the key signs.
func (k *PrivateKey) Name() string { return k.name }

// Public is the key's public half.
func (k *PrivateKey) Public() ed25519.PublicKey {
	return k.key.Public().(ed25519.PublicKey)
}

// PublicLine is the line a node owner adds to an operators file to let this
// operator control the node: "NAME ed25519:BASE64".
func (k *PrivateKey) PublicLine() string {
	return k.name + " " + keyType + base64.StdEncoding.EncodeToString(k.Public())
}

// String names the key without showing it.
func (k PrivateKey) String() string {
	return "operator key " + k.name + " (private key not shown)"
}

// Format makes every fmt verb (%v, %+v, %#v, %x, %d, …) print String, so no
// verb can reach the key bytes through reflection.
func (k PrivateKey) Format(f fmt.State, _ rune) {
	io.WriteString(f, k.String())
}

// WriteFile writes the key to a new file at path with mode 0600. It refuses
// to overwrite an existing file: losing an operator key is not undoable.
func (k *PrivateKey) WriteFile(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s already exists; refusing to overwrite an operator key", path)
	}
	if err != nil {
		return fmt.Errorf("write operator key: %w", err)
	}
	_, err = f.Write(k.marshal())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path) // a half-written key file would only mislead
		return fmt.Errorf("write operator key %s: %w", path, err)
	}
	return nil
}

func (k *PrivateKey) marshal() []byte {
	seed := base64.StdEncoding.EncodeToString(k.key.Seed())
	return []byte(keyMagic + " " + keyVersion + " " + k.name + "\n" + seed + "\n")
}

// LoadPrivateKey reads a key file written by WriteFile. Like ssh, it refuses
// a file that group or others may read or write.
func LoadPrivateKey(path string) (*PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load operator key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("load operator key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("%s: mode %04o lets group or others at the operator key; run: chmod 600 %s", path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("load operator key: %w", err)
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("%s: too large for an operator key file", path)
	}
	return parsePrivateKey(data, path)
}

// parsePrivateKey parses the key file format. Its errors never quote the
// seed line.
func parsePrivateKey(data []byte, path string) (*PrivateKey, error) {
	var lines []string
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 || !strings.HasPrefix(lines[0], keyMagic+" ") {
		return nil, fmt.Errorf("%s: not a meshell operator key (want a first line %q)", path, keyMagic+" "+keyVersion+" NAME")
	}
	header := strings.Fields(lines[0])
	if header[1] != keyVersion {
		return nil, fmt.Errorf("%s: unsupported operator key version %q (want %s)", path, header[1], keyVersion)
	}
	if len(header) != 3 {
		return nil, fmt.Errorf("%s:1: want %q", path, keyMagic+" "+keyVersion+" NAME")
	}
	if err := ValidName(header[2]); err != nil {
		return nil, fmt.Errorf("%s:1: %w", path, err)
	}
	if len(lines) != 2 {
		return nil, fmt.Errorf("%s: want 2 lines (header and seed), got %d", path, len(lines))
	}
	seed, err := base64.StdEncoding.DecodeString(lines[1])
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%s:2: want a base64 ed25519 seed of %d bytes", path, ed25519.SeedSize)
	}
	return &PrivateKey{name: header[2], key: &secret{ed25519.NewKeyFromSeed(seed)}}, nil
}
