package protocol

import (
	"encoding/binary"
	"fmt"
)

// maxScanDepth is the deepest nesting any message type allows.
const maxScanDepth = 6

// scan walks one msgpack body without decoding or allocating, and refuses it
// unless it is exactly one object within lim's depth, container length,
// object count and map entry count. Every declared length is
// checked against the bytes left, counting one byte at least for every
// object still expected, so the decoder that runs next can never be told to
// expect more than the frame holds.
func scan(b []byte, lim bodyLimits) error {
	var open [maxScanDepth]int // objects still expected in each open container
	depth := 0                 // open containers
	need := 1                  // objects still expected in all, the body itself first
	objects, entries := 0, 0
	i := 0
	for need > 0 {
		for depth > 0 && open[depth-1] == 0 {
			depth-- // close the containers this object finished
		}
		if i >= len(b) {
			return fmt.Errorf("body truncated at byte %d", i)
		}
		if objects++; objects > lim.objects {
			return fmt.Errorf("body holds more than %d msgpack objects", lim.objects)
		}
		need--
		if depth > 0 {
			open[depth-1]--
		}
		c := b[i]
		i++
		size, n, isMap := 0, -1, false // bytes of a scalar's payload; elements of a container
		switch {
		case c <= 0x7f || c >= 0xe0, c == 0xc0, c == 0xc2, c == 0xc3: // fixint, nil, bool
		case c <= 0x8f:
			n, isMap = int(c&0x0f), true
		case c <= 0x9f:
			n = int(c & 0x0f)
		case c <= 0xbf:
			size = int(c & 0x1f)
		case c == 0xcc || c == 0xd0:
			size = 1
		case c == 0xcd || c == 0xd1:
			size = 2
		case c == 0xca || c == 0xce || c == 0xd2:
			size = 4
		case c == 0xcb || c == 0xcf || c == 0xd3:
			size = 8
		case c == 0xc4 || c == 0xd9, c == 0xc5 || c == 0xda, c == 0xc6 || c == 0xdb: // bin, str
			l, w, err := scanLen(b, i, c)
			if err != nil {
				return err
			}
			i, size = i+w, l
		case c >= 0xdc && c <= 0xdf: // array16, array32, map16, map32
			l, w, err := scanLen(b, i, c)
			if err != nil {
				return err
			}
			i, n, isMap = i+w, l, c >= 0xde
		default: // 0xc1, ext and fixext: nothing of this protocol
			return fmt.Errorf("byte 0x%02x at %d is not used by this protocol", c, i-1)
		}
		if size > len(b)-i {
			return fmt.Errorf("a length of %d at byte %d exceeds the %d bytes left", size, i, len(b)-i)
		}
		i += size
		if n < 0 {
			continue
		}
		if n > lim.length {
			kind := "array of %d elements"
			if isMap {
				kind = "map of %d entries"
			}
			return fmt.Errorf(kind+" exceeds the limit of %d", n, lim.length)
		}
		if depth >= lim.depth || depth >= maxScanDepth {
			return fmt.Errorf("body nests deeper than %d", lim.depth)
		}
		if isMap {
			if entries += n; entries > lim.entries {
				return fmt.Errorf("body declares more than %d map entries", lim.entries)
			}
			n *= 2 // a key and a value per entry
		}
		if need += n; need > len(b)-i {
			return fmt.Errorf("%d elements at byte %d need more than the %d bytes left", n, i, len(b)-i)
		}
		if n > 0 {
			open[depth] = n
			depth++
		}
	}
	if i != len(b) {
		return fmt.Errorf("%d bytes after the body", len(b)-i)
	}
	return nil
}

// scanLen reads the big-endian length that follows type byte c at b[i:]: one
// byte for bin8/str8, two for *16, four for *32. It returns the length and
// its width.
func scanLen(b []byte, i int, c byte) (l, w int, err error) {
	switch c {
	case 0xc4, 0xd9:
		w = 1
	case 0xc5, 0xda, 0xdc, 0xde:
		w = 2
	default:
		w = 4
	}
	if w > len(b)-i {
		return 0, 0, fmt.Errorf("body truncated at byte %d", len(b))
	}
	var u uint64
	switch w {
	case 1:
		u = uint64(b[i])
	case 2:
		u = uint64(binary.BigEndian.Uint16(b[i:]))
	default:
		u = uint64(binary.BigEndian.Uint32(b[i:]))
	}
	// Neither a string nor a container can be longer than the bytes left.
	if left := len(b) - i - w; u > uint64(left) {
		return 0, 0, fmt.Errorf("a length of %d at byte %d exceeds the %d bytes left", u, i, left)
	}
	return int(u), w, nil
}
