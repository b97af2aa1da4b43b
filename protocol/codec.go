package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// MaxFrameSize is the largest frame accepted or produced (type byte and body).
// A length prefix above it closes the connection before anything is allocated.
const MaxFrameSize = 4 << 20

// Decoder limits, behind scan's: every declared length is already checked
// against the bytes left and the type's caps, so a collection is made at its
// declared size (no growth garbage) up to maxInitLen elements; maxDepth is a
// second bound on recursion.
const (
	maxInitLen = MaxMembersPerFrame
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
	if p, ok := m.(*Prepared); ok {
		return append(dst, p.frame...), nil
	}
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

// Prepared is a message encoded once, to be sent to many peers: the
// encoders of their connections copy its frame instead of encoding it again.
type Prepared struct {
	t     MsgType
	frame []byte
}

// Prepare encodes m for sending to many peers.
func Prepare(m Message) (*Prepared, error) {
	f, err := Frame(m)
	if err != nil {
		return nil, err
	}
	return &Prepared{t: m.Type(), frame: f}, nil
}

// Type is the type of the prepared message.
func (p *Prepared) Type() MsgType { return p.t }

// Frame returns m as one complete frame in a new slice.
func Frame(m Message) ([]byte, error) {
	e := frameEncoders.Get().(*Encoder)
	f, err := e.AppendFrame(nil, m)
	if cap(e.buf) <= maxPooledBuf { // a large frame's buffer is not kept
		frameEncoders.Put(e)
	}
	return f, err
}

// frameEncoders serve Frame: it runs for every message sent to many members
// (Prepare), and a new encoder costs a few allocations each time.
var frameEncoders = sync.Pool{New: func() any { return NewEncoder() }}

// maxPooledBuf is the largest scratch buffer a pooled encoder keeps.
const maxPooledBuf = 64 << 10

// Decoder turns frame bodies into messages. It is not safe for concurrent
// use: each connection's reader owns one.
type Decoder struct {
	dec *codec.Decoder
}

// NewDecoder returns a decoder with the project's limits set.
func NewDecoder() *Decoder {
	return &Decoder{dec: codec.NewDecoderBytes(nil, handle)}
}

// Decode decodes a frame payload (type byte and body) into a new message of
// any known type. It is DecodeOnly with every type allowed.
func (d *Decoder) Decode(payload []byte) (Message, error) {
	return d.DecodeOnly(payload, nil)
}

// DecodeOnly decodes a frame payload whose type allowed accepts (nil allows
// every known type). Everything that can be checked before decoding is: the
// type byte, the frame's size for that type and the body's msgpack shape
// (scan). The decoded message is then checked by Validate.
func (d *Decoder) DecodeOnly(payload []byte, allowed func(MsgType) bool) (Message, error) {
	if len(payload) == 0 {
		return nil, errors.New("protocol: empty frame")
	}
	t := MsgType(payload[0])
	lim, ok := limitsOf(t)
	if !ok {
		return nil, fmt.Errorf("protocol: unknown message type %d", payload[0])
	}
	if allowed != nil && !allowed(t) {
		return nil, fmt.Errorf("protocol: %s: %w", t, ErrUnexpectedType)
	}
	if len(payload) > lim.frame {
		return nil, fmt.Errorf("protocol: %s of %d bytes: %w of %d bytes", t, len(payload), ErrFrameTooLarge, lim.frame)
	}
	body := payload[1:]
	if err := scan(body, lim); err != nil {
		return nil, fmt.Errorf("protocol: %s: %w", t, err)
	}
	m := New(t)
	d.dec.ResetBytes(body)
	if err := d.dec.Decode(m); err != nil {
		return nil, fmt.Errorf("protocol: decode %s: %w", t, err)
	}
	if err := Validate(m); err != nil {
		return nil, err
	}
	return m, nil
}

// IsHandshake reports whether t is one of the handshake messages (Hello,
// HelloAck, Join, JoinAck): each is allowed only as a connection's first
// frame in its direction.
func IsHandshake(t MsgType) bool {
	switch t {
	case TypeHello, TypeHelloAck, TypeJoin, TypeJoinAck:
		return true
	}
	return false
}

// AfterHandshake reports whether t may arrive on an established connection:
// any known type but the handshake ones.
func AfterHandshake(t MsgType) bool {
	_, known := limitsOf(t)
	return known && !IsHandshake(t)
}

// Only returns a DecodeOnly filter that allows exactly types.
func Only(types ...MsgType) func(MsgType) bool {
	var set [256]bool
	for _, t := range types {
		set[t] = true
	}
	return func(t MsgType) bool { return set[t] }
}
