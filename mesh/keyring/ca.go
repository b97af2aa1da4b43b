package keyring

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// Fixed inputs of the CA derivation. Changing any of them makes every
// existing cluster key derive a different CA: nodes of two releases would
// refuse each other.
const (
	caLabel    = "meshell cluster ca ed25519 v1" // HKDF info
	caCNPrefix = "meshell cluster "              // CA common name: prefix and key id
)

var (
	caNotBefore = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	caNotAfter  = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
)

// Leaf validity. Clocks of cluster nodes differ; a day of slack backwards
// keeps a node whose clock is behind from refusing a fresh certificate.
const (
	leafBackdate = 24 * time.Hour
	leafLifetime = 10 * 365 * 24 * time.Hour
)

// authority is the CA derived from one cluster key.
type authority struct {
	key  Key
	id   string
	priv ed25519.PrivateKey
	cert *x509.Certificate
}

// deriveAuthority derives k's CA. Every holder of k gets the same key pair
// and, ed25519 signatures being deterministic, the same certificate.
func deriveAuthority(k Key) (*authority, error) {
	seed, err := hkdf.Key(sha256.New, k.b[:], nil, caLabel, ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("keyring: derive CA: %w", err)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	clear(seed)
	pub := priv.Public().(ed25519.PublicKey)
	id := k.ID()
	skid := sha256.Sum256(pub)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: caCNPrefix + id},
		NotBefore:             caNotBefore,
		NotAfter:              caNotAfter,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          skid[:20], // set, so that no Go release picks another
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		return nil, fmt.Errorf("keyring: CA certificate for key %s: %w", id, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("keyring: CA certificate for key %s: %w", id, err)
	}
	return &authority{key: k, id: id, priv: priv, cert: cert}, nil
}

// issue signs a leaf certificate for alias with leafKey. The chain it returns
// holds the CA certificate too, so that a peer without our key can name it.
func (a *authority) issue(alias string, leafKey ed25519.PrivateKey, now time.Time) (*tls.Certificate, error) {
	if alias == "" {
		return nil, errors.New("keyring: empty alias")
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("keyring: certificate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: alias},
		NotBefore:             now.Add(-leafBackdate),
		NotAfter:              now.Add(leafLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, leafKey.Public(), a.priv)
	if err != nil {
		return nil, fmt.Errorf("keyring: certificate for alias %q: %w", alias, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("keyring: certificate for alias %q: %w", alias, err)
	}
	return &tls.Certificate{Certificate: [][]byte{der, a.cert.Raw}, PrivateKey: leafKey, Leaf: leaf}, nil
}

// caKeyID returns the key id in a meshell CA common name, or "".
func caKeyID(cn string) string {
	id, ok := strings.CutPrefix(cn, caCNPrefix)
	if !ok || !validID(id) {
		return ""
	}
	return id
}

// chainKeyIDs returns the key ids a presented chain names: the leaf's issuer
// and any meshell CA certificate sent along. From a stranger they are claims,
// good for a diagnosis only.
func chainKeyIDs(certs []*x509.Certificate) []string {
	var ids []string
	add := func(id string) {
		if id == "" {
			return
		}
		for _, x := range ids {
			if x == id {
				return
			}
		}
		ids = append(ids, id)
	}
	if len(certs) > 0 {
		add(caKeyID(certs[0].Issuer.CommonName))
	}
	for _, c := range certs {
		if c.IsCA {
			add(caKeyID(c.Subject.CommonName))
		}
	}
	return ids
}
