// Package protocol defines meshell's wire format: the message types, the one
// msgpack codec (hashicorp/go-msgpack/v2) and the length-prefixed framing with
// its limits.
//
// A frame is a uvarint length followed by that many bytes: one message-type
// byte and the msgpack body of the message.
//
// A hostile peer costs a bounded amount of memory and ends in an error, never
// a panic. Sizes come before buffers and state before decoding:
//
//   - FrameReader checks the length against its maximum, then grows the
//     frame's buffer only as bytes arrive; frames above 64 KiB hold their
//     buffer from a process-wide Budget, and a started frame may be given a
//     deadline (FrameOptions).
//   - DecodeOnly checks the type byte against what the connection's state
//     allows and the frame's size against the type's, then scan walks the
//     body without allocating: nesting depth, container lengths, object and
//     map-entry counts per type, and no length beyond the bytes left.
//   - Only then is the body decoded, and Validate checks the message's
//     limits and names (names.go: the rules the node and the shell share).
//
// Message types are on the wire: only append to the list in messages.go.
// Structs are encoded as msgpack arrays, so fields may only be appended, never
// reordered or removed; a new field may need its type's limits in limits.go.
//
// This package imports nothing of meshell's; everything else imports it.
package protocol
