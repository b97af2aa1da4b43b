package mesh

import (
	"io"
	"net"
	"syscall"
	"unsafe"
)

// rawIO reads and writes a TCP connection's non-blocking socket with raw
// system calls, waiting for readiness through the runtime's poller as
// net.Conn does, but without net.Conn's blocking-call bookkeeping, which
// wakes the runtime's monitor thread in an idle process (BENCHMARKS.md,
// "House": what that cost an idle node).
type rawIO struct {
	rc      syscall.RawConn
	rd, wr  rawOp              // the call in progress: one reader, one writer
	readFn  func(uintptr) bool // rawIO.read and rawIO.write, bound once so
	writeFn func(uintptr) bool // that a call allocates nothing
}

// rawOp is one Read or Write: its buffer and outcome.
type rawOp struct {
	p     []byte
	n     int
	errno syscall.Errno
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
	r := &rawIO{rc: rc}
	r.readFn, r.writeFn = r.read, r.write
	return r
}

func (r *rawIO) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.rd = rawOp{p: p}
	err := r.rc.Read(r.readFn)
	op := r.rd
	r.rd = rawOp{}
	switch {
	case err != nil:
		return 0, err
	case op.errno != 0:
		return 0, op.errno
	case op.n == 0:
		return 0, io.EOF
	}
	raceRead()
	return op.n, nil
}

// read is one attempt at r.rd; false means not readable yet: the poller
// waits, then RawConn calls it again.
func (r *rawIO) read(fd uintptr) bool {
	p := r.rd.p
	for {
		m, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch e {
		case 0:
			r.rd.n = int(m)
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		default:
			r.rd.errno = e
		}
		return true
	}
}

func (r *rawIO) Write(p []byte) (int, error) {
	raceWrote()
	r.wr = rawOp{p: p}
	err := r.rc.Write(r.writeFn)
	op := r.wr
	r.wr = rawOp{}
	if err == nil && op.errno != 0 {
		err = op.errno
	}
	return op.n, err
}

// write writes what is left of r.wr; false means the send buffer is full:
// the poller waits, then RawConn calls it again.
func (r *rawIO) write(fd uintptr) bool {
	p := r.wr.p
	for r.wr.n < len(p) {
		m, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[r.wr.n])), uintptr(len(p)-r.wr.n))
		switch e {
		case 0:
			r.wr.n += int(m)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			r.wr.errno = e
			return true
		}
	}
	return true
}
