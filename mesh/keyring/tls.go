package keyring

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// Refusal linger: after refusing a peer's certificate, how long and how much
// of what it already sent is read, so that it reads our alert (see linger).
const (
	lingerTimeout = 500 * time.Millisecond
	lingerMax     = 256 << 10
)

// ServerConfig returns a TLS configuration for accepting connections as
// alias. It reads the keyring at every handshake, so one configuration
// serves across rotations. Server wraps it with clearer errors.
func (r *Keyring) ServerConfig(alias string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		MaxVersion: tls.VersionTLS13,
		// Any certificate is requested and then checked by verify against
		// the keyring as it is now: ClientCAs would freeze the pool.
		ClientAuth: tls.RequireAnyClientCert,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return r.state.Load().leaf(alias)
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			return r.verify(cs, false)
		},
		// A resumed session would skip the certificate check against a
		// keyring that may have lost the key since.
		SessionTicketsDisabled: true,
	}
}

// ClientConfig returns a TLS configuration for dialling as alias. It reads
// the keyring at every handshake.
func (r *Keyring) ClientConfig(alias string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		MaxVersion: tls.VersionTLS13,
		// Nodes have no host names to check: trust is "signed by an
		// installed key's CA", which VerifyConnection checks against the
		// current keyring. crypto/tls's own verification would want a
		// ServerName and a pool fixed in the configuration, so it is off.
		InsecureSkipVerify: true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return r.state.Load().leaf(alias)
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			return r.verify(cs, true)
		},
		// No ClientSessionCache: every handshake is a full one.
	}
}

// verify checks the peer's certificate against the current keyring: the
// leaf must chain to an installed key's CA and name an alias. It runs on
// both sides; dialed says which this is, for the message.
func (r *Keyring) verify(cs tls.ConnectionState, dialed bool) error {
	s := r.state.Load()
	if len(cs.PeerCertificates) == 0 {
		return refusal("keyring: the peer presented no certificate; it is not a keyed meshell node")
	}
	leaf := cs.PeerCertificates[0]
	usage := x509.ExtKeyUsageClientAuth
	if dialed {
		usage = x509.ExtKeyUsageServerAuth
	}
	// Only our own CAs are roots, and the CA the peer sent along is not
	// used: it is a claim until its signature checks out under one of ours.
	_, err := leaf.Verify(x509.VerifyOptions{Roots: s.pool, KeyUsages: []x509.ExtKeyUsage{usage}})
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &unknown):
		return &KeyMismatchError{PeerKeyIDs: chainKeyIDs(cs.PeerCertificates), OurKeyIDs: s.ids, Dialed: dialed}
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return refusal("keyring: the peer's certificate is not valid at this node's time (%s, valid %s to %s); check both nodes' clocks",
			time.Now().UTC().Format(time.RFC3339), leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	case err != nil:
		return refusal("keyring: the peer's certificate is not a cluster certificate: %w", err)
	case leaf.IsCA:
		return refusal("keyring: the peer presented a CA certificate as its own; it is not a meshell node")
	case leaf.Subject.CommonName == "":
		return refusal("keyring: the peer's certificate names no alias")
	}
	return nil
}

// verifyError marks a refusal by verify other than a *KeyMismatchError.
type verifyError struct{ error }

func (e verifyError) Unwrap() error { return e.error }

func refusal(format string, args ...any) error {
	return verifyError{fmt.Errorf(format, args...)}
}

// PeerAlias returns the alias in the peer's certificate: after a handshake
// with a configuration of this package, the alias the cluster vouches for.
func PeerAlias(cs tls.ConnectionState) string {
	if len(cs.PeerCertificates) == 0 {
		return ""
	}
	return cs.PeerCertificates[0].Subject.CommonName
}

// PeerKeyID returns the id of the key that signed the peer's certificate:
// after a handshake, one of ours (the peer's primary).
func PeerKeyID(cs tls.ConnectionState) string {
	if len(cs.PeerCertificates) == 0 {
		return ""
	}
	return caKeyID(cs.PeerCertificates[0].Issuer.CommonName)
}

// Conn is an authenticated, encrypted connection to a cluster member.
type Conn struct {
	*tls.Conn
	r      *Keyring
	dialed bool
	alias  string
	keyID  string
}

// PeerAlias returns the alias the peer's certificate names.
func (c *Conn) PeerAlias() string { return c.alias }

// PeerKeyID returns the id of the key that signed the peer's certificate.
func (c *Conn) PeerKeyID() string { return c.keyID }

// Read reads application data. On a dialled connection it also turns the
// acceptor's refusal of our certificate into a *KeyMismatchError: a TLS 1.3
// client's handshake completes before the server checks the client's
// certificate, so the refusal arrives as the answer to the first read.
func (c *Conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && c.dialed && isRemoteBadCertificate(err) {
		err = &KeyMismatchError{PeerKeyIDs: []string{c.keyID}, OurKeyIDs: c.r.IDs(), Dialed: true, Refused: true}
	}
	return n, err
}

// Server runs the acceptor's side of the handshake on nc as alias, and
// returns the connection to use instead of nc. ctx bounds the handshake (the
// caller's deadline on nc does too). On error nc is left open for the caller
// to close: after a *PlaintextError the caller may answer in plaintext.
func (r *Keyring) Server(ctx context.Context, nc net.Conn, alias string) (*Conn, error) {
	return r.handshake(ctx, nc, alias, false)
}

