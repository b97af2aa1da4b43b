// Command mlnode runs one hashicorp/memberlist node as a process and speaks
// the same line protocol as meshell's script mode, so the benchmark harness can
// drive both the same way.
//
//	mlnode --alias A --port P [--ip IP] [--join HOST:PORT] [--config default|fast]
//
// stdout: one JSON line per membership event
//
//	{"time":"<RFC 3339>","event":"member-join|member-leave|member-failed|member-alive|member-update|member-suspect","alias":"<alias>"}
//
// memberlist has no suspicion callback: member-suspect comes from polling
// the members' internal state every 5 ms (see watchSuspects).
//
// stdin: "!events on --json" (no-op), "!status <alias> --json" (prints
// {"alias","bytes_sent","rss_bytes"}), "!echo TEXT", "!join_cluster HOST:PORT",
// "!quit" (Leave(5s)+Shutdown, exit 0). Other lines are ignored.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/hashicorp/memberlist"
)

// ---- byte-counting transport ----------------------------------------------

// countingTransport wraps memberlist's NetTransport and counts every byte the
// node writes: UDP packets (WriteTo/WriteToAddress) and TCP streams, both
// dialed (DialTimeout/DialAddressTimeout) and accepted (StreamCh; memberlist
// answers push/pull and fallback pings on accepted conns).
type countingTransport struct {
	*memberlist.NetTransport
	sent     atomic.Uint64
	streamCh chan net.Conn
}

var _ memberlist.NodeAwareTransport = (*countingTransport)(nil)

func newCountingTransport(nt *memberlist.NetTransport) *countingTransport {
	t := &countingTransport{NetTransport: nt, streamCh: make(chan net.Conn)}
	go func() {
		for c := range nt.StreamCh() {
			t.streamCh <- &countingConn{Conn: c, n: &t.sent}
		}
	}()
	return t
}

func (t *countingTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	ts, err := t.NetTransport.WriteTo(b, addr)
	if err == nil {
		t.sent.Add(uint64(len(b)))
	}
	return ts, err
}

func (t *countingTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	ts, err := t.NetTransport.WriteToAddress(b, a)
	if err == nil {
		t.sent.Add(uint64(len(b)))
	}
	return ts, err
}

func (t *countingTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	c, err := t.NetTransport.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, n: &t.sent}, nil
}

func (t *countingTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	c, err := t.NetTransport.DialAddressTimeout(a, timeout)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, n: &t.sent}, nil
}

func (t *countingTransport) StreamCh() <-chan net.Conn { return t.streamCh }

type countingConn struct {
	net.Conn
	n *atomic.Uint64
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.n.Add(uint64(n))
	return n, err
}

// ---- event output ---------------------------------------------------------

type printer struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func (p *printer) line(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	p.text(string(b))
}

func (p *printer) text(b string) {
	p.mu.Lock()
	p.w.WriteString(b)
	p.w.WriteByte('\n')
	p.w.Flush()
	p.mu.Unlock()
}

type eventOut struct {
	T      string `json:"time"` // RFC 3339, UTC, microseconds: meshell's format
	Event  string `json:"event"`
	Member string `json:"alias"`
}

type events struct {
	self   string
	out    *printer
	mu     sync.Mutex
	failed map[string]bool
}

func (e *events) emit(kind, member string) {
	e.out.line(eventOut{T: time.Now().UTC().Format("2006-01-02T15:04:05.000000Z07:00"), Event: kind, Member: member})
}

func (e *events) NotifyJoin(n *memberlist.Node) {
	if n.Name == e.self {
		return
	}
	e.mu.Lock()
	wasFailed := e.failed[n.Name]
	delete(e.failed, n.Name)
	e.mu.Unlock()
	if wasFailed {
		e.emit("member-alive", n.Name)
	} else {
		e.emit("member-join", n.Name)
	}
}

// nodeStateMirror mirrors memberlist v0.7.0's unexported nodeState, whose
// first field is the Node that NotifyLeave receives a pointer to.
//
// memberlist never fills in Node.State: deadNode sets nodeState.State
// (StateLeft when the node announced its own death, i.e. left gracefully,
// StateDead otherwise) and then calls NotifyLeave(&state.Node) with its
// nodeLock held. So the only way to tell a failure from a leave inside the
// callback is to read the enclosing nodeState. The layout is pinned by
// go.mod (memberlist v0.7.0); the sanity check below falls back to Node.State.
type nodeStateMirror struct {
	memberlist.Node
	Incarnation uint32
	State       memberlist.NodeStateType
	StateChange time.Time
}

func leaveState(n *memberlist.Node) memberlist.NodeStateType {
	if n.State == memberlist.StateDead || n.State == memberlist.StateLeft {
		return n.State // a future memberlist that fills it in
	}
	st := (*nodeStateMirror)(unsafe.Pointer(n)).State
	if st == memberlist.StateDead || st == memberlist.StateLeft {
		return st
	}
	return memberlist.StateDead
}

