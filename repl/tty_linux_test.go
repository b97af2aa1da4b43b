//go:build linux

package repl

import (
	"fmt"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/chzyer/readline"
)

// openPty returns a new pseudo-terminal, its master and slave.
func openPty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	var unlock int32
	var n uint32
	for _, c := range []struct {
		req uintptr
		arg unsafe.Pointer
	}{{syscall.TIOCSPTLCK, unsafe.Pointer(&unlock)}, {syscall.TIOCGPTN, unsafe.Pointer(&n)}} {
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), c.req, uintptr(c.arg)); e != 0 {
			t.Fatalf("setting the pty up: %v", e)
		}
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { slave.Close() })
	return master, slave
}

// On a real terminal, bytes typed after Enter while raw mode lasted stay
// data once cooked mode is back: a Ctrl-C among them is taken as the
// interrupt, and what follows it waits for the next prompt.
func TestTTYReaderOnATerminal(t *testing.T) {
	master, slave := openPty(t)
	intrs := 0
	tty := &ttyReader{r: slave, fd: int(slave.Fd()), intr: func() { intrs++ }}
	cooked, err := readline.MakeRaw(tty.fd)
	if err != nil {
		t.Fatal(err)
	}
	master.WriteString("!sleep 1m\r")
	buf := make([]byte, 4096)
	if n, err := tty.Read(buf); err != nil || string(buf[:n]) != "!sleep 1m\r" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	master.WriteString("ab\x03cd")
	// A pty hands bytes on asynchronously: wait until the slave holds them,
	// still in raw mode.
	for deadline := time.Now().Add(10 * time.Second); queuedInput(tty.fd) < 5; runtime.Gosched() {
		if time.Now().After(deadline) {
			t.Fatalf("the terminal holds %d bytes, not 5", queuedInput(tty.fd))
		}
	}
	if err := readline.Restore(tty.fd, cooked); err != nil { // as readline leaves raw mode
		t.Fatal(err)
	}
	tty.exitedRaw()
	if intrs != 1 {
		t.Fatalf("%d interrupts, want 1", intrs)
	}
	if n, err := tty.Read(buf); err != nil || string(buf[:n]) != "cd" {
		t.Fatalf("the next prompt read %q, %v; want \"cd\"", buf[:n], err)
	}
}
