package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// rawFrame is a frame of payload: uvarint length, then the bytes.
func rawFrame(payload []byte) []byte {
	return append(binary.AppendUvarint(nil, uint64(len(payload))), payload...)
}

func TestFrameReaderGrowsWithArrivingBytes(t *testing.T) {
	// Attack (2): a length prefix alone must not allocate the frame.
	n := MaxFrameSize - 1
	cases := []struct {
		name     string
		received int   // bytes of the frame that arrive before the stream ends
		limit    int64 // bytes Next may allocate
	}{
		{"prefix alone", 0, 16 << 10},
		{"prefix and 100 bytes", 100, 16 << 10},
		{"prefix and 10 KiB", 10 << 10, 64 << 10},
		{"prefix and 100 KiB", 100 << 10, 512 << 10},
		{"prefix and 1 MiB", 1 << 20, 4 << 20},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			stream := append(binary.AppendUvarint(nil, uint64(n)), make([]byte, c.received)...)
			var readers []*FrameReader // one per measured run
			for range 3 {
				readers = append(readers, NewFrameReader(bytes.NewReader(stream), 0))
			}
			got := allocated(func() {
				_, err := readers[0].Next()
				if readers = readers[1:]; !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("got %v, want a truncation", err)
				}
			})
			if int64(got) > c.limit {
				t.Fatalf("allocated %d bytes for %d received, limit %d", got, c.received, c.limit)
			}
		})
	}
}

func TestFrameReaderKeepsNoLargeBuffer(t *testing.T) {
	big := bytes.Repeat([]byte{byte(TypeJobResult)}, 1<<20)
	small := []byte{byte(TypeJobCancel), 0x91, 0x01}
	b := NewBudget(2 << 20)
	stream := slices.Concat(rawFrame(big), rawFrame(small), rawFrame(small))
	fr := NewFrameReaderOpts(bytes.NewReader(stream), FrameOptions{Budget: b})
	p, err := fr.Next()
	if err != nil || !bytes.Equal(p, big) {
		t.Fatalf("large frame: %v", err)
	}
	if b.Used() < 1<<20 {
		t.Fatalf("a read large frame holds %d bytes of the budget, want its size", b.Used())
	}
	for i := range 2 {
		if p, err := fr.Next(); err != nil || !bytes.Equal(p, small) {
			t.Fatalf("small frame %d: %q, %v", i, p, err)
		}
		if cap(fr.buf) > smallFrame || b.Used() != 0 {
			t.Fatalf("after a small frame: buffer of %d bytes, %d bytes of budget held", cap(fr.buf), b.Used())
		}
	}
}

// A frame of tens of KiB, below the budget's threshold, is not kept either:
// a connection that read one once and then idles holds a small buffer.
func TestFrameReaderKeepsNoMidSizeBuffer(t *testing.T) {
	mid := bytes.Repeat([]byte{byte(TypeJobResult)}, 60<<10)
	small := []byte{byte(TypeJobCancel), 0x91, 0x01}
	fr := NewFrameReader(bytes.NewReader(slices.Concat(rawFrame(mid), rawFrame(small))), 0)
	if p, err := fr.Next(); err != nil || !bytes.Equal(p, mid) {
		t.Fatalf("60 KiB frame: %v", err)
	}
	if p, err := fr.Next(); err != nil || !bytes.Equal(p, small) {
		t.Fatalf("small frame: %q, %v", p, err)
	}
	if cap(fr.buf) > firstBuf {
		t.Fatalf("after a 60 KiB frame and a small one the reader keeps %d bytes, want at most %d", cap(fr.buf), firstBuf)
	}
}

// stallReader serves data, then blocks until resume is closed, then ends.
type stallReader struct {
	data    []byte
	once    sync.Once
	stalled chan struct{}
	resume  chan struct{}
}

func newStallReader(data []byte) *stallReader {
	return &stallReader{data: data, stalled: make(chan struct{}), resume: make(chan struct{})}
}

func (s *stallReader) Read(p []byte) (int, error) {
	if len(s.data) > 0 {
		n := copy(p, s.data)
		s.data = s.data[n:]
		return n, nil
	}
	s.once.Do(func() { close(s.stalled) })
	<-s.resume
	return 0, io.EOF
}

