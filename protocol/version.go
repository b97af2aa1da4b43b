package protocol

import (
	"fmt"
	"strconv"
)

// MinVersion is the oldest protocol version this build speaks. Version 1
// carried one version number in the handshakes; version 2 added the ranges
// (Hello.MinVersion …), and nothing else changed. A later version gates
// what it adds on the version a connection speaks (Versions.Cur).
const MinVersion = 1

// Version is the newest protocol version this build speaks (MaxVersion,
// version_max*.go).
const Version = MaxVersion

// Versions is a range of protocol versions, [Min, Max], and Cur: in a
// Hello or Join the version the sender prefers (its Max), in an answer and
// for a connection the version chosen for it.
type Versions struct {
	Min, Max, Cur uint16
}

// Supported is the range this build speaks.
func Supported() Versions { return Versions{MinVersion, MaxVersion, MaxVersion} }

// String is "1-2", or "1" for a range of one version.
func (v Versions) String() string {
	if v.Min == v.Max {
		return strconv.Itoa(int(v.Min))
	}
	return strconv.Itoa(int(v.Min)) + "-" + strconv.Itoa(int(v.Max))
}

// Speaks reports whether v's range holds version n.
func (v Versions) Speaks(n uint16) bool { return v.Min <= n && n <= v.Max }

// Negotiate returns the highest version both ranges hold; false when they
// do not overlap.
func Negotiate(a, b Versions) (uint16, bool) {
	n := min(a.Max, b.Max)
	return n, n != 0 && n >= max(a.Min, b.Min)
}

// NoOverlap is the refusal of two nodes whose ranges do not overlap,
// naming both.
func NoOverlap(aliasA string, a Versions, aliasB string, b Versions) error {
	return fmt.Errorf("protocol versions do not overlap: %s speaks %s, %s speaks %s; upgrade the older node to a release that speaks both",
		aliasA, a, aliasB, b)
}

// intro returns the versions carried by a Hello or Join: a node of
// protocol 1 sends only the legacy version field.
func intro(legacy, lo, hi, cur uint16) Versions {
	if hi == 0 {
		return Versions{legacy, legacy, legacy}
	}
	return Versions{lo, hi, cur}
}

// Versions is the sender's range and preferred version.
func (h *Hello) Versions() Versions {
	return intro(h.Version, h.MinVersion, h.MaxVersion, h.CurVersion)
}

// Versions is the sender's range and preferred version.
func (j *Join) Versions() Versions { return intro(j.Version, j.MinVersion, j.MaxVersion, j.CurVersion) }

// Versions is the answering node's range and the version it chose.
func (a *HelloAck) Versions() Versions {
	return intro(a.Version, a.MinVersion, a.MaxVersion, a.Version)
}

// Versions is the answering node's range and the version it chose.
func (a *JoinAck) Versions() Versions { return intro(a.Version, a.MinVersion, a.MaxVersion, a.Version) }

// NewHello introduces self as a speaker of v. The legacy field holds v.Min,
// so that a node of protocol 1, which reads only it, accepts exactly when
// the ranges overlap.
func NewHello(v Versions, cluster string, self Member, connID uint64) *Hello {
	return &Hello{Version: v.Min, Cluster: cluster, From: self, ConnID: connID, MinVersion: v.Min, MaxVersion: v.Max, CurVersion: v.Max}
}

// NewJoin is NewHello's Join.
func NewJoin(v Versions, cluster string, self Member, connID uint64) *Join {
	return &Join{Version: v.Min, Cluster: cluster, From: self, ConnID: connID, MinVersion: v.Min, MaxVersion: v.Max, CurVersion: v.Max}
}

// validVersions checks a range carried by a handshake; hi 0 is a protocol
// 1 sender's (no range).
func validVersions(lo, hi, cur uint16) error {
	if hi == 0 && lo == 0 && cur == 0 {
		return nil
	}
	if lo == 0 || lo > hi || (cur != 0 && (cur < lo || cur > hi)) {
		return fmt.Errorf("protocol versions [%d, %d] current %d are not a range", lo, hi, cur)
	}
	return nil
}