// Client runs the dialler's side of the handshake on nc as alias. See Server.
// The acceptor checks our certificate after our handshake completes, so its
// refusal comes as the error of the first Read (a *KeyMismatchError).
func (r *Keyring) Client(ctx context.Context, nc net.Conn, alias string) (*Conn, error) {
	return r.handshake(ctx, nc, alias, true)
}

type configKey struct {
	alias  string
	dialed bool
}

// config returns the shared configuration for alias: a handshake allocates
// enough without a new one each time.
func (r *Keyring) config(alias string, dialed bool) *tls.Config {
	k := configKey{alias, dialed}
	if c, ok := r.cfgs.Load(k); ok {
		return c.(*tls.Config)
	}
	c := r.ServerConfig(alias)
	if dialed {
		c = r.ClientConfig(alias)
	}
	got, _ := r.cfgs.LoadOrStore(k, c)
	return got.(*tls.Config)
}

func (r *Keyring) handshake(ctx context.Context, nc net.Conn, alias string, dialed bool) (*Conn, error) {
	sc := &sniffConn{Conn: nc, alertOK: dialed}
	var tc *tls.Conn
	if dialed {
		tc = tls.Client(sc, r.config(alias, true))
	} else {
		tc = tls.Server(sc, r.config(alias, false))
	}
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, r.handshakeError(err, sc, dialed)
	}
	cs := tc.ConnectionState()
	return &Conn{Conn: tc, r: r, dialed: dialed, alias: PeerAlias(cs), keyID: PeerKeyID(cs)}, nil
}

// handshakeError turns a failed handshake's error into one a user can act on.
func (r *Keyring) handshakeError(err error, sc *sniffConn, dialed bool) error {
	if sc.plain {
		return &PlaintextError{Dialed: dialed, Peeked: sc.seen}
	}
	var km *KeyMismatchError
	var ve verifyError
	if errors.As(err, &km) || errors.As(err, &ve) {
		// We refused the peer's certificate and sent an alert saying so.
		if !dialed {
			linger(sc.Conn)
		}
		if ve.error != nil {
			return ve.error
		}
		return err
	}
	if isRemoteBadCertificate(err) {
		// The peer refused ours. Only an acceptor learns it here: we sent
		// our certificate first, before seeing the dialler's.
		return &KeyMismatchError{OurKeyIDs: r.IDs(), Dialed: dialed, Refused: true}
	}
	return fmt.Errorf("keyring: TLS handshake: %w", err)
}

// linger lets a refused dialler read the alert. Its handshake completed
// before we checked its certificate, so it may already be writing; closing
// with its data unread would reset the connection and lose the alert. So
// half-close and read what comes, until it closes, bounded in time and size.
func linger(nc net.Conn) {
	if cw, ok := nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	nc.SetReadDeadline(time.Now().Add(lingerTimeout))
	io.Copy(io.Discard, io.LimitReader(nc, lingerMax))
}

// isRemoteBadCertificate reports whether err is the peer's bad_certificate
// alert: what a node of this package sends when it refuses a certificate.
// crypto/tls exports neither the alert type nor its values, only the text.
func isRemoteBadCertificate(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "remote error" && op.Err != nil && op.Err.Error() == "tls: bad certificate"
}

// errPlaintext stops crypto/tls reading from a peer that does not speak TLS.
var errPlaintext = errors.New("keyring: peer does not speak TLS")

// sniffConn checks the first bytes a peer sends before crypto/tls parses
// them, so that a plaintext peer is recognised at once whatever its first
// bytes (crypto/tls might wait for a record that never comes), and keeps
// them for the caller.
type sniffConn struct {
	net.Conn
	alertOK bool // an alert record may come first (from a server)
	done    bool
	plain   bool
	seen    []byte
}

func (c *sniffConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.done || n == 0 {
		return n, err
	}
	c.seen = append(c.seen, p[:n]...)
	known, ok := recordStart(c.seen, c.alertOK)
	switch {
	case !known:
		return n, err
	case !ok:
		c.done, c.plain = true, true
		return 0, errPlaintext
	}
	c.done, c.seen = true, nil
	return n, err
}

// recordStart classifies the first bytes of a stream: known is false while
// they are too few to tell, ok whether they start a TLS record (a handshake,
// or an alert when alertOK): type, then major version 3, minor 1 to 4.
func recordStart(b []byte, alertOK bool) (known, ok bool) {
	if len(b) == 0 {
		return false, false
	}
	if b[0] != 0x16 && !(alertOK && b[0] == 0x15) {
		return true, false
	}
	if len(b) == 1 {
		return false, false
	}
	if b[1] != 0x03 {
		return true, false
	}
	if len(b) == 2 {
		return false, false
	}
	return true, 0x01 <= b[2] && b[2] <= 0x04
}

// LooksLikeTLS reports whether first, the first bytes a peer sent, start a
// TLS handshake record (0x16 0x03, then a minor version when there is a
// third byte). An acceptor without a key can use it to tell a keyed dialler
// that it has a key and this node has none. Fewer than two bytes are not
// enough to tell, and report false.
func LooksLikeTLS(first []byte) bool {
	if len(first) < 2 {
		return false
	}
	known, ok := recordStart(first, false)
	return ok || !known
}
