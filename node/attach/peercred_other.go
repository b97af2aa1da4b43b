//go:build !linux

package attach

import "net"

// checkPeer accepts every peer where SO_PEERCRED is not available: the
// socket's mode 0600 in a 0700 directory is the check.
func checkPeer(c *net.UnixConn) error { return nil }
