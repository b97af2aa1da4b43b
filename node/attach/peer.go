package attach

import (
	"fmt"
	"net"
	"os"
)

// trustedPeer reports whether a process of uid may be at the other end of
// a session: this process's user, or root.
func trustedPeer(uid int) bool { return uid == os.Getuid() || uid == 0 }

// checkPeer refuses a connection from another user than this process's
// (root excepted), by the kernel's SO_PEERCRED: a second line behind the
// socket's mode, should the directory or the socket be opened up.
func checkPeer(c *net.UnixConn) error {
	uid, known, err := peerUID(c)
	if err != nil {
		return err
	}
	if known && !trustedPeer(uid) {
		return fmt.Errorf("uid %d may not use the control socket of uid %d", uid, os.Getuid())
	}
	return nil
}

// checkAgent is checkPeer for the attaching side: the node that listens at
// a socket must be this user's (or root's). What an agent sends reaches
// the terminal as it sent it (colour included), so another user's socket,
// given by path or planted where root attaches, could write any escape
// sequence to it.
func checkAgent(c *net.UnixConn, path string) error {
	uid, known, err := peerUID(c)
	if err != nil {
		return fmt.Errorf("cannot attach to %s: %w", path, err)
	}
	if known && !trustedPeer(uid) {
		return fmt.Errorf("will not attach to %s: its node runs as uid %d, not as this user (uid %d), and what it sends would reach this terminal unchecked; attach as that user", path, uid, os.Getuid())
	}
	return nil
}
