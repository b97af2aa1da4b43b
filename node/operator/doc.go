// Package operator lets a node's owner require that control requests are
// signed by a listed operator.
//
// An operator holds an ed25519 private key (Generate, WriteFile,
// LoadPrivateKey) and gives its public line (PublicLine) to node owners, who
// list it in an operators file (LoadOperators). The operator signs each
// request for one target node (Sign); the node checks it (Verifier.Verify)
// before acting.
//
// # What a signature binds
//
// The signature covers a canonical encoding (Signed.Message) of the
// operation, its ordered arguments, the target alias, the issuer, a 16-byte
// random nonce and an expiry. Every field is length-prefixed and the whole is
// prefixed by a domain-separation label and a version byte, so no two
// different requests encode alike and a signature made for something else
// never verifies as a request. Binding the target means a request captured on
// its way to n2 cannot be re-aimed at n3.
//
// # Time and replay
//
// A request lives until its expiry, which may be at most the verifier's MaxTTL
// (2 minutes by default) ahead of the verifier's clock: a request cannot be
// made to live forever, and a verifier whose clock lags the signer's by up to
// MaxTTL-ttl still accepts it. Within its life a request is accepted once:
// the Verifier remembers each accepted nonce until the request's expiry,
// after which the request is refused as expired anyway. The replay cache
// holds at most MaxNonces entries (100,000 by default). When full it refuses
// new requests (ErrReplayCacheFull) rather than forget nonces early, which
// would let a captured request be replayed; it recovers as entries expire.
// Only requests with a valid signature by a listed operator are remembered,
// so only an operator (or a stolen key) can fill it.
//
// The cache lives in memory: keep one Verifier for the life of the process
// (SetOperators reloads the operators file without losing it). A process
// restart forgets it, so a request captured before the restart can be
// replayed once more until it expires; short TTLs (DefaultTTL) bound that.
//
// # Dependencies
//
// The package uses only the standard library and must not import other
// meshell packages, so the command-line tools and the node can both use it
// without cycles and it can be reviewed on its own.
package operator
