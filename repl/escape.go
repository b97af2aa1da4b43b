package repl

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Text that came from the network (aliases, addresses, tags, job results,
// a peer's error) stays raw in memory and is cleaned exactly once, where it
// is printed: the escaping is not idempotent (a second pass would double the
// backslashes of the first). Colour codes are added after cleaning.
//
// Escaping rules, for clean, cleanN and cleanText alike:
//   - \n, \r and \t are shown as \n, \r, \t (cleanText keeps \n and \t raw);
//   - any other C0 byte and DEL as \xHH (\x1b, \x07, \x7f);
//   - a byte that is not valid UTF-8 as \xHH (so no lone 0x9b can act as CSI);
//   - C1 controls (U+0080–U+009F), U+2028, U+2029 and the format characters
//     (Unicode Cf: bidi overrides and isolates U+202A–U+202E, U+2066–U+2069,
//     marks U+200E, U+200F, U+061C, and U+FEFF, U+00AD…) as \uHHHH, or
//     \UHHHHHHHH above U+FFFF; ZWNJ and ZWJ (U+200C, U+200D) stay, as
//     scripts and emoji need them;
//   - a backslash is doubled only when what follows it would otherwise read
//     as one of these escapes: a backslash (literal or escaped) or one of
//     x u U n r t. So C:\dir stays C:\dir, but a literal `\x1b` shows as
//     `\\x1b` and cannot pass for an escaped ESC.
//
// clean and cleanN also cap the output at a number of runes (escapes never
// split) and end it with …(+N bytes), N the bytes of input not shown. A cut
// never lengthens the output: when the rest is shown in no more runes than
// the marker would take, it is shown whole instead. So the output is at most
// the cap plus one marker, and a value shown whole is past the cap by at most
// 12 runes (its rest is then at most 4 bytes a rune of …(+48 bytes)).

const (
	fieldCap = 256  // runes shown of one field: an alias, an address, a tag key or value
	lineCap  = 1024 // runes shown of one message line: an error, a warning, an answer
)

// clean makes a single-line field (alias, address, tag, kind) safe to print,
// capped at fieldCap runes.
func clean(s string) string { return escape(s, false, fieldCap) }

// cleanN is clean with a cap of max runes (0: no cap).
func cleanN(s string, max int) string { return escape(s, false, max) }

// cleanText makes multi-line free text (job results, stream chunks) safe to
// print: newlines and tabs stay, every line is cleaned, nothing is capped.
func cleanText(s string) string { return escape(s, true, 0) }

// Clean is cleanN(s, 1024) for callers outside the shell that print text
// from the network, such as main's error lines.
func Clean(s string) string { return cleanN(s, lineCap) }

// mustEscape reports whether a valid rune is shown as an escape.
func mustEscape(r rune) bool {
	switch {
	case unicode.Is(unicode.Cc, r), r == '\u2028', r == '\u2029':
		return true
	case r == '\u200c', r == '\u200d':
		return false
	}
	return unicode.Is(unicode.Cf, r)
}

// plain reports whether s is printed as it is (and may be offered as a
// completion): valid UTF-8 without a rune to escape.
func plain(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || mustEscape(r) {
			return false
		}
	}
	return true
}

// escaped returns how the rune at the start of s is shown and its size in s.
func escaped(s string, text bool) (string, int) {
	r, size := utf8.DecodeRuneInString(s)
	switch {
	case r == utf8.RuneError && size == 1:
		return fmt.Sprintf(`\x%02x`, s[0]), 1
	case text && (r == '\n' || r == '\t'):
		return s[:size], size
	case r == '\n':
		return `\n`, size
	case r == '\r':
		return `\r`, size
	case r == '\t':
		return `\t`, size
	case r < 0x20 || r == 0x7f:
		return fmt.Sprintf(`\x%02x`, r), size
	case r > 0xffff && mustEscape(r):
		return fmt.Sprintf(`\U%08x`, r), size
	case mustEscape(r):
		return fmt.Sprintf(`\u%04x`, r), size
	case r == '\\' && escapesNext(s[size:], text):
		return `\\`, size
	}
	return s[:size], size
}

// escapesNext reports whether a backslash before s must be doubled: what s
// starts with is shown as an escape, or is a backslash or one of x u U n r t.
func escapesNext(s string, text bool) bool {
	r, size := utf8.DecodeRuneInString(s)
	switch {
	case size == 0:
		return false
	case r == utf8.RuneError && size == 1:
		return true
	case text && (r == '\n' || r == '\t'):
		return false
	}
	return mustEscape(r) || strings.ContainsRune(`\xuUnrt`, r)
}

func escape(s string, text bool, max int) string {
	if (max == 0 || len(s) <= max) && asciiPlain(s) {
		return s // the common case: nothing to do
	}
	var b strings.Builder
	runes := 0
	for i := 0; i < len(s); {
		piece, size := escaped(s[i:], text)
		n := utf8.RuneCountInString(piece)
		if max > 0 && runes+n > max {
			marker := fmt.Sprintf("…(+%d bytes)", len(s)-i)
			if fitsIn(s[i:], text, utf8.RuneCountInString(marker)) {
				max = 0 // the rest is shown whole: it is no longer than the marker
				continue
			}
			b.WriteString(marker)
			break
		}
		b.WriteString(piece)
		runes += n
		i += size
	}
	return b.String()
}

// fitsIn reports whether rest is shown in at most budget runes. Every piece
// is at least one rune, so it looks at no more than budget+1 of them: a cut
// is decided quickly however long the input.
func fitsIn(rest string, text bool, budget int) bool {
	runes := 0
	for i := 0; i < len(rest); {
		piece, size := escaped(rest[i:], text)
		runes += utf8.RuneCountInString(piece)
		if runes > budget {
			return false
		}
		i += size
	}
	return true
}

// asciiPlain reports whether s is printable ASCII without a backslash.
func asciiPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f || s[i] == '\\' {
			return false
		}
	}
	return true
}

// jsonSafe rewrites the runes encoding/json leaves raw but a terminal may
// act on (DEL, C1 controls, bidi and other format characters) as \uXXXX
// escapes. They can only occur inside JSON strings, so a decoder gets the
// same strings back byte for byte.
func jsonSafe(b []byte) []byte {
	var out []byte
	last := 0
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if mustEscape(r) {
			out = appendUnicodeEscape(append(out, b[last:i]...), r)
			last = i + size
		}
		i += size
	}
	if out == nil {
		return b
	}
	return append(out, b[last:]...)
}

func appendUnicodeEscape(out []byte, r rune) []byte {
	if r > 0xffff {
		r1, r2 := utf16.EncodeRune(r)
		return fmt.Appendf(out, `\u%04x\u%04x`, r1, r2)
	}
	return fmt.Appendf(out, `\u%04x`, r)
}
