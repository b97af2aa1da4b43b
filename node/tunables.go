package node

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"meshell/node/swim"
)

// swimKeys are the failure-detection tunables that --flags and !config set
// both change, through SetTunable.
var swimKeys = []string{"probe-interval", "probe-timeout", "suspicion-mult", "indirect-checks"}

// SetTunables applies key/value pairs of failure-detection tunables to sc,
// in order, and checks the result: the one validation behind the start-up
// flags and !config set. sc is unchanged on error.
func SetTunables(sc *Tunables, pairs [][2]string) error {
	next := *sc
	for _, kv := range pairs {
		if err := setTunable(&next, kv[0], kv[1]); err != nil {
			return err
		}
	}
	if err := swim.Config(next).Validate(); err != nil {
		if len(pairs) == 1 {
			return fmt.Errorf("%s %s: %w", pairs[0][0], pairs[0][1], err)
		}
		return err
	}
	*sc = next
	return nil
}

func setTunable(next *Tunables, key, value string) error {
	switch key {
	case "probe-interval", "probe-timeout":
		d, err := time.ParseDuration(value)
		if err != nil {
			return fmt.Errorf("%s %q: use a duration such as 200ms", key, value)
		}
		if key == "probe-interval" {
			next.ProbeInterval = d
			if next.GossipInterval >= d { // pushes stay batched below one probe interval
				next.GossipInterval = d / 2
			}
		} else {
			next.ProbeTimeout = d
		}
	case "suspicion-mult", "indirect-checks":
		k, err := strconv.ParseInt(value, 10, 32)
		if err != nil {
			return fmt.Errorf("%s %q: use a whole number", key, value)
		}
		if key == "suspicion-mult" {
			next.SuspicionMult = int(k)
		} else {
			next.IndirectChecks = int(k)
		}
	default:
		return fmt.Errorf("unknown failure-detection setting %q: use one of %s", key, strings.Join(swimKeys, ", "))
	}
	return nil
}
