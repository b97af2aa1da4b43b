package mesh

import (
	"io"
	"net"
	"syscall"
	"unsafe"
)

// rawIO reads and writes a TCP connection's non-blocking socket with raw
// system calls, waiting for readiness through the runtime's poller as
// net.Conn does.
//
// The difference is the Go scheduler's bookkeeping: a net.Conn read or
// write is a blocking-call wrapper, and entering one wakes the runtime's
// monitor thread whenever the process was idle. An idle cluster node does
// little else than a few small reads and writes a second, so those wakeups
// were most of its CPU (see BENCHMARKS.md, idle cost). A read or write on a
// non-blocking socket returns at once, so it needs no such bookkeeping:
// EAGAIN means wait for readiness, which RawConn does.
type rawIO struct {
	rc syscall.RawConn
}

// newIO returns the reader and writer for nc: raw I/O for a socket, nc
// itself for anything else (a net.Pipe in tests).
func newIO(nc net.Conn) io.ReadWriter {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nc
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nc
	}
	return rawIO{rc: rc}
}

func (r rawIO) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var errno syscall.Errno
	err := r.rc.Read(func(fd uintptr) bool {
		for {
			m, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			switch e {
			case 0:
				n = int(m)
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false // not readable yet: wait for the poller
			default:
				errno = e
			}
			return true
		}
	})
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, errno
	case n == 0:
		return 0, io.EOF
	}
	raceRead()
	return n, nil
}

func (r rawIO) Write(p []byte) (int, error) {
	raceWrote()
	var n int
	var errno syscall.Errno
	err := r.rc.Write(func(fd uintptr) bool {
		for n < len(p) {
			m, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[n])), uintptr(len(p)-n))
			switch e {
			case 0:
				n += int(m)
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false // the send buffer is full: wait for the poller
			default:
				errno = e
				return true
			}
		}
		return true
	})
	if err == nil && errno != 0 {
		err = errno
	}
	return n, err
}
