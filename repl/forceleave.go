package repl

import (
	"context"

	"meshell/node"
)

// !force-leave: a failed member that will not come back is marked left on
// every live member, acknowledged by each, so that none re-dials it.
func init() {
	commands = append(commands, &Command{
		Name: "!force-leave", Group: "control", Args: "ALIAS", Min: 1, Max: 1,
		Summary: "mark a failed member left on every node, so that it is no longer re-dialled",
		Help: "Only a failed member: one alive or suspect is refused (stop it first, or run !leave on it). " +
			"Every live member confirms; with --operators the request must be signed like other changes.",
		Flags:   []Flag{{Name: "timeout", Kind: FlagDuration, Usage: "how long to wait for each node's acknowledgement (default 5s)"}},
		Example: "!force-leave worker3",
		Complete: func(s *Shell, prev []string) []string {
			if len(prev) > 0 {
				return nil
			}
			var out []string
			for _, e := range s.Node.Members().Entries {
				if e.State == node.StateFailed {
					out = append(out, e.Alias)
				}
			}
			return out
		},
		Run: func(ctx context.Context, s *Shell, a *Args) error {
			alias := a.Pos[0]
			targets, err := s.Node.ForceLeaveTargets(alias)
			if err != nil {
				return err
			}
			_, err = s.control(ctx, a, targets, node.ControlRequest{Op: node.OpForceLeave, Key: alias}, func(node.ControlReply) string {
				return "ok: " + alias + " left"
			})
			return err
		},
		NoHistory: true,
	})
}
