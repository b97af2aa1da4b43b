package operator

import (
	"bufio"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
)

// Operators is the set of operators a node accepts signed requests from,
// each with one public key. It is immutable once loaded.
type Operators struct {
	keys map[string]ed25519.PublicKey
}

// LoadOperators reads an operators file: one "NAME ed25519:BASE64" per line
// (PublicLine's format); '#' starts a comment, blank lines are ignored. It
// refuses a file that group or others may write, since whoever can write it
// decides who controls the node, and a file that lists no operator.
func LoadOperators(path string) (*Operators, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load operators: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("load operators: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("%s: mode %04o lets group or others change who may operate this node; run: chmod go-w %s", path, perm, path)
	}
	return ParseOperators(f, path)
}

// ParseOperators parses operators-file text from r; source names it in
// errors ("source:LINE: …"). Duplicate names and a key listed under two names
// are refused: each accepted request must name exactly one operator.
func ParseOperators(r io.Reader, source string) (*Operators, error) {
	o := &Operators{keys: map[string]ed25519.PublicKey{}}
	nameLine := map[string]int{}
	keyLine := map[string]int{}
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		name, pub, err := parseOperatorLine(fields)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", source, n, err)
		}
		if first, dup := nameLine[name]; dup {
			return nil, fmt.Errorf("%s:%d: operator %q listed twice (first on line %d)", source, n, name, first)
		}
		if first, dup := keyLine[string(pub)]; dup {
			return nil, fmt.Errorf("%s:%d: operator %q has the same key as line %d", source, n, name, first)
		}
		nameLine[name], keyLine[string(pub)] = n, n
		o.keys[name] = pub
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("%s:%d: line too long", source, n+1)
		}
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	if len(o.keys) == 0 {
		return nil, fmt.Errorf("%s: no operators listed", source)
	}
	return o, nil
}

func parseOperatorLine(fields []string) (string, ed25519.PublicKey, error) {
	if len(fields) != 2 {
		return "", nil, fmt.Errorf("want \"NAME %sBASE64\", got %d fields", keyType, len(fields))
	}
	name, key := fields[0], fields[1]
	if err := ValidName(name); err != nil {
		return "", nil, err
	}
	b64, ok := strings.CutPrefix(key, keyType)
	if !ok {
		if typ, _, found := strings.Cut(key, ":"); found {
			return "", nil, fmt.Errorf("operator %q: unsupported key type %q (want %sBASE64)", name, typ, keyType)
		}
		return "", nil, fmt.Errorf("operator %q: want the key as %sBASE64", name, keyType)
	}
	pub, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "", nil, fmt.Errorf("operator %q: key is not base64", name)
	}
	if len(pub) != ed25519.PublicKeySize {
		return "", nil, fmt.Errorf("operator %q: key is %d bytes, want %d", name, len(pub), ed25519.PublicKeySize)
	}
	return name, ed25519.PublicKey(pub), nil
}

// Names lists the operators, sorted.
func (o *Operators) Names() []string {
	names := make([]string, 0, len(o.keys))
	for name := range o.keys {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Len is the number of operators.
func (o *Operators) Len() int { return len(o.keys) }

func (o *Operators) lookup(name string) (ed25519.PublicKey, bool) {
	pub, ok := o.keys[name]
	return pub, ok
}
