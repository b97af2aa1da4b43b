package node

import "meshell/mesh/keyring"

// KeyID returns the id of a cluster key given as its text, or s itself when
// s is not a key (it may be an id already): the shell names keys by id.
func KeyID(s string) string {
	if k, err := keyring.ParseKey(s); err == nil {
		return k.ID()
	}
	return s
}