func TestBudget(t *testing.T) {
	// Three peers each send 100 KiB of a 1 MiB frame and stall: each holds
	// a 128 KiB buffer. The budget has room for three.
	const held = 128 << 10
	b := NewBudget(3*held + 1000)
	partial := append(binary.AppendUvarint(nil, 1<<20), make([]byte, 100<<10)...)
	var wg sync.WaitGroup
	var stalls []*stallReader
	var readers []*FrameReader
	errs := make([]error, 3)
	for i := range 3 {
		s := newStallReader(partial)
		fr := NewFrameReaderOpts(s, FrameOptions{Budget: b})
		stalls, readers = append(stalls, s), append(readers, fr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = fr.Next()
		}()
		<-s.stalled
	}
	t.Run("partial frames hold what they grew to", func(t *testing.T) {
		if got := b.Used(); got != 3*held {
			t.Fatalf("budget used %d, want %d", got, 3*held)
		}
	})
	t.Run("the fourth large frame is refused", func(t *testing.T) {
		fr := NewFrameReaderOpts(bytes.NewReader(rawFrame(make([]byte, 100<<10))), FrameOptions{Budget: b})
		_, err := fr.Next()
		if !errors.Is(err, ErrBudget) || !strings.Contains(err.Error(), "process-wide limit") {
			t.Fatalf("got %v, want ErrBudget", err)
		}
		if b.Used() != 3*held {
			t.Fatalf("the refused frame left %d bytes reserved", b.Used()-3*held)
		}
	})
	t.Run("a small frame needs no reservation", func(t *testing.T) {
		small := make([]byte, smallFrame)
		fr := NewFrameReaderOpts(bytes.NewReader(rawFrame(small)), FrameOptions{Budget: b})
		if _, err := fr.Next(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("release frees a stalled reader's share", func(t *testing.T) {
		readers[0].Release() // the connection closed while its frame was partial
		if got := b.Used(); got != 2*held {
			t.Fatalf("budget used %d after release, want %d", got, 2*held)
		}
		fr := NewFrameReaderOpts(bytes.NewReader(rawFrame(make([]byte, 100<<10))), FrameOptions{Budget: b})
		if _, err := fr.Next(); err != nil {
			t.Fatalf("a large frame after the release: %v", err)
		}
		if _, err := fr.Next(); err != io.EOF {
			t.Fatalf("got %v, want io.EOF", err)
		}
		if got := b.Used(); got != 2*held {
			t.Fatalf("budget used %d once the next frame started, want %d", got, 2*held)
		}
	})
	for _, s := range stalls {
		close(s.resume)
	}
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("stalled reader %d: %v, want a truncation", i, err)
		}
	}
	for _, fr := range readers {
		fr.Release()
	}
	if got := b.Used(); got != 0 {
		t.Fatalf("budget used %d after every reader failed or released, want 0", got)
	}
}

// scripted serves one chunk per Read and logs the reads.
type scripted struct {
	chunks [][]byte
	log    *[]string
}

func (s *scripted) Read(p []byte) (int, error) {
	if len(s.chunks) == 0 {
		*s.log = append(*s.log, "eof")
		return 0, io.EOF
	}
	n := copy(p, s.chunks[0])
	if s.chunks[0] = s.chunks[0][n:]; len(s.chunks[0]) == 0 {
		s.chunks = s.chunks[1:]
	}
	*s.log = append(*s.log, fmt.Sprintf("read %d", n))
	return n, nil
}

func TestFrameDeadline(t *testing.T) {
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	ping := rawFrame(payloadOf(t, &Ping{Seq: 7}))   // 5 bytes
	big := rawFrame(bytes.Repeat([]byte{'x'}, 200)) // a 2-byte length prefix
	cases := []struct {
		name    string
		chunks  [][]byte
		timeout time.Duration
		want    []string
	}{
		{"whole frame in one read", [][]byte{ping}, 5 * time.Second,
			[]string{"read 5", "eof"}},
		{"idle connection", nil, 5 * time.Second,
			[]string{"eof"}},
		{"frame split after its first byte", [][]byte{ping[:1], ping[1:]}, 5 * time.Second,
			[]string{"read 1", "deadline +5s", "read 4", "clear", "eof"}},
		{"length prefix split", [][]byte{big[:1], big[1:]}, 5 * time.Second,
			[]string{"read 1", "deadline +5s", "read 201", "clear", "eof"}},
		{"two split frames", [][]byte{ping[:2], ping[2:], ping[:3], ping[3:]}, time.Second,
			[]string{"read 2", "deadline +1s", "read 3", "clear", "read 3", "deadline +1s", "read 2", "clear", "eof"}},
		{"split frame then a buffered one", [][]byte{ping[:2], slices.Concat(ping[2:], ping)}, time.Second,
			[]string{"read 2", "deadline +1s", "read 8", "clear", "eof"}},
		{"no frame timeout", [][]byte{ping[:1], ping[1:]}, 0,
			[]string{"read 1", "read 4", "eof"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var log []string
			fr := NewFrameReaderOpts(&scripted{chunks: slices.Clone(c.chunks), log: &log}, FrameOptions{
				FrameTimeout: c.timeout,
				Now:          func() time.Time { return t0 },
				Deadline: func(d time.Time) error {
					if d.IsZero() {
						log = append(log, "clear")
					} else {
						log = append(log, "deadline +"+d.Sub(t0).String())
					}
					return nil
				},
			})
			for {
				if _, err := fr.Next(); err != nil {
					if err != io.EOF {
						t.Fatal(err)
					}
					break
				}
			}
			if !slices.Equal(log, c.want) {
				t.Fatalf("events\n got %q\nwant %q", log, c.want)
			}
		})
	}
	t.Run("deadline error ends the frame", func(t *testing.T) {
		boom := errors.New("use of closed network connection")
		fr := NewFrameReaderOpts(iotestOneByte(ping), FrameOptions{FrameTimeout: time.Second,
			Deadline: func(time.Time) error { return boom }})
		if _, err := fr.Next(); !errors.Is(err, boom) {
			t.Fatalf("got %v, want the deadline's error", err)
		}
	})
}

func iotestOneByte(b []byte) io.Reader {
	chunks := make([][]byte, len(b))
	for i := range b {
		chunks[i] = b[i : i+1]
	}
	var log []string
	return &scripted{chunks: chunks, log: &log}
}

func TestFrameReaderSetMax(t *testing.T) {
	big := rawFrame(make([]byte, MaxHandshakeFrame+1))
	fr := NewFrameReader(bytes.NewReader(slices.Concat(big, big)), MaxHandshakeFrame)
	fr2 := NewFrameReader(bytes.NewReader(big), MaxHandshakeFrame)
	if _, err := fr2.Next(); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("a frame over the handshake limit: %v", err)
	}
	fr.SetMax(0)
	if _, err := fr.Next(); err != nil {
		t.Fatalf("after SetMax(0): %v", err)
	}
}

