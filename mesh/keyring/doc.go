// Package keyring authenticates and encrypts meshell's mesh connections with
// TLS 1.3, keyed by a shared cluster key (the serf/memberlist model, built
// from crypto/tls rather than a record format of our own).
//
// A cluster key is 32 random bytes, stored as standard base64. Every holder
// of a key derives from it, deterministically, the same ed25519 certificate
// authority (HKDF-SHA256 with a fixed label, fixed serial and validity).
// Each node signs a fresh leaf certificate for its alias with the CA of its
// primary key and sends the CA certificate along, so a node of another
// cluster can still say which key signed it. A peer is accepted when its
// leaf chains to the CA of any installed key: installing a key, making it
// primary everywhere and then removing the old one rotates a cluster's key
// without a partition. Connections already established are not affected by
// a rotation; new handshakes read the keyring as it is at that moment.
//
// Both ends authenticate (mutual TLS); there are no host names, nodes are
// named by the alias in their certificate. Session resumption is disabled,
// so every handshake is checked against the current keyring.
//
// Failures are reported as *KeyMismatchError and *PlaintextError, whose
// messages fit on one line, name the key ids that differ and say what to do;
// Describe turns any handshake error into such a line. No error, String or
// format verb ever shows key bytes: a Key prints as its id.
//
// The package uses the standard library only and must not import other
// meshell packages: mesh imports it, not the other way round.
package keyring
