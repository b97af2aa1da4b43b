package protocol

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"
)

const (
	// smallFrame is the largest frame read without a reservation from the
	// budget.
	smallFrame = 64 << 10
	// firstBuf is the most a frame's buffer starts with; it doubles as
	// received bytes fill it, up to the frame's length. It is also the
	// largest buffer a reader keeps between frames: thousands of idle
	// connections that each once read a bigger frame hold nothing more.
	firstBuf = 4 << 10
)

// ErrBudget is wrapped by FrameReader errors when a frame's buffer could not
// grow within the shared Budget.
var ErrBudget = errors.New("process-wide limit on bytes held by partly read frames reached")

// Budget bounds the bytes held by frames larger than 64 KiB across all the
// readers that share it, so that many peers each sending part of a large
// frame cannot exhaust memory. It is safe for concurrent use.
type Budget struct {
	limit int64
	used  atomic.Int64
}

// NewBudget returns a budget of limit bytes.
func NewBudget(limit int64) *Budget { return &Budget{limit: limit} }

// Used returns the bytes reserved now.
func (b *Budget) Used() int64 { return b.used.Load() }

// Limit returns the budget's size in bytes.
func (b *Budget) Limit() int64 { return b.limit }

func (b *Budget) reserve(n int64) bool {
	for {
		u := b.used.Load()
		if u+n > b.limit {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

func (b *Budget) release(n int64) {
	if b != nil && n != 0 {
		b.used.Add(-n)
	}
}

// FrameOptions configure a FrameReader. The zero value is NewFrameReader's
// behaviour: frames up to MaxFrameSize, no budget, no deadline.
type FrameOptions struct {
	Max    int     // largest frame accepted; MaxFrameSize if <= 0 or above it
	Budget *Budget // shared by the readers of a process; nil for none
	// Deadline sets the connection's read deadline (net.Conn's
	// SetReadDeadline); the zero time clears it. With FrameTimeout it
	// bounds how long a started frame may take to arrive.
	Deadline     func(time.Time) error
	FrameTimeout time.Duration
	Now          func() time.Time // clock for deadlines; time.Now if nil
}

// FrameReader reads frames from a stream. The returned payload is valid only
// until the next call to Next. After an error the stream is out of step:
// close the connection.
type FrameReader struct {
	r        *bufio.Reader
	opts     FrameOptions
	buf      []byte
	reserved atomic.Int64 // bytes of buf held from opts.Budget; Release may run concurrently
	armed    bool         // Next set a frame deadline
}

// NewFrameReader reads frames of at most max bytes (MaxFrameSize if max <= 0).
func NewFrameReader(r io.Reader, max int) *FrameReader {
	return NewFrameReaderOpts(r, FrameOptions{Max: max})
}

// NewFrameReaderOpts reads frames with opts.
func NewFrameReaderOpts(r io.Reader, opts FrameOptions) *FrameReader {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 32<<10)
	}
	f := &FrameReader{r: br, opts: opts}
	f.SetMax(opts.Max)
	return f
}

// SetMax changes the largest frame accepted (MaxFrameSize if max <= 0), e.g.
// MaxHandshakeFrame for a connection's first frame and MaxFrameSize after.
// Call it between calls to Next.
func (f *FrameReader) SetMax(max int) {
	if max <= 0 || max > MaxFrameSize {
		max = MaxFrameSize
	}
	f.opts.Max = max
}

// SetFrameTimeout changes the time a started frame has to arrive (0 for no
// frame deadline), e.g. to enable it once a handshake with its own deadline
// is over. Call it between calls to Next.
func (f *FrameReader) SetFrameTimeout(d time.Duration) { f.opts.FrameTimeout = d }

// Release returns the reader's reservation to the budget; call it when the
// connection closes. It is safe to call concurrently with Next, which fails
// once its connection is closed.
func (f *FrameReader) Release() {
	f.opts.Budget.release(f.reserved.Swap(0))
}

// Next returns the next frame's payload: the type byte followed by the body.
// The length is checked before anything is allocated, and the buffer grows
// only as the frame's bytes arrive.
func (f *FrameReader) Next() ([]byte, error) {
	if cap(f.buf) > firstBuf || f.reserved.Load() != 0 {
		f.drop() // the last frame was large: an idle connection keeps no big buffer
	}
	c, err := f.r.ReadByte() // waiting for a frame's first byte has no deadline: idle is fine
	if err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("protocol: reading a frame: %w", err)
	}
	n, err := f.length(c)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, errors.New("protocol: empty frame")
	}
	if n > uint64(f.opts.Max) {
		return nil, fmt.Errorf("protocol: frame of %d bytes: %w of %d bytes", n, ErrFrameTooLarge, f.opts.Max)
	}
	p, err := f.payload(int(n))
	if err != nil {
		f.drop()
		return nil, err
	}
	if f.armed {
		f.armed = false
		if err := f.opts.Deadline(time.Time{}); err != nil {
			return nil, fmt.Errorf("protocol: clear read deadline: %w", err)
		}
	}
	return p, nil
}

