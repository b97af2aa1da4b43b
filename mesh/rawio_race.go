//go:build linux && race

package mesh

import "sync/atomic"

// ioSync tells the race detector what a socket already guarantees: what a
// goroutine did before a write happens before what the goroutine that reads
// those bytes does after. net.Conn tells the detector so internally; rawIO
// bypasses it and tells it here.
var ioSync atomic.Uint64

func raceWrote() { ioSync.Add(1) }
func raceRead()  { ioSync.Load() }
