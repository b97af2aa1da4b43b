//go:build linux

package main

// A closed terminal: the shell runs in a pseudo-terminal whose master the
// test holds, and closing the master is closing the terminal's window.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// ptyShell is meshell on the slave side of a pseudo-terminal.
type ptyShell struct {
	master *os.File
	out    syncBuffer // what the shell wrote to the terminal
	stderr syncBuffer
	cmd    *exec.Cmd
	done   chan struct{} // the process exited
}

// ioctl on f without putting it in blocking mode (as f.Fd would): a
// blocked Read must still end when f is closed.
func ioctl(f *os.File, req uintptr, arg unsafe.Pointer) error {
	c, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var errno syscall.Errno
	if err := c.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, req, uintptr(arg))
	}); err != nil {
		return err
	}
	if errno != 0 {
		return errno
	}
	return nil
}

// openPty returns a new pseudo-terminal of 150×40.
func openPty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	var unlock int32
	var n uint32
	if err := ioctl(master, syscall.TIOCSPTLCK, unsafe.Pointer(&unlock)); err != nil {
		t.Fatalf("unlocking the pty: %v", err)
	}
	if err := ioctl(master, syscall.TIOCGPTN, unsafe.Pointer(&n)); err != nil {
		t.Fatalf("naming the pty: %v", err)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	ws := [4]uint16{40, 150, 0, 0} // rows, columns: readline completes only with a width
	if err := ioctl(slave, syscall.TIOCSWINSZ, unsafe.Pointer(&ws)); err != nil {
		t.Fatalf("sizing the pty: %v", err)
	}
	return master, slave
}

// startPty runs meshell with the pty's slave as stdin and stdout, in a
// session of its own; with ctty the pty is its controlling terminal, so
// that the kernel sends it SIGHUP when the terminal hangs up.
func startPty(t *testing.T, ctty bool, args ...string) *ptyShell {
	t.Helper()
	master, slave := openPty(t)
	p := &ptyShell{master: master, cmd: exec.Command(binary, args...), done: make(chan struct{})}
	p.cmd.Stdin, p.cmd.Stdout, p.cmd.Stderr = slave, slave, &p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: ctty, Ctty: 0}
	err := p.cmd.Start()
	slave.Close() // the child holds it now
	if err != nil {
		master.Close()
		t.Fatal(err)
	}
	read := make(chan struct{})
	go func() { // ends when the master is closed or the child let go of the slave
		defer close(read)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			p.out.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		master.Close()
		<-read
	})
	return p
}

// waitOut polls the terminal's output for text.
func (p *ptyShell) waitOut(t *testing.T, text string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(p.out.String(), text) {
		select {
		case <-p.done:
			t.Fatalf("the shell exited before showing %q\nterminal:\n%q\nstderr:\n%s", text, p.out.String(), p.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the shell never showed %q\nterminal:\n%q\nstderr:\n%s", text, p.out.String(), p.stderr.String())
		}
	}
}

// A closed terminal makes the shell leave the cluster gracefully (the peer
// sees it left, not failed), remove its control socket and exit 128+SIGHUP,
// whether the hang-up comes as SIGHUP, as a failed read of the terminal,
// or as both with more SIGHUPs after (as shells and tmux send).
func TestClosedTerminalLeavesGracefully(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		ctty        bool   // the pty is the shell's controlling terminal: the kernel sends SIGHUP
		typed, run  string // a line half typed, a command running
		moreHangups int    // SIGHUPs sent after the close
	}{
		{name: "its controlling terminal", ctty: true},
		{name: "its controlling terminal, more SIGHUPs after", ctty: true, moreHangups: 3},
		{name: "a command running, more SIGHUPs after", ctty: true, run: "!sleep 60s", moreHangups: 3},
		{name: "not its controlling terminal: no SIGHUP, the read fails", typed: "!echo half-typed"},
		{name: "no SIGHUP but SIGHUPs after", typed: "!echo half-typed", moreHangups: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir, err := os.MkdirTemp("", "hup") // short: a socket's path has a bound
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			peerSock, sock, hist := filepath.Join(dir, "peer.sock"), filepath.Join(dir, "hup.sock"), filepath.Join(dir, "hist")
			port := freePort(t)
			serveNode(t, "peer", port, 0, "--socket", peerSock)
			p := startPty(t, tc.ctty, "--alias", "hup", "-P", "0", "--profile", "local", "--no-color",
				"--join", fmt.Sprintf("127.0.0.1:%d", port), "--socket", sock, "--history-file", hist)
			p.waitOut(t, "hup [2 alive]> ")
			if _, err := os.Stat(sock); err != nil {
				t.Fatalf("the shell has no control socket to remove: %v", err)
			}
			if tc.typed != "" {
				p.master.WriteString(tc.typed)
				p.waitOut(t, "> "+tc.typed)
			}
			if tc.run != "" {
				p.master.WriteString(tc.run + "\r")
				p.waitOut(t, "> "+tc.run+"\r\n")
			}
			p.master.Close()
			for i := 0; i < tc.moreHangups; i++ {
				p.cmd.Process.Signal(syscall.SIGHUP)
			}
			select {
			case <-p.done:
			case <-time.After(20 * time.Second):
				t.Fatalf("the shell did not exit within 20 s of its terminal closing\nstderr:\n%s", p.stderr.String())
			}
			if code := p.cmd.ProcessState.ExitCode(); code != 129 {
				t.Errorf("exit status %d (%v), want 129\nstderr:\n%s", code, p.cmd.ProcessState, p.stderr.String())
			}
			state := ""
			deadline := time.Now().Add(20 * time.Second)
			for state == "" || state == "alive" || state == "suspect" {
				if time.Now().After(deadline) {
					t.Fatalf("the peer still lists hup %s 20 s after it exited", state)
				}
				time.Sleep(20 * time.Millisecond)
				for _, m := range attachedMembers(t, peerSock) {
					if m.Alias == "hup" {
						state = m.State
					}
				}
			}
			if state != "left" {
				t.Errorf("the peer lists hup %s, want left", state)
			}
			if _, err := os.Stat(sock); !os.IsNotExist(err) {
				t.Errorf("the control socket is still there (%v)", err)
			}
			if b, _ := os.ReadFile(hist); tc.typed != "" && strings.Contains(string(b), tc.typed) {
				t.Errorf("the half-typed line ran: the history has %q", b)
			}
		})
	}
}
