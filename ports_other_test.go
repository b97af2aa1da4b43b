//go:build !unix

package main

import (
	"fmt"
	"net"
	"testing"
)

// holdPorts reports whether base..base+n-1 are free on loopback; without
// flock nothing keeps other test processes from taking them meanwhile.
func holdPorts(t testing.TB, base, n int) bool {
	t.Helper()
	for p := base; p < base+n; p++ {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			return false
		}
		ln.Close()
	}
	return true
}
