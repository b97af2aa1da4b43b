package jobs

import (
	"strings"
	"testing"
)

// A stream cut at its cap ends in whole-line chunks: the marker never
// arrives in a chunk of its own that starts with the partial line's "\n",
// which a caller printing chunk by chunk showed as an empty line.
func TestCaptureStreamsTheMarkerAsWholeLines(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"cut inside a line", "ab\ncdefgh", "ab\ncd\n[meshell: stdout truncated at 5 bytes]\n"},
		{"cut at a line end", "abcd\nefgh", "abcd\n[meshell: stdout truncated at 5 bytes]\n"},
		{"exactly the cap, nothing cut", "abcd\n", "abcd\n"},
		{"the cap and one more", "abcd\ne", "abcd\n[meshell: stdout truncated at 5 bytes]\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var chunks []string
			c := &capture{stream: 1, name: "stdout", max: 5, emit: func(_ uint8, data string) error {
				chunks = append(chunks, data)
				return nil
			}}
			for _, b := range []byte(tc.in) {
				c.add([]byte{b})
			}
			c.flush()
			for _, ch := range chunks {
				if !strings.HasSuffix(ch, "\n") || strings.HasPrefix(ch, "\n") {
					t.Errorf("chunk %q is not whole lines (all chunks %q)", ch, chunks)
				}
			}
			if got := strings.Join(chunks, ""); got != tc.want || c.result() != tc.want {
				t.Errorf("streamed %q, kept %q, want %q", got, c.result(), tc.want)
			}
		})
	}
}
