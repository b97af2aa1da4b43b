package repl

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"meshell/node"
)

// Key rotation and the operator this shell signs as.
func init() {
	commands = append(commands, []*Command{
		{
			Name: "!keys", Group: "control", Args: "list | install KEY | use KEY | remove KEY", Min: 1, Max: 2,
			Summary: "list the cluster keys, or rotate them on every live member",
			Help: "list shows each key id with [n/N] nodes holding it and where it is primary. " +
				"install sends a new key (from meshell keygen) to every member; use makes it primary and is refused unless every member holds it; " +
				"remove drops a key and is refused for a primary key and for the last one. KEY may be the key or its id. " +
				"Nodes started with --key-file rewrite it after each step.",
			Flags:   []Flag{flagJSON, {Name: "timeout", Kind: FlagDuration, Usage: "how long to wait for each node (default 5s)"}},
			Example: "!keys list",
			Complete: func(s *Shell, prev []string) []string {
				if len(prev) == 0 {
					return []string{"list", "install", "use", "remove"}
				}
				return nil
			},
			Run:       runKeys,
			NoHistory: true, // install carries a key
		},
		{
			Name: "!whoami", Group: "control", Max: 0,
			Summary: "the operator this shell signs control requests as (--operator-key), if any",
			Example: "!whoami",
			Run: func(ctx context.Context, s *Shell, a *Args) error {
				if op := s.Node.Operator(); op != "" {
					s.printf("operator %s (control requests from this shell are signed)\n", clean(op))
				} else {
					s.printf("no operator key: control requests from this shell are unsigned (start it with --operator-key FILE)\n")
				}
				return nil
			},
		},
	}...)
}

// keyHolding is one key id across the cluster.
type keyHolding struct {
	ID      string
	Nodes   int // holding it
	Of      int // that answered
	Primary []string
	Holders []string
}

// keyJSONDoc is one key as !keys list --json prints it, in one array.
type keyJSONDoc struct {
	Key     string   `json:"key"`
	Nodes   int      `json:"nodes"`   // that hold it
	Of      int      `json:"of"`      // that answered
	Primary []string `json:"primary"` // where it is primary; [] when nowhere
}

func runKeys(ctx context.Context, s *Shell, a *Args) error {
	op := a.Pos[0]
	if (op == "list") != (len(a.Pos) == 1) {
		return fmt.Errorf("usage: !keys list | install KEY | use KEY | remove KEY")
	}
	live := s.liveAliases()
	timeout := a.Duration("timeout", 5*time.Second)
	list := func() ([]keyHolding, []node.ControlReply, error) {
		replies, err := s.Node.Control(ctx, live, node.ControlRequest{Op: node.OpKeys, Key: "list"}, timeout)
		if err != nil {
			return nil, nil, err
		}
		return holdings(replies), replies, controlFailure(replies)
	}
	switch op {
	case "list":
		keys, replies, err := list()
		if a.Bool("json") {
			docs := []keyJSONDoc{} // [] when the cluster has no key, never nothing
			for _, k := range keys {
				docs = append(docs, keyJSONDoc{k.ID, k.Nodes, k.Of, append([]string{}, k.Primary...)})
			}
			if jerr := s.writeJSON(docs); jerr != nil {
				return jerr
			}
		} else if len(keys) > 0 {
			var rows [][]string
			for _, k := range keys {
				rows = append(rows, []string{k.ID, fmt.Sprintf("[%d/%d]", k.Nodes, k.Of), primaryText(k)})
			}
			s.printf("%s", table([]string{"KEY", "NODES", "PRIMARY ON"}, rows, nil))
		} else if err == nil && len(replies) > 0 {
			s.printf("no cluster key: the cluster is not encrypted\n")
		}
		return err
	case "install":
	case "use", "remove":
		id := node.KeyID(a.Pos[1])
		keys, _, err := list()
		if err != nil {
			return fmt.Errorf("%s refused before anything changed: %w", op, err)
		}
		i := slices.IndexFunc(keys, func(k keyHolding) bool { return k.ID == id })
		switch {
		case i < 0 && !isKeyID(id):
			// Neither a key nor an id: likely a key mistyped or cut short,
			// nearly all of its bytes, which are never printed.
			return fmt.Errorf("no member holds that key: it is neither a key nor a key id (12 hex digits), and is not shown in case it is a mistyped key; !keys list shows the installed ones")
		case i < 0:
			return fmt.Errorf("no member holds key %s: !keys list shows the installed ones", id)
		case op == "use" && keys[i].Nodes < keys[i].Of:
			return fmt.Errorf("key %s is on %d of %d members (missing on %s): run !keys install first", id, keys[i].Nodes, keys[i].Of,
				strings.Join(missing(live, keys[i].Holders), ", "))
		case op == "remove" && len(keys[i].Primary) > 0:
			return fmt.Errorf("key %s is primary on %s: make another key primary with !keys use first", id, strings.Join(keys[i].Primary, ", "))
		}
		a.Pos[1] = id
	default:
		return fmt.Errorf("unknown keys operation %q: use list, install, use or remove", op)
	}
	replies, err := s.Node.Control(ctx, live, node.ControlRequest{Op: node.OpKeys, Key: op, Value: a.Pos[1]}, timeout)
	if err != nil {
		return err
	}
	var answers []NodeAnswer
	for _, r := range replies {
		if r.OK {
			answers = append(answers, NodeAnswer{Node: r.Alias, OK: true, Text: "ok: " + op})
		}
	}
	s.printPerNode(answers)
	return controlFailure(replies)
}

// holdings counts, per key id, the nodes that hold it and those where it is
// primary, over the nodes that answered.
func holdings(replies []node.ControlReply) []keyHolding {
	byID := map[string]*keyHolding{}
	var order []string
	answered := 0
	for _, r := range replies {
		if !r.OK || r.Status == nil {
			continue
		}
		answered++
		for i, id := range r.Status.KeyIDs {
			k := byID[id]
			if k == nil {
				k = &keyHolding{ID: clean(id)}
				byID[id] = k
				order = append(order, id)
			}
			k.Nodes++
			k.Holders = append(k.Holders, r.Alias)
			if i == 0 {
				k.Primary = append(k.Primary, r.Alias)
			}
		}
	}
	out := make([]keyHolding, 0, len(order))
	for _, id := range order {
		k := byID[id]
		k.Of = answered
		out = append(out, *k)
	}
	return out
}

func primaryText(k keyHolding) string {
	switch {
	case len(k.Primary) == 0:
		return "-"
	case len(k.Primary) == k.Of:
		return "all (" + strconv.Itoa(k.Of) + ")"
	}
	return clean(strings.Join(k.Primary, ","))
}

// missing lists the aliases of all that are not in have.
func missing(all, have []string) []string {
	var out []string
	for _, a := range all {
		if !slices.Contains(have, a) {
			out = append(out, a)
		}
	}
	return out
}

// liveAliases are the alive and suspect members, this node included.
func (s *Shell) liveAliases() []string {
	var out []string
	for _, e := range s.Node.Members().Entries {
		if e.State == node.StateAlive || e.State == node.StateSuspect {
			out = append(out, e.Alias)
		}
	}
	return out
}

// isKeyID reports whether s has the shape of a key id, 12 hex digits: one
// is safe to print, any other text given for a key may be one mistyped.
func isKeyID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
