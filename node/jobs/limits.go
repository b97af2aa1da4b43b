package jobs

import (
	"runtime"
	"time"
)

// Limits are the node owner's bounds on the job plane, fixed at start-up
// (--max-job-timeout, --max-slots): no request or control command from a
// peer can raise them.
type Limits struct {
	// MaxJobTimeout bounds how long one job runs on this node as a worker,
	// and what this node asks of its workers as a dispatcher: a request
	// without a timeout, or with a longer one, runs with this one.
	// 0 = DefaultMaxJobTimeout.
	MaxJobTimeout time.Duration
	// MaxSlots bounds SetSlots and the remote scale command.
	// 0 = DefaultMaxSlots().
	MaxSlots int
}

// DefaultMaxJobTimeout is MaxJobTimeout when the owner sets none.
const DefaultMaxJobTimeout = time.Hour

// DefaultMaxSlots is MaxSlots when the owner sets none: 4 per CPU.
func DefaultMaxSlots() int { return 4 * runtime.NumCPU() }

// withDefaults fills in the zero (or negative) fields.
func (l Limits) withDefaults() Limits {
	if l.MaxJobTimeout <= 0 {
		l.MaxJobTimeout = DefaultMaxJobTimeout
	}
	if l.MaxSlots <= 0 {
		l.MaxSlots = DefaultMaxSlots()
	}
	return l
}
