package node

import (
	"context"
	"fmt"
	"time"

	"meshell/node/swim"
	"meshell/protocol"
)

// ForceLeaveTargets checks that alias may be forced out — a failed member
// in this node's table — and returns the members to send the force-leave
// request to (Control with OpForceLeave and Key alias): every live member,
// this node included, so that none re-dials it.
func (n *Node) ForceLeaveTargets(alias string) ([]string, error) {
	if !n.Running() {
		return nil, ErrNotRunning
	}
	snap := n.Members()
	e, ok := snap.Get(alias)
	switch {
	case !ok:
		return nil, fmt.Errorf("no member %q", alias)
	case e.Self:
		return nil, fmt.Errorf("%s is this node: use !leave", alias)
	case e.State == StateLeft:
		return nil, fmt.Errorf("%s has left already", alias)
	case e.State != StateFailed:
		return nil, fmt.Errorf("%s is %s: !force-leave removes only failed members (stop it first, or run !leave on it)", alias, e.State)
	}
	var targets []string
	for _, e := range snap.Entries {
		if e.State == StateAlive || e.State == StateSuspect {
			targets = append(targets, e.Alias)
		}
	}
	return targets, nil
}

// forceLeave marks the failed member alias left on this node (the
// force-leave control request).
func (n *Node) forceLeave(alias string) error {
	if err := protocol.ValidAlias(alias); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var ferr error
	if err := n.call(ctx, func(c *swim.Core) { ferr = c.ForceLeave(time.Now(), alias) }); err != nil {
		return err
	}
	return ferr
}