// chunkReader returns at most sizes[i]+1 bytes on its i-th Read (cycling).
type chunkReader struct {
	data  []byte
	sizes []byte
	i     int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := len(p)
	if len(c.sizes) > 0 {
		n = min(n, int(c.sizes[c.i%len(c.sizes)])+1)
		c.i++
	}
	n = copy(p, c.data[:min(n, len(c.data))])
	c.data = c.data[n:]
	return n, nil
}

func FuzzFrameReader(f *testing.F) {
	f.Add([]byte("hello world, these are frames"), []byte{3, 0, 7, 1}, uint8(0))
	f.Add([]byte{0x01}, []byte{}, uint8(1))
	f.Add([]byte("xy"), []byte{255, 0}, uint8(100))
	f.Add(bytes.Repeat([]byte{0xff}, 300), []byte{0, 1, 2}, uint8(3))
	f.Fuzz(func(t *testing.T, data, sizes []byte, big uint8) {
		// Frames: data cut where sizes say, plus one frame of big KiB.
		var frames [][]byte
		rest := data
		for i := 0; len(rest) > 0; i++ {
			n := len(rest)
			if len(sizes) > 0 {
				n = min(n, int(sizes[i%len(sizes)])+1)
			}
			frames, rest = append(frames, rest[:n]), rest[n:]
		}
		if big > 0 {
			frames = append(frames, bytes.Repeat(append([]byte{big}, data...), int(big)*1024/(len(data)+1)+1))
		}
		var stream []byte
		for _, p := range frames {
			stream = append(stream, rawFrame(p)...)
		}
		b := NewBudget(1 << 20)
		var deadlines int
		fr := NewFrameReaderOpts(&chunkReader{data: stream, sizes: sizes}, FrameOptions{
			Budget: b, FrameTimeout: time.Second,
			Deadline: func(time.Time) error { deadlines++; return nil },
		})
		for i, want := range frames {
			got, err := fr.Next()
			if err != nil {
				t.Fatalf("frame %d of %d bytes: %v", i, len(want), err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("frame %d: got %d bytes, want %d", i, len(got), len(want))
			}
		}
		if _, err := fr.Next(); err != io.EOF {
			t.Fatalf("after the last frame: %v, want io.EOF", err)
		}
		if deadlines%2 != 0 {
			t.Fatalf("%d deadline calls: a set without its clear", deadlines)
		}
		fr.Release()
		if b.Used() != 0 {
			t.Fatalf("budget used %d after the stream ended", b.Used())
		}
	})
}
