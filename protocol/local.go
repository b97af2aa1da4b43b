package protocol

import (
	"errors"
	"fmt"
)

// The local control socket (meshell attach) speaks frames of one message,
// Local, in this codec. TypeLocal lies outside every family and limitsOf
// does not know it, so a Local arriving on the cluster port is refused as an
// unknown type; it decodes only through DecodeLocal.
const TypeLocal MsgType = 255

// LocalOp says what a Local frame is. Values are on the wire: only append.
type LocalOp uint8

const (
	LocalHello       LocalOp = iota + 1 // client → agent: Flags; agent → client: Data = prompt, Line = alias
	LocalExec                           // client → agent: run Line
	LocalInterrupt                      // client → agent: cancel the running command (Ctrl-C)
	LocalComplete                       // client → agent: complete the end of Line
	LocalCompletions                    // agent → client: Items start with the Pos bytes being typed
	LocalStdout                         // agent → client: Data for stdout
	LocalStderr                         // agent → client: Data for stderr
	LocalDone                           // agent → client: the command ended; Status 0 ok, 1 failed (Data: the error)
	LocalPrompt                         // agent → client: Data is the new prompt
	LocalBye                            // agent → client: the session ends; Data says why, Status 0 when the node was shut down
	LocalKeepalive                      // either way: nothing to say, still here
	localOpEnd
)

// Flags of a client's LocalHello.
const (
	LocalInteractive uint8 = 1 << iota // a terminal: progress bars, redrawn frames
	LocalColor                         // colour the output
)

// Local limits: a command line is as long as a script line may be; output
// travels in pieces of at most MaxLocalData.
const (
	MaxLocalLine  = 1 << 20
	MaxLocalData  = 1 << 20
	MaxLocalItems = 4096
	MaxLocalItem  = 4096
	MaxLocalFrame = MaxLocalLine + MaxLocalData + 64<<10
)

// Local is one frame on the local control socket.
type Local struct {
	Op     LocalOp
	Line   string
	Data   string
	Status int32
	Pos    int32
	Flags  uint8
	Items  []string
}

func (*Local) Type() MsgType { return TypeLocal }

var localLimits = bodyLimits{MaxLocalFrame, 2, max(structLen, MaxLocalItems), 64 + structLen + MaxLocalItems, 0}

// DecodeLocal decodes a frame payload read from the local socket, checking
// the type byte, the frame's size and shape before decoding and every field
// after.
func (d *Decoder) DecodeLocal(payload []byte) (*Local, error) {
	if len(payload) == 0 || MsgType(payload[0]) != TypeLocal {
		return nil, errors.New("protocol: not a local frame")
	}
	if len(payload) > localLimits.frame {
		return nil, fmt.Errorf("protocol: local frame of %d bytes: %w of %d bytes", len(payload), ErrFrameTooLarge, localLimits.frame)
	}
	if err := scan(payload[1:], localLimits); err != nil {
		return nil, fmt.Errorf("protocol: local: %w", err)
	}
	m := &Local{}
	d.dec.ResetBytes(payload[1:])
	if err := d.dec.Decode(m); err != nil {
		return nil, fmt.Errorf("protocol: decode local: %w", err)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("protocol: local: %w", err)
	}
	return m, nil
}

// Validate checks a Local's fields against the local limits.
func (m *Local) Validate() error {
	if m.Op == 0 || m.Op >= localOpEnd {
		return fmt.Errorf("unknown op %d", m.Op)
	}
	if len(m.Items) > MaxLocalItems {
		return fmt.Errorf("%d items exceed the limit of %d", len(m.Items), MaxLocalItems)
	}
	for _, it := range m.Items {
		if err := maxLen("item", it, MaxLocalItem); err != nil {
			return err
		}
	}
	return firstErr(maxLen("line", m.Line, MaxLocalLine), maxLen("data", m.Data, MaxLocalData))
}
