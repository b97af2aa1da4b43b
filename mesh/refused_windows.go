package mesh

import (
	"errors"
	"syscall"
)

// wsaeconnrefused is Winsock's "connection refused", which never matches
// syscall.ECONNREFUSED.
const wsaeconnrefused = syscall.Errno(10061)

// refused reports whether a dial failed because nothing listens there.
func refused(err error) bool {
	return errors.Is(err, wsaeconnrefused) || errors.Is(err, syscall.ECONNREFUSED)
}
