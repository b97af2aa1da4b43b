package protocol

import (
	"encoding/binary"
	"testing"
)

// benchPing is a probe as a busy cluster sends it: a few piggybacked updates.
func benchPing() *Ping {
	m := Member{Alias: "worker-12", Addr: "10.0.0.12:2254", State: StateAlive, Incarnation: 42,
		Tags: map[string]string{"role": "worker", "slots": "8"}}
	s := m
	s.Alias, s.State, s.Accuser = "worker-7", StateSuspect, "worker-3"
	return &Ping{Seq: 123456, Updates: []Member{m, s, m}}
}

func BenchmarkDecodePing(b *testing.B) { benchDecode(b, benchPing()) }

// benchDecode decodes the payload of m's frame, again and again.
func benchDecode(b *testing.B, m Message) {
	frame, err := Frame(m)
	if err != nil {
		b.Fatal(err)
	}
	_, n := binary.Uvarint(frame)
	payload := frame[n:]
	dec := NewDecoder()
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if _, err := dec.Decode(payload); err != nil {
			b.Fatal(err)
		}
	}
}

// loopReader replays one stream of frames forever, in reads of at most 1500
// bytes (a TCP segment).
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	p = p[:min(len(p), 1500)]
	n := copy(p, l.data[l.off:])
	l.off = (l.off + n) % len(l.data)
	return n, nil
}

func BenchmarkFrameReader(b *testing.B) {
	enc := NewEncoder()
	var stream []byte
	for i := 0; i < 64; i++ {
		var err error
		if stream, err = enc.AppendFrame(stream, benchPing()); err != nil {
			b.Fatal(err)
		}
	}
	fr := NewFrameReader(&loopReader{data: stream}, 0)
	b.ReportAllocs()
	b.SetBytes(int64(len(stream) / 64))
	for b.Loop() {
		if _, err := fr.Next(); err != nil {
			b.Fatal(err)
		}
	}
}

// benchTable is a seed's answer to a Hello in a 100-member cluster.
func benchTable() *HelloAck {
	ms := make([]Member, 100)
	for i := range ms {
		ms[i] = Member{Alias: "node" + string(rune('a'+i%26)) + string(rune('a'+i/26)), Addr: "127.0.0.1:21345",
			State: StateAlive, Incarnation: uint64(i), Tags: map[string]string{"slots": "2"}}
	}
	return &HelloAck{Version: 2, Cluster: "meshell", From: ms[0], Members: ms, MinVersion: 1, MaxVersion: 2}
}

func BenchmarkEncodeTable(b *testing.B) {
	m := benchTable()
	enc := NewEncoder()
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = enc.AppendFrame(buf[:0], m); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkDecodeTable(b *testing.B) { benchDecode(b, benchTable()) }
