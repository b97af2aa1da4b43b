package protocol

import (
	"reflect"
	"testing"
)

// decodeSeeds are payloads of every sample and real message, and of the
// hostile shapes, cut to at most max bytes.
func decodeSeeds(f *testing.F, max int) {
	for _, m := range samples() {
		f.Add(payloadOf(f, m))
	}
	for _, m := range realMessages() {
		if p := payloadOf(f, m); len(p) <= max {
			f.Add(p)
		}
	}
	for _, p := range [][]byte{emptyMembersAck(max), memberList(4, 64, true), memberList(2, 3, false), {byte(TypeHello), 0x94, 0x01, 0xa1, 'c', 0x90, 0x00}} {
		f.Add(p[:min(len(p), max)])
	}
}

var handshakeIn = Only(TypeHello, TypeJoin)

func FuzzDecodeHandshake(f *testing.F) {
	decodeSeeds(f, MaxHandshakeFrame)
	dec := NewDecoder()
	f.Fuzz(func(t *testing.T, payload []byte) {
		if len(payload) > MaxHandshakeFrame {
			return // the reader refuses a larger first frame
		}
		// A connection's first frame as the acceptor reads it: only Hello
		// or Join, decoded for little more than its size.
		var m Message
		var err error
		got := allocated(func() { m, err = dec.DecodeOnly(payload, handshakeIn) })
		if err == nil && !IsHandshake(m.Type()) {
			t.Fatalf("%s decoded as a first frame", m.Type())
		}
		if limit := 2*uint64(len(payload)) + 32<<10; got > limit {
			t.Fatalf("first frame of %d bytes: %d bytes allocated, limit %d", len(payload), got, limit)
		}
		// The dialer's read of the answer: any handshake message. A
		// HelloAck may carry many members, so the bound is looser.
		got = allocated(func() { m, err = dec.DecodeOnly(payload, IsHandshake) })
		if err == nil && !IsHandshake(m.Type()) {
			t.Fatalf("%s decoded as a handshake answer", m.Type())
		}
		if limit := 96*uint64(len(payload)) + 64<<10; got > limit {
			t.Fatalf("answer of %d bytes: %d bytes allocated, limit %d", len(payload), got, limit)
		}
	})
}

func FuzzDecode(f *testing.F) {
	decodeSeeds(f, 1<<16)
	dec := NewDecoder()
	enc := NewEncoder()
	f.Fuzz(func(t *testing.T, payload []byte) {
		var m Message
		var err error
		got := allocated(func() { m, err = dec.Decode(payload) })
		if limit := 96*uint64(len(payload)) + 64<<10; got > limit {
			t.Fatalf("payload of %d bytes: %d bytes allocated, limit %d", len(payload), got, limit)
		}
		if err != nil {
			return
		}
		if err := Validate(m); err != nil {
			t.Fatalf("decoded %s fails Validate: %v", m.Type(), err)
		}
		// What decodes is valid, and encodes to what decodes the same.
		frame, err := enc.AppendFrame(nil, m)
		if err != nil {
			t.Fatalf("decoded %s does not encode: %v", m.Type(), err)
		}
		again, err := dec.Decode(frame[uvarintLen(frame):])
		if err != nil {
			t.Fatalf("re-encoded %s does not decode: %v", m.Type(), err)
		}
		if !reflect.DeepEqual(again, m) {
			t.Fatalf("re-encoding changed the message:\n got %#v\nwant %#v", again, m)
		}
	})
}

func uvarintLen(b []byte) int {
	for i, c := range b {
		if c < 0x80 {
			return i + 1
		}
	}
	return len(b)
}
