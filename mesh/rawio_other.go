//go:build !linux

package mesh

import (
	"io"
	"net"
)

// newIO returns nc: raw socket I/O (rawio_linux.go) is a Linux measure.
func newIO(nc net.Conn) io.ReadWriter { return nc }
