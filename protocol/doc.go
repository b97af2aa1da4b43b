// Package protocol defines meshell's wire format: the message types, the one
// msgpack codec (hashicorp/go-msgpack/v2) and the length-prefixed framing with
// its limits.
//
// A frame is a uvarint length followed by that many bytes: one message-type
// byte and the msgpack body of the message. The length is checked against
// MaxFrameSize before any buffer is allocated, and the decoder caps the
// initial size of collections and the nesting depth, so hostile input costs a
// bounded amount of memory and ends in an error, never a panic.
//
// Message types are on the wire: only append to the list in messages.go.
// Structs are encoded as msgpack arrays, so fields may only be appended, never
// reordered or removed.
//
// This package imports nothing of meshell's; everything else imports it.
package protocol
