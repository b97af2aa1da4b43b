package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ---- child processes --------------------------------------------------------

// Proc is one child process. Its stdout is drained line by line by a goroutine
// for its whole life; stderr goes to a log file.
type Proc struct {
	h     *Harness
	Name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	inMu  sync.Mutex
	done  chan struct{} // closed once the process has exited and stdout is drained
	err   error         // Wait's result, valid after done
	Log   string
	Pid   int
	Start time.Time
}

// startProc spawns bin with args. onLine is called (from the drain goroutine)
// for every stdout line with the time it was read.
func (h *Harness) startProc(name, logName, bin string, args []string, onLine func(line []byte, recv time.Time)) (*Proc, error) {
	if err := h.ctx.Err(); err != nil {
		return nil, err
	}
	logPath := filepath.Join(h.logDir, logName+".log")
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer lf.Close() // the child holds its own copy
	fmt.Fprintf(lf, "### %s %s\n", bin, strings.Join(args, " "))

	cmd := exec.Command(bin, args...)
	cmd.Stderr = lf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:   true,            // keep terminal signals away; the harness decides
		Pdeathsig: syscall.SIGKILL, // and if the harness dies, the children die too
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p := &Proc{h: h, Name: name, cmd: cmd, stdin: stdin, done: make(chan struct{}), Log: logPath}
	h.procMu.Lock()
	if h.closing {
		h.procMu.Unlock()
		return nil, errors.New("harness is shutting down")
	}
	p.Start = time.Now()
	if err := cmd.Start(); err != nil {
		h.procMu.Unlock()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p.Pid = cmd.Process.Pid
	h.procs[p] = struct{}{}
	h.procMu.Unlock()

	go func() {
		r := bufio.NewReaderSize(stdout, 64*1024)
		for {
			line, err := r.ReadBytes('\n')
			if len(line) > 0 && onLine != nil {
				onLine(line, time.Now())
			}
			if err != nil {
				break
			}
		}
		p.err = cmd.Wait()
		h.procMu.Lock()
		delete(h.procs, p)
		h.procMu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// Send writes one line to the child's stdin.
func (p *Proc) Send(line string) error {
	p.inMu.Lock()
	defer p.inMu.Unlock()
	_, err := io.WriteString(p.stdin, line+"\n")
	return err
}

func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *Proc) Signal(sig syscall.Signal) error {
	if p.Exited() {
		return errors.New("process already exited")
	}
	return p.cmd.Process.Signal(sig)
}

// Kill sends SIGKILL and waits (bounded) for the process to be reaped.
func (p *Proc) Kill() {
	_ = p.Signal(syscall.SIGKILL)
	p.WaitExit(5 * time.Second)
	p.stdin.Close()
}

// WaitExit waits up to d for the process to exit.
func (p *Proc) WaitExit(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.done:
		return true
	case <-t.C:
		return false
	}
}

// killAll kills every child still running. Safe to call more than once.
func (h *Harness) killAll() {
	h.procMu.Lock()
	h.closing = true
	var ps []*Proc
	for p := range h.procs {
		ps = append(ps, p)
	}
	h.procMu.Unlock()
	for _, p := range ps {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
	}
	for _, p := range ps {
		p.WaitExit(3 * time.Second)
	}
}

// ---- ports -------------------------------------------------------------------

// freePort returns a port in [20000,32000) (below Linux's ephemeral range, so
// outgoing connections never take it) that is free for both TCP and UDP on
// 127.0.0.1 and has not been handed out before in this run.
func (h *Harness) freePort() (int, error) {
	h.portMu.Lock()
	defer h.portMu.Unlock()
	for range 2000 {
		p := 20000 + rand.IntN(12000)
		if h.usedPorts[p] {
			continue
		}
		tl, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		ul, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
		tl.Close()
		if err != nil {
			continue
		}
		ul.Close()
		h.usedPorts[p] = true
		return p, nil
	}
	return 0, errors.New("no free port found")
}

// waitTCP waits until something accepts TCP connections on 127.0.0.1:port.
func waitTCP(ctx context.Context, port int, d time.Duration, p *Proc) error {
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if p != nil && p.Exited() {
			return fmt.Errorf("%s exited before listening on %d (%v); log %s", p.Name, port, p.err, p.Log)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("port %d not accepting after %v", port, d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ---- /proc -------------------------------------------------------------------

// procCPUTicks returns utime+stime of pid in clock ticks (USER_HZ = 100).
func procCPUTicks(pid int) (int64, error) {
	u, s, err := procUserSys(pid)
	return u + s, err
}

// procUserSys returns utime and stime of pid in clock ticks.
func procUserSys(pid int) (int64, int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, errors.New("bad /proc stat")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, 0, errors.New("short /proc stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, errors.New("bad utime/stime")
	}
	return ut, st, nil
}

const userHZ = 100

// procRSSAnon returns RssAnon of pid in bytes: its private memory, without
// the pages of the binary that every process of it shares.
func procRSSAnon(pid int) (int64, error) { return procStatusKB(pid, "RssAnon:") }

// procRSS returns VmRSS of pid in bytes.
func procRSS(pid int) (int64, error) { return procStatusKB(pid, "VmRSS:") }

// procStatusKB returns the /proc/pid/status field key (in kB) in bytes.
func procStatusKB(pid int, key string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, key) {
			f := strings.Fields(l)
			if len(f) >= 2 {
				kb, err := strconv.ParseInt(f[1], 10, 64)
				return kb * 1024, err
			}
		}
	}
	return 0, errors.New("no " + key)
}

// ---- JSON line parsing -----------------------------------------------------

// parseTime accepts unix nanoseconds (integer or float), a numeric string, or
// an RFC 3339 string.
func parseTime(raw json.RawMessage) (int64, bool) {
	if len(raw) == 0 {
		return 0, false
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil {
		if i, err := n.Int64(); err == nil {
			return i, true
		}
		if f, err := n.Float64(); err == nil {
			return int64(f), true
		}
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return i, true
		}
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t.UnixNano(), true
		}
	}
	return 0, false
}
