//go:build !linux

package mesh

import (
	"net"
	"time"
)

// capRetransmit is a Linux measure (retransmit_linux.go).
func capRetransmit(net.Conn, time.Duration) {}