func (e *events) NotifyLeave(n *memberlist.Node) {
	if n.Name == e.self {
		return
	}
	kind := "member-leave"
	if leaveState(n) == memberlist.StateDead {
		kind = "member-failed"
		e.mu.Lock()
		e.failed[n.Name] = true
		e.mu.Unlock()
	}
	e.emit(kind, n.Name)
}

func (e *events) NotifyUpdate(n *memberlist.Node) {
	if n.Name == e.self {
		return
	}
	e.emit("member-update", n.Name)
}

// watchSuspects emits member-suspect when a member's internal state turns
// suspect, and member-alive when it is alive again (refuted). It reads nodeState without memberlist's lock (a benign race for
// a benchmark anchor: one aligned word); a suspicion shorter than the 5 ms
// poll can be missed.
func watchSuspects(ml *memberlist.Memberlist, self string, e *events) {
	suspect := map[string]bool{}
	for range time.Tick(5 * time.Millisecond) {
		now := map[string]bool{}
		for _, n := range ml.Members() {
			if n.Name == self {
				continue
			}
			switch st := (*nodeStateMirror)(unsafe.Pointer(n)).State; {
			case st == memberlist.StateSuspect:
				now[n.Name] = true
				if !suspect[n.Name] {
					e.emit("member-suspect", n.Name)
				}
			case st == memberlist.StateAlive && suspect[n.Name]:
				e.emit("member-alive", n.Name) // refuted
			}
		}
		suspect = now
	}
}

// ---- main -----------------------------------------------------------------

func rssBytes() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				kb, _ := strconv.ParseUint(f[1], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

func main() {
	alias := flag.String("alias", "", "node name (required)")
	port := flag.Int("port", 0, "UDP+TCP port (required)")
	ip := flag.String("ip", "127.0.0.1", "address to bind and advertise")
	join := flag.String("join", "", "HOST:PORT of a node to join")
	profile := flag.String("config", "default", "default (DefaultLANConfig) | fast (meshell's lan timings: 250ms probe, 100ms probe timeout, suspicion mult 3; 200ms gossip)")
	quiet := flag.Bool("quiet", false, "discard memberlist's log output (default: stderr)")
	flag.Parse()
	if *alias == "" || *port == 0 {
		fmt.Fprintln(os.Stderr, "mlnode: --alias and --port are required")
		os.Exit(2)
	}

	conf := memberlist.DefaultLANConfig()
	switch *profile {
	case "default":
	case "fast":
		conf.ProbeInterval = 250 * time.Millisecond
		conf.ProbeTimeout = 100 * time.Millisecond
		conf.GossipInterval = 200 * time.Millisecond
		conf.SuspicionMult = 3
	default:
		fmt.Fprintf(os.Stderr, "mlnode: unknown --config %q\n", *profile)
		os.Exit(2)
	}
	var logOut io.Writer = os.Stderr
	if *quiet {
		logOut = io.Discard
	}
	logger := log.New(logOut, *alias+" ", log.LstdFlags|log.Lmicroseconds)

	conf.Name = *alias
	conf.BindAddr = *ip
	conf.BindPort = *port
	conf.AdvertiseAddr = *ip
	conf.AdvertisePort = *port
	conf.Logger = logger

	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{*ip},
		BindPort:  *port,
		Logger:    logger,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "mlnode: transport:", err)
		os.Exit(1)
	}
	tr := newCountingTransport(nt)
	conf.Transport = tr

	out := &printer{w: bufio.NewWriter(os.Stdout)}
	conf.Events = &events{self: *alias, out: out, failed: map[string]bool{}}

	ml, err := memberlist.Create(conf)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mlnode: create:", err)
		os.Exit(1)
	}
	go watchSuspects(ml, *alias, conf.Events.(*events))
	if *join != "" {
		// Retry briefly: the harness may start us a moment before the seed
		// accepts connections.
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, err = ml.Join([]string{*join})
			if err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "mlnode: join:", err)
		}
	}

	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "!echo":
			out.text(strings.Join(f[1:], " "))
		case "!join_cluster":
			if len(f) < 2 {
				continue
			}
			go func(addr string) {
				if _, err := ml.Join([]string{addr}); err != nil {
					fmt.Fprintln(os.Stderr, "mlnode: join:", err)
				}
			}(f[1])
		case "!quit":
			if err := ml.Leave(5 * time.Second); err != nil {
				fmt.Fprintln(os.Stderr, "mlnode: leave:", err)
			}
			ml.Shutdown()
			os.Exit(0)
		case "!status":
			if len(f) >= 2 && f[1] != *alias {
				continue
			}
			out.line(map[string]any{
				"alias":      *alias,
				"bytes_sent": tr.sent.Load(),
				"rss_bytes":  rssBytes(),
				"members":    ml.NumMembers(),
			})
		}
	}
	// stdin closed: the driving harness is gone; exit rather than linger.
	ml.Shutdown()
	os.Exit(0)
}
