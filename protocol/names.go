package protocol

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// Name limits. The node and the shell check user input with the same
// functions, so a name that passes locally is never refused by a peer.
const (
	MaxAliasLen    = 64  // alias, cluster name and job kind
	MaxTagKeyLen   = 64  // tag key
	MaxTagValueLen = 256 // tag value
	MaxTags        = 64  // tags per member
	// MaxTagBytes bounds a member's tags, keys and values together, so that
	// a full table (MaxMembers of 4096) fits in one frame (memberlist bounds
	// a node's metadata to 512 bytes too).
	MaxTagBytes = 512
	MaxHostLen  = 253 // DNS name in an address
	MaxAddrLen  = 300 // whole host:port
)

// charset is a set of allowed bytes; every byte >= 0x80 is outside all of
// them, so names are ASCII and carry no control or escape sequences.
type charset [256]bool

func newCharset(extra string) *charset {
	var c charset
	for b := '0'; b <= '9'; b++ {
		c[b] = true
	}
	for b := 'a'; b <= 'z'; b++ {
		c[b], c[b-'a'+'A'] = true, true
	}
	for i := 0; i < len(extra); i++ {
		c[extra[i]] = true
	}
	return &c
}

var (
	nameChars     = newCharset("._-")
	tagKeyChars   = newCharset("._/-")
	tagValueChars = newCharset("._:/@+-")
	hostChars     = newCharset(".-")
)

// only reports whether every byte of s is in c.
func (c *charset) only(s string) bool {
	for i := 0; i < len(s); i++ {
		if !c[s[i]] {
			return false
		}
	}
	return true
}

// quote is %q of s, cut after 64 bytes so that a hostile megabyte does not
// end up in a log line.
func quote(s string) string {
	if len(s) <= 64 {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%q... (%d bytes)", s[:64], len(s))
}

func validName(what, s string) error {
	if len(s) == 0 || len(s) > MaxAliasLen || !nameChars.only(s) {
		return fmt.Errorf("%s %s is not valid: use 1 to %d letters, digits, '.', '_' or '-'", what, quote(s), MaxAliasLen)
	}
	return nil
}

// ValidAlias checks a member alias: 1 to 64 of [A-Za-z0-9._-].
func ValidAlias(s string) error { return validName("alias", s) }

// ValidCluster checks a cluster name: the alphabet and length of an alias.
func ValidCluster(s string) error { return validName("cluster name", s) }

// ValidKind checks a job kind name: the alphabet and length of an alias.
func ValidKind(s string) error { return validName("job kind", s) }

// ValidTag checks one tag: key of 1 to 64 [A-Za-z0-9._/-], value of 0 to
// 256 [A-Za-z0-9._:/@+-]. Neither holds ',', '=', spaces or quotes, so
// "k=v,k2=v2" text is unambiguous.
func ValidTag(k, v string) error {
	if len(k) == 0 || len(k) > MaxTagKeyLen || !tagKeyChars.only(k) {
		return fmt.Errorf("tag key %s is not valid: use 1 to %d letters, digits, '.', '_', '/' or '-'", quote(k), MaxTagKeyLen)
	}
	if len(v) > MaxTagValueLen || !tagValueChars.only(v) {
		return fmt.Errorf("tag %s: value %s is not valid: use up to %d letters, digits, '.', '_', ':', '/', '@', '+' or '-'", k, quote(v), MaxTagValueLen)
	}
	return nil
}

// ValidTags checks a member's tags: at most MaxTags, each valid.
func ValidTags(tags map[string]string) error {
	if len(tags) > MaxTags {
		return fmt.Errorf("%d tags exceed the limit of %d", len(tags), MaxTags)
	}
	size := 0
	for k, v := range tags {
		if err := ValidTag(k, v); err != nil {
			return err
		}
		size += len(k) + len(v)
	}
	if size > MaxTagBytes {
		return fmt.Errorf("tags of %d bytes (keys and values) exceed the limit of %d", size, MaxTagBytes)
	}
	return nil
}

// ValidAddr checks a host:port address. The port is 1 to 65535; the host is
// empty (the address the connection came from), an IP literal, or a DNS
// name of [A-Za-z0-9.-] of at most 253 bytes.
func ValidAddr(s string) error {
	if len(s) > MaxAddrLen {
		return fmt.Errorf("address %s is not valid: at most %d bytes", quote(s), MaxAddrLen)
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("address %s is not valid: use HOST:PORT", quote(s))
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return fmt.Errorf("address %s is not valid: port %s is not a number from 1 to 65535", quote(s), quote(port))
	}
	if host == "" || validIP(host) || (len(host) <= MaxHostLen && hostChars.only(host)) {
		return nil
	}
	return fmt.Errorf("address %s is not valid: host %s is neither an IP address nor a DNS name of letters, digits, '.' and '-'", quote(s), quote(host))
}

// validIP accepts an IP literal; an IPv6 zone must be a plain name.
func validIP(host string) bool {
	ip, err := netip.ParseAddr(host)
	return err == nil && nameChars.only(ip.Zone())
}

// Validate checks a member as gossiped: valid alias, address (empty allowed),
// state from StateAlive to StateLeft, tags, and an accuser that is empty or
// a valid alias.
func (m Member) Validate() error {
	if err := m.validate(); err != nil {
		return err
	}
	if m.State < StateAlive || m.State > StateLeft {
		return fmt.Errorf("member %s: state %d is not valid", m.Alias, m.State)
	}
	return nil
}

// validate checks everything but the state, which a node introducing itself
// in a handshake may leave unset.
func (m Member) validate() error {
	if err := ValidAlias(m.Alias); err != nil {
		return err
	}
	if m.Addr != "" {
		if err := ValidAddr(m.Addr); err != nil {
			return fmt.Errorf("member %s: %w", m.Alias, err)
		}
	}
	if m.State > StateLeft {
		return fmt.Errorf("member %s: state %d is not valid", m.Alias, m.State)
	}
	if err := ValidTags(m.Tags); err != nil {
		return fmt.Errorf("member %s: %w", m.Alias, err)
	}
	if m.Accuser != "" {
		if err := ValidAlias(m.Accuser); err != nil {
			return fmt.Errorf("member %s: accuser: %w", m.Alias, err)
		}
	}
	return nil
}
