package protocol

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// MaxFrameSize is the largest frame accepted or produced (type byte and body).
// A length prefix above it closes the connection before anything is allocated.
const MaxFrameSize = 4 << 20

// Decoder limits: a hostile length inside the body cannot make the decoder
// allocate more than maxInitLen elements up front, nor recurse deeper than
// maxDepth.
const (
	maxInitLen = 256
	maxDepth   = 16
)

// ErrFrameTooLarge is wrapped by errors about oversized frames.
var ErrFrameTooLarge = errors.New("frame exceeds limit")

// handle is the one msgpack configuration of the project. Structs travel as
// arrays (compact, append-only evolution); strings as msgpack str.
var handle = func() *codec.MsgpackHandle {
	h := &codec.MsgpackHandle{}
	h.WriteExt = true
	h.StructToArray = true
	h.RawToString = true
	h.MaxInitLen = maxInitLen
	h.MaxDepth = maxDepth
	return h
}()

// Encoder appends frames to a byte slice. It is not safe for concurrent use:
// each connection's writer owns one.
type Encoder struct {
	buf []byte
	enc *codec.Encoder
}

// NewEncoder returns an encoder with an empty scratch buffer.
func NewEncoder() *Encoder {
	e := &Encoder{}
	e.enc = codec.NewEncoderBytes(&e.buf, handle)
	return e
}

// AppendFrame appends one frame holding m to dst and returns the extended
// slice. A message whose encoding exceeds MaxFrameSize is an error and dst is
// returned unchanged.
func (e *Encoder) AppendFrame(dst []byte, m Message) ([]byte, error) {
	e.enc.ResetBytes(&e.buf) // encodes from e.buf[:0], reusing its capacity
	if err := e.enc.Encode(m); err != nil {
		return dst, fmt.Errorf("protocol: encode %s: %w", m.Type(), err)
	}
	n := len(e.buf) + 1
	if n > MaxFrameSize {
		return dst, fmt.Errorf("protocol: %s of %d bytes: %w of %d bytes", m.Type(), n, ErrFrameTooLarge, MaxFrameSize)
	}
	dst = binary.AppendUvarint(dst, uint64(n))
	dst = append(dst, byte(m.Type()))
	return append(dst, e.buf...), nil
}

// Frame returns m as one complete frame in a new slice.
func Frame(m Message) ([]byte, error) {
	return NewEncoder().AppendFrame(nil, m)
}

// Decoder turns frame bodies into messages. It is not safe for concurrent
// use: each connection's reader owns one.
type Decoder struct {
	dec *codec.Decoder
}

// NewDecoder returns a decoder with the project's limits set.
func NewDecoder() *Decoder {
	return &Decoder{dec: codec.NewDecoderBytes(nil, handle)}
}

// Decode decodes a frame payload (type byte and body) into a new message.
func (d *Decoder) Decode(payload []byte) (Message, error) {
	if len(payload) == 0 {
		return nil, errors.New("protocol: empty frame")
	}
	t := MsgType(payload[0])
	m := New(t)
	if m == nil {
		return nil, fmt.Errorf("protocol: unknown message type %d", payload[0])
	}
	d.dec.ResetBytes(payload[1:])
	if err := d.dec.Decode(m); err != nil {
		return nil, fmt.Errorf("protocol: decode %s: %w", t, err)
	}
	return m, nil
}

// FrameReader reads frames from a stream. The returned payload is valid only
// until the next call to Next.
type FrameReader struct {
	r   *bufio.Reader
	max int
	buf []byte
}

// NewFrameReader reads frames of at most max bytes (MaxFrameSize if max <= 0).
func NewFrameReader(r io.Reader, max int) *FrameReader {
	if max <= 0 || max > MaxFrameSize {
		max = MaxFrameSize
	}
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 32<<10)
	}
	return &FrameReader{r: br, max: max}
}

// Next returns the next frame's payload: the type byte followed by the body.
// The length is checked before the payload buffer grows.
func (f *FrameReader) Next() ([]byte, error) {
	n, err := binary.ReadUvarint(f.r)
	if err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("protocol: truncated length prefix: %w", err)
		}
		return nil, fmt.Errorf("protocol: bad length prefix: %w", err)
	}
	if n == 0 {
		return nil, errors.New("protocol: empty frame")
	}
	if n > uint64(f.max) {
		return nil, fmt.Errorf("protocol: frame of %d bytes: %w of %d bytes", n, ErrFrameTooLarge, f.max)
	}
	if cap(f.buf) < int(n) {
		f.buf = make([]byte, n)
	}
	f.buf = f.buf[:n]
	if _, err := io.ReadFull(f.r, f.buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("protocol: truncated frame of %d bytes: %w", n, err)
	}
	return f.buf, nil
}

// Buffered reports how many bytes are already read from the stream but not
// yet returned; a reader uses it to decide whether to flush replies now.
func (f *FrameReader) Buffered() int { return f.r.Buffered() }
