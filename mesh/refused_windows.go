package mesh

import (
	"errors"
	"syscall"
)

// wsaeconnrefused is Winsock's "connection refused", which never matches
// syscall.ECONNREFUSED.
const wsaeconnrefused = syscall.Errno(10061)

// wsaeconnreset is Winsock's "connection reset by peer".
const wsaeconnreset = syscall.Errno(10054)

// refused reports whether a dial failed because nothing listens there.
func refused(err error) bool {
	return errors.Is(err, wsaeconnrefused) || errors.Is(err, syscall.ECONNREFUSED)
}

// reset reports whether a connection was reset or broken by the peer's end.
func reset(err error) bool {
	return errors.Is(err, wsaeconnreset) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
