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
// operation, its ordered arguments, the target alias, the target's boot id,
// the issuer, a 16-byte random nonce and an expiry. Every field is length-prefixed and the whole is
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
// restart forgets it, so each Verifier has a random boot id (Verifier.Boot),
// made with its cache, that the node gossips and every request is signed for:
// a request captured before the restart names the earlier boot id and is
// refused (ErrEarlierRun), whatever is left of its life. A request signed
// without a boot id (ErrNoBoot, by an older release) is refused too.
//
// The boot id binds a request to a run rather than a time: refusing requests
// issued before the node started would need the operator's clock and the
// node's to agree to within the restart's duration, when a fast restart takes
// under a second and the expiry check already allows MaxTTL-DefaultTTL of
// skew. A boot id needs no clock and no state on disk. Its cost: a request
// signed from the signer's view of the cluster before it heard of the restart
// is refused too, and is resent once the new boot id reached it (gossip,
// within a probe round or two).
//
// # Dependencies
//
// The package uses only the standard library and must not import other
// meshell packages, so the command-line tools and the node can both use it
// without cycles and it can be reviewed on its own.
package operator
