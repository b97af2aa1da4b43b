package keyring

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
)

// KeySize is the length of a cluster key in bytes.
const KeySize = 32

// idLabel separates key ids from every other use of the key's hash.
const idLabel = "meshell cluster key id v1\x00"

// Key is a cluster key. It is comparable, so it can be used with == and as a
// map key. Formatting a Key with any verb prints its id, never its bytes;
// Encode is the one way to get its text.
type Key struct {
	b [KeySize]byte
}

// Generate returns a new random key.
func Generate() (Key, error) {
	var k Key
	if _, err := rand.Read(k.b[:]); err != nil {
		return Key{}, fmt.Errorf("keyring: generate key: %w", err)
	}
	return k, nil
}

// ParseKey parses a key in its text form (standard base64 of 32 bytes).
// Surrounding white space is ignored. Errors never contain the text.
func ParseKey(text string) (Key, error) {
	k, err := parseKey(text)
	if err != nil {
		return Key{}, fmt.Errorf("keyring: %w", err)
	}
	return k, nil
}

// parseKey is ParseKey with errors that do not name the package, for callers
// that add where the key came from.
func parseKey(text string) (Key, error) {
	text = strings.TrimSpace(text)
	if text == "" {
		return Key{}, errors.New("key text is empty")
	}
	// Decode into a buffer we own: the error from base64 is dropped (it is
	// harmless, but we promise nothing derived from the text).
	var buf [48]byte
	if base64.StdEncoding.DecodedLen(len(text)) > len(buf) {
		return Key{}, fmt.Errorf("key text is %d characters, want %d", len(text), base64.StdEncoding.EncodedLen(KeySize))
	}
	n, err := base64.StdEncoding.Decode(buf[:], []byte(text))
	defer clear(buf[:])
	if err != nil {
		return Key{}, errors.New("key is not standard base64 text")
	}
	if n != KeySize {
		return Key{}, fmt.Errorf("key is %d bytes, want %d", n, KeySize)
	}
	var k Key
	copy(k.b[:], buf[:n])
	if k.IsZero() {
		return Key{}, errors.New("key is all zero bytes; generate a random one")
	}
	return k, nil
}

// IsZero reports whether k is the zero Key, which no valid keyring holds.
func (k Key) IsZero() bool { return k == Key{} }

// Encode returns the key's text form, for a key file. It is the key itself:
// never log it.
func (k Key) Encode() string { return base64.StdEncoding.EncodeToString(k.b[:]) }

// ID returns a short id that is safe to print: the first 12 hex digits of
// SHA-256 over a label and the key.
func (k Key) ID() string {
	h := sha256.New()
	h.Write([]byte(idLabel))
	h.Write(k.b[:])
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:idLen/2])
}

// idLen is the length of a key id in hex digits.
const idLen = 12

// String returns "key <id>", never the key.
func (k Key) String() string {
	if k.IsZero() {
		return "key (none)"
	}
	return "key " + k.ID()
}

// GoString keeps %#v from printing the bytes.
func (k Key) GoString() string { return "keyring.Key(" + k.ID() + ")" }

// Format makes every verb (%v, %+v, %x, %d, ...) print String: without it,
// verbs that do not use Stringer would print the struct's bytes.
func (k Key) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		io.WriteString(f, k.GoString())
		return
	}
	io.WriteString(f, k.String())
}

// validID reports whether s has the form of a key id, so that text taken from
// a stranger's certificate is printed only when it is one.
func validID(s string) bool {
	if len(s) != idLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
