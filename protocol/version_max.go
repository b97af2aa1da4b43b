//go:build !meshell_proto1

package protocol

// MaxVersion is the newest protocol version this build speaks.
const MaxVersion = 2
