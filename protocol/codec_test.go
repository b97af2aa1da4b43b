package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

func sampleMember() Member {
	return Member{Alias: "n1", Addr: "127.0.0.1:7001", State: StateSuspect, Incarnation: 7, Tags: map[string]string{"role": "worker"}}
}

// samples holds one populated value of every message type.
func samples() []Message {
	m := sampleMember()
	return []Message{
		&Hello{Version: Version, Cluster: "c", From: m},
		&HelloAck{Version: Version, Cluster: "c", From: m, Members: []Member{m, {Alias: "n2", Addr: "127.0.0.1:7002", State: StateAlive}}},
		&HelloAck{Version: Version, Cluster: "c", Error: "refused"},
		&Join{Version: Version, Cluster: "c", From: m},
		&JoinAck{Version: Version, Cluster: "c", From: m, Seen: []Member{m}},
		&Ping{Seq: 9, Updates: []Member{m}},
		&Ack{Seq: 9, Digest: 0xdeadbeef},
		&PingReq{Seq: 3, Target: "n3", Addr: "127.0.0.1:7003"},
		&Nack{Seq: 3, Refused: true},
		&Gossip{Updates: []Member{m, m}},
		&PushPull{Reply: true, Members: []Member{m}},
		&Leave{Alias: "n1", Incarnation: 4},
		&Control{ID: 1, Op: "scale", N: 8, Key: "k", Value: "v", Now: true},
		&ControlAck{ID: 1, Error: "no", Status: &NodeStatus{Alias: "n1", Slots: 2, Tags: map[string]string{"a": "b"}}},
		&JobRequest{ID: 1 << 40, Kind: "echo", Args: []string{"hi", "there"}, Attempt: 2, Timeout: 5e9},
		&JobChunk{ID: 5, Seq: 2, Data: "chunk"},
		&JobResult{ID: 5, Status: JobBusy, Result: "r", Error: "e"},
		&JobCancel{ID: 5},
	}
}

func TestRoundTripEveryMessage(t *testing.T) {
	enc, dec := NewEncoder(), NewDecoder()
	seen := map[MsgType]bool{}
	for _, m := range samples() {
		t.Run(m.Type().String(), func(t *testing.T) {
			frame, err := enc.AppendFrame(nil, m)
			if err != nil {
				t.Fatal(err)
			}
			payload, err := NewFrameReader(bytes.NewReader(frame), 0).Next()
			if err != nil {
				t.Fatal(err)
			}
			got, err := dec.Decode(payload)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, m) {
				t.Fatalf("round trip changed the message:\n got %#v\nwant %#v", got, m)
			}
			seen[m.Type()] = true
		})
	}
	for t2 := MsgType(1); t2 < 255; t2++ {
		if New(t2) != nil && !seen[t2] {
			t.Errorf("message type %s has no round-trip sample", t2)
		}
	}
}

func TestFamilies(t *testing.T) {
	cases := map[MsgType]Family{
		TypeHello: FamilyMembership, TypeLeave: FamilyMembership,
		TypeControl: FamilyControl, TypeControlAck: FamilyControl,
		TypeJobRequest: FamilyJobs, TypeJobCancel: FamilyJobs,
		100: FamilyEvents, 0: FamilyUnknown, 200: FamilyUnknown,
	}
	for typ, want := range cases {
		if got := typ.Family(); got != want {
			t.Errorf("%s: family %s, want %s", typ, got, want)
		}
	}
}

func TestFrameReaderSplitInput(t *testing.T) {
	enc := NewEncoder()
	var stream []byte
	for _, m := range samples() {
		var err error
		if stream, err = enc.AppendFrame(stream, m); err != nil {
			t.Fatal(err)
		}
	}
	// One byte per Read: every frame boundary and every length prefix is split.
	fr := NewFrameReader(iotest.OneByteReader(bytes.NewReader(stream)), 0)
	dec := NewDecoder()
	for i, want := range samples() {
		p, err := fr.Next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		got, err := dec.Decode(p)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("frame %d: got %#v, %v", i, got, err)
		}
	}
	if _, err := fr.Next(); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}

func TestFrameReaderShortInput(t *testing.T) {
	frame, _ := Frame(&Ping{Seq: 1})
	for cut := 1; cut < len(frame); cut++ {
		_, err := NewFrameReader(bytes.NewReader(frame[:cut]), 0).Next()
		if err == nil || err == io.EOF {
			t.Fatalf("cut at %d of %d: got %v, want a truncation error", cut, len(frame), err)
		}
	}
}

// countingReader fails the test if more than limit bytes are read: an
// oversized frame must be refused from its prefix alone.
type countingReader struct{ n int }