// length reads the rest of a uvarint length prefix whose first byte is c.
func (f *FrameReader) length(c byte) (uint64, error) {
	x, s := uint64(c&0x7f), uint(7)
	for i := 1; c >= 0x80; i++ {
		if i == binary.MaxVarintLen64 {
			return 0, errors.New("protocol: bad length prefix: varint overflows a 64-bit integer")
		}
		if err := f.expect(1); err != nil {
			return 0, err
		}
		var err error
		if c, err = f.r.ReadByte(); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, fmt.Errorf("protocol: truncated length prefix: %w", err)
		}
		if i == binary.MaxVarintLen64-1 && c > 1 {
			return 0, errors.New("protocol: bad length prefix: varint overflows a 64-bit integer")
		}
		x |= uint64(c&0x7f) << s
		s += 7
	}
	return x, nil
}

// payload reads a frame's n bytes into f.buf, growing it by doubling as the
// bytes arrive; a frame above smallFrame holds its buffer from the budget.
func (f *FrameReader) payload(n int) ([]byte, error) {
	if err := f.expect(n); err != nil {
		return nil, err
	}
	large := n > smallFrame && f.opts.Budget != nil
	buf := f.buf[:0]
	if large {
		if err := f.hold(n, cap(buf)); err != nil {
			return nil, err
		}
	}
	for len(buf) < n {
		if len(buf) == cap(buf) {
			c := min(max(2*cap(buf), firstBuf), n)
			if large {
				if err := f.hold(n, c); err != nil {
					return nil, err
				}
			}
			nb := make([]byte, len(buf), c)
			copy(nb, buf)
			buf, f.buf = nb, nb
		}
		m, err := f.r.Read(buf[len(buf):min(cap(buf), n)])
		buf = buf[:len(buf)+m]
		if err != nil && len(buf) < n {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("protocol: truncated frame of %d bytes: %w", n, err)
		}
	}
	f.buf = buf
	return buf, nil
}

// hold makes the reservation match a buffer of c bytes for a frame of n.
func (f *FrameReader) hold(n, c int) error {
	d := int64(c) - f.reserved.Load()
	if d <= 0 {
		return nil
	}
	if !f.opts.Budget.reserve(d) {
		return fmt.Errorf("protocol: frame of %d bytes: %w (%d bytes)", n, ErrBudget, f.opts.Budget.limit)
	}
	f.reserved.Add(d)
	return nil
}

// drop forgets the buffer and returns its reservation.
func (f *FrameReader) drop() {
	f.buf = nil
	f.Release()
}

// expect sets the frame deadline before a read that may block: the frame
// has started and fewer than rest of its bytes are buffered.
func (f *FrameReader) expect(rest int) error {
	if f.armed || f.opts.Deadline == nil || f.opts.FrameTimeout <= 0 || f.r.Buffered() >= rest {
		return nil
	}
	if err := f.opts.Deadline(f.opts.Now().Add(f.opts.FrameTimeout)); err != nil {
		return fmt.Errorf("protocol: set read deadline: %w", err)
	}
	f.armed = true
	return nil
}
