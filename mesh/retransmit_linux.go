package mesh

import (
	"net"
	"syscall"
	"time"
)

// tcpRTOMaxMS is Linux's TCP_RTO_MAX_MS (6.15 and later): the longest
// retransmission timeout a connection backs off to.
const tcpRTOMaxMS = 44

// capRetransmit caps how far TCP backs off retransmitting on nc. A healed
// cut otherwise stays silent until the next retransmission of a backoff
// that doubles from 200 ms (a 4 s cut: up to 3.2 s more), holding back the
// refutations that would end the suspicions it caused. Older kernels
// refuse the option and keep their backoff.
func capRetransmit(nc net.Conn, max time.Duration) {
	sc, ok := nc.(syscall.Conn)
	if !ok || max <= 0 {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpRTOMaxMS, int(max/time.Millisecond))
	})
}
