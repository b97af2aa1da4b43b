//go:build unix

package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// holdPorts reports whether base..base+n-1 are free on loopback and, if so,
// holds them until the test ends: a lock file per port keeps other test
// processes on this machine (another package's, another checkout's) from
// handing out the same ones before the test's nodes bind them.
func holdPorts(t testing.TB, base, n int) bool {
	t.Helper()
	dir := filepath.Join(os.TempDir(), "meshell-test-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	var held []*os.File
	release := func() {
		for _, f := range held {
			f.Close() // closing the file drops its lock
		}
	}
	for p := base; p < base+n; p++ {
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprint(p)), os.O_CREATE|os.O_RDWR, 0o666)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, f)
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			release()
			return false
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			release()
			return false
		}
		ln.Close()
	}
	t.Cleanup(release)
	return true
}
