package metrics

import (
	"math"
	"strconv"
	"strings"
)

// Metric types as the text format names them.
const (
	Counter = "counter"
	Gauge   = "gauge"
)

// Sample is one value of a metric family, with its labels as name, value
// pairs in order.
type Sample struct {
	Labels []string
	Value  float64
}

// L is a sample with labels k1, v1, k2, v2, ….
func L(v float64, kv ...string) Sample { return Sample{Labels: kv, Value: v} }

// Writer renders metric families in the Prometheus text format 0.0.4 into
// a buffer. Each family is written once, with its HELP and TYPE lines.
type Writer struct {
	b []byte
}

// Bytes is what was written so far.
func (w *Writer) Bytes() []byte { return w.b }

// Reset empties the buffer, keeping its memory.
func (w *Writer) Reset() { w.b = w.b[:0] }

// Metric writes one counter or gauge family.
func (w *Writer) Metric(name, typ, help string, samples ...Sample) {
	w.header(name, typ, help)
	for _, s := range samples {
		w.sample(name, "", s.Labels, noLE, s.Value)
	}
}

// Histogram writes one histogram family of durations, in seconds.
func (w *Writer) Histogram(name, help string, s HistogramSnapshot) {
	w.header(name, "histogram", help)
	var cum uint64
	for i, c := range s.Counts {
		cum += c
		le := math.Inf(1)
		if i < len(s.Bounds) {
			le = s.Bounds[i].Seconds()
		}
		w.sample(name, "_bucket", nil, le, float64(cum))
	}
	w.sample(name, "_sum", nil, noLE, s.Sum.Seconds())
	w.sample(name, "_count", nil, noLE, float64(cum))
}

func (w *Writer) header(name, typ, help string) {
	w.b = append(w.b, "# HELP "...)
	w.b = append(w.b, name...)
	w.b = append(w.b, ' ')
	w.b = appendEscaped(w.b, help, false)
	w.b = append(w.b, "\n# TYPE "...)
	w.b = append(w.b, name...)
	w.b = append(w.b, ' ')
	w.b = append(w.b, typ...)
	w.b = append(w.b, '\n')
}

// noLE marks a sample that is not a histogram bucket.
var noLE = math.NaN()

func (w *Writer) sample(name, suffix string, labels []string, le float64, v float64) {
	w.b = append(w.b, name...)
	w.b = append(w.b, suffix...)
	bucket := !math.IsNaN(le)
	if len(labels) > 0 || bucket {
		w.b = append(w.b, '{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				w.b = append(w.b, ',')
			}
			w.b = append(w.b, labels[i]...)
			w.b = append(w.b, `="`...)
			w.b = appendEscaped(w.b, labels[i+1], true)
			w.b = append(w.b, '"')
		}
		if bucket {
			if len(labels) > 0 {
				w.b = append(w.b, ',')
			}
			w.b = append(w.b, `le="`...)
			w.b = appendFloat(w.b, le)
			w.b = append(w.b, '"')
		}
		w.b = append(w.b, '}')
	}
	w.b = append(w.b, ' ')
	w.b = appendFloat(w.b, v)
	w.b = append(w.b, '\n')
}

// appendEscaped escapes backslashes and newlines (HELP text), and double
// quotes too in label values, as the text format requires.
func appendEscaped(b []byte, s string, quote bool) []byte {
	if !strings.ContainsAny(s, "\\\n\"") {
		return append(b, s...)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, `\\`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '"' && quote:
			b = append(b, `\"`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// appendFloat writes integers as integers (counts stay exact up to 2⁵³)
// and other values in the shortest form that reads back the same.
func appendFloat(b []byte, v float64) []byte {
	switch {
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	case math.IsNaN(v):
		return append(b, "NaN"...)
	case v == math.Trunc(v) && math.Abs(v) < 1<<53:
		return strconv.AppendInt(b, int64(v), 10)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}
