//go:build !windows

package mesh

import (
	"errors"
	"syscall"
)

// refused reports whether a dial failed because nothing listens there.
func refused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

// reset reports whether a connection was reset or broken by the peer's end.
func reset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
