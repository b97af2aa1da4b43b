package metrics

import (
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds of the endpoint: it may be bound beyond loopback, so a client
// that is slow, idle or greedy costs at most these.
const (
	ReadHeaderTimeout = 5 * time.Second  // a request's headers must arrive within it
	WriteTimeout      = 10 * time.Second // an answer must be taken within it
	IdleTimeout       = 30 * time.Second // an idle keep-alive connection is closed after it
	MaxHeaderBytes    = 8 << 10          // a scrape sends a few hundred
	MaxConns          = 64               // connections open at once; more wait in the backlog
	MaxConnsPerIP     = 8                // of MaxConns, from one address: one client cannot hold them all and lock other scrapers out
	MaxScrapes        = 4                // renders at once; more are answered 503 at once
)

// Server answers GET /metrics with what render writes.
type Server struct {
	srv  *http.Server
	ln   *limitListener
	done chan struct{}
}

// Serve listens on addr and answers GET (and HEAD) /metrics with what
// render writes, until Close. render runs on the scrape's goroutine, at
// most MaxScrapes at once.
func Serve(addr string, render func(w *Writer)) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{ln: newLimitListener(ln, MaxConns, MaxConnsPerIP), done: make(chan struct{})}
	s.srv = &http.Server{
		Handler:           Handler(render),
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadHeaderTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          log.New(io.Discard, "", 0), // what a client can make it say is not logged
	}
	go func() {
		defer close(s.done)
		s.srv.Serve(s.ln)
	}()
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// RefusedConns is how many connections were closed on accept because their
// address held MaxConnsPerIP already. They are counted, not logged: a client
// can cause them.
func (s *Server) RefusedConns() uint64 { return s.ln.refused.Load() }

// Close stops the server and its connections and waits for it.
func (s *Server) Close() error {
	err := s.srv.Close()
	<-s.done
	return err
}

// Handler answers GET and HEAD /metrics with what render writes; any other
// path is 404 and any other method 405. Beyond MaxScrapes renders at once
// it answers 503.
func Handler(render func(w *Writer)) http.Handler {
	sem := make(chan struct{}, MaxScrapes)
	pool := sync.Pool{New: func() any { return &Writer{} }}
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.Error(rw, "not found: the only path is /metrics", http.StatusNotFound)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			rw.Header().Set("Allow", "GET, HEAD")
			http.Error(rw, "method not allowed: use GET", http.StatusMethodNotAllowed)
			return
		}
		select {
		case sem <- struct{}{}:
			defer func() { <-sem }()
		default:
			http.Error(rw, "too many scrapes at once; retry", http.StatusServiceUnavailable)
			return
		}
		w := pool.Get().(*Writer)
		defer pool.Put(w)
		w.Reset()
		render(w)
		rw.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		if r.Method == http.MethodGet {
			rw.Write(w.Bytes())
		}
	})
}

// limitListener holds at most cap(sem) connections open at once, and at
// most perIP from one remote address: one beyond that is closed as soon
// as it is accepted, so it takes no slot. Past the total, Accept waits.
type limitListener struct {
	net.Listener
	sem     chan struct{}
	perIP   int
	refused atomic.Uint64 // connections closed on accept for their address

	mu   sync.Mutex
	open map[string]int // connections open by remote address; no zero entries
}

func newLimitListener(ln net.Listener, total, perIP int) *limitListener {
	return &limitListener{Listener: ln, sem: make(chan struct{}, total), perIP: perIP, open: make(map[string]int)}
}

func (l *limitListener) Accept() (net.Conn, error) {
	l.sem <- struct{}{}
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			<-l.sem
			return nil, err
		}
		ip := remoteIP(c)
		l.mu.Lock()
		ok := l.open[ip] < l.perIP
		if ok {
			l.open[ip]++
		}
		l.mu.Unlock()
		if !ok {
			l.refused.Add(1)
			c.Close()
			continue // the slot taken above serves the next connection
		}
		return &limitConn{Conn: c, release: func() { l.release(ip) }}, nil
	}
}

func (l *limitListener) release(ip string) {
	l.mu.Lock()
	if l.open[ip]--; l.open[ip] <= 0 {
		delete(l.open, ip)
	}
	l.mu.Unlock()
	<-l.sem
}

// remoteIP is the address c comes from, without its port; an IPv4 address
// mapped into IPv6 counts as the IPv4 address.
func remoteIP(c net.Conn) string {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap().String()
	}
	if host, _, err := net.SplitHostPort(c.RemoteAddr().String()); err == nil {
		return host
	}
	return c.RemoteAddr().String()
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
