//go:build !linux

package attach

import "net"

// peerUID is not known where SO_PEERCRED is not available: the socket's
// mode 0600 in a 0700 directory is the check.
func peerUID(c *net.UnixConn) (uid int, known bool, err error) { return 0, false, nil }