func (c *countingReader) Read(p []byte) (int, error) {
	c.n += len(p)
	for i := range p {
		p[i] = 0
	}
	return len(p), nil
}

func TestFrameReaderOversized(t *testing.T) {
	prefix := binary.AppendUvarint(nil, 3<<30)
	r := io.MultiReader(bytes.NewReader(prefix), &countingReader{})
	_, err := NewFrameReader(r, 0).Next()
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("got %v, want ErrFrameTooLarge", err)
	}
	if !strings.Contains(err.Error(), "3221225472") {
		t.Errorf("error does not name the size: %v", err)
	}
	_, err = NewFrameReader(bytes.NewReader(bytes.Repeat([]byte{0xff}, 20)), 0).Next()
	if err == nil {
		t.Fatal("an overlong uvarint was accepted")
	}
}

func TestEncodeRefusesOversizedMessage(t *testing.T) {
	big := &JobResult{Result: strings.Repeat("x", MaxFrameSize)}
	if _, err := Frame(big); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("got %v, want ErrFrameTooLarge", err)
	}
}

func TestDecodeRejectsGarbage(t *testing.T) {
	dec := NewDecoder()
	for name, p := range map[string][]byte{
		"empty":        {},
		"unknown type": {200, 0x90},
		"bad body":     {byte(TypeHello), 0xc1},
		"huge array":   {byte(TypeGossip), 0x91, 0xdd, 0xff, 0xff, 0xff, 0xff},
	} {
		if _, err := dec.Decode(p); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

func FuzzFrameDecode(f *testing.F) {
	enc := NewEncoder()
	for _, m := range samples() {
		fr, _ := enc.AppendFrame(nil, m)
		f.Add(fr)
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		fr := NewFrameReader(bytes.NewReader(data), 1<<16)
		dec := NewDecoder()
		for {
			p, err := fr.Next()
			if err != nil {
				return
			}
			m, err := dec.Decode(p)
			if err != nil {
				continue
			}
			// Whatever decodes must encode again.
			if _, err := Frame(m); err != nil && !errors.Is(err, ErrFrameTooLarge) {
				t.Fatalf("decoded %T does not re-encode: %v", m, err)
			}
		}
	})
}

func BenchmarkHelloEncodeDecode(b *testing.B) {
	hello := &Hello{Version: Version, Cluster: DefaultCluster, From: sampleMember()}
	enc, dec := NewEncoder(), NewDecoder()
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		var err error
		buf, err = enc.AppendFrame(buf[:0], hello)
		if err != nil {
			b.Fatal(err)
		}
		_, n := binary.Uvarint(buf)
		if _, err := dec.Decode(buf[n:]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkJobRequestEncodeDecode(b *testing.B) {
	req := &JobRequest{ID: 12345, Kind: "echo", Args: []string{strings.Repeat("x", 64)}}
	enc, dec := NewEncoder(), NewDecoder()
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = enc.AppendFrame(buf[:0], req)
		_, n := binary.Uvarint(buf)
		if _, err := dec.Decode(buf[n:]); err != nil {
			b.Fatal(err)
		}
	}
}

// TestPreparedFrameIsTheMessagesFrame: a message prepared once goes out as
// the frame its encoding gives, and decodes back to it.
func TestPreparedFrameIsTheMessagesFrame(t *testing.T) {
	m := &Gossip{Updates: benchTable().Members[:5], Direct: true}
	want, err := Frame(m)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Prepare(m)
	if err != nil {
		t.Fatal(err)
	}
	if p.Type() != TypeGossip {
		t.Fatalf("prepared type %s, want %s", p.Type(), TypeGossip)
	}
	enc := NewEncoder()
	got, err := enc.AppendFrame([]byte{7}, p)
	if err != nil || !bytes.Equal(got[1:], want) || got[0] != 7 {
		t.Fatalf("prepared frame %x (%v), want %x after the existing byte", got, err, want)
	}
	_, n := binary.Uvarint(want)
	back, err := NewDecoder().Decode(want[n:])
	if err != nil || !reflect.DeepEqual(back, Message(m)) {
		t.Fatalf("decoded %#v (%v), want %#v", back, err, m)
	}
}

// TestFramesDoNotShareMemory: Frame's encoders are reused, its frames are
// not: a frame is unchanged by the frames encoded after it.
func TestFramesDoNotShareMemory(t *testing.T) {
	a, err := Frame(&Ping{Seq: 1, Updates: benchTable().Members[:3]})
	if err != nil {
		t.Fatal(err)
	}
	keep := bytes.Clone(a)
	for i := range 8 {
		if _, err := Frame(&Gossip{Updates: benchTable().Members[i : i+4]}); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(a, keep) {
		t.Fatal("an earlier frame changed when later ones were encoded")
	}
}
