package keyring

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"os"
	"strings"
)

// KeyMismatchError is a handshake refused because the two nodes share no
// key: one of them does not hold the key that signed the other's
// certificate. Its message names the key ids and says what to do.
type KeyMismatchError struct {
	PeerKeyIDs []string // key ids the peer's certificate names (claims, from a stranger); may be empty
	OurKeyIDs  []string // this node's installed key ids, primary first
	Dialed     bool     // this node dialled
	Refused    bool     // the peer refused our certificate, rather than we its
}

func (e *KeyMismatchError) Error() string {
	theirs := "none"
	if len(e.PeerKeyIDs) > 0 {
		theirs = strings.Join(e.PeerKeyIDs, ", ")
	}
	ours := strings.Join(e.OurKeyIDs, ", ")
	primary := ""
	if len(e.OurKeyIDs) > 0 {
		primary = e.OurKeyIDs[0]
	}
	switch {
	case e.Dialed && !e.Refused && len(e.PeerKeyIDs) == 0:
		return "that node's certificate names no meshell cluster key (this node's: " + ours + "); it is not a node of a keyed meshell cluster"
	case e.Dialed && !e.Refused:
		return "this node holds no key of that cluster (its key ids: " + theirs + "; this node's: " + ours + "); pass the cluster's --key-file"
	case !e.Dialed && !e.Refused:
		return "peer presented a certificate from key " + theirs + ", not one of ours (" + ours + "); it belongs to another cluster or lacks this cluster's key"
	case e.Dialed:
		// We accepted its certificate: it holds a key we hold, not our primary.
		return "that node does not hold this node's primary key " + primary + " (it signs with " + theirs + "); install " + primary + " there before making it primary, or make " + theirs + " primary here"
	default:
		return "peer refused this node's certificate from key " + primary + " (this node's keys: " + ours + "); it belongs to another cluster, or needs key " + primary + " installed"
	}
}

// PlaintextError is a handshake with a peer that does not speak TLS: a node
// without a cluster key.
type PlaintextError struct {
	Dialed bool   // this node dialled
	Peeked []byte // what the peer sent before it was recognised, already read from the connection
}

func (e *PlaintextError) Error() string {
	if e.Dialed {
		return "that node has no cluster key: the cluster is not encrypted; start this node without --key-file/" + EnvVar + ", or give that node the key"
	}
	return "peer has no cluster key (it sent plaintext); give it this cluster's --key-file, or start this node without one"
}

// Describe returns a one-line explanation of a handshake error, for a user:
// what differs and what to do. It recognises the errors of this package
// (also wrapped) and crypto/tls's own for the cases a keyring causes, so it
// serves callers of ServerConfig and ClientConfig too. It never shows key
// bytes, since no error of this package holds any.
func Describe(err error) string {
	var km *KeyMismatchError
	var pe *PlaintextError
	var rh tls.RecordHeaderError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &km):
		return km.Error()
	case errors.As(err, &pe):
		return pe.Error()
	case errors.As(err, &rh):
		// From tls.Client or tls.Server: the side is unknown.
		return "the peer does not speak TLS: it has no cluster key and its cluster is not encrypted; start this node without --key-file/" + EnvVar + ", or give the peer the key"
	case isRemoteBadCertificate(err):
		return "the peer refused this node's certificate: it holds none of this node's keys, or not its primary one; give it the cluster's key"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "the TLS handshake timed out: the peer did not answer in time (is it a meshell node?)"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the peer closed the connection during the TLS handshake: it may have no cluster key, or have refused this node"
	}
	return strings.ReplaceAll(err.Error(), "\n", " ")
}
